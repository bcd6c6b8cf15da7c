//! The daemon's log on stderr: the text line format and the writer.
//!
//! - [`TextLine`] (`--log-format text`, the default): the layout of `tracing_subscriber`'s
//!   default format (`<RFC 3339 time> <LEVEL> <message> <field>=<value> …`), written with one
//!   scan for control characters per line instead of that format's per-character escaping.
//!   Control characters from anywhere in the message or the fields (a peer's ID, a config
//!   name) are written escaped, so no input can start a new line or send a terminal sequence.
//! - [`Stderr`]: one `write` per line, except on a thread that called [`batch_this_thread`]
//!   (the IKE event loop): its lines wait in a buffer until it calls [`flush_batch`] before it
//!   sleeps, or the buffer holds [`BATCH_LIMIT`] bytes.
//!
//! Both exist for a busy responder: formatting a dozen lines per IKE setup and writing each
//! with its own `write` took about a tenth of its CPU (docs/BENCHMARKS.md, "Scale: logging, the
//! TUN wait and the event loop's walks").

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The event format of the text log.
#[derive(Debug, Default, Clone, Copy)]
pub struct TextLine;

impl<S, N> FormatEvent<S, N> for TextLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let ansi = writer.has_ansi_escapes();
        if ansi {
            writer.write_str("\x1b[2m")?;
        }
        SystemTime.format_time(&mut writer)?;
        if ansi {
            writer.write_str("\x1b[0m")?;
        }
        let level = *event.metadata().level();
        if ansi {
            write!(
                writer,
                " {}{:>5}\x1b[0m ",
                level_colour(level),
                level.as_str()
            )?;
        } else {
            write!(writer, " {:>5} ", level.as_str())?;
        }
        BODY.with(|body| {
            // A reentrant event (a field's Display that logs) gets a buffer of its own.
            let mut own = String::new();
            let mut guard = body.try_borrow_mut();
            let buf = match guard.as_mut() {
                Ok(b) => &mut **b,
                Err(_) => &mut own,
            };
            buf.clear();
            let mut fields = Fields { out: buf };
            event.record(&mut fields);
            write_escaped(&mut writer, buf)?;
            if buf.capacity() > MAX_KEPT {
                *buf = String::new();
            }
            writer.write_char('\n')
        })
    }
}

thread_local! {
    /// The message and fields of the line being written, kept between lines.
    static BODY: RefCell<String> = const { RefCell::new(String::new()) };
}

/// A larger line buffer than this is freed after its line.
const MAX_KEPT: usize = 16 * 1024;

/// Log lines of a batching thread are written once they hold this many bytes.
pub const BATCH_LIMIT: usize = 64 * 1024;

thread_local! {
    /// This thread's unwritten lines, when it batches.
    static BATCH: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// The daemon's log writer (a `tracing_subscriber` `MakeWriter`): stderr.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Stderr {
    type Writer = Stderr;

    fn make_writer(&'a self) -> Stderr {
        Stderr
    }
}

impl io::Write for Stderr {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let full = BATCH.with(|b| match b.try_borrow_mut().as_deref_mut() {
            Ok(Some(buf)) => {
                buf.extend_from_slice(line);
                Some(buf.len() >= BATCH_LIMIT)
            }
            _ => None,
        });
        match full {
            Some(true) => flush_batch(),
            Some(false) => {}
            None => io::stderr().write_all(line)?,
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// From now until the guard drops, this thread's log lines wait for [`flush_batch`].
#[must_use = "batching ends (and the lines are written) when the guard drops"]
pub fn batch_this_thread() -> BatchGuard {
    BATCH.with(|b| {
        if let Ok(mut b) = b.try_borrow_mut() {
            b.get_or_insert_with(|| Vec::with_capacity(BATCH_LIMIT));
        }
    });
    BatchGuard(std::marker::PhantomData)
}

/// Ends batching on its thread when dropped (also when unwinding), after writing what waits.
pub struct BatchGuard(std::marker::PhantomData<*const ()>);

impl Drop for BatchGuard {
    fn drop(&mut self) {
        flush_batch();
        BATCH.with(|b| {
            if let Ok(mut b) = b.try_borrow_mut() {
                *b = None;
            }
        });
    }
}

/// Writes this thread's waiting log lines (one `write` for all); nothing if it does not batch.
pub fn flush_batch() {
    BATCH.with(|b| {
        if let Ok(Some(buf)) = b.try_borrow_mut().as_deref_mut() {
            if !buf.is_empty() {
                // A log that cannot be written is not a reason to stop the daemon.
                let _ = io::stderr().write_all(buf);
                buf.clear();
            }
        }
    });
}

fn level_colour(level: Level) -> &'static str {
    match level {
        Level::ERROR => "\x1b[31m",
        Level::WARN => "\x1b[33m",
        Level::INFO => "\x1b[32m",
        Level::DEBUG => "\x1b[34m",
        Level::TRACE => "\x1b[35m",
    }
}

/// Writes the message, then each other field as `name=value` (values by `Debug`, so a `%x`
/// field reads as its `Display` and a string field is quoted), separated by spaces.
struct Fields<'a> {
    out: &'a mut String,
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.separate();
            self.out.push_str(value);
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.separate();
        let name = field.name();
        let _ = if name == "message" {
            write!(self.out, "{value:?}")
        } else {
            let name = name.strip_prefix("r#").unwrap_or(name);
            write!(self.out, "{name}={value:?}")
        };
    }
}

impl Fields<'_> {
    fn separate(&mut self) {
        if !self.out.is_empty() {
            self.out.push(' ');
        }
    }
}

/// `text` with every control character (C0, DEL, C1) written as `\xNN` / `\u{NN}`; the common
/// case, a line without any, is one scan and one write.
fn write_escaped(w: &mut impl fmt::Write, text: &str) -> fmt::Result {
    let is_control = |c: char| c.is_control();
    if !text.contains(is_control) {
        return w.write_str(text);
    }
    let mut rest = text;
    while let Some(i) = rest.find(is_control) {
        let (plain, tail) = rest.split_at(i);
        w.write_str(plain)?;
        let mut chars = tail.chars();
        if let Some(c) = chars.next() {
            match c {
                '\n' => w.write_str("\\n")?,
                '\r' => w.write_str("\\r")?,
                '\t' => w.write_str("\\t")?,
                c if u32::from(c) < 0x80 => write!(w, "\\x{:02x}", u32::from(c))?,
                c => write!(w, "\\u{{{:x}}}", u32::from(c))?,
            }
        }
        rest = chars.as_str();
    }
    w.write_str(rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};

    /// What a subscriber with [`TextLine`] wrote.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| io::ErrorKind::Other)?
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn lines_of(ansi: bool, f: impl FnOnce()) -> String {
        let out = Captured::default();
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(ansi)
            .with_max_level(Level::TRACE)
            .event_format(TextLine)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = out.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8(bytes).unwrap_or_default()
    }

    /// The part after the timestamp.
    fn after_time(line: &str) -> &str {
        line.split_once(' ').map(|(_, r)| r).unwrap_or("")
    }

    #[test]
    fn line_has_the_default_formats_layout() {
        let out = lines_of(false, || {
            let conn = "c7";
            tracing::info!(conn = %conn, msg = "MM1", n = 3, "received {} [ SA ]", "MM1");
            tracing::warn!("plain");
        });
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert_eq!(
            after_time(lines[0]),
            " INFO received MM1 [ SA ] conn=c7 msg=\"MM1\" n=3"
        );
        assert_eq!(after_time(lines[1]), " WARN plain");
        // 2026-12-07T10:46:10.708866Z
        let time = lines[0].split(' ').next().unwrap_or("");
        assert_eq!(time.len(), 27, "{time}");
        assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");
    }

    #[test]
    fn control_characters_cannot_forge_lines_or_terminal_sequences() {
        let id = "evil\n2026-12-07T00:00:00.000000Z  INFO IKE SA established\x1b[2J\u{9b}";
        let out = lines_of(false, || {
            tracing::info!(peer = %id, "peer id {id}");
        });
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(!out.contains('\x1b') && !out.contains('\u{9b}'), "{out:?}");
        assert!(
            out.contains("peer id evil\\n2026-12-07T00:00:00.000000Z  INFO IKE SA established\\x1b[2J\\u{9b}"),
            "{out}"
        );
        assert!(out.contains("peer=evil\\n"), "{out}");
    }

    #[test]
    fn ansi_colours_only_the_time_and_level() {
        let out = lines_of(true, || tracing::error!(conn = "x\x1b", "failed"));
        assert!(
            out.contains("\x1b[31mERROR\x1b[0m failed conn=\"x\\u{1b}\""),
            "{out:?}"
        );
    }

    fn batched() -> Option<Vec<u8>> {
        BATCH.with(|b| b.borrow().clone())
    }

    #[test]
    fn a_batching_thread_writes_its_lines_at_flush() {
        std::thread::spawn(|| {
            assert_eq!(batched(), None);
            let guard = batch_this_thread();
            let mut w = Stderr;
            w.write_all(b"one\n").unwrap();
            w.write_all(b"two\n").unwrap();
            assert_eq!(batched().as_deref(), Some(&b"one\ntwo\n"[..]));
            flush_batch();
            assert_eq!(batched().as_deref(), Some(&b""[..]));
            w.write_all(b"three\n").unwrap();
            drop(guard);
            assert_eq!(
                batched(),
                None,
                "the guard writes what waits and ends batching"
            );
        })
        .join()
        .unwrap();
    }

    #[test]
    fn escaping_keeps_text_without_control_characters() {
        let mut s = String::new();
        write_escaped(&mut s, "a\tb\rc\x7fdé").unwrap_or_default();
        assert_eq!(s, "a\\tb\\rc\\x7fdé");
        s.clear();
        write_escaped(&mut s, "plain text").unwrap_or_default();
        assert_eq!(s, "plain text");
    }
}

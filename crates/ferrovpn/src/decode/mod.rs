//! `ferrovpn decode`: read a capture (pcap or pcapng), name every ISAKMP message as operators
//! do (MM1…MM6, AM1…AM3, QM1…QM3, INFO) with its cookies, message ID and payloads, spot
//! retransmissions and simultaneous negotiations, decrypt with Wireshark's IKEv1 decryption
//! table, and group ESP packets by SPI with their sequence gaps, decrypting them with
//! Wireshark's ESP SA table.

#![deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

pub mod capture;
pub mod esp;
pub mod esp_sa;
pub mod isakmp;
pub mod keys;
pub mod packet;
mod render;
pub mod report;

use std::io::Write;
use std::path::Path;

pub use capture::{Capture, CaptureError, Format, Frame, Timestamp};
pub use esp::{EspDecryption, EspFlow, InnerFlow};
pub use esp_sa::{EspSaError, EspSaTable};
pub use isakmp::{Body, Decryption, IsakmpMessage, MessageName, Record, Undecodable};
pub use keys::{KeyTable, KeyTableError};
pub use render::render;
pub use report::Report;

pub use crate::key_files::{ESP_TABLE, IKEV1_TABLE};

use packet::Content;

/// Why a capture cannot be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Keys(#[from] KeyTableError),
    #[error(transparent)]
    EspKeys(#[from] EspSaError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// At most this many unusable lines of one key file are listed; the rest are counted.
const MAX_LINE_WARNINGS: usize = 10;

/// The key tables `decode` uses: IKEv1 phase 1 keys and ESP SAs.
#[derive(Debug, Default)]
pub struct Keys {
    pub ike: Option<KeyTable>,
    pub esp: Option<EspSaTable>,
    /// The file `esp` was read from, as given.
    pub esp_file: Option<String>,
    /// Lines of the key files that could not be used, each naming the file, the line and why.
    pub warnings: Vec<String>,
}

impl Keys {
    /// Reads a key export directory (its `ikev1_decryption_table` and `esp_sa`, whichever
    /// exist) or one table file, told apart by name (`esp_sa*`) or by its eight-field lines.
    /// Lines that cannot be used are skipped with a warning; an unreadable file is an error.
    pub fn load(&mut self, path: &Path) -> Result<(), DecodeError> {
        let io = |source| DecodeError::Io {
            path: path.display().to_string(),
            source,
        };
        if path.is_dir() {
            let (ike, esp) = (path.join(IKEV1_TABLE), path.join(ESP_TABLE));
            if !ike.exists() && !esp.exists() {
                return Err(io(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("neither {IKEV1_TABLE} nor {ESP_TABLE} in this directory"),
                )));
            }
            for p in [ike, esp] {
                if p.exists() {
                    self.load(&p)?;
                }
            }
            return Ok(());
        }
        let text = std::fs::read(path).map_err(io)?;
        let text = String::from_utf8_lossy(&text);
        let named_esp = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(ESP_TABLE));
        let looks_esp = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .is_some_and(|l| l.split(',').count() >= 8);
        let (skipped, usable, table) = if named_esp || looks_esp {
            let t = EspSaTable::read(&text);
            let skipped: Vec<String> = t.skipped.iter().map(ToString::to_string).collect();
            let usable = t.len();
            self.esp = Some(t);
            self.esp_file = Some(path.display().to_string());
            (skipped, usable, ESP_TABLE)
        } else {
            let t = KeyTable::read(&text);
            let skipped: Vec<String> = t.skipped.iter().map(ToString::to_string).collect();
            let usable = t.len();
            self.ike = Some(t);
            (skipped, usable, IKEV1_TABLE)
        };
        let shown = path.display();
        for why in skipped.iter().take(MAX_LINE_WARNINGS) {
            self.warnings.push(format!("{shown}: {why}; line skipped"));
        }
        if let Some(more) = skipped.len().checked_sub(MAX_LINE_WARNINGS) {
            if more > 0 {
                self.warnings
                    .push(format!("{shown}: {more} more unusable lines skipped"));
            }
        }
        if usable == 0 {
            self.warnings
                .push(format!("{shown}: no usable line (read as {table})"));
        }
        Ok(())
    }
}

/// ESP SA table lines that decrypted nothing because the capture has their SPI between other
/// addresses (a source and destination swapped, or a NAT between): one warning per line.
pub fn esp_address_mismatches(report: &Report, table: &EspSaTable) -> Vec<String> {
    let matches = |e: &esp_sa::EspSaEntry, f: &EspFlow| {
        e.spi == f.spi && e.src.is_none_or(|a| a == f.src) && e.dst.is_none_or(|a| a == f.dst)
    };
    let any = |a: Option<std::net::IpAddr>| a.map_or("*".to_string(), |a| a.to_string());
    table
        .entries()
        .filter(|e| !report.esp.iter().any(|f| matches(e, f)))
        .filter_map(|e| {
            let f = report.esp.iter().find(|f| f.spi == e.spi)?;
            Some(format!(
                "line {}: SPI {:08x} is in the capture from {} to {}, but the line says from {} \
                 to {}; its packets are not decrypted",
                e.line,
                e.spi,
                f.src,
                f.dst,
                any(e.src),
                any(e.dst)
            ))
        })
        .collect()
}

/// Decodes a capture file's bytes; `keys` decrypts the IKE SAs it names.
pub fn decode(capture: &[u8], keys: Option<&KeyTable>) -> Result<Report, DecodeError> {
    decode_with(capture, keys, None)
}

/// Decodes a capture, decrypting IKE with `ike` and ESP with `esp` where they have the SA.
pub fn decode_with(
    capture: &[u8],
    ike: Option<&KeyTable>,
    esp: Option<&EspSaTable>,
) -> Result<Report, DecodeError> {
    let Capture {
        format,
        frames,
        stopped,
    } = capture::read(capture)?;
    let mut tracker = isakmp::Tracker::new(ike);
    let mut flows = esp::EspFlows::default();
    let mut report = Report {
        format,
        frames: frames.len(),
        link_types: Vec::new(),
        records: Vec::new(),
        esp: Vec::new(),
        keepalives: 0,
        fragments: 0,
        gso_super_packets: 0,
        truncated: 0,
        stopped,
    };
    for frame in &frames {
        if !report.link_types.contains(&frame.link_type) {
            report.link_types.push(frame.link_type);
        }
        match packet::parse(frame.link_type, frame.data) {
            Content::Isakmp {
                src,
                dst,
                nat_t,
                message,
            } => tracker.add(frame.number, frame.time, src, dst, nat_t, message),
            Content::Esp {
                src,
                dst,
                udp,
                packet,
            } => {
                let segments = udp.and_then(|_| esp::gso_segments(packet));
                if segments.is_some() {
                    report.gso_super_packets = report.gso_super_packets.saturating_add(1);
                }
                for p in segments.unwrap_or_else(|| vec![packet]) {
                    if !flows.add(frame.time, src, dst, udp, p, esp) {
                        report.truncated = report.truncated.saturating_add(1);
                    }
                }
            }
            Content::Keepalive { .. } => report.keepalives = report.keepalives.saturating_add(1),
            Content::Fragment => report.fragments = report.fragments.saturating_add(1),
            Content::Truncated => report.truncated = report.truncated.saturating_add(1),
            Content::Other => {}
        }
    }
    report.records = tracker.into_records();
    report.esp = flows.into_flows();
    Ok(report)
}

/// `ferrovpn decode FILE [--keys DIR|FILE]... [-v]`: prints the report, then warnings on
/// `err`. Exit status 0 when the capture was read to its end or only its last record is cut
/// short (as a killed tcpdump leaves it: a warning); 1 when a file cannot be read, or the
/// capture is damaged before its end (the frames before the damage are still printed).
pub fn run(
    file: &Path,
    keys: &[std::path::PathBuf],
    verbose: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let fail = |err: &mut dyn Write, e: &dyn std::fmt::Display| {
        let _ = writeln!(err, "ferrovpn decode: {e}");
        crate::exit_code::EXIT_FAILURE
    };
    let mut tables = Keys::default();
    for k in keys {
        if let Err(e) = tables.load(k) {
            return fail(err, &e);
        }
    }
    for w in &tables.warnings {
        let _ = writeln!(err, "ferrovpn decode: warning: {w}");
    }
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => return fail(err, &format!("{}: {e}", file.display())),
    };
    let report = match decode_with(&bytes, tables.ike.as_ref(), tables.esp.as_ref()) {
        Ok(r) => r,
        Err(e) => return fail(err, &format!("{}: {e}", file.display())),
    };
    let _ = out.write_all(render(&report, verbose).as_bytes());
    let _ = out.flush();
    if let Some(esp) = &tables.esp {
        let file = tables.esp_file.as_deref().unwrap_or(ESP_TABLE);
        for w in esp_address_mismatches(&report, esp) {
            let _ = writeln!(err, "ferrovpn decode: warning: {file}: {w}");
        }
    }
    match &report.stopped {
        None => crate::exit_code::EXIT_OK,
        Some(e) => {
            let note = render::stopped_note(e, report.frames);
            if e.is_cut_short() {
                let _ = writeln!(err, "ferrovpn decode: warning: {}: {note}", file.display());
                crate::exit_code::EXIT_OK
            } else {
                fail(err, &format!("{}: {note}", file.display()))
            }
        }
    }
}

//! The terminal: reading a secret with echo off (termios, `tcgetattr(3)`/`tcsetattr(3)`), for
//! the XAuth password `ferrovpn up` asks for and `ferrovpn user add`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use zeroize::Zeroizing;

/// The longest secret read; the buffer never grows (no copies left behind unzeroed).
pub const MAX_SECRET: usize = 1024;

/// The process's controlling terminal (`/dev/tty`), or the reason there is none.
pub fn controlling() -> io::Result<OwnedFd> {
    let fd = super::fd::open(c"/dev/tty", libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC)?;
    if !is_terminal(fd.as_fd()) {
        return Err(io::Error::other("/dev/tty is not a terminal"));
    }
    Ok(fd)
}

/// `isatty(3)`.
pub fn is_terminal(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: isatty only inspects the descriptor, which is open for the call.
    unsafe { libc::isatty(fd.as_raw_fd()) == 1 }
}

/// The terminal's settings.
fn get(fd: BorrowedFd<'_>) -> io::Result<libc::termios> {
    // SAFETY: termios is plain old data; all-zero is a valid value that tcgetattr overwrites.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `t` is a valid, writable termios for the duration of the call.
    if unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut t) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(t)
}

fn set(fd: BorrowedFd<'_>, t: &libc::termios) -> io::Result<()> {
    // SAFETY: `t` is a valid termios read by tcsetattr during the call only.
    if unsafe { libc::tcsetattr(fd.as_raw_fd(), libc::TCSAFLUSH, t) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// True while the terminal echoes what is typed.
pub fn echoes(fd: BorrowedFd<'_>) -> io::Result<bool> {
    Ok(get(fd)?.c_lflag & libc::ECHO != 0)
}

/// Puts the saved settings back when dropped (also on an early return or a panic).
struct Restore<'a> {
    fd: BorrowedFd<'a>,
    saved: libc::termios,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let _ = set(self.fd, &self.saved);
    }
}

/// Writes `prompt` to the terminal `fd` and reads one line with echo off, byte by byte in
/// non-canonical mode with signals off: Enter ends it, Backspace/Delete erase a byte, Ctrl-U
/// the line, Ctrl-D ends it (cancels it when empty), Ctrl-C cancels it as an error, the settings
/// restored in every case (a Ctrl-C that killed the process would leave echo off). The line in
/// a buffer wiped on drop; at most [`MAX_SECRET`] bytes.
pub fn read_secret(fd: BorrowedFd<'_>, prompt: &str) -> io::Result<Zeroizing<Vec<u8>>> {
    let saved = get(fd)?;
    let mut quiet = saved;
    quiet.c_lflag &=
        !(libc::ECHO | libc::ECHOE | libc::ECHOK | libc::ECHONL | libc::ICANON | libc::ISIG);
    quiet.c_cc[libc::VMIN] = 1;
    quiet.c_cc[libc::VTIME] = 0;
    set(fd, &quiet)?;
    let _restore = Restore { fd, saved };
    write_all(fd, prompt.as_bytes())?;
    let mut line = Zeroizing::new(Vec::with_capacity(MAX_SECRET));
    let mut byte = Zeroizing::new([0u8; 1]);
    let result = loop {
        match super::fd::read(fd, &mut byte[..]) {
            Ok(0) => break Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(e),
        }
        match byte[0] {
            b'\n' | b'\r' => break Ok(()),
            0x03 => break Err(io::Error::other("cancelled (Ctrl-C)")),
            0x04 if line.is_empty() => break Err(io::Error::other("cancelled (Ctrl-D)")),
            // As in line mode: Ctrl-D after some input ends the line.
            0x04 => break Ok(()),
            0x7f | 0x08 => {
                line.pop();
            }
            0x15 => line.clear(),
            b => {
                if line.len() >= MAX_SECRET {
                    break Err(io::Error::other(format!("longer than {MAX_SECRET} bytes")));
                }
                line.push(b);
            }
        }
    };
    // What was typed is not shown; the answer ends the prompt's line.
    let _ = write_all(fd, b"\n");
    result.map(|()| line)
}

fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match super::fd::write(fd, data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = data.get(n..).unwrap_or(&[]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A new pseudo-terminal pair (master, slave), for tests of [`read_secret`].
#[cfg(test)]
pub fn openpty() -> io::Result<(OwnedFd, OwnedFd)> {
    use std::os::fd::FromRawFd;
    let (mut m, mut s) = (-1, -1);
    // SAFETY: m and s are valid out-pointers; the name, termios and winsize pointers may be
    // null (none are wanted).
    let r = unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both are fresh descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a pseudo-terminal: the prompt is shown, what is typed is not echoed but returned,
    /// and echo is on again afterwards.
    /// What the reader wrote to the terminal first (its prompt), waiting for it.
    fn wait_prompt(master: &OwnedFd) -> Vec<u8> {
        let mut fds = [libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // A hang guard, not a timing assertion: 60 s.
        assert!(super::super::fd::poll(&mut fds, 60_000) > 0, "no prompt");
        let mut buf = [0u8; 64];
        let n = super::super::fd::read(master.as_fd(), &mut buf).unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn a_secret_is_read_with_echo_off_and_the_terminal_restored() {
        let (master, slave) = openpty().unwrap();
        assert!(is_terminal(slave.as_fd()));
        assert!(echoes(slave.as_fd()).unwrap());
        let reader = std::thread::spawn(move || {
            let got = read_secret(slave.as_fd(), "XAuth password: ");
            (got, slave)
        });
        // Type only after the prompt (as a person would): earlier input is flushed.
        assert_eq!(wait_prompt(&master), b"XAuth password: ");
        write_all(master.as_fd(), b"s3cret pass\n").unwrap();
        let (got, slave) = reader.join().unwrap();
        assert_eq!(&got.unwrap()[..], b"s3cret pass");
        assert!(echoes(slave.as_fd()).unwrap(), "echo restored");
        // What the terminal showed after the prompt: the newline only.
        super::super::fd::set_nonblocking(master.as_fd(), true).unwrap();
        let mut buf = [0u8; 256];
        let n = super::super::fd::read(master.as_fd(), &mut buf).unwrap_or(0);
        let shown = String::from_utf8_lossy(&buf[..n]);
        assert!(!shown.contains("s3cret"), "echoed: {shown:?}");
        assert!(shown.contains('\n'), "{shown:?}");
    }

    /// Backspace and Ctrl-U edit the line; Ctrl-C cancels (an error, not a dead process with
    /// echo off) and the settings are restored.
    #[test]
    fn editing_keys_work_and_ctrl_c_cancels_with_the_terminal_restored() {
        for (typed, want) in [
            (&b"abx\x7fc\r"[..], Some(&b"abc"[..])),
            (&b"wrong\x15right\n"[..], Some(&b"right"[..])),
            (&b"abc\x03"[..], None),
            (&b"\x04"[..], None),
        ] {
            let (master, slave) = openpty().unwrap();
            let reader = std::thread::spawn(move || {
                let got = read_secret(slave.as_fd(), "> ").map(|v| v.to_vec());
                (got, slave)
            });
            assert_eq!(wait_prompt(&master), b"> ");
            write_all(master.as_fd(), typed).unwrap();
            let (got, slave) = reader.join().unwrap();
            assert_eq!(got.ok().as_deref(), want, "{typed:?}");
            assert!(
                echoes(slave.as_fd()).unwrap(),
                "echo restored after {typed:?}"
            );
            let t = get(slave.as_fd()).unwrap();
            assert_ne!(t.c_lflag & libc::ISIG, 0, "signals restored");
            assert_ne!(t.c_lflag & libc::ICANON, 0, "line mode restored");
        }
    }

    #[test]
    fn an_over_long_secret_is_an_error_not_a_bigger_buffer() {
        let (master, slave) = openpty().unwrap();
        let long = vec![b'x'; MAX_SECRET + 1];
        let reader = std::thread::spawn(move || read_secret(slave.as_fd(), "> ").map(|v| v.len()));
        assert_eq!(wait_prompt(&master), b"> ");
        write_all(master.as_fd(), &long).unwrap();
        write_all(master.as_fd(), b"\n").unwrap();
        assert!(reader.join().unwrap().is_err());
    }

    #[test]
    fn a_file_is_not_a_terminal() {
        let f = std::fs::File::open("/dev/null").unwrap();
        assert!(!is_terminal(f.as_fd()));
        assert!(read_secret(f.as_fd(), "").is_err());
    }
}

//! The notifier against a test NOTIFY_SOCKET with a made-up sequence and clock: READY=1 with a
//! status, WATCHDOG=1 only at half of WATCHDOG_USEC and only when WATCHDOG_PID is ours or
//! absent, STATUS= only on change, STOPPING=1. One test in this binary: it sets environment
//! variables. The whole daemon under a test NOTIFY_SOCKET is `sd_notify_daemon.rs` (root).

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use ferrovpn::daemon::notify::Notifier;

fn recv(s: &UnixDatagram) -> Option<String> {
    let mut buf = [0u8; 4096];
    match s.recv(&mut buf) {
        Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
        Err(e) => panic!("recv: {e}"),
    }
}

#[test]
fn ready_status_watchdog_and_stopping_reach_the_notify_socket() {
    let dir = std::env::temp_dir().join(format!("fv-notify-fake-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_nonblocking(true).unwrap();

    // Not ours: WATCHDOG_PID names another process, so no pings.
    std::env::set_var("NOTIFY_SOCKET", &path);
    std::env::set_var("WATCHDOG_USEC", "30000000");
    std::env::set_var("WATCHDOG_PID", "1");
    assert_eq!(Notifier::from_env().ping_every(), None);

    std::env::remove_var("WATCHDOG_PID");
    let mut n = Notifier::from_env();
    assert_eq!(n.ping_every(), Some(Duration::from_secs(15)));
    let t0 = Instant::now();
    n.tick(t0);
    assert_eq!(recv(&sock), None, "nothing before READY=1");
    n.ready(t0, "2 connections, 0 up".into());
    assert_eq!(
        recv(&sock).as_deref(),
        Some("READY=1\nSTATUS=2 connections, 0 up\n")
    );
    n.tick(t0 + Duration::from_secs(14));
    assert_eq!(recv(&sock), None, "no ping before half the watchdog time");
    n.tick(t0 + Duration::from_secs(15));
    assert_eq!(recv(&sock).as_deref(), Some("WATCHDOG=1\n"));
    n.tick(t0 + Duration::from_secs(16));
    assert_eq!(recv(&sock), None, "one ping per interval");
    n.tick(t0 + Duration::from_secs(30));
    assert_eq!(recv(&sock).as_deref(), Some("WATCHDOG=1\n"));

    n.status(t0, "2 connections, 0 up".into());
    assert_eq!(recv(&sock), None, "an unchanged status is not sent again");
    n.status(t0, "2 connections, 1 up".into());
    assert_eq!(recv(&sock).as_deref(), Some("STATUS=2 connections, 1 up\n"));
    n.stopping();
    assert_eq!(
        recv(&sock).as_deref(),
        Some("STOPPING=1\nSTATUS=stopping\n")
    );
    n.tick(t0 + Duration::from_secs(60));
    assert_eq!(recv(&sock), None, "no pings while stopping");

    // Without NOTIFY_SOCKET nothing is sent and the watchdog stays off.
    std::env::remove_var("NOTIFY_SOCKET");
    let mut quiet = Notifier::from_env();
    assert!(!quiet.enabled());
    assert_eq!(quiet.ping_every(), None);
    quiet.ready(t0, "x".into());
    assert_eq!(recv(&sock), None);
    std::fs::remove_dir_all(&dir).unwrap();
}

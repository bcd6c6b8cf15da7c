//! systemd's readiness protocol (sd_notify(3)) for `Type=notify` units: READY=1 once the
//! sockets, TUN devices, routes and the control socket are set up, STATUS= lines as connections
//! come and go, WATCHDOG=1 at half of `WatchdogSec`, STOPPING=1 on shutdown. Without
//! `NOTIFY_SOCKET` in the environment every call is a no-op.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use tracing::{debug, info};

/// How often the status line is recomputed at most.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// The daemon's side of the notification socket.
pub struct Notifier {
    enabled: bool,
    /// Half the watchdog timeout: systemd restarts the unit after a full one without a ping.
    ping_every: Option<Duration>,
    next_ping: Option<Instant>,
    status: String,
    next_status: Option<Instant>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` (the watchdog is ours only
    /// when `WATCHDOG_PID` is absent or our PID, as sd_watchdog_enabled(3) says).
    pub fn from_env() -> Notifier {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty());
        let ping_every = sd_notify::watchdog_enabled()
            .filter(|_| enabled)
            .map(|d| d / 2)
            .filter(|d| !d.is_zero());
        Notifier {
            enabled,
            ping_every,
            next_ping: None,
            status: String::new(),
            next_status: None,
        }
    }

    /// True when a service manager listens.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The watchdog ping interval, when the watchdog is on.
    pub fn ping_every(&self) -> Option<Duration> {
        self.ping_every
    }

    fn send(&self, states: &[NotifyState]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(states) {
            debug!("sd_notify: {e}");
        }
    }

    /// READY=1 with the first status line; starts the watchdog clock.
    pub fn ready(&mut self, now: Instant, status: String) {
        self.send(&[NotifyState::Ready, NotifyState::Status(&status)]);
        if self.enabled {
            info!("told systemd: ready ({status})");
        }
        self.status = status;
        self.next_status = Some(now + STATUS_EVERY);
        self.next_ping = self.ping_every.map(|p| now + p);
    }

    /// When the event loop must wake for the next watchdog ping.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.next_ping
    }

    /// Pings the watchdog when due (called from the event loop: a stuck loop stops the pings).
    pub fn tick(&mut self, now: Instant) {
        if let (Some(at), Some(every)) = (self.next_ping, self.ping_every) {
            if at <= now {
                self.send(&[NotifyState::Watchdog]);
                self.next_ping = Some(now + every);
            }
        }
    }

    /// True when the status line should be recomputed (at most once a second).
    pub fn status_due(&self, now: Instant) -> bool {
        self.enabled && self.next_status.is_some_and(|t| t <= now)
    }

    /// STATUS=, sent only when it changed.
    pub fn status(&mut self, now: Instant, status: String) {
        self.next_status = Some(now + STATUS_EVERY);
        if status != self.status {
            self.send(&[NotifyState::Status(&status)]);
            self.status = status;
        }
    }

    /// STOPPING=1: the orderly shutdown (deletes to peers, teardown) begins.
    pub fn stopping(&mut self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
        self.next_ping = None;
    }
}

/// The status line systemd shows: `3 connections, 2 up`.
pub fn status_line(connections: usize, up: usize) -> String {
    let noun = if connections == 1 {
        "connection"
    } else {
        "connections"
    };
    format!("{connections} {noun}, {up} up")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_counts_connections_and_those_up() {
        assert_eq!(status_line(3, 2), "3 connections, 2 up");
        assert_eq!(status_line(1, 0), "1 connection, 0 up");
    }
}

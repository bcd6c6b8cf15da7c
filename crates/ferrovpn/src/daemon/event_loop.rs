//! The control thread's loop: wait on mio for UDP 500, signals, the data plane's IKE
//! datagrams and unknown-SPI reports, control requests and the endpoint's next timer; feed
//! the endpoint; send what it queued.

use std::io;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use ferrovpn_esp::Clock;
use ferrovpn_ike::Datagram;
use mio::{Poll, Token};
use tracing::{info, warn};

use super::conn::stats_of;
use super::control::{Request, StatusView};
use super::error::DaemonError;
use super::history;
use super::state::{Daemon, IKE_BASE, SIGNALS};

/// How often the event loop looks for idle SAs whose time lifetime ran out (it also wakes at
/// least once a second).
const LIFETIME_POLL: Duration = Duration::from_millis(100);

impl Daemon {
    pub(super) fn event_loop(
        &mut self,
        poll: &mut Poll,
        sigfd: &OwnedFd,
        ike_rx: &Receiver<Datagram>,
        req_rx: &Receiver<Request>,
    ) -> Result<(), DaemonError> {
        let mut events = mio::Events::with_capacity(64);
        let mut buf = vec![0u8; 65536];
        // This thread's log lines go out in one write per turn of the loop.
        let _batch = crate::logging::batch_this_thread();
        let mut lifetimes_due = Instant::now();
        let mut conn_scan_due = Instant::now();
        while !self.stop {
            let now = Instant::now();
            let mut next = now + Duration::from_secs(1);
            if let Some(t) = self.endpoint.poll_timeout() {
                next = next.min(t);
            }
            if let Some(t) = self.notify.next_wakeup() {
                next = next.min(t);
            }
            if let Some(t) = self.conn_timers {
                next = next.min(t);
            }
            crate::logging::flush_batch();
            if let Err(e) = poll.poll(&mut events, Some(next.saturating_duration_since(now))) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(DaemonError::Io("poll", e));
                }
            }
            let now = Instant::now();
            for ev in events.iter() {
                match ev.token() {
                    SIGNALS => {
                        while let Some(sig) = crate::sys::signal::signal_received(sigfd) {
                            if sig == libc::SIGHUP {
                                info!("SIGHUP: reloading the configuration");
                                match self.reload() {
                                    super::control::Outcome::Done(m) => info!("reload: {m}"),
                                    o => tracing::error!("reload refused: {}", o.message()),
                                }
                            } else {
                                info!("signal {sig} received: stopping");
                                self.stop = true;
                            }
                        }
                    }
                    Token(t) if t >= IKE_BASE => {
                        self.refresh_crls(now, false);
                        if let Some((local, sock)) = self.ike500.get(t - IKE_BASE) {
                            let local = *local;
                            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                                let data = buf.get(..n).unwrap_or_default().to_vec();
                                self.endpoint.handle_datagram(
                                    now,
                                    Datagram {
                                        local,
                                        remote: from,
                                        data,
                                    },
                                );
                            }
                        }
                    }
                    _ => {}
                }
            }
            while let Ok(d) = ike_rx.try_recv() {
                self.refresh_crls(now, false);
                self.endpoint.handle_datagram(now, d);
            }
            while let Ok(u) = self.unknown_spi_rx.try_recv() {
                self.endpoint.handle_unknown_spi(now, None, u.source, u.spi);
            }
            while let Ok(req) = req_rx.try_recv() {
                self.answer(req);
            }
            self.endpoint.handle_timeout(now);
            if let Some(m) = self.dh_maker.as_mut() {
                m.serve(&mut self.endpoint);
            }
            if let Some(w) = self.dh_workers.as_ref() {
                w.serve(now, &mut self.endpoint);
            }
            if self.conn_timers.is_some_and(|t| t <= now) || now >= conn_scan_due {
                self.retry_connections(now);
                self.note_esp_liveness(now);
                self.release_heard();
                // The scan also runs once a second, so a timer set where `conn_timer_set` was
                // not called is late by a second at most, never lost.
                conn_scan_due = now + Duration::from_secs(1);
            }
            // Traffic checks its SA's lifetimes per packet; this finds idle SAs whose time ran
            // out. It walks every SA, so at most every LIFETIME_POLL, not on every turn (at
            // 20,000 SAs a walk costs more than an IKE setup's non-DH work).
            if now >= lifetimes_due {
                self.sad.poll_lifetimes(self.clock.now());
                lifetimes_due = now + LIFETIME_POLL;
            }
            self.on_lifetime_events(now);
            self.flush();
            self.check_pending(now);
            self.notify.tick(now);
            if self.notify.status_due(now) {
                let status = self.status_line();
                self.notify.status(now, status);
            }
            self.half_open
                .observe(now, self.endpoint.counters().half_open_dropped);
            self.fragment_drops.observe(
                now,
                self.endpoint.counters().fragments_dropped,
                self.endpoint
                    .last_fragment_drop()
                    .map(|(peer, e)| (peer, e.to_string())),
            );
            let (sad, conns) = (&self.sad, &self.conns);
            self.history.sample(now, |i| {
                conns.get(i).map_or_else(Vec::new, |c| {
                    c.pairs
                        .iter()
                        .map(|p| {
                            let (i, o) = (stats_of(sad, p.inbound), stats_of(sad, p.outbound));
                            (p.child.inbound.spi, i.packets, o.packets)
                        })
                        .collect()
                })
            });
        }
        Ok(())
    }

    /// Tells the endpoint which pairs of DPD-watched connections accepted ESP since the last
    /// look (at most a second ago): traffic from the peer proves it alive (RFC 3706 §6), so no
    /// R-U-THERE goes, and none lost on a lossy path declares a working tunnel dead.
    fn note_esp_liveness(&mut self, now: Instant) {
        for (i, c) in self.conns.iter_mut().enumerate() {
            if c.cfg.dpd.is_none() {
                continue;
            }
            for p in &mut c.pairs {
                let seen = stats_of(&self.sad, p.inbound).packets;
                if seen != p.in_packets_seen {
                    p.in_packets_seen = seen;
                    self.endpoint.esp_received(now, i, p.child.inbound.spi);
                }
            }
        }
    }

    /// Connections whose retry timer is due initiate again, or negotiate their missing pairs;
    /// `conn_timers` becomes the earliest timer left.
    fn retry_connections(&mut self, now: Instant) {
        let mut earliest: Option<Instant> = None;
        for i in 0..self.conns.len() {
            if self.conns[i].retry_at.is_some_and(|t| t <= now) {
                self.conns[i].retry_at = None;
                if !self.endpoint.is_up(i) {
                    info!(conn = %self.conns[i].cfg.name, "initiating again");
                    self.endpoint.initiate(now, i);
                }
            }
            if self.conns[i].pairs_retry_at.is_some_and(|t| t <= now) {
                self.conns[i].pairs_retry_at = None;
                if !self.conns[i].held && self.endpoint.is_up(i) {
                    // Phase 1 up: Quick Mode for each configured pair without an SA.
                    match self.endpoint.negotiate_missing(now, i) {
                        Ok(0) => {}
                        Ok(n) => {
                            info!(conn = %self.conns[i].cfg.name, "negotiating {n} IPsec SA pair(s) again")
                        }
                        Err(e) => {
                            info!(conn = %self.conns[i].cfg.name, "not negotiating the pairs again: {e}")
                        }
                    }
                }
            }
            let c = &self.conns[i];
            for t in [c.retry_at, c.pairs_retry_at].into_iter().flatten() {
                earliest = Some(earliest.map_or(t, |e| e.min(t)));
            }
        }
        self.conn_timers = earliest;
    }

    /// `3 connections, 2 up`, for systemd's STATUS=.
    pub(super) fn status_line(&self) -> String {
        let live = || (0..self.conns.len()).filter(|&i| !self.endpoint.is_removed(i));
        let up = live().filter(|&i| self.endpoint.is_up(i)).count();
        super::notify::status_line(live().count(), up)
    }

    /// Sends what the endpoint queued and acts on its events.
    pub(super) fn flush(&mut self) {
        // Events may queue datagrams (a DELETE for a pair that could not be installed): they
        // go out before the next event is handled.
        loop {
            self.transmit();
            let Some(e) = self.endpoint.poll_event() else {
                break;
            };
            self.observe(&e);
            self.on_event(e);
        }
    }

    fn transmit(&mut self) {
        while let Some(d) = self.endpoint.poll_transmit() {
            let r = if d.local.port() == 4500 && d.is_nat_keepalive() {
                match self.nat_t.get(&d.local.ip()) {
                    Some(s) => s.send_to(&d.data, d.remote),
                    None => Err(io::Error::other("no UDP 4500 socket for that address")),
                }
            } else if d.local.port() == 4500 {
                let mut framed = Vec::with_capacity(d.data.len() + 4);
                framed.extend_from_slice(&ferrovpn_esp::nat_t::NON_ESP_MARKER);
                framed.extend_from_slice(&d.data);
                match self.nat_t.get(&d.local.ip()) {
                    Some(s) => s.send_to(&framed, d.remote),
                    None => Err(io::Error::other("no UDP 4500 socket for that address")),
                }
            } else {
                match self.ike500.iter().find(|(a, _)| a.ip() == d.local.ip()) {
                    Some((_, s)) => s.send_to(&d.data, d.remote),
                    None => Err(io::Error::other("no UDP 500 socket for that address")),
                }
            };
            if let Err(e) = r {
                warn!("sending to {}: {e}", d.remote);
            }
        }
    }

    pub(super) fn answer(&mut self, req: Request) {
        match req {
            Request::Status(reply) => {
                let view = StatusView::collect(
                    &self.endpoint,
                    &self.conns,
                    &self.sad,
                    &self.shared,
                    self.started,
                );
                let _ = reply.send(view);
            }
            Request::Metrics(reply) => {
                let _ = reply.send(self.metrics_text());
            }
            Request::Snapshot(reply) => {
                let snap = history::snapshot(
                    &self.history,
                    &self.endpoint,
                    &self.conns,
                    &self.sad,
                    &self.half_open,
                    self.give_up,
                    Instant::now(),
                );
                let _ = reply.send(snap);
            }
            Request::Conn {
                op,
                name,
                timeout,
                reply,
            } => self.conn_request(op, &name, timeout, reply),
            Request::Reload(reply) => {
                info!("reload requested over the control socket");
                let o = self.reload();
                match &o {
                    super::control::Outcome::Done(m) => info!("reload: {m}"),
                    o => tracing::error!("reload refused: {}", o.message()),
                }
                let _ = reply.send(o);
            }
            Request::Down(reply) => {
                info!("down requested over the control socket");
                self.stop = true;
                let _ = reply.send(());
            }
        }
    }
}

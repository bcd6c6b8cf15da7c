//! IPsec SAs into and out of the data plane: the SAD entry, the inbound SPI to TUN map and
//! the outbound policy of each pair, in the order that never drops a packet of a rekey.

use std::time::Instant;

use ferrovpn_esp::{Clock, SaHandle};
use ferrovpn_ike::{ChildSa, Role};
use tracing::{error, info};

use super::conn::{stats_of, InstalledPair};
use super::dataplane::Policy;
use super::state::Daemon;
use crate::convert;
use crate::ipnet::IpNet;

impl Daemon {
    /// Responder after QM2: accept ESP on the new inbound SPI at once (see
    /// `Event::ChildSaInboundReady`); the outbound half follows with QM3.
    pub(super) fn install_inbound(&mut self, child: ChildSa) {
        let Some((inb, _)) = convert::esp_sas(&child) else {
            return;
        };
        let Ok(h) = self.sad.add(&inb, self.clock.now()) else {
            return;
        };
        if let Some(tun) = self.conns.get(child.conn).and_then(|c| c.tun) {
            if let Ok(mut m) = self.shared.inbound.write() {
                m.insert(h, (tun, child.conn));
            }
        }
        self.early_inbound.push((child.conn, child.message_id, h));
    }

    pub(super) fn install(&mut self, child: ChildSa) {
        let name = self.conn_name(child.conn).to_owned();
        let Some((inb, outb)) = convert::esp_sas(&child) else {
            let why = format!(
                "negotiated ESP transform {} is not implemented by the data plane",
                child.cipher.name()
            );
            self.not_installed(&child, None, None, &why);
            return;
        };
        let now = self.clock.now();
        let early = self
            .early_inbound
            .iter()
            .position(|e| e.0 == child.conn && e.1 == child.message_id)
            .map(|i| self.early_inbound.swap_remove(i).2);
        let inbound = match early {
            Some(h) => Ok(h),
            None => self.sad.add(&inb, now),
        };
        let (h_in, h_out) = match (inbound, self.sad.add(&outb, now)) {
            (Ok(a), Ok(b)) => (a, b),
            (a, b) => {
                let errors = [&a, &b].map(|r| r.as_ref().err().map(|e| e.to_string()));
                let why = format!(
                    "the data plane refused it ({})",
                    errors.into_iter().flatten().collect::<Vec<_>>().join("; ")
                );
                self.not_installed(&child, a.ok(), b.ok(), &why);
                return;
            }
        };
        let Some(c) = self.conns.get_mut(child.conn) else {
            return;
        };
        let mut held = None;
        // An older pair with a byte lifetime could run out while its successor waits.
        let older_counts_bytes = c.pairs.iter().any(|p| {
            p.child.local_ts == child.local_ts
                && p.child.remote_ts == child.remote_ts
                && p.child.lifetime_kb.is_some()
        });
        if let Some(tun) = c.tun {
            if let Ok(mut m) = self.shared.inbound.write() {
                m.insert(h_in, (tun, child.conn));
            }
            let policy = Policy {
                tun,
                conn: child.conn,
                local: IpNet::truncating(child.local_ts.addr, child.local_ts.prefix_len),
                remote: IpNet::truncating(child.remote_ts.addr, child.remote_ts.prefix_len),
                handle: h_out,
            };
            if let Ok(mut p) = self.shared.policies.write() {
                // Make before break: a rekey we began keeps sending on the older pair until
                // the peer is known to have QM3 (lost or slow, it used to cost the packets
                // sent in between).
                if child.role == Role::Initiator && !older_counts_bytes && p.covers(&policy, None) {
                    held = Some(policy);
                } else {
                    p.push(policy);
                }
            }
        }
        info!(
            conn = %name,
            "IPsec SA installed: {} === {} spi in {:08x} out {:08x}, {}{}, {}, lifetime {}s",
            child.local_ts,
            child.remote_ts,
            child.inbound.spi,
            child.outbound.spi,
            child.cipher.name(),
            child.integrity.map(|i| format!("-{}", i.name())).unwrap_or_default(),
            child.encapsulation,
            child.lifetime.as_secs()
        );
        c.pairs.push(InstalledPair {
            ike: child.ike,
            inbound: h_in,
            outbound: h_out,
            established: Instant::now(),
            in_packets_seen: 0,
            held,
            child,
        });
    }

    /// Once a second: puts in the held policies whose pair has received a packet.
    pub(super) fn release_heard(&mut self) {
        for conn in 0..self.conns.len() {
            self.release_held(conn, None);
        }
    }

    /// Puts in the held outbound policies (`InstalledPair::held`) of connection `conn` whose
    /// pair has received a packet (the peer has our QM3), or whose older pair no longer sends
    /// or is about to stop (`leaving`, removed by the caller right after: the new policy is in
    /// before the old one goes, so no packet finds neither).
    pub(super) fn release_held(&mut self, conn: usize, leaving: Option<SaHandle>) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        if c.pairs.iter().all(|p| p.held.is_none()) {
            return;
        }
        let Ok(mut pol) = self.shared.policies.write() else {
            return;
        };
        for p in &mut c.pairs {
            let Some(policy) = p.held else { continue };
            let heard = stats_of(&self.sad, p.inbound).packets > 0;
            if heard || !pol.covers(&policy, leaving) {
                pol.push(policy);
                p.held = None;
                info!(
                    conn = %c.cfg.name,
                    "sending on the new IPsec SA spi out {:08x}: {}",
                    p.child.outbound.spi,
                    if heard { "the peer uses it" } else { "the older pair no longer sends" }
                );
            }
        }
    }

    /// A negotiated pair the data plane could not take: the half that got in comes out again,
    /// and IKE deletes the pair, peer told, so neither side counts a tunnel that carries
    /// nothing; an initiating connection negotiates it again (`schedule_children_retry`).
    fn not_installed(
        &mut self,
        child: &ChildSa,
        inbound: Option<SaHandle>,
        outbound: Option<SaHandle>,
        why: &str,
    ) {
        let name = self.conn_name(child.conn).to_owned();
        error!(conn = %name, "installing IPsec SA pair spi in {:08x} out {:08x} failed: {why}; deleting it", child.inbound.spi, child.outbound.spi);
        if let Some(h) = inbound {
            if let Ok(mut m) = self.shared.inbound.write() {
                m.remove(&h);
            }
        }
        for h in [inbound, outbound].into_iter().flatten() {
            let _ = self.sad.remove(h);
        }
        if let Some(c) = self.conns.get_mut(child.conn) {
            c.last_failure = Some(format!("IPsec SA pair not installed: {why}"));
            c.failures += 1;
        }
        self.endpoint.delete_child_sa(
            Instant::now(),
            child.conn,
            child.inbound.spi,
            "the data plane could not install it",
        );
    }

    /// The peer deleted the pair: its outbound half goes now, the inbound half drains.
    pub(super) fn stop_sending(&mut self, conn: usize, spi_in: u32, spi_out: u32) {
        let name = self.conn_name(conn).to_owned();
        let Some(p) = self.conns.get_mut(conn).and_then(|c| {
            c.pairs
                .iter_mut()
                .find(|p| p.child.inbound.spi == spi_in && p.child.outbound.spi == spi_out)
        }) else {
            return;
        };
        // A pair still held back never sends now: its policy must not go in later.
        p.held = None;
        let out = p.outbound;
        self.release_held(conn, Some(out));
        if let Ok(mut pol) = self.shared.policies.write() {
            pol.remove(conn, out);
        }
        let _ = self.sad.remove(out);
        info!(conn = %name, "IPsec SA deleted by peer: spi out {spi_out:08x} removed, spi in {spi_in:08x} drains");
    }

    pub(super) fn uninstall(&mut self, conn: usize, spi_in: u32, spi_out: u32, reason: &str) {
        let name = self.conn_name(conn).to_owned();
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let Some(i) = c
            .pairs
            .iter()
            .position(|p| p.child.inbound.spi == spi_in && p.child.outbound.spi == spi_out)
        else {
            return;
        };
        let p = c.pairs.swap_remove(i);
        if !self.stop {
            self.release_held(conn, Some(p.outbound));
        }
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        // Shutting down: the DELETEs are out and the pipelines stop next, taking the SAD and
        // the policies with them whole. Removing 20,000 SAs one by one (each a copy of the
        // SAD's snapshot) took 36 s of `down` at 10,000 tunnels.
        if !self.stop {
            if let Ok(mut pol) = self.shared.policies.write() {
                pol.remove(conn, p.outbound);
            }
            if let Ok(mut m) = self.shared.inbound.write() {
                m.remove(&p.inbound);
            }
            let _ = self.sad.remove(p.inbound);
            let _ = self.sad.remove(p.outbound);
        }
        info!(conn = %name, "IPsec SA removed: spi in {spi_in:08x} out {spi_out:08x} ({reason})");
        if c.pairs.is_empty() && !self.endpoint.is_up(conn) {
            self.schedule_retry(conn);
        }
    }
}

//! What the daemon does beside acting on state machine events: counting them for `/metrics`
//! and, when `save_keys_dir` is set, exporting the keys of new SAs for Wireshark.

use std::sync::atomic::Ordering;
use std::time::Instant;

use ferrovpn_ike::Event;

use super::conn::stats_of;
use super::metrics::{self, ConnSnapshot, SaPair, Snapshot};
use super::state::Daemon;

/// Initiator cookies remembered for `conn_of_cookie`.
const COOKIE_MEMORY: usize = 4096;

impl Daemon {
    /// Called for every event before `on_event` acts on it (so SA tables are still as before).
    pub(super) fn observe(&mut self, e: &Event) {
        let message_conn = match e {
            Event::Message(m) => self.conn_of_cookie(&m.cookies.initiator_spi),
            _ => None,
        };
        let endpoint = &self.endpoint;
        let conns = &self.conns;
        self.events.count(
            e,
            |_| message_conn,
            |e| match e {
                // Asked of the endpoint: by the time events are read, the replaced SA may
                // already be retiring (the rekey's initiator), so counting SAs misses it.
                Event::IkeSaEstablished { cookies, .. } => {
                    endpoint.replaced_another(&cookies.initiator_spi)
                }
                Event::ChildSaEstablished(child) => conns.get(child.conn).is_some_and(|c| {
                    c.pairs.iter().any(|p| {
                        p.child.local_ts == child.local_ts && p.child.remote_ts == child.remote_ts
                    })
                }),
                _ => false,
            },
        );
        let Some(export) = self.key_export.as_mut() else {
            return;
        };
        match e {
            Event::IkeSaEstablished { cookies, .. } => {
                if let Some(key) = self.endpoint.phase1_encryption_key(&cookies.initiator_spi) {
                    export.ike_sa(cookies, key);
                }
            }
            Event::ChildSaEstablished(child) => export.child_sa(child),
            _ => {}
        }
    }

    /// The connection of an ISAKMP SA by initiator cookie, remembered past the SA's deletion
    /// (its DELETE is logged after the endpoint dropped it). Bounded: forgotten in bulk.
    pub(super) fn conn_of_cookie(&mut self, cookie: &[u8; 8]) -> Option<usize> {
        if let Some(c) = self.endpoint.conn_of(cookie) {
            if self.cookie_conns.len() >= COOKIE_MEMORY && !self.cookie_conns.contains_key(cookie) {
                self.cookie_conns.clear();
            }
            self.cookie_conns.insert(*cookie, c);
            return Some(c);
        }
        self.cookie_conns.get(cookie).copied()
    }

    /// The `/metrics` text of the current state.
    pub(super) fn metrics_text(&self) -> String {
        let now = Instant::now();
        let ike = self.endpoint.ike_sas(now);
        let conns = self
            .conns
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.removed)
            .map(|(i, c)| ConnSnapshot {
                name: c.cfg.name.clone(),
                up: !c.pairs.is_empty(),
                ike_sas: ike.iter().filter(|s| s.conn == i).count(),
                pool: c.cfg.gateway.as_ref().map(|g| {
                    let (used, size) = self
                        .endpoint
                        .leases(i, false)
                        .map_or((0, super::control::pool_size(&g.pool)), |(l, size)| {
                            (l.len() as u64, size)
                        });
                    (used, size.saturating_sub(used))
                }),
                pool6: c.cfg.gateway.as_ref().and_then(|g| g.pool6).map(|p| {
                    let (used, size) = self
                        .endpoint
                        .leases(i, true)
                        .map_or((0, super::control::pool_size(&p)), |(l, size)| {
                            (l.len() as u64, size)
                        });
                    (used, size.saturating_sub(used))
                }),
                pairs: c
                    .pairs
                    .iter()
                    .map(|p| SaPair {
                        spi_in: p.child.inbound.spi,
                        spi_out: p.child.outbound.spi,
                        inbound: stats_of(&self.sad, p.inbound),
                        outbound: stats_of(&self.sad, p.outbound),
                    })
                    .collect(),
                events: self.events.conns.get(i).cloned().unwrap_or_default(),
            })
            .collect();
        let ic = self.endpoint.counters();
        let (dh_ready, dh_inline) = self.endpoint.dh_pool_use();
        let g = self.sad.global_stats();
        let io = &self.shared.counters;
        let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let xl = crate::users::Limiter::global();
        let xp = crate::pam_users::PamStats::global();
        let process = vec![
            ("ike_received_total", "ISAKMP datagrams received.", ic.received),
            ("ike_malformed_total", "ISAKMP datagrams that did not parse.", ic.malformed),
            ("ike_unknown_sa_total", "ISAKMP messages whose cookies name no SA.", ic.unknown_sa),
            ("ike_invalid_cookie_total", "ISAKMP messages with a known initiator cookie but the wrong responder cookie or address.", ic.invalid_cookie),
            ("ike_no_connection_total", "MM1/AM1 from an address no connection names.", ic.no_connection),
            ("ike_half_open_dropped_total", "MM1/AM1 dropped because too many responder SAs were half-open.", ic.half_open_dropped),
            ("ike_xauth_locked_out_total", "MM1/AM1 to a remote-access gateway dropped: the source sent too many wrong XAuth passwords lately.", ic.xauth_locked_out),
            ("ike_xauth_hashed_total", "XAuth passwords checked against their SHA-512 crypt hash (the expensive check).", ld(&xl.hashed)),
            ("ike_xauth_cached_total", "XAuth passwords recognised as the user's last one that verified (no hash check).", ld(&xl.cached)),
            ("ike_xauth_throttled_total", "XAuth replies left for their retransmission: over the process's rate of hash checks per second.", ld(&xl.throttled)),
            ("ike_xauth_pam_checks_total", "XAuth passwords checked by PAM (pam_authenticate and pam_acct_mgmt, on a worker thread).", ld(&xp.checks)),
            ("ike_xauth_pam_answered_total", "XAuth replies answered from the result of a PAM check of the same user and password.", ld(&xp.answered)),
            ("ike_xauth_pam_busy_total", "XAuth replies left for their retransmission while their PAM check was queued or running.", ld(&xp.busy)),
            ("ike_xauth_pam_queue_full_total", "XAuth replies left for their retransmission without a PAM check: the queue of checks was full.", ld(&xp.queue_full)),
            ("ike_xauth_pam_errors_total", "PAM checks that failed by an error of PAM itself (module, service file), answered as rejections.", ld(&xp.errors)),
            ("ike_half_open_replaced_total", "Half-open responder SAs that never heard back, replaced by a newer MM1/AM1 from the same peer address.", ic.half_open_replaced),
            ("ike_duplicates_total", "Peer retransmissions answered from the reply cache.", ic.duplicates),
            ("ike_bad_hash_total", "Protected ISAKMP messages whose HASH did not verify.", ic.bad_hash),
            ("ike_unexpected_total", "ISAKMP messages that did not fit the exchange's state.", ic.unexpected),
            ("ike_recovery_triggers_total", "ESP with an unknown SPI or IKE with unknown cookies from a configured peer.", ic.recovery_triggers),
            ("ike_recovery_actions_total", "Invalid-SPI recovery actions: INVALID-SPI sent or phase 1 started.", ic.recovery_actions),
            ("ike_fragments_received_total", "IKEv1 fragments (FRAG payload) received.", ic.fragments_received),
            ("ike_fragments_reassembled_total", "Phase 1 messages reassembled from IKEv1 fragments.", ic.fragments_reassembled),
            ("ike_fragments_dropped_total", "IKEv1 fragments not taken (unknown SA, fragmentation off, duplicate, limits, timeouts).", ic.fragments_dropped),
            ("ike_fragments_over_limit_total", "IKEv1 fragments dropped at a reassembly limit (number, size, reassemblies in progress).", ic.fragments_over_limit),
            ("ike_fragment_timeouts_total", "Incomplete IKEv1 reassemblies freed at their timeout.", ic.fragment_timeouts),
            ("ike_fragments_sent_total", "IKEv1 fragments sent.", ic.fragments_sent),
            ("ike_dh_pool_ready_total", "Diffie-Hellman key pairs taken ready from the pool ([daemon] dh_pool).", dh_ready),
            ("ike_dh_pool_inline_total", "Diffie-Hellman key pairs made on the IKE thread while a pool was configured but empty.", dh_inline),
            ("ike_dh_jobs_total", "Diffie-Hellman shared secrets and phase 1 keys computed by the dh_workers threads.", self.endpoint.dh_jobs_total()),
            ("esp_unknown_spi_total", "Inbound ESP packets whose SPI matched no SA.", g.unknown_spi),
            ("esp_unknown_sa_total", "Outbound packets naming no installed SA.", g.unknown_sa),
            ("esp_malformed_total", "Inbound ESP packets too short to carry an SPI.", g.malformed),
            ("esp_no_policy_total", "Packets read from a tunnel interface that no installed SA covers.", ld(&io.no_policy)),
            ("esp_spoofed_total", "Decapsulated packets a shared tunnel interface refused: their inner source is not routed to their connection.", ld(&io.spoofed)),
            ("esp_send_errors_total", "ESP packets the kernel refused to send.", ld(&io.send_errors)),
            ("tun_write_errors_total", "Decrypted packets the tunnel interface refused.", ld(&io.tun_write_errors)),
            ("udp4500_malformed_total", "UDP 4500 payloads that were neither IKE, ESP nor keepalives.", ld(&io.malformed_udp)),
            ("esp_too_big_total", "Inner IPv6 packets dropped as too big for the tunnel.", ld(&io.too_big)),
            ("icmpv6_packet_too_big_sent_total", "ICMPv6 Packet Too Big messages sent back to inner senders.", ld(&io.ptb_sent)),
            ("ike_queue_dropped_total", "IKE datagrams from UDP 4500 dropped because the queue to the control loop was full.", ld(&io.ike_queue_dropped)),
        ];
        metrics::render(&Snapshot {
            uptime_s: now.saturating_duration_since(self.started).as_secs(),
            conns,
            unassigned: self.events.unassigned.clone(),
            process,
        })
    }
}

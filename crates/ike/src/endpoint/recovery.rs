//! Recovery after a peer restarts, and the rules that keep one ISAKMP SA per connection.
//!
//! Invalid-SPI recovery (the idea of Cisco's feature of that name): ESP with an unknown SPI or
//! IKE with unknown cookies from a configured peer means one side lost its SAs. We act, at most
//! once per `Settings::recovery_interval` per connection: over an established ISAKMP SA we send
//! a protected INVALID-SPI (RFC 2408 §3.14.1), so the peer drops that SA and negotiates a new
//! one; without one we start phase 1 ourselves, with INITIAL-CONTACT (RFC 2407 §4.6.3.3), so the
//! peer drops its stale SAs at once. Nothing unauthenticated is trusted: the worst a spoofed
//! packet causes is one such notify or phase 1 per interval; SAs are dropped only on an
//! authenticated INVALID-SPI or INITIAL-CONTACT.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::Endpoint;
use crate::context::Datagram;
use crate::event::{ConnId, Event, Role};
use crate::sa::{IkeSa, Phase1State};
use crate::wire::{Notification, NotifyType, Payload, ProtocolId, IPSEC_DOI};

/// ISAKMP SAs of one connection established within this time of each other are simultaneous
/// negotiations (both peers initiating at once) and are both kept; an SA established later
/// than that supersedes the older one, as strongSwan's reauthentication does.
const SIMULTANEOUS: Duration = Duration::from_secs(10);

/// Inbound SPIs of removed pairs remembered (no INVALID-SPI for stragglers under them).
const REMOVED_SPIS: usize = 64;

/// Initiator cookies of removed ISAKMP SAs remembered.
const REMOVED_COOKIES: usize = 64;

/// What arrived that no SA of ours knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unknown {
    Spi(u32),
    Cookies,
}

impl Endpoint {
    /// The data plane received ESP whose SPI matches no SA from `remote` (on `local`, when it
    /// knows it). The driver reports these rate-limited; the endpoint limits itself again.
    pub fn handle_unknown_spi(
        &mut self,
        now: Instant,
        local: Option<IpAddr>,
        remote: IpAddr,
        spi: u32,
    ) {
        self.recover(now, local, remote, Unknown::Spi(spi));
    }

    /// An ISAKMP message with cookies of no SA we know (already counted as `unknown_sa`).
    pub(super) fn unknown_cookies(&mut self, now: Instant, d: &Datagram) {
        // Retransmissions of a negotiation we ended (a wrong PSK, say) are no lost SA.
        let icookie = d.data.get(..8).and_then(|c| <[u8; 8]>::try_from(c).ok());
        if icookie.is_some_and(|c| self.removed_cookies.contains(&c)) {
            return;
        }
        self.recover(now, Some(d.local.ip()), d.remote.ip(), Unknown::Cookies);
    }

    /// On a gateway connection, the outer address and port of `sa`'s client: its SAs are
    /// only ever related to that client's other SAs (issue 14). None on other connections.
    pub(super) fn client_of(&self, sa: &IkeSa) -> Option<std::net::SocketAddr> {
        client_of(&self.env.conns, sa)
    }

    /// Remembers the initiator cookie of an ISAKMP SA this endpoint removed.
    pub(super) fn note_removed_cookie(&mut self, initiator_cookie: [u8; 8]) {
        if self.removed_cookies.len() >= REMOVED_COOKIES {
            self.removed_cookies.pop_front();
        }
        self.removed_cookies.push_back(initiator_cookie);
    }

    fn recover(&mut self, now: Instant, local: Option<IpAddr>, remote: IpAddr, what: Unknown) {
        let Some(conn) = self.env.conn_for(local, remote) else {
            return;
        };
        self.counters.recovery_triggers += 1;
        if !self
            .env
            .conns
            .get(conn)
            .is_some_and(|c| c.invalid_spi_recovery && c.gateway.is_none())
        {
            return;
        }
        if self.recovery_at.get(&conn).is_some_and(|t| {
            t.checked_add(self.env.settings.recovery_interval)
                .is_none_or(|next| now < next)
        }) {
            return;
        }
        let newest = self
            .sas
            .of_conn(conn)
            .filter(|(_, s)| s.is_established())
            .max_by_key(|(_, s)| s.established_at)
            .map(|(k, _)| *k);
        let action = match (newest, what) {
            // A pair we removed lately: stragglers, not a peer that lost its SAs.
            (Some(_), Unknown::Spi(spi)) if self.removed_spis.contains(&spi) => return,
            (Some(key), Unknown::Spi(spi)) => {
                if !self.send_invalid_spi(now, key, spi) {
                    return;
                }
                format!("ESP with unknown SPI {spi:08x} from {remote}: sent INVALID-SPI")
            }
            // Our SAs with the peer are up: unknown cookies are an old SA of the peer's that
            // it will delete or let expire, or forged.
            (Some(_), Unknown::Cookies) => return,
            (None, what) => {
                if self.negotiating(conn) {
                    return;
                }
                if self.start(now, conn, None).is_none() {
                    return;
                }
                let what = match what {
                    Unknown::Spi(spi) => format!("ESP with unknown SPI {spi:08x}"),
                    Unknown::Cookies => "IKE with unknown cookies".to_string(),
                };
                format!("{what} from {remote} and no ISAKMP SA: initiating phase 1 with INITIAL-CONTACT")
            }
        };
        self.recovery_at.insert(conn, now);
        self.counters.recovery_actions += 1;
        self.env.out.events.push_back(Event::Recovery {
            conn,
            peer: remote,
            action,
        });
    }

    /// Remembers the inbound SPI of a pair the data plane is told to remove or drain.
    pub(super) fn note_removed_spi(&mut self, e: &Event) {
        if let Event::ChildSaDeleted { inbound_spi, .. }
        | Event::ChildSaDraining { inbound_spi, .. } = e
        {
            if self.removed_spis.len() >= REMOVED_SPIS {
                self.removed_spis.pop_front();
            }
            self.removed_spis.push_back(*inbound_spi);
        }
    }

    /// A phase 1 of ours with the connection is under way, or one the peer started has
    /// progressed past its first answer (a spoofed MM1 alone does not hold recovery back).
    fn negotiating(&self, conn: ConnId) -> bool {
        self.sas.of_conn(conn).any(|(_, s)| {
            !matches!(s.state(), Phase1State::Established | Phase1State::Dead)
                && (s.role == Role::Initiator || !s.awaits_first_answer())
        })
    }

    /// Sends (or holds, see `send_unsolicited`) a protected INVALID-SPI notify for `spi` over
    /// the ISAKMP SA `key`.
    fn send_invalid_spi(&mut self, now: Instant, key: [u8; 8], spi: u32) -> bool {
        let Some(sa) = self.sas.get_mut(&key) else {
            return false;
        };
        let Some(mut ctx) = self.env.ctx(now, sa.conn) else {
            return false;
        };
        let n = Payload::Notification(Notification {
            doi: IPSEC_DOI,
            protocol: ProtocolId::ESP,
            notify_type: NotifyType::INVALID_SPI,
            spi: spi.to_be_bytes().to_vec(),
            data: Vec::new(),
        });
        let Some(keys) = sa.keyed() else {
            return false;
        };
        sa.send_unsolicited(&mut ctx, &keys, vec![n]);
        true
    }

    /// Acts on authenticated INVALID-SPI notifies received on `key`: the IPsec SA pair whose
    /// outbound SPI the peer does not know is removed (from whichever ISAKMP SA of the
    /// connection holds it) and negotiated again over `key`.
    pub(super) fn act_on_invalid_spi(&mut self, now: Instant, key: [u8; 8]) {
        let Some(sa) = self.sas.get_mut(&key) else {
            return;
        };
        if sa.invalid_spi_received.is_empty() {
            return;
        }
        let spis = std::mem::take(&mut sa.invalid_spi_received);
        let (conn, cookies) = (sa.conn, sa.cookies);
        for spi in spis {
            let holder = self
                .sas
                .of_conn(conn)
                .find(|(_, s)| s.children.iter().any(|c| c.spi_out == spi))
                .map(|(k, _)| *k);
            let Some(holder) = holder else {
                self.env.out.events.push_back(Event::NotifyReceived {
                    conn: Some(conn),
                    cookies,
                    notify: NotifyType::INVALID_SPI,
                    // Only protected INVALID-SPI notifies are queued (informational.rs).
                    authenticated: true,
                });
                continue;
            };
            let mut removed = None;
            if let Some(h) = self.sas.get_mut(&holder) {
                if let Some(i) = h.children.iter().position(|c| c.spi_out == spi) {
                    let c = h.children.swap_remove(i);
                    removed = Some((c.child_index, c.spi_in, c.spi_out));
                }
            }
            let Some((index, spi_in, spi_out)) = removed else {
                continue;
            };
            self.env.out.events.push_back(Event::ChildSaDeleted {
                conn,
                inbound_spi: spi_in,
                outbound_spi: spi_out,
                reason: "peer sent INVALID-SPI: it has no such SA".into(),
            });
            let covered = self.sas.of_conn(conn).any(|(_, s)| {
                s.children
                    .iter()
                    .any(|c| c.child_index == index && c.retire_at.is_none())
                    || s.quick_modes
                        .iter()
                        .any(|q| q.child_index == index && !q.state.is_done())
            });
            if covered {
                continue;
            }
            let Some(sa) = self.sas.get_mut(&key) else {
                return;
            };
            let Some(mut ctx) = self.env.ctx(now, conn) else {
                return;
            };
            if let Some(keys) = sa.keyed() {
                sa.quick_mode_initiate(&mut ctx, &keys, index, None);
            }
        }
    }

    /// Once `key` is established: every other established ISAKMP SA of its connection that was
    /// up more than `SIMULTANEOUS` before it is superseded (strongSwan's rule: the newest
    /// ISAKMP SA adopts the IPsec SAs, the older ones are deleted). Without this a peer's
    /// reauthentication leaves our old SA to expire with the live IPsec SAs, and rekeys by
    /// both peers multiply the ISAKMP SAs.
    pub(super) fn adopt_older(&mut self, now: Instant, key: [u8; 8]) {
        let Some(sa) = self.sas.get_mut(&key) else {
            return;
        };
        if sa.adoption_done {
            return;
        }
        sa.adoption_done = true;
        let (conn, Some(at)) = (sa.conn, sa.established_at) else {
            return;
        };
        let client = client_of(&self.env.conns, sa);
        let older: Vec<[u8; 8]> = self
            .sas
            .of_conn(conn)
            .filter(|(k, s)| {
                **k != key
                    && client.is_none_or(|c| c == s.remote)
                    && s.established_at
                        .and_then(|t| t.checked_add(SIMULTANEOUS))
                        .is_some_and(|t| t < at)
            })
            .map(|(k, _)| *k)
            .collect();
        for old in older {
            self.supersede(now, key, old);
        }
    }

    /// Of ISAKMP SAs of one connection established within `SIMULTANEOUS` of each other (both
    /// peers initiated at once), only the one with the highest cookies (initiator's, then
    /// responder's: both peers see the same) is rekeyed; the others are not, so their IPsec
    /// SAs move to the survivor's successor when it supersedes them or when they expire.
    /// Deterministic, so two ferrovpn peers agree; nothing is deleted early, so a peer with
    /// another rule (strongSwan: the newest adopts) loses nothing either.
    pub(super) fn yields_to_simultaneous(&self, key: [u8; 8]) -> bool {
        let Some(sa) = self.sas.get(&key) else {
            return false;
        };
        let Some(at) = sa.established_at else {
            return false;
        };
        let rank = |c: &crate::event::Cookies| (c.initiator_spi, c.responder_spi);
        let client = self.client_of(sa);
        self.sas.of_conn(sa.conn).any(|(k, o)| {
            *k != key
                && client.is_none_or(|c| c == o.remote)
                && o.is_established()
                && o.established_at
                    .is_some_and(|t| t.max(at).saturating_duration_since(t.min(at)) <= SIMULTANEOUS)
                && rank(&o.cookies) > rank(&sa.cookies)
        })
    }

    /// An ISAKMP SA about to expire hands its IPsec SAs to another established ISAKMP SA of
    /// its connection (RFC 2409 §5.7: they do not depend on it), as a deleted one does.
    pub(super) fn rehome_before_expiry(&mut self, now: Instant, key: [u8; 8]) {
        let Some(sa) = self.sas.get(&key) else {
            return;
        };
        let expiring = sa
            .established_at
            .and_then(|t| t.checked_add(sa.lifetime))
            .is_some_and(|end| now >= end);
        if !expiring || sa.children.is_empty() {
            return;
        }
        let conn = sa.conn;
        let client = self.client_of(sa);
        let heir = self
            .sas
            .of_conn(conn)
            .filter(|(k, s)| {
                **k != key
                    && client.is_none_or(|c| c == s.remote)
                    && s.is_established()
                    && s.established_at
                        .and_then(|t| t.checked_add(s.lifetime))
                        .is_some_and(|end| now < end)
            })
            .max_by_key(|(_, s)| s.established_at)
            .map(|(k, _)| *k);
        // Else the phase 1 renewing this one, still under way (slow on a lossy path): it
        // takes the pairs when it is up, and the old SA ends without a DELETE, which would make
        // strongSwan delete the pairs before the new SA can adopt them. If the renewal fails,
        // the pairs go with it (`reap`).
        let renewal = || {
            self.replaces
                .iter()
                .find(|(new, old)| {
                    **old == key
                        && self
                            .sas
                            .get(*new)
                            .is_some_and(|s| s.state() != Phase1State::Dead)
                })
                .map(|(new, _)| *new)
        };
        let (Some(heir), handed_over) = (heir.or_else(renewal), heir.is_none()) else {
            return;
        };
        let (moved, assigned) = self
            .sas
            .get_mut(&key)
            .map(|s| {
                s.children_handed_over = handed_over;
                (std::mem::take(&mut s.children), s.assigned_local.clone())
            })
            .unwrap_or_default();
        if let Some(h) = self.sas.get_mut(&heir) {
            h.children.extend(moved);
            // A remote-access client keeps its address for the moved pairs' rekeys, as in
            // `supersede`.
            if h.assigned_local.is_empty() {
                h.assigned_local = assigned;
            }
        }
    }

    /// True when the ISAKMP SA with this initiator cookie replaced another of its connection
    /// (our rekey or the peer's reauthentication): what `ike_rekeys_total` counts.
    pub fn replaced_another(&self, initiator_spi: &[u8; 8]) -> bool {
        self.sas
            .get(initiator_spi)
            .is_some_and(|s| s.replaced_other || s.is_rekey)
    }
}

/// See [`Endpoint::client_of`].
fn client_of(
    conns: &[crate::config::ConnectionConfig],
    sa: &IkeSa,
) -> Option<std::net::SocketAddr> {
    conns
        .get(sa.conn)
        .and_then(|c| c.gateway.as_ref())
        .map(|_| sa.remote)
}

//! `ferrovpn initiate`, `terminate` and `rekey` of one connection, as swanctl's --initiate,
//! --terminate and --rekey: the endpoint acts at once (ike's `endpoint::control`), the answer
//! waits until the tunnel is up, the new pairs are installed, a failure, or the timeout.

use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use ferrovpn_ike::endpoint::control::ControlError;
use tracing::info;

use super::control::{ConnOp, Outcome};
use super::pending::Pending;
use super::state::Daemon;

impl Daemon {
    /// Carries out `op` on the connection `name`; answers now or adds to `pending`.
    pub(super) fn conn_request(
        &mut self,
        op: ConnOp,
        name: &str,
        timeout: Duration,
        reply: Sender<Outcome>,
    ) {
        let now = Instant::now();
        let Some(conn) = self.endpoint.find_connection(name) else {
            let names: Vec<&str> = self
                .conns
                .iter()
                .enumerate()
                .filter(|(i, _)| !self.endpoint.is_removed(*i))
                .map(|(_, c)| c.cfg.name.as_str())
                .collect();
            let _ = reply.send(Outcome::UnknownConnection(format!(
                "no connection named {name:?} (configured: {})",
                names.join(", ")
            )));
            return;
        };
        let failures = self.conns.get(conn).map_or(0, |c| c.failures);
        let mut pending = Pending {
            conn,
            op,
            deadline: now + timeout,
            timeout,
            failures,
            old_spis: Vec::new(),
            want: 0,
            reply,
        };
        match op {
            ConnOp::Initiate => {
                if let Some(c) = self.conns.get_mut(conn) {
                    c.held = false;
                    c.retry_at = None;
                    c.pairs_retry_at = None;
                    c.backoff = super::conn::FIRST_BACKOFF;
                }
                match self.endpoint.initiate_now(now, conn) {
                    Ok(Some(cookies)) => {
                        info!(conn = %name, "initiating {cookies} (operator request)")
                    }
                    Ok(None) => {}
                    Err(e) => return self.answer_error(pending.reply, name, e),
                }
            }
            ConnOp::Terminate => {
                if let Some(c) = self.conns.get_mut(conn) {
                    c.held = true;
                    c.retry_at = None;
                    c.pairs_retry_at = None;
                }
                let t = match self.endpoint.terminate(now, conn) {
                    Ok(t) => t,
                    Err(e) => return self.answer_error(pending.reply, name, e),
                };
                self.flush();
                info!(conn = %name, "terminated by the operator: {} ISAKMP and {} IPsec SA pairs deleted", t.ike_sas, t.ipsec_sas);
                let o = if t.ike_sas == 0 && t.ipsec_sas == 0 {
                    Outcome::NotUp(format!("{name} was not up; it stays down until `ferrovpn initiate {name}` or the peer initiates"))
                } else {
                    Outcome::Done(format!(
                        "{name}: deleted {} ISAKMP SA(s) and {} IPsec SA pair(s), the peer was told; it stays down until `ferrovpn initiate {name}` or the peer initiates",
                        t.ike_sas, t.ipsec_sas
                    ))
                };
                let _ = pending.reply.send(o);
                return;
            }
            ConnOp::Rekey => {
                pending.old_spis = self
                    .conns
                    .get(conn)
                    .map(|c| c.pairs.iter().map(|p| p.child.inbound.spi).collect())
                    .unwrap_or_default();
                match self.endpoint.rekey(now, conn) {
                    Ok(0) => {
                        let _ = pending.reply.send(Outcome::Done(format!(
                            "{name}: a Quick Mode is already under way for every pair"
                        )));
                        return;
                    }
                    Ok(n) => {
                        info!(conn = %name, "rekeying {n} IPsec SA pair(s) (operator request)");
                        pending.want = n;
                    }
                    Err(e) => return self.answer_error(pending.reply, name, e),
                }
            }
        }
        self.flush();
        self.pending.push(pending);
        self.check_pending(now);
    }

    fn answer_error(&self, reply: Sender<Outcome>, name: &str, e: ControlError) {
        let o = match e {
            ControlError::UnknownConnection => {
                Outcome::UnknownConnection(format!("no connection named {name:?}"))
            }
            ControlError::NotUp => Outcome::NotUp(format!(
                "{name} is not up (no established ISAKMP SA); `ferrovpn initiate {name}` first"
            )),
        };
        let _ = reply.send(o);
    }

    /// Answers every request waiting on `conn` with a failure.
    pub(super) fn abandon_pending(&mut self, conn: usize, why: &str) {
        let name = self.conn_name(conn).to_owned();
        let (gone, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.conn == conn);
        self.pending = keep;
        for p in gone {
            let _ = p.reply.send(Outcome::Failed(format!("{name}: {why}")));
        }
    }

    /// Answers the requests that are done, failed or out of time.
    pub(super) fn check_pending(&mut self, now: Instant) {
        let mut i = 0;
        while let Some(p) = self.pending.get(i) {
            match self.outcome_of(p, now) {
                Some(o) => {
                    let p = self.pending.swap_remove(i);
                    let _ = p.reply.send(o);
                }
                None => i += 1,
            }
        }
    }

    fn outcome_of(&self, p: &Pending, now: Instant) -> Option<Outcome> {
        let name = self.conn_name(p.conn).to_owned();
        let c = self.conns.get(p.conn)?;
        // A remote-access client negotiates the pairs of the families it got an address of.
        let assigned = |v6: bool| {
            c.cfg.remote_access.is_none()
                || c.mode_config.as_ref().is_none_or(|s| {
                    if v6 {
                        s.ip6_address.is_some()
                    } else {
                        s.ip4_address.is_some()
                    }
                })
        };
        let wanted = self.endpoint.connections().get(p.conn).map_or(1, |cfg| {
            cfg.children
                .iter()
                .filter(|ch| assigned(ch.local_ts.addr.is_ipv6()))
                .count()
                .max(1)
        });
        let done = match p.op {
            ConnOp::Initiate => self.endpoint.is_up(p.conn) && c.pairs.len() >= wanted,
            ConnOp::Rekey => {
                c.pairs
                    .iter()
                    .filter(|x| !p.old_spis.contains(&x.child.inbound.spi))
                    .count()
                    >= p.want
            }
            ConnOp::Terminate => true,
        };
        if done {
            // A rekey names its new pairs only; the ones it replaces drain and go.
            let spis: Vec<String> = c
                .pairs
                .iter()
                .filter(|x| p.op != ConnOp::Rekey || !p.old_spis.contains(&x.child.inbound.spi))
                .map(|x| format!("{:08x}/{:08x}", x.child.inbound.spi, x.child.outbound.spi))
                .collect();
            let what = match p.op {
                ConnOp::Rekey => "rekeyed",
                _ => "up",
            };
            return Some(Outcome::Done(format!(
                "{name} {what}: IPsec SA pair(s) in/out {}",
                spis.join(", ")
            )));
        }
        if c.failures > p.failures {
            return Some(Outcome::Failed(format!(
                "{name}: {}",
                c.last_failure.as_deref().unwrap_or("negotiation failed")
            )));
        }
        if now >= p.deadline {
            return Some(Outcome::TimedOut(format!(
                "{name}: not {} after {}s; it may still complete (see `ferrovpn status`, `ferrovpn diagnose {name}`)",
                match p.op {
                    ConnOp::Rekey => "rekeyed",
                    _ => "up",
                },
                p.timeout.as_secs()
            )));
        }
        None
    }
}

//! Acting on the IKE endpoint's events: log lines operators grep for, the history record,
//! retries with backoff, and the SA installs and removals they call for.

use std::time::Instant;

use ferrovpn_ike::{Event, Failure};
use tracing::{debug, error, info, warn};

use super::state::Daemon;
use crate::config::Start;

impl Daemon {
    /// Puts what the gateway assigned on the connection's TUN device: the addresses (IPv4 /32,
    /// IPv6 /128; the device goes with us, and so do they), the routes (the configured ones, the
    /// IPv4 default replaced by the Unity split-include networks when the gateway sent some),
    /// and DNS through systemd-resolved or the hook.
    fn apply_mode_config(&mut self, conn: usize, s: &ferrovpn_ike::wire::ModeCfgSettings) {
        use crate::ipnet::IfAddr;
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        c.mode_config = Some(s.clone());
        if s.pfs.is_some_and(|v| v != 0) && c.cfg.esp.iter().all(|p| p.pfs_group.is_none()) {
            warn!(conn = %c.cfg.name, "the gateway asks for PFS in Quick Mode (UNITY_PFS) but esp names no DH group: add one (e.g. aes256-sha256-modp2048) if it refuses our Quick Mode");
        }
        let wanted: Vec<IfAddr> = s
            .ip4_address
            .map(|a| IfAddr {
                addr: a.into(),
                prefix_len: 32,
            })
            .into_iter()
            .chain(s.ip6_address.map(|(a, _)| IfAddr {
                addr: a.into(),
                prefix_len: 128,
            }))
            .collect();
        if wanted.is_empty() {
            return;
        }
        if let crate::config::Tunnel::RouteBased(r) = &c.cfg.tunnel {
            for (v6, got) in [
                (false, s.ip4_address.is_some()),
                (true, s.ip6_address.is_some()),
            ] {
                if r.selector(v6).is_some() && !got {
                    warn!(conn = %c.cfg.name, "the gateway assigned no {} address: the {} pair is not negotiated", if v6 { "IPv6" } else { "IPv4" }, if v6 { "IPv6" } else { "IPv4" });
                }
            }
        }
        let device = super::setup::tun_name(&c.cfg, conn);
        let ifindex = c.ifindex;
        for old in c.addresses.clone() {
            if !wanted.contains(&old) {
                if let Err(e) = self.nl.del_address(ifindex, old) {
                    warn!(conn = %c.cfg.name, "removing the previous address {}/{} from {device}: {e}", old.addr, old.prefix_len);
                }
                c.addresses.retain(|a| *a != old);
            }
        }
        for new in wanted {
            if c.addresses.contains(&new) {
                continue;
            }
            match self.nl.add_address(ifindex, new) {
                Ok(()) => {
                    info!(conn = %c.cfg.name, "address {}/{} assigned by the gateway on {device}", new.addr, new.prefix_len);
                    c.addresses.push(new);
                }
                Err(e) => error!(conn = %c.cfg.name, "address {} on {device}: {e}", new.addr),
            }
        }
        self.reroute(conn, s);
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let hook = c
            .cfg
            .remote_access
            .as_ref()
            .and_then(|r| r.dns_hook.clone());
        let name = c.cfg.name.clone();
        if crate::remote_access::resolved_runs() {
            for args in crate::remote_access::resolvectl_commands(&device, s) {
                crate::remote_access::spawn_logged(
                    std::path::Path::new("resolvectl"),
                    &args,
                    &[],
                    format!("resolvectl {}", args.join(" ")),
                );
            }
        } else if let Some(h) = hook {
            let env = crate::remote_access::hook_env(&name, &device, "connect", s);
            crate::remote_access::spawn_logged(&h, &[], &env, format!("dns_hook {}", h.display()));
        } else if !s.ip4_dns.is_empty() || !s.ip6_dns.is_empty() {
            warn!(conn = %name, "the gateway assigned DNS servers, but systemd-resolved is not running and no dns_hook is set: DNS left unchanged (ferrovpn never rewrites /etc/resolv.conf)");
        }
    }

    /// A client's routes after Mode Config ([`crate::remote_access::client_routes`]): what
    /// differs from the installed ones is removed and added; the rest stays untouched.
    fn reroute(&mut self, conn: usize, s: &ferrovpn_ike::wire::ModeCfgSettings) {
        use crate::config::Tunnel;
        use crate::netlink::Change;
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let Tunnel::RouteBased(r) = &c.cfg.tunnel else {
            return;
        };
        let (routes, warnings) =
            crate::remote_access::client_routes(&r.routes, s, c.cfg.remote_addr);
        for w in warnings {
            warn!(conn = %c.cfg.name, "{w}");
        }
        let Some(installed) = c.routing.as_mut() else {
            return;
        };
        let plan = crate::routing::plan(c.ifindex, &routes, &self.policy_routing);
        if plan == installed.changes {
            return;
        }
        let gone: Vec<Change> = installed
            .changes
            .iter()
            .filter(|x| !plan.contains(x))
            .cloned()
            .collect();
        for x in gone.iter().rev() {
            if let Err(e) = self.nl.undo(x) {
                warn!(conn = %c.cfg.name, "removing {x}: {e}");
            }
        }
        installed.changes.retain(|x| plan.contains(x));
        let mut rules = false;
        for x in plan {
            if installed.changes.contains(&x) {
                continue;
            }
            let r = match x {
                Change::Route(r) => self.nl.add_route(r),
                Change::Rule(r) => self.nl.add_rule(r),
                Change::Address { ifindex, addr } => self.nl.add_address(ifindex, addr),
            };
            match r {
                Ok(()) => {
                    if let Change::Rule(r) = x {
                        self.run_state.record.add_rule(r);
                        rules = true;
                    }
                    installed.changes.push(x);
                }
                Err(e) => error!(conn = %c.cfg.name, "adding {x}: {e}"),
            }
        }
        if rules {
            if let Err(e) = self.run_state.save() {
                warn!(conn = %c.cfg.name, "saving the run state: {e}");
            }
        }
        info!(conn = %c.cfg.name, "routes into the tunnel: {}", routes.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "));
    }

    pub(super) fn conn_name(&self, i: usize) -> &str {
        self.conns.get(i).map_or("", |c| c.cfg.name.as_str())
    }

    pub(super) fn on_event(&mut self, e: Event) {
        self.history.record(Instant::now(), &e);
        match e {
            Event::Message(m) => {
                let conn = self
                    .conn_of_cookie(&m.cookies.initiator_spi)
                    .map(|c| self.conn_name(c))
                    .unwrap_or_default();
                info!(conn = %conn, cookies = %m.cookies, msg = m.name, message_id = %format_args!("{:08x}", m.message_id), "{m}")
            }
            Event::IkeSaEstablished {
                conn,
                cookies,
                role,
                mode,
                proposal,
                lifetime,
                peer,
                features,
                nat,
            } => {
                let forced = self
                    .conns
                    .get(conn)
                    .is_some_and(|c| c.cfg.nat_traversal == crate::config::NatTraversal::Force);
                let nat_text = match (nat.floated, forced, nat.local_behind_nat, nat.remote_behind_nat) {
                    (false, ..) => "none, IKE on UDP 500 and raw ESP",
                    (true, true, ..) => "UDP 4500 forced here (nat_traversal = \"force\"), whether or not a NAT is on the path",
                    (true, false, true, true) => "both sides behind a NAT: IKE and ESP on UDP 4500",
                    (true, false, true, false) => "we are behind a NAT: IKE and ESP on UDP 4500",
                    (true, false, false, _) => "the peer is behind a NAT (or forces encapsulation, as strongSwan's kernel-libipsec does): IKE and ESP on UDP 4500",
                };
                info!(
                    conn = %self.conn_name(conn),
                    cookies = %cookies,
                    "IKE SA established ({} as {:?}) {cookies} with {peer}: {proposal}, lifetime {}s, NAT: {nat_text}; peer DPD {}",
                    mode.name(),
                    role,
                    lifetime.as_secs(),
                    if features.dpd { "yes" } else { "no" }
                );
                if let Some(c) = self.conns.get_mut(conn) {
                    c.backoff = super::conn::FIRST_BACKOFF;
                    c.last_failure = None;
                    // The peer brought it up again: a terminate's hold ends.
                    c.held = false;
                }
            }
            Event::IkeSaFailed {
                conn,
                cookies,
                peer,
                reason,
                renewal,
            } => {
                let name = conn
                    .map(|c| self.conn_name(c).to_owned())
                    .unwrap_or_default();
                if matches!(reason, Failure::Abandoned { .. }) {
                    // Unauthenticated (a spoofed MM1 ends so): not a failure of the connection.
                    debug!(conn = %name, cookies = %cookies, "half-open IKE SA {cookies} with {peer} forgotten: {reason}");
                    return;
                }
                let still_up = conn.is_some_and(|c| self.endpoint.is_up(c));
                if renewal && still_up {
                    warn!(conn = %name, cookies = %cookies, "renewal of the ISAKMP SA with {peer} failed (IKE SA {cookies}): {reason}; the current ISAKMP SA stays in use until it ends");
                } else if renewal {
                    error!(conn = %name, cookies = %cookies, "renewal of the ISAKMP SA with {peer} failed (IKE SA {cookies}): {reason}; the ISAKMP SA it was to renew has ended");
                } else {
                    error!(conn = %name, cookies = %cookies, "IKE SA {cookies} with {peer} failed: {reason}");
                }
                if let Some(c) = conn.and_then(|c| self.conns.get_mut(c)) {
                    c.last_failure = Some(if renewal {
                        format!("renewal: {reason}")
                    } else {
                        reason.to_string()
                    });
                    c.failures += 1;
                    if let Failure::RemoteAccess(
                        ferrovpn_ike::event::RemoteAccessFailure::XauthRejected { .. }
                        | ferrovpn_ike::event::RemoteAccessFailure::XauthNotConfigured
                        | ferrovpn_ike::event::RemoteAccessFailure::XauthUnsupported { .. },
                    ) = reason
                    {
                        // Retrying a rejected password would only lock the account.
                        c.held = true;
                        let typed = c
                            .cfg
                            .remote_access
                            .as_ref()
                            .and_then(|r| r.xauth.as_ref())
                            .is_some_and(|x| x.password_file.is_none());
                        if typed {
                            error!(conn = %name, "not retried: the password typed at `ferrovpn up` was refused; stop ferrovpn and run `ferrovpn up` again to type it again");
                        } else {
                            error!(conn = %name, "not retried: fix the XAuth credentials (xauth_user, xauth_password_file), then run: ferrovpn initiate {name}");
                        }
                    }
                }
                if let Some(c) = conn {
                    self.schedule_retry(c);
                }
            }
            Event::IkeSaDeleted {
                conn,
                cookies,
                reason,
            } => {
                info!(conn = %self.conn_name(conn), cookies = %cookies, "IKE SA {cookies} deleted: {reason}");
                self.schedule_retry(conn);
            }
            Event::PeerDead { conn, cookies } => {
                warn!(conn = %self.conn_name(conn), cookies = %cookies, "peer dead (DPD) on IKE SA {cookies}");
                let mut retry = None;
                if let Some(c) = self.conns.get_mut(conn) {
                    c.last_failure = Some("peer dead (DPD)".into());
                    // RFC 3706 §5.5 leaves the action open; like strongSwan's dpd_action=restart
                    // an initiator negotiates again at once (backoff applies if that fails).
                    if c.cfg.start == Start::Initiate && !self.stop && !c.held {
                        let t = Instant::now();
                        c.retry_at = Some(t);
                        retry = Some(t);
                        info!(conn = %c.cfg.name, "peer dead: initiating again now");
                    }
                }
                if let Some(t) = retry {
                    self.conn_timer_set(t);
                }
            }
            Event::ChildSaInboundReady(child) => self.install_inbound(child),
            Event::ChildSaEstablished(child) => self.install(child),
            Event::ChildSaFailed {
                conn,
                cookies,
                message_id,
                reason,
            } => {
                error!(conn = %self.conn_name(conn), cookies = %cookies, message_id = %format_args!("{message_id:08x}"), "Quick Mode {message_id:08x} on {cookies} failed: {reason}");
                if let Some(i) = self
                    .early_inbound
                    .iter()
                    .position(|e| e.0 == conn && e.1 == message_id)
                {
                    let (_, _, h) = self.early_inbound.swap_remove(i);
                    if let Ok(mut m) = self.shared.inbound.write() {
                        m.remove(&h);
                    }
                    let _ = self.sad.remove(h);
                }
                if let Some(c) = self.conns.get_mut(conn) {
                    c.last_failure = Some(reason.to_string());
                    c.failures += 1;
                }
                // A refused Quick Mode leaves its pair without an SA on a live ISAKMP SA, which
                // an initiating connection negotiates again with the backoff (the peer may fix
                // its side without touching phase 1, e.g. a Cisco ACL edit).
                self.schedule_children_retry(conn);
            }
            Event::ChildSaDraining {
                conn,
                inbound_spi,
                outbound_spi,
            } => self.stop_sending(conn, inbound_spi, outbound_spi),
            Event::ChildSaDeleted {
                conn,
                inbound_spi,
                outbound_spi,
                reason,
            } => {
                self.uninstall(conn, inbound_spi, outbound_spi, &reason);
                self.schedule_children_retry(conn);
            }
            Event::Recovery { conn, peer, action } => {
                info!(conn = %self.conn_name(conn), peer = %peer, "invalid-SPI recovery: {action}")
            }
            Event::RemoteAccessConfigured {
                conn,
                cookies,
                settings,
            } => {
                info!(conn = %self.conn_name(conn), cookies = %cookies, "Mode Config: {}", crate::remote_access::describe(&settings));
                if let Some(b) = &settings.banner {
                    info!(conn = %self.conn_name(conn), "banner from the gateway: {b}");
                }
                self.apply_mode_config(conn, &settings);
            }
            Event::RemoteAccessClientUp {
                conn,
                cookies,
                user,
                addresses,
                peer,
            } => {
                let got: Vec<String> = addresses.iter().map(ToString::to_string).collect();
                info!(conn = %self.conn_name(conn), cookies = %cookies, peer = %peer,
                    "remote-access client {} from {peer} got {}",
                    user.as_deref().unwrap_or("(no XAuth)"), got.join(" and "));
            }
            Event::LeaseReleased {
                conn,
                cookies,
                address,
            } => {
                info!(conn = %self.conn_name(conn), cookies = %cookies, "lease of {address} released");
            }
            Event::InitialContact { conn, cookies } => {
                info!(conn = %self.conn_name(conn), cookies = %cookies, "INITIAL-CONTACT on {cookies}: the peer (re)started")
            }
            Event::CertificateRequestUnmatched {
                conn,
                cookies,
                requested,
            } => {
                warn!(conn = %self.conn_name(conn), cookies = %cookies,
                    "no certificate matches the peer's CR ({}): sending the default certificate",
                    requested.join("; "));
            }
            Event::NotifyReceived {
                conn,
                cookies,
                notify,
                authenticated,
            } => {
                let name = conn
                    .map(|c| self.conn_name(c).to_owned())
                    .unwrap_or_default();
                info!(conn = %name, cookies = %cookies, "notify {} on {cookies} ({})", notify.name(),
                    if authenticated { "authenticated" } else { "unauthenticated: recorded only" });
            }
            Event::Unprocessable {
                conn,
                cookies,
                message_id,
                message,
                reason,
                notify,
                ..
            } => {
                // The endpoint reports one per ISAKMP SA a second at most.
                let answer = notify.map_or("not answered (no notify applies)".to_string(), |n| {
                    format!("answered with {}", n.name())
                });
                warn!(conn = %self.conn_name(conn), cookies = %cookies, message_id = %format_args!("{message_id:08x}"),
                    "{message} on {cookies} mid {message_id:08x} not processed: {reason}; {answer}");
                if let Some(c) = self.conns.get_mut(conn) {
                    c.last_failure = Some(format!("{message} not processed: {reason}"));
                }
            }
            Event::LifetimeCapped {
                conn,
                cookies,
                sa,
                unit,
                theirs,
                ours,
            } => {
                // Normal, not a fault: strongSwan's default CHILD lifetime (1.1 × its rekey
                // time, 3960 s) is above our 3600 s, so a warning would greet every such peer.
                info!(conn = %self.conn_name(conn), cookies = %cookies, "{sa} {cookies}: the peer's lifetime of {theirs} {unit} is above ours; keeping {ours} {unit} (RFC 2409 4.5)");
            }
        }
    }

    /// Initiating connections come back by themselves, with backoff up to 5 minutes.
    pub(super) fn schedule_retry(&mut self, conn: usize) {
        // A replaced (rekeyed) IKE SA leaves its successor up: nothing to retry.
        if self.endpoint.is_up(conn) {
            return;
        }
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        if c.cfg.start != Start::Initiate || c.retry_at.is_some() || self.stop || c.held {
            return;
        }
        let now = Instant::now();
        let t = c.next_retry(now);
        c.retry_at = Some(t);
        info!(conn = %c.cfg.name, "will initiate again in {}s", (t - now).as_secs());
        self.conn_timer_set(t);
    }
}

impl Daemon {
    /// A configured pair of an initiating connection has no IPsec SA pair left while phase 1
    /// is up (the peer deleted it without a successor, or it expired unreplaced): it is
    /// negotiated again, as strongSwan's `closeaction = restart` does, after the phase 1 retry
    /// backoff. The backoff is reset only by a new ISAKMP SA, so a peer that deletes every
    /// pair it agrees to costs one Quick Mode per 5 s, 10 s, … up to 5 minutes.
    fn schedule_children_retry(&mut self, conn: usize) {
        if !self.endpoint.is_up(conn) {
            return;
        }
        let missing = self.endpoint.missing_pairs(conn).len();
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        if c.cfg.start != Start::Initiate
            || c.pairs_retry_at.is_some()
            || self.stop
            || c.held
            || c.removed
            || missing == 0
        {
            return;
        }
        let now = Instant::now();
        let t = c.next_retry(now);
        c.pairs_retry_at = Some(t);
        info!(conn = %c.cfg.name, "{missing} configured IPsec SA pair(s) without an SA while phase 1 is up: negotiating them again in {}s", (t - now).as_secs());
        self.conn_timer_set(t);
    }
}

impl Daemon {
    /// The data plane's lifetime events: a pair that reached its soft byte limit is rekeyed
    /// (make-before-break, as a time-driven rekey); a hard limit stopped the SA (logged).
    pub(super) fn on_lifetime_events(&mut self, now: Instant) {
        use ferrovpn_esp::LifetimeKind;
        for ev in self.sad.events().try_iter() {
            let conn = self.conns.iter().position(|c| {
                c.pairs
                    .iter()
                    .any(|p| p.inbound == ev.handle || p.outbound == ev.handle)
            });
            let Some(conn) = conn else {
                continue;
            };
            let name = self.conn_name(conn).to_owned();
            match ev.kind {
                LifetimeKind::Soft => {
                    info!(conn = %name, "ESP SA {:08x} ({:?}) reached its soft lifetime ({:?}): rekeying", ev.spi, ev.direction, ev.cause);
                    if let Err(e) = self.endpoint.rekey(now, conn) {
                        warn!(conn = %name, "ESP SA {:08x}: cannot rekey: {e}", ev.spi);
                    }
                }
                LifetimeKind::Hard => {
                    warn!(conn = %name, "ESP SA {:08x} ({:?}) reached its hard lifetime ({:?}): it carries no more traffic", ev.spi, ev.direction, ev.cause)
                }
            }
        }
    }
}

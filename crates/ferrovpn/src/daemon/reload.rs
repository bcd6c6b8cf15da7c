//! `ferrovpn reload` and SIGHUP: read the configuration file again and apply the difference
//! without touching what did not change. The new file is checked first (as `ferrovpn check`);
//! an invalid one, or one that changes what only a restart can change (any `[daemon]` key, a
//! local address without sockets, a default route when the sockets carry no fwmark), is
//! refused and nothing changes. Then, by connection name: removed connections are deleted (the
//! peer told) and their TUN device, address and routes removed; changed ones (any setting
//! differs, the pre-shared key too) are deleted and set up again under the new settings; added
//! ones are set up and started; unchanged ones keep their SAs, SPIs and counters.

use std::collections::HashSet;
use std::time::Instant;

use tracing::{info, warn};

use super::conn::ConnState;
use super::control::Outcome;
use super::dataplane::TunTable;
use super::setup;
use super::state::Daemon;
use crate::config::{Config, Connection, DaemonConfig, Severity, Start, Tunnel, XauthUsers};
use crate::convert;
use crate::routing;

/// The `[daemon]` keys whose values differ (none may change while running).
pub(super) fn daemon_changes(old: &DaemonConfig, new: &DaemonConfig) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut differs = |key, d: bool| {
        if d {
            out.push(key)
        }
    };
    differs("control_socket", old.control_socket != new.control_socket);
    differs("run_dir", old.run_dir != new.run_dir);
    differs("log_level", old.log_level != new.log_level);
    differs("workers", old.workers != new.workers);
    differs("pin_workers", old.pin_workers != new.pin_workers);
    differs("offloads", old.offloads != new.offloads);
    differs(
        "shared_interfaces",
        old.shared_interfaces != new.shared_interfaces,
    );
    differs("metrics_listen", old.metrics_listen != new.metrics_listen);
    differs("save_keys_dir", old.save_keys_dir != new.save_keys_dir);
    differs("max_half_open", old.max_half_open != new.max_half_open);
    differs("dh_pool", old.dh_pool != new.dh_pool);
    differs("dh_workers", old.dh_workers != new.dh_workers);
    differs(
        "retransmit_timeout/retransmit_base/retransmit_tries",
        old.retransmit != new.retransmit,
    );
    if out.is_empty() && old != new {
        // A key this list does not know yet: refused all the same.
        out.push("(a [daemon] key)");
    }
    out
}

/// True when nothing in the connection's settings differs (the key itself included).
pub(super) fn same(a: &Connection, b: &Connection) -> bool {
    // Debug shows every setting but the key (redacted), which is compared on its own.
    format!("{a:?}") == format!("{b:?}") && a.psk.as_bytes() == b.psk.as_bytes()
}

/// What a reload does, by name.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Plan {
    /// Running connection ids to delete.
    pub(super) removed: Vec<usize>,
    /// (running id, index in the new file).
    pub(super) changed: Vec<(usize, usize)>,
    /// Indexes in the new file.
    pub(super) added: Vec<usize>,
    pub(super) unchanged: Vec<usize>,
}

/// Compares the running connections (`None`: removed earlier) with the new file's.
pub(super) fn plan(running: &[Option<&Connection>], new: &[Connection]) -> Plan {
    let mut p = Plan::default();
    for (id, c) in running.iter().enumerate() {
        let Some(c) = c else { continue };
        match new.iter().position(|n| n.name == c.name) {
            None => p.removed.push(id),
            Some(j) if new.get(j).is_some_and(|n| same(c, n)) => p.unchanged.push(id),
            Some(j) => p.changed.push((id, j)),
        }
    }
    for (j, n) in new.iter().enumerate() {
        if !running.iter().flatten().any(|c| c.name == n.name) {
            p.added.push(j);
        }
    }
    p
}

impl Daemon {
    /// Reads the configuration file again and applies it (see the module doc).
    pub(super) fn reload(&mut self) -> Outcome {
        let Some(path) = self.config_path.clone() else {
            return Outcome::Failed("this daemon was started without a configuration file".into());
        };
        let mut new = match Config::load(&path) {
            Ok(c) => c,
            Err(e) => {
                return Outcome::Failed(format!(
                    "{}: {e}; the running configuration is unchanged",
                    path.display()
                ))
            }
        };
        let running: Vec<&Connection> = self
            .conns
            .iter()
            .filter(|c| !c.removed)
            .map(|c| &c.cfg)
            .collect();
        if let Err(why) = crate::remote_access::keep_typed_passwords(&mut new, &running) {
            return Outcome::Failed(format!("{why}; the running configuration is unchanged"));
        }
        if let Err(why) = self.reloadable(&new) {
            return Outcome::Failed(format!("{why}; the running configuration is unchanged"));
        }
        for r in &new.remarks {
            match r.severity {
                Severity::Warning => warn!("{r}"),
                Severity::Note => info!("{r}"),
            }
        }
        let running: Vec<Option<&Connection>> = self
            .conns
            .iter()
            .map(|c| (!c.removed).then_some(&c.cfg))
            .collect();
        let plan = plan(&running, &new.connections);
        let names = |ids: &mut dyn Iterator<Item = String>| ids.collect::<Vec<_>>().join(", ");
        let summary = format!(
            "added [{}], removed [{}], changed [{}], unchanged [{}]",
            names(
                &mut plan
                    .added
                    .iter()
                    .filter_map(|&j| new.connections.get(j))
                    .map(|c| c.name.clone())
            ),
            names(&mut plan.removed.iter().map(|&i| self.conn_name(i).to_owned())),
            names(
                &mut plan
                    .changed
                    .iter()
                    .map(|&(i, _)| self.conn_name(i).to_owned())
            ),
            names(&mut plan.unchanged.iter().map(|&i| self.conn_name(i).to_owned())),
        );
        let users = self.reload_users(&plan, &new);
        let summary = if users.is_empty() {
            summary
        } else {
            format!("{summary}, users [{}]", users.join("; "))
        };
        info!("reload: {summary}");
        // Unchanged connections keep their credentials: their CRL files are read again here.
        self.refresh_crls(Instant::now(), true);
        match self.apply(&plan, &new) {
            Ok(()) => Outcome::Done(summary),
            Err(e) => Outcome::Failed(format!(
                "reload partly applied ({summary}): {e}; see the log, `ferrovpn status`"
            )),
        }
    }

    /// Unchanged gateway connections take the users file as the new configuration read it
    /// (checked by `Config::load`: a broken file refused the whole reload before this), in
    /// place: clients that are up stay up, the next XAuth uses the new users. Returns
    /// `NAME: +added -removed ~changed` per connection whose users changed.
    fn reload_users(&self, plan: &Plan, new: &Config) -> Vec<String> {
        let mut out = Vec::new();
        for &id in &plan.unchanged {
            let Some(old) = self.conns.get(id) else {
                continue;
            };
            let Some(n) = new.connections.iter().find(|n| n.name == old.cfg.name) else {
                continue;
            };
            let (Some(og), Some(ng)) = (&old.cfg.gateway, &n.gateway) else {
                continue;
            };
            // PAM users live in PAM: nothing to take (a changed service is a changed connection).
            if let (
                XauthUsers::File { store, path },
                XauthUsers::File {
                    store: new_store, ..
                },
            ) = (&og.users, &ng.users)
            {
                let change = store.replace(new_store.users());
                if !change.is_empty() {
                    info!(conn = %old.cfg.name, "users_file {} read again: {} users ({change})", path.display(), store.users().len());
                    out.push(format!("{}: {change}", old.cfg.name));
                }
            }
        }
        out
    }

    /// What only a restart can change.
    fn reloadable(&self, new: &Config) -> Result<(), String> {
        let keys = daemon_changes(&self.daemon_cfg, &new.daemon);
        if !keys.is_empty() {
            return Err(format!(
                "[daemon] {} cannot change while ferrovpn runs; restart it to apply (systemctl restart ferrovpn)",
                keys.join(", ")
            ));
        }
        for c in &new.connections {
            if !self.nat_t.contains_key(&c.local_addr) {
                return Err(format!(
                    "connection {:?}: local_addr {} has no IKE/ESP sockets in this run (they are opened at start); restart ferrovpn to add a local address",
                    c.name, c.local_addr
                ));
            }
        }
        let fwmark = setup::socket_options(new, &self.policy_routing)
            .fwmark
            .is_some();
        if fwmark && !self.fwmark {
            return Err(
                "a connection now routes a default route into its tunnel, which needs the fwmark on the IKE/ESP sockets opened at start; restart ferrovpn".into(),
            );
        }
        Ok(())
    }

    fn apply(&mut self, plan: &Plan, new: &Config) -> Result<(), String> {
        let now = Instant::now();
        for &id in &plan.removed {
            let _ = self.endpoint.remove_connection(now, id);
            if let Some(c) = self.conns.get_mut(id) {
                info!(conn = %c.cfg.name, "removed by reload: SAs deleted, the peer told");
                c.removed = true;
                c.held = true;
                c.retry_at = None;
                c.pairs_retry_at = None;
            }
            self.history.set_peer(id, None);
        }
        for &(id, j) in &plan.changed {
            let Some(c) = new.connections.get(j) else {
                continue;
            };
            let _ = self
                .endpoint
                .replace_connection(now, id, convert::connection(c));
            info!(conn = %c.name, "changed by reload: SAs deleted (the peer told), set up again");
        }
        // DELETEs out, and the SAs out of the data plane, before their devices go.
        self.flush();
        for &id in plan
            .removed
            .iter()
            .chain(plan.changed.iter().map(|(id, _)| id))
        {
            self.abandon_pending(id, "the connection was changed or removed by a reload");
        }
        let gone: Vec<usize> = plan
            .removed
            .iter()
            .copied()
            .chain(plan.changed.iter().map(|&(id, _)| id))
            .collect();
        self.remove_devices(&gone);

        let mut table = {
            let t = self.shared.devices.current();
            TunTable {
                tuns: t.tuns.clone(),
                tcp_mss: t.tcp_mss.clone(),
                ptb_mtu: t.ptb_mtu.clone(),
            }
        };
        let mut result = Ok(());
        let mut start = Vec::new();
        for &(id, j) in &plan.changed {
            let Some(c) = new.connections.get(j) else {
                continue;
            };
            match self.bring_up(c, id, &mut table) {
                Ok(()) => {
                    if let Some(s) = self.conns.get_mut(id) {
                        s.cfg = c.clone();
                        s.held = false;
                        s.retry_at = None;
                        s.pairs_retry_at = None;
                        s.backoff = super::conn::FIRST_BACKOFF;
                        s.last_failure = None;
                    }
                    self.history
                        .set_peer(id, Some((c.local_addr, c.remote_addr)));
                    start.push(id);
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if result.is_ok() {
            for &j in &plan.added {
                let Some(c) = new.connections.get(j) else {
                    continue;
                };
                let id = self.conns.len();
                match self.bring_up(c, id, &mut table) {
                    Ok(()) => {
                        let got = self.endpoint.add_connection(convert::connection(c));
                        if got != id {
                            warn!(conn = %c.name, "connection ids differ: daemon {id}, endpoint {got}");
                        }
                        self.history.add_connection((c.local_addr, c.remote_addr));
                        self.events.add_connection();
                        info!(conn = %c.name, "added by reload");
                        start.push(id);
                    }
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
        }
        self.shared.devices.publish(table);
        if let Err(e) = self.run_state.save() {
            warn!("{e}");
        }
        for id in start {
            let Some(c) = self.conns.get(id) else {
                continue;
            };
            if c.cfg.start == Start::Initiate {
                info!(conn = %c.cfg.name, "initiating");
                self.endpoint.initiate(now, id);
            } else {
                info!(conn = %c.cfg.name, "waiting for the peer to initiate");
            }
        }
        self.flush();
        result
    }

    /// Sets up connection `id`'s device into `table` (a new index, or the shared device it
    /// names), its state into `conns`.
    fn bring_up(&mut self, c: &Connection, id: usize, table: &mut TunTable) -> Result<(), String> {
        let t = setup::bring_up_tunnel(
            &self.daemon_cfg,
            c,
            id,
            None,
            None,
            &self.shared_devices,
            &mut self.nl,
            &mut self.run_state,
            &self.policy_routing,
        )
        .map_err(|e| e.to_string())?;
        self.run_state.save().map_err(|e| e.to_string())?;
        let tun = {
            let mut policies = self
                .shared
                .policies
                .write()
                .unwrap_or_else(|p| p.into_inner());
            setup::place(
                c,
                id,
                t.device,
                t.ifindex,
                table,
                &mut self.shared_devices,
                &mut policies,
            )
        };
        let state = ConnState::new(c.clone(), tun, t.installed, t.addresses, t.ifindex);
        match self.conns.get_mut(id) {
            Some(s) => {
                let failures = s.failures;
                *s = state;
                s.failures = failures;
            }
            None => self.conns.push(state),
        }
        Ok(())
    }

    /// Takes the devices of these connections out of the data plane, then deletes them with
    /// their routes and rules (only devices this daemon created: same name and ifindex). A
    /// shared device loses only these connections' routes, and goes with its last user.
    fn remove_devices(&mut self, ids: &[usize]) {
        if ids.is_empty() {
            return;
        }
        let leaving: HashSet<usize> = ids.iter().copied().collect();
        let still_used = |tun: usize| {
            self.conns
                .iter()
                .enumerate()
                .any(|(i, c)| c.tun == Some(tun) && !c.removed && !leaving.contains(&i))
        };
        let tuns: HashSet<usize> = ids
            .iter()
            .filter_map(|&id| self.conns.get(id).and_then(|c| c.tun))
            .filter(|&t| !still_used(t))
            .collect();
        // Their prefixes leave the shared devices first: nothing more is sent their way.
        if let Ok(mut pol) = self.shared.policies.write() {
            for &id in ids {
                let Some(c) = self.conns.get(id) else {
                    continue;
                };
                if let (Some(tun), Tunnel::RouteBased(r)) = (c.tun, &c.cfg.tunnel) {
                    if r.shared {
                        for net in &r.routes {
                            pol.remove_route(tun, net, id);
                        }
                    }
                }
            }
            for &t in &tuns {
                pol.forget_tun(t);
            }
        }
        let t = self.shared.devices.current();
        let table = TunTable {
            tuns: t
                .tuns
                .iter()
                .enumerate()
                .map(|(i, q)| {
                    if tuns.contains(&i) {
                        Vec::new()
                    } else {
                        q.clone()
                    }
                })
                .collect(),
            tcp_mss: t.tcp_mss.clone(),
            ptb_mtu: t.ptb_mtu.clone(),
        };
        // Our own copy of the old table goes too, so only the threads' snapshots hold the
        // old queues until their next batch; the device is deleted by netlink regardless.
        drop(t);
        self.shared.devices.publish(table);
        for &id in ids {
            let Some(c) = self.conns.get_mut(id) else {
                continue;
            };
            let name = setup::tun_name(&c.cfg, id);
            if let Some(inst) = c.routing.take() {
                for e in routing::teardown(&mut self.nl, inst) {
                    warn!(conn = %c.cfg.name, "removing routes: {e}");
                }
            }
            for a in std::mem::take(&mut c.addresses) {
                if let Err(e) = self.nl.del_address(c.ifindex, a) {
                    tracing::debug!(conn = %c.cfg.name, "address {a}: {e}");
                }
            }
            let Some(tun) = c.tun.take() else {
                continue;
            };
            if !tuns.contains(&tun) {
                info!(conn = %c.cfg.name, "routes removed from shared interface {name}, which other connections still use");
                continue;
            }
            self.shared_devices.retain(|d| d.tun != tun);
            // Ours only if the name still has the ifindex we created it with.
            if crate::netlink::link_index(&name).ok() == Some(c.ifindex) {
                match self.nl.del_link(c.ifindex) {
                    Ok(()) => info!(conn = %c.cfg.name, "interface {name} removed"),
                    Err(e) => warn!(conn = %c.cfg.name, "removing interface {name}: {e}"),
                }
            }
            let ifindex = c.ifindex;
            self.run_state
                .record
                .interfaces
                .retain(|l| !(l.name == name && l.ifindex == ifindex));
        }
        if let Err(e) = self.run_state.save() {
            warn!("{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Config {
        Config::parse(text, std::path::Path::new("/tmp")).unwrap()
    }

    fn conns(text: &str) -> Vec<Connection> {
        parse(text).connections
    }

    fn conf(blocks: &[(&str, &str, &str)]) -> String {
        blocks
            .iter()
            .map(|(name, remote, esp)| {
                format!(
                    "[[connection]]\nname = \"{name}\"\nlocal_addr = \"192.0.2.1\"\nremote_addr = \"{remote}\"\npsk = \"s3cret-{name}\"\nesp = \"{esp}\"\nstart = \"respond\"\n\n[connection.policy_based]\npairs = [{{ local = \"198.51.100.0/24\", remote = \"203.0.113.0/24\" }}]\n\n"
                )
            })
            .collect()
    }

    #[test]
    fn connections_are_matched_by_name_and_any_difference_is_a_change() {
        let old = conns(&conf(&[
            ("keep", "192.0.2.2", "aes128gcm16"),
            ("gone", "192.0.2.3", "aes128gcm16"),
            ("edit", "192.0.2.4", "aes128gcm16"),
        ]));
        let new = conns(&conf(&[
            ("edit", "192.0.2.4", "aes256gcm16"),
            ("keep", "192.0.2.2", "aes128gcm16"),
            ("new", "192.0.2.5", "aes128gcm16"),
        ]));
        let running: Vec<Option<&Connection>> = old.iter().map(Some).collect();
        let p = plan(&running, &new);
        assert_eq!(
            p,
            Plan {
                removed: vec![1],
                changed: vec![(2, 0)],
                added: vec![2],
                unchanged: vec![0],
            }
        );
        // A connection removed by an earlier reload is not running: its name comes back as new.
        let running = vec![Some(&old[0]), None, Some(&old[2])];
        let again = conns(&conf(&[("gone", "192.0.2.3", "aes128gcm16")]));
        let p = plan(&running, &again);
        assert_eq!(p.added, vec![0]);
        assert_eq!(p.removed, vec![0, 2]);
    }

    #[test]
    fn a_changed_key_alone_is_a_change() {
        let a = conns(&conf(&[("x", "192.0.2.2", "aes128gcm16")]));
        let b = conns(&conf(&[("x", "192.0.2.2", "aes128gcm16")]).replace("s3cret-x", "other"));
        assert!(same(&a[0], &a[0].clone()));
        assert!(!same(&a[0], &b[0]), "only the PSK differs");
    }

    #[test]
    fn every_daemon_key_that_differs_is_named() {
        let a = parse(&conf(&[("x", "192.0.2.2", "aes128gcm16")])).daemon;
        let b = parse(&format!(
            "[daemon]\nworkers = 3\nlog_level = \"debug\"\n{}",
            conf(&[("x", "192.0.2.2", "aes128gcm16")])
        ))
        .daemon;
        assert_eq!(daemon_changes(&a, &a), Vec::<&str>::new());
        assert_eq!(daemon_changes(&a, &b), vec!["log_level", "workers"]);
    }
}

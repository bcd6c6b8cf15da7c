//! Setting the host up for a run: claiming the names it needs (the run-state record), the IKE
//! and ESP sockets of each local address, and each connection's TUN device, address, routes
//! and rules. Everything made here is recorded before the next step, so a crash leaves a
//! record the next start can act on.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;

use ferrovpn_esp::mss::MssClamp;
use mio::net::UdpSocket as MioUdp;
use tracing::{info, warn};

use super::conn::ConnState;
use super::dataplane::Policies;
use super::error::DaemonError;
use crate::config::{Config, Tunnel};
use crate::convert;
use crate::ipnet::IpNet;
use crate::netlink::{self, Change, Netlink, Rule};
use crate::routing::{self, PolicyRouting};
use crate::runstate::{self, Claim, LinkRecord, Record};
use crate::socket::{self, RawEsp, SocketOptions};
use crate::tun::{Tun, TunOptions, TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6};
use ferrovpn_esp::icmpv6::IPV6_MIN_MTU;

/// Socket buffers of the ESP/IKE sockets (see `SocketOptions::buffer_bytes`).
pub const SOCKET_BUFFER: u32 = 8 << 20;

/// Underlay MTU assumed when the interface of `local_addr` cannot be found.
pub const DEFAULT_UNDERLAY_MTU: u32 = 1500;

/// Transmit queue of a tunnel interface, in packets. The TUN default (500) drops packets when
/// the reader falls briefly behind a fast TCP sender, which then backs off on the losses.
pub const TUN_TXQUEUELEN: u32 = 1000;

/// This daemon's run-state record (see `runstate`), removed from the run directory on every
/// exit path but SIGKILL, where the next start reads it.
pub(super) struct RunState {
    pub(super) dir: std::path::PathBuf,
    pub(super) record: Record,
}

impl RunState {
    pub(super) fn save(&self) -> Result<(), DaemonError> {
        self.record
            .save(&self.dir)
            .map_err(|e| DaemonError::Io("writing the run-state record", e))
    }
}

impl Drop for RunState {
    fn drop(&mut self) {
        self.record.remove(&self.dir);
    }
}

/// The TUN device names of the connections, in order (policy-based ones get `fvpol<i>`).
fn tun_names(cfg: &Config) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    cfg.connections
        .iter()
        .enumerate()
        .map(|(i, c)| tun_name(c, i))
        .filter(|n| seen.insert(n.clone()))
        .collect()
}

/// The policy rules the connections' routes will need (default routes only).
fn planned_rules(cfg: &Config, p: &PolicyRouting) -> Vec<Rule> {
    let mut out: Vec<Rule> = Vec::new();
    for c in &cfg.connections {
        let routes = c.tunnel.routes();
        for ch in routing::plan(0, &routes, p) {
            if let Change::Rule(r) = ch {
                if !out.contains(&r) {
                    out.push(r);
                }
            }
        }
    }
    out
}

/// Opens a tunnel interface with `queues` queues (`IFF_MULTI_QUEUE` when more than one); with
/// `offloads`, with the virtio-net header and TSO/checksum offloads, falling back to plain
/// packets when the kernel refuses them.
fn open_tun(name: &str, queues: usize, offloads: bool) -> Result<Vec<Tun>, crate::tun::TunError> {
    let plain = TunOptions {
        multi_queue: queues > 1,
        vnet_hdr: false,
        nonblocking: true,
        // Create, never attach to a device that is already there (someone else's).
        exclusive: true,
    };
    let open = |opts| {
        if queues > 1 {
            Tun::open_queues(name, queues, opts)
        } else {
            Tun::open(name, opts).map(|t| vec![t])
        }
    };
    if !offloads {
        return open(plain);
    }
    let tuns = open(TunOptions {
        vnet_hdr: true,
        ..plain
    })?;
    // The offloads are the device's: set once, through any queue.
    let refused = tuns
        .first()
        .and_then(|t| t.set_offload(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6).err());
    match refused {
        None => Ok(tuns),
        Some(e) => {
            warn!("{name}: the kernel refused TUN offloads ({e}); one packet per read");
            // Closing every queue removes the device; it comes back without the header.
            drop(tuns);
            open(plain)
        }
    }
}

/// Takes the names this run needs, by evidence: what a dead ferrovpn recorded is removed (the
/// rules and the socket file a SIGKILL leaves), what a live one or anything else holds is
/// refused.
pub(super) fn claim(
    cfg: &Config,
    nl: &mut Netlink,
    policy_routing: &PolicyRouting,
) -> Result<RunState, DaemonError> {
    let tun_names = tun_names(cfg);
    let names: Vec<&str> = tun_names.iter().map(String::as_str).collect();
    let rules = planned_rules(cfg, policy_routing);
    let (record, removed) = runstate::prepare(
        &cfg.daemon.run_dir,
        nl,
        &Claim {
            interfaces: &names,
            control_socket: &cfg.daemon.control_socket,
            rules: &rules,
        },
    )?;
    let run_state = RunState {
        dir: cfg.daemon.run_dir.clone(),
        record,
    };
    for r in removed {
        warn!("removed {r} left behind by a previous run");
    }
    Ok(run_state)
}

/// Options of every IKE and ESP socket: the fwmark when a tunnel takes a default route.
pub(super) fn socket_options(cfg: &Config, policy_routing: &PolicyRouting) -> SocketOptions {
    let fwmark = cfg.connections.iter().any(|c| match &c.tunnel {
        Tunnel::RouteBased(r) => routing::needs_fwmark(&r.routes),
        Tunnel::PolicyBased(p) => p.iter().any(|x| x.remote.is_default()),
    });
    SocketOptions {
        fwmark: fwmark.then_some(policy_routing.fwmark),
        nonblocking: true,
        buffer_bytes: Some(SOCKET_BUFFER),
    }
}

/// The sockets of every local address: UDP 500 (on the event loop), UDP 4500 and raw ESP
/// (read by the data plane).
pub(super) struct Sockets {
    pub(super) ike500: Vec<(SocketAddr, MioUdp)>,
    pub(super) nat_t: HashMap<IpAddr, Arc<UdpSocket>>,
    pub(super) raw: HashMap<IpAddr, Arc<RawEsp>>,
}

/// Binds the sockets, one set per local address.
pub(super) fn open_sockets(cfg: &Config, opts: &SocketOptions) -> Result<Sockets, DaemonError> {
    let mut locals: Vec<IpAddr> = cfg.connections.iter().map(|c| c.local_addr).collect();
    locals.sort();
    locals.dedup();
    let mut ike500 = Vec::new();
    let mut nat_t = HashMap::new();
    let mut raw = HashMap::new();
    for &ip in &locals {
        let s =
            socket::bind_ike(ip, opts).map_err(|e| DaemonError::Io("binding UDP 500/4500", e))?;
        ike500.push((SocketAddr::new(ip, 500), MioUdp::from_std(s.ike)));
        nat_t.insert(ip, Arc::new(s.nat_t));
        raw.insert(
            ip,
            Arc::new(RawEsp::open(ip, opts).map_err(|e| DaemonError::Io("raw ESP socket", e))?),
        );
    }
    Ok(Sockets { ike500, nat_t, raw })
}

/// The TUN devices of all connections, their queues per outbound lane, and each connection's
/// state with its installed routes.
pub(super) struct Tunnels {
    /// Per device: its queues.
    pub(super) tuns: Vec<Vec<Arc<Tun>>>,
    pub(super) tcp_mss: Vec<MssClamp>,
    /// Per device: see `Shared::ptb_mtu`.
    pub(super) ptb_mtu: Vec<u32>,
    pub(super) conns: Vec<ConnState>,
    /// The shared devices and the routes into them, by connection.
    pub(super) shared: Vec<SharedDevice>,
    pub(super) policies: Policies,
}

/// A TUN device several route-based connections use (`[daemon] shared_interfaces`).
#[derive(Debug, Clone)]
pub(super) struct SharedDevice {
    pub(super) name: String,
    /// Its index in the `TunTable`.
    pub(super) tun: usize,
    pub(super) ifindex: u32,
    /// The addresses its connections asked for, each set once.
    pub(super) addresses: Vec<crate::ipnet::IfAddr>,
}

/// Where a connection's traffic enters: a device made for it, or a shared one already up.
pub(super) enum Device {
    New {
        queues: Vec<Arc<Tun>>,
        tcp_mss: MssClamp,
        /// See `TunTable::ptb_mtu`.
        ptb_mtu: u32,
    },
    /// Index in the `TunTable` of the shared device it joined.
    Joined(usize),
}

/// Puts a connection's device into the table (a new index) or finds the shared one it
/// joined; registers a new shared device, and routes the connection's prefixes on a shared
/// device to it. Returns the connection's TUN index.
pub(super) fn place(
    c: &crate::config::Connection,
    id: usize,
    device: Device,
    ifindex: u32,
    table: &mut crate::daemon::dataplane::TunTable,
    shared: &mut Vec<SharedDevice>,
    policies: &mut Policies,
) -> usize {
    let tun = match device {
        Device::New {
            queues,
            tcp_mss,
            ptb_mtu,
        } => {
            table.tuns.push(queues);
            table.tcp_mss.push(tcp_mss);
            table.ptb_mtu.push(ptb_mtu);
            let tun = table.tuns.len() - 1;
            if let Some(name) = shared_name(c) {
                shared.push(SharedDevice {
                    name: name.to_string(),
                    tun,
                    ifindex,
                    addresses: Vec::new(),
                });
                policies.share(tun);
            }
            tun
        }
        Device::Joined(tun) => tun,
    };
    if shared_name(c).is_some() {
        if let Tunnel::RouteBased(r) = &c.tunnel {
            for &net in &r.routes {
                if let Err(e) = policies.add_route(tun, net, id) {
                    // Validation refuses overlaps at load; a reload racing another is logged.
                    warn!(conn = %c.name, "route {net} into the shared device: {e}");
                }
            }
        }
        if let (Some(sd), Tunnel::RouteBased(r)) =
            (shared.iter_mut().find(|d| d.tun == tun), &c.tunnel)
        {
            for a in &r.addresses {
                if !sd.addresses.contains(a) {
                    sd.addresses.push(*a);
                }
            }
        }
    }
    tun
}

/// The shared device connection `c` names, if it names one.
pub(super) fn shared_name(c: &crate::config::Connection) -> Option<&str> {
    match &c.tunnel {
        Tunnel::RouteBased(r) if r.shared => Some(r.interface.as_str()),
        _ => None,
    }
}

/// TUN devices, addresses and routes. With several workers each device has one queue per
/// worker and each outbound lane reads its own queue of every device.
pub(super) fn bring_up_tunnels(
    cfg: &Config,
    nl: &mut Netlink,
    run_state: &mut RunState,
    policy_routing: &PolicyRouting,
) -> Result<Tunnels, DaemonError> {
    let mut table = crate::daemon::dataplane::TunTable::default();
    let mut conns = Vec::new();
    let mut shared: Vec<SharedDevice> = Vec::new();
    let mut policies = Policies::default();
    // Read once for all connections: each TUN made below lengthens the interface list.
    let underlay_mtus = netlink::mtus_of_addresses(
        &cfg.connections
            .iter()
            .map(|c| c.local_addr)
            .collect::<Vec<_>>(),
    );
    // A shared device gets the smallest MTU any of its connections needs.
    let mut shared_mtus: HashMap<&str, (u32, u32)> = HashMap::new();
    for c in &cfg.connections {
        if let Some(name) = shared_name(c) {
            let m = conn_mtu(c, underlay_mtus.get(&c.local_addr).copied());
            let e = shared_mtus.entry(name).or_insert(m);
            *e = (e.0.min(m.0), e.1.min(m.1));
        }
    }
    for (i, c) in cfg.connections.iter().enumerate() {
        let underlay = underlay_mtus.get(&c.local_addr).copied();
        let device_mtu = shared_name(c).and_then(|n| shared_mtus.get(n).copied());
        let t = bring_up_tunnel(
            &cfg.daemon,
            c,
            i,
            underlay,
            device_mtu,
            &shared,
            nl,
            run_state,
            policy_routing,
        )?;
        let tun = place(
            c,
            i,
            t.device,
            t.ifindex,
            &mut table,
            &mut shared,
            &mut policies,
        );
        conns.push(ConnState::new(
            c.clone(),
            tun,
            t.installed,
            t.addresses,
            t.ifindex,
        ));
    }
    run_state.save()?;
    for d in &shared {
        info!(
            "shared interface {} up: {} connections, {} routes",
            d.name,
            conns.iter().filter(|c| c.tun == Some(d.tun)).count(),
            policies.routes_on(d.tun)
        );
    }
    Ok(Tunnels {
        tuns: table.tuns,
        tcp_mss: table.tcp_mss,
        ptb_mtu: table.ptb_mtu,
        conns,
        shared,
        policies,
    })
}

/// (device MTU, path MTU) of connection `c`: its `mtu` or what fits the path, and the
/// largest inner packet that fits one outer packet on the link to the peer.
fn conn_mtu(c: &crate::config::Connection, underlay: Option<u32>) -> (u32, u32) {
    let underlay = underlay
        .or_else(|| netlink::mtu_of_address(c.local_addr))
        .unwrap_or_else(|| {
            warn!(conn = %c.name, "no interface holds {}; assuming MTU {DEFAULT_UNDERLAY_MTU} under the tunnel", c.local_addr);
            DEFAULT_UNDERLAY_MTU
        });
    let path_mtu = convert::tunnel_mtu(&c.esp, c.local_addr.is_ipv6(), underlay);
    let mtu = match &c.tunnel {
        Tunnel::RouteBased(r) => r.mtu.map(u32::from),
        Tunnel::PolicyBased(_) => None,
    };
    (mtu.unwrap_or(path_mtu), path_mtu)
}

/// Inner IPv6 packets above this get a Packet Too Big (see `Shared::ptb_mtu`): with a TUN
/// `mtu` above what the path carries whole, the path's MTU but never below 1280 (packets up to
/// 1280 go in fragmented ESP, RFC 2473 §7.1); otherwise never (the kernel's own PTB for the
/// TUN MTU suffices).
fn ptb_limit(tun_mtu: u32, path_mtu: u32) -> u32 {
    if tun_mtu > path_mtu {
        path_mtu.max(IPV6_MIN_MTU)
    } else {
        u32::MAX
    }
}

/// The TUN device name of connection `id` (policy-based ones get `fvpol<id>`).
pub(super) fn tun_name(c: &crate::config::Connection, id: usize) -> String {
    match &c.tunnel {
        Tunnel::RouteBased(r) => r.interface.clone(),
        Tunnel::PolicyBased(_) => format!("fvpol{id}"),
    }
}

/// One connection's device, as it was set up.
pub(super) struct TunnelUp {
    pub(super) device: Device,
    pub(super) installed: routing::Installed,
    /// The addresses this connection set (none on a shared device: they are the device's).
    pub(super) addresses: Vec<crate::ipnet::IfAddr>,
    pub(super) ifindex: u32,
}

/// Opens connection `id`'s TUN device (one queue per worker), records it, and gives it its
/// MTU, address and routes (at start, and for a connection a reload adds); a connection on a
/// shared device already up (in `shared`) adds its routes (and addresses) to that one.
/// `underlay` is the MTU of the link under the tunnel when the caller already read it
/// (start-up reads all at once: each TUN made lengthens the interface list); `device_mtu`
/// the (device, path) MTU of a shared device, the smallest its connections need. The run-state
/// record is saved when a rule is added; the device itself (not persistent: it goes with this
/// process) is saved by the caller, once for all connections.
#[allow(clippy::too_many_arguments)]
pub(super) fn bring_up_tunnel(
    daemon: &crate::config::DaemonConfig,
    c: &crate::config::Connection,
    id: usize,
    underlay: Option<u32>,
    device_mtu: Option<(u32, u32)>,
    shared: &[SharedDevice],
    nl: &mut Netlink,
    run_state: &mut RunState,
    policy_routing: &PolicyRouting,
) -> Result<TunnelUp, DaemonError> {
    let workers = daemon.workers.get();
    let name = tun_name(c, id);
    let routes = c.tunnel.routes();
    let addresses = match &c.tunnel {
        Tunnel::RouteBased(r) => r.addresses.clone(),
        Tunnel::PolicyBased(_) => Vec::new(),
    };
    let setup = |what: String| DaemonError::Setup {
        conn: c.name.clone(),
        what,
    };
    if let Some(sd) = shared_name(c).and_then(|n| shared.iter().find(|d| d.name == n)) {
        let (mtu, _) = conn_mtu(c, underlay);
        let dev = std::ffi::CString::new(name.as_str())
            .ok()
            .and_then(|n| crate::sys::iface::mtu_of(&n))
            .unwrap_or(mtu);
        if dev > mtu {
            warn!(conn = %c.name, "shared interface {name} has MTU {dev}, above the {mtu} this connection's path carries");
        }
        for &a in &addresses {
            if !sd.addresses.contains(&a) {
                nl.add_address(sd.ifindex, a)
                    .map_err(|e| setup(format!("address {a} on {name}: {e}")))?;
            }
        }
        let installed = add_routes(c, &name, sd.ifindex, &routes, nl, run_state, policy_routing)?;
        return Ok(TunnelUp {
            device: Device::Joined(sd.tun),
            installed,
            addresses: Vec::new(),
            ifindex: sd.ifindex,
        });
    }
    let (mtu, path_mtu) = device_mtu.unwrap_or_else(|| conn_mtu(c, underlay));
    let carries_v6 = match &c.tunnel {
        Tunnel::RouteBased(r) => r.carries_ipv6(),
        Tunnel::PolicyBased(p) => p.iter().any(|x| x.remote.is_ipv6()),
    };
    if carries_v6 && mtu < IPV6_MIN_MTU {
        // RFC 8200 §5: a link that carries IPv6 carries 1280-byte packets.
        return Err(setup(format!(
            "TUN {name}: MTU {mtu} left after the ESP overhead is below IPv6's minimum of {IPV6_MIN_MTU} (RFC 8200 §5); raise the MTU of the link to the peer"
        )));
    }
    let queues: Vec<Arc<Tun>> = match open_tun(&name, workers, daemon.offloads) {
        Ok(q) => q.into_iter().map(Arc::new).collect(),
        Err(crate::tun::TunError::SetIff { source, .. })
            if source.raw_os_error() == Some(libc::EBUSY) =>
        {
            // Taken since `prepare` looked: say by whom.
            let live = runstate::live_records(&daemon.run_dir);
            let live: Vec<&Record> = live.iter().collect();
            runstate::check_interface(nl, &name, &live)?;
            return Err(setup(format!("TUN {name}: {source}")));
        }
        Err(e) => return Err(setup(format!("TUN {name}: {e}"))),
    };
    let Some(tun) = queues.first().cloned() else {
        return Err(setup(format!("TUN {name}: no queue opened")));
    };
    let ifindex = netlink::link_index(&name).map_err(|e| setup(format!("TUN {name}: {e}")))?;
    run_state.record.interfaces.push(LinkRecord {
        name: name.clone(),
        ifindex,
    });
    tun.set_mtu(nl, mtu)
        .map_err(|e| setup(format!("MTU of {name}: {e}")))?;
    tun.set_txqueuelen(nl, TUN_TXQUEUELEN)
        .map_err(|e| setup(format!("txqueuelen of {name}: {e}")))?;
    for &a in &addresses {
        nl.add_address(ifindex, a)
            .map_err(|e| setup(format!("address {a} on {name}: {e}")))?;
    }
    tun.up(nl)
        .map_err(|e| setup(format!("bringing {name} up: {e}")))?;
    let installed = add_routes(c, &name, ifindex, &routes, nl, run_state, policy_routing)?;
    info!(conn = %c.name, "interface {name} up (mtu {mtu}), routes {:?}", routes.iter().map(|r| r.to_string()).collect::<Vec<_>>());
    let shared_dev = shared_name(c).is_some();
    Ok(TunnelUp {
        device: Device::New {
            queues,
            tcp_mss: convert::mss_clamp(c.tcp_mss, mtu),
            // A TUN larger than the path (an explicit mtu): IPv6 packets up to 1280 bytes go
            // in fragmented ESP, larger ones get a Packet Too Big (RFC 2473 §7.1). Otherwise
            // the kernel's own PTB for the TUN MTU is all a sender needs.
            ptb_mtu: ptb_limit(mtu, path_mtu),
        },
        installed,
        // A shared device's addresses are the device's (see `SharedDevice`).
        addresses: if shared_dev { Vec::new() } else { addresses },
        ifindex,
    })
}

/// Routes `routes` (and the rules a default route needs) into device `ifindex` for
/// connection `c`, recording the rules.
fn add_routes(
    c: &crate::config::Connection,
    name: &str,
    ifindex: u32,
    routes: &[IpNet],
    nl: &mut Netlink,
    run_state: &mut RunState,
    policy_routing: &PolicyRouting,
) -> Result<routing::Installed, DaemonError> {
    let installed = routing::setup(nl, ifindex, routes, policy_routing).map_err(|e| {
        let hint = if runstate::is_exists(&e) {
            " (it is already there and no ferrovpn recorded it; ferrovpn will not remove \
                 it)"
        } else {
            ""
        };
        DaemonError::Setup {
            conn: c.name.clone(),
            what: format!("routes via {name}: {e}{hint}"),
        }
    })?;
    // Recorded after they exist, never before: a kill in between leaks a rule (refused
    // with a clear error next time) rather than recording one someone else may have made.
    let mut rules = false;
    for ch in &installed.changes {
        if let Change::Rule(r) = ch {
            run_state.record.add_rule(*r);
            rules = true;
        }
    }
    if rules {
        run_state.save()?;
    }
    Ok(installed)
}

#[cfg(test)]
mod tests {
    use super::ptb_limit;

    #[test]
    fn packet_too_big_only_when_the_tun_is_larger_than_the_path_and_never_below_1280() {
        assert_eq!(ptb_limit(1418, 1418), u32::MAX);
        assert_eq!(ptb_limit(1400, 1418), u32::MAX);
        assert_eq!(ptb_limit(1500, 1418), 1418);
        assert_eq!(ptb_limit(9000, 1200), 1280);
    }
}

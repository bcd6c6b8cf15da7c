//! `ferrovpn up`: the IKE endpoint on a mio loop (UDP 500 here, UDP 4500 via the ESP receive
//! pipeline, timers, signals, control requests), the ESP pipelines on worker threads, and the
//! TUN devices, routes and rules of each connection, removed again on exit.

mod conn;
pub mod control;
pub mod dataplane;
mod dh_pool;
mod drop_log;
mod error;
mod event_loop;
mod events;
pub mod history;
mod install;
pub mod metrics;
pub mod notify;
mod observe;
pub mod outcome;
mod pending;
mod recovery;
mod reload;
mod revocation;
mod runtime;
pub mod save_keys;
mod setup;
mod state;
mod threads;

use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use ferrovpn_esp::{MonotonicClock, Sad};
use ferrovpn_ike::{Endpoint, Settings};
use mio::unix::SourceFd;
use mio::{Interest, Poll, Token, Waker};
use tracing::{info, warn};

use crate::config::{Config, Start};
use crate::convert;
use crate::netlink::Netlink;
use crate::routing::{self, PolicyRouting};
pub use conn::{stats_of, ConnState, InstalledPair};
use control::Request;
use dataplane::Shared;
pub use error::DaemonError;
pub use setup::{DEFAULT_UNDERLAY_MTU, SOCKET_BUFFER, TUN_TXQUEUELEN};
use state::{Daemon, IKE_BASE, SIGNALS, WAKER};

/// Brings every connection up and runs until SIGINT/SIGTERM or `ferrovpn down`. `path` is the
/// configuration file `reload` and SIGHUP read again (None: reload is refused).
pub fn run(path: Option<&std::path::Path>, cfg: Config) -> Result<(), DaemonError> {
    run_with(path, cfg, || {})
}

/// [`run`], calling `ready` once everything is set up (TUN devices, sockets, routes, control
/// socket), just before the event loop starts; `up --daemon` reports success to its parent there.
pub fn run_with(
    path: Option<&std::path::Path>,
    cfg: Config,
    ready: impl FnOnce(),
) -> Result<(), DaemonError> {
    let sigfd = crate::sys::signal::signal_fd().map_err(|e| DaemonError::Io("signalfd", e))?;
    let mut nl =
        Netlink::open().map_err(|e| DaemonError::Io("netlink", io::Error::other(e.to_string())))?;
    let policy_routing = PolicyRouting::default();

    let mut run_state = setup::claim(&cfg, &mut nl, &policy_routing)?;
    let opts = setup::socket_options(&cfg, &policy_routing);
    let fwmark = opts.fwmark.is_some();
    let setup::Sockets {
        mut ike500,
        nat_t,
        raw,
    } = setup::open_sockets(&cfg, &opts)?;
    let setup::Tunnels {
        tuns,
        tcp_mss,
        ptb_mtu,
        conns,
        shared: shared_devices,
        policies,
    } = setup::bring_up_tunnels(&cfg, &mut nl, &mut run_state, &policy_routing)?;

    let shared = Arc::new(Shared {
        devices: dataplane::Devices::new(dataplane::TunTable {
            tuns,
            tcp_mss,
            ptb_mtu,
        }),
        policies: RwLock::new(policies),
        inbound: RwLock::new(HashMap::new()),
        raw,
        nat_t: nat_t.clone(),
        counters: Default::default(),
    });

    let mut poll = Poll::new().map_err(|e| DaemonError::Io("poll", e))?;
    let waker =
        Arc::new(Waker::new(poll.registry(), WAKER).map_err(|e| DaemonError::Io("waker", e))?);
    let (ike_tx, ike_rx) = dataplane::ike_queue();
    // Unbounded but not floodable: only local clients of the 0600 control socket (one at a
    // time) and the metrics endpoint (at most metrics::MAX_CLIENTS) send here, each waiting
    // for its answer before it sends again.
    let (req_tx, req_rx) = crossbeam_channel::unbounded::<Request>();

    let sad = Arc::new(Sad::new());
    // A soft lifetime (rekey now) is read at once, not at the loop's next timer: at 1 Gbit/s a
    // byte lifetime's last 10 % can pass before then.
    let sad_waker = waker.clone();
    sad.set_wake(Box::new(move || {
        let _ = sad_waker.wake();
    }));
    let clock = Arc::new(MonotonicClock::new());
    let (pipelines, unknown_spi_rx) =
        threads::spawn_pipelines(&cfg, &sad, &clock, &shared, ike_tx, &waker)?;
    let (control, socket_inode) =
        control::serve(&cfg.daemon.control_socket, req_tx.clone(), waker.clone())
            .map_err(|e| DaemonError::Io("control socket", e))?;
    run_state.record.socket_inode = Some(socket_inode);
    run_state.save()?;
    let _socket_file = control::SocketFile {
        path: cfg.daemon.control_socket.clone(),
        inode: socket_inode,
    };
    info!("control socket {}", cfg.daemon.control_socket.display());
    let metrics_server = match cfg.daemon.metrics_listen {
        Some(a) => {
            let m = metrics::serve(a, req_tx.clone(), waker.clone())
                .map_err(|e| DaemonError::Io("metrics_listen", e))?;
            info!("metrics on http://{a}/metrics");
            Some(m)
        }
        None => None,
    };
    let key_export = match &cfg.daemon.save_keys_dir {
        Some(dir) => {
            Some(save_keys::KeyExport::new(dir).map_err(|e| DaemonError::Io("save_keys_dir", e))?)
        }
        None => None,
    };

    for (i, (_, s)) in ike500.iter_mut().enumerate() {
        poll.registry()
            .register(s, Token(IKE_BASE + i), Interest::READABLE)
            .map_err(|e| DaemonError::Io("poll register", e))?;
    }
    poll.registry()
        .register(
            &mut SourceFd(&sigfd.as_raw_fd()),
            SIGNALS,
            Interest::READABLE,
        )
        .map_err(|e| DaemonError::Io("poll register", e))?;

    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
    let settings = Settings {
        retransmit_timeout: cfg.daemon.retransmit.timeout,
        retransmit_base: cfg.daemon.retransmit.base,
        retransmit_tries: cfg.daemon.retransmit.tries,
        max_half_open: cfg.daemon.max_half_open,
        dh_pool: cfg.daemon.dh_pool,
        dh_offload: cfg.daemon.dh_workers > 0,
        ..Settings::default()
    };
    let dh_workers = match cfg.daemon.dh_workers {
        0 => None,
        n => Some(
            dh_pool::DhWorkers::start(n, Arc::clone(&waker))
                .map_err(|e| DaemonError::Io("start the DH workers", e))?,
        ),
    };
    let dh_maker = match cfg.daemon.dh_pool {
        0 => None,
        _ => {
            Some(dh_pool::DhMaker::start().map_err(|e| DaemonError::Io("start the DH thread", e))?)
        }
    };
    let mut endpoint = Endpoint::new(settings, seed);
    for c in &conns {
        endpoint.add_connection(convert::connection(&c.cfg));
    }
    let started = Instant::now();
    let peers = conns
        .iter()
        .map(|c| (c.cfg.local_addr, c.cfg.remote_addr))
        .collect();
    let mut d = Daemon {
        history: history::History::new(started, peers),
        give_up: cfg.daemon.retransmit.give_up_after(),
        endpoint,
        conns,
        sad,
        shared,
        clock,
        ike500,
        nat_t,
        started,
        stop: false,
        early_inbound: Vec::new(),
        events: metrics::EventCounters::new(cfg.connections.len()),
        key_export,
        cookie_conns: HashMap::new(),
        unknown_spi_rx,
        notify: notify::Notifier::from_env(),
        pending: Vec::new(),
        nl,
        run_state,
        policy_routing,
        fwmark,
        config_path: path.map(std::path::Path::to_path_buf),
        daemon_cfg: cfg.daemon.clone(),
        half_open: drop_log::HalfOpenDrops::new(cfg.daemon.max_half_open),
        fragment_drops: drop_log::FragmentDrops::default(),
        dh_maker,
        dh_workers,
        shared_devices,
        conn_timers: None,
        crls_checked: None,
    };
    let now = Instant::now();
    for i in 0..d.conns.len() {
        if d.conns[i].cfg.start == Start::Initiate {
            info!(conn = %d.conns[i].cfg.name, "initiating");
            d.endpoint.initiate(now, i);
        } else {
            info!(conn = %d.conns[i].cfg.name, "waiting for the peer to initiate");
        }
    }
    d.flush();
    ready();
    let status = d.status_line();
    d.notify.ready(Instant::now(), status);

    let result = d.event_loop(&mut poll, &sigfd, &ike_rx, &req_rx);

    // Orderly exit: deletes to peers, then the data plane, then the OS state.
    d.notify.stopping();
    info!("shutting down: sending deletes, removing routes, rules and interfaces");
    d.endpoint.shutdown(Instant::now());
    d.flush();
    if let Some(m) = metrics_server {
        m.stop();
    }
    pipelines.shutdown();
    for c in &mut d.conns {
        if let Some(inst) = c.routing.take() {
            for e in routing::teardown(&mut d.nl, inst) {
                warn!("teardown: {e}");
            }
        }
    }
    for e in d.nl.undo_all() {
        warn!("teardown: {e}");
    }
    // The TUN devices go when their last queue closes: all at once rather than one by one.
    let shared = d.shared.clone();
    drop(d);
    match Arc::try_unwrap(shared).map(|s| Arc::try_unwrap(s.devices.into_current())) {
        Ok(Ok(table)) => crate::tun::close_in_parallel(table.tuns),
        _ => warn!("teardown: the TUN devices are still in use; they close one by one"),
    }
    // Last: `ferrovpn down` waits until nothing answers here, so that an `up` right after
    // meets none of this daemon's interfaces, routes or rules (requests meanwhile time out).
    control.stop();
    result
}

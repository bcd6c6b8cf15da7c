//! IKE setup cost without the network: one responder endpoint with N connections (one per
//! peer address) and one initiator endpoint with the N mirrors, joined in memory. Prints, per
//! group and N, the time to bring all N up (Main Mode PSK + one Quick Mode each), the DH
//! bound (N × the measured cost of the pair's four DH operations, one core) and their ratio.
//! Datagrams move in batches with the daemon's timer calls between them, as its event loop
//! does. A ratio that grows with N is per-setup work that grows with N (a scan over all SAs).
//! Results: docs/BENCHMARKS.md ("IKE setups in memory").
//!
//! Modes: `inline` (everything on the one thread), `pool` (key pairs made on a second thread,
//! `Settings::dh_pool`), `offload` (shared secrets and phase 1 keys computed by
//! `IKE_SETUPS_WORKERS` threads, default 2, `Settings::dh_offload`, as the daemon's
//! `dh_workers` do), `both` (pool and offload). Rounds alternate the modes;
//! `IKE_SETUPS_ROUNDS` (default 1).
//!
//! Run: `cargo bench -p ferrovpn-benches --bench ike_setups` (`IKE_SETUPS_N=100,1000,10000`,
//! `IKE_SETUPS_GROUPS=curve25519,ecp256,modp2048`, `IKE_SETUPS_MODES=inline,pool,offload,both`).

use std::net::{IpAddr, Ipv6Addr};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use ferrovpn_ike::algorithm::{DhGroup, IkeCipher, IkeHash};
use ferrovpn_ike::crypto::DhPrivate;
use ferrovpn_ike::dh_job::{DhDone, DhJob};
use ferrovpn_ike::proposal::IkeProposal;
use ferrovpn_ike::{ConnectionConfig, Datagram, Endpoint, Event, Settings};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// 2001:db8::1 is the responder; peers are 2001:db8:1::/64 hosts (documentation range).
fn responder_addr() -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))
}

fn peer_addr(i: usize) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(
        0x2001,
        0xdb8,
        1,
        0,
        0,
        0,
        (i >> 16) as u16,
        (i & 0xffff) as u16 + 1,
    ))
}

fn conn(name: String, local: IpAddr, remote: IpAddr, group: DhGroup) -> ConnectionConfig {
    let mut c = ConnectionConfig::new(&name, local, remote, b"bench-psk");
    c.ike_proposals = vec![IkeProposal {
        cipher: IkeCipher::AesCbc128,
        hash: IkeHash::Sha2_256,
        group,
    }];
    c.allow_weak_dh = true;
    c.dpd = None;
    c
}

/// Datagrams the daemon's event loop takes per wake-up (its mio event capacity) before it runs
/// the endpoint's timers and asks for the next one: what makes per-wake-up work count.
const BATCH: usize = 64;

/// Key pairs for the pools of both endpoints, made on another thread as the daemon's worker
/// does: requests (endpoint, group, count) in, (endpoint, key) out.
struct Maker {
    requests: mpsc::Sender<(usize, DhGroup, usize)>,
    keys: mpsc::Receiver<(usize, DhPrivate)>,
    asked: [usize; 2],
}

impl Maker {
    fn start() -> Maker {
        let (req_tx, req_rx) = mpsc::channel::<(usize, DhGroup, usize)>();
        let (key_tx, key_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut rng = StdRng::from_seed([9; 32]);
            for (side, group, n) in req_rx {
                for _ in 0..n {
                    if key_tx
                        .send((side, DhPrivate::generate(group, &mut rng)))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        });
        Maker {
            requests: req_tx,
            keys: key_rx,
            asked: [0; 2],
        }
    }

    /// Hands over what was made and asks for what is lacking, as the daemon's loop does.
    fn serve(&mut self, sides: [&mut Endpoint; 2]) {
        let [a, b] = sides;
        while let Ok((side, key)) = self.keys.try_recv() {
            self.asked[side] = self.asked[side].saturating_sub(1);
            if side == 0 {
                a.supply_dh(key)
            } else {
                b.supply_dh(key)
            }
        }
        for (side, e) in [(0, &*a), (1, &*b)] {
            for (group, n) in e.dh_wanted() {
                let more = n.saturating_sub(self.asked[side]);
                if more > 0 {
                    self.asked[side] += more;
                    let _ = self.requests.send((side, group, more));
                }
            }
        }
    }
}

/// Shared-secret jobs of both endpoints run by worker threads, as the daemon's `dh_workers`:
/// (endpoint, job) in, (endpoint, result) out.
struct Workers {
    jobs: mpsc::Sender<(usize, DhJob)>,
    done: mpsc::Receiver<(usize, DhDone)>,
    in_flight: usize,
}

impl Workers {
    fn start(n: usize) -> Workers {
        let (job_tx, job_rx) = mpsc::channel::<(usize, DhJob)>();
        let (done_tx, done_rx) = mpsc::channel();
        let job_rx = Arc::new(Mutex::new(job_rx));
        for _ in 0..n {
            let (rx, tx) = (Arc::clone(&job_rx), done_tx.clone());
            std::thread::spawn(move || loop {
                let next = rx.lock().map(|r| r.recv());
                let Ok(Ok((side, job))) = next else { return };
                if tx.send((side, job.run())).is_err() {
                    return;
                }
            });
        }
        Workers {
            jobs: job_tx,
            done: done_rx,
            in_flight: 0,
        }
    }

    /// Feeds results back and hands out new jobs; with `wait`, blocks for one result first
    /// when jobs are out (the daemon's loop sleeps in poll until a worker wakes it).
    fn serve(&mut self, now: Instant, sides: [&mut Endpoint; 2], wait: bool) {
        let [a, b] = sides;
        if wait && self.in_flight > 0 {
            if let Ok((side, done)) = self.done.recv() {
                self.in_flight -= 1;
                [&mut *a, &mut *b][side].dh_done(now, done);
            }
        }
        while let Ok((side, done)) = self.done.try_recv() {
            self.in_flight -= 1;
            [&mut *a, &mut *b][side].dh_done(now, done);
        }
        for (side, e) in [(0, &mut *a), (1, &mut *b)] {
            while let Some(job) = e.poll_dh_job() {
                self.in_flight += 1;
                let _ = self.jobs.send((side, job));
            }
        }
    }
}

/// Moves datagrams between the two, `BATCH` at a time with the timer calls the daemon makes
/// in between, until none is left; counts established IPsec SA pairs on the initiator.
fn pump(
    now: Instant,
    init: &mut Endpoint,
    resp: &mut Endpoint,
    up: &mut usize,
    mut maker: Option<&mut Maker>,
    mut workers: Option<&mut Workers>,
) {
    let mut idle = false;
    loop {
        if let Some(m) = maker.as_deref_mut() {
            m.serve([&mut *init, &mut *resp]);
        }
        if let Some(w) = workers.as_deref_mut() {
            w.serve(now, [&mut *init, &mut *resp], idle);
        }
        let mut moved = 0;
        while moved < BATCH {
            let Some(d) = init.poll_transmit() else { break };
            moved += 1;
            resp.handle_datagram(now, flip(d));
        }
        let mut back = 0;
        while back < BATCH {
            let Some(d) = resp.poll_transmit() else { break };
            back += 1;
            init.handle_datagram(now, flip(d));
        }
        for e in [&mut *init, &mut *resp] {
            e.handle_timeout(now);
            let _ = e.poll_timeout();
        }
        while let Some(e) = init.poll_event() {
            if matches!(e, Event::ChildSaEstablished(_)) {
                *up += 1;
            }
        }
        while resp.poll_event().is_some() {}
        idle = moved + back == 0;
        if idle && workers.as_ref().is_none_or(|w| w.in_flight == 0) {
            return;
        }
    }
}

fn flip(d: Datagram) -> Datagram {
    Datagram {
        local: d.remote,
        remote: d.local,
        data: d.data,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Inline,
    Pool,
    Offload,
    Both,
}

/// Wall time for `n` setups, all started at once (as a gateway sees them after a restart);
/// with `Pool`, key pairs come from a second thread (`Settings::dh_pool`), with `Offload` the
/// shared secrets are computed by `workers` threads (`Settings::dh_offload`).
fn setups(n: usize, group: DhGroup, mode: Mode, workers: usize) -> Duration {
    let pool = matches!(mode, Mode::Pool | Mode::Both);
    let offloaded = matches!(mode, Mode::Offload | Mode::Both);
    let settings = Settings {
        max_half_open: n.max(1024),
        dh_pool: if pool { 64 } else { 0 },
        dh_offload: offloaded,
        ..Settings::default()
    };
    let mut maker = pool.then(Maker::start);
    let mut offload = offloaded.then(|| Workers::start(workers));
    let mut resp = Endpoint::new(settings.clone(), [2; 32]);
    let mut init = Endpoint::new(settings, [1; 32]);
    for i in 0..n {
        resp.add_connection(conn(format!("p{i}"), responder_addr(), peer_addr(i), group));
        init.add_connection(conn(format!("r{i}"), peer_addr(i), responder_addr(), group));
    }
    let now = Instant::now();
    if let Some(m) = maker.as_mut() {
        // A running daemon's pools are full before the storm (the configured groups are
        // pooled from the start).
        m.serve([&mut init, &mut resp]);
        std::thread::sleep(Duration::from_millis(500));
        m.serve([&mut init, &mut resp]);
    }
    let t0 = Instant::now();
    for i in 0..n {
        init.initiate(now, i);
    }
    let mut up = 0;
    pump(
        now,
        &mut init,
        &mut resp,
        &mut up,
        maker.as_mut(),
        offload.as_mut(),
    );
    let took = t0.elapsed();
    assert_eq!(up, n, "not every setup completed");
    if offloaded {
        eprintln!(
            "  jobs: responder {}, initiator {}",
            resp.dh_jobs_total(),
            init.dh_jobs_total()
        );
    }
    if pool {
        let (hits, misses) = resp.dh_pool_use();
        let (ih, im) = init.dh_pool_use();
        eprintln!("  pool use: responder {hits} ready / {misses} inline, initiator {ih} / {im}");
    }
    took
}

/// One setup's DH work for the pair: two key pairs and two shared secrets (median of 7
/// runs of 40, the machine being shared).
fn dh_cost(group: DhGroup) -> Duration {
    let mut rng = StdRng::from_seed([7; 32]);
    let rounds = 40;
    let mut runs: Vec<Duration> = (0..7)
        .map(|_| {
            let t0 = Instant::now();
            for _ in 0..rounds {
                let a = DhPrivate::generate(group, &mut rng);
                let b = DhPrivate::generate(group, &mut rng);
                let _ = a
                    .shared_secret(&b.public_value())
                    .expect("valid public value");
                let _ = b
                    .shared_secret(&a.public_value())
                    .expect("valid public value");
            }
            t0.elapsed() / rounds
        })
        .collect();
    runs.sort();
    runs[runs.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let ns: Vec<usize> = std::env::var("IKE_SETUPS_N")
        .unwrap_or_else(|_| "100,1000,4000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let workers: usize = std::env::var("IKE_SETUPS_WORKERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let rounds: usize = std::env::var("IKE_SETUPS_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let modes: Vec<Mode> = std::env::var("IKE_SETUPS_MODES")
        .unwrap_or_else(|_| "inline,pool,offload,both".into())
        .split(',')
        .filter_map(|m| match m.trim() {
            "inline" => Some(Mode::Inline),
            "pool" => Some(Mode::Pool),
            "offload" => Some(Mode::Offload),
            "both" => Some(Mode::Both),
            _ => None,
        })
        .collect();
    println!(
        "(pool: key pairs made on a second thread; offload: shared secrets on {workers} worker threads; dh_bound is one core's)"
    );
    println!("group      N  mode     round  all_up_s  per_setup_us  dh_bound_s  ratio");
    let only = std::env::var("IKE_SETUPS_GROUPS").unwrap_or_default();
    for group in [DhGroup::Ecp256, DhGroup::Curve25519, DhGroup::Modp2048] {
        if !only.is_empty()
            && !only
                .split(',')
                .any(|g| g.eq_ignore_ascii_case(&format!("{group:?}")))
        {
            continue;
        }
        let dh = dh_cost(group);
        let runs = (1..=rounds).flat_map(|r| ns.iter().flat_map(move |&n| [(r, n)]));
        for ((round, n), mode) in runs.flat_map(|rn| modes.iter().map(move |&m| (rn, m))) {
            let took = setups(n, group, mode, workers);
            let bound = dh * n as u32;
            println!(
                "{:<10} {:>5} {:<8} {:>5} {:>8.2} {:>13.0} {:>11.2} {:>6.2}",
                format!("{group:?}"),
                n,
                format!("{mode:?}").to_lowercase(),
                round,
                took.as_secs_f64(),
                took.as_secs_f64() * 1e6 / n as f64,
                bound.as_secs_f64(),
                took.as_secs_f64() / bound.as_secs_f64()
            );
        }
    }
}

//! Diffie-Hellman work off the IKE thread: the key maker, one thread that fills the IKE
//! endpoint's pool of key pairs (`[daemon] dh_pool`, `ferrovpn_ike::Settings::dh_pool`), and
//! the workers that compute shared secrets and phase 1 keys (`[daemon] dh_workers`,
//! `Settings::dh_offload`), so setups of many peers at once spread over the cores.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use ferrovpn_ike::algorithm::DhGroup;
use ferrovpn_ike::crypto::DhPrivate;
use ferrovpn_ike::dh_job::{DhDone, DhJob};
use ferrovpn_ike::Endpoint;
use rand::rngs::StdRng;
use rand::SeedableRng;

pub(super) struct DhMaker {
    requests: Sender<(DhGroup, usize)>,
    keys: Receiver<DhPrivate>,
    /// Asked for and not yet received, per group.
    asked: HashMap<DhGroup, usize>,
}

impl DhMaker {
    /// Starts the thread; it ends when the maker is dropped.
    pub(super) fn start() -> io::Result<DhMaker> {
        let (req_tx, req_rx) = crossbeam_channel::unbounded::<(DhGroup, usize)>();
        let (key_tx, key_rx) = crossbeam_channel::unbounded();
        std::thread::Builder::new()
            .name("ferrovpn-dh".into())
            .spawn(move || {
                let mut rng = StdRng::from_entropy();
                for (group, n) in req_rx {
                    for _ in 0..n {
                        if key_tx.send(DhPrivate::generate(group, &mut rng)).is_err() {
                            return;
                        }
                    }
                }
            })?;
        Ok(DhMaker {
            requests: req_tx,
            keys: key_rx,
            asked: HashMap::new(),
        })
    }

    /// Hands the key pairs made so far to the endpoint and asks for what its pool lacks.
    pub(super) fn serve(&mut self, endpoint: &mut Endpoint) {
        while let Ok(key) = self.keys.try_recv() {
            if let Some(n) = self.asked.get_mut(&key.group()) {
                *n = n.saturating_sub(1);
            }
            endpoint.supply_dh(key);
        }
        for (group, lacking) in endpoint.dh_wanted() {
            let asked = self.asked.entry(group).or_default();
            let more = lacking.saturating_sub(*asked);
            if more > 0 && self.requests.send((group, more)).is_ok() {
                *asked += more;
            }
        }
    }
}

/// Threads that run the endpoint's shared-secret jobs (`Endpoint::poll_dh_job`) and wake the
/// event loop with each result (`Endpoint::dh_done`). They end when this is dropped.
pub(super) struct DhWorkers {
    jobs: Sender<DhJob>,
    results: Receiver<DhDone>,
}

impl DhWorkers {
    pub(super) fn start(n: usize, waker: Arc<mio::Waker>) -> io::Result<DhWorkers> {
        let (job_tx, job_rx) = crossbeam_channel::unbounded::<DhJob>();
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        for i in 0..n {
            let (jobs, done, waker) = (job_rx.clone(), done_tx.clone(), Arc::clone(&waker));
            std::thread::Builder::new()
                .name(format!("ferrovpn-dh-{i}"))
                .spawn(move || {
                    for job in jobs {
                        if done.send(job.run()).is_err() {
                            return;
                        }
                        let _ = waker.wake();
                    }
                })?;
        }
        Ok(DhWorkers {
            jobs: job_tx,
            results: done_rx,
        })
    }

    /// Feeds the finished jobs back to the endpoint and hands out the new ones (computed
    /// here if the workers are gone, so no exchange waits for nothing).
    pub(super) fn serve(&self, now: Instant, endpoint: &mut Endpoint) {
        while let Ok(done) = self.results.try_recv() {
            endpoint.dh_done(now, done);
        }
        while let Some(job) = endpoint.poll_dh_job() {
            if let Err(crossbeam_channel::SendError(job)) = self.jobs.send(job) {
                endpoint.dh_done(now, job.run());
            }
        }
    }
}

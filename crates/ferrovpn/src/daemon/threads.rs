//! The data plane's threads: one encapsulating lane per TUN queue and a pool of decapsulating
//! workers, optionally pinned to CPUs.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use ferrovpn_esp::{Mode as PipeMode, MonotonicClock, Pipeline, Sad};
use ferrovpn_ike::Datagram;
use mio::Waker;
use tracing::warn;

use super::dataplane::{EspSink, EspSource, Shared, TunSink, TunSource};
use super::error::DaemonError;
use super::recovery::{self, UnknownSpi};
use crate::config::Config;
use crate::sys::process;

/// A thread-start hook that pins each data plane thread to the next allowed CPU in turn.
fn pin_round_robin() -> ferrovpn_esp::ThreadStart {
    let cpus = process::allowed_cpus();
    let next = std::sync::atomic::AtomicUsize::new(0);
    Arc::new(move || {
        if cpus.is_empty() {
            return;
        }
        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % cpus.len();
        let Some(&cpu) = cpus.get(k) else { return };
        if let Err(e) = process::pin_to_cpu(cpu) {
            warn!("pinning a data plane thread to CPU {cpu}: {e}");
        } else {
            tracing::debug!("data plane thread pinned to CPU {cpu}");
        }
    })
}

/// The running ESP pipelines.
pub(super) struct Pipelines {
    encap: Vec<Pipeline>,
    decap: Pipeline,
}

impl Pipelines {
    /// Stops every lane, then the decapsulating workers.
    pub(super) fn shutdown(self) {
        for lane in self.encap {
            lane.shutdown();
        }
        self.decap.shutdown();
    }
}

/// Starts the ESP pipelines over the TUN queues of each lane; returns them with the receiving
/// end of the data plane's unknown-SPI reports.
pub(super) fn spawn_pipelines(
    cfg: &Config,
    sad: &Arc<Sad>,
    clock: &Arc<MonotonicClock>,
    shared: &Arc<Shared>,
    ike_tx: Sender<Datagram>,
    waker: &Arc<Waker>,
) -> Result<(Pipelines, Receiver<UnknownSpi>), DaemonError> {
    let workers = cfg.daemon.workers.get();
    let pin = cfg.daemon.pin_workers.then(pin_round_robin);
    let builder = |mode| {
        let b = Pipeline::builder(sad.clone(), mode).clock(clock.clone());
        match &pin {
            Some(f) => b.thread_start(f.clone()),
            None => b,
        }
    };
    // Outbound: one inline lane per TUN queue (the kernel keeps a flow on one queue, so its
    // packets stay in order); lanes encrypt in parallel but send in the order they numbered
    // their batches, so each SA's sequence numbers leave in order.
    let order = ferrovpn_esp::SendOrder::new();
    let encap = (0..workers)
        .map(|lane| {
            let source = TunSource::new(shared.clone(), lane)
                .map_err(|e| DaemonError::Io("encap pipeline: epoll", e))?;
            builder(PipeMode::Encap)
                .workers(1)
                .send_order(order.clone())
                .spawn(
                    source,
                    EspSink {
                        shared: shared.clone(),
                    },
                )
                .map_err(|e| DaemonError::Io("encap pipeline", e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (unknown_spi, unknown_spi_rx) = recovery::UnknownSpiReports::channel(Some(waker.clone()));
    let decap = builder(PipeMode::Decap)
        .workers(workers)
        .spawn(
            EspSource::new(shared.clone(), ike_tx, waker.clone()),
            TunSink::new(shared.clone()).with_unknown_spi_reports(unknown_spi),
        )
        .map_err(|e| DaemonError::Io("decap pipeline", e))?;
    Ok((Pipelines { encap, decap }, unknown_spi_rx))
}

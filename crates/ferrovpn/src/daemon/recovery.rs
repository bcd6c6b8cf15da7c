//! ESP with an unknown SPI, reported from the data plane to the control loop with the outer
//! source address, so the IKE endpoint can run invalid-SPI recovery (see
//! `ferrovpn_ike::Endpoint::handle_unknown_spi`). Reports are rate-limited here per source
//! address and the channel is bounded: a flood of forged ESP costs a counter, nothing more.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use ferrovpn_esp::{EspError, PacketBuf, Verdict};

/// One report per source address per this interval.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// Source addresses remembered for the rate limit; the oldest is forgotten beyond this.
const SOURCES: usize = 64;
/// Reports waiting for the control loop; more are dropped.
const QUEUE: usize = 64;

/// ESP with an unknown SPI from `source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownSpi {
    pub source: IpAddr,
    pub spi: u32,
}

/// The data plane's side: rate-limits and forwards reports.
pub struct UnknownSpiReports {
    tx: Sender<UnknownSpi>,
    wake: Option<Arc<mio::Waker>>,
    last: Vec<(IpAddr, Instant)>,
}

impl UnknownSpiReports {
    /// The reporter and the control loop's receiver, which `wake` wakes up.
    pub fn channel(wake: Option<Arc<mio::Waker>>) -> (Self, Receiver<UnknownSpi>) {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        (
            UnknownSpiReports {
                tx,
                wake,
                last: Vec::new(),
            },
            rx,
        )
    }

    /// Reports the packets of a decapsulated batch that were dropped for an unknown SPI.
    pub fn scan<'a>(&mut self, packets: impl Iterator<Item = &'a PacketBuf>, now: Instant) {
        for p in packets {
            if p.verdict() != Verdict::Dropped(EspError::UnknownSpi) {
                continue;
            }
            let (Some(source), Some(spi)) = (p.source, p.data().get(..4)) else {
                continue;
            };
            let Ok(spi) = <[u8; 4]>::try_from(spi) else {
                continue;
            };
            self.report(source, u32::from_be_bytes(spi), now);
        }
    }

    fn report(&mut self, source: IpAddr, spi: u32, now: Instant) {
        match self.last.iter_mut().find(|(a, _)| *a == source) {
            Some((_, t)) if now.saturating_duration_since(*t) < REPORT_INTERVAL => return,
            Some((_, t)) => *t = now,
            None => {
                if self.last.len() >= SOURCES {
                    if let Some(i) = self
                        .last
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, (_, t))| *t)
                        .map(|(i, _)| i)
                    {
                        self.last.swap_remove(i);
                    }
                }
                self.last.push((source, now));
            }
        }
        match self.tx.try_send(UnknownSpi { source, spi }) {
            Ok(()) => {
                if let Some(w) = &self.wake {
                    let _ = w.wake();
                }
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unknown(source: &str, spi: u32) -> PacketBuf {
        let mut p = PacketBuf::new(256);
        assert!(p.fill(&[spi.to_be_bytes().as_slice(), &[0; 12]].concat()));
        p.set_verdict_for_test(Verdict::Dropped(EspError::UnknownSpi));
        p.source = Some(source.parse().unwrap());
        p
    }

    #[test]
    fn one_report_per_source_per_second_and_a_bounded_queue() {
        let (mut r, rx) = UnknownSpiReports::channel(None);
        let t0 = Instant::now();
        let batch: Vec<PacketBuf> = (0..50).map(|i| unknown("192.0.2.2", 0x100 + i)).collect();
        r.scan(batch.iter(), t0);
        assert_eq!(
            rx.try_iter().collect::<Vec<_>>(),
            vec![UnknownSpi {
                source: "192.0.2.2".parse().unwrap(),
                spi: 0x100
            }]
        );
        r.scan(batch.iter(), t0 + Duration::from_millis(500));
        assert_eq!(rx.try_iter().count(), 0, "still within the second");
        r.scan(batch.iter(), t0 + Duration::from_millis(1000));
        assert_eq!(rx.try_iter().count(), 1);
        // Other verdicts are not reported; forged sources fill at most the queue.
        let mut ok = unknown("192.0.2.3", 1);
        ok.set_verdict_for_test(Verdict::Ok);
        r.scan([ok].iter(), t0);
        assert_eq!(rx.try_iter().count(), 0);
        let flood: Vec<PacketBuf> = (0..1000u32)
            .map(|i| unknown(&format!("2001:db8::{:x}", i + 1), i))
            .collect();
        r.scan(flood.iter(), t0);
        assert_eq!(rx.try_iter().count(), QUEUE);
        assert!(r.last.len() <= SOURCES);
    }
}

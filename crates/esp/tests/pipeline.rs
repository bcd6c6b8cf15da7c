//! The multithreaded pipeline delivers every packet and keeps each SA's packets in arrival
//! order (no timing assertions).

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use ferrovpn_esp::*;

const SAS: usize = 5;
const PER_SA: usize = 3000;

/// Produces inner packets round-robin over the SAs; the payload carries (SA index, counter).
struct Generator {
    handles: Vec<SaHandle>,
    next: usize,
}

impl PacketSource for Generator {
    fn recv_batch(&mut self, batch: &mut Batch) -> Recv {
        if self.next >= SAS * PER_SA {
            return Recv::Closed;
        }
        // Uneven batch sizes, as from a real device.
        let want = 1 + self.next % batch.capacity();
        while self.next < SAS * PER_SA && batch.len() < want {
            let sa = self.next % SAS;
            let n = (self.next / SAS) as u32;
            let mut inner = if sa & 1 == 0 {
                ipv4(16 + sa * 50, 0)
            } else {
                ipv6(16 + sa * 50, 0)
            };
            let off = if sa & 1 == 0 { 20 } else { 40 };
            inner[off] = sa as u8;
            inner[off + 1..off + 5].copy_from_slice(&n.to_be_bytes());
            let p = batch.push().unwrap();
            assert!(p.fill(&inner));
            p.set_sa(self.handles[sa]);
            self.next += 1;
        }
        Recv::Data
    }
}

/// Replays recorded packets in batches of up to the batch capacity.
struct Replayer {
    pkts: std::vec::IntoIter<Vec<u8>>,
}

impl PacketSource for Replayer {
    fn recv_batch(&mut self, batch: &mut Batch) -> Recv {
        while !batch.is_full() {
            match self.pkts.next() {
                Some(p) => assert!(batch.push().unwrap().fill(&p)),
                None => break,
            }
        }
        if batch.is_empty() {
            Recv::Closed
        } else {
            Recv::Data
        }
    }
}

type Collected = Vec<(Verdict, Vec<u8>)>;

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Collected>>);

impl PacketSink for Collector {
    fn send_batch(&mut self, batch: &mut Batch) {
        let mut v = self.0.lock().unwrap();
        for p in batch.packets() {
            v.push((p.verdict(), p.data().to_vec()));
        }
    }
}

fn marker(inner: &[u8]) -> (usize, u32) {
    let off = if inner[0] >> 4 == 4 { 20 } else { 40 };
    (
        inner[off] as usize,
        u32::from_be_bytes(inner[off + 1..off + 5].try_into().unwrap()),
    )
}

#[test]
fn parallel_encap_then_decap_keeps_per_sa_order() {
    let sad = Arc::new(Sad::new());
    let ciphers = [
        Cipher::AesGcm {
            key: AesKeyLen::Aes128,
            icv: GcmIcv::Icv16,
        },
        Cipher::ChaCha20Poly1305,
        Cipher::AesCbc {
            key: AesKeyLen::Aes256,
            integrity: Integrity::HmacSha512_256,
        },
        Cipher::AesGcm {
            key: AesKeyLen::Aes256,
            icv: GcmIcv::Icv8,
        },
        Cipher::AesGcm {
            key: AesKeyLen::Aes128,
            icv: GcmIcv::Icv12,
        },
    ];
    let mut outs = Vec::new();
    for (i, c) in ciphers.iter().enumerate() {
        let mut o = config(0x5000 + i as u32, Direction::Outbound, *c, i as u8);
        o.esn = i & 1 == 0;
        o.replay_window = 64; // small window: any reordering would show up as replay drops
        let mut inb = o.clone();
        inb.direction = Direction::Inbound;
        outs.push(sad.add(&o, Timestamp::ZERO).unwrap());
        sad.add(&inb, Timestamp::ZERO).unwrap();
    }

    for workers in [1, 3, 4] {
        // Encap.
        let wire = Collector::default();
        let pipe = Pipeline::builder(sad.clone(), Mode::Encap)
            .workers(workers)
            .batch_size(32)
            .in_flight(6)
            .buffer_capacity(2048)
            .spawn(
                Generator {
                    handles: outs.clone(),
                    next: 0,
                },
                wire.clone(),
            )
            .unwrap();
        pipe.join();
        let wire = std::mem::take(&mut *wire.0.lock().unwrap());
        assert_eq!(wire.len(), SAS * PER_SA);
        assert!(wire.iter().all(|(v, _)| *v == Verdict::Ok));
        // ESP sequence numbers per SPI strictly increase in output order.
        let mut last_seq = [0u32; SAS];
        for (_, esp) in &wire {
            let p = EspPacket::new_checked(&esp[..]).unwrap();
            let sa = (p.spi() - 0x5000) as usize;
            assert!(p.seq() > last_seq[sa], "workers={workers}");
            last_seq[sa] = p.seq();
        }

        // Decap through a second pipeline.
        let plain = Collector::default();
        let pipe = Pipeline::builder(sad.clone(), Mode::Decap)
            .workers(workers)
            .batch_size(64)
            .buffer_capacity(2048)
            .spawn(
                Replayer {
                    pkts: wire
                        .into_iter()
                        .map(|(_, p)| p)
                        .collect::<Vec<_>>()
                        .into_iter(),
                },
                plain.clone(),
            )
            .unwrap();
        pipe.join();
        let plain = plain.0.lock().unwrap();
        assert_eq!(plain.len(), SAS * PER_SA);
        let mut next = [0u32; SAS];
        for (v, inner) in plain.iter() {
            assert_eq!(*v, Verdict::Ok, "workers={workers}");
            let (sa, n) = marker(inner);
            assert_eq!(n, next[sa], "SA {sa} out of order with {workers} workers");
            next[sa] += 1;
        }
        assert_eq!(next, [PER_SA as u32; SAS]);
    }
    for h in &outs {
        assert_eq!(sad.stats(*h).unwrap().packets, 3 * PER_SA as u64);
    }
}

/// A source that never closes: `shutdown` must still stop and join every thread.
struct Idle;

impl PacketSource for Idle {
    fn recv_batch(&mut self, _: &mut Batch) -> Recv {
        std::thread::yield_now();
        Recv::Idle
    }
}

#[test]
fn shutdown_joins_threads() {
    for workers in [1, 2] {
        let sad = Arc::new(Sad::new());
        let pipe = Pipeline::builder(sad, Mode::Decap)
            .workers(workers)
            .spawn(Idle, Collector::default())
            .unwrap();
        pipe.shutdown();
    }
}

/// A sink that lets other threads run before it records (so unordered lanes would interleave).
#[derive(Clone, Default)]
struct SlowCollector(Collector);

impl PacketSink for SlowCollector {
    fn send_batch(&mut self, batch: &mut Batch) {
        std::thread::yield_now();
        self.0.send_batch(batch);
    }
}

#[test]
fn inline_lanes_sharing_sas_send_each_sas_sequence_numbers_in_order() {
    let sad = Arc::new(Sad::new());
    let cipher = Cipher::AesGcm {
        key: AesKeyLen::Aes128,
        icv: GcmIcv::Icv16,
    };
    let outs: Vec<SaHandle> = (0..SAS)
        .map(|i| {
            let o = config(0x7000 + i as u32, Direction::Outbound, cipher, i as u8);
            sad.add(&o, Timestamp::ZERO).unwrap()
        })
        .collect();
    let wire = SlowCollector::default();
    let order = SendOrder::new();
    let lanes: Vec<Pipeline> = (0..3)
        .map(|_| {
            Pipeline::builder(sad.clone(), Mode::Encap)
                .workers(1)
                .batch_size(16)
                .buffer_capacity(2048)
                .send_order(order.clone())
                .spawn(
                    Generator {
                        handles: outs.clone(),
                        next: 0,
                    },
                    wire.clone(),
                )
                .unwrap()
        })
        .collect();
    for l in lanes {
        l.join();
    }
    let wire = wire.0 .0.lock().unwrap();
    assert_eq!(wire.len(), 3 * SAS * PER_SA);
    let mut last = [0u32; SAS];
    for (v, esp) in wire.iter() {
        assert_eq!(*v, Verdict::Ok);
        let p = EspPacket::new_checked(&esp[..]).unwrap();
        let sa = (p.spi() - 0x7000) as usize;
        assert_eq!(
            p.seq(),
            last[sa] + 1,
            "SA {sa}: sequence numbers left out of order"
        );
        last[sa] = p.seq();
    }
}

//! ESP data plane throughput: encap/decap per cipher and packet size (one thread), the
//! multithreaded pipeline with 1..N workers, and the raw AEAD seal rate of ring and RustCrypto
//! on 1400-byte buffers for comparison. Results: docs/BENCHMARKS.md.
//!
//! Run: `CARGO_TARGET_DIR=... cargo bench -p ferrovpn-benches --bench esp`

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferrovpn_esp::*;

const BATCH: usize = 64;
const SIZES: [usize; 4] = [64, 512, 1400, 8192];

fn ciphers() -> Vec<Cipher> {
    vec![
        Cipher::AesGcm {
            key: AesKeyLen::Aes128,
            icv: GcmIcv::Icv16,
        },
        Cipher::AesGcm {
            key: AesKeyLen::Aes256,
            icv: GcmIcv::Icv16,
        },
        Cipher::AesGcm {
            key: AesKeyLen::Aes128,
            icv: GcmIcv::Icv12,
        },
        Cipher::AesGcm {
            key: AesKeyLen::Aes128,
            icv: GcmIcv::Icv8,
        },
        Cipher::ChaCha20Poly1305,
        Cipher::AesCbc {
            key: AesKeyLen::Aes128,
            integrity: Integrity::HmacSha1_96,
        },
        Cipher::AesCbc {
            key: AesKeyLen::Aes256,
            integrity: Integrity::HmacSha256_128,
        },
    ]
}

fn tunnel() -> TunnelEndpoints {
    TunnelEndpoints {
        local: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        remote: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
    }
}

fn cfg(cipher: Cipher, dir: Direction) -> SaConfig {
    let e = SecretKey::new(&vec![0x42; cipher.enc_key_len()]);
    let a = SecretKey::new(&vec![0x24; cipher.auth_key_len()]);
    let mut c = SaConfig::new(0x1234, dir, cipher, e, a, tunnel());
    c.esn = true;
    c
}

/// An IPv4 packet of exactly `size` bytes.
fn inner(size: usize) -> Vec<u8> {
    let mut p = vec![0xab; size.max(20)];
    p[0] = 0x45;
    p[1] = 0;
    let len = p.len() as u16;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    p
}

fn batch(size: usize) -> Vec<PacketBuf> {
    (0..BATCH).map(|_| PacketBuf::new(size + 192)).collect()
}

fn refill(b: &mut [PacketBuf], data: &[u8], sa: SaHandle) {
    for p in b.iter_mut() {
        p.fill(data);
        p.set_sa(sa);
    }
}

fn crit() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .without_plots()
}

fn single_thread(c: &mut Criterion) {
    for cipher in ciphers() {
        let mut g = c.benchmark_group(format!("esp_encap/{}", cipher.name()));
        for size in SIZES {
            g.throughput(Throughput::Bytes((size * BATCH) as u64));
            let sad = Arc::new(Sad::new());
            let out = sad
                .add(&cfg(cipher, Direction::Outbound), Timestamp::ZERO)
                .unwrap();
            let mut r = sad.reader();
            let data = inner(size);
            let mut b = batch(size);
            g.bench_function(BenchmarkId::from_parameter(size), |bench| {
                bench.iter_custom(|iters| {
                    let mut t = Duration::ZERO;
                    for _ in 0..iters {
                        refill(&mut b, &data, out);
                        let s = Instant::now();
                        r.encap_batch(&mut b, Timestamp::ZERO);
                        t += s.elapsed();
                    }
                    assert!(b.iter().all(|p| p.verdict() == Verdict::Ok));
                    t
                })
            });
        }
        g.finish();

        let mut g = c.benchmark_group(format!("esp_decap/{}", cipher.name()));
        for size in SIZES {
            g.throughput(Throughput::Bytes((size * BATCH) as u64));
            let sad = Arc::new(Sad::new());
            let out = sad
                .add(&cfg(cipher, Direction::Outbound), Timestamp::ZERO)
                .unwrap();
            sad.add(&cfg(cipher, Direction::Inbound), Timestamp::ZERO)
                .unwrap();
            let mut r = sad.reader();
            let data = inner(size);
            let mut b = batch(size);
            let mut wire = batch(size);
            g.bench_function(BenchmarkId::from_parameter(size), |bench| {
                bench.iter_custom(|iters| {
                    let mut t = Duration::ZERO;
                    for _ in 0..iters {
                        refill(&mut b, &data, out);
                        r.encap_batch(&mut b, Timestamp::ZERO);
                        for (w, p) in wire.iter_mut().zip(&b) {
                            w.fill(p.data());
                        }
                        let s = Instant::now();
                        r.decap_batch(&mut wire, Timestamp::ZERO);
                        t += s.elapsed();
                    }
                    assert!(wire.iter().all(|p| p.verdict() == Verdict::Ok));
                    t
                })
            });
        }
        g.finish();
    }
}

/// Copies a template packet into each batch until `total` packets were produced.
struct Gen {
    data: Arc<Vec<Vec<u8>>>,
    sa: Option<SaHandle>,
    next: usize,
}

impl PacketSource for Gen {
    fn recv_batch(&mut self, batch: &mut Batch) -> Recv {
        if self.next >= self.data.len() {
            return Recv::Closed;
        }
        while !batch.is_full() && self.next < self.data.len() {
            let p = batch.push().unwrap();
            p.fill(&self.data[self.next]);
            if let Some(sa) = self.sa {
                p.set_sa(sa);
            }
            self.next += 1;
        }
        Recv::Data
    }
}

#[derive(Clone)]
struct Count(Arc<AtomicUsize>);

impl PacketSink for Count {
    fn send_batch(&mut self, batch: &mut Batch) {
        self.0
            .fetch_add(batch.ok_packets().count(), Ordering::Relaxed);
    }
}

fn pipeline(c: &mut Criterion) {
    const PKTS: usize = BATCH * 200;
    const SIZE: usize = 1400;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let cipher = Cipher::AesGcm {
        key: AesKeyLen::Aes128,
        icv: GcmIcv::Icv16,
    };
    let sad = Arc::new(Sad::new());
    let out = sad
        .add(&cfg(cipher, Direction::Outbound), Timestamp::ZERO)
        .unwrap();
    let inb = sad
        .add(&cfg(cipher, Direction::Inbound), Timestamp::ZERO)
        .unwrap();
    let plain = Arc::new(vec![inner(SIZE); PKTS]);
    let mut r = sad.reader();
    let esp: Arc<Vec<Vec<u8>>> = Arc::new(
        plain
            .chunks(BATCH)
            .flat_map(|ch| {
                let mut b = batch(SIZE);
                refill(&mut b, &ch[0], out);
                r.encap_batch(&mut b, Timestamp::ZERO);
                b.iter().map(|p| p.data().to_vec()).collect::<Vec<_>>()
            })
            .collect(),
    );

    let mut g = c.benchmark_group("esp_pipeline_1400/aes128gcm16");
    g.throughput(Throughput::Bytes((PKTS * SIZE) as u64));
    let mut workers: Vec<usize> = (1..=cores).collect();
    workers.push(cores * 2);
    for mode in [Mode::Encap, Mode::Decap] {
        for &w in &workers {
            let id = format!(
                "{}/{w}",
                if mode == Mode::Encap {
                    "encap"
                } else {
                    "decap"
                }
            );
            g.bench_function(id, |bench| {
                bench.iter_custom(|iters| {
                    let mut t = Duration::ZERO;
                    for _ in 0..iters {
                        if mode == Mode::Decap {
                            // Fresh inbound state so the same packets are not replays.
                            sad.replace(inb, &cfg(cipher, Direction::Inbound), Timestamp::ZERO)
                                .unwrap();
                        }
                        let (data, sa) = match mode {
                            Mode::Encap => (plain.clone(), Some(out)),
                            Mode::Decap => (esp.clone(), None),
                        };
                        let n = Arc::new(AtomicUsize::new(0));
                        let s = Instant::now();
                        Pipeline::builder(sad.clone(), mode)
                            .workers(w)
                            .buffer_capacity(SIZE + 192)
                            .spawn(Gen { data, sa, next: 0 }, Count(n.clone()))
                            .unwrap()
                            .join();
                        t += s.elapsed();
                        assert_eq!(n.load(Ordering::Relaxed), PKTS);
                    }
                    t
                })
            });
        }
    }
    g.finish();
}

/// Raw AEAD seal of a 1400-byte buffer: the ceiling for ESP encap.
fn raw_aead(c: &mut Criterion) {
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    const SIZE: usize = 1400;
    let mut g = c.benchmark_group("aead_seal_1400");
    g.throughput(Throughput::Bytes(SIZE as u64));
    let mut buf = vec![0x5au8; SIZE];
    let aad = [0u8; 8];

    for (name, alg) in [
        ("ring/aes128gcm", &ring::aead::AES_128_GCM),
        ("ring/aes256gcm", &ring::aead::AES_256_GCM),
        ("ring/chacha20poly1305", &ring::aead::CHACHA20_POLY1305),
    ] {
        let key = ring::aead::LessSafeKey::new(
            ring::aead::UnboundKey::new(alg, &vec![7u8; alg.key_len()]).unwrap(),
        );
        let mut ctr = 0u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                ctr += 1;
                let mut n = [0u8; 12];
                n[4..].copy_from_slice(&ctr.to_be_bytes());
                key.seal_in_place_separate_tag(
                    ring::aead::Nonce::assume_unique_for_key(n),
                    ring::aead::Aad::from(&aad),
                    &mut buf,
                )
                .unwrap()
            })
        });
    }

    fn rc<A: AeadInPlace + aes_gcm::aead::AeadCore<NonceSize = aes_gcm::aead::consts::U12>>(
        g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
        name: &str,
        a: A,
        buf: &mut [u8],
    ) {
        let mut ctr = 0u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                ctr += 1;
                let mut n = [0u8; 12];
                n[4..].copy_from_slice(&ctr.to_be_bytes());
                a.encrypt_in_place_detached(
                    aes_gcm::aead::generic_array::GenericArray::from_slice(&n),
                    &[0u8; 8],
                    buf,
                )
                .unwrap()
            })
        });
    }
    rc(
        &mut g,
        "rustcrypto/aes128gcm",
        aes_gcm::Aes128Gcm::new_from_slice(&[7; 16]).unwrap(),
        &mut buf,
    );
    rc(
        &mut g,
        "rustcrypto/aes256gcm",
        aes_gcm::Aes256Gcm::new_from_slice(&[7; 32]).unwrap(),
        &mut buf,
    );
    rc(
        &mut g,
        "rustcrypto/chacha20poly1305",
        chacha20poly1305::ChaCha20Poly1305::new_from_slice(&[7; 32]).unwrap(),
        &mut buf,
    );
    g.finish();
}

criterion_group! {
    name = benches;
    config = crit();
    targets = raw_aead, single_thread, pipeline
}
criterion_main!(benches);

//! SAD installs at scale: the time to install N SA pairs one by one (as a gateway does when N
//! peers come up) while a reader holds a snapshot, as the data plane's workers always do.
//! Per-pair time that grows with N is a copy of the whole table per change.
//! Results: docs/BENCHMARKS.md ("SAD installs at scale").
//!
//! Run: `cargo bench -p ferrovpn-benches --bench sad_scale` (`SAD_SCALE_N=1000,10000`).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use ferrovpn_esp::*;

fn cfg(spi: u32, dir: Direction) -> SaConfig {
    let cipher = Cipher::AesGcm {
        key: AesKeyLen::Aes128,
        icv: GcmIcv::Icv16,
    };
    let tunnel = TunnelEndpoints {
        local: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        remote: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
    };
    SaConfig::new(
        spi,
        dir,
        cipher,
        SecretKey::new(&[0x42; 20]),
        SecretKey::new(&[]),
        tunnel,
    )
}

fn main() {
    let ns: Vec<u32> = std::env::var("SAD_SCALE_N")
        .unwrap_or_else(|_| "1000,5000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    println!("pairs  install_all_ms  per_pair_us");
    for n in ns {
        let sad = Arc::new(Sad::new());
        let clock = MonotonicClock::new();
        // A worker's reader: it holds the snapshot it last saw, so every change must copy.
        let _reader = sad.reader();
        let t0 = Instant::now();
        for i in 0..n {
            let spi = 0x1000_0000 + i * 2;
            sad.add(&cfg(spi, Direction::Inbound), clock.now())
                .expect("valid SA");
            sad.add(&cfg(spi + 1, Direction::Outbound), clock.now())
                .expect("valid SA");
        }
        let took = t0.elapsed();
        println!(
            "{:>5} {:>15.1} {:>12.1}",
            n,
            took.as_secs_f64() * 1e3,
            took.as_secs_f64() * 1e6 / f64::from(n)
        );
    }
}

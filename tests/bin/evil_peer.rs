//! A hostile IKEv1 responder for the end-to-end tests: a real `ferrovpn_ike::Endpoint` on
//! UDP 500 that knows the PSK and rewrites the SA payloads of the messages it sends (MM2 and
//! QM2 by default) to carry a lifetime of 2^64-1 seconds and kilobytes, re-hashed and
//! encrypted with the session keys (`Settings::tamper`), so the initiator authenticates them.
//!
//! Usage: evil_peer LOCAL_IP REMOTE_IP PSK_FILE [--ike P] [--esp P] [--rewrite MM2,QM2]
//!        [--lifetime SECONDS] [--spi SPI]
//! `--spi` also gives the ESP proposals of the rewritten messages that SPI (decimal).
//! Logs one line per message and SA to stdout; runs until killed. No key is ever printed.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ferrovpn_ike::proposal::{parse_esp_proposals, parse_ike_proposals};
use ferrovpn_ike::tamper::{Sealing, Tamper};
use ferrovpn_ike::wire::Payload;
use ferrovpn_ike::{ConnectionConfig, Datagram, Endpoint, Event, Settings};
use ferrovpn_tests::hostile::{set_esp_spi, set_lifetimes};

fn usage(why: &str) -> ExitCode {
    eprintln!("evil_peer: {why}");
    eprintln!("usage: evil_peer LOCAL_IP REMOTE_IP PSK_FILE [--ike P] [--esp P] [--rewrite MM2,QM2] [--lifetime SECONDS] [--spi SPI]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [local, remote, psk_file, rest @ ..] = args.as_slice() else {
        return usage("missing arguments");
    };
    let (Ok(local), Ok(remote)) = (local.parse::<IpAddr>(), remote.parse::<IpAddr>()) else {
        return usage("LOCAL_IP and REMOTE_IP must be IP addresses");
    };
    let psk = match std::fs::read_to_string(psk_file) {
        Ok(s) => s.trim_end_matches(['\n', '\r']).as_bytes().to_vec(),
        Err(e) => return usage(&format!("{psk_file}: {e}")),
    };
    let mut cfg = ConnectionConfig::new("evil", local, remote, &psk);
    let mut names = "MM2,QM2".to_string();
    let mut secs = u64::MAX;
    let mut spi: Option<u32> = None;
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let Some(value) = it.next() else {
            return usage(&format!("{flag} needs a value"));
        };
        match flag.as_str() {
            "--ike" => match parse_ike_proposals(value) {
                Ok(p) => cfg.ike_proposals = p,
                Err(e) => return usage(&format!("--ike {value}: {e}")),
            },
            "--esp" => match parse_esp_proposals(value) {
                Ok(p) => cfg.esp_proposals = p,
                Err(e) => return usage(&format!("--esp {value}: {e}")),
            },
            "--rewrite" => names = value.clone(),
            "--lifetime" => match value.parse() {
                Ok(v) => secs = v,
                Err(e) => return usage(&format!("--lifetime {value}: {e}")),
            },
            "--spi" => match value.parse() {
                Ok(v) => spi = Some(v),
                Err(e) => return usage(&format!("--spi {value}: {e}")),
            },
            _ => return usage(&format!("unknown option {flag}")),
        }
    }
    // The hook wants 'static names: a handful, leaked once for the life of the process.
    let names: Vec<&'static str> = names
        .split(',')
        .map(|n| &*Box::leak(n.trim().to_string().into_boxed_str()))
        .collect();
    let names: &'static [&'static str] = Box::leak(names.into_boxed_slice());
    let tamper = Tamper::new(move |s: &Sealing, payloads: &mut Vec<Payload>| {
        if names.contains(&s.name) {
            set_lifetimes(payloads, secs, Some(secs));
            if let Some(spi) = spi {
                set_esp_spi(payloads, spi);
            }
        }
    });
    let settings = Settings {
        tamper: Some(tamper),
        ..Settings::default()
    };
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = (std::process::id() as u8).wrapping_add(i as u8);
    }
    let mut ep = Endpoint::new(settings, seed);
    ep.add_connection(cfg);

    let addr = SocketAddr::new(local, 500);
    let sock = match UdpSocket::bind(addr) {
        Ok(s) => s,
        Err(e) => return usage(&format!("bind {addr}: {e}")),
    };
    let spi_note = spi.map_or(String::new(), |v| format!(" and ESP SPI {v:#010x}"));
    println!("evil_peer: responder on {addr} for {remote}, rewriting {names:?} to a lifetime of {secs} s / {secs} KB{spi_note}");
    let mut buf = vec![0u8; 65536];
    loop {
        let now = Instant::now();
        let wait = ep
            .poll_timeout()
            .map_or(Duration::from_secs(1), |t| t.saturating_duration_since(now))
            .clamp(Duration::from_millis(10), Duration::from_secs(1));
        if sock.set_read_timeout(Some(wait)).is_err() {
            return ExitCode::FAILURE;
        }
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            let data = buf.get(..n).unwrap_or_default().to_vec();
            ep.handle_datagram(
                Instant::now(),
                Datagram {
                    local: addr,
                    remote: from,
                    data,
                },
            );
        }
        ep.handle_timeout(Instant::now());
        while let Some(d) = ep.poll_transmit() {
            if let Err(e) = sock.send_to(&d.data, d.remote) {
                println!("evil_peer: send to {}: {e}", d.remote);
            }
        }
        while let Some(e) = ep.poll_event() {
            log(&e);
        }
    }
}

fn log(e: &Event) {
    match e {
        Event::Message(m) => println!(
            "evil_peer: {:?} {} {} [ {} ]",
            m.direction, m.name, m.cookies, m.payloads
        ),
        Event::IkeSaEstablished {
            cookies, lifetime, ..
        } => println!(
            "evil_peer: ISAKMP SA {cookies} established, our lifetime {} s",
            lifetime.as_secs()
        ),
        Event::ChildSaEstablished(c) => println!(
            "evil_peer: IPsec SA in {:08x} out {:08x} established, our lifetime {} s",
            c.inbound.spi,
            c.outbound.spi,
            c.lifetime.as_secs()
        ),
        Event::IkeSaFailed { reason, .. } => println!("evil_peer: ISAKMP SA failed: {reason}"),
        Event::ChildSaFailed { reason, .. } => println!("evil_peer: IPsec SA failed: {reason}"),
        other => println!("evil_peer: {}", short(other)),
    }
}

fn short(e: &Event) -> &'static str {
    match e {
        Event::IkeSaDeleted { .. } => "ISAKMP SA deleted",
        Event::ChildSaDeleted { .. } => "IPsec SA deleted",
        Event::ChildSaInboundReady(_) => "IPsec SA inbound ready",
        Event::PeerDead { .. } => "peer dead",
        Event::InitialContact { .. } => "INITIAL-CONTACT received",
        Event::NotifyReceived { .. } => "notify received",
        Event::LifetimeCapped { .. } => "lifetime capped",
        _ => "event",
    }
}

//! Two real endpoints negotiating (MM or AM, then QM, DPD, rekeys) while the fuzzer plays the
//! network: it delivers, drops, replays, corrupts or truncates each datagram and moves the clock.
//! Unlike `ike_responder`, the messages are genuine, so the protected states (MM5/MM6, AM3,
//! Quick Mode, Informational) are reached and then fed corrupted input.
//! With config bit 3, A is a remote-access client (XAuth + Mode Config, pull or push on bit 4,
//! a wrong password on bit 5) and B a gateway (whose verifier answers Busy every other time
//! on bit 6, and an IPv6 pool too on bit 7) with an address pool (issue 14), so the
//! Transaction exchanges see the same drops, replays and corruption.
//! A second config byte: bit 0 has both endpoints hand their Diffie-Hellman work out as jobs
//! (`Settings::dh_offload`, issue 20), computed only when opcode 1 or 7 says so (newest
//! first), so messages, timeouts and corruption arrive while an exchange waits for its keys.
//! Input: two config bytes, then opcodes with their operands (see `step`).
#![no_main]

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrovpn_ike::config::{
    ModeCfgMode, RemoteAccessClient, RemoteAccessGateway, XauthCredentials, XauthVerdict,
    XauthVerifier,
};
use ferrovpn_ike::crypto::Secret;
use ferrovpn_ike::proposal::{parse_esp_proposals, parse_ike_proposals};
use ferrovpn_ike::wire::ModeCfgSettings;
use ferrovpn_ike::{
    ChildConfig, ConnectionConfig, Datagram, Endpoint, IdValue, Phase1Mode, Settings,
    TrafficSelector,
};
use libfuzzer_sys::fuzz_target;

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

fn conn(name: &str, local: IpAddr, remote: IpAddr, flags: u8) -> ConnectionConfig {
    let mut c = ConnectionConfig::new(name, local, remote, b"ferrovpn-test-psk");
    c.mode = if flags & 1 == 0 { Phase1Mode::Main } else { Phase1Mode::Aggressive };
    c.allow_aggressive_psk = true;
    // X25519 keeps an execution cheap; PFS on a flag.
    c.ike_proposals = parse_ike_proposals("aes128-sha256-x25519").unwrap_or_default();
    let esp = if flags & 2 == 0 { "aes128gcm16" } else { "aes128-sha256-x25519" };
    c.esp_proposals = parse_esp_proposals(esp).unwrap_or_default();
    c.request_commit = flags & 4 != 0;
    c.ike_lifetime = Duration::from_secs(120);
    c.esp_lifetime = Duration::from_secs(60);
    c
}

const POOL: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 128);

/// Alice's password; with `busy`, every other check is put off (the rate limit's answer).
struct Users {
    busy: bool,
    calls: AtomicU32,
}
impl XauthVerifier for Users {
    fn verify(&self, _now: Instant, _peer: IpAddr, user: &str, password: &[u8]) -> XauthVerdict {
        if self.busy && self.calls.fetch_add(1, Ordering::Relaxed) % 2 == 0 {
            XauthVerdict::Busy
        } else if user == "alice" && password == b"correct-horse" {
            XauthVerdict::Accept
        } else {
            XauthVerdict::Reject
        }
    }
}

/// A as a remote-access client of B.
fn client(mut c: ConnectionConfig, flags: u8) -> ConnectionConfig {
    let password: &[u8] = if flags & 32 == 0 { b"correct-horse" } else { b"wrong" };
    c.remote_access = Some(RemoteAccessClient {
        xauth: Some(XauthCredentials { user: "alice".into(), password: Secret::new(password.to_vec()) }),
        mode_cfg: if flags & 16 == 0 { ModeCfgMode::Pull } else { ModeCfgMode::Push },
    });
    c
}

/// B as a gateway for any client, with a /28 pool.
fn gateway(mut c: ConnectionConfig, flags: u8) -> ConnectionConfig {
    c.remote_addr = Ipv4Addr::UNSPECIFIED.into();
    c.remote_id = IdValue::Ipv4(Ipv4Addr::UNSPECIFIED);
    c.children = vec![ChildConfig {
        local_ts: TrafficSelector::any_v4(),
        remote_ts: TrafficSelector::subnet(POOL.into(), 28),
    }];
    c.gateway = Some(RemoteAccessGateway {
        users: Some(Arc::new(Users { busy: flags & 64 != 0, calls: AtomicU32::new(0) })),
        pool: (POOL, 28),
        pool6: (flags & 128 != 0).then(|| (std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0), 120)),
        settings: ModeCfgSettings {
            ip4_dns: vec![Ipv4Addr::new(203, 0, 113, 53)],
            default_domain: Some("corp.example".into()),
            split_include: vec![(Ipv4Addr::new(203, 0, 113, 0), Ipv4Addr::new(255, 255, 255, 0))],
            banner: Some("hello".into()),
            ..Default::default()
        },
        push: flags & 16 != 0,
        max_failures: 3,
        failure_window: Duration::from_secs(600),
    });
    c
}

struct Net {
    a: Endpoint,
    b: Endpoint,
    to_b: VecDeque<Datagram>,
    to_a: VecDeque<Datagram>,
    last_to_b: Option<Datagram>,
    now: Instant,
}

impl Net {
    fn collect(&mut self) {
        while let Some(d) = self.a.poll_transmit() {
            if self.to_b.len() < 64 {
                self.to_b.push_back(d);
            }
        }
        while let Some(d) = self.b.poll_transmit() {
            if self.to_a.len() < 64 {
                self.to_a.push_back(d);
            }
        }
        while self.a.poll_event().is_some() {}
        while self.b.poll_event().is_some() {}
    }

    /// Computes every Diffie-Hellman job both endpoints handed out, newest first.
    fn run_jobs(&mut self) {
        for e in [&mut self.a, &mut self.b] {
            let mut jobs = Vec::new();
            while let Some(j) = e.poll_dh_job() {
                jobs.push(j);
            }
            while let Some(j) = jobs.pop() {
                e.dh_done(self.now, j.run());
            }
        }
    }

    /// The receiver sees the sender's address as remote.
    fn arrive(d: Datagram) -> Datagram {
        Datagram { local: d.remote, remote: d.local, data: d.data }
    }

    fn deliver(&mut self, to_b: bool, change: impl FnOnce(&mut Vec<u8>)) {
        let queue = if to_b { &mut self.to_b } else { &mut self.to_a };
        let Some(mut d) = queue.pop_front() else { return };
        change(&mut d.data);
        let d = Net::arrive(d);
        if to_b {
            self.last_to_b = Some(d.clone());
            self.b.handle_datagram(self.now, d);
        } else {
            self.a.handle_datagram(self.now, d);
        }
    }

    /// One opcode and its operands from `input`; false when the input is used up.
    fn step(&mut self, input: &mut &[u8]) -> bool {
        let Some((&op, rest)) = input.split_first() else { return false };
        *input = rest;
        let mut operand = || -> u8 {
            let Some((&x, rest)) = input.split_first() else { return 0 };
            *input = rest;
            x
        };
        let to_b = op & 0x80 == 0;
        match op & 0x07 {
            0 => self.deliver(to_b, |_| {}),
            1 => {
                self.run_jobs();
                self.deliver(to_b, |_| {});
            }
            2 => {
                // Flip bits at an offset (counted from the end for the encrypted tail).
                let (pos, x) = (usize::from(operand()), operand().max(1));
                let from_end = op & 0x40 != 0;
                self.deliver(to_b, |d| {
                    let i = if from_end { d.len().checked_sub(pos + 1) } else { Some(pos) };
                    if let Some(b) = i.and_then(|i| d.get_mut(i)) {
                        *b ^= x;
                    }
                });
            }
            3 => {
                let keep = usize::from(operand()) * 4;
                self.deliver(to_b, |d| d.truncate(keep));
            }
            4 => {
                let queue = if to_b { &mut self.to_b } else { &mut self.to_a };
                queue.pop_front();
            }
            5 => {
                self.now += Duration::from_millis(u64::from(operand()) * 250);
                self.a.handle_timeout(self.now);
                self.b.handle_timeout(self.now);
            }
            6 => {
                if let Some(d) = self.last_to_b.clone() {
                    self.b.handle_datagram(self.now, d);
                }
            }
            _ => {
                // Deliver everything in flight both ways, unchanged.
                for _ in 0..16 {
                    self.run_jobs();
                    self.collect();
                    if self.to_a.is_empty() && self.to_b.is_empty() {
                        break;
                    }
                    self.deliver(true, |_| {});
                    self.deliver(false, |_| {});
                }
            }
        }
        self.collect();
        true
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let Some((&flags2, mut input)) = rest.split_first() else { return };
    let settings = Settings { dh_offload: flags2 & 1 != 0, ..Settings::default() };
    let mut a = Endpoint::new(settings.clone(), [1; 32]);
    let mut b = Endpoint::new(settings, [2; 32]);
    if flags & 8 == 0 {
        a.add_connection(conn("to-b", A, B, flags));
        b.add_connection(conn("to-a", B, A, flags));
    } else {
        a.add_connection(client(conn("to-b", A, B, flags), flags));
        b.add_connection(gateway(conn("clients", B, A, flags), flags));
    }
    let now = Instant::now();
    let mut net = Net { a, b, to_b: VecDeque::new(), to_a: VecDeque::new(), last_to_b: None, now };
    net.a.initiate(now, 0);
    net.collect();
    let mut steps = 0;
    while steps < 512 && net.step(&mut input) {
        steps += 1;
    }
    // Both must stay consistent through the rest of their lives.
    net.run_jobs();
    net.now += Duration::from_secs(3600);
    net.a.handle_timeout(net.now);
    net.b.handle_timeout(net.now);
    net.collect();
    let _ = (net.a.ike_sas(net.now), net.b.ike_sas(net.now));
});

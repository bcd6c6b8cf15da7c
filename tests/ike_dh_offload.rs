//! Shared secrets computed off the endpoint's thread (`Settings::dh_offload`, issue #20): the
//! exchange waits for the driver's result and then continues exactly as inline, whatever order
//! the results come back in; repeats while waiting are dropped, a result for an SA that is gone
//! is dropped, and an invalid public value still fails the exchange.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ferrovpn_ike::proposal::{parse_esp_proposals, parse_ike_proposals};
use ferrovpn_ike::{ConnectionConfig, Datagram, Failure, Phase1Mode, Settings};
use ferrovpn_tests::*;

fn offload() -> Settings {
    Settings {
        dh_offload: true,
        ..Settings::default()
    }
}

fn with(ike: &str, mode: Phase1Mode) -> (ConnectionConfig, ConnectionConfig) {
    let (mut a, mut b) = (conn_a(), conn_b());
    for c in [&mut a, &mut b] {
        c.ike_proposals = parse_ike_proposals(ike).unwrap();
        c.esp_proposals = parse_esp_proposals("aes128gcm16").unwrap();
        c.allow_weak_dh = true;
        c.allow_aggressive_psk = true;
        c.mode = mode;
    }
    (a, b)
}

fn assert_up(p: &Pair, n: usize) {
    assert!(
        p.ike_failures(Side::A).is_empty(),
        "{:?}",
        p.ike_failures(Side::A)
    );
    assert!(
        p.ike_failures(Side::B).is_empty(),
        "{:?}",
        p.ike_failures(Side::B)
    );
    assert_eq!(p.established(Side::A), n);
    assert_eq!(p.established(Side::B), n);
    let (ca, cb) = (p.children(Side::A), p.children(Side::B));
    assert_eq!((ca.len(), cb.len()), (n, n));
    for a in &ca {
        let b = cb
            .iter()
            .find(|b| b.inbound.spi == a.outbound.spi)
            .expect("B has the mirror of each of A's pairs");
        assert_mirrored(a, b);
    }
}

/// The datagrams of a run, in order, with their sender.
fn bytes(p: &Pair) -> Vec<(Side, Vec<u8>)> {
    p.wire
        .iter()
        .map(|w| (w.from, w.datagram.data.clone()))
        .collect()
}

#[test]
fn offloaded_phase_1_sends_the_same_bytes_as_inline() {
    for mode in [Phase1Mode::Main, Phase1Mode::Aggressive] {
        for ike in [
            "aes128-sha256-ecp256",
            "aes256-sha256-modp2048",
            "aes128-sha1-curve25519",
        ] {
            let (a, b) = with(ike, mode);
            let mut inline = Pair::new(a.clone(), b.clone());
            inline.connect();
            assert_up(&inline, 1);
            let mut off = Pair::with_settings(a, b, offload());
            off.connect();
            assert_up(&off, 1);
            assert_eq!(
                bytes(&inline),
                bytes(&off),
                "{mode:?} {ike}: offloading changes no byte on the wire"
            );
            assert_eq!(
                (off.a.dh_jobs_in_flight(), off.b.dh_jobs_in_flight()),
                (0, 0)
            );
        }
    }
}

#[test]
fn inline_settings_hand_out_no_jobs() {
    let (a, b) = with("aes128-sha256-ecp256", Phase1Mode::Main);
    let mut p = Pair::new(a, b);
    p.hold_dh_jobs = true;
    p.connect();
    assert_up(&p, 1);
    assert!(p.dh_jobs.is_empty());
}

#[test]
fn many_setups_complete_with_results_returned_out_of_order() {
    for mode in [Phase1Mode::Main, Phase1Mode::Aggressive] {
        let (a, b) = with("aes128-sha256-ecp256", mode);
        let mut p = Pair::with_settings(a.clone(), b.clone(), offload());
        let n = 8u8;
        for i in 1..n {
            let peer = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10 + i));
            let mut ai = a.clone();
            ai.name = format!("to-b{i}");
            ai.remote_addr = peer;
            ai.remote_id = ferrovpn_ike::IdValue::Ipv4(Ipv4Addr::new(192, 0, 2, 10 + i));
            let mut bi = b.clone();
            bi.name = format!("to-a{i}");
            bi.local_addr = peer;
            bi.local_id = ferrovpn_ike::IdValue::Ipv4(Ipv4Addr::new(192, 0, 2, 10 + i));
            p.a.add_connection(ai);
            p.b.add_connection(bi);
        }
        // All at once; the harness answers the jobs newest first, so every batch of results
        // comes back in the opposite order of the requests.
        p.hold_dh_jobs = true;
        for c in 0..usize::from(n) {
            p.a.initiate(p.now, c);
        }
        p.pump();
        p.collect_dh_jobs();
        assert_eq!(
            p.dh_jobs.len(),
            usize::from(n),
            "{mode:?}: one job per responder SA"
        );
        p.hold_dh_jobs = false;
        p.run_for(Duration::from_secs(60));
        assert_up(&p, usize::from(n));
        assert_eq!((p.a.dh_jobs_in_flight(), p.b.dh_jobs_in_flight()), (0, 0));
    }
}

/// Main Mode with offloaded DH, stopped where B holds the job MM3 asked for.
fn b_computing_mm3_keys() -> Pair {
    let (a, b) = with("aes128-sha256-ecp256", Phase1Mode::Main);
    let mut p = Pair::with_settings(a, b, offload());
    p.hold_dh_jobs = true;
    p.a.initiate(p.now, 0);
    p.pump();
    assert_eq!(p.dh_jobs.len(), 1, "B computes g^xy for MM3");
    p
}

/// A's last datagram, as B receives it.
fn last_from_a(p: &Pair) -> Datagram {
    let w = &p
        .wire
        .iter()
        .rev()
        .find(|w| w.from == Side::A)
        .unwrap()
        .datagram;
    Datagram {
        local: w.remote,
        remote: w.local,
        data: w.data.clone(),
    }
}

/// Delivers A's last datagram to B once more.
fn repeat_last_from_a(p: &mut Pair) {
    let again = last_from_a(p);
    p.b.handle_datagram(p.now, again);
}

#[test]
fn a_repeated_mm3_while_its_keys_are_computed_is_dropped_and_answered_once() {
    let mut p = b_computing_mm3_keys();
    assert_eq!(p.sent_names(Side::A), ["MM1", "MM3"]);
    assert_eq!(p.dh_jobs[0].0, Side::B);
    let before = p.b.counters().duplicates;
    repeat_last_from_a(&mut p);
    assert_eq!(p.b.counters().duplicates, before + 1);
    assert!(p.b.poll_transmit().is_none(), "nothing to answer yet");
    p.collect_dh_jobs();
    assert_eq!(p.dh_jobs.len(), 1, "the repeat asked for no second job");
    p.finish_dh_job(0);
    assert_eq!(p.sent_names(Side::B), ["MM2", "MM4"]);
    // A repeat right after MM4 went out is one of the copies that piled up while B computed:
    // counted, not answered once more (each copy answered would be answered in turn by A).
    repeat_last_from_a(&mut p);
    assert_eq!(p.b.counters().duplicates, before + 2);
    assert!(p.b.poll_transmit().is_none());
    // Half a retransmission timeout later a repeat means A missed MM4: the cached MM4 goes
    // again, as inline.
    p.now += Settings::default().retransmit_timeout / 2;
    repeat_last_from_a(&mut p);
    assert_eq!(p.b.counters().duplicates, before + 3);
    assert!(p.b.poll_transmit().is_some());
    p.hold_dh_jobs = false;
    p.run_for(Duration::from_secs(60));
    assert_up(&p, 1);
    let mm4 = p
        .sent_names(Side::B)
        .iter()
        .filter(|n| **n == "MM4")
        .count();
    assert_eq!(mm4, 1);
}

#[test]
fn a_result_for_an_sa_gone_while_computing_is_dropped() {
    let mut p = b_computing_mm3_keys();
    // B's half-open SA times out while its keys are still being computed.
    p.run_for(Duration::from_secs(61));
    assert!(
        p.ike_failures(Side::B).contains(&&Failure::Timeout),
        "{:?}",
        p.ike_failures(Side::B)
    );
    let sent = p.wire.len();
    while !p.dh_jobs.is_empty() {
        let last = p.dh_jobs.len() - 1;
        p.finish_dh_job(last);
    }
    assert_eq!(p.b.dh_jobs_in_flight(), 0);
    assert!(
        p.wire[sent..].iter().all(|w| w.from == Side::A),
        "B answers nothing for an SA it no longer has"
    );
    assert!(!p.sent_names(Side::B).contains(&"MM4"));
}

/// Zeroes the body of the KE payload of an unencrypted phase 1 message.
fn zero_ke(data: &mut [u8]) {
    let (Some(&next), Some(&flags)) = (data.get(16), data.get(19)) else {
        return;
    };
    if flags & 1 != 0 {
        return;
    }
    let (mut next, mut at) = (next, 28usize);
    while next != 0 && at + 4 <= data.len() {
        let len = usize::from(u16::from_be_bytes([data[at + 2], data[at + 3]]));
        if len < 4 || at + len > data.len() {
            return;
        }
        if next == 4 {
            data[at + 4..at + len].fill(0);
        }
        next = data[at];
        at += len;
    }
}

#[test]
fn an_invalid_public_value_fails_the_exchange_when_computed_off_thread() {
    for ike in ["aes128-sha256-ecp256", "aes128-sha256-curve25519"] {
        let (a, b) = with(ike, Phase1Mode::Main);
        let mut p = Pair::with_settings(a, b, offload());
        p.rewrite = Box::new(|d, from| {
            if from == Side::A {
                zero_ke(&mut d.data);
            }
        });
        p.a.initiate(p.now, 0);
        p.run_for(Duration::from_secs(5));
        assert_eq!(
            p.ike_failures(Side::B),
            [&Failure::InvalidKeyExchange],
            "{ike}"
        );
        assert!(!p.sent_names(Side::B).contains(&"MM4"));
        assert_eq!(p.b.dh_jobs_in_flight(), 0);
    }
}

#[test]
fn another_message_while_the_keys_are_computed_changes_nothing() {
    let mut p = b_computing_mm3_keys();
    let mut forged = last_from_a(&p);
    // Same cookies, another KE: a forged or garbled MM3.
    zero_ke(&mut forged.data);
    let (dup, unexpected) = (p.b.counters().duplicates, p.b.counters().unexpected);
    p.b.handle_datagram(p.now, forged);
    assert_eq!(p.b.counters().duplicates, dup);
    assert_eq!(p.b.counters().unexpected, unexpected + 1);
    assert!(p.b.poll_transmit().is_none());
    p.hold_dh_jobs = false;
    p.run_for(Duration::from_secs(60));
    assert_up(&p, 1);
}

//! IKEv1 fragmentation between two in-memory peers (Cisco/strongSwan FRAGMENTATION vendor ID,
//! FRAG payload 132): a certificate chain too large for `fragment_size` crosses as fragments
//! in Main and Aggressive Mode, both roles; reordered and repeated fragments reassemble; a
//! missing fragment times out and is freed; a message over the limits is dropped and counted.
//! Fixtures: tests/data/certs (made by its make.sh).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ferrovpn_ike::cert::{Cert, CertAuth, PrivateKey, WallClock};
use ferrovpn_ike::config::{FragmentLimits, Fragmentation, Phase1Auth};
use ferrovpn_ike::wire::{Header, PayloadType};
use ferrovpn_ike::{ConnectionConfig, Datagram, Phase1Mode, Settings};
use ferrovpn_tests::*;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/certs/");
/// 2027-06-01, inside every fixture's validity.
const JUNE_2027: u64 = 1_811_808_000;

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}{name}")).unwrap()
}

fn auth(chain: &[&str], key: &str) -> Phase1Auth {
    let certs = |names: &[&str]| -> Vec<Cert> {
        names
            .iter()
            .flat_map(|n| Cert::from_pem_chain(&read(n)).unwrap())
            .collect()
    };
    let clock = WallClock {
        at: Instant::now(),
        unix: Duration::from_secs(JUNE_2027),
    };
    let key = PrivateKey::from_pem(&read(key)).unwrap();
    Phase1Auth::Certificate(CertAuth::new(certs(chain), key, certs(&["ca.crt"]), clock).unwrap())
}

/// ECDSA with an intermediate CA on both sides (MM5/MM6 about 1.4 kB), fragments of at most
/// `fragment_size` bytes.
fn chain_pair(mode: Phase1Mode, fragment_size: usize) -> (ConnectionConfig, ConnectionConfig) {
    let (mut a, mut b) = (conn_a(), conn_b());
    a.auth = auth(&["ec-a.crt", "inter.crt"], "ec-a.key");
    b.auth = auth(&["ec-b.crt", "inter.crt"], "ec-b.key");
    for c in [&mut a, &mut b] {
        c.mode = mode;
        c.fragment_size = fragment_size;
    }
    (a, b)
}

fn is_fragment(d: &Datagram) -> bool {
    Header::parse(&d.data).is_ok_and(|h| h.next_payload == PayloadType::FRAGMENT)
}

fn fragments_from(p: &Pair, side: Side) -> Vec<&Datagram> {
    p.wire
        .iter()
        .filter(|w| w.from == side && is_fragment(&w.datagram))
        .map(|w| &w.datagram)
        .collect()
}

fn assert_up(p: &Pair) {
    for side in [Side::A, Side::B] {
        assert!(
            p.ike_failures(side).is_empty(),
            "{side:?}: {:?}",
            p.ike_failures(side)
        );
        assert_eq!(p.established(side), 1, "{side:?}");
        assert_eq!(p.children(side).len(), 1, "{side:?}");
    }
}

/// Both sides sent their authenticating message in fragments no larger than the budget
/// (576 − 20 IP − 8 UDP), and each reassembled the other's.
fn assert_fragmented_both_ways(p: &Pair) {
    for side in [Side::A, Side::B] {
        let frags = fragments_from(p, side);
        assert!(frags.len() >= 2, "{side:?} sent {} fragments", frags.len());
        assert!(frags.iter().all(|d| d.data.len() <= 576 - 28));
    }
    assert_eq!(p.a.counters().fragments_reassembled, 1);
    assert_eq!(p.b.counters().fragments_reassembled, 1);
    assert_eq!(
        p.a.counters().fragments_sent,
        fragments_from(p, Side::A).len() as u64
    );
    assert_eq!(p.a.counters().fragments_dropped, 0);
    assert_eq!(p.b.reassembly(), (0, 0));
}

#[test]
fn a_certificate_chain_crosses_main_mode_in_fragments_both_roles() {
    let (a, b) = chain_pair(Phase1Mode::Main, 576);
    let mut p = Pair::new(a, b);
    p.connect();
    assert_up(&p);
    assert_fragmented_both_ways(&p);
    // A fragmented MM5 from the initiator, MM6 from the responder; nothing else needed it.
    assert!(p
        .events(Side::A)
        .iter()
        .any(|e| matches!(e, ferrovpn_ike::Event::Message(m) if m.name == "MM5" && m.payloads.contains("fragments"))));
    assert!(p
        .events(Side::B)
        .iter()
        .any(|e| matches!(e, ferrovpn_ike::Event::Message(m) if m.name == "MM6" && m.payloads.contains("fragments"))));
}

#[test]
fn a_certificate_chain_crosses_aggressive_mode_in_fragments_both_roles() {
    let (a, b) = chain_pair(Phase1Mode::Aggressive, 576);
    let mut p = Pair::new(a, b);
    p.connect();
    assert_up(&p);
    assert_fragmented_both_ways(&p);
}

#[test]
fn no_fragments_when_the_peer_does_not_announce_them() {
    let (a, mut b) = chain_pair(Phase1Mode::Main, 576);
    b.fragmentation = Fragmentation::No;
    let mut p = Pair::new(a, b);
    p.connect();
    // The in-memory network carries any size: whole messages still get through.
    assert_up(&p);
    assert!(fragments_from(&p, Side::A).is_empty());
    assert!(fragments_from(&p, Side::B).is_empty());
}

/// The FRAGMENTATION vendor ID with strongSwan's flag word (IKE fragmentation, 0x80000000).
const FRAGMENTATION_VID: &str = "4048b7d56ebce88525e7de7f00d6c2d380000000";

fn announces_fragmentation(p: &Pair, side: Side) -> bool {
    p.wire.iter().filter(|w| w.from == side).any(|w| {
        ferrovpn_ike::wire::Message::parse(&w.datagram.data).is_ok_and(|m| {
            m.payloads.iter().any(|pl| {
                matches!(pl, ferrovpn_ike::wire::Payload::VendorId(v) if hex::encode(v) == FRAGMENTATION_VID)
            })
        })
    })
}

#[test]
fn both_roles_announce_fragmentation_unless_it_is_off() {
    let (a, b) = chain_pair(Phase1Mode::Main, 1280);
    let mut p = Pair::new(a, b);
    p.connect();
    assert!(announces_fragmentation(&p, Side::A), "MM1");
    assert!(announces_fragmentation(&p, Side::B), "MM2");
    let (a, mut b) = chain_pair(Phase1Mode::Aggressive, 1280);
    b.fragmentation = Fragmentation::No;
    let mut p = Pair::new(a, b);
    p.connect();
    assert!(announces_fragmentation(&p, Side::A), "AM1");
    assert!(
        !announces_fragmentation(&p, Side::B),
        "AM2 with fragmentation = no"
    );
}

#[test]
fn force_fragments_the_first_message_before_the_peer_announced_support() {
    let (mut a, b) = chain_pair(Phase1Mode::Main, 576);
    a.fragmentation = Fragmentation::Force;
    // Smaller than config allows, so even MM1 is split.
    a.fragment_size = 200;
    let mut p = Pair::new(a, b);
    p.connect();
    assert_up(&p);
    let first = p.wire.iter().find(|w| w.from == Side::A).unwrap();
    assert!(is_fragment(&first.datagram), "MM1 went as fragments");
    assert!(p.b.counters().fragments_reassembled >= 2);
}

#[test]
fn messages_within_fragment_size_go_whole() {
    let (a, b) = chain_pair(Phase1Mode::Main, 9000);
    let mut p = Pair::new(a, b);
    p.connect();
    assert_up(&p);
    assert!(p.wire.iter().all(|w| !is_fragment(&w.datagram)));
}

#[test]
fn reordered_and_repeated_fragments_reassemble() {
    let (a, b) = chain_pair(Phase1Mode::Main, 576);
    let mut p = Pair::new(a, b);
    // The first fragment of A's MM5 is held back and delivered after the others; every
    // other fragment arrives twice.
    let held: Rc<RefCell<Vec<Datagram>>> = Rc::default();
    let h = Rc::clone(&held);
    p.filter = Box::new(move |w| {
        if w.from != Side::A || !is_fragment(&w.datagram) {
            return Fate::Deliver;
        }
        if h.borrow().is_empty() {
            h.borrow_mut().push(w.datagram.clone());
            return Fate::Drop;
        }
        Fate::Duplicate
    });
    p.a.initiate(p.now, 0);
    p.pump();
    assert_eq!(
        p.established(Side::B),
        0,
        "MM5 incomplete without fragment 1"
    );
    assert_eq!(p.b.reassembly().0, 1);
    let first = held.borrow_mut().pop().unwrap();
    p.b.handle_datagram(
        p.now,
        Datagram {
            local: first.remote,
            remote: first.local,
            data: first.data,
        },
    );
    p.run_for(Duration::from_secs(30));
    assert_up(&p);
    let c = p.b.counters();
    assert_eq!(c.fragments_reassembled, 1);
    assert!(c.fragments_dropped >= 1, "duplicates are dropped: {c:?}");
    assert_eq!(p.b.reassembly(), (0, 0));
}

#[test]
fn a_missing_fragment_times_out_and_its_reassembly_is_freed() {
    let (a, b) = chain_pair(Phase1Mode::Main, 576);
    let mut p = Pair::new(a, b);
    // Fragment 2 of A's MM5 never arrives, not even in retransmissions.
    p.filter = Box::new(|w| {
        let second = w.from == Side::A
            && is_fragment(&w.datagram)
            && w.datagram.data.get(28 + 6) == Some(&2);
        if second {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    p.a.initiate(p.now, 0);
    p.pump();
    assert_eq!(p.b.reassembly().0, 1);
    assert!(p.b.reassembly().1 > 0);
    p.run_for(Duration::from_secs(120));
    assert_eq!(p.established(Side::B), 0);
    assert!(p.b.counters().fragment_timeouts >= 1);
    assert_eq!(p.b.reassembly(), (0, 0), "nothing held once it timed out");
    assert_eq!(p.b.counters().fragments_reassembled, 0);
}

#[test]
fn a_message_over_the_size_limit_is_dropped_and_counted() {
    let (a, b) = chain_pair(Phase1Mode::Main, 576);
    let settings = Settings {
        fragments: FragmentLimits {
            max_bytes: 1000,
            ..FragmentLimits::default()
        },
        ..Settings::default()
    };
    let mut p = Pair::with_settings(a, b, settings);
    p.a.initiate(p.now, 0);
    p.pump();
    assert_eq!(p.established(Side::B), 0);
    assert!(p.b.counters().fragments_over_limit >= 1);
    assert!(p.b.counters().fragments_dropped >= p.b.counters().fragments_over_limit);
    assert!(p.b.reassembly().1 <= 1000, "never more than the limit held");
    // Retransmissions fare no better; once A gives up, nothing stays held.
    p.run_for(Duration::from_secs(600));
    assert_eq!(p.established(Side::B), 0);
    assert!(!p.ike_failures(Side::A).is_empty());
    assert_eq!(p.b.reassembly(), (0, 0));
}

#[test]
fn fragments_for_an_unknown_sa_are_dropped() {
    let (a, b) = chain_pair(Phase1Mode::Main, 576);
    let mut p = Pair::new(a, b);
    p.connect();
    let frag = fragments_from(&p, Side::A)[0].clone();
    let mut data = frag.data.clone();
    data[0] ^= 0xff; // another initiator cookie
    let before = p.b.counters().fragments_dropped;
    p.b.handle_datagram(
        p.now,
        Datagram {
            local: frag.remote,
            remote: frag.local,
            data,
        },
    );
    assert_eq!(p.b.counters().fragments_dropped, before + 1);
    assert_eq!(p.b.reassembly(), (0, 0));
}

#[test]
fn a_large_message_lost_whole_is_resent_in_fragments() {
    // fragment_size allows MM5 whole, but the path drops datagrams above 700 bytes.
    let (a, b) = chain_pair(Phase1Mode::Main, 1500);
    let mut p = Pair::new(a, b);
    p.filter = Box::new(|w| {
        if w.datagram.data.len() > 700 {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    p.connect();
    assert_up(&p);
    let whole_dropped = p
        .wire
        .iter()
        .any(|w| w.from == Side::A && w.datagram.data.len() > 700);
    assert!(whole_dropped, "MM5 first went whole");
    assert!(!fragments_from(&p, Side::A).is_empty());
    assert!(
        !fragments_from(&p, Side::B).is_empty(),
        "MM6 resent as fragments on MM5's repeat"
    );
}

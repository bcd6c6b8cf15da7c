//! Recovery after a restart (issue 12 §7) and re-authentication without loss (§9), with two
//! in-memory peers and a fake clock: invalid-SPI recovery, INITIAL-CONTACT, INVALID-SPI, what
//! unauthenticated input cannot do, rate limits, expiry and collisions of ISAKMP SAs.

use std::net::SocketAddr;
use std::time::Duration;

use ferrovpn_ike::wire::{
    ExchangeType, Flags, Header, Message, Notification, NotifyType, Payload, PayloadType,
    ProtocolId, IPSEC_DOI,
};
use ferrovpn_ike::{Datagram, Endpoint, Event, Role, Settings};
use ferrovpn_tests::*;

fn recoveries(p: &Pair, side: Side) -> Vec<String> {
    p.events(side)
        .iter()
        .filter_map(|e| match e {
            Event::Recovery { action, .. } => Some(action.clone()),
            _ => None,
        })
        .collect()
}

fn deleted_with(p: &Pair, side: Side, why: &str) -> Vec<(u32, u32)> {
    p.events(side)
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaDeleted {
                inbound_spi,
                outbound_spi,
                reason,
                ..
            } if reason.contains(why) => Some((*inbound_spi, *outbound_spi)),
            _ => None,
        })
        .collect()
}

/// (inbound, outbound) SPIs of every IPsec SA pair an endpoint holds now.
fn pairs(e: &Endpoint, p: &Pair) -> Vec<(u32, u32)> {
    e.ike_sas(p.now)
        .iter()
        .flat_map(|s| s.children.iter().map(|c| (c.spi_in, c.spi_out)))
        .collect()
}

/// Both sides hold exactly one ISAKMP SA and one IPsec pair, and the pairs mirror each other.
fn assert_one_tunnel(p: &Pair) {
    assert_eq!(p.a.ike_sas(p.now).len(), 1, "A: {:?}", p.a.ike_sas(p.now));
    assert_eq!(p.b.ike_sas(p.now).len(), 1, "B: {:?}", p.b.ike_sas(p.now));
    let (a, b) = (pairs(&p.a, p), pairs(&p.b, p));
    assert_eq!(a.len(), 1, "A pairs {a:?}");
    assert_eq!(b.len(), 1, "B pairs {b:?}");
    assert_eq!(
        (a[0].0, a[0].1),
        (b[0].1, b[0].0),
        "the pairs mirror each other"
    );
}

/// B forgets everything (kill -9 and restart): a fresh endpoint with the same connection.
fn restart_b(p: &mut Pair, seed: u8) {
    let mut b = Endpoint::new(Settings::default(), [seed; 32]);
    b.add_connection(conn_b());
    p.b = b;
    p.events_b.clear();
}

fn sockaddr(ip: std::net::IpAddr) -> SocketAddr {
    SocketAddr::new(ip, 500)
}

#[test]
fn a_restarted_responder_recovers_on_esp_with_an_unknown_spi_with_initial_contact() {
    let mut p = Pair::new(conn_a(), conn_b());
    p.connect();
    let (old_in, old_out) = pairs(&p.a, &p)[0];
    restart_b(&mut p, 9);
    // A keeps sending under its old outbound SPI; B's data plane reports it.
    p.b.handle_unknown_spi(p.now, None, ADDR_A, old_out);
    p.run_for(Duration::from_secs(2));
    let r = recoveries(&p, Side::B);
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(
        r[0].contains("initiating phase 1 with INITIAL-CONTACT"),
        "{r:?}"
    );
    assert_eq!(
        p.sent_names(Side::B).first(),
        Some(&"MM1"),
        "B initiates though it only responds"
    );
    assert!(p
        .events(Side::A)
        .iter()
        .any(|e| matches!(e, Event::InitialContact { .. })));
    assert_eq!(
        deleted_with(&p, Side::A, "INITIAL-CONTACT"),
        vec![(old_in, old_out)],
        "A dropped its stale pair at once"
    );
    assert_one_tunnel(&p);
    assert_eq!(p.a.ike_sas(p.now)[0].role, Role::Responder);
    assert_ne!(pairs(&p.a, &p)[0].1, old_out, "a new pair replaced it");
}

#[test]
fn ike_with_unknown_cookies_from_the_peer_starts_phase_1_when_we_have_no_sa() {
    let mut p = Pair::new(conn_a(), conn_b());
    p.connect();
    restart_b(&mut p, 9);
    // No traffic: A's DPD R-U-THERE (30 s) under the old cookies is what B hears first.
    p.run_for(Duration::from_secs(35));
    assert!(p.b.counters().unknown_sa >= 1);
    let r = recoveries(&p, Side::B);
    assert!(
        r.iter().any(|a| a.contains("IKE with unknown cookies")),
        "{r:?}"
    );
    assert!(!deleted_with(&p, Side::A, "INITIAL-CONTACT").is_empty());
    assert_one_tunnel(&p);
}

#[test]
fn invalid_spi_over_an_established_sa_drops_and_renegotiates_that_pair() {
    let mut p = Pair::new(conn_a(), conn_b());
    p.connect();
    let (a_in, a_out) = pairs(&p.a, &p)[0];
    // B's data plane lost the inbound SA under SPI a_out (as a peer that restarted and already
    // has a new ISAKMP SA would): it says so over the ISAKMP SA.
    p.b.handle_unknown_spi(p.now, None, ADDR_A, a_out);
    p.run_for(Duration::from_secs(2));
    let r = recoveries(&p, Side::B);
    assert_eq!(r.len(), 1);
    assert!(r[0].contains("sent INVALID-SPI"), "{r:?}");
    assert_eq!(
        deleted_with(&p, Side::A, "INVALID-SPI"),
        vec![(a_in, a_out)]
    );
    let now = pairs(&p.a, &p);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now[0], (a_in, a_out), "A negotiated a new pair");
    assert_eq!(p.a.ike_sas(p.now).len(), 1, "the ISAKMP SA stays");
    assert!(pairs(&p.b, &p).contains(&(now[0].1, now[0].0)));
}

/// An unprotected Informational under the SA's cookies, as anyone on the path can send.
fn forged_info(p: &Pair, notifies: Vec<Notification>) -> Datagram {
    let sa = &p.a.ike_sas(p.now)[0];
    let header = Header {
        initiator_spi: sa.cookies.initiator_spi,
        responder_spi: sa.cookies.responder_spi,
        next_payload: PayloadType::NONE,
        version: 0x10,
        exchange: ExchangeType::INFORMATIONAL,
        flags: Flags(0),
        message_id: 0x1234_5678,
        length: 0,
    };
    let payloads = notifies.into_iter().map(Payload::Notification).collect();
    Datagram {
        local: sockaddr(ADDR_A),
        remote: sockaddr(ADDR_B),
        data: Message { header, payloads }.emit(),
    }
}

#[test]
fn unauthenticated_input_never_tears_down_a_working_tunnel() {
    let mut p = Pair::new(conn_a(), conn_b());
    p.connect();
    let before = (pairs(&p.a, &p), pairs(&p.b, &p));
    let (_, a_out) = before.0[0];
    let cookies = p.a.ike_sas(p.now)[0].cookies;
    // 1. Unprotected INVALID-SPI for the live SPI and INITIAL-CONTACT under the live cookies.
    let forged = forged_info(
        &p,
        vec![
            Notification {
                doi: IPSEC_DOI,
                protocol: ProtocolId::ESP,
                notify_type: NotifyType::INVALID_SPI,
                spi: a_out.to_be_bytes().to_vec(),
                data: Vec::new(),
            },
            Notification {
                doi: IPSEC_DOI,
                protocol: ProtocolId::ISAKMP,
                notify_type: NotifyType::INITIAL_CONTACT,
                spi: [cookies.initiator_spi, cookies.responder_spi].concat(),
                data: Vec::new(),
            },
        ],
    );
    let unexpected = p.a.counters().unexpected;
    let logged = p.events(Side::A).len();
    p.a.handle_datagram(p.now, forged);
    p.pump();
    assert_eq!(p.a.counters().unexpected, unexpected + 1, "refused");
    // Its log line says so, unlike a genuine INFO's.
    let said = p.events(Side::A)[logged..].iter().any(|e| {
        matches!(e, Event::Message(m) if m.name == "INFO" && m.payloads.contains("unprotected after phase 1: ignored"))
    });
    assert!(said, "{:?}", &p.events(Side::A)[logged..]);
    // 2. The same notifies under cookies of no SA (a "new peer"), and spoofed IKE garbage.
    let mut stray = forged_info(&p, Vec::new());
    stray.data[..8].copy_from_slice(&[7; 8]);
    p.a.handle_datagram(p.now, stray);
    // 3. Spoofed ESP with SPIs nobody has, from the peer's address, many times.
    for i in 0..100u32 {
        p.a.handle_unknown_spi(p.now, None, ADDR_B, 0xdead_0000 + i);
    }
    p.run_for(Duration::from_secs(30));
    assert!(
        deleted_with(&p, Side::A, "").is_empty(),
        "{:?}",
        p.events(Side::A)
    );
    assert!(deleted_with(&p, Side::B, "").is_empty());
    assert_eq!((pairs(&p.a, &p), pairs(&p.b, &p)), before);
    assert!(!p.sent_names(Side::A).contains(&"MM1") || p.established(Side::A) == 1);
    assert_eq!(p.established(Side::A), 1, "no new phase 1 either");
    // The worst it caused: one INVALID-SPI (rate-limited), which B ignored (no such SA).
    let r = recoveries(&p, Side::A);
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(p.events(Side::B).iter().any(|e| matches!(
        e,
        Event::NotifyReceived {
            notify: NotifyType::INVALID_SPI,
            ..
        }
    )));
}

#[test]
fn recovery_acts_at_most_once_per_interval_per_peer() {
    let mut p = Pair::new(conn_a(), conn_b());
    p.connect();
    // Reports every 100 ms for 12 s: one INVALID-SPI per 5 s (t = 0, 5, 10).
    for _ in 0..120 {
        p.a.handle_unknown_spi(p.now, None, ADDR_B, 0xbad);
        p.run_for(Duration::from_millis(100));
    }
    assert_eq!(recoveries(&p, Side::A).len(), 3);
    assert_eq!(p.a.counters().recovery_triggers, 120);
    assert_eq!(p.a.counters().recovery_actions, 3);
    // Another address is no peer of ours: ignored, not even counted.
    p.a.handle_unknown_spi(p.now, None, "192.0.2.99".parse().unwrap(), 1);
    assert_eq!(p.a.counters().recovery_triggers, 120);
    // Without an SA, one phase 1 at a time: reports during it start no second one.
    restart_b(&mut p, 5);
    p.filter = Box::new(|_| Fate::Drop);
    for _ in 0..50 {
        p.b.handle_unknown_spi(p.now, None, ADDR_A, 0xbad);
        p.run_for(Duration::from_millis(200));
    }
    assert_eq!(
        p.sent_names(Side::B)
            .iter()
            .filter(|n| **n == "MM1")
            .count(),
        1
    );
}

#[test]
fn recovery_can_be_turned_off_per_connection() {
    let (a, mut b) = (conn_a(), conn_b());
    b.invalid_spi_recovery = false;
    let mut p = Pair::new(a, b.clone());
    p.connect();
    let mut fresh = Endpoint::new(Settings::default(), [9; 32]);
    fresh.add_connection(b);
    p.b = fresh;
    p.events_b.clear();
    p.b.handle_unknown_spi(p.now, None, ADDR_A, 1);
    p.run_for(Duration::from_secs(2));
    assert!(p.sent_names(Side::B).is_empty(), "B only counts");
    assert_eq!(p.b.counters().recovery_triggers, 1);
}

#[test]
fn an_expiring_isakmp_sa_hands_its_ipsec_sas_to_a_newer_one() {
    // No rekey before expiry (margin 0); B starts a second phase 1 5 s after A's, a
    // simultaneous one by the rules, so nothing is adopted: at A's SA's expiry its IPsec
    // pair must move to B's SA, not be deleted with it.
    let settings = Settings {
        rekey_margin: Duration::ZERO,
        rekey_share_percent: 0,
        ..Settings::default()
    };
    let (mut a, mut b) = (conn_a(), conn_b());
    a.ike_lifetime = Duration::from_secs(600);
    b.ike_lifetime = Duration::from_secs(600);
    let mut p = Pair::with_settings(a, b, settings);
    p.a.initiate(p.now, 0);
    p.run_for(Duration::from_secs(5));
    p.b.initiate(p.now, 0);
    p.run_for(Duration::from_secs(60));
    assert_eq!(p.a.ike_sas(p.now).len(), 2);
    let first = pairs(&p.a, &p);
    assert_eq!(first.len(), 2, "one pair from each phase 1: {first:?}");
    // X (A's) expires at ~600 s, Y (B's) at ~605 s: look in between.
    p.run_for(Duration::from_secs(537));
    for side in [Side::A, Side::B] {
        assert!(
            deleted_with(&p, side, "ISAKMP SA lifetime expired").is_empty(),
            "{side:?} deleted IPsec SAs with the expired ISAKMP SA"
        );
    }
    assert!(p.events(Side::A).iter().any(
        |e| matches!(e, Event::IkeSaDeleted { reason, .. } if reason.contains("lifetime expired"))
    ));
    assert_eq!(p.a.ike_sas(p.now).len(), 1);
    assert_eq!(pairs(&p.a, &p).len(), 2, "both pairs live on under B's SA");
}

#[test]
fn a_peers_reauthentication_moves_the_ipsec_sas_to_the_new_isakmp_sa_at_once() {
    // As strongSwan's IKEv1 "rekey": B (the original responder) runs a new Main Mode and no
    // Quick Mode. A keeps the pair, on the new SA, and deletes the old one after the drain.
    let mut p = Pair::new(conn_a(), conn_b());
    p.connect();
    let pair = pairs(&p.a, &p);
    let old = p.a.ike_sas(p.now)[0].cookies;
    p.b.initiate(p.now, 0);
    p.run_for(Duration::from_secs(1));
    let sas = p.a.ike_sas(p.now);
    assert_eq!(sas.len(), 1, "{sas:?}");
    assert_ne!(sas[0].cookies, old);
    assert_eq!(pairs(&p.a, &p).len(), 2, "{:?}", pairs(&p.a, &p));
    assert!(
        pairs(&p.a, &p).contains(&pair[0]),
        "the old pair moved over"
    );
    p.run_for(Duration::from_secs(10));
    assert!(deleted_with(&p, Side::A, "ISAKMP").is_empty());
    assert!(p.a.replaced_another(&sas[0].cookies.initiator_spi));
}

#[test]
fn both_peers_rekeying_with_equal_lifetimes_keep_the_sa_count_bounded() {
    // Both initiate at once (two ISAKMP SAs, two IPsec pairs), equal short lifetimes: every
    // rekey is due on both sides together, for an hour of fake time.
    let (mut a, mut b) = (conn_a(), conn_b());
    for c in [&mut a, &mut b] {
        c.ike_lifetime = Duration::from_secs(300);
        c.esp_lifetime = Duration::from_secs(120);
    }
    let mut p = Pair::new(a, b);
    p.a.initiate(p.now, 0);
    p.b.initiate(p.now, 0);
    let (mut max_ike, mut max_pairs) = (0, 0);
    for _ in 0..360 {
        p.run_for(Duration::from_secs(10));
        for e in [&p.a, &p.b] {
            max_ike = max_ike.max(e.ike_sas(p.now).len());
            max_pairs = max_pairs.max(pairs(e, &p).len());
        }
        assert!(p.a.is_up(0) && p.b.is_up(0));
    }
    assert!(max_ike <= 2, "ISAKMP SAs peaked at {max_ike}");
    assert!(max_pairs <= 4, "IPsec pairs peaked at {max_pairs}");
    assert_eq!(p.a.ike_sas(p.now).len(), 1, "{:?}", p.a.ike_sas(p.now));
    assert_eq!(p.b.ike_sas(p.now).len(), 1);
    let (pa, pb) = (pairs(&p.a, &p), pairs(&p.b, &p));
    assert!(pa.len() <= 2 && pb.len() <= 2, "{pa:?} {pb:?}");
    assert!(p.ike_failures(Side::A).is_empty() && p.ike_failures(Side::B).is_empty());
    let established = p.established(Side::A);
    assert!(
        established <= 2 + 3600 / 240 + 1,
        "{established} Main Modes in an hour"
    );
}

#[test]
fn the_side_that_initiated_an_isakmp_rekey_reports_it_as_a_rekey() {
    let (mut a, mut b) = (conn_a(), conn_b());
    a.ike_lifetime = Duration::from_secs(600);
    b.ike_lifetime = Duration::from_secs(600);
    let mut p = Pair::new(a, b);
    p.connect();
    let first = p.a.ike_sas(p.now)[0].cookies.initiator_spi;
    assert!(
        !p.a.replaced_another(&first),
        "the first SA replaced nothing"
    );
    p.run_for(Duration::from_secs(560));
    let sas = p.a.ike_sas(p.now);
    assert_eq!(sas.len(), 1);
    let new = sas[0].cookies.initiator_spi;
    assert_ne!(new, first);
    assert!(p.a.replaced_another(&new), "initiator of the rekey");
    assert!(p.b.replaced_another(&new), "responder of the rekey");
}

#[test]
fn a_peers_pair_that_expires_drains_its_inbound_half_and_stragglers_get_no_invalid_spi() {
    let (mut a, mut b) = (conn_a(), conn_b());
    a.esp_lifetime = Duration::from_secs(300);
    b.esp_lifetime = Duration::from_secs(300);
    let mut p = Pair::new(a, b);
    p.connect(); // t0 + 60 s; A's rekey (due at t0 + 240 s) never gets an answer
    p.filter = Box::new(|w| {
        let qm =
            Header::parse(&w.datagram.data).is_ok_and(|h| h.exchange == ExchangeType::QUICK_MODE);
        if qm {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    let (b_in, b_out) = pairs(&p.b, &p)[0];
    p.run_for(Duration::from_secs(241));
    let draining = |p: &Pair| {
        p.events(Side::B).iter().any(
            |e| matches!(e, Event::ChildSaDraining { inbound_spi, .. } if *inbound_spi == b_in),
        )
    };
    assert!(draining(&p), "B stops sending on A's pair at its lifetime");
    assert!(
        deleted_with(&p, Side::B, "").is_empty(),
        "its inbound half drains"
    );
    // ESP A sent just before its own expiry arrives now: no INVALID-SPI for it.
    p.b.handle_unknown_spi(p.now, None, ADDR_A, b_in);
    p.run_for(Duration::from_secs(6));
    assert_eq!(deleted_with(&p, Side::B, ""), vec![(b_in, b_out)]);
    assert!(
        recoveries(&p, Side::B).is_empty(),
        "{:?}",
        recoveries(&p, Side::B)
    );
}

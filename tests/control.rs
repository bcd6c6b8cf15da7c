//! Operator control of one connection (`ferrovpn initiate/terminate/rekey`) and the connection
//! changes of a reload, with two in-memory peers and a fake clock: what each does to the SAs of
//! both sides, that the peer is told, and what is refused.

use std::time::Duration;

use ferrovpn_ike::endpoint::control::{ControlError, Terminated};
use ferrovpn_ike::proposal::parse_esp_proposals;
use ferrovpn_ike::{Endpoint, Event};
use ferrovpn_tests::*;

/// (inbound, outbound) SPIs of every IPsec SA pair an endpoint holds now.
fn pairs(e: &Endpoint, p: &Pair) -> Vec<(u32, u32)> {
    e.ike_sas(p.now)
        .iter()
        .flat_map(|s| s.children.iter().map(|c| (c.spi_in, c.spi_out)))
        .collect()
}

fn deleted(p: &Pair, side: Side) -> Vec<(u32, String)> {
    p.events(side)
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaDeleted {
                inbound_spi,
                reason,
                ..
            } => Some((*inbound_spi, reason.clone())),
            _ => None,
        })
        .collect()
}

fn ike_deleted(p: &Pair, side: Side) -> Vec<String> {
    p.events(side)
        .iter()
        .filter_map(|e| match e {
            Event::IkeSaDeleted { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

fn connected() -> Pair {
    let mut p = Pair::new(conn_a(), conn_b());
    p.connect();
    assert!(p.a.is_up(0) && p.b.is_up(0));
    assert_eq!(pairs(&p.a, &p).len(), 1);
    p
}

#[test]
fn terminate_deletes_both_sas_and_the_peer_is_told() {
    let mut p = connected();
    let (spi_in, spi_out) = pairs(&p.a, &p)[0];
    let done = p.a.terminate(p.now, 0).unwrap();
    assert_eq!(
        done,
        Terminated {
            ike_sas: 1,
            ipsec_sas: 1
        }
    );
    p.pump();
    assert!(!p.a.is_up(0));
    assert_eq!(p.a.ike_sas(p.now).len(), 0);
    assert!(deleted(&p, Side::A).iter().any(|(s, _)| *s == spi_in));
    // B got the DELETE payloads: its pair and its ISAKMP SA are gone too.
    assert!(!p.b.is_up(0), "B: {:?}", p.b.ike_sas(p.now));
    assert!(
        deleted(&p, Side::B).iter().any(|(s, _)| *s == spi_out),
        "{:?}",
        deleted(&p, Side::B)
    );
    assert_eq!(ike_deleted(&p, Side::B).len(), 1);
    // Nothing in the endpoint brings it back by itself.
    p.run_for(Duration::from_secs(600));
    assert!(!p.a.is_up(0) && !p.b.is_up(0));
    // Until the operator initiates again.
    assert!(p.a.initiate_now(p.now, 0).unwrap().is_some());
    p.run_for(Duration::from_secs(60));
    assert!(p.a.is_up(0) && p.b.is_up(0));
}

#[test]
fn a_pair_the_data_plane_could_not_install_is_deleted_on_both_sides_and_phase_1_stays() {
    let mut p = connected();
    let (spi_in, spi_out) = pairs(&p.a, &p)[0];
    let why = "the data plane could not install it";
    assert!(
        !p.a.delete_child_sa(p.now, 0, spi_out, why),
        "an SPI of the peer's"
    );
    assert!(
        !p.a.delete_child_sa(p.now, 7, spi_in, why),
        "no such connection"
    );
    assert!(p.a.delete_child_sa(p.now, 0, spi_in, why));
    p.pump();
    assert_eq!(deleted(&p, Side::A), [(spi_in, why.to_string())]);
    assert!(pairs(&p.a, &p).is_empty());
    // B got the DELETE: its pair is gone (after the drain time), not counted up any more.
    assert!(deleted(&p, Side::B).is_empty() || deleted(&p, Side::B)[0].0 == spi_out);
    p.run_for(Duration::from_secs(30));
    assert!(
        deleted(&p, Side::B).iter().any(|(s, _)| *s == spi_out),
        "{:?}",
        deleted(&p, Side::B)
    );
    assert!(pairs(&p.b, &p).is_empty(), "{:?}", pairs(&p.b, &p));
    assert!(p.a.is_up(0) && p.b.is_up(0), "phase 1 stays up");
    // The pair is missing, so the daemon's retry negotiates it again on the same phase 1.
    assert_eq!(p.a.missing_pairs(0), [0]);
    assert_eq!(p.a.negotiate_missing(p.now, 0), Ok(1));
    p.pump();
    assert_eq!(pairs(&p.a, &p).len(), 1);
    assert_eq!(pairs(&p.b, &p).len(), 1);
    assert_eq!(p.established(Side::A), 1, "no new phase 1");
}

#[test]
fn terminate_of_a_connection_that_is_down_deletes_nothing_and_unknown_ones_are_refused() {
    let mut p = Pair::new(conn_a(), conn_b());
    assert_eq!(p.a.terminate(p.now, 0).unwrap(), Terminated::default());
    assert_eq!(
        p.a.terminate(p.now, 7),
        Err(ControlError::UnknownConnection)
    );
    assert_eq!(p.a.rekey(p.now, 7), Err(ControlError::UnknownConnection));
    assert_eq!(
        p.a.initiate_now(p.now, 7),
        Err(ControlError::UnknownConnection)
    );
    p.pump();
    assert!(p.wire.is_empty(), "nothing was sent");
}

#[test]
fn a_half_open_phase_1_is_abandoned_by_terminate() {
    let mut p = Pair::new(conn_a(), conn_b());
    // B never answers.
    p.filter = Box::new(|w| {
        if w.from == Side::A {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    p.a.initiate(p.now, 0);
    p.pump();
    let done = p.a.terminate(p.now, 0).unwrap();
    assert_eq!(done.ike_sas, 1);
    assert_eq!(p.a.ike_sas(p.now).len(), 0);
    let sent = p.wire.len();
    p.run_for(Duration::from_secs(120));
    assert_eq!(p.wire.len(), sent, "no retransmission after terminate");
}

#[test]
fn rekey_makes_new_quick_mode_sas_and_deletes_the_old_ones_after() {
    let mut p = connected();
    let old_a = pairs(&p.a, &p)[0];
    assert_eq!(p.a.rekey(p.now, 0), Ok(1));
    p.pump();
    // Make before break: both pairs exist until the drain time passes.
    let now_a = pairs(&p.a, &p);
    assert_eq!(now_a.len(), 2, "{now_a:?}");
    p.run_for(Duration::from_secs(60));
    let new_a = pairs(&p.a, &p);
    let new_b = pairs(&p.b, &p);
    assert_eq!(new_a.len(), 1, "{new_a:?}");
    assert_eq!(new_b.len(), 1, "{new_b:?}");
    assert_ne!(new_a[0], old_a);
    assert_eq!((new_a[0].0, new_a[0].1), (new_b[0].1, new_b[0].0));
    assert!(deleted(&p, Side::A).iter().any(|(s, _)| *s == old_a.0));
    assert!(deleted(&p, Side::B).iter().any(|(s, _)| *s == old_a.1));
    // Phase 1 is untouched.
    assert_eq!(p.established(Side::A), 1);
    assert!(ike_deleted(&p, Side::A).is_empty());
}

#[test]
fn the_responder_of_phase_1_can_rekey_too() {
    let mut p = connected();
    let old_b = pairs(&p.b, &p)[0];
    assert_eq!(p.b.rekey(p.now, 0), Ok(1));
    p.run_for(Duration::from_secs(60));
    let new_b = pairs(&p.b, &p);
    assert_eq!(new_b.len(), 1, "{new_b:?}");
    assert_ne!(new_b[0], old_b);
    assert_eq!(pairs(&p.a, &p), vec![(new_b[0].1, new_b[0].0)]);
}

#[test]
fn rekey_of_a_connection_that_is_down_is_refused_as_not_up() {
    let mut p = Pair::new(conn_a(), conn_b());
    assert_eq!(p.a.rekey(p.now, 0), Err(ControlError::NotUp));
}

#[test]
fn initiate_of_a_connection_that_is_up_starts_nothing() {
    let mut p = connected();
    let sent = p.wire.len();
    assert_eq!(p.a.initiate_now(p.now, 0), Ok(None));
    p.pump();
    assert_eq!(p.wire.len(), sent);
    assert_eq!(p.a.ike_sas(p.now).len(), 1);
}

#[test]
fn a_replaced_connection_is_renegotiated_under_its_new_settings() {
    let mut p = connected();
    let old = pairs(&p.a, &p)[0];
    let mut changed = conn_a();
    changed.esp_proposals = parse_esp_proposals("aes256gcm16").unwrap();
    let mut changed_b = conn_b();
    changed_b.esp_proposals = parse_esp_proposals("aes256gcm16").unwrap();
    // A changes first and tells B; B is then changed the same way (its reload).
    let done = p.a.replace_connection(p.now, 0, changed).unwrap();
    assert_eq!(done.ipsec_sas, 1);
    p.pump();
    assert!(!p.b.is_up(0), "the peer was told");
    p.b.replace_connection(p.now, 0, changed_b).unwrap();
    assert_eq!(p.a.connections()[0].name, "to-b");
    p.a.initiate_now(p.now, 0).unwrap();
    p.run_for(Duration::from_secs(60));
    assert!(p.a.is_up(0));
    let new = pairs(&p.a, &p);
    assert_eq!(new.len(), 1);
    assert_ne!(new[0], old);
    let child = p.children(Side::A).last().copied().unwrap().clone();
    assert_eq!(
        child.outbound.enc_key.len(),
        32 + 4,
        "AES-256-GCM key and salt"
    );
}

#[test]
fn a_removed_connection_is_deleted_and_no_longer_matches_anything() {
    let mut p = connected();
    let done = p.a.remove_connection(p.now, 0).unwrap();
    assert_eq!(done.ike_sas, 1);
    p.pump();
    assert!(!p.b.is_up(0), "the peer was told");
    assert!(p.a.is_removed(0));
    assert_eq!(p.a.find_connection("to-b"), None);
    assert_eq!(
        p.a.initiate_now(p.now, 0),
        Err(ControlError::UnknownConnection)
    );
    // The peer starts again: A no longer has a connection for it.
    let before = p.a.counters().no_connection;
    p.b.initiate(p.now, 0);
    p.pump();
    assert_eq!(p.a.counters().no_connection, before + 1);
    assert!(!p.a.is_up(0));
    // A connection added afterwards gets a new id; the removed one's stays taken.
    let id = p.a.add_connection(conn_a());
    assert_eq!(id, 1);
    assert_eq!(p.a.find_connection("to-b"), Some(1));
}

//! Soft and hard lifetimes (RFC 4301 §4.4.2.1) reported as events; SAD changes while a reader
//! is in use.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use ferrovpn_esp::*;

const GCM: Cipher = Cipher::AesGcm {
    key: AesKeyLen::Aes128,
    icv: GcmIcv::Icv16,
};

fn pair_with_lifetimes(l: Lifetimes) -> Pair {
    let sad = Arc::new(Sad::new());
    let mut o = config(0x2000, Direction::Outbound, GCM, 3);
    o.lifetimes = l;
    let mut i = o.clone();
    i.direction = Direction::Inbound;
    let out = sad.add(&o, Timestamp::ZERO).unwrap();
    let inb = sad.add(&i, Timestamp::ZERO).unwrap();
    Pair { sad, out, inb }
}

#[test]
fn packet_limits_fire_soft_then_hard_once() {
    let l = Lifetimes {
        soft: Limits {
            packets: Some(3),
            ..Limits::default()
        },
        hard: Limits {
            packets: Some(5),
            ..Limits::default()
        },
    };
    let p = pair_with_lifetimes(l);
    let ev = p.sad.events();
    // Each event wakes the reader's thread as it is sent (set after the SAs were added).
    let wakes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let w = wakes.clone();
    p.sad.set_wake(Box::new(move || {
        w.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }));
    let mut r = p.sad.reader();
    let t = Timestamp::ZERO;
    for i in 0..5 {
        let esp = encap_one(&mut r, p.out, &ipv4(10, i), t).unwrap();
        decap_one(&mut r, &esp, t).unwrap();
    }
    assert_eq!(
        encap_one(&mut r, p.out, &ipv4(10, 9), t),
        Err(EspError::SaExpired)
    );
    let got: Vec<_> = ev
        .try_iter()
        .map(|e| (e.handle, e.direction, e.kind, e.cause))
        .collect();
    use Direction::*;
    use LifetimeCause::Packets;
    use LifetimeKind::*;
    assert_eq!(
        got,
        [
            (p.out, Outbound, Soft, Packets),
            (p.inb, Inbound, Soft, Packets),
            (p.out, Outbound, Hard, Packets),
            (p.inb, Inbound, Hard, Packets),
        ]
    );
    assert_eq!(p.sad.stats(p.out).unwrap().expired_drops, 1);
    assert_eq!(wakes.load(std::sync::atomic::Ordering::Relaxed), 4);
}

#[test]
fn byte_limits() {
    let l = Lifetimes {
        soft: Limits {
            bytes: Some(100),
            ..Limits::default()
        },
        hard: Limits::default(),
    };
    let p = pair_with_lifetimes(l);
    let ev = p.sad.events();
    let mut r = p.sad.reader();
    encap_one(&mut r, p.out, &ipv4(60, 0), Timestamp::ZERO).unwrap();
    assert_eq!(ev.try_iter().count(), 0);
    encap_one(&mut r, p.out, &ipv4(60, 0), Timestamp::ZERO).unwrap();
    let e: Vec<_> = ev.try_iter().collect();
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].kind, e[0].cause),
        (LifetimeKind::Soft, LifetimeCause::Bytes)
    );
}

#[test]
fn time_limits_with_a_manual_clock() {
    let l = Lifetimes {
        soft: Limits {
            time: Some(Duration::from_secs(50)),
            ..Limits::default()
        },
        hard: Limits {
            time: Some(Duration::from_secs(60)),
            ..Limits::default()
        },
    };
    let p = pair_with_lifetimes(l);
    let ev = p.sad.events();
    let clock = ManualClock::new(Timestamp::ZERO);
    clock.advance(Duration::from_secs(49));
    p.sad.poll_lifetimes(clock.now());
    assert_eq!(ev.try_iter().count(), 0);
    clock.advance(Duration::from_secs(1));
    p.sad.poll_lifetimes(clock.now());
    let soft: Vec<_> = ev.try_iter().collect();
    assert_eq!(soft.len(), 2);
    assert!(soft
        .iter()
        .all(|e| (e.kind, e.cause) == (LifetimeKind::Soft, LifetimeCause::Time)));
    let mut r = p.sad.reader();
    let esp = encap_one(&mut r, p.out, &ipv4(10, 0), clock.now()).unwrap();
    clock.advance(Duration::from_secs(10));
    // Hard expiry is enforced on the packet path even before the timer polls.
    assert_eq!(
        decap_one(&mut r, &esp, clock.now()),
        Err(EspError::SaExpired)
    );
    p.sad.poll_lifetimes(clock.now());
    let hard: Vec<_> = ev.try_iter().collect();
    assert_eq!(hard.len(), 2);
    assert!(hard.iter().all(|e| e.kind == LifetimeKind::Hard));
}

#[test]
fn replace_and_remove_while_a_reader_is_live() {
    let p = pair(GCM);
    let mut r = p.sad.reader();
    let t = Timestamp::ZERO;
    let esp = encap_one(&mut r, p.out, &ipv4(10, 0), t).unwrap();
    // Rekey the outbound SA under the same handle: new keys, fresh sequence numbers.
    let new_out = config(0x3000, Direction::Outbound, GCM, 77);
    p.sad.replace(p.out, &new_out, t).unwrap();
    let esp2 = encap_one(&mut r, p.out, &ipv4(10, 0), t).unwrap();
    assert_eq!(&esp2[..8], &[0, 0, 0x30, 0, 0, 0, 0, 1]);
    assert_eq!(decap_one(&mut r, &esp2, t), Err(EspError::UnknownSpi));
    let mut new_in = new_out.clone();
    new_in.direction = Direction::Inbound;
    let inb2 = p.sad.add(&new_in, t).unwrap();
    assert_eq!(decap_one(&mut r, &esp2, t).unwrap(), ipv4(10, 0));
    // Old inbound SA still works until removed.
    assert!(decap_one(&mut r, &esp, t).is_ok());
    p.sad.remove(p.inb).unwrap();
    assert_eq!(p.sad.remove(p.inb), Err(SadError::NotFound));
    assert_eq!(decap_one(&mut r, &esp, t), Err(EspError::UnknownSpi));
    assert_eq!(p.sad.replace(p.out, &new_in, t), Err(SadError::Direction));
    assert_eq!(p.sad.list().len(), 2);
    assert_eq!(p.sad.stats(inb2).unwrap().packets, 1);
}

#[test]
fn sad_changes_concurrently_with_traffic() {
    let p = pair(GCM);
    let sad = p.sad.clone();
    let out = p.out;
    let worker = std::thread::spawn(move || {
        let mut r = sad.reader();
        let mut ok = 0;
        for i in 0..2000u32 {
            if let Ok(esp) = encap_one(&mut r, out, &ipv4(20, i as u8), Timestamp::ZERO) {
                if decap_one(&mut r, &esp, Timestamp::ZERO).is_ok() {
                    ok += 1;
                }
            }
        }
        ok
    });
    for i in 0..200u32 {
        let cfg = config(0x10_0000 + i, Direction::Inbound, GCM, i as u8);
        let h = p.sad.add(&cfg, Timestamp::ZERO).unwrap();
        if i & 1 == 0 {
            p.sad.remove(h).unwrap();
        }
    }
    assert_eq!(worker.join().unwrap(), 2000);
    assert_eq!(p.sad.list().len(), 102);
}

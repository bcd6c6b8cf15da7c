//! A hostile peer built from the ike crate. Its messages are rewritten through
//! `Settings::tamper` (feature `test-support`) after they are built and before their HASH is
//! computed and they are encrypted with the session keys, so they authenticate like the
//! messages of a peer that knows the PSK and chose to say this: mutate, rehash, re-encrypt,
//! with no key leaving the crate. Used by the tests, the `ike_plaintext` fuzz target, its
//! proptest twin and the `evil_peer` binary.

use std::sync::{Arc, Mutex};

use ferrovpn_ike::tamper::{Sealing, Tamper};
use ferrovpn_ike::wire::attr::{ike, ipsec, life_type};
use ferrovpn_ike::wire::{
    Attribute, AttributeValue, IdType, NotifyType, Payload, PayloadType, ProtocolId,
};

/// Replaces the lifetimes of every transform in the SA payloads with `secs` seconds and, if
/// given, `kb` kilobytes (RFC 2407 §4.5, RFC 2409 App. A); 8-byte values when they need it.
pub fn set_lifetimes(payloads: &mut [Payload], secs: u64, kb: Option<u64>) {
    for p in payloads {
        let Payload::Sa(sa) = p else { continue };
        for prop in &mut sa.proposals {
            let (ty, dur) = if prop.protocol == ProtocolId::ISAKMP {
                (ike::LIFE_TYPE, ike::LIFE_DURATION)
            } else {
                (ipsec::SA_LIFE_TYPE, ipsec::SA_LIFE_DURATION)
            };
            for t in &mut prop.transforms {
                t.attributes
                    .retain(|a| a.attr_type != ty && a.attr_type != dur);
                t.attributes.push(Attribute::basic(ty, life_type::SECONDS));
                t.attributes.push(Attribute::from_u64(dur, secs));
                if let Some(kb) = kb {
                    t.attributes
                        .push(Attribute::basic(ty, life_type::KILOBYTES));
                    t.attributes.push(Attribute::from_u64(dur, kb));
                }
            }
        }
    }
}

/// Gives every ESP proposal in the SA payloads the SPI `spi` (a reserved one, 0-255, is what
/// RFC 4303 §2.1 forbids and the tests send).
pub fn set_esp_spi(payloads: &mut [Payload], spi: u32) {
    for p in payloads {
        let Payload::Sa(sa) = p else { continue };
        for prop in &mut sa.proposals {
            if prop.protocol == ProtocolId::ESP {
                prop.spi = spi.to_be_bytes().to_vec();
            }
        }
    }
}

/// A hook that gives the SA payloads of the messages named in `names` (e.g. MM2, QM2) the
/// lifetimes `secs` / `kb`.
pub fn lifetime_tamper(names: &'static [&'static str], secs: u64, kb: Option<u64>) -> Tamper {
    Tamper::new(move |s: &Sealing, payloads: &mut Vec<Payload>| {
        if names.contains(&s.name) {
            set_lifetimes(payloads, secs, kb);
        }
    })
}

/// Reads operands for [`mutate`] from fuzz input; zeros once it is used up.
pub struct Input<'a>(pub &'a [u8]);

impl Input<'_> {
    pub fn u8(&mut self) -> u8 {
        let Some((&x, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        x
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    pub fn index(&mut self, len: usize) -> Option<usize> {
        (len > 0).then(|| usize::from(self.u8()) % len)
    }

    /// A value from a few interesting ones or the input: lifetimes, lengths, counters.
    pub fn u64(&mut self) -> u64 {
        match self.u8() % 8 {
            0 => 0,
            1 => 1,
            2 => u64::from(u32::MAX),
            3 => u64::MAX,
            4 => u64::MAX - 1,
            5 => 1 << 63,
            _ => {
                let mut b = [0u8; 8];
                for x in &mut b {
                    *x = self.u8();
                }
                u64::from_be_bytes(b)
            }
        }
    }

    pub fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = usize::from(self.u8()).min(max);
        (0..n).map(|_| self.u8()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The byte vectors a payload carries, for byte-level mutations.
fn byte_fields(p: &mut Payload) -> Vec<&mut Vec<u8>> {
    match p {
        Payload::KeyExchange(b)
        | Payload::Hash(b)
        | Payload::Signature(b)
        | Payload::Nonce(b)
        | Payload::VendorId(b) => vec![b],
        Payload::Identification(id) | Payload::NatOa { id, .. } => vec![&mut id.data],
        Payload::Notification(n) => vec![&mut n.spi, &mut n.data],
        Payload::Delete(d) => d.spis.iter_mut().collect(),
        Payload::Sa(sa) => sa.proposals.iter_mut().map(|p| &mut p.spi).collect(),
        Payload::Certificate { data, .. } => vec![data],
        Payload::CertificateRequest { authority, .. } => vec![authority],
        Payload::NatD { hash, .. } => vec![hash],
        Payload::Fragment(f) => vec![&mut f.data],
        Payload::Unknown { data, .. } => vec![data],
        Payload::Attributes(a) => a
            .attributes
            .iter_mut()
            .filter_map(|x| match &mut x.value {
                ferrovpn_ike::wire::AttributeValue::Variable(v) => Some(v),
                ferrovpn_ike::wire::AttributeValue::Basic(_) => None,
            })
            .collect(),
    }
}

/// One structured mutation of a message's plaintext payloads, driven by `input`: attribute
/// values (lifetimes, groups, key lengths), byte fields, field numbers, payloads removed,
/// duplicated, reordered, or raw bytes under any payload type (parsed by the receiver as that
/// type, behind the HASH check).
pub fn mutate(payloads: &mut Vec<Payload>, input: &mut Input<'_>) {
    let op = input.u8();
    match op % 10 {
        0 | 1 => {
            // An SA attribute: new value, or new type.
            let sas: Vec<usize> = (0..payloads.len())
                .filter(|&i| matches!(payloads.get(i), Some(Payload::Sa(_))))
                .collect();
            let Some(i) = input.index(sas.len()).and_then(|i| sas.get(i).copied()) else {
                return;
            };
            let Some(Payload::Sa(sa)) = payloads.get_mut(i) else {
                return;
            };
            let Some(p) = input
                .index(sa.proposals.len())
                .and_then(|k| sa.proposals.get_mut(k))
            else {
                return;
            };
            let Some(t) = input
                .index(p.transforms.len())
                .and_then(|k| p.transforms.get_mut(k))
            else {
                return;
            };
            if op % 10 == 1 && input.u8() & 1 == 0 {
                t.transform_id = input.u8();
                return;
            }
            match input
                .index(t.attributes.len())
                .and_then(|k| t.attributes.get_mut(k))
            {
                Some(a) if op & 0x10 != 0 => a.attr_type = input.u16() & 0x7fff,
                Some(a) => {
                    let v = input.u64();
                    *a = if op & 0x20 != 0 {
                        let n = usize::from(input.u8() % 9);
                        let b = v.to_be_bytes();
                        Attribute {
                            attr_type: a.attr_type,
                            value: AttributeValue::Variable(
                                b.get(8 - n..).unwrap_or_default().to_vec(),
                            ),
                        }
                    } else {
                        Attribute::from_u64(a.attr_type, v)
                    };
                }
                None => {}
            }
        }
        2 => {
            let secs = input.u64();
            let kb = (op & 0x10 != 0).then(|| input.u64());
            set_lifetimes(payloads, secs, kb);
        }
        3 | 4 => {
            // Flip, truncate or extend a byte field.
            let Some(p) = input
                .index(payloads.len())
                .and_then(|i| payloads.get_mut(i))
            else {
                return;
            };
            let mut fields = byte_fields(p);
            let Some(b) = input.index(fields.len()).and_then(|i| fields.get_mut(i)) else {
                return;
            };
            match input.u8() % 3 {
                0 => {
                    if let Some(x) = input.index(b.len()).and_then(|i| b.get_mut(i)) {
                        *x ^= input.u8().max(1);
                    }
                }
                1 => {
                    let keep = usize::from(input.u8());
                    b.truncate(keep);
                }
                _ => b.extend(input.bytes(300)),
            }
        }
        5 => {
            if let Some(i) = input.index(payloads.len()) {
                payloads.remove(i);
            }
        }
        6 => {
            if let Some(p) = input.index(payloads.len()).and_then(|i| payloads.get(i)) {
                let p = p.clone();
                payloads.push(p);
            }
        }
        7 => {
            if let (Some(i), Some(j)) = (input.index(payloads.len()), input.index(payloads.len())) {
                payloads.swap(i, j);
            }
        }
        8 => {
            // Numbers in ID, Notification, Delete and Proposal payloads.
            let Some(p) = input
                .index(payloads.len())
                .and_then(|i| payloads.get_mut(i))
            else {
                return;
            };
            match p {
                Payload::Identification(id) => {
                    id.id_type = IdType(input.u8());
                    id.protocol = input.u8();
                    id.port = input.u16();
                }
                Payload::Notification(n) => {
                    n.notify_type = NotifyType(input.u16());
                    n.protocol = ProtocolId(input.u8());
                }
                Payload::Delete(d) => {
                    d.protocol = ProtocolId(input.u8());
                    d.spi_size = input.u8();
                }
                Payload::Sa(sa) => {
                    if let Some(p) = sa.proposals.first_mut() {
                        p.protocol = ProtocolId(input.u8());
                        p.number = input.u8();
                    }
                }
                _ => {}
            }
        }
        _ => {
            // Raw bytes under any payload type, at any position.
            let p = Payload::Unknown {
                payload_type: PayloadType(input.u8()),
                data: input.bytes(255),
            };
            let at = input.index(payloads.len() + 1).unwrap_or(0);
            payloads.insert(at.min(payloads.len()), p);
        }
    }
}

/// Which messages a fuzz program rewrites and how: `(name, mutation bytes)` pairs; each
/// sealed message named takes the next program of its name (then the name is spent).
pub type Programs = Arc<Mutex<Vec<(&'static str, Vec<u8>)>>>;

/// The names of the protected messages, and MM1/MM2/AM2 (their SA payloads carry lifetimes).
pub const MESSAGES: [&str; 10] = [
    "MM2", "AM2", "MM5", "MM6", "AM3", "QM1", "QM2", "QM3", "INFO", "MM1",
];

/// Splits fuzz input into programs: `[name index, length, mutation bytes…]…`.
pub fn programs(data: &[u8]) -> Programs {
    let mut input = Input(data);
    let mut v = Vec::new();
    while !input.is_empty() && v.len() < 16 {
        let name = MESSAGES
            .get(usize::from(input.u8()) % MESSAGES.len())
            .copied()
            .unwrap_or("QM2");
        let bytes = input.bytes(64);
        v.push((name, bytes));
    }
    Arc::new(Mutex::new(v))
}

/// A hook that runs the first pending program of each sealed message's name on it.
pub fn program_tamper(programs: Programs) -> Tamper {
    Tamper::new(move |s: &Sealing, payloads: &mut Vec<Payload>| {
        let Ok(mut v) = programs.lock() else { return };
        let Some(i) = v.iter().position(|(n, _)| *n == s.name) else {
            return;
        };
        let (_, bytes) = v.remove(i);
        let mut input = Input(&bytes);
        while !input.is_empty() {
            mutate(payloads, &mut input);
        }
    })
}

/// One fuzz case of the `ike_plaintext` target and its proptest twin: A (initiator) and B
/// negotiate MM or AM, then Quick Mode (PFS and the commit bit on flag bits), both sealing
/// through [`program_tamper`], then an hour of timers runs. Both peers must not panic, and
/// whatever is established keeps within each side's own lifetimes (RFC 2409 §4.5).
pub fn plaintext_conversation(data: &[u8]) {
    use std::time::{Duration, Instant};

    use ferrovpn_ike::proposal::{parse_esp_proposals, parse_ike_proposals};
    use ferrovpn_ike::{ConnectionConfig, Endpoint, Event, Phase1Mode, Settings};

    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let conn = |name: &str, local, remote| {
        let mut c = ConnectionConfig::new(name, local, remote, crate::PSK);
        c.mode = if flags & 1 == 0 {
            Phase1Mode::Main
        } else {
            Phase1Mode::Aggressive
        };
        c.allow_aggressive_psk = true;
        c.ike_proposals = parse_ike_proposals("aes128-sha256-x25519").unwrap_or_default();
        let esp = if flags & 2 == 0 {
            "aes128gcm16"
        } else {
            "aes128-sha256-x25519"
        };
        c.esp_proposals = parse_esp_proposals(esp).unwrap_or_default();
        c.request_commit = flags & 4 != 0;
        c.ike_lifetime = Duration::from_secs(600);
        c.esp_lifetime = Duration::from_secs(300);
        c.esp_lifetime_kb = (flags & 8 != 0).then_some(4096);
        c
    };
    let settings = Settings {
        tamper: Some(program_tamper(programs(rest))),
        ..Settings::default()
    };
    let mut a = Endpoint::new(settings.clone(), [1; 32]);
    let mut b = Endpoint::new(settings, [2; 32]);
    let ca = conn("to-b", crate::ADDR_A, crate::ADDR_B);
    let cb = conn("to-a", crate::ADDR_B, crate::ADDR_A);
    let limits = [(ca.ike_lifetime, ca.esp_lifetime, ca.esp_lifetime_kb); 2];
    a.add_connection(ca);
    b.add_connection(cb);
    let mut now = Instant::now();
    let start = now;
    a.initiate(now, 0);
    let mut idle_rounds = 0;
    for _ in 0..400 {
        let mut moved = false;
        while let Some(d) = a.poll_transmit() {
            moved = true;
            let d = ferrovpn_ike::Datagram {
                local: d.remote,
                remote: d.local,
                data: d.data,
            };
            b.handle_datagram(now, d);
        }
        while let Some(d) = b.poll_transmit() {
            moved = true;
            let d = ferrovpn_ike::Datagram {
                local: d.remote,
                remote: d.local,
                data: d.data,
            };
            a.handle_datagram(now, d);
        }
        for (side, e) in [&mut a, &mut b].into_iter().enumerate() {
            let (ike_life, esp_life, esp_kb) = limits[side];
            while let Some(ev) = e.poll_event() {
                match ev {
                    Event::IkeSaEstablished { lifetime, .. } => {
                        assert!(
                            lifetime <= ike_life,
                            "ISAKMP SA lifetime {lifetime:?} above ours"
                        );
                    }
                    Event::ChildSaEstablished(c) | Event::ChildSaInboundReady(c) => {
                        assert!(
                            c.lifetime <= esp_life,
                            "IPsec SA lifetime {:?} above ours",
                            c.lifetime
                        );
                        if let (Some(ours), Some(got)) = (esp_kb, c.lifetime_kb) {
                            assert!(got <= ours, "IPsec SA lifetime {got} KB above ours");
                        }
                    }
                    _ => {}
                }
            }
        }
        if moved {
            idle_rounds = 0;
            continue;
        }
        // Nothing in flight: the next timer, within two hours of fake time.
        idle_rounds += 1;
        let next = [a.poll_timeout(), b.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(t) if t <= start + Duration::from_secs(7200) && idle_rounds < 50 => {
                now = now.max(t);
                a.handle_timeout(now);
                b.handle_timeout(now);
            }
            _ => break,
        }
    }
    let _ = (a.ike_sas(now), b.ike_sas(now), a.counters(), b.counters());
}

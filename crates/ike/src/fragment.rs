//! IKEv1 fragmentation as Cisco and strongSwan do it (FRAGMENTATION vendor ID, FRAG payload
//! 132): a whole phase 1 message, its ISAKMP header included, is cut into FRAG payloads, each
//! sent in a message of its own with the same cookies, message ID 0, the phase 1 exchange
//! type and no E flag; fragment ID 1, numbers from 1, the LAST flag on the final one.
//! Reassembly here is bounded (fragments, bytes, concurrent reassemblies per peer and
//! overall, a timeout) and every drop is a typed [`FragmentError`].

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::config::FragmentLimits;
use crate::time::later;
use crate::wire::{Flags, Fragment, Header, Payload, PayloadType, WireError};

/// The fragment ID strongSwan (and, it says, other implementations) always sends.
pub const FRAGMENT_ID: u16 = 1;
/// Generic payload header and the FRAG payload's id/number/flags.
const FRAG_OVERHEAD: usize = 8;
/// The smallest datagram every path carries whole: IPv4 (RFC 791) and IPv6 (RFC 8200 §5).
pub fn minimum_datagram(remote: &SocketAddr) -> usize {
    if remote.is_ipv4() {
        576
    } else {
        1280
    }
}

/// The largest ISAKMP message that fits an IP datagram of `datagram_size` bytes between
/// `local` and `remote` (IP and UDP headers, and the non-ESP marker on UDP 4500).
pub fn isakmp_budget(datagram_size: usize, local: &SocketAddr, remote: &SocketAddr) -> usize {
    let ip = if remote.is_ipv4() { 20 } else { 40 };
    let marker = if local.port() == 4500 || remote.port() == 4500 {
        4
    } else {
        0
    };
    datagram_size.saturating_sub(ip + 8 + marker)
}

/// Cuts `message` (a whole ISAKMP message) into fragment messages of at most `budget` bytes
/// each. `None` when the message fits whole, its header is not one, or it would take more than
/// 255 fragments.
pub fn split(message: &[u8], budget: usize) -> Option<Vec<Vec<u8>>> {
    if message.len() <= budget {
        return None;
    }
    let header = Header::parse(message).ok()?;
    let chunk = budget.checked_sub(Header::LEN + FRAG_OVERHEAD)?.max(1);
    let count = message.len().div_ceil(chunk);
    if count > usize::from(u8::MAX) {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for (i, data) in message.chunks(chunk).enumerate() {
        let number = u8::try_from(i + 1).ok()?;
        let frag = Payload::Fragment(Fragment {
            id: FRAGMENT_ID,
            number,
            last: i + 1 == count,
            data: data.to_vec(),
        });
        let msg = crate::wire::Message {
            header: Header {
                next_payload: PayloadType::FRAGMENT,
                flags: Flags(0),
                message_id: 0,
                length: 0,
                ..header.clone()
            },
            payloads: vec![frag],
        };
        out.push(msg.emit());
    }
    Some(out)
}

/// Why a fragment was not taken (each is counted by the endpoint).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FragmentError {
    #[error("not a fragment message: {0}")]
    Malformed(#[from] WireError),
    #[error("fragment for no ISAKMP SA of this peer")]
    NoSa,
    #[error("fragmentation is off for this connection")]
    Refused,
    #[error("fragment number {0} is zero or above the limit")]
    BadNumber(u8),
    #[error("fragment {number} after the last one ({last})")]
    AfterLast { number: u8, last: u8 },
    #[error("a second LAST fragment ({0}) disagrees with the first")]
    LastConflict(u8),
    #[error("fragment {0} seen already")]
    Duplicate(u8),
    #[error("reassembled message would exceed {0} bytes")]
    TooLarge(usize),
    #[error("too many reassemblies in progress")]
    TooManyReassemblies,
    #[error("reassembled message is not the fragments' own ISAKMP message")]
    BadMessage,
}

/// What a fragment did to its reassembly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// Kept; more are missing.
    Pending,
    /// The whole message, ready for the normal input path.
    Complete(Vec<u8>),
}

/// Identifies one message being reassembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    peer: IpAddr,
    initiator_spi: [u8; 8],
    responder_spi: [u8; 8],
    id: u16,
}

#[derive(Debug)]
struct Partial {
    started: Instant,
    last: Option<u8>,
    bytes: usize,
    pieces: BTreeMap<u8, Vec<u8>>,
}

/// Every reassembly in progress, across all peers.
#[derive(Debug, Default)]
pub struct Reassembler {
    partial: HashMap<Key, Partial>,
    /// Reassemblies of a first message (MM1/AM1, no responder cookie yet) forgotten to make
    /// room, since the last [`Reassembler::take_evicted`].
    evicted: u64,
}

/// Parses a fragment message: its header and the one FRAG payload it carries.
pub fn parse(datagram: &[u8]) -> Result<(Header, Fragment), FragmentError> {
    let msg = crate::wire::Message::parse(datagram).or_else(|e| match e {
        // racoon sets the E flag on fragments, which are not encrypted (strongSwan accepts).
        WireError::Encrypted => {
            let mut d = datagram.to_vec();
            if let Some(f) = d.get_mut(19) {
                *f &= !Flags::ENCRYPTION;
            }
            crate::wire::Message::parse(&d)
        }
        e => Err(e),
    })?;
    let mut payloads = msg.payloads.into_iter();
    match (payloads.next(), payloads.next()) {
        (Some(Payload::Fragment(f)), None) => Ok((msg.header, f)),
        _ => Err(WireError::Malformed("FRAG message").into()),
    }
}

impl Reassembler {
    /// Reassemblies in progress.
    pub fn len(&self) -> usize {
        self.partial.len()
    }

    pub fn is_empty(&self) -> bool {
        self.partial.is_empty()
    }

    /// Bytes held by reassemblies in progress.
    pub fn bytes(&self) -> usize {
        self.partial.values().map(|p| p.bytes).sum()
    }

    /// Adds one fragment from `peer`. Duplicates and out-of-order fragments are fine; any
    /// limit crossed drops the fragment (and a reassembly it made too large).
    pub fn add(
        &mut self,
        now: Instant,
        limits: &FragmentLimits,
        peer: IpAddr,
        header: &Header,
        frag: Fragment,
    ) -> Result<Added, FragmentError> {
        if frag.number == 0 || frag.number > limits.max_fragments {
            return Err(FragmentError::BadNumber(frag.number));
        }
        let key = Key {
            peer,
            initiator_spi: header.initiator_spi,
            responder_spi: header.responder_spi,
            id: frag.id,
        };
        if !self.partial.contains_key(&key) {
            let full = |r: &Self| {
                r.partial.len() >= limits.max_total
                    || r.partial.keys().filter(|k| k.peer == peer).count() >= limits.max_per_peer
            };
            if full(self) {
                self.evict_first_message(peer, limits);
            }
            if full(self) {
                return Err(FragmentError::TooManyReassemblies);
            }
            self.partial.insert(
                key,
                Partial {
                    started: now,
                    last: None,
                    bytes: 0,
                    pieces: BTreeMap::new(),
                },
            );
        }
        let Some(p) = self.partial.get_mut(&key) else {
            return Err(FragmentError::TooManyReassemblies);
        };
        if let Some(last) = p.last {
            if frag.number > last {
                return Err(FragmentError::AfterLast {
                    number: frag.number,
                    last,
                });
            }
            if frag.last && frag.number != last {
                return Err(FragmentError::LastConflict(frag.number));
            }
        }
        if p.pieces.contains_key(&frag.number) {
            return Err(FragmentError::Duplicate(frag.number));
        }
        if frag.last {
            if let Some(beyond) = p.pieces.keys().next_back().filter(|n| **n > frag.number) {
                let beyond = *beyond;
                return Err(FragmentError::AfterLast {
                    number: beyond,
                    last: frag.number,
                });
            }
            p.last = Some(frag.number);
        }
        let bytes = p.bytes.saturating_add(frag.data.len());
        if bytes > limits.max_bytes {
            self.partial.remove(&key);
            return Err(FragmentError::TooLarge(limits.max_bytes));
        }
        p.bytes = bytes;
        p.pieces.insert(frag.number, frag.data);
        let complete = p
            .last
            .is_some_and(|last| p.pieces.len() == usize::from(last));
        if !complete {
            return Ok(Added::Pending);
        }
        let Some(p) = self.partial.remove(&key) else {
            return Ok(Added::Pending);
        };
        let whole: Vec<u8> = p.pieces.into_values().flatten().collect();
        // The message must be the fragments' own: same cookies, and not a fragment again.
        match Header::parse(&whole) {
            Ok(h)
                if h.initiator_spi == header.initiator_spi
                    && h.responder_spi == header.responder_spi
                    && h.next_payload != PayloadType::FRAGMENT =>
            {
                Ok(Added::Complete(whole))
            }
            _ => Err(FragmentError::BadMessage),
        }
    }

    /// Makes room by forgetting the oldest reassembly of a first message (no responder
    /// cookie: anyone can send one with a peer's address), from this peer when it is at its
    /// own bound, else from any. Reassemblies under an SA's cookies are never evicted, so a
    /// spoofed flood only ever replaces its own.
    fn evict_first_message(&mut self, peer: IpAddr, limits: &FragmentLimits) {
        let at_peer_bound =
            self.partial.keys().filter(|k| k.peer == peer).count() >= limits.max_per_peer;
        let victim = self
            .partial
            .iter()
            .filter(|(k, _)| k.responder_spi == [0; 8] && (!at_peer_bound || k.peer == peer))
            .min_by_key(|(_, p)| p.started)
            .map(|(k, _)| *k);
        if let Some(k) = victim {
            self.partial.remove(&k);
            self.evicted = self.evicted.saturating_add(1);
        }
    }

    /// First-message reassemblies evicted since the last call.
    pub fn take_evicted(&mut self) -> u64 {
        std::mem::take(&mut self.evicted)
    }

    /// Frees reassemblies older than the timeout; returns how many.
    pub fn expire(&mut self, now: Instant, limits: &FragmentLimits) -> usize {
        let before = self.partial.len();
        self.partial
            .retain(|_, p| now < later(p.started, limits.timeout));
        before - self.partial.len()
    }

    /// When the oldest reassembly times out.
    pub fn next_timeout(&self, limits: &FragmentLimits) -> Option<Instant> {
        self.partial
            .values()
            .map(|p| later(p.started, limits.timeout))
            .min()
    }

    /// Forgets every reassembly of an ISAKMP SA (it is gone).
    pub fn forget(&mut self, initiator_spi: &[u8; 8]) {
        self.partial
            .retain(|k, _| k.initiator_spi != *initiator_spi);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ExchangeType;
    use std::time::Duration;

    fn message(len: usize) -> Vec<u8> {
        let h = Header {
            initiator_spi: [1; 8],
            responder_spi: [2; 8],
            next_payload: PayloadType::ID,
            version: Header::VERSION,
            exchange: ExchangeType::IDENTITY_PROTECTION,
            flags: Flags(Flags::ENCRYPTION),
            message_id: 0,
            length: u32::try_from(len).unwrap(),
        };
        let mut out = Vec::new();
        h.emit(&mut out);
        out.extend((0..len - Header::LEN).map(|i| (i % 251) as u8));
        out
    }

    fn feed(
        r: &mut Reassembler,
        now: Instant,
        frags: &[Vec<u8>],
    ) -> Vec<Result<Added, FragmentError>> {
        let limits = FragmentLimits::default();
        frags
            .iter()
            .map(|f| {
                let (h, frag) = parse(f).unwrap();
                r.add(now, &limits, "192.0.2.1".parse().unwrap(), &h, frag)
            })
            .collect()
    }

    #[test]
    fn a_message_that_fits_is_not_split() {
        assert_eq!(split(&message(500), 1000), None);
    }

    #[test]
    fn fragments_carry_the_cookies_message_id_zero_and_fit_the_budget() {
        let m = message(3000);
        let frags = split(&m, 1000).unwrap();
        assert_eq!(frags.len(), 4);
        for (i, f) in frags.iter().enumerate() {
            assert!(f.len() <= 1000);
            let (h, frag) = parse(f).unwrap();
            assert_eq!((h.initiator_spi, h.responder_spi), ([1; 8], [2; 8]));
            assert_eq!((h.message_id, h.flags), (0, Flags(0)));
            assert_eq!(h.exchange, ExchangeType::IDENTITY_PROTECTION);
            assert_eq!((frag.id, usize::from(frag.number)), (1, i + 1));
            assert_eq!(frag.last, i == 3);
        }
    }

    #[test]
    fn reordered_and_repeated_fragments_reassemble_the_message() {
        let m = message(3000);
        let mut frags = split(&m, 1000).unwrap();
        frags.reverse();
        frags.insert(2, frags[0].clone());
        let mut r = Reassembler::default();
        let out = feed(&mut r, Instant::now(), &frags);
        assert_eq!(out[1], Ok(Added::Pending));
        assert_eq!(out[2], Err(FragmentError::Duplicate(4)));
        assert_eq!(out.last().unwrap(), &Ok(Added::Complete(m)));
        assert!(r.is_empty());
    }

    #[test]
    fn a_missing_fragment_times_out_and_is_freed() {
        let frags = split(&message(3000), 1000).unwrap();
        let mut r = Reassembler::default();
        let now = Instant::now();
        feed(&mut r, now, &frags[..3]);
        assert_eq!(r.len(), 1);
        let limits = FragmentLimits::default();
        let at = r.next_timeout(&limits).unwrap();
        assert_eq!(r.expire(at - Duration::from_millis(1), &limits), 0);
        assert_eq!(r.expire(at, &limits), 1);
        assert!(r.is_empty() && r.bytes() == 0);
    }

    #[test]
    fn limits_drop_fragments() {
        let limits = FragmentLimits {
            max_bytes: 2000,
            max_per_peer: 1,
            ..FragmentLimits::default()
        };
        let peer: IpAddr = "192.0.2.1".parse().unwrap();
        let mut r = Reassembler::default();
        let now = Instant::now();
        let frags = split(&message(3000), 1000).unwrap();
        let mut res = Vec::new();
        for f in &frags {
            let (h, frag) = parse(f).unwrap();
            res.push(r.add(now, &limits, peer, &h, frag));
        }
        assert_eq!(res[2], Err(FragmentError::TooLarge(2000)));
        assert!(r.is_empty() || r.bytes() <= 2000);
        // A second message from the same peer while one is in progress.
        let (h, frag) = parse(&frags[0]).unwrap();
        r.add(now, &limits, peer, &h, frag).unwrap();
        let (mut h2, frag2) = parse(&frags[1]).unwrap();
        h2.initiator_spi = [9; 8];
        assert_eq!(
            r.add(now, &limits, peer, &h2, frag2),
            Err(FragmentError::TooManyReassemblies)
        );
        let bad = Fragment {
            id: 1,
            number: 200,
            last: false,
            data: vec![0],
        };
        assert_eq!(
            r.add(now, &limits, peer, &h, bad),
            Err(FragmentError::BadNumber(200))
        );
    }

    #[test]
    fn first_messages_make_room_but_never_displace_an_sas_reassembly() {
        let limits = FragmentLimits {
            max_per_peer: 2,
            ..FragmentLimits::default()
        };
        let peer: IpAddr = "192.0.2.1".parse().unwrap();
        let mut r = Reassembler::default();
        let now = Instant::now();
        let frags = split(&message(3000), 1000).unwrap();
        let (sa_header, frag) = parse(&frags[0]).unwrap();
        r.add(now, &limits, peer, &sa_header, frag).unwrap();
        // Spoofed first messages (no responder cookie) with ever new cookies.
        for i in 0..5u8 {
            let (mut h, frag) = parse(&frags[0]).unwrap();
            h.initiator_spi = [i; 8];
            h.responder_spi = [0; 8];
            r.add(
                now + Duration::from_secs(u64::from(i)),
                &limits,
                peer,
                &h,
                frag,
            )
            .unwrap();
        }
        assert_eq!(r.len(), 2);
        assert_eq!(r.take_evicted(), 4);
        // The SA's message still completes.
        for f in &frags[1..] {
            let (h, frag) = parse(f).unwrap();
            let out = r.add(now, &limits, peer, &h, frag).unwrap();
            if f == frags.last().unwrap() {
                assert!(matches!(out, Added::Complete(_)));
            }
        }
    }

    #[test]
    fn fragments_after_the_last_are_refused() {
        let frags = split(&message(3000), 1000).unwrap();
        let mut r = Reassembler::default();
        let now = Instant::now();
        feed(&mut r, now, &frags[3..4]);
        let (h, mut f) = parse(&frags[0]).unwrap();
        f.number = 7;
        assert_eq!(
            r.add(
                now,
                &FragmentLimits::default(),
                "192.0.2.1".parse().unwrap(),
                &h,
                f
            ),
            Err(FragmentError::AfterLast { number: 7, last: 4 })
        );
    }
}

//! ISAKMP messages of a capture, named as operators know them (MM1–MM6, AM1–AM3, QM1–QM3,
//! INFO) by following each IKE SA (initiator cookie) and each exchange (message ID) in capture
//! order, and decrypted with the phase 1 key when one is given (RFC 2409 Appendix B).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use ferrovpn_ike::algorithm::{IkeCipher, IkeHash};
use ferrovpn_ike::config::FragmentLimits;
use ferrovpn_ike::crypto::{cipher, hash, phase2_iv};
use ferrovpn_ike::fragment::{self, Added, Reassembler};
use ferrovpn_ike::wire::attr::ike as attr;
use ferrovpn_ike::wire::{
    ExchangeType, Flags, Header, HeaderView, Payload, PayloadIter, PayloadType, SaPayload,
};

use super::capture::Timestamp;
use super::keys::KeyTable;

/// A negotiation counts as in flight until phase 1 completes, an Informational exchange ends
/// it, or it has been silent this long (longer than strongSwan's and Cisco's retransmissions).
pub const IN_FLIGHT_SECS: f64 = 180.0;

/// At most this many negotiations per address pair are followed for simultaneity, so a
/// flood of MM1s costs linear time; the oldest drop out first.
const MAX_IN_FLIGHT: usize = 64;

/// Largest cipher block (AES); the last ciphertext block is kept at this size.
const MAX_BLOCK: usize = 16;

/// Operator's name of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageName {
    /// Main Mode message 1–6 (RFC 2409 §5); a peer that keeps sending new messages under one
    /// cookie pair counts on (MM7, MM8, ...).
    Main(u32),
    /// Aggressive Mode message 1–3 (RFC 2409 §5).
    Aggressive(u32),
    /// Quick Mode message 1–3 (4 with the commit bit, RFC 2409 §5.5).
    Quick(u32),
    /// Informational exchange (RFC 2408 §4.8).
    Info,
    /// Mode config (draft-dukes-ike-mode-cfg) and anything else, by exchange type.
    Other(ExchangeType),
    /// One piece of a message split by IKEv1 fragmentation (a FRAG payload, as strongSwan and
    /// Cisco send it); the message itself follows once its last piece is in.
    Fragment,
}

impl fmt::Display for MessageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageName::Main(n) => write!(f, "MM{n}"),
            MessageName::Aggressive(n) => write!(f, "AM{n}"),
            MessageName::Quick(n) => write!(f, "QM{n}"),
            MessageName::Info => f.write_str("INFO"),
            MessageName::Other(ExchangeType::TRANSACTION) => f.write_str("MODECFG"),
            MessageName::Other(t) => write!(f, "{t}"),
            MessageName::Fragment => f.write_str("FRAG"),
        }
    }
}

/// What could be read of a message's payloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Plaintext payload chain.
    Plain(Vec<Payload>),
    /// Encrypted (E flag, RFC 2408 §3.1).
    Encrypted(Decryption),
    /// The plaintext chain does not parse.
    Malformed(String),
}

/// Outcome of decrypting an encrypted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decryption {
    /// No key for this IKE SA.
    NoKey,
    /// A key, but not what else is needed (the chosen SA, both KE payloads), or it failed.
    Failed(String),
    /// The decrypted chain and the padding after it.
    Decrypted {
        payloads: Vec<Payload>,
        padding: usize,
    },
}

/// One ISAKMP datagram of the capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsakmpMessage {
    pub frame: usize,
    pub time: Timestamp,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// Received on port 4500 behind the non-ESP marker (RFC 3948 §2.2).
    pub nat_t: bool,
    pub header: Header,
    pub name: MessageName,
    /// Sent by the initiator of its exchange (phase 1 initiator for MM/AM, QM initiator).
    pub from_initiator: bool,
    /// Frame number of the identical message this one repeats.
    pub retransmission_of: Option<usize>,
    /// Other IKE SAs (initiator cookies) in flight between the same two addresses.
    pub simultaneous_with: Vec<[u8; 8]>,
    /// Frames of the fragments this message was put together from (empty: it came whole).
    pub reassembled_from: Vec<usize>,
    pub body: Body,
}

impl IsakmpMessage {
    /// The payloads, plaintext or decrypted, when known.
    pub fn payloads(&self) -> Option<&[Payload]> {
        match &self.body {
            Body::Plain(p) | Body::Encrypted(Decryption::Decrypted { payloads: p, .. }) => Some(p),
            _ => None,
        }
    }
}

/// A datagram on an IKE port that is not an IKEv1 message (IKEv2, garbage, truncated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecodable {
    pub frame: usize,
    pub time: Timestamp,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub reason: String,
}

/// An entry of the ISAKMP part of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Message(Box<IsakmpMessage>),
    Undecodable(Undecodable),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Main,
    Aggressive,
}

/// One phase 2 or Informational exchange: who started it, how many distinct messages each
/// side sent, and the CBC chain.
#[derive(Debug, Default)]
struct Phase2 {
    initiator: Option<SocketAddr>,
    sent: Sent,
    last_block: Option<Vec<u8>>,
}

/// Distinct messages each side of an exchange sent so far. A capture can hold any number of
/// them under one cookie pair or message ID, so the count saturates instead of wrapping.
#[derive(Debug, Default, Clone, Copy)]
struct Sent {
    initiator: u32,
    responder: u32,
}

impl Sent {
    /// Counts one more message from this side and returns its position in the exchange:
    /// the initiator sends 1, 3, 5, ..., the responder 2, 4, 6, ... (RFC 2409 §5).
    fn next(&mut self, from_initiator: bool) -> u32 {
        let k = if from_initiator {
            &mut self.initiator
        } else {
            &mut self.responder
        };
        *k = k.saturating_add(1);
        let n = k.saturating_mul(2);
        if from_initiator {
            n.saturating_sub(1)
        } else {
            n
        }
    }
}

/// What is known of one IKE SA.
#[derive(Debug)]
struct IkeSa {
    initiator: SocketAddr,
    peers: (IpAddr, IpAddr),
    mode: Option<Mode>,
    sent: Sent,
    done: bool,
    last_time: Timestamp,
    offered: Option<SaPayload>,
    chosen: Option<SaPayload>,
    g_xi: Option<Vec<u8>>,
    g_xr: Option<Vec<u8>>,
    /// Last ciphertext block of phase 1 (RFC 2409 App. B), once a message was encrypted.
    last_block: Option<Vec<u8>>,
    exchanges: HashMap<u32, Phase2>,
    /// Message bytes → index of the first record carrying them.
    seen: HashMap<Vec<u8>, usize>,
}

fn peer_pair(a: IpAddr, b: IpAddr) -> (IpAddr, IpAddr) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

/// The phase 1 cipher and hash of the chosen transform (the responder's SA, else the
/// initiator's when it offered exactly one).
fn phase1_algorithms(sa: &IkeSa) -> Result<(IkeCipher, IkeHash), String> {
    let payload = match (&sa.chosen, &sa.offered) {
        (Some(c), _) => c,
        (None, Some(o))
            if o.proposals
                .iter()
                .map(|p| p.transforms.len())
                .sum::<usize>()
                == 1 =>
        {
            o
        }
        _ => return Err("the responder's SA payload (MM2/AM2) is not in the capture".into()),
    };
    let t = payload
        .proposals
        .first()
        .and_then(|p| p.transforms.first())
        .ok_or("the chosen SA has no transform")?;
    let value = |a| {
        t.attribute(a)
            .and_then(|a| a.as_u64())
            .and_then(|v| u16::try_from(v).ok())
    };
    let enc = value(attr::ENCRYPTION_ALGORITHM).ok_or("the chosen SA names no cipher")?;
    let cipher = IkeCipher::from_attributes(enc, value(attr::KEY_LENGTH))
        .ok_or_else(|| format!("unsupported phase 1 cipher {enc}"))?;
    let h = value(attr::HASH_ALGORITHM).ok_or("the chosen SA names no hash")?;
    let hash = IkeHash::from_attribute(h).ok_or_else(|| format!("unsupported phase 1 hash {h}"))?;
    Ok((cipher, hash))
}

/// Whether `src` is the endpoint `side`: by address, as NAT-T moves IKE from port 500 to
/// 4500 mid-exchange, and by port too when both ends share an address.
fn same_side(src: SocketAddr, dst: SocketAddr, side: SocketAddr) -> bool {
    if src.ip() == dst.ip() {
        src == side
    } else {
        src.ip() == side.ip()
    }
}

fn last_block(ciphertext: &[u8]) -> Vec<u8> {
    ciphertext
        .get(ciphertext.len().saturating_sub(MAX_BLOCK)..)
        .unwrap_or_default()
        .to_vec()
}

fn tail(block: &[u8], len: usize) -> Option<&[u8]> {
    block.get(block.len().checked_sub(len)?..)
}

/// Follows the IKE SAs of a capture; feed it datagrams in capture order.
#[derive(Debug, Default)]
pub struct Tracker<'k> {
    keys: Option<&'k KeyTable>,
    sas: HashMap<[u8; 8], IkeSa>,
    /// Candidates for simultaneous negotiations, by address pair, oldest first.
    in_flight: HashMap<(IpAddr, IpAddr), VecDeque<[u8; 8]>>,
    records: Vec<Record>,
    fragments: Fragments,
}

/// One message being reassembled: sender, cookies, fragment ID.
type PieceKey = (IpAddr, [u8; 8], [u8; 8], u16);

/// Reassembly of fragmented messages (the endpoint's own reassembler, with limits fit for a
/// capture: many at once, none timed out, as the capture's timing is not the reader's).
struct Fragments {
    reassembler: Reassembler,
    limits: FragmentLimits,
    /// When the reader started: the reassembler's clock, which never advances.
    now: Instant,
    /// Frames of each reassembly in progress, by sender, cookies and fragment ID.
    frames: HashMap<PieceKey, Vec<usize>>,
    /// Fragment bytes → frame of their first sighting.
    seen: HashMap<Vec<u8>, usize>,
}

impl Default for Fragments {
    fn default() -> Self {
        Fragments {
            reassembler: Reassembler::default(),
            limits: FragmentLimits {
                max_per_peer: 256,
                max_total: 4096,
                timeout: Duration::MAX,
                ..FragmentLimits::default()
            },
            now: Instant::now(),
            frames: HashMap::new(),
            seen: HashMap::new(),
        }
    }
}

impl fmt::Debug for Fragments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fragments")
            .field("in_progress", &self.frames.len())
            .finish()
    }
}

impl<'k> Tracker<'k> {
    pub fn new(keys: Option<&'k KeyTable>) -> Self {
        Tracker {
            keys,
            sas: HashMap::new(),
            in_flight: HashMap::new(),
            records: Vec::new(),
            fragments: Fragments::default(),
        }
    }

    pub fn into_records(self) -> Vec<Record> {
        self.records
    }

    /// Accounts one ISAKMP datagram (without the non-ESP marker).
    pub fn add(
        &mut self,
        frame: usize,
        time: Timestamp,
        src: SocketAddr,
        dst: SocketAddr,
        nat_t: bool,
        bytes: &[u8],
    ) {
        let view = match HeaderView::new_checked(bytes) {
            Ok(v) => v,
            Err(e) => {
                let reason = match bytes.get(17) {
                    Some(v) if v >> 4 == 2 => "IKEv2 message (not decoded)".to_string(),
                    _ => format!("not an IKEv1 message: {e}"),
                };
                self.records.push(Record::Undecodable(Undecodable {
                    frame,
                    time,
                    src,
                    dst,
                    reason,
                }));
                return;
            }
        };
        let header = view.header();
        if header.next_payload == PayloadType::FRAGMENT {
            self.add_fragment(frame, time, src, dst, nat_t, header, bytes);
            return;
        }
        let body_bytes = view.body();
        let index = self.records.len();
        if !self.sas.contains_key(&header.initiator_spi) {
            let list = self
                .in_flight
                .entry(peer_pair(src.ip(), dst.ip()))
                .or_default();
            if list.len() >= MAX_IN_FLIGHT {
                list.pop_front();
            }
            list.push_back(header.initiator_spi);
        }
        let sa = self
            .sas
            .entry(header.initiator_spi)
            .or_insert_with(|| IkeSa {
                initiator: src,
                peers: peer_pair(src.ip(), dst.ip()),
                mode: None,
                sent: Sent::default(),
                done: false,
                last_time: time,
                offered: None,
                chosen: None,
                g_xi: None,
                g_xr: None,
                last_block: None,
                exchanges: HashMap::new(),
                seen: HashMap::new(),
            });
        sa.last_time = time;

        // A retransmission repeats the bytes of an earlier message: same name, same body.
        if let Some(&orig) = sa.seen.get(bytes) {
            if let Some(Record::Message(m)) = self.records.get(orig) {
                let mut again = (**m).clone();
                again.frame = frame;
                again.time = time;
                again.src = src;
                again.dst = dst;
                again.nat_t = nat_t;
                again.retransmission_of = Some(m.frame);
                again.simultaneous_with = Vec::new();
                self.records.push(Record::Message(Box::new(again)));
                self.mark_simultaneous(index, header.initiator_spi);
                return;
            }
        }
        sa.seen.insert(bytes.to_vec(), index);

        let encrypted = header.flags.contains(Flags::ENCRYPTION);
        let phase1 = header.message_id == 0
            && matches!(
                header.exchange,
                ExchangeType::IDENTITY_PROTECTION | ExchangeType::AGGRESSIVE
            );
        let (name, from_initiator) = if phase1 {
            let from_i = same_side(src, dst, sa.initiator);
            if sa.mode.is_none() {
                sa.mode = Some(if header.exchange == ExchangeType::AGGRESSIVE {
                    Mode::Aggressive
                } else {
                    Mode::Main
                });
            }
            let n = sa.sent.next(from_i);
            let name = if header.exchange == ExchangeType::AGGRESSIVE {
                if n >= 3 {
                    sa.done = true;
                }
                MessageName::Aggressive(n)
            } else {
                if n >= 6 {
                    sa.done = true;
                }
                MessageName::Main(n)
            };
            (name, from_i)
        } else {
            let ex = sa.exchanges.entry(header.message_id).or_default();
            let initiator = *ex.initiator.get_or_insert(src);
            let from_i = same_side(src, dst, initiator);
            let n = ex.sent.next(from_i);
            let name = match header.exchange {
                ExchangeType::QUICK_MODE => MessageName::Quick(n),
                ExchangeType::INFORMATIONAL => {
                    // An Informational exchange during phase 1 reports its failure.
                    sa.done = true;
                    MessageName::Info
                }
                t => MessageName::Other(t),
            };
            if header.exchange == ExchangeType::QUICK_MODE {
                sa.done = true;
            }
            (name, from_i)
        };

        let body = if encrypted {
            let d = decrypt(self.keys, sa, &header, body_bytes, phase1);
            // The CBC chain follows the ciphertext whether or not it could be decrypted.
            let block = last_block(body_bytes);
            if phase1 {
                sa.last_block = Some(block);
            } else if let Some(ex) = sa.exchanges.get_mut(&header.message_id) {
                ex.last_block = Some(block);
            }
            Body::Encrypted(d)
        } else {
            match parse_chain(&header, body_bytes) {
                Ok((payloads, _)) => Body::Plain(payloads),
                Err(e) => Body::Malformed(e),
            }
        };
        if phase1 {
            learn_phase1(sa, from_initiator, &body);
        }
        if sa.mode.is_some() && header.message_id == 0 && !phase1 {
            sa.done = true;
        }

        self.records.push(Record::Message(Box::new(IsakmpMessage {
            frame,
            time,
            src,
            dst,
            nat_t,
            header: header.clone(),
            name,
            from_initiator,
            retransmission_of: None,
            simultaneous_with: Vec::new(),
            reassembled_from: Vec::new(),
            body,
        })));
        self.mark_simultaneous(index, header.initiator_spi);
    }

    /// Accounts one fragment (RFC-less IKEv1 fragmentation as strongSwan and Cisco do it): a
    /// record of its own, and the whole message, named and decrypted as any other, when its
    /// last missing piece arrives. Fragments never advance the exchange's message count.
    #[allow(clippy::too_many_arguments)]
    fn add_fragment(
        &mut self,
        frame: usize,
        time: Timestamp,
        src: SocketAddr,
        dst: SocketAddr,
        nat_t: bool,
        header: Header,
        bytes: &[u8],
    ) {
        let from_initiator = self
            .sas
            .get(&header.initiator_spi)
            .is_none_or(|sa| same_side(src, dst, sa.initiator));
        let retransmission_of = self.fragments.seen.get(bytes).copied();
        let parsed = fragment::parse(bytes);
        let body = match &parsed {
            Ok((_, f)) => Body::Plain(vec![Payload::Fragment(f.clone())]),
            Err(e) => Body::Malformed(e.to_string()),
        };
        self.records.push(Record::Message(Box::new(IsakmpMessage {
            frame,
            time,
            src,
            dst,
            nat_t,
            header: header.clone(),
            name: MessageName::Fragment,
            from_initiator,
            retransmission_of,
            simultaneous_with: Vec::new(),
            reassembled_from: Vec::new(),
            body,
        })));
        let (Ok((_, piece)), None) = (parsed, retransmission_of) else {
            return;
        };
        self.fragments.seen.insert(bytes.to_vec(), frame);
        let key = (
            src.ip(),
            header.initiator_spi,
            header.responder_spi,
            piece.id,
        );
        let f = &mut self.fragments;
        match f
            .reassembler
            .add(f.now, &f.limits, src.ip(), &header, piece)
        {
            Ok(Added::Pending) => f.frames.entry(key).or_default().push(frame),
            Ok(Added::Complete(whole)) => {
                let mut frames = f.frames.remove(&key).unwrap_or_default();
                frames.push(frame);
                let index = self.records.len();
                self.add(frame, time, src, dst, nat_t, &whole);
                if let Some(Record::Message(m)) = self.records.get_mut(index) {
                    m.reassembled_from = frames;
                }
            }
            // Too large or not its own message: the reassembly is gone. Other refusals
            // (a duplicate, a piece past the last) keep it; the piece's record stays either way.
            Err(fragment::FragmentError::TooLarge(_) | fragment::FragmentError::BadMessage) => {
                f.frames.remove(&key);
            }
            Err(_) => {}
        }
    }

    /// Marks record `index` when another IKE SA between the same addresses is in flight with
    /// this one (the seed guide's "two simultaneous negotiations": a new cookie pair from the
    /// same peer before the first negotiation finished or gave up).
    fn mark_simultaneous(&mut self, index: usize, spi: [u8; 8]) {
        let Some(this) = self.sas.get(&spi) else {
            return;
        };
        if this.done {
            return;
        }
        let now = this.last_time;
        let Some(list) = self.in_flight.get_mut(&this.peers) else {
            return;
        };
        let sas = &self.sas;
        list.retain(|c| {
            sas.get(c)
                .is_some_and(|sa| !sa.done && now.seconds_since(&sa.last_time) <= IN_FLIGHT_SECS)
        });
        let mut others: Vec<[u8; 8]> = list.iter().filter(|c| **c != spi).copied().collect();
        others.sort_unstable();
        if let Some(Record::Message(m)) = self.records.get_mut(index) {
            m.simultaneous_with = others;
        }
    }
}

/// Walks a payload chain; returns the payloads and the length of what follows the chain.
fn parse_chain(header: &Header, body: &[u8]) -> Result<(Vec<Payload>, usize), String> {
    let mut iter = PayloadIter::new(header.next_payload, body);
    let mut payloads = Vec::new();
    for raw in iter.by_ref() {
        let raw = raw.map_err(|e| e.to_string())?;
        payloads.push(Payload::parse(&raw).map_err(|e| e.to_string())?);
    }
    Ok((payloads, iter.trailing().len()))
}

/// Remembers the SA and KE payloads of plaintext phase 1 messages: what decryption needs.
fn learn_phase1(sa: &mut IkeSa, from_initiator: bool, body: &Body) {
    let Body::Plain(payloads) = body else {
        return;
    };
    for p in payloads {
        match (p, from_initiator) {
            (Payload::Sa(s), true) => sa.offered = Some(s.clone()),
            (Payload::Sa(s), false) => sa.chosen = Some(s.clone()),
            (Payload::KeyExchange(k), true) => sa.g_xi = Some(k.clone()),
            (Payload::KeyExchange(k), false) => sa.g_xr = Some(k.clone()),
            _ => {}
        }
    }
}

/// Decrypts one new encrypted message with the IV its position in the CBC chains gives:
/// phase 1 starts at `hash(g^xi | g^xr)`, each phase 2/Informational exchange at
/// `hash(last phase 1 block | M-ID)`, and every later message continues from the last
/// ciphertext block of the previous one in the same chain (RFC 2409 Appendix B).
fn decrypt(
    keys: Option<&KeyTable>,
    sa: &IkeSa,
    header: &Header,
    ciphertext: &[u8],
    phase1: bool,
) -> Decryption {
    let Some(key) = keys.and_then(|k| k.get(&header.initiator_spi)) else {
        return Decryption::NoKey;
    };
    match try_decrypt(key, sa, header, ciphertext, phase1) {
        Ok(d) => d,
        Err(e) => Decryption::Failed(e),
    }
}

fn try_decrypt(
    key: &[u8],
    sa: &IkeSa,
    header: &Header,
    ciphertext: &[u8],
    phase1: bool,
) -> Result<Decryption, String> {
    let (cipher, hash_alg) = phase1_algorithms(sa)?;
    let block = cipher.block_len();
    let key = key.get(..cipher.key_len()).ok_or_else(|| {
        format!(
            "the key has {} bytes, {} needs {}",
            key.len(),
            cipher.name(),
            cipher.key_len()
        )
    })?;
    let initial_iv = || -> Result<Vec<u8>, String> {
        let (Some(gi), Some(gr)) = (&sa.g_xi, &sa.g_xr) else {
            return Err("both KE payloads (MM3/MM4 or AM1/AM2) are needed for the IV".into());
        };
        let mut iv = hash(hash_alg, &[gi, gr]);
        iv.truncate(block);
        Ok(iv)
    };
    let phase1_block = || -> Result<Vec<u8>, String> {
        match &sa.last_block {
            Some(b) => tail(b, block)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| "short phase 1 ciphertext".to_string()),
            None => initial_iv(),
        }
    };
    let iv = if phase1 {
        phase1_block()?
    } else {
        match sa
            .exchanges
            .get(&header.message_id)
            .and_then(|e| e.last_block.as_deref())
        {
            Some(b) => tail(b, block)
                .ok_or("short ciphertext in this exchange")?
                .to_vec(),
            None => phase2_iv(hash_alg, &phase1_block()?, header.message_id, block),
        }
    };
    if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(block) {
        return Err(format!(
            "{} bytes of ciphertext are not a whole number of {block}-byte blocks",
            ciphertext.len()
        ));
    }
    let mut plain = zeroize::Zeroizing::new(ciphertext.to_vec());
    cipher::decrypt(cipher, key, &iv, &mut plain).map_err(|e| e.to_string())?;
    let (payloads, padding) =
        parse_chain(header, &plain).map_err(|e| format!("no payload chain ({e}); wrong key?"))?;
    Ok(Decryption::Decrypted { payloads, padding })
}

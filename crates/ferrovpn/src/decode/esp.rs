//! ESP traffic per SA as seen on the wire: packets grouped by SPI, direction and addresses,
//! with the sequence numbers (RFC 4303 §2.2) that reveal loss and reordering; with an ESP SA
//! table, each packet is opened with the data plane's ciphers and the inner packets counted.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use ferrovpn_esp::{NEXT_HEADER_IPV4, NEXT_HEADER_IPV6, NEXT_HEADER_NONE};

use super::capture::Timestamp;
use super::esp_sa::EspSaTable;

/// Distinct inner (source, destination, protocol) triples kept per flow.
const MAX_INNER: usize = 32;

/// Inner packets of one (source, destination, protocol) inside an SA (RFC 4303 §2.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InnerFlow {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol / IPv6 next header of the inner packet.
    pub protocol: u8,
    pub packets: usize,
    pub bytes: usize,
}

/// What decrypting a flow's packets with the ESP SA table gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EspDecryption {
    /// strongSwan name of the SA's transform, e.g. `aes128gcm16`.
    pub cipher: &'static str,
    pub decrypted: usize,
    /// ICV did not verify, the padding was wrong, or the packet was too short.
    pub failed: usize,
    /// Dummy packets (next header 59, RFC 4303 §2.6).
    pub dummies: usize,
    /// Decrypted, but the inner packet is not IPv4/IPv6 or is cut short.
    pub not_ip: usize,
    pub inner: Vec<InnerFlow>,
    /// Inner triples beyond `MAX_INNER`, counted but not listed.
    pub inner_other: usize,
}

/// Source, destination and protocol of an inner IPv4/IPv6 packet (the one IP header view,
/// `ferrovpn_esp::ip`); None when it is not IP or its header is cut short.
pub fn inner_summary(p: &[u8]) -> Option<(IpAddr, IpAddr, u8)> {
    let ip = ferrovpn_esp::ip::IpPacket::new_checked(p).ok()?;
    Some((ip.src_addr(), ip.dst_addr(), ip.protocol()))
}

/// The usual name of an IP protocol number.
pub fn protocol_name(p: u8) -> String {
    match p {
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        47 => "GRE".into(),
        50 => "ESP".into(),
        58 => "ICMPv6".into(),
        n => format!("proto {n}"),
    }
}

/// The packets of one SPI between two addresses, in capture order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspFlow {
    pub spi: u32,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// UDP ports when encapsulated (RFC 3948), `None` for IP protocol 50.
    pub udp: Option<(u16, u16)>,
    pub packets: usize,
    pub first_seq: u32,
    pub last_seq: u32,
    pub first_time: Timestamp,
    pub last_time: Timestamp,
    /// Packets whose sequence number is below one seen earlier (and not a duplicate).
    pub out_of_order: usize,
    /// Packets repeating a sequence number already seen.
    pub duplicates: usize,
    /// With an ESP SA table that has this SA: what decrypting its packets gave.
    pub decryption: Option<EspDecryption>,
    seen: HashSet<u32>,
    highest: u32,
}

impl EspFlow {
    /// Missing sequence numbers between the lowest and highest seen, as inclusive ranges.
    pub fn gaps(&self) -> Vec<(u32, u32)> {
        let mut seqs: Vec<u32> = self.seen.iter().copied().collect();
        seqs.sort_unstable();
        seqs.windows(2)
            .filter_map(|w| match w {
                [a, b] if b.saturating_sub(*a) > 1 => Some((a.checked_add(1)?, b.checked_sub(1)?)),
                _ => None,
            })
            .collect()
    }

    /// Lowest sequence number seen.
    pub fn lowest_seq(&self) -> u32 {
        self.seen.iter().copied().min().unwrap_or(0)
    }

    /// Highest sequence number seen.
    pub fn highest_seq(&self) -> u32 {
        self.highest
    }
}

/// Collects ESP packets into flows, keeping the order in which flows first appeared.
#[derive(Debug, Default)]
pub struct EspFlows {
    flows: Vec<EspFlow>,
    index: HashMap<(u32, IpAddr, IpAddr), usize>,
}

impl EspFlows {
    /// Accounts one ESP packet (starting at the SPI), decrypting it when `keys` has its SA;
    /// shorter than SPI + sequence: `false`.
    pub fn add(
        &mut self,
        time: Timestamp,
        src: IpAddr,
        dst: IpAddr,
        udp: Option<(u16, u16)>,
        packet: &[u8],
        keys: Option<&EspSaTable>,
    ) -> bool {
        let Ok(esp) = ferrovpn_esp::EspPacket::new_checked(packet) else {
            return false;
        };
        let (spi, seq) = (esp.spi(), esp.seq());
        let i = *self.index.entry((spi, src, dst)).or_insert_with(|| {
            self.flows.push(EspFlow {
                spi,
                src,
                dst,
                udp,
                packets: 0,
                first_seq: seq,
                last_seq: seq,
                first_time: time,
                last_time: time,
                out_of_order: 0,
                duplicates: 0,
                decryption: None,
                seen: HashSet::new(),
                highest: seq,
            });
            self.flows.len().saturating_sub(1)
        });
        let Some(f) = self.flows.get_mut(i) else {
            return false;
        };
        f.packets = f.packets.saturating_add(1);
        f.last_seq = seq;
        f.last_time = time;
        if !f.seen.insert(seq) {
            f.duplicates = f.duplicates.saturating_add(1);
        } else if seq < f.highest {
            f.out_of_order = f.out_of_order.saturating_add(1);
        }
        f.highest = f.highest.max(seq);
        if let Some(sa) = keys.and_then(|k| k.get(spi, src, dst)) {
            let d = f.decryption.get_or_insert_with(|| EspDecryption {
                cipher: sa.crypto.cipher().name(),
                ..EspDecryption::default()
            });
            open(d, &sa.crypto, packet);
        }
        true
    }

    pub fn into_flows(self) -> Vec<EspFlow> {
        self.flows
    }
}

/// Smallest ESP packet a GSO segment can be: header, an 8-byte IV and a 16-byte ICV.
const MIN_SEGMENT: usize = 8 + 8 + 16;

/// Splits a UDP GSO super-packet (a sender's run of equal-sized ESP-in-UDP datagrams to one
/// peer, captured before segmentation; the last may be shorter) into its ESP packets: the
/// same SPI must start every segment with consecutive sequence numbers. `None` for a plain
/// packet.
pub fn gso_segments(p: &[u8]) -> Option<Vec<&[u8]>> {
    let head = |off: usize| -> Option<(u32, u32)> {
        let field = |at: usize| -> Option<u32> {
            let at = off.checked_add(at)?;
            Some(u32::from_be_bytes(
                p.get(at..at.checked_add(4)?)?.try_into().ok()?,
            ))
        };
        let (spi, seq) = (field(0)?, field(4)?);
        Some((spi, seq))
    };
    let (spi, seq) = head(0)?;
    let seg = (MIN_SEGMENT..p.len().saturating_sub(7))
        .find(|&k| head(k) == Some((spi, seq.wrapping_add(1))))?;
    let segments: Vec<&[u8]> = p.chunks(seg).collect();
    let consistent = segments.iter().enumerate().all(|(i, s)| {
        s.len() >= 8
            && s.get(..4) == Some(&spi.to_be_bytes()[..])
            && s.get(4..8) == Some(&seq.wrapping_add(i as u32).to_be_bytes()[..])
    });
    consistent.then_some(segments)
}

/// Decrypts a copy of one packet (ESN is not assumed: the high sequence bits are not on the
/// wire) and counts its inner packet.
fn open(d: &mut EspDecryption, crypto: &ferrovpn_esp::EspCrypto, packet: &[u8]) {
    let mut buf = packet.to_vec();
    let Ok(opened) = crypto.open(&mut buf, None) else {
        d.failed = d.failed.saturating_add(1);
        return;
    };
    d.decrypted = d.decrypted.saturating_add(1);
    let inner = buf.get(opened.payload.clone()).unwrap_or_default();
    let summary = match opened.next_header {
        NEXT_HEADER_NONE => {
            d.dummies = d.dummies.saturating_add(1);
            return;
        }
        NEXT_HEADER_IPV4 | NEXT_HEADER_IPV6 => inner_summary(inner),
        _ => None,
    };
    let Some((src, dst, protocol)) = summary else {
        d.not_ip = d.not_ip.saturating_add(1);
        return;
    };
    if let Some(i) = d
        .inner
        .iter_mut()
        .find(|i| i.src == src && i.dst == dst && i.protocol == protocol)
    {
        i.packets = i.packets.saturating_add(1);
        i.bytes = i.bytes.saturating_add(inner.len());
    } else if d.inner.len() < MAX_INNER {
        d.inner.push(InnerFlow {
            src,
            dst,
            protocol,
            packets: 1,
            bytes: inner.len(),
        });
    } else {
        d.inner_other = d.inner_other.saturating_add(1);
    }
}

#[cfg(test)]
// In tests an out-of-range index or an overflow is a failed test, which is what it should be.
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    fn pkt(spi: u32, seq: u32) -> Vec<u8> {
        let mut p = spi.to_be_bytes().to_vec();
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0; 16]);
        p
    }

    #[test]
    fn gso_super_packets_split_at_the_next_sequence_number() {
        let seg = |seq: u32, len: usize| {
            let mut p = pkt(0xabcd, seq);
            p.resize(len, 0xee);
            p
        };
        let run = [seg(7, 100), seg(8, 100), seg(9, 60)].concat();
        let parts = gso_segments(&run).unwrap();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [100, 100, 60]
        );
        assert_eq!(parts[2][7], 9);
        assert!(gso_segments(&seg(7, 100)).is_none());
        // The SPI again but not the next sequence number, or a tail too short: not a run.
        assert!(gso_segments(&[seg(7, 100), seg(9, 100)].concat()).is_none());
        assert!(gso_segments(&[seg(7, 100), seg(8, 100), vec![0, 0]].concat()).is_none());
        assert!(gso_segments(&[1, 2, 3]).is_none());
    }

    #[test]
    fn counts_gaps_reordering_and_duplicates_per_spi() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let mut flows = EspFlows::default();
        for seq in [1, 2, 5, 4, 4, 9, 10] {
            assert!(flows.add(Timestamp::default(), a, b, None, &pkt(7, seq), None));
        }
        assert!(flows.add(Timestamp::default(), b, a, None, &pkt(8, 1), None));
        assert!(!flows.add(Timestamp::default(), b, a, None, &[1, 2, 3], None));
        let flows = flows.into_flows();
        assert_eq!(flows.len(), 2);
        let f = &flows[0];
        assert_eq!((f.spi, f.packets, f.first_seq, f.last_seq), (7, 7, 1, 10));
        assert_eq!(f.gaps(), vec![(3, 3), (6, 8)]);
        assert_eq!((f.out_of_order, f.duplicates), (1, 1));
        assert_eq!(flows[1].packets, 1);
        assert!(flows[1].gaps().is_empty());
    }
}

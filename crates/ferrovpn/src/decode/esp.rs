//! ESP traffic per SA as seen on the wire: packets grouped by SPI, direction and addresses,
//! with the sequence numbers (RFC 4303 §2.2) that reveal loss and reordering.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use super::capture::Timestamp;

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
                [a, b] if b.saturating_sub(*a) > 1 => Some((a + 1, b - 1)),
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
    /// Accounts one ESP packet (starting at the SPI); shorter than SPI + sequence: `false`.
    pub fn add(
        &mut self,
        time: Timestamp,
        src: IpAddr,
        dst: IpAddr,
        udp: Option<(u16, u16)>,
        packet: &[u8],
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
                seen: HashSet::new(),
                highest: seq,
            });
            self.flows.len() - 1
        });
        let Some(f) = self.flows.get_mut(i) else {
            return false;
        };
        f.packets += 1;
        f.last_seq = seq;
        f.last_time = time;
        if !f.seen.insert(seq) {
            f.duplicates += 1;
        } else if seq < f.highest {
            f.out_of_order += 1;
        }
        f.highest = f.highest.max(seq);
        true
    }

    pub fn into_flows(self) -> Vec<EspFlow> {
        self.flows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(spi: u32, seq: u32) -> Vec<u8> {
        let mut p = spi.to_be_bytes().to_vec();
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0; 16]);
        p
    }

    #[test]
    fn counts_gaps_reordering_and_duplicates_per_spi() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let mut flows = EspFlows::default();
        for seq in [1, 2, 5, 4, 4, 9, 10] {
            assert!(flows.add(Timestamp::default(), a, b, None, &pkt(7, seq)));
        }
        assert!(flows.add(Timestamp::default(), b, a, None, &pkt(8, 1)));
        assert!(!flows.add(Timestamp::default(), b, a, None, &[1, 2, 3]));
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

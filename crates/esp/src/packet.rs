//! Packet buffers with headroom and tailroom, and the ESP header view (RFC 4303 §2).
// Parses network input: no arithmetic or indexing that can panic (issue 12 §8).
#![deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

use std::ops::Range;
use std::sync::Arc;

use crate::error::EspError;
use crate::sa::{Encap, Sa, SaHandle, TunnelEndpoints};

/// Headroom reserved in front of the payload: ESP header (8) + largest IV (16), rounded up.
pub const DEFAULT_HEADROOM: usize = 64;
/// Tailroom needed for the worst case: padding (15) + pad length + next header + ICV (32).
pub const MIN_TAILROOM: usize = 15 + 2 + 32;
/// Buffer size that fits a 9000-byte jumbo frame plus ESP overhead.
pub const DEFAULT_CAPACITY: usize = 9216 + DEFAULT_HEADROOM + 64;

/// What happened to a packet in the last encap/decap call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verdict {
    /// Not processed yet.
    #[default]
    Pending,
    /// Processed; the data is ready to send (encap) or to write to the TUN device (decap).
    Ok,
    /// Dropped and counted.
    Dropped(EspError),
}

/// One packet in a caller-owned buffer, processed in place.
///
/// The data lives in `buf[start..end]`. Encap prepends the ESP header into the headroom and
/// appends the trailer and ICV into the tailroom; decap narrows the range to the inner packet.
pub struct PacketBuf {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// Outbound: the SA to encapsulate with (set by the caller's policy lookup).
    /// Inbound: the SA that decapsulated the packet (set by decap only).
    sa: Option<SaHandle>,
    /// Result of the last operation; only encap/decap in this crate set it, so no source can
    /// mark unauthenticated data `Ok`.
    verdict: Verdict,
    /// Inbound: next header of the decapsulated payload (4 or 41).
    next_header: u8,
    /// Outbound: where the daemon sends the packet (from the SA).
    tunnel: Option<(TunnelEndpoints, Encap)>,
    /// Outbound: 64-bit sequence number assigned in arrival order (0 = not yet assigned).
    pub(crate) seq: u64,
    /// Instance of the SA that reserved `seq`.
    pub(crate) seq_owner: u64,
    /// Inbound: SA whose replay window still has to accept `seq` (decap phase 2).
    pub(crate) pending: Option<Arc<Sa>>,
    /// Inbound: the outer source address, when the receiver knows it (for reports of ESP
    /// with an unknown SPI).
    pub source: Option<std::net::IpAddr>,
}

impl std::fmt::Debug for PacketBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketBuf")
            .field("len", &self.len())
            .field("sa", &self.sa)
            .field("verdict", &self.verdict)
            .finish()
    }
}

impl PacketBuf {
    /// A buffer of `capacity` bytes, data empty at `DEFAULT_HEADROOM`.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(DEFAULT_HEADROOM + MIN_TAILROOM);
        PacketBuf {
            buf: vec![0u8; capacity].into_boxed_slice(),
            start: DEFAULT_HEADROOM,
            end: DEFAULT_HEADROOM,
            sa: None,
            verdict: Verdict::Pending,
            next_header: 0,
            tunnel: None,
            seq: 0,
            seq_owner: 0,
            pending: None,
            source: None,
        }
    }

    /// Empties the buffer and resets metadata (keeps the allocation).
    pub fn reset(&mut self) {
        self.start = DEFAULT_HEADROOM.min(self.buf.len());
        self.end = self.start;
        self.sa = None;
        self.verdict = Verdict::Pending;
        self.next_header = 0;
        self.tunnel = None;
        self.seq = 0;
        self.seq_owner = 0;
        self.pending = None;
        self.source = None;
    }

    /// Outbound: the SA the caller's policy lookup chose. Inbound: the SA that decapsulated
    /// the packet.
    pub fn sa(&self) -> Option<SaHandle> {
        self.sa
    }

    /// Outbound: names the SA to encapsulate with (the caller's policy lookup). Decap
    /// overwrites it, and a packet that fails decap carries none.
    pub fn set_sa(&mut self, sa: SaHandle) {
        self.sa = Some(sa);
    }

    /// Result of the last encap/decap.
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// Inbound: next header of the decapsulated payload (4 or 41); 0 before decap.
    pub fn next_header(&self) -> u8 {
        self.next_header
    }

    /// Outbound: where the encapsulated packet goes (from its SA); `None` before encap.
    pub fn tunnel(&self) -> Option<(TunnelEndpoints, Encap)> {
        self.tunnel
    }

    pub(crate) fn set_verdict(&mut self, v: Verdict) {
        self.verdict = v;
    }

    pub(crate) fn clear_sa(&mut self) {
        self.sa = None;
    }

    /// Records what decap established for an authenticated packet.
    pub(crate) fn set_decapsulated(&mut self, sa: SaHandle, next_header: u8) {
        self.sa = Some(sa);
        self.next_header = next_header;
    }

    pub(crate) fn set_tunnel(&mut self, t: (TunnelEndpoints, Encap)) {
        self.tunnel = Some(t);
    }

    /// Test support: sets any verdict, bypassing encap/decap. Never in a shipped build.
    #[cfg(feature = "test-support")]
    #[doc(hidden)]
    pub fn set_verdict_for_test(&mut self, v: Verdict) {
        self.verdict = v;
    }

    /// Resets and copies `data` in after the default headroom. Returns false if it does not fit.
    pub fn fill(&mut self, data: &[u8]) -> bool {
        self.reset();
        let end = self.start.saturating_add(data.len());
        match self.buf.get_mut(self.start..end) {
            Some(dst) => {
                dst.copy_from_slice(data);
                self.end = end;
                true
            }
            None => false,
        }
    }

    /// Writable space after the default headroom, for a reader (`recv`) to fill directly;
    /// follow with [`PacketBuf::set_len`].
    pub fn spare_mut(&mut self) -> &mut [u8] {
        self.reset();
        let s = self.start;
        self.buf.get_mut(s..).unwrap_or_default()
    }

    /// Sets the data length after writing into [`PacketBuf::spare_mut`].
    pub fn set_len(&mut self, len: usize) {
        self.end = self.start.saturating_add(len).min(self.buf.len());
    }

    /// Drops the first `n` bytes of the data (the outer IP header a raw socket delivers in
    /// front of ESP); false, and nothing dropped, when the data is shorter than `n`.
    pub fn strip_front(&mut self, n: usize) -> bool {
        if n > self.len() {
            return false;
        }
        self.start = self.start.saturating_add(n);
        true
    }

    pub fn data(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        self.buf.get_mut(self.start..self.end).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn headroom(&self) -> usize {
        self.start
    }

    pub fn tailroom(&self) -> usize {
        self.buf.len().saturating_sub(self.end)
    }

    /// Grows the data range to `start-front .. end+back` (both checked).
    pub(crate) fn grow(&mut self, front: usize, back: usize) -> Result<(), EspError> {
        if front > self.headroom() || back > self.tailroom() {
            return Err(EspError::NoRoom);
        }
        // Both checked against headroom and tailroom above.
        self.start = self.start.saturating_sub(front);
        self.end = self.end.saturating_add(back);
        Ok(())
    }

    /// Narrows the data to `range` (relative to the current data).
    pub(crate) fn narrow(&mut self, range: Range<usize>) {
        let len = self.len();
        let r_end = range.end.min(len);
        let r_start = range.start.min(r_end);
        // r_start <= r_end <= len: both stay within the current data.
        self.end = self.start.saturating_add(r_end);
        self.start = self.start.saturating_add(r_start);
    }
}

/// Read-only view of an ESP packet: SPI and sequence number (RFC 4303 §2.1–2.2).
#[derive(Debug, Clone, Copy)]
pub struct EspPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EspPacket<T> {
    /// Checks that the fixed header is present.
    pub fn new_checked(buffer: T) -> Result<Self, EspError> {
        if buffer.as_ref().len() < crate::cipher::ESP_HEADER_LEN {
            return Err(EspError::Truncated);
        }
        Ok(EspPacket { buffer })
    }

    fn word(&self, at: usize) -> u32 {
        let b = self.buffer.as_ref();
        let mut w = [0u8; 4];
        if let Some(s) = at.checked_add(4).and_then(|end| b.get(at..end)) {
            w.copy_from_slice(s);
        }
        u32::from_be_bytes(w)
    }

    pub fn spi(&self) -> u32 {
        self.word(0)
    }

    /// Low 32 bits of the sequence number as sent.
    pub fn seq(&self) -> u32 {
        self.word(4)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
}

/// Writes SPI and sequence number into the first 8 bytes of `buf`.
pub(crate) fn emit_header(buf: &mut [u8], spi: u32, seq_lo: u32) {
    for (d, s) in buf
        .iter_mut()
        .zip(spi.to_be_bytes().into_iter().chain(seq_lo.to_be_bytes()))
    {
        *d = s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_front_drops_an_outer_header_or_nothing() {
        let mut p = PacketBuf::new(256);
        let wire: Vec<u8> = (0..28u8).collect();
        if let Some(d) = p.spare_mut().get_mut(..wire.len()) {
            d.copy_from_slice(&wire);
        }
        p.set_len(wire.len());
        assert!(!p.strip_front(29), "longer than the data");
        assert_eq!(p.data(), &wire[..]);
        assert!(p.strip_front(20));
        assert_eq!(p.data(), wire.get(20..).unwrap_or_default());
        assert_eq!(p.headroom(), DEFAULT_HEADROOM.saturating_add(20));
        assert!(p.strip_front(8));
        assert!(p.is_empty());
        // A reset puts the start back at the default headroom.
        p.reset();
        assert_eq!(p.headroom(), DEFAULT_HEADROOM);
    }
}

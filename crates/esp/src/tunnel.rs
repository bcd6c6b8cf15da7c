//! Tunnel-mode processing of one packet with an SA: encapsulation (RFC 4303 §3.3) and the two
//! decapsulation phases (RFC 4303 §3.4). Knows both the SA and the packet buffer, so that
//! neither of those needs the other.
// Parses network input: no arithmetic or indexing that can panic (issue 12 §8).
#![deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

use crate::cipher::ESP_HEADER_LEN;
use crate::clock::Timestamp;
use crate::error::EspError;
use crate::esp::{NEXT_HEADER_IPV4, NEXT_HEADER_IPV6, NEXT_HEADER_NONE};
use crate::ip::{version, Ipv4Packet, Ipv6Packet, IPV4_MIN_HEADER};
use crate::packet::{emit_header, EspPacket, PacketBuf};
use crate::sa::Sa;

impl Sa {
    /// Tunnel-mode encapsulation of the inner IP packet in `pkt` (RFC 4303 §3.3).
    pub(crate) fn encap(&self, pkt: &mut PacketBuf, now: Timestamp) -> Result<(), EspError> {
        self.encap_inner(pkt, now).map_err(|e| self.count(e))
    }

    fn encap_inner(&self, pkt: &mut PacketBuf, now: Timestamp) -> Result<(), EspError> {
        self.refuse_if_expired(now)?;
        let inner_len = pkt.len();
        let nh = match version(pkt.data()) {
            None => return Err(EspError::Truncated),
            Some(4) => NEXT_HEADER_IPV4,
            Some(6) => NEXT_HEADER_IPV6,
            Some(_) => return Err(EspError::BadInnerPacket),
        };
        let seq = if pkt.seq != 0 && pkt.seq_owner == self.instance {
            pkt.seq
        } else {
            self.reserve_seq()?
        };
        let c = &self.crypto;
        let iv_len = c.iv_len();
        let pad = c.pad_len(inner_len);
        // Header, IV, padding (< block size), trailer and ICV: small constants of the cipher.
        #[allow(clippy::arithmetic_side_effects)]
        let (front, back) = (ESP_HEADER_LEN + iv_len, pad + 2 + c.icv_len());
        pkt.grow(front, back)?;
        let data = pkt.data_mut();
        emit_header(data, self.spi, seq as u32);
        if let Some(iv) = data.get_mut(ESP_HEADER_LEN..front) {
            c.make_iv(seq, iv);
        }
        let t = front.saturating_add(inner_len);
        let trailer = data.get_mut(t..t.saturating_add(back).saturating_sub(c.icv_len()));
        let trailer = trailer.ok_or(EspError::NoRoom)?;
        for (i, b) in trailer.iter_mut().enumerate().take(pad) {
            *b = (i as u8).wrapping_add(1); // i < pad < 256
        }
        if let [.., pl, n] = trailer {
            *pl = pad as u8;
            *n = nh;
        }
        let seq_hi = self.esn.then_some((seq >> 32) as u32);
        c.seal(data, seq_hi)?;
        pkt.set_tunnel((self.tunnel, self.encap));
        self.account(inner_len, now);
        Ok(())
    }

    /// Tunnel-mode decapsulation (RFC 4303 §3.4): replay pre-check, ICV, window update,
    /// trailer, next header and inner packet checks.
    /// Receive phase 1, parallel-safe: expiry, replay pre-check, ICV + decryption, trailer,
    /// next header and inner packet checks. Leaves `pkt.seq` for [`Sa::decap_commit`].
    pub(crate) fn decap_open(&self, pkt: &mut PacketBuf, now: Timestamp) -> Result<(), EspError> {
        self.decap_open_inner(pkt, now).map_err(|e| self.count(e))
    }

    /// Receive phase 2, in arrival order: window update after the ICV verified (RFC 4303
    /// §3.4.3), then counters and lifetimes.
    pub(crate) fn decap_commit(&self, pkt: &mut PacketBuf, now: Timestamp) -> Result<(), EspError> {
        let updated = match self.replay.lock() {
            Ok(mut w) => w.update(pkt.seq).is_ok(),
            Err(_) => false,
        };
        if !updated {
            return Err(self.count(EspError::Replay));
        }
        self.account(pkt.len(), now);
        Ok(())
    }

    fn decap_open_inner(&self, pkt: &mut PacketBuf, now: Timestamp) -> Result<(), EspError> {
        self.refuse_if_expired(now)?;
        let seq_lo = EspPacket::new_checked(pkt.data())?.seq();
        let seq = {
            let w = self.replay.lock().map_err(|_| EspError::Replay)?;
            let seq = if self.esn {
                w.infer_esn(seq_lo)
            } else {
                u64::from(seq_lo)
            };
            w.check(seq).map_err(|_| EspError::Replay)?;
            seq
        };
        let seq_hi = self.esn.then_some((seq >> 32) as u32);
        let c = &self.crypto;
        c.decrypt(pkt.data_mut(), seq_hi)?;
        let d = c.trailer(pkt.data())?;
        let inner = pkt.data().get(d.payload.clone()).unwrap_or_default();
        // The inner header's length field; a short inner packet reads as too short and is
        // refused below with the rest.
        let inner_len = match (d.next_header, version(inner)) {
            (NEXT_HEADER_NONE, _) => return Err(EspError::Dummy),
            (NEXT_HEADER_IPV4, Some(4)) => Ipv4Packet::new_unchecked(inner).total_len(),
            (NEXT_HEADER_IPV6, Some(6)) => Ipv6Packet::new_unchecked(inner).total_len(),
            (NEXT_HEADER_IPV4 | NEXT_HEADER_IPV6, _) => return Err(EspError::BadInnerPacket),
            _ => return Err(EspError::BadNextHeader),
        };
        // Bytes after the inner packet are TFC padding (RFC 4303 §2.7) and are dropped.
        if inner_len > inner.len() || inner_len < IPV4_MIN_HEADER {
            return Err(EspError::BadInnerPacket);
        }
        let start = d.payload.start;
        pkt.narrow(start..start.saturating_add(inner_len));
        pkt.set_decapsulated(self.handle, d.next_header);
        pkt.seq = seq;
        Ok(())
    }
}

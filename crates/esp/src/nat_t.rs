//! UDP encapsulation of ESP (RFC 3948): how IKE, ESP and keepalives share UDP port 4500.
// Parses network input: no arithmetic or indexing that can panic (issue 12 §8).
#![deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

/// Default NAT-T port (RFC 3948 §1).
pub const NAT_T_PORT: u16 = 4500;
/// Four zero bytes in front of IKE messages on port 4500 (RFC 3948 §2.2).
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];
/// The one-byte NAT-keepalive payload (RFC 3948 §2.3).
pub const NAT_KEEPALIVE: [u8; 1] = [0xff];

/// What a UDP/4500 payload carries (RFC 3948 §3.2 / §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpPayload<'a> {
    /// IKE message, with the non-ESP marker already stripped.
    Ike(&'a [u8]),
    /// ESP packet starting at the SPI (hand to decap as is).
    Esp(&'a [u8]),
    /// NAT-keepalive: drop silently.
    Keepalive,
    /// Anything else: drop and count.
    Malformed,
}

/// Classifies one UDP payload received on the NAT-T port.
pub fn classify(payload: &[u8]) -> UdpPayload<'_> {
    match payload {
        [0xff] => UdpPayload::Keepalive,
        [0, 0, 0, 0, ike @ ..] if !ike.is_empty() => UdpPayload::Ike(ike),
        // SPI != 0 (a zero SPI is the marker) and at least SPI + sequence number.
        [a, b, c, d, _, _, _, _, ..] if [*a, *b, *c, *d] != NON_ESP_MARKER => {
            UdpPayload::Esp(payload)
        }
        _ => UdpPayload::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_rfc3948_payloads() {
        assert_eq!(classify(&[0xff]), UdpPayload::Keepalive);
        assert_eq!(
            classify(&[0, 0, 0, 0, 1, 2, 3]),
            UdpPayload::Ike(&[1, 2, 3])
        );
        let esp = [0, 0, 1, 0, 0, 0, 0, 1, 9];
        assert_eq!(classify(&esp), UdpPayload::Esp(&esp));
        assert_eq!(classify(&[]), UdpPayload::Malformed);
        assert_eq!(classify(&[0, 0, 0, 0]), UdpPayload::Malformed);
        assert_eq!(classify(&[0, 0, 1, 0, 0, 0, 0]), UdpPayload::Malformed);
        assert_eq!(classify(&[0xfe]), UdpPayload::Malformed);
    }
}

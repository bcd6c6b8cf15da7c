//! Error types: why a packet was dropped, why an SA was refused.

use thiserror::Error;

/// Why one packet was dropped (RFC 4303 §3.4 inbound, §3.3 outbound). Each variant maps to a
/// counter; none of them is a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum EspError {
    /// Shorter than the fixed ESP fields (or than IV + ICV + trailer for this SA).
    #[error("truncated packet")]
    Truncated,
    /// Ciphertext length not a multiple of the cipher block (RFC 4303 §2.4).
    #[error("bad ciphertext length")]
    BadLength,
    /// No inbound SA for this SPI (RFC 4303 §3.4.2).
    #[error("unknown SPI")]
    UnknownSpi,
    /// The packet names an outbound SA handle that is not installed.
    #[error("unknown SA handle")]
    UnknownSa,
    /// Integrity check failed (RFC 4303 §3.4.4).
    #[error("ICV verification failed")]
    AuthFailed,
    /// Sequence number already seen or left of the window (RFC 4303 §3.4.3).
    #[error("replayed sequence number")]
    Replay,
    /// Pad length exceeds the payload or the padding is not 1, 2, 3, … (RFC 4303 §2.4).
    #[error("bad padding")]
    BadPadding,
    /// Next header is neither IPv4 (4) nor IPv6 (41) in tunnel mode (RFC 4303 §2.6).
    #[error("bad next header")]
    BadNextHeader,
    /// Dummy packet, next header 59 (RFC 4303 §2.6): silently discarded.
    #[error("dummy packet")]
    Dummy,
    /// Inner packet is not IPv4/IPv6 or its version does not match the next header.
    #[error("bad inner packet")]
    BadInnerPacket,
    /// The buffer lacks headroom or tailroom for the ESP header and trailer.
    #[error("no room in buffer")]
    NoRoom,
    /// The SA reached a hard lifetime (RFC 4301 §4.4.2.1) and refuses traffic.
    #[error("SA expired")]
    SaExpired,
    /// The outbound sequence number would wrap (RFC 4303 §3.3.3): the SA must be rekeyed.
    #[error("sequence number space exhausted")]
    SequenceExhausted,
}

/// Why an SA could not be installed, replaced or removed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SadError {
    /// Key material has the wrong length for the cipher (checked at SA creation).
    #[error("{which} key must be {expected} bytes, got {got}")]
    KeyLength {
        which: &'static str,
        expected: usize,
        got: usize,
    },
    /// SPIs 0–255 are reserved (RFC 4303 §2.1).
    #[error("SPI {0:#010x} is reserved")]
    ReservedSpi(u32),
    /// Another inbound SA already owns this SPI.
    #[error("duplicate inbound SPI {0:#010x}")]
    DuplicateSpi(u32),
    /// No SA with this handle.
    #[error("no such SA")]
    NotFound,
    /// The replay window must be between 32 and 65536 packets.
    #[error("invalid replay window size {0}")]
    ReplayWindow(u32),
    /// `replace` may not change the direction of an SA.
    #[error("direction of an SA cannot change")]
    Direction,
}

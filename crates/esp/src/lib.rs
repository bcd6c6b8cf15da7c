//! Software ESP data plane (RFC 4303) for ferrovpn: tunnel mode, raw or UDP-encapsulated
//! (RFC 3948), AES-GCM (RFC 4106), ChaCha20-Poly1305 (RFC 7634), AES-CBC with HMAC-SHA1/SHA-2
//! (RFC 3602, 2404, 4868), extended sequence numbers (RFC 4304), anti-replay (RFC 4303 §3.4.3,
//! RFC 6479). Knows nothing of IKE: the control plane installs SAs, this crate moves packets.
//!
//! # API in brief
//! - [`SaConfig`] describes one unidirectional SA: SPI, [`Direction`], [`Cipher`], keys in IKE
//!   KEYMAT order ([`SecretKey`]: AEAD `key || salt`; CBC encryption key + integrity key), ESN,
//!   replay window, [`Encap`], [`TunnelEndpoints`], [`Lifetimes`].
//! - [`Sad`] (share as `Arc<Sad>`): `add(&cfg, now) -> SaHandle`, `replace`, `remove`,
//!   `stats(handle) -> SaStats`, `global_stats()`, `events()` (soft/hard lifetime [`SaEvent`]s),
//!   `poll_lifetimes(now)`. Key lengths are checked here, never per packet.
//! - [`SadReader`] (one per thread, `sad.reader()`): `encap_batch(&mut [PacketBuf], now)` and
//!   `decap_batch(&mut [PacketBuf], now)`, in place in caller buffers with headroom/tailroom;
//!   each packet gets a [`Verdict`] (`Ok` or `Dropped(EspError)`, counted per SA). For custom
//!   pipelines the steps are exposed: `assign_seq` (arrival order), `decap_open_batch`
//!   (parallel: pre-check, ICV, decrypt) and `decap_commit_batch` (arrival order: window update).
//! - [`Pipeline::builder`]`(sad, Mode::Encap | Mode::Decap)` `.workers(n).spawn(source, sink)`:
//!   parallel crypto with per-SA order preserved, I/O behind [`PacketSource`] / [`PacketSink`];
//!   one worker runs read → crypto → write on one thread, and several such encap pipelines
//!   (lanes) sharing SAs keep each SA's sequence numbers in send order with a [`SendOrder`].
//! - [`ip`]: the zero-copy IPv4/IPv6 header views (`new_checked`, typed accessors) every IP
//!   parser of the data path uses.
//! - [`mss::MssClamp`] lowers the MSS option of TCP SYNs to fit the tunnel (RFC 6691).
//! - [`nat_t::classify`] sorts UDP/4500 payloads into IKE / ESP / keepalive / malformed.
//! - [`EspCrypto`] is the mode-agnostic layer below SAs (seal/open one packet, trailer parse).
//!
//! Keys: [`SecretKey`] is wiped on drop and prints redacted; ICVs are compared in constant time
//! (AEAD libraries, `subtle` for HMAC and GCM-8). Bad input never panics: every drop is an
//! [`EspError`] and a counter.
//!
//! Time is always an argument ([`Timestamp`]) or a [`Clock`], so tests are deterministic.
#![forbid(unsafe_code)]

mod cipher;
mod clock;
mod error;
mod esp;
pub mod icmpv6;
pub mod ip;
pub mod mss;
pub mod nat_t;
pub mod offload;
mod packet;
pub mod pipeline;
pub mod replay;
mod sa;
mod sad;
mod tunnel;

#[cfg(not(any(feature = "ring", feature = "rustcrypto")))]
compile_error!("enable feature `ring` (default) or `rustcrypto`");

pub use cipher::{AesKeyLen, Cipher, EspTransform, GcmIcv, Integrity, SecretKey, ESP_HEADER_LEN};
pub use clock::{Clock, ManualClock, MonotonicClock, Timestamp};
pub use error::{EspError, SadError};
pub use esp::{Decrypted, EspCrypto, NEXT_HEADER_IPV4, NEXT_HEADER_IPV6, NEXT_HEADER_NONE};
pub use packet::{EspPacket, PacketBuf, Verdict, DEFAULT_CAPACITY, DEFAULT_HEADROOM, MIN_TAILROOM};
pub use pipeline::{
    Batch, Mode, PacketSink, PacketSource, Pipeline, PipelineBuilder, Recv, SendOrder, ThreadStart,
};
pub use sa::{
    Direction, Encap, LifetimeCause, LifetimeKind, Lifetimes, Limits, SaConfig, SaEvent, SaHandle,
    SaStats, TunnelEndpoints, Wake,
};
pub use sad::{GlobalStats, Sad, SadReader};

/// Which AEAD backend this build uses for AES-GCM-16 and ChaCha20-Poly1305.
pub const AEAD_BACKEND: &str = if cfg!(feature = "rustcrypto") {
    "rustcrypto"
} else {
    "ring"
};

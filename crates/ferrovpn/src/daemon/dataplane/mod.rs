//! The ESP pipelines' I/O: TUN devices and ESP sockets behind the esp crate's
//! `PacketSource`/`PacketSink`, and the outbound policy table that picks an SA per packet.
//! `tun_io` (TUN source and sink), `esp_send` and `esp_recv` (sockets), `policy` (which SA);
//! `shared` holds what they all use ([`Shared`], counters, the IKE queue, polling).
//!
//! Sockets move packets in batches: `recvmmsg` straight into the pipeline's buffers (one
//! buffer per packet; a raw IPv4 header is stripped in place, no copy) and `sendmmsg` out, with
//! UDP GSO (`UDP_SEGMENT`) joining runs of equal-sized ESP-in-UDP packets to one peer into one
//! message, and raw IPv4 ESP behind an outer header we write, through a send-only
//! `IPPROTO_RAW` socket (no checksumming copy or cork in the kernel). TUN devices opened with offloads (`IFF_VNET_HDR`, TSO) give one TCP super-packet per
//! read, which the source cuts into MTU-sized packets (`offload::Segmenter`); the TUN sink joins
//! in-order segments of one flow back into super-packets (`offload::Gro`), one write each.

mod esp_recv;
mod esp_send;
mod policy;
mod shared;
mod tun_io;

pub use esp_recv::EspSource;
pub use esp_send::EspSink;
pub use policy::{Policies, Policy};
pub use shared::{ike_queue, Devices, IoCounters, Shared, TunTable, IKE_QUEUE};
pub use tun_io::{TunSink, TunSource};

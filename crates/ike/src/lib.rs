//! IKEv1 control plane (RFC 2408, RFC 2409), sans-IO: datagrams and time in, datagrams, timers,
//! events and IPsec SAs out.
//!
//! [`Endpoint`] holds every ISAKMP SA; the driver feeds it with
//! [`Endpoint::handle_datagram`] / [`Endpoint::handle_timeout`] / [`Endpoint::initiate`] and
//! drains [`Endpoint::poll_transmit`], [`Endpoint::poll_event`] and [`Endpoint::poll_timeout`].
//! Nothing here touches a socket, a clock or a thread.
#![forbid(unsafe_code)]

pub mod algorithm;
pub mod cert;
pub mod config;
mod context;
pub mod crl;
pub mod crypto;
pub mod dh_job;
pub mod endpoint;
mod error;
pub mod event;
pub mod exchange;
pub mod fragment;
mod key_pool;
mod keyed;
pub mod lease;
pub mod proposal;
mod retransmit;
pub mod role;
mod sa;
mod spi;
pub mod tamper;
pub mod time;
pub mod wire;

pub use config::{
    ChildConfig, ConnectionConfig, DpdConfig, NatTraversal, Phase1Mode, Settings, TrafficSelector,
};
pub use context::Datagram;
pub use endpoint::{ChildStatus, Counters, Endpoint, IkeSaStatus};
pub use error::InputError;
pub use event::{
    ChildSa, ConnId, Cookies, Direction, EspEncapsulation, EspKeys, Event, Failure, MessageLog,
    NatStatus, PeerFeatures, Role, Udp4500Probe,
};
pub use wire::IdValue;

//! What Main Mode and Aggressive Mode share (RFC 2409 §5): the ISAKMP SA offer and choice
//! (`offer`), vendor IDs and NAT-T (`nat_t`), keys (`keys`), identities (`identity`) and the
//! steps both modes take (`steps`).

mod identity;
mod keys;
mod nat_t;
mod offer;
pub(crate) mod steps;

pub(crate) use identity::{cert_requests, check_peer_id, our_id};
pub(crate) use keys::KeysNow;
pub(crate) use nat_t::{detect_nat, float_if_needed, nat_d_payloads, our_vendor_ids};
pub(crate) use offer::offer;

#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

pub mod fs;
pub mod iface;
pub mod netlink;
pub mod process;
pub mod signal;

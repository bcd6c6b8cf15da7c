//! All FFI of the daemon: safe wrappers around `libc` calls, one `// SAFETY:` per unsafe block.
//! The rest of the crate calls these functions and never `libc` directly with `unsafe`.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

pub mod epoll;
pub mod fd;
pub mod fs;
pub mod iface;
pub mod mmsg;
pub mod netlink;
pub mod pam;
pub mod process;
pub mod signal;
pub mod socket;
pub mod tty;
pub mod tun;

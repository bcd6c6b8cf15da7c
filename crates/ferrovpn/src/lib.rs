//! ferrovpn daemon and CLI: configuration, OS integration (TUN, rtnetlink, sockets, routing) and
//! the command line. Protocol logic lives in the `ike` and `esp` crates.

pub mod cli;
pub mod config;
pub mod convert;
pub mod daemon;
pub mod decode;
pub mod diagnose;
pub mod exit_code;
pub mod import;
pub mod ipnet;
pub mod key_files;
pub mod logging;
pub mod netlink;
#[cfg(test)]
mod netns;
pub mod pam_users;
pub mod prefix_table;
pub mod remote_access;
pub mod routing;
pub mod runstate;
pub mod secret_file;
pub mod snapshot;
pub mod socket;
pub mod sys;
pub mod tun;
pub mod users;

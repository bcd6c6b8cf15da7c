//! Why the daemon could not start or stopped.

use std::io;

use crate::runstate::OwnershipError;

/// Why `run` failed; the Display text is the whole message for the operator.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}: {1}{hint}", hint = privilege_hint(.0, .1))]
    Io(&'static str, io::Error),
    #[error("connection \"{conn}\": {what}")]
    Setup { conn: String, what: String },
    /// A name the daemon needs is held by something it did not create.
    #[error("{0}")]
    Ownership(#[from] OwnershipError),
}

/// For a refused operation, the capability it needs (the unit grants exactly these three).
fn privilege_hint(what: &str, e: &io::Error) -> &'static str {
    if e.kind() != io::ErrorKind::PermissionDenied {
        return "";
    }
    match what {
        "raw ESP socket" => " (opening a raw IP protocol 50 socket needs CAP_NET_RAW)",
        "binding UDP 500/4500" => {
            " (binding UDP ports below 1024 needs CAP_NET_BIND_SERVICE; socket marks and forced \
             buffer sizes need CAP_NET_ADMIN)"
        }
        "netlink" => " (changing links, addresses, routes and rules needs CAP_NET_ADMIN)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_privileged_step_names_the_capability_it_needs() {
        let denied = || io::Error::from_raw_os_error(libc::EPERM);
        let msg = DaemonError::Io("raw ESP socket", denied()).to_string();
        assert!(
            msg.starts_with("raw ESP socket: Operation not permitted"),
            "{msg}"
        );
        assert!(msg.ends_with("needs CAP_NET_RAW)"), "{msg}");
        let other = DaemonError::Io("raw ESP socket", io::Error::from_raw_os_error(libc::EMFILE));
        assert!(!other.to_string().contains("CAP_"), "{other}");
        let udp = DaemonError::Io("binding UDP 500/4500", denied()).to_string();
        assert!(udp.contains("CAP_NET_BIND_SERVICE"), "{udp}");
    }
}

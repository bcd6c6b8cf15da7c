//! `remote_access = "client"`: this host as an XAuth / Mode Config client of a remote-access
//! gateway (issue 14), e.g. a Cisco ASA group: its keys, their checks, the password file.

use std::path::{Path, PathBuf};

use ferrovpn_ike::config::ModeCfgMode;

use super::credentials::Auth;
use super::negotiation::Start;
use super::raw::RawConnection;
use super::remark::Severity;
use super::secret::{Psk, Purpose};
use super::tunnel::Tunnel;
use crate::secret_file::{self, SecretFileError};

/// A validated remote-access client setup.
#[derive(Debug, Clone)]
pub struct RemoteAccess {
    /// XAuth user and password (from `xauth_password_file`); None: Mode Config only.
    pub xauth: Option<Xauth>,
    pub mode_cfg: ModeCfgMode,
    /// Script run with the assigned settings in `FERROVPN_*` variables when systemd-resolved
    /// is not running (or always, when set and resolved is absent).
    pub dns_hook: Option<PathBuf>,
}

/// XAuth credentials; the password is wiped on drop and never printed.
#[derive(Debug, Clone)]
pub struct Xauth {
    pub user: String,
    pub password: Psk,
    pub password_file: PathBuf,
}

/// The raw keys of a connection that belong to remote access.
pub(super) struct RawRemoteAccess {
    pub(super) remote_access: Option<String>,
    pub(super) xauth_user: Option<String>,
    pub(super) xauth_password_file: Option<PathBuf>,
    pub(super) modeconfig: Option<String>,
    pub(super) dns_hook: Option<PathBuf>,
}

impl RawRemoteAccess {
    pub(super) fn take(rc: &mut RawConnection) -> Self {
        RawRemoteAccess {
            remote_access: rc.remote_access.take(),
            xauth_user: rc.xauth_user.take(),
            xauth_password_file: rc.xauth_password_file.take(),
            modeconfig: rc.modeconfig.take(),
            dns_hook: rc.dns_hook.take(),
        }
    }
}

/// Checks the remote-access keys against the rest of the connection.
pub(super) fn validate(
    raw: RawRemoteAccess,
    auth: &Auth,
    start: Start,
    tunnel: &Tunnel,
    base: &Path,
    purpose: Purpose,
    notes: &mut Vec<(Severity, String)>,
) -> Result<Option<RemoteAccess>, String> {
    match raw.remote_access.as_deref() {
        None => {
            for (k, set) in [
                ("xauth_user", raw.xauth_user.is_some()),
                ("xauth_password_file", raw.xauth_password_file.is_some()),
                ("modeconfig", raw.modeconfig.is_some()),
                ("dns_hook", raw.dns_hook.is_some()),
            ] {
                if set {
                    return Err(format!("{k} needs remote_access = \"client\""));
                }
            }
            return Ok(None);
        }
        Some("client") => {}
        Some("gateway") => {
            return Err("remote_access = \"gateway\" is not supported yet (only \"client\")".into())
        }
        Some(other) => {
            return Err(format!(
                "remote_access: '{other}' is not \"client\" (the only role supported)"
            ))
        }
    }
    if start != Start::Initiate {
        return Err(
            "remote_access = \"client\" needs start = \"initiate\": a client dials the gateway"
                .into(),
        );
    }
    let Tunnel::RouteBased(r) = tunnel else {
        return Err("remote_access = \"client\" needs [connection.route_based]: the assigned address goes on its TUN device".into());
    };
    if !r.addresses.is_empty() {
        return Err("route_based.address: leave it out with remote_access = \"client\": the gateway assigns the address (Mode Config)".into());
    }
    if r.carries_ipv6() {
        return Err("remote_access = \"client\" supports IPv4 selectors only for now (the assigned IPv4 address is the local selector)".into());
    }
    let mode_cfg = match raw.modeconfig.as_deref() {
        None | Some("pull") => ModeCfgMode::Pull,
        Some("push") => ModeCfgMode::Push,
        Some(other) => {
            return Err(format!(
                "modeconfig: '{other}' is neither \"pull\" (we ask, the default) nor \"push\" (the gateway sends)"
            ))
        }
    };
    let xauth = match (raw.xauth_user, raw.xauth_password_file) {
        (None, None) => None,
        (Some(_), None) => return Err("xauth_user needs xauth_password_file".into()),
        (None, Some(_)) => return Err("xauth_password_file needs xauth_user".into()),
        (Some(user), Some(file)) => {
            if user.is_empty() || user.len() > 255 || user.chars().any(char::is_control) {
                return Err(
                    "xauth_user: must be 1 to 255 characters without control characters".into(),
                );
            }
            if !matches!(auth, Auth::Psk) {
                return Err("xauth_user: XAuth is supported with auth = \"psk\" only (XAUTHInitPreShared); certificate XAuth is not".into());
            }
            let file = secret_file::resolve(base, &file);
            let password = match secret_file::read_private(&file) {
                Ok(b) => {
                    // One line: the password, without its line end.
                    let line = b.split(|&c| c == b'\n').next().unwrap_or(&[]);
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if line.is_empty() {
                        return Err(format!("xauth_password_file {} is empty", file.display()));
                    }
                    Psk(zeroize::Zeroizing::new(line.to_vec()))
                }
                Err(SecretFileError::Missing { .. }) if purpose == Purpose::Check => {
                    notes.push((
                        Severity::Warning,
                        format!("xauth_password_file {} does not exist (yet): `ferrovpn up` refuses to start until it does; create it with mode 600", file.display()),
                    ));
                    Psk(zeroize::Zeroizing::new(Vec::new()))
                }
                Err(e) => return Err(format!("xauth_password_file {e}")),
            };
            Some(Xauth {
                user,
                password,
                password_file: file,
            })
        }
    };
    notes.push((
        Severity::Warning,
        "remote access with a group pre-shared key: anyone who knows the group secret can impersonate the gateway to XAuth users; prefer certificates where the gateway offers them".into(),
    ));
    Ok(Some(RemoteAccess {
        xauth,
        mode_cfg,
        dns_hook: raw.dns_hook.map(|h| secret_file::resolve(base, &h)),
    }))
}

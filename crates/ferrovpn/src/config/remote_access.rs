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
use crate::ipnet::IpNet;
use crate::secret_file::{self, SecretFileError};

const GROUP_PSK_WARNING: &str = "remote access with a group pre-shared key: anyone who knows the group secret can impersonate the gateway to XAuth users; prefer certificates where the gateway offers them";

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
    /// Empty until typed when `password_file` is None (see `remote_access::ask_passwords`).
    pub password: Psk,
    /// None: `ferrovpn up` asks for the password on its terminal.
    pub password_file: Option<PathBuf>,
}

impl Xauth {
    /// True when the password is to be typed at `ferrovpn up` and has not been yet.
    pub fn needs_password(&self) -> bool {
        self.password_file.is_none() && self.password.as_bytes().is_empty()
    }
}

/// A validated `remote_access = "gateway"` setup (issue 14).
#[derive(Debug, Clone)]
pub struct Gateway {
    /// The IPv4 pool clients get their address from.
    pub pool: IpNet,
    /// The IPv6 pool (`pool6`): each client gets an address from it too.
    pub pool6: Option<IpNet>,
    pub dns: Vec<std::net::Ipv4Addr>,
    pub dns6: Vec<std::net::Ipv6Addr>,
    /// The first is the default domain (DEF_DOMAIN); all are split-DNS names.
    pub domains: Vec<String>,
    pub split_include: Vec<IpNet>,
    pub banner: Option<String>,
    /// Where the XAuth users are checked: `users_file` or PAM.
    pub users: XauthUsers,
    /// Push the settings (SET) instead of answering the client's REQUEST.
    pub push: bool,
    /// Wrong XAuth passwords from one source address within `lockout` before that address is
    /// locked out for the rest of `lockout` (`xauth_max_failures`, `xauth_lockout`).
    pub max_failures: u32,
    pub lockout: std::time::Duration,
}

/// Where a gateway checks XAuth user names and passwords.
#[derive(Debug, Clone)]
pub enum XauthUsers {
    /// `users_file`: SHA-512 crypt hashes; a reload replaces them in place.
    File {
        store: std::sync::Arc<crate::users::UserStore>,
        path: PathBuf,
    },
    /// `xauth_pam_service` (and `xauth_pam_confdir`): PAM, off the event loop.
    Pam(std::sync::Arc<crate::pam_users::PamVerifier>),
}

impl XauthUsers {
    /// The verifier the ike gateway config takes.
    pub fn verifier(&self) -> std::sync::Arc<dyn ferrovpn_ike::config::XauthVerifier> {
        match self {
            XauthUsers::File { store, .. } => store.clone(),
            XauthUsers::Pam(p) => p.clone(),
        }
    }

    /// For `check`: "3 from /etc/ferrovpn/users" or "PAM service ferrovpn".
    pub fn describe(&self) -> String {
        match self {
            XauthUsers::File { store, path } => {
                format!("{} from {}", store.users().len(), path.display())
            }
            XauthUsers::Pam(p) => match &p.confdir {
                None => format!("PAM service {}", p.service),
                Some(d) => format!("PAM service {} in {}", p.service, d.display()),
            },
        }
    }
}

/// `xauth_max_failures` default and range.
pub const DEFAULT_XAUTH_MAX_FAILURES: u32 = 5;
const MAX_XAUTH_MAX_FAILURES: i64 = 1000;
/// `xauth_lockout` default and range.
pub const DEFAULT_XAUTH_LOCKOUT: &str = "5m";
const MAX_XAUTH_LOCKOUT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The raw keys of a connection that belong to remote access.
pub(super) struct RawRemoteAccess {
    pub(super) remote_access: Option<String>,
    pub(super) xauth_user: Option<String>,
    pub(super) xauth_password_file: Option<PathBuf>,
    pub(super) modeconfig: Option<String>,
    pub(super) dns_hook: Option<PathBuf>,
    pub(super) pool: Option<String>,
    pub(super) pool6: Option<String>,
    pub(super) dns: Option<Vec<String>>,
    pub(super) domains: Option<Vec<String>>,
    pub(super) split_include: Option<Vec<String>>,
    pub(super) banner: Option<String>,
    pub(super) users_file: Option<PathBuf>,
    pub(super) xauth_pam_service: Option<String>,
    pub(super) xauth_pam_confdir: Option<PathBuf>,
    pub(super) xauth_max_failures: Option<i64>,
    pub(super) xauth_lockout: Option<String>,
}

impl RawRemoteAccess {
    /// True for `remote_access = "gateway"`.
    pub(super) fn is_gateway(&self) -> bool {
        self.remote_access.as_deref() == Some("gateway")
    }

    pub(super) fn take(rc: &mut RawConnection) -> Self {
        RawRemoteAccess {
            remote_access: rc.remote_access.take(),
            xauth_user: rc.xauth_user.take(),
            xauth_password_file: rc.xauth_password_file.take(),
            modeconfig: rc.modeconfig.take(),
            dns_hook: rc.dns_hook.take(),
            pool: rc.pool.take(),
            pool6: rc.pool6.take(),
            dns: rc.dns.take(),
            domains: rc.domains.take(),
            split_include: rc.split_include.take(),
            banner: rc.banner.take(),
            users_file: rc.users_file.take(),
            xauth_pam_service: rc.xauth_pam_service.take(),
            xauth_pam_confdir: rc.xauth_pam_confdir.take(),
            xauth_max_failures: rc.xauth_max_failures.take(),
            xauth_lockout: rc.xauth_lockout.take(),
        }
    }
}

/// Checks the keys of `remote_access = "gateway"`: a responder on a route-based tunnel whose
/// remote selector and routes hold the pool.
pub(super) fn validate_gateway(
    raw: &RawRemoteAccess,
    auth: &Auth,
    start: Start,
    tunnel: &Tunnel,
    base: &Path,
    purpose: Purpose,
    notes: &mut Vec<(Severity, String)>,
) -> Result<Option<Gateway>, String> {
    if !raw.is_gateway() {
        refuse_set(
            &[
                ("pool", raw.pool.is_some()),
                ("pool6", raw.pool6.is_some()),
                ("dns", raw.dns.is_some()),
                ("domains", raw.domains.is_some()),
                ("split_include", raw.split_include.is_some()),
                ("banner", raw.banner.is_some()),
                ("users_file", raw.users_file.is_some()),
                ("xauth_pam_service", raw.xauth_pam_service.is_some()),
                ("xauth_pam_confdir", raw.xauth_pam_confdir.is_some()),
                ("xauth_max_failures", raw.xauth_max_failures.is_some()),
                ("xauth_lockout", raw.xauth_lockout.is_some()),
            ],
            "needs remote_access = \"gateway\"",
        )?;
        return Ok(None);
    }
    refuse_set(
        &[
            ("xauth_user", raw.xauth_user.is_some()),
            ("xauth_password_file", raw.xauth_password_file.is_some()),
            ("dns_hook", raw.dns_hook.is_some()),
        ],
        "is a client key; a gateway has users_file or xauth_pam_service",
    )?;
    if start != Start::Respond {
        return Err(
            "remote_access = \"gateway\" needs start = \"respond\": clients dial in".into(),
        );
    }
    if !matches!(auth, Auth::Psk) {
        return Err(
            "remote_access = \"gateway\" supports auth = \"psk\" (group secret + XAuth) only"
                .into(),
        );
    }
    let Tunnel::RouteBased(r) = tunnel else {
        return Err("remote_access = \"gateway\" needs [connection.route_based]: the clients' addresses are routed into its TUN device".into());
    };
    let pool: IpNet = raw
        .pool
        .as_deref()
        .ok_or("remote_access = \"gateway\" needs pool (e.g. \"198.51.100.128/25\")")?
        .parse()
        .map_err(|e| format!("pool: {e}"))?;
    if pool.is_ipv6()
        || pool.prefix_len() > 30
        || IpNet::truncating(pool.addr(), pool.prefix_len()) != pool
    {
        return Err(format!(
            "pool: {pool} must be an IPv4 network (host bits zero) of at least 4 addresses"
        ));
    }
    let pool6: Option<IpNet> = match raw.pool6.as_deref() {
        None => None,
        Some(p) => {
            let net: IpNet = p.parse().map_err(|e| format!("pool6: {e}"))?;
            if !net.is_ipv6()
                || net.prefix_len() > 126
                || IpNet::truncating(net.addr(), net.prefix_len()) != net
            {
                return Err(format!(
                    "pool6: {net} must be an IPv6 network (host bits zero) of at least 4 addresses, e.g. \"2001:db8:1::/112\""
                ));
            }
            Some(net)
        }
    };
    for p in std::iter::once(pool).chain(pool6) {
        let Some(sel) = r.selector(p.is_ipv6()) else {
            return Err(format!(
                "route_based: a gateway with {} pool {p} needs {} local_ts/remote_ts",
                if p.is_ipv6() { "an IPv6" } else { "an IPv4" },
                if p.is_ipv6() { "IPv6" } else { "IPv4" },
            ));
        };
        if !sel.remote.contains(&p) {
            return Err(format!(
                "route_based.remote_ts {} does not hold pool {p}: clients' Quick Modes would be refused",
                sel.remote
            ));
        }
        if !r.routes.iter().any(|x| x.contains(&p)) {
            return Err(format!(
                "route_based.routes must hold pool {p}: packets to clients go into the TUN device"
            ));
        }
    }
    let mut dns = Vec::new();
    let mut dns6 = Vec::new();
    for d in raw.dns.iter().flatten() {
        match d.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(a)) => dns.push(a),
            Ok(std::net::IpAddr::V6(a)) => dns6.push(a),
            Err(_) => return Err(format!("dns: '{d}' is not an IP address")),
        }
    }
    let domains = raw.domains.clone().unwrap_or_default();
    for d in &domains {
        if d.is_empty()
            || d.len() > 253
            || !d
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        {
            return Err(format!("domains: '{d}' is not a domain name"));
        }
    }
    let split_include = raw
        .split_include
        .iter()
        .flatten()
        .map(|n| {
            let net: IpNet = n.parse().map_err(|e| format!("split_include: {e}"))?;
            if net.is_ipv6() {
                return Err(format!(
                    "split_include: {net} is IPv6 (Unity split-include is IPv4)"
                ));
            }
            Ok(net)
        })
        .collect::<Result<Vec<_>, String>>()?;
    if let Some(b) = &raw.banner {
        if b.len() > 2000 || b.contains('\0') {
            return Err("banner: at most 2000 bytes, no NUL".into());
        }
    }
    let push = match raw.modeconfig.as_deref() {
        None | Some("pull") => false,
        Some("push") => true,
        Some(other) => {
            return Err(format!(
                "modeconfig: '{other}' is neither \"pull\" (clients ask, the default) nor \"push\" (we send)"
            ))
        }
    };
    let (max_failures, lockout) = lockout(raw)?;
    let users = users(raw, base, purpose, notes)?;
    Ok(Some(Gateway {
        pool,
        pool6,
        dns,
        dns6,
        domains,
        split_include,
        banner: raw.banner.clone(),
        users,
        push,
        max_failures,
        lockout,
    }))
}

/// `users_file` or `xauth_pam_service` (with `xauth_pam_confdir`): exactly one.
fn users(
    raw: &RawRemoteAccess,
    base: &Path,
    purpose: Purpose,
    notes: &mut Vec<(Severity, String)>,
) -> Result<XauthUsers, String> {
    if raw.xauth_pam_confdir.is_some() && raw.xauth_pam_service.is_none() {
        return Err("xauth_pam_confdir needs xauth_pam_service".into());
    }
    let file = match (&raw.users_file, &raw.xauth_pam_service) {
        (Some(_), Some(_)) => return Err("users_file and xauth_pam_service: set one of the two (the gateway checks XAuth passwords against a users file or through PAM)".into()),
        (None, None) => return Err("remote_access = \"gateway\" needs users_file (make it with `ferrovpn user add FILE NAME`) or xauth_pam_service (a PAM service, e.g. \"ferrovpn\")".into()),
        (None, Some(service)) => return pam(service, raw.xauth_pam_confdir.as_deref(), base, notes),
        (Some(f), None) => secret_file::resolve(base, f),
    };
    let users = match crate::users::Users::load(&file) {
        Ok(u) => u,
        Err(_) if purpose == Purpose::Check && !file.exists() => {
            notes.push((
                Severity::Warning,
                format!("users_file {} does not exist (yet): `ferrovpn up` refuses to start until it does; make it with `ferrovpn user add {} NAME`", file.display(), file.display()),
            ));
            crate::users::Users::default()
        }
        Err(e) => return Err(format!("users_file {e}")),
    };
    Ok(XauthUsers::File {
        store: std::sync::Arc::new(crate::users::UserStore::new(users)),
        path: file,
    })
}

/// PAM directories holding service files when no `xauth_pam_confdir` is given.
const PAM_DIRS: [&str; 3] = ["/etc/pam.d", "/usr/lib/pam.d", "/usr/share/pam.d"];

/// `xauth_pam_service`: a service name, libpam loadable now (with `pam_start_confdir` for a
/// `xauth_pam_confdir`), a warning when no file of the service is found.
fn pam(
    service: &str,
    confdir: Option<&Path>,
    base: &Path,
    notes: &mut Vec<(Severity, String)>,
) -> Result<XauthUsers, String> {
    if service.is_empty()
        || service.len() > 64
        || service.starts_with('.')
        || !service
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!("xauth_pam_service: '{service}' is not a PAM service name (1 to 64 letters, digits, '.', '_', '-'; a file in /etc/pam.d)"));
    }
    let confdir = confdir.map(|d| secret_file::resolve(base, d));
    if let Some(d) = &confdir {
        if !d.is_dir() {
            return Err(format!(
                "xauth_pam_confdir {} is not a directory",
                d.display()
            ));
        }
    }
    crate::sys::pam::available(confdir.is_some()).map_err(|e| format!("xauth_pam_service: {e}"))?;
    let found = match &confdir {
        Some(d) => d.join(service).is_file(),
        None => PAM_DIRS
            .iter()
            .any(|d| Path::new(d).join(service).is_file()),
    };
    if !found {
        let place = confdir
            .as_ref()
            .map_or_else(|| PAM_DIRS.join(", "), |d| d.display().to_string());
        notes.push((
            Severity::Warning,
            format!("xauth_pam_service \"{service}\": no such file in {place}: PAM applies its \"other\" service, which usually refuses everyone"),
        ));
    }
    Ok(XauthUsers::Pam(std::sync::Arc::new(
        crate::pam_users::PamVerifier::new(service.to_string(), confdir),
    )))
}

/// The first key of `keys` that is set, refused: "KEY WHY" (a key of the other role or of none).
fn refuse_set(keys: &[(&str, bool)], why: &str) -> Result<(), String> {
    match keys.iter().find(|(_, set)| *set) {
        Some((k, _)) => Err(format!("{k} {why}")),
        None => Ok(()),
    }
}

/// `xauth_max_failures` (1 to 1000) and `xauth_lockout` (1 s to 24 h).
fn lockout(raw: &RawRemoteAccess) -> Result<(u32, std::time::Duration), String> {
    let max = match raw.xauth_max_failures {
        None => DEFAULT_XAUTH_MAX_FAILURES,
        Some(n) if (1..=MAX_XAUTH_MAX_FAILURES).contains(&n) => u32::try_from(n).unwrap_or(1),
        Some(n) => {
            return Err(format!(
                "xauth_max_failures: {n} is not between 1 and {MAX_XAUTH_MAX_FAILURES} (wrong passwords from one address before it is locked out)"
            ))
        }
    };
    let window = super::units::duration_key(
        "xauth_lockout",
        raw.xauth_lockout.as_deref(),
        DEFAULT_XAUTH_LOCKOUT,
    )?;
    if window < std::time::Duration::from_secs(1) {
        return Err("xauth_lockout: must be at least 1s (how long wrong passwords are counted and an address stays locked out)".into());
    }
    if window > MAX_XAUTH_LOCKOUT {
        return Err(super::units::above_max(
            "xauth_lockout",
            window,
            MAX_XAUTH_LOCKOUT,
        ));
    }
    Ok((max, window))
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
            refuse_set(
                &[
                    ("xauth_user", raw.xauth_user.is_some()),
                    ("xauth_password_file", raw.xauth_password_file.is_some()),
                    ("modeconfig", raw.modeconfig.is_some()),
                    ("dns_hook", raw.dns_hook.is_some()),
                ],
                "needs remote_access = \"client\"",
            )?;
            return Ok(None);
        }
        Some("client") => {}
        Some("gateway") => return Ok(None),
        Some(other) => {
            return Err(format!(
                "remote_access: '{other}' is neither \"client\" nor \"gateway\""
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
        (None, Some(_)) => return Err("xauth_password_file needs xauth_user".into()),
        (Some(user), file) => {
            if user.is_empty() || user.len() > 255 || user.chars().any(char::is_control) {
                return Err(
                    "xauth_user: must be 1 to 255 characters without control characters".into(),
                );
            }
            if !matches!(auth, Auth::Psk) {
                return Err("xauth_user: XAuth is supported with auth = \"psk\" only (XAUTHInitPreShared); certificate XAuth is not".into());
            }
            let Some(file) = file else {
                notes.push((
                    Severity::Note,
                    format!("xauth_user \"{user}\" has no xauth_password_file: `ferrovpn up` asks for the password on its terminal (in the foreground only; `up --daemon` and a service refuse to start)"),
                ));
                return Ok(Some(finish(
                    Some(Xauth {
                        user,
                        password: Psk(zeroize::Zeroizing::new(Vec::new())),
                        password_file: None,
                    }),
                    mode_cfg,
                    raw.dns_hook,
                    base,
                    notes,
                )));
            };
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
                password_file: Some(file),
            })
        }
    };
    Ok(Some(finish(xauth, mode_cfg, raw.dns_hook, base, notes)))
}

fn finish(
    xauth: Option<Xauth>,
    mode_cfg: ModeCfgMode,
    dns_hook: Option<PathBuf>,
    base: &Path,
    notes: &mut Vec<(Severity, String)>,
) -> RemoteAccess {
    notes.push((Severity::Warning, GROUP_PSK_WARNING.into()));
    RemoteAccess {
        xauth,
        mode_cfg,
        dns_hook: dns_hook.map(|h| secret_file::resolve(base, &h)),
    }
}

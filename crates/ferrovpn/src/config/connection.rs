//! A `[[connection]]`: peers, identities, proposals, lifetimes, NAT-T, DPD; its validation and
//! the conflicts between connections.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferrovpn_ike::algorithm::DhGroup;
use ferrovpn_ike::proposal::{parse_esp_proposals, parse_ike_proposals, EspProposal, IkeProposal};
use zeroize::Zeroizing;

use super::credentials::{self, Auth};
use super::defaults::{
    DEFAULT_ESP, DEFAULT_FRAGMENT_SIZE, DEFAULT_IKE, MAX_DPD_INTERVAL, MAX_DPD_TIMEOUT,
    MAX_FRAGMENT_SIZE, MAX_LIFETIME, MAX_NAT_KEEPALIVE, MIN_FRAGMENT_SIZE,
};
use super::identity::{parse_identity, Identity};
use super::negotiation::{AuthKind, Fragmentation, Mode, NatTraversal, Start};
use super::raw::RawConnection;
use super::remark::Severity;
use super::secret::{read_psk_file, Psk, Purpose};
use super::tunnel::{
    validate_policy_based, validate_route_based, validate_tcp_mss, TcpMss, Tunnel,
};
use super::units::{above_max, duration_key, format_duration, MIN_LIFETIME};
use crate::ipnet::IpNet;
use crate::secret_file;

/// Dead peer detection (RFC 3706).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dpd {
    pub interval: Duration,
    pub timeout: Duration,
}

/// A validated `[[connection]]`.
#[derive(Debug, Clone)]
pub struct Connection {
    pub name: String,
    pub local_addr: IpAddr,
    pub remote_addr: IpAddr,
    pub local_id: Identity,
    pub remote_id: Identity,
    /// Empty only when a `check` found `psk_file` missing (a warning then).
    pub psk: Psk,
    /// Where the key was read from (resolved), None for an inline `psk`.
    pub psk_file: Option<PathBuf>,
    /// `auth`: the PSK above, or certificates (then `psk` is empty).
    pub auth: Auth,
    pub mode: Mode,
    pub allow_aggressive_psk: bool,
    pub ike: Vec<IkeProposal>,
    pub esp: Vec<EspProposal>,
    pub ike_lifetime: Duration,
    pub esp_lifetime: Duration,
    pub esp_lifetime_bytes: Option<u64>,
    pub nat_traversal: NatTraversal,
    /// None when `dpd_interval = "0s"`.
    pub dpd: Option<Dpd>,
    /// NAT-keepalive interval when behind a NAT (RFC 3948 §4); None when `nat_keepalive = "0s"`.
    pub nat_keepalive: Option<Duration>,
    pub start: Start,
    pub allow_weak_dh: bool,
    /// Act on ESP with unknown SPIs / IKE with unknown cookies from the peer (see the ike crate).
    pub invalid_spi_recovery: bool,
    /// IKEv1 fragmentation: announce, accept and send fragments (`yes`), never (`no`), or
    /// send them before the peer announced support (`force`).
    pub fragmentation: Fragmentation,
    /// Largest IP datagram of a phase 1 message sent whole, and of each fragment.
    pub fragment_size: usize,
    pub tunnel: Tunnel,
    pub tcp_mss: TcpMss,
    /// `remote_access = "client"`: XAuth and Mode Config before Quick Mode.
    pub remote_access: Option<super::remote_access::RemoteAccess>,
    /// `remote_access = "gateway"`: XAuth users and an address pool for clients.
    pub gateway: Option<super::remote_access::Gateway>,
    /// `xauth_after_psk`: phase 1 with auth method pre-shared key (1), XAuth after it, as
    /// Cisco IOS does, instead of XAUTHInitPreShared (65001).
    pub xauth_after_psk: bool,
}

pub(super) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("name: must be 1 to 64 characters".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("name: use only letters, digits, '-', '_' and '.'".into());
    }
    Ok(())
}

/// Addresses IKE cannot talk to: IKE is unicast UDP.
pub(super) fn check_unicast(key: &str, a: IpAddr) -> Result<(), String> {
    let what = match a {
        _ if a.is_unspecified() => "the unspecified address",
        _ if a.is_multicast() => "a multicast address",
        IpAddr::V4(v4) if v4.is_broadcast() => "the broadcast address",
        _ => return Ok(()),
    };
    Err(format!("{key}: {a} is {what}; IKE needs a unicast address"))
}

/// Legacy algorithms kept for old peers, each named once per key.
pub(super) fn legacy_warnings(
    ike_str: &str,
    ike: &[IkeProposal],
    esp_str: &str,
    esp: &[EspProposal],
) -> Vec<String> {
    use ferrovpn_ike::algorithm::{EspCipher, EspIntegrity, IkeCipher, IkeHash};
    let mut out: Vec<String> = Vec::new();
    let mut add = |s: String| {
        if !out.contains(&s) {
            out.push(s)
        }
    };
    for p in ike {
        if p.cipher == IkeCipher::TripleDesCbc {
            add(format!("ike: 3des in '{ike_str}' is a legacy cipher (64-bit blocks: Sweet32), accepted for old peers; prefer aes128 or aes256"));
        }
        match p.hash {
            IkeHash::Md5 => add(format!("ike: md5 in '{ike_str}' is a legacy hash (collisions are practical), accepted for old peers; prefer sha256")),
            IkeHash::Sha1 => add(format!("ike: sha1 in '{ike_str}' is a legacy hash (collisions are practical), accepted for old peers; prefer sha256")),
            _ => {}
        }
    }
    for p in esp {
        if p.integrity == Some(EspIntegrity::HmacSha1_96) && !p.cipher.is_aead() {
            add(format!("esp: sha1 in '{esp_str}' (HMAC-SHA1-96) is legacy integrity, accepted for old peers; prefer sha256 or an AEAD such as aes128gcm16"));
        }
        if p.cipher == EspCipher::ChaCha20Poly1305 {
            add(format!("esp: chacha20poly1305 in '{esp_str}' works only between ferrovpn peers: strongSwan 5.9 and Libreswan have no IKEv1 ESP transform for it (strongSwan answers NO-PROPOSAL-CHOSEN as responder and sends a proposal without transforms as initiator)"));
        }
    }
    out
}

pub(super) fn check_groups<'a>(
    key: &str,
    list: &str,
    groups: impl Iterator<Item = &'a DhGroup>,
    allow_weak: bool,
) -> Result<(), String> {
    for g in groups {
        if g.is_weak() && !allow_weak {
            return Err(format!(
                "{key}: {} in '{list}' is a weak DH group (under 2048 bits); use modp2048 or stronger, or set allow_weak_dh = true",
                g.name()
            ));
        }
    }
    Ok(())
}

pub(super) fn validate_connection(
    mut rc: RawConnection,
    base: &Path,
    purpose: Purpose,
    notes: &mut Vec<(Severity, String)>,
) -> Result<Connection, String> {
    let raw_remote_access = super::remote_access::RawRemoteAccess::take(&mut rc);
    let local_addr: IpAddr = rc
        .local_addr
        .parse()
        .map_err(|_| format!("local_addr: '{}' is not an IP address", rc.local_addr))?;
    // A gateway's clients come from anywhere: "any" is the unspecified address of local_addr's
    // family, which the endpoint matches to any peer no other connection names.
    let remote_addr: IpAddr = match rc.remote_addr.as_str() {
        "any" if raw_remote_access.is_gateway() => match local_addr {
            IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        },
        "any" => return Err("remote_addr = \"any\" needs remote_access = \"gateway\"".into()),
        _ if raw_remote_access.is_gateway() => {
            return Err(
                "remote_addr: a gateway takes clients from anywhere: set remote_addr = \"any\""
                    .into(),
            )
        }
        other => other
            .parse()
            .map_err(|_| format!("remote_addr: '{other}' is not an IP address"))?,
    };
    if local_addr.is_ipv6() != remote_addr.is_ipv6() {
        return Err(format!(
            "local_addr {local_addr} and remote_addr {remote_addr} are of different address families"
        ));
    }
    check_unicast("local_addr", local_addr)?;
    if rc.remote_addr != "any" {
        check_unicast("remote_addr", remote_addr)?;
    }
    if local_addr == remote_addr {
        return Err(format!("local_addr and remote_addr are both {local_addr}"));
    }
    let local_id = match &rc.local_id {
        Some(s) => parse_identity("local_id", s)?,
        None => Identity::from(local_addr),
    };
    let remote_id = match &rc.remote_id {
        Some(s) => parse_identity("remote_id", s)?,
        None => Identity::from(remote_addr),
    };

    let auth = match rc.auth {
        AuthKind::Psk => {
            for (k, v) in [
                ("cert_file", &rc.cert_file),
                ("key_file", &rc.key_file),
                ("ca_file", &rc.ca_file),
                ("crl_file", &rc.crl_file),
            ] {
                if v.is_some() {
                    return Err(format!("{k} needs auth = \"certificate\""));
                }
            }
            if !rc.alt_certs.is_empty() {
                return Err("alt_certs needs auth = \"certificate\"".into());
            }
            Auth::Psk
        }
        AuthKind::Certificate => {
            if rc.psk.is_some() || rc.psk_file.is_some() {
                return Err("auth = \"certificate\" takes no psk or psk_file".into());
            }
            let path = |k: &str, v: &Option<PathBuf>| match v {
                Some(f) if !f.as_os_str().is_empty() => Ok(secret_file::resolve(base, f)),
                _ => Err(format!("auth = \"certificate\" needs {k}")),
            };
            let cert_file = path("cert_file", &rc.cert_file)?;
            let key_file = path("key_file", &rc.key_file)?;
            let ca_file = path("ca_file", &rc.ca_file)?;
            let crl_file = rc.crl_file.as_ref().map(|f| secret_file::resolve(base, f));
            let alt: Vec<(PathBuf, PathBuf)> = rc
                .alt_certs
                .iter()
                .map(|a| {
                    (
                        secret_file::resolve(base, &a.cert_file),
                        secret_file::resolve(base, &a.key_file),
                    )
                })
                .collect();
            credentials::load(&cert_file, &key_file, &alt, &ca_file, crl_file.as_deref())?
        }
    };
    let uses_psk = matches!(auth, Auth::Psk);
    let psk_file = rc
        .psk_file
        .as_deref()
        .map(|f| secret_file::resolve(base, f));
    let psk = match (rc.psk.take(), &psk_file) {
        (Some(p), None) => {
            let p = Zeroizing::new(p.into_bytes());
            if p.is_empty() {
                return Err("psk: must not be empty".into());
            }
            Psk(p)
        }
        (Some(p), Some(_)) => {
            drop(Zeroizing::new(p.into_bytes()));
            return Err("set exactly one of psk or psk_file".into());
        }
        (None, Some(f)) if f.as_os_str().is_empty() => {
            return Err("psk_file: must not be empty".into())
        }
        (None, Some(f)) => match read_psk_file(f, purpose)? {
            Some(p) => p,
            None => {
                notes.push((
                    Severity::Warning,
                    format!(
                        "psk_file {} does not exist (yet): `ferrovpn up` refuses to start until it does; create it with mode 600",
                        f.display()
                    ),
                ));
                Psk(Zeroizing::new(Vec::new()))
            }
        },
        (None, None) if !uses_psk => Psk(Zeroizing::new(Vec::new())),
        _ => return Err("set exactly one of psk or psk_file".into()),
    };

    if rc.mode == Mode::Aggressive
        && rc.start == Start::Respond
        && !rc.allow_aggressive_psk
        && rc.auth == AuthKind::Psk
    {
        return Err("mode = \"aggressive\" as responder sends a PSK-keyed hash an eavesdropper can crack offline; set allow_aggressive_psk = true to accept that".into());
    }

    let ike_str = rc.ike.as_deref().unwrap_or(DEFAULT_IKE);
    let ike = parse_ike_proposals(ike_str).map_err(|e| format!("ike: {e}"))?;
    check_groups(
        "ike",
        ike_str,
        ike.iter().map(|p| &p.group),
        rc.allow_weak_dh,
    )?;
    let esp_str = rc.esp.as_deref().unwrap_or(DEFAULT_ESP);
    let esp = parse_esp_proposals(esp_str).map_err(|e| format!("esp: {e}"))?;
    check_groups(
        "esp",
        esp_str,
        esp.iter().filter_map(|p| p.pfs_group.as_ref()),
        rc.allow_weak_dh,
    )?;
    if rc.allow_weak_dh {
        notes.push((
            Severity::Warning,
            "allow_weak_dh = true: modp1024/modp1536 accepted".into(),
        ));
    }
    for w in legacy_warnings(ike_str, &ike, esp_str, &esp) {
        notes.push((Severity::Warning, w));
    }
    if rc.mode == Mode::Aggressive {
        notes.push((
            Severity::Warning,
            "Aggressive Mode with PSK exposes a hash of the key to offline cracking".into(),
        ));
    }
    let pfs: Vec<bool> = esp.iter().map(|p| p.pfs_group.is_some()).collect();
    if pfs.contains(&true) && pfs.contains(&false) {
        return Err(format!(
            "esp: '{esp_str}' mixes proposals with and without a DH group; IKEv1 Quick Mode either sends KE or not, so give every proposal a group or none"
        ));
    }

    let ike_lifetime = duration_key("ike_lifetime", rc.ike_lifetime.as_deref(), "8h")?;
    let esp_lifetime = duration_key("esp_lifetime", rc.esp_lifetime.as_deref(), "1h")?;
    for (k, d) in [
        ("ike_lifetime", ike_lifetime),
        ("esp_lifetime", esp_lifetime),
    ] {
        // Rekeying starts at the earliest half-way through a lifetime, so short lifetimes do
        // not storm; 10 s still leaves a Quick Mode its retransmissions. Short lifetimes are for
        // tests (the soak test uses 30 s); real tunnels use hours.
        if d < MIN_LIFETIME {
            return Err(format!(
                "{k}: {} is too short (at least {})",
                format_duration(d),
                format_duration(MIN_LIFETIME)
            ));
        }
        if d > MAX_LIFETIME {
            return Err(above_max(k, d, MAX_LIFETIME));
        }
    }
    if rc.esp_lifetime_bytes == Some(0) {
        return Err(
            "esp_lifetime_bytes: must be greater than 0 (leave it out for no limit)".into(),
        );
    }
    let dpd_interval = duration_key("dpd_interval", rc.dpd_interval.as_deref(), "30s")?;
    let dpd_timeout = duration_key("dpd_timeout", rc.dpd_timeout.as_deref(), "150s")?;
    if dpd_interval > MAX_DPD_INTERVAL {
        return Err(above_max("dpd_interval", dpd_interval, MAX_DPD_INTERVAL));
    }
    if dpd_timeout > MAX_DPD_TIMEOUT {
        return Err(above_max("dpd_timeout", dpd_timeout, MAX_DPD_TIMEOUT));
    }
    let dpd = if dpd_interval.is_zero() {
        None
    } else {
        if dpd_timeout <= dpd_interval {
            return Err(format!(
                "dpd_timeout ({}) must be longer than dpd_interval ({})",
                format_duration(dpd_timeout),
                format_duration(dpd_interval)
            ));
        }
        Some(Dpd {
            interval: dpd_interval,
            timeout: dpd_timeout,
        })
    };

    let nat_keepalive = duration_key("nat_keepalive", rc.nat_keepalive.as_deref(), "20s")?;
    if nat_keepalive > MAX_NAT_KEEPALIVE {
        return Err(above_max("nat_keepalive", nat_keepalive, MAX_NAT_KEEPALIVE));
    }
    let nat_keepalive = (!nat_keepalive.is_zero()).then_some(nat_keepalive);

    let fragment_size = match rc.fragment_size {
        None => DEFAULT_FRAGMENT_SIZE,
        Some(n) => usize::try_from(n)
            .ok()
            .filter(|n| (MIN_FRAGMENT_SIZE..=MAX_FRAGMENT_SIZE).contains(n))
            .ok_or_else(|| {
                format!(
                    "fragment_size: {n} is out of range; give the largest IP datagram of an IKE message in bytes, {MIN_FRAGMENT_SIZE} to {MAX_FRAGMENT_SIZE} (default {DEFAULT_FRAGMENT_SIZE}, as strongSwan)"
                )
            })?,
    };
    if rc.fragment_size.is_some() && rc.fragmentation == Fragmentation::No {
        return Err(
            "fragment_size: set, but fragmentation = \"no\" sends no fragments; drop one of the two"
                .into(),
        );
    }

    let (tunnel, tcp_mss) = match (rc.route_based, rc.policy_based) {
        (Some(mut r), None) => {
            let mss = r.tcp_mss.take();
            let r = validate_route_based(r, remote_addr)?;
            let mss = validate_tcp_mss("route_based.tcp_mss", mss, r.carries_ipv6())?;
            if let (TcpMss::Fixed(m), Some(mtu)) = (mss, r.mtu) {
                // IPv4 + TCP headers are 40 bytes, IPv6 + TCP 60 (RFC 6691 §2).
                let hdr = if r.carries_ipv6() { 60 } else { 40 };
                let max = mtu.saturating_sub(hdr);
                if m > max {
                    return Err(format!(
                        "route_based.tcp_mss: {m} is above mtu {mtu} - {hdr} = {max}; segments that size do not fit the tunnel"
                    ));
                }
            }
            (Tunnel::RouteBased(r), mss)
        }
        (None, Some(mut p)) => {
            let mss = p.tcp_mss.take();
            let pairs = validate_policy_based(p, remote_addr)?;
            let v6 = pairs.iter().any(|x| x.remote.is_ipv6());
            let mss = validate_tcp_mss("policy_based.tcp_mss", mss, v6)?;
            (Tunnel::PolicyBased(pairs), mss)
        }
        _ => {
            return Err(
                "set exactly one of [connection.route_based] or [connection.policy_based]".into(),
            )
        }
    };

    let gateway = super::remote_access::validate_gateway(
        &raw_remote_access,
        &auth,
        rc.start,
        &tunnel,
        base,
        purpose,
        notes,
    )?;
    let remote_access = super::remote_access::validate(
        raw_remote_access,
        &auth,
        rc.start,
        &tunnel,
        base,
        purpose,
        notes,
    )?;
    let xauth = remote_access.as_ref().is_some_and(|r| r.xauth.is_some()) || gateway.is_some();
    if rc.xauth_after_psk && !xauth {
        return Err("xauth_after_psk needs remote_access = \"client\" with xauth_user, or remote_access = \"gateway\"".into());
    }

    Ok(Connection {
        name: rc.name,
        local_addr,
        remote_addr,
        local_id,
        remote_id,
        psk,
        psk_file,
        auth,
        mode: rc.mode,
        allow_aggressive_psk: rc.allow_aggressive_psk,
        ike,
        esp,
        ike_lifetime,
        esp_lifetime,
        esp_lifetime_bytes: rc.esp_lifetime_bytes,
        nat_traversal: rc.nat_traversal,
        dpd,
        nat_keepalive,
        start: rc.start,
        allow_weak_dh: rc.allow_weak_dh,
        invalid_spi_recovery: rc.invalid_spi_recovery,
        fragmentation: rc.fragmentation,
        fragment_size,
        tunnel,
        tcp_mss,
        remote_access,
        gateway,
        xauth_after_psk: rc.xauth_after_psk,
    })
}

/// What the connections read so far hold that a later one may not take again: by hash, so a
/// file with 10,000 connections is checked in linear time.
#[derive(Default)]
pub(super) struct Taken {
    names: HashSet<String>,
    /// (local_addr, remote_addr) → connection.
    pairs: HashMap<(IpAddr, IpAddr), String>,
    /// Route-based interface not shared → connection.
    interfaces: HashMap<String, String>,
}

impl Taken {
    /// False when `name` was taken already.
    pub(super) fn name(&mut self, name: &str) -> bool {
        self.names.insert(name.to_string())
    }
}

/// Conflicts between connections that each look fine alone; `c` then takes its names.
pub(super) fn check_against_others(
    c: &Connection,
    taken: &mut Taken,
    shared_interfaces: &[String],
) -> Result<(), String> {
    if let Some(o) = taken.pairs.get(&(c.local_addr, c.remote_addr)) {
        return Err(format!(
            "uses the same local_addr/remote_addr pair as connection \"{o}\"; IKEv1 with PSK identifies the peer by address, so the two cannot be told apart"
        ));
    }
    let mut seen = HashSet::new();
    if let Tunnel::RouteBased(r) = &c.tunnel {
        if c.remote_access.is_some() && shared_interfaces.contains(&r.interface) {
            return Err(format!(
                "route_based.interface: {} is a shared interface; remote_access = \"client\" needs a device of its own, since the gateway's address for this host goes on it",
                r.interface
            ));
        }
        if !shared_interfaces.contains(&r.interface) {
            if let Some(o) = taken.interfaces.get(&r.interface) {
                return Err(format!(
                    "route_based.interface: {} is already used by connection \"{o}\" (list it in [daemon] shared_interfaces to let several connections share it)",
                    r.interface
                ));
            }
        }
        for route in &r.routes {
            if !seen.insert(*route) {
                return Err(format!("route_based.routes: {route} is listed twice"));
            }
        }
    }
    taken
        .pairs
        .insert((c.local_addr, c.remote_addr), c.name.clone());
    if let Tunnel::RouteBased(r) = &c.tunnel {
        if !shared_interfaces.contains(&r.interface) {
            taken.interfaces.insert(r.interface.clone(), c.name.clone());
        }
    }
    Ok(())
}

/// Connections on one shared interface must route disjoint prefixes: the destination of a
/// packet read from it names exactly one connection, and so does the source of a packet
/// written to it (anti-spoofing). The first conflict names both connections.
pub(super) fn check_shared_routes(
    connections: &[Connection],
    shared_interfaces: &[String],
) -> Result<(), crate::config::ConfigError> {
    for dev in shared_interfaces {
        let on_dev = || {
            connections
                .iter()
                .filter(|c| matches!(&c.tunnel, Tunnel::RouteBased(r) if &r.interface == dev))
        };
        // One device, one MSS clamp: it applies to every packet through it.
        if let Some(first) = on_dev().next() {
            if let Some(other) = on_dev().find(|c| c.tcp_mss != first.tcp_mss) {
                return Err(crate::config::ConfigError::Connection {
                    name: other.name.clone(),
                    problem: format!(
                        "tcp_mss differs from connection \"{}\"'s on shared interface {dev}; connections sharing an interface share its MSS clamping, so give them the same tcp_mss",
                        first.name
                    ),
                });
            }
        }
        let items: Vec<(IpNet, usize)> = connections
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match &c.tunnel {
                Tunnel::RouteBased(r) if &r.interface == dev => Some((r, i)),
                _ => None,
            })
            .flat_map(|(r, i)| r.routes.iter().map(move |n| (*n, i)))
            .collect();
        if let Some(((a, i), (b, j))) = crate::prefix_table::first_overlap(&items) {
            let (Some(ca), Some(cb)) = (connections.get(i), connections.get(j)) else {
                continue;
            };
            let (first, second, fp, sp) = if i < j {
                (ca, cb, a, b)
            } else {
                (cb, ca, b, a)
            };
            return Err(crate::config::ConfigError::Connection {
                name: second.name.clone(),
                problem: format!(
                    "route_based.routes: {sp} overlaps {fp} of connection \"{}\" on shared interface {dev}; connections sharing an interface need disjoint routes (the destination picks the connection)",
                    first.name
                ),
            });
        }
    }
    Ok(())
}

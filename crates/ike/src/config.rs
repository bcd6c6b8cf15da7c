//! What the state machine needs to know about a connection; the daemon builds it from TOML.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::crypto::Secret;
use crate::proposal::{EspProposal, IkeProposal};
use crate::wire::IdValue;

/// Phase 1 exchange (RFC 2409 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase1Mode {
    Main,
    Aggressive,
}

impl Phase1Mode {
    pub fn name(self) -> &'static str {
        match self {
            Phase1Mode::Main => "Main Mode",
            Phase1Mode::Aggressive => "Aggressive Mode",
        }
    }
}

/// NAT traversal policy (RFC 3947).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatTraversal {
    /// Float to UDP 4500 and encapsulate ESP only when a NAT is detected.
    Auto,
    /// Always float and encapsulate, by pretending to be behind a NAT (as strongSwan's `encap`).
    Force,
}

/// Dead peer detection (RFC 3706).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DpdConfig {
    /// Send R-U-THERE after this long without hearing from the peer.
    pub interval: Duration,
    /// Declare the peer dead when nothing authenticated has arrived for this long (counted
    /// from the peer's last message, R-U-THERE having gone unanswered).
    pub timeout: Duration,
}

/// A subnet with a protocol and port, as carried in a Quick Mode ID payload (RFC 2407 §4.6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrafficSelector {
    pub addr: IpAddr,
    pub prefix_len: u8,
    pub protocol: u8,
    pub port: u16,
}

impl TrafficSelector {
    /// A selector for every address of one family, the route-based default.
    pub fn any_v4() -> Self {
        TrafficSelector::subnet(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
    }

    pub fn subnet(addr: IpAddr, prefix_len: u8) -> Self {
        TrafficSelector {
            addr,
            prefix_len,
            protocol: 0,
            port: 0,
        }
    }

    pub fn host(addr: IpAddr) -> Self {
        let len = if addr.is_ipv4() { 32 } else { 128 };
        TrafficSelector::subnet(addr, len)
    }

    /// The ID payload value: a single address for host selectors, a subnet otherwise.
    pub fn to_id_value(&self) -> IdValue {
        match self.addr {
            IpAddr::V4(a) => IdValue::Ipv4Subnet(a, v4_mask(self.prefix_len)),
            IpAddr::V6(a) => IdValue::Ipv6Subnet(a, v6_mask(self.prefix_len)),
        }
    }

    /// Reads a Quick Mode ID; ranges and masks that are not a prefix are refused.
    pub fn from_id_value(v: &IdValue, protocol: u8, port: u16) -> Option<Self> {
        let (addr, prefix_len) = match *v {
            IdValue::Ipv4(a) => (IpAddr::V4(a), 32),
            IdValue::Ipv6(a) => (IpAddr::V6(a), 128),
            IdValue::Ipv4Subnet(a, m) => {
                (IpAddr::V4(a), prefix_of(u128::from(u32::from(m)) << 96)?)
            }
            IdValue::Ipv6Subnet(a, m) => (IpAddr::V6(a), prefix_of(u128::from(m))?),
            IdValue::Ipv4Range(lo, hi) => {
                let (lo, hi) = (u32::from(lo), u32::from(hi));
                let mask = !(lo ^ hi);
                let len = prefix_of(u128::from(mask) << 96)?;
                if lo & !mask != 0 || hi | mask != u32::MAX {
                    return None;
                }
                (IpAddr::V4(Ipv4Addr::from(lo)), len)
            }
            IdValue::Ipv6Range(lo, hi) => {
                let (lo, hi) = (u128::from(lo), u128::from(hi));
                let mask = !(lo ^ hi);
                let len = prefix_of(mask)?;
                if lo & !mask != 0 || hi | mask != u128::MAX {
                    return None;
                }
                (IpAddr::V6(Ipv6Addr::from(lo)), len)
            }
            _ => return None,
        };
        Some(
            TrafficSelector {
                addr,
                prefix_len,
                protocol,
                port,
            }
            .normalized(),
        )
    }

    /// Clears host bits so that equal networks compare equal.
    pub fn normalized(mut self) -> Self {
        self.addr = match self.addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(
                u32::from(a) & u32::from(v4_mask(self.prefix_len)),
            )),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(
                u128::from(a) & u128::from(v6_mask(self.prefix_len)),
            )),
        };
        self
    }
}

impl fmt::Display for TrafficSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)?;
        if self.protocol != 0 || self.port != 0 {
            write!(f, "[{}/{}]", self.protocol, self.port)?;
        }
        Ok(())
    }
}

fn v4_mask(len: u8) -> Ipv4Addr {
    Ipv4Addr::from(
        u32::MAX
            .checked_shl(32 - u32::from(len.min(32)))
            .unwrap_or(0),
    )
}

fn v6_mask(len: u8) -> Ipv6Addr {
    Ipv6Addr::from(
        u128::MAX
            .checked_shl(128 - u32::from(len.min(128)))
            .unwrap_or(0),
    )
}

/// Prefix length of a left-aligned mask, None when the ones are not contiguous.
fn prefix_of(mask: u128) -> Option<u8> {
    let ones = mask.leading_ones();
    if mask.checked_shl(ones).unwrap_or(0) != 0 {
        return None;
    }
    u8::try_from(ones)
        .ok()
        .map(|n| if mask == u128::MAX { 128 } else { n })
        .map(|n| n.min(128))
}

/// One Quick Mode SA pair: the local and remote networks it protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildConfig {
    pub local_ts: TrafficSelector,
    pub remote_ts: TrafficSelector,
}

/// Phase 1 authentication (RFC 2409 §5): pre-shared key, or signatures with X.509
/// certificates (RFC 2409 §5.1, RFC 4754), the method following our key's type.
#[derive(Debug, Clone)]
pub enum Phase1Auth {
    Psk,
    Certificate(std::sync::Arc<crate::cert::CertAuth>),
}

impl Phase1Auth {
    /// The Authentication Method attribute we offer and accept (RFC 2409 App. A).
    pub fn method(&self) -> u16 {
        match self {
            Phase1Auth::Psk => crate::wire::attr::auth_method::PSK,
            Phase1Auth::Certificate(c) => c.kind().auth_method(),
        }
    }
}

/// IKEv1 fragmentation (Cisco/strongSwan FRAGMENTATION vendor ID, FRAG payload 132), named
/// as strongSwan's `fragmentation` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fragmentation {
    /// Announce support; fragment a phase 1 message larger than `fragment_size` when the peer
    /// announced support too (strongSwan's default).
    #[default]
    Yes,
    /// Neither announce nor accept nor send fragments.
    No,
    /// Fragment a phase 1 message larger than `fragment_size` even before (or without) the
    /// peer's announcement.
    Force,
}

/// strongSwan's `charon.fragment_size` default: the largest IP datagram of an IKE message
/// we send whole, and of each fragment.
pub const DEFAULT_FRAGMENT_SIZE: usize = 1280;

/// Bounds on the reassembly of fragments from the network (untrusted input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentLimits {
    /// Fragments of one message; a number above this is dropped.
    pub max_fragments: u8,
    /// Bytes of one reassembled message (strongSwan's `max_packet` is 10000).
    pub max_bytes: usize,
    /// Reassemblies in progress from one peer address.
    pub max_per_peer: usize,
    /// Reassemblies in progress overall.
    pub max_total: usize,
    /// A reassembly not complete this long after its first fragment is freed.
    pub timeout: Duration,
}

impl Default for FragmentLimits {
    fn default() -> Self {
        FragmentLimits {
            max_fragments: 32,
            max_bytes: 32 * 1024,
            max_per_peer: 4,
            max_total: 128,
            timeout: Duration::from_secs(15),
        }
    }
}

/// How a remote-access client gets its settings (draft-dukes-ike-mode-cfg §3.1): it asks
/// (`Pull`, REQUEST/REPLY, strongSwan's default) or the gateway sends them (`Push`, SET/ACK).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModeCfgMode {
    #[default]
    Pull,
    Push,
}

/// XAuth credentials (draft-beaulieu-ike-xauth §4.2); the password is wiped on drop and never
/// printed.
#[derive(Clone)]
pub struct XauthCredentials {
    pub user: String,
    pub password: Secret,
}

impl fmt::Debug for XauthCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XauthCredentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// This host as a remote-access client of a gateway (issue 14): after phase 1 it answers XAuth
/// (when credentials are given), takes its address and DNS by Mode Config, and only then runs
/// Quick Mode with the assigned address as its local selector.
#[derive(Debug, Clone)]
pub struct RemoteAccessClient {
    /// None: the gateway authenticates by phase 1 alone (Mode Config only).
    pub xauth: Option<XauthCredentials>,
    pub mode_cfg: ModeCfgMode,
}

/// A verifier's answer to one XAuth REPLY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XauthVerdict {
    Accept,
    /// Wrong user name or password: counted against the source, XAUTH_STATUS FAIL.
    Reject,
    /// Not checked now (the verifier's rate limit): the REPLY is dropped uncounted and the
    /// client's next retransmission of it (prompted by ours of the REQUEST) is checked then.
    Busy,
}

/// Checks an XAuth user name and password for a gateway (draft-beaulieu-ike-xauth §4.2).
///
/// A synchronous input handed in with the config, not an event the daemon answers: checking a
/// hash loaded at config time is pure computation, so `ike` stays sans-IO and the exchange needs
/// no "waiting for the verdict" state. It runs on the caller's thread, so an implementation
/// bounds its own cost (a cache of recent successes, a rate of full checks answered `Busy`
/// beyond it). A verifier that must do I/O (PAM) runs it elsewhere and answers `Busy` until
/// the result is there: the client's retransmission brings the REPLY back.
pub trait XauthVerifier: Send + Sync {
    /// The verdict on `user` with `password` from the client at `peer` (its outer address, for
    /// PAM's remote host and host-based rules) at `now` (the endpoint's clock). Must not log
    /// the password.
    fn verify(
        &self,
        now: std::time::Instant,
        peer: std::net::IpAddr,
        user: &str,
        password: &[u8],
    ) -> XauthVerdict;
}

/// This host as a remote-access gateway (issue 14): after phase 1 (XAUTHInitPreShared) it asks
/// the client for user name and password, then assigns an address from `pool` with the
/// settings of `settings` by Mode Config; the client's Quick Mode must use that address.
#[derive(Clone)]
pub struct RemoteAccessGateway {
    /// None: no XAuth (Mode Config after phase 1 alone).
    pub users: Option<std::sync::Arc<dyn XauthVerifier>>,
    /// IPv4 pool: network address and prefix length; network and broadcast are never leased.
    pub pool: (std::net::Ipv4Addr, u8),
    /// IPv6 pool (INTERNAL_IP6_ADDRESS, draft-dukes-ike-mode-cfg §3.3); the Subnet-Router
    /// anycast address is never leased. None: clients get IPv4 only.
    pub pool6: Option<(std::net::Ipv6Addr, u8)>,
    /// What every client gets besides its address (DNS, domains, split-include, banner).
    pub settings: crate::wire::ModeCfgSettings,
    /// Push the settings (SET) right after XAuth instead of waiting for the client's REQUEST.
    pub push: bool,
    /// XAuth failures from one source address within `failure_window` before further phase 1
    /// attempts from it are dropped until the window has passed.
    pub max_failures: u32,
    pub failure_window: Duration,
}

impl fmt::Debug for RemoteAccessGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteAccessGateway")
            .field("xauth", &self.users.is_some())
            .field("pool", &self.pool)
            .field("pool6", &self.pool6)
            .field("push", &self.push)
            .finish_non_exhaustive()
    }
}

/// A configured peer.
#[derive(Clone)]
pub struct ConnectionConfig {
    pub name: String,
    pub local_addr: IpAddr,
    pub remote_addr: IpAddr,
    pub local_id: IdValue,
    /// The identity the peer must present (RFC 2409 §5: checked after authentication).
    pub remote_id: IdValue,
    pub psk: Secret,
    /// How phase 1 authenticates: the PSK above, or certificates and signatures.
    pub auth: Phase1Auth,
    pub mode: Phase1Mode,
    pub ike_proposals: Vec<IkeProposal>,
    pub ike_lifetime: Duration,
    pub esp_proposals: Vec<EspProposal>,
    pub esp_lifetime: Duration,
    pub esp_lifetime_kb: Option<u64>,
    pub children: Vec<ChildConfig>,
    pub nat_traversal: NatTraversal,
    pub dpd: Option<DpdConfig>,
    /// Behind a NAT, send a NAT-keepalive this often so the NAT keeps its UDP 4500 mapping
    /// (RFC 3948 §4); None: never.
    pub nat_keepalive: Option<Duration>,
    /// Answer Aggressive Mode with PSK as responder (its hash can be cracked offline).
    pub allow_aggressive_psk: bool,
    /// Accept MODP groups below 2048 bits.
    pub allow_weak_dh: bool,
    /// Send INITIAL-CONTACT in MM5/AM3 so the peer drops stale SAs of ours (RFC 2407 §4.6.3.3).
    pub initial_contact: bool,
    /// Invalid-SPI recovery: ESP with an unknown SPI or IKE with unknown cookies from this peer
    /// makes us act (rate-limited): INVALID-SPI (RFC 2408 §3.14.1) over an established ISAKMP
    /// SA, else a phase 1 with INITIAL-CONTACT, even for a responder-only connection.
    pub invalid_spi_recovery: bool,
    /// Set the commit bit in QM1 (RFC 2408 §3.1): the responder then confirms with CONNECTED
    /// before we use the SA. Off by default, as strongSwan; some Cisco setups use it.
    pub request_commit: bool,
    /// IKEv1 fragmentation of phase 1 messages: announce, accept, send.
    pub fragmentation: Fragmentation,
    /// Largest IP datagram (bytes) of a phase 1 message sent whole, and of each fragment.
    pub fragment_size: usize,
    /// Remote-access client role (XAuth, Mode Config); None for site to site.
    pub remote_access: Option<RemoteAccessClient>,
    /// Remote-access gateway role; its remote address may be unspecified (`0.0.0.0`: clients
    /// come from anywhere).
    pub gateway: Option<RemoteAccessGateway>,
    /// Remote access with XAuth after a phase 1 authenticated with plain pre-shared key (auth
    /// method 1), as Cisco IOS runs it with `authentication pre-share` and XAuth on the crypto
    /// map, instead of XAUTHInitPreShared (65001, draft-beaulieu-ike-xauth §5.1). The XAuth
    /// exchange follows phase 1 either way; only the offered and accepted method differ.
    pub xauth_after_psk: bool,
    /// A minimal XAuth/Mode Config gateway for in-memory tests of the client; NOT the gateway
    /// role of issue 14 (no pools, no leases, one user).
    #[cfg(feature = "test-support")]
    pub test_gateway: Option<crate::exchange::transaction::state::TestGateway>,
}

impl fmt::Debug for ConnectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionConfig")
            .field("name", &self.name)
            .field("local_addr", &self.local_addr)
            .field("remote_addr", &self.remote_addr)
            .field("mode", &self.mode)
            .field("ike_proposals", &self.ike_proposals)
            .field("esp_proposals", &self.esp_proposals)
            .field("children", &self.children)
            .field("psk", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl ConnectionConfig {
    /// The Authentication Method we offer: XAUTHInitPreShared (65001) for a PSK XAuth client
    /// or gateway (draft-beaulieu-ike-xauth §5.1) unless `xauth_after_psk`, else the one of
    /// `auth`.
    pub fn auth_method(&self) -> u16 {
        match (&self.auth, &self.remote_access) {
            (Phase1Auth::Psk, _) if self.xauth_after_psk => self.auth.method(),
            (Phase1Auth::Psk, Some(RemoteAccessClient { xauth: Some(_), .. })) => {
                crate::wire::attr::auth_method::XAUTH_INIT_PSK
            }
            #[cfg(feature = "test-support")]
            (Phase1Auth::Psk, _)
                if self
                    .test_gateway
                    .as_ref()
                    .is_some_and(|g| g.xauth.is_some()) =>
            {
                crate::wire::attr::auth_method::XAUTH_INIT_PSK
            }
            (Phase1Auth::Psk, _) if self.gateway.as_ref().is_some_and(|g| g.users.is_some()) => {
                crate::wire::attr::auth_method::XAUTH_INIT_PSK
            }
            (auth, _) => auth.method(),
        }
    }

    /// A connection with the defaults an engineer expects: Main Mode, aes256-sha256-modp2048,
    /// aes128gcm16 ESP, 8 h / 1 h lifetimes, one 0.0.0.0/0 child, NAT-T auto, DPD 30 s / 150 s.
    pub fn new(name: &str, local_addr: IpAddr, remote_addr: IpAddr, psk: &[u8]) -> Self {
        use crate::algorithm::{DhGroup, EspCipher, IkeCipher, IkeHash};
        ConnectionConfig {
            name: name.to_string(),
            local_addr,
            remote_addr,
            local_id: ip_id(local_addr),
            remote_id: ip_id(remote_addr),
            psk: Secret::new(psk.to_vec()),
            auth: Phase1Auth::Psk,
            mode: Phase1Mode::Main,
            ike_proposals: vec![IkeProposal {
                cipher: IkeCipher::AesCbc256,
                hash: IkeHash::Sha2_256,
                group: DhGroup::Modp2048,
            }],
            ike_lifetime: Duration::from_secs(8 * 3600),
            esp_proposals: vec![EspProposal {
                cipher: EspCipher::AesGcm {
                    key_bits: 128,
                    icv_len: 16,
                },
                integrity: None,
                pfs_group: None,
                esn: false,
            }],
            esp_lifetime: Duration::from_secs(3600),
            esp_lifetime_kb: None,
            children: vec![ChildConfig {
                local_ts: TrafficSelector::any_v4(),
                remote_ts: TrafficSelector::any_v4(),
            }],
            nat_traversal: NatTraversal::Auto,
            nat_keepalive: Some(Duration::from_secs(20)),
            dpd: Some(DpdConfig {
                interval: Duration::from_secs(30),
                timeout: Duration::from_secs(150),
            }),
            allow_aggressive_psk: false,
            allow_weak_dh: false,
            initial_contact: true,
            invalid_spi_recovery: true,
            request_commit: false,
            fragmentation: Fragmentation::Yes,
            fragment_size: DEFAULT_FRAGMENT_SIZE,
            remote_access: None,
            gateway: None,
            xauth_after_psk: false,
            #[cfg(feature = "test-support")]
            test_gateway: None,
        }
    }
}

/// The ID payload value for an address identity.
pub fn ip_id(a: IpAddr) -> IdValue {
    match a {
        IpAddr::V4(a) => IdValue::Ipv4(a),
        IpAddr::V6(a) => IdValue::Ipv6(a),
    }
}

/// Endpoint-wide knobs: retransmission and resource bounds.
#[derive(Debug, Clone)]
pub struct Settings {
    /// First retransmission after this long (strongSwan: 4 s).
    pub retransmit_timeout: Duration,
    /// Each later wait is multiplied by this (strongSwan: 1.8).
    pub retransmit_base: f64,
    /// Retransmissions before giving up (strongSwan: 5).
    pub retransmit_tries: u32,
    /// Responder IKE SAs not yet authenticated, across all peers; more MM1/AM1 are dropped.
    pub max_half_open: usize,
    /// Responder IKE SAs not yet authenticated from one peer address (any port).
    pub max_half_open_per_peer: usize,
    /// A responder SA that does not move on in this time (from MM1/AM1, then from MM3
    /// accepted) is forgotten.
    pub half_open_timeout: Duration,
    /// Start rekeying at least this long before a lifetime ends (see `rekey_lead`).
    pub rekey_margin: Duration,
    /// … and at least this share of the lifetime before, in percent. A rekey must have time
    /// for its retransmissions (165 s with the defaults) before the old SA ends: with one
    /// minute, about 1.7 % of rekeys at 20 % loss did not finish in time and traffic stopped.
    /// 10 % is strongSwan's default (its life_time is 110 % of its rekey_time).
    pub rekey_share_percent: u32,
    /// A rekeyed IPsec SA pair is deleted this long after its successor is up, so packets
    /// already in flight under the old SPIs are not lost (make-before-break); a rekeyed
    /// ISAKMP SA too, so a peer can move its IPsec SAs over first.
    pub rekeyed_drain: Duration,
    /// Invalid-SPI recovery acts at most once per this interval per connection.
    pub recovery_interval: Duration,
    /// Diffie-Hellman key pairs kept ready per group in use, made by the driver
    /// (`Endpoint::dh_wanted` / `supply_dh`); 0 makes every key pair inline.
    pub dh_pool: usize,
    /// Shared secrets and the phase 1 key schedule computed by the driver (`DhJob`,
    /// `Endpoint::poll_dh_job` / `dh_done`) instead of inline in the exchange.
    pub dh_offload: bool,
    /// Bounds on reassembling IKEv1 fragments.
    pub fragments: FragmentLimits,
    /// Test support: rewrites the payloads of every message we send before it is sealed.
    #[cfg(feature = "test-support")]
    pub tamper: Option<crate::tamper::Tamper>,
}

impl Settings {
    /// When, after it was established, an SA of `lifetime` starts its rekey: `rekey_lead`
    /// before the end, so never in the first half of its life (a lifetime no longer than the
    /// margin would otherwise be due at once, and its successor too).
    pub fn rekey_after(&self, lifetime: Duration) -> Duration {
        lifetime.saturating_sub(self.rekey_lead(lifetime))
    }

    /// How long before the end of `lifetime` its rekey starts: `rekey_margin` or
    /// `rekey_share_percent` of the lifetime, whichever is longer, at most half of it.
    pub fn rekey_lead(&self, lifetime: Duration) -> Duration {
        let share = (lifetime / 100)
            .checked_mul(self.rekey_share_percent)
            .unwrap_or(lifetime);
        self.rekey_margin.max(share).min(lifetime / 2)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            retransmit_timeout: Duration::from_secs(4),
            retransmit_base: 1.8,
            retransmit_tries: 5,
            max_half_open: 1024,
            max_half_open_per_peer: 32,
            half_open_timeout: Duration::from_secs(60),
            rekey_margin: Duration::from_secs(60),
            rekey_share_percent: 10,
            rekeyed_drain: Duration::from_secs(5),
            recovery_interval: Duration::from_secs(5),
            dh_pool: 0,
            dh_offload: false,
            fragments: FragmentLimits::default(),
            #[cfg(feature = "test-support")]
            tamper: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rekey_starts_a_tenth_or_a_minute_before_the_end_never_in_the_first_half() {
        let s = Settings::default();
        let secs = |n| Duration::from_secs(n);
        assert_eq!(s.rekey_after(secs(3600)), secs(3240), "1 h: 6 min before");
        assert_eq!(
            s.rekey_after(secs(8 * 3600)),
            secs(8 * 3600 - 2880),
            "8 h: 48 min"
        );
        assert_eq!(s.rekey_after(secs(300)), secs(240), "5 min: the minute");
        assert_eq!(s.rekey_after(secs(60)), secs(30), "1 min: half");
        assert_eq!(s.rekey_after(secs(30)), secs(15));
        assert!(
            s.rekey_after(Duration::MAX) >= Duration::MAX / 2,
            "no overflow"
        );
        let minute_only = Settings {
            rekey_share_percent: 0,
            ..Settings::default()
        };
        assert_eq!(minute_only.rekey_after(secs(3600)), secs(3540));
    }

    #[test]
    fn selectors_from_ids() {
        let ts = TrafficSelector::from_id_value(
            &IdValue::Ipv4Subnet(
                Ipv4Addr::new(198, 51, 100, 7),
                Ipv4Addr::new(255, 255, 255, 0),
            ),
            0,
            0,
        )
        .unwrap();
        assert_eq!(ts.to_string(), "198.51.100.0/24");
        let any = TrafficSelector::from_id_value(
            &IdValue::Ipv4Subnet(Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED),
            0,
            0,
        );
        assert_eq!(any, Some(TrafficSelector::any_v4()));
        let range = IdValue::Ipv4Range(
            Ipv4Addr::new(203, 0, 113, 0),
            Ipv4Addr::new(203, 0, 113, 255),
        );
        assert_eq!(
            TrafficSelector::from_id_value(&range, 0, 0)
                .unwrap()
                .to_string(),
            "203.0.113.0/24"
        );
        let odd = IdValue::Ipv4Range(Ipv4Addr::new(203, 0, 113, 1), Ipv4Addr::new(203, 0, 113, 9));
        assert_eq!(TrafficSelector::from_id_value(&odd, 0, 0), None);
        let holes = IdValue::Ipv4Subnet(Ipv4Addr::new(10, 0, 0, 0), Ipv4Addr::new(255, 0, 255, 0));
        assert_eq!(TrafficSelector::from_id_value(&holes, 0, 0), None);
        let host = IdValue::Ipv6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        assert_eq!(
            TrafficSelector::from_id_value(&host, 0, 0)
                .unwrap()
                .prefix_len,
            128
        );
        let all6 = IdValue::Ipv6Subnet(Ipv6Addr::UNSPECIFIED, Ipv6Addr::UNSPECIFIED);
        assert_eq!(
            TrafficSelector::from_id_value(&all6, 0, 0)
                .unwrap()
                .prefix_len,
            0
        );
    }
}

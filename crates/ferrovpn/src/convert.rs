//! Translations between the validated config, the IKE state machine and the ESP data plane.

use std::sync::Arc;
use std::time::Duration;

use ferrovpn_esp::mss::MssClamp;
use ferrovpn_esp::{
    AesKeyLen, Cipher, Direction, Encap, GcmIcv, Integrity, Lifetimes, Limits, SaConfig, SecretKey,
    TunnelEndpoints,
};
use ferrovpn_ike::algorithm::{EspCipher, EspIntegrity};
use ferrovpn_ike::config::{Phase1Auth, RemoteAccessClient, XauthCredentials};
use ferrovpn_ike::crypto::Secret;
use ferrovpn_ike::proposal::EspProposal;
use ferrovpn_ike::wire::IdType;
use ferrovpn_ike::{
    ChildConfig, ChildSa, ConnectionConfig, DpdConfig, EspEncapsulation, IdValue, Phase1Mode,
    TrafficSelector,
};

use crate::config::{
    Auth, Connection, Fragmentation, Identity, Mode, NatTraversal, TcpMss, Tunnel,
};
use crate::ipnet::IpNet;

/// Replay window for inbound SAs (RFC 4303 §3.4.3; strongSwan uses 32, we keep more for reordering).
pub const REPLAY_WINDOW: u32 = 1024;

pub fn identity(id: &Identity) -> IdValue {
    match id {
        Identity::Ipv4(a) => IdValue::Ipv4(*a),
        Identity::Ipv6(a) => IdValue::Ipv6(*a),
        Identity::Fqdn(s) => IdValue::Fqdn(s.clone()),
        Identity::UserFqdn(s) => IdValue::UserFqdn(s.clone()),
        Identity::KeyId(k) => IdValue::KeyId(k.clone()),
        Identity::Dn(_, der) => IdValue::Other(IdType::DER_ASN1_DN, der.clone()),
    }
}

pub fn selector(n: &IpNet) -> TrafficSelector {
    TrafficSelector::subnet(n.addr(), n.prefix_len())
}

/// The state machine's view of a configured connection.
pub fn connection(c: &Connection) -> ConnectionConfig {
    let mut cfg = ConnectionConfig::new(&c.name, c.local_addr, c.remote_addr, c.psk.as_bytes());
    cfg.local_id = identity(&c.local_id);
    cfg.remote_id = identity(&c.remote_id);
    cfg.psk = Secret::new(c.psk.as_bytes().to_vec());
    if let Auth::Certificate { creds, .. } = &c.auth {
        cfg.auth = Phase1Auth::Certificate(Arc::clone(creds));
    }
    cfg.mode = match c.mode {
        Mode::Main => Phase1Mode::Main,
        Mode::Aggressive => Phase1Mode::Aggressive,
    };
    cfg.ike_proposals = c.ike.clone();
    cfg.ike_lifetime = c.ike_lifetime;
    cfg.esp_proposals = c.esp.clone();
    cfg.esp_lifetime = c.esp_lifetime;
    cfg.esp_lifetime_kb = c.esp_lifetime_bytes.map(|b| b.div_ceil(1024));
    cfg.children = match &c.tunnel {
        Tunnel::RouteBased(r) => r
            .selectors
            .iter()
            .map(|p| ChildConfig {
                local_ts: selector(&p.local),
                remote_ts: selector(&p.remote),
            })
            .collect(),
        Tunnel::PolicyBased(pairs) => pairs
            .iter()
            .map(|p| ChildConfig {
                local_ts: selector(&p.local),
                remote_ts: selector(&p.remote),
            })
            .collect(),
    };
    cfg.remote_access = c.remote_access.as_ref().map(|r| RemoteAccessClient {
        xauth: r.xauth.as_ref().map(|x| XauthCredentials {
            user: x.user.clone(),
            password: Secret::new(x.password.as_bytes().to_vec()),
        }),
        mode_cfg: r.mode_cfg,
    });
    cfg.gateway = c.gateway.as_ref().map(gateway);
    if let Some(g) = cfg.gateway.as_mut() {
        // ESP proposals with PFS: tell the clients (Cisco UNITY_PFS), who then use PFS in the
        // phase 1 group.
        if cfg.esp_proposals.iter().any(|p| p.pfs_group.is_some()) {
            g.settings.pfs = Some(1);
        }
    }
    cfg.xauth_after_psk = c.xauth_after_psk;
    if c.gateway.is_some() {
        // Any client ID: the group PSK authenticates phase 1, XAuth the user.
        cfg.remote_id = ferrovpn_ike::IdValue::Ipv4(std::net::Ipv4Addr::UNSPECIFIED);
    }
    cfg.nat_traversal = match c.nat_traversal {
        NatTraversal::Auto => ferrovpn_ike::NatTraversal::Auto,
        NatTraversal::Force => ferrovpn_ike::NatTraversal::Force,
    };
    cfg.dpd = c.dpd.map(|d| DpdConfig {
        interval: d.interval,
        timeout: d.timeout,
    });
    cfg.nat_keepalive = c.nat_keepalive;
    cfg.allow_aggressive_psk = c.allow_aggressive_psk;
    cfg.allow_weak_dh = c.allow_weak_dh;
    cfg.invalid_spi_recovery = c.invalid_spi_recovery;
    cfg.fragmentation = match c.fragmentation {
        Fragmentation::Yes => ferrovpn_ike::config::Fragmentation::Yes,
        Fragmentation::No => ferrovpn_ike::config::Fragmentation::No,
        Fragmentation::Force => ferrovpn_ike::config::Fragmentation::Force,
    };
    cfg.fragment_size = c.fragment_size;
    cfg
}

/// Default MTU of a connection's tunnel interface: the largest inner packet that every ESP
/// proposal of the connection fits into one outer packet on an underlay link of
/// `underlay_mtu` bytes (outer IPv4/IPv6 header, UDP 4500 since NAT-T may float there at any
/// time, RFC 3948; then RFC 4303 §2 header, IV, padding, trailer, ICV).
pub fn tunnel_mtu(esp: &[EspProposal], outer_v6: bool, underlay_mtu: u32) -> u32 {
    let outer = if outer_v6 { 40 } else { 20 };
    let esp_len = (underlay_mtu as usize).saturating_sub(outer + 8);
    let ciphers: Vec<Cipher> = esp
        .iter()
        .filter_map(|p| cipher(p.cipher, p.integrity))
        .collect();
    let worst = if ciphers.is_empty() {
        &Cipher::ALL[..]
    } else {
        &ciphers[..]
    };
    let mtu = worst
        .iter()
        .map(|c| c.max_payload(esp_len))
        .min()
        .unwrap_or(0);
    // IPv4 needs 68 (RFC 791); below that the link is unusable anyway.
    (mtu as u32).max(68)
}

/// The MSS limit for SYNs through a TUN of `mtu` bytes (route-based `mtu` or the computed one).
pub fn mss_clamp(mss: TcpMss, mtu: u32) -> MssClamp {
    match mss {
        TcpMss::Auto => MssClamp::for_mtu(u16::try_from(mtu).unwrap_or(u16::MAX)),
        TcpMss::Off => MssClamp::OFF,
        TcpMss::Fixed(m) => MssClamp::fixed(m),
    }
}

/// The data plane's cipher for a negotiated ESP transform; None for what it does not implement.
pub fn cipher(c: EspCipher, i: Option<EspIntegrity>) -> Option<Cipher> {
    let aes = |bits: u16| match bits {
        128 => Some(AesKeyLen::Aes128),
        256 => Some(AesKeyLen::Aes256),
        _ => None,
    };
    Some(match (c, i) {
        (EspCipher::AesGcm { key_bits, icv_len }, None) => Cipher::AesGcm {
            key: aes(key_bits)?,
            icv: match icv_len {
                8 => GcmIcv::Icv8,
                12 => GcmIcv::Icv12,
                _ => GcmIcv::Icv16,
            },
        },
        (EspCipher::ChaCha20Poly1305, None) => Cipher::ChaCha20Poly1305,
        (EspCipher::AesCbc { key_bits }, Some(i)) => Cipher::AesCbc {
            key: aes(key_bits)?,
            integrity: match i {
                EspIntegrity::HmacSha1_96 => Integrity::HmacSha1_96,
                EspIntegrity::HmacSha256_128 => Integrity::HmacSha256_128,
                EspIntegrity::HmacSha384_192 => Integrity::HmacSha384_192,
                EspIntegrity::HmacSha512_256 => Integrity::HmacSha512_256,
            },
        },
        _ => return None,
    })
}

/// Both directions of a negotiated pair as data plane SAs: (inbound, outbound). The IKE
/// lifetime is the hard limit; the soft limit is left to the control plane's rekey timer.
pub fn esp_sas(c: &ChildSa) -> Option<(SaConfig, SaConfig)> {
    let cipher = cipher(c.cipher, c.integrity)?;
    let encap = match c.encapsulation {
        EspEncapsulation::Raw => Encap::Raw,
        EspEncapsulation::Udp {
            local_port,
            remote_port,
        } => Encap::Udp {
            local_port,
            remote_port,
        },
    };
    let tunnel = TunnelEndpoints {
        local: c.local.ip(),
        remote: c.remote.ip(),
    };
    let hard_bytes = c.lifetime_kb.map(|kb| kb.saturating_mul(1024));
    let hard = Limits {
        bytes: hard_bytes,
        packets: None,
        time: Some(c.lifetime.saturating_add(Duration::from_secs(30))),
    };
    // A byte lifetime is rekeyed before it ends (RFC 2401 §4.4.2's soft limit), at 90 %: the
    // new pair is installed while the old one still carries traffic. Time is rekeyed by the
    // IKE endpoint's own timers.
    let soft = Limits {
        bytes: hard_bytes.map(soft_bytes),
        ..Limits::default()
    };
    let make = |dir: Direction, keys: &ferrovpn_ike::EspKeys| SaConfig {
        spi: keys.spi,
        direction: dir,
        cipher,
        enc_key: SecretKey::new(&keys.enc_key),
        auth_key: SecretKey::new(&keys.auth_key),
        esn: c.esn,
        replay_window: REPLAY_WINDOW,
        encap,
        tunnel,
        lifetimes: Lifetimes { soft, hard },
    };
    Some((
        make(Direction::Inbound, &c.inbound),
        make(Direction::Outbound, &c.outbound),
    ))
}

/// Where a byte lifetime's rekey starts: 90 % of it.
fn soft_bytes(hard: u64) -> u64 {
    hard - hard / 10
}

/// The ike crate's gateway role from a validated `remote_access = "gateway"`.
fn gateway(g: &crate::config::Gateway) -> ferrovpn_ike::config::RemoteAccessGateway {
    use std::net::{IpAddr, Ipv4Addr};
    let v4 = |a: IpAddr| match a {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    };
    let mask = |len: u8| {
        Ipv4Addr::from(
            u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0),
        )
    };
    let settings = ferrovpn_ike::wire::ModeCfgSettings {
        ip4_dns: g.dns.clone(),
        ip6_dns: g.dns6.clone(),
        default_domain: g.domains.first().cloned(),
        split_dns: if g.split_include.is_empty() {
            Vec::new()
        } else {
            g.domains.clone()
        },
        split_include: g
            .split_include
            .iter()
            .map(|n| (v4(n.addr()), mask(n.prefix_len())))
            .collect(),
        banner: g.banner.clone(),
        ..Default::default()
    };
    ferrovpn_ike::config::RemoteAccessGateway {
        users: Some(g.users.verifier()),
        pool: (v4(g.pool.addr()), g.pool.prefix_len()),
        pool6: g.pool6.and_then(|p| match p.addr() {
            IpAddr::V6(a) => Some((a, p.prefix_len())),
            IpAddr::V4(_) => None,
        }),
        settings,
        push: g.push,
        max_failures: g.max_failures,
        failure_window: g.lockout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovpn_ike::proposal::parse_esp_proposals;

    #[test]
    fn a_byte_lifetime_gets_a_soft_limit_at_90_percent_and_a_time_one_none() {
        assert_eq!(soft_bytes(1_048_576), 943_719);
        assert_eq!(soft_bytes(u64::MAX), u64::MAX - u64::MAX / 10);
        assert_eq!(soft_bytes(0), 0);
    }

    fn mtu(esp: &str, v6: bool, underlay: u32) -> u32 {
        tunnel_mtu(&parse_esp_proposals(esp).unwrap(), v6, underlay)
    }

    #[test]
    fn a_lifetime_of_u64_max_seconds_gives_a_data_plane_sa_without_overflow() {
        let keys = |spi| ferrovpn_ike::EspKeys {
            spi,
            enc_key: Secret::new(vec![7; 20]),
            auth_key: Secret::new(Vec::new()),
        };
        let addr: std::net::SocketAddr = "192.0.2.1:500".parse().unwrap();
        let child = ChildSa {
            conn: 0,
            ike: ferrovpn_ike::Cookies::default(),
            message_id: 1,
            local: addr,
            remote: addr,
            local_ts: TrafficSelector::any_v4(),
            remote_ts: TrafficSelector::any_v4(),
            cipher: EspCipher::AesGcm {
                key_bits: 128,
                icv_len: 16,
            },
            integrity: None,
            esn: false,
            pfs: None,
            encapsulation: EspEncapsulation::Raw,
            inbound: keys(0x1000),
            outbound: keys(0x2000),
            lifetime: Duration::from_secs(u64::MAX),
            lifetime_kb: Some(u64::MAX),
            role: ferrovpn_ike::Role::Initiator,
        };
        let (inbound, _) = esp_sas(&child).unwrap();
        assert_eq!(
            inbound.lifetimes.hard.time,
            Some(Duration::from_secs(u64::MAX).saturating_add(Duration::from_secs(30)))
        );
        assert_eq!(inbound.lifetimes.hard.bytes, Some(u64::MAX));
    }

    #[test]
    fn tunnel_mtu_follows_the_cipher_overhead_and_the_underlay() {
        // 1500 - IPv4 20 - UDP 8 - ESP 8 - IV 8 - ICV 16 = 1440, aligned to 4, minus 2.
        assert_eq!(mtu("aes128gcm16", false, 1500), 1438);
        assert_eq!(mtu("aes128gcm16", true, 1500), 1418);
        // CBC: IV 16, ICV 16 (sha256-128), payload + 2 aligned to 16.
        assert_eq!(mtu("aes128-sha256", false, 1500), 1422);
        assert_eq!(mtu("aes256-sha512", false, 1500), 1406);
        // Several proposals: the one with the most overhead decides.
        assert_eq!(mtu("aes128gcm16,aes256-sha512", false, 1500), 1406);
        assert_eq!(mtu("aes128gcm16", false, 9000), 8938);
        assert_eq!(mtu("aes128gcm16", false, 0), 68);
    }

    #[test]
    fn auto_mss_fills_the_tunnel_mtu() {
        let auto = mss_clamp(TcpMss::Auto, 1438);
        assert_eq!((auto.ipv4, auto.ipv6), (Some(1398), Some(1378)));
        assert_eq!(mss_clamp(TcpMss::Off, 1438), MssClamp::OFF);
        assert_eq!(mss_clamp(TcpMss::Fixed(1200), 1438), MssClamp::fixed(1200));
    }
}

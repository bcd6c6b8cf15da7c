//! What a remote-access client got from its gateway by Mode Config (issue 14), rendered for
//! the log and as the environment of a DNS/route hook script (a contract like vpnc-script's:
//! variables in, the user's script decides; /etc/resolv.conf is never rewritten by us).

use std::fmt::Write;

use ferrovpn_ike::wire::ModeCfgSettings;

use crate::ipnet::IpNet;

/// One line for the log: address, DNS, domains, split networks.
pub fn describe(s: &ModeCfgSettings) -> String {
    let mut out = String::new();
    match s.ip4_address {
        Some(a) => {
            let _ = write!(out, "address {a}/{}", s.ip4_prefix_len());
        }
        None => out.push_str("no address"),
    }
    if let Some((a, p)) = s.ip6_address {
        let _ = write!(out, ", IPv6 {a}/{}", p.unwrap_or(128));
    }
    let list = |v: Vec<String>| v.join(" ");
    if !s.ip4_dns.is_empty() || !s.ip6_dns.is_empty() {
        let mut d: Vec<String> = s.ip4_dns.iter().map(ToString::to_string).collect();
        d.extend(s.ip6_dns.iter().map(ToString::to_string));
        let _ = write!(out, ", DNS {}", list(d));
    }
    if let Some(d) = &s.default_domain {
        let _ = write!(out, ", domain {d}");
    }
    if !s.split_dns.is_empty() {
        let _ = write!(out, ", split DNS {}", s.split_dns.join(" "));
    }
    if s.split_include.is_empty() {
        out.push_str(", all traffic through the tunnel");
    } else {
        let nets: Vec<String> = s
            .split_include
            .iter()
            .map(|(n, m)| format!("{n}/{}", u32::from(*m).leading_ones()))
            .collect();
        let _ = write!(out, ", split include {}", list(nets));
    }
    out
}

/// Environment for the hook script: `FERROVPN_*` names, lists space-separated, networks as
/// address/prefix.
pub fn hook_env(
    connection: &str,
    device: &str,
    reason: &str,
    s: &ModeCfgSettings,
) -> Vec<(String, String)> {
    let mut v = vec![
        ("FERROVPN_REASON".to_string(), reason.to_string()),
        ("FERROVPN_CONNECTION".into(), connection.to_string()),
        ("FERROVPN_TUNDEV".into(), device.to_string()),
    ];
    let join = |it: Vec<String>| it.join(" ");
    if let Some(a) = s.ip4_address {
        v.push(("FERROVPN_INTERNAL_IP4_ADDRESS".into(), a.to_string()));
        v.push((
            "FERROVPN_INTERNAL_IP4_PREFIX".into(),
            s.ip4_prefix_len().to_string(),
        ));
    }
    if let Some((a, p)) = s.ip6_address {
        v.push(("FERROVPN_INTERNAL_IP6_ADDRESS".into(), a.to_string()));
        v.push((
            "FERROVPN_INTERNAL_IP6_PREFIX".into(),
            p.unwrap_or(128).to_string(),
        ));
    }
    let mut dns: Vec<String> = s.ip4_dns.iter().map(ToString::to_string).collect();
    dns.extend(s.ip6_dns.iter().map(ToString::to_string));
    if !dns.is_empty() {
        v.push(("FERROVPN_DNS".into(), join(dns)));
    }
    if !s.ip4_nbns.is_empty() {
        v.push((
            "FERROVPN_NBNS".into(),
            join(s.ip4_nbns.iter().map(ToString::to_string).collect()),
        ));
    }
    if let Some(d) = &s.default_domain {
        v.push(("FERROVPN_DEFAULT_DOMAIN".into(), d.clone()));
    }
    if !s.split_dns.is_empty() {
        v.push(("FERROVPN_SPLIT_DNS".into(), s.split_dns.join(" ")));
    }
    if !s.split_include.is_empty() {
        let nets = s
            .split_include
            .iter()
            .map(|(n, m)| format!("{n}/{}", u32::from(*m).leading_ones()))
            .collect();
        v.push(("FERROVPN_SPLIT_INCLUDE".into(), join(nets)));
    }
    if let Some(b) = &s.banner {
        v.push(("FERROVPN_BANNER".into(), b.clone()));
    }
    v
}

/// The routes of a client after Mode Config: `configured` with its IPv4 default route replaced
/// by the Unity SPLIT_INCLUDE networks when the gateway sent some (Cisco's split tunnel: the
/// Quick Mode still names 0.0.0.0/0, only these networks are routed into the TUN). A network
/// holding the gateway's outer address would loop and is left out with a warning.
pub fn client_routes(
    configured: &[IpNet],
    s: &ModeCfgSettings,
    gateway: std::net::IpAddr,
) -> (Vec<IpNet>, Vec<String>) {
    let mut warnings = Vec::new();
    let split_v4 = configured.iter().any(|r| r.is_default() && !r.is_ipv6());
    if s.split_include.is_empty() || !split_v4 {
        return (configured.to_vec(), warnings);
    }
    let mut out: Vec<IpNet> = configured
        .iter()
        .filter(|r| !r.is_default() || r.is_ipv6())
        .copied()
        .collect();
    for (net, mask) in &s.split_include {
        let len = u8::try_from(u32::from(*mask).leading_ones()).unwrap_or(32);
        let n = IpNet::truncating((*net).into(), len);
        if n.contains_addr(gateway) {
            warnings.push(format!(
                "split include {n} holds the gateway {gateway}: not routed into the tunnel (it would loop)"
            ));
        } else if !out.contains(&n) {
            out.push(n);
        }
    }
    (out, warnings)
}

/// Whether systemd-resolved runs (its varlink socket exists): DNS then goes per link through
/// `resolvectl`.
pub fn resolved_runs() -> bool {
    std::path::Path::new("/run/systemd/resolve/io.systemd.Resolve").exists()
}

/// The `resolvectl` invocations that give `device` the assigned DNS servers and domains
/// (split DNS names as routing-only `~domain`s, the default domain as a search domain).
pub fn resolvectl_commands(device: &str, s: &ModeCfgSettings) -> Vec<Vec<String>> {
    let mut dns: Vec<String> = s.ip4_dns.iter().map(ToString::to_string).collect();
    dns.extend(s.ip6_dns.iter().map(ToString::to_string));
    if dns.is_empty() {
        return Vec::new();
    }
    let mut out = vec![[vec!["dns".to_string(), device.to_string()], dns].concat()];
    let mut domains: Vec<String> = s.default_domain.iter().cloned().collect();
    domains.extend(s.split_dns.iter().map(|d| format!("~{d}")));
    if s.split_include.is_empty() && s.split_dns.is_empty() {
        // Full tunnel: every name is resolved through the tunnel's servers.
        domains.push("~.".into());
    }
    if !domains.is_empty() {
        out.push([vec!["domain".to_string(), device.to_string()], domains].concat());
    }
    out
}

/// Runs `program args` in the background, logging a failure; never waits in the caller.
pub fn spawn_logged(
    program: &std::path::Path,
    args: &[String],
    env: &[(String, String)],
    what: String,
) {
    let mut cmd = std::process::Command::new(program);
    // The hook sees only our FERROVPN_* variables, none inherited under those names.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("FERROVPN_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(std::process::Stdio::null());
    match cmd.spawn() {
        Ok(mut child) => {
            let _ = std::thread::Builder::new()
                .name("ferrovpn-hook".into())
                .spawn(move || match child.wait() {
                    Ok(st) if st.success() => tracing::info!("{what}: done"),
                    Ok(st) => tracing::warn!("{what}: exited with {st}"),
                    Err(e) => tracing::warn!("{what}: {e}"),
                });
        }
        Err(e) => tracing::warn!("{what}: could not start {}: {e}", program.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn settings() -> ModeCfgSettings {
        ModeCfgSettings {
            ip4_address: Some(Ipv4Addr::new(198, 51, 100, 10)),
            ip4_netmask: Some(Ipv4Addr::new(255, 255, 255, 0)),
            ip4_dns: vec![Ipv4Addr::new(198, 51, 100, 53)],
            split_include: vec![(
                Ipv4Addr::new(203, 0, 113, 0),
                Ipv4Addr::new(255, 255, 255, 0),
            )],
            split_dns: vec!["corp.example".into()],
            default_domain: Some("example.org".into()),
            banner: Some("Welcome".into()),
            ..Default::default()
        }
    }

    #[test]
    fn log_line_names_address_dns_and_split_networks() {
        let d = describe(&settings());
        assert_eq!(d, "address 198.51.100.10/24, DNS 198.51.100.53, domain example.org, split DNS corp.example, split include 203.0.113.0/24");
        assert!(describe(&ModeCfgSettings::default()).ends_with("all traffic through the tunnel"));
    }

    #[test]
    fn split_include_replaces_only_the_ipv4_default_route() {
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        let gw: std::net::IpAddr = [192, 0, 2, 2].into();
        let (r, w) = client_routes(&[net("0.0.0.0/0"), net("::/0")], &settings(), gw);
        assert_eq!(r, vec![net("::/0"), net("203.0.113.0/24")]);
        assert!(w.is_empty());
        // No split include: the configured routes as they are.
        let full = ModeCfgSettings::default();
        assert_eq!(
            client_routes(&[net("0.0.0.0/0")], &full, gw).0,
            vec![net("0.0.0.0/0")]
        );
        // Routes chosen in the config are kept.
        assert_eq!(
            client_routes(&[net("203.0.113.0/25")], &settings(), gw).0,
            vec![net("203.0.113.0/25")]
        );
        // A split network holding the gateway would loop: left out, said.
        let looping = ModeCfgSettings {
            split_include: vec![(Ipv4Addr::new(192, 0, 2, 0), Ipv4Addr::new(255, 255, 255, 0))],
            ..Default::default()
        };
        let (r, w) = client_routes(&[net("0.0.0.0/0")], &looping, gw);
        assert!(r.is_empty());
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn resolvectl_gets_servers_and_routing_domains_per_link() {
        assert_eq!(
            resolvectl_commands("fvpn0", &settings()),
            vec![
                vec!["dns", "fvpn0", "198.51.100.53"],
                vec!["domain", "fvpn0", "example.org", "~corp.example"],
            ]
        );
        let full = ModeCfgSettings {
            ip4_dns: vec![Ipv4Addr::new(203, 0, 113, 53)],
            ..Default::default()
        };
        assert_eq!(
            resolvectl_commands("fvpn0", &full)[1],
            vec!["domain", "fvpn0", "~."],
            "a full tunnel resolves every name through the tunnel"
        );
        assert!(resolvectl_commands("fvpn0", &ModeCfgSettings::default()).is_empty());
    }

    #[test]
    fn hook_environment_carries_every_setting() {
        let env = hook_env("asa", "fvpn0", "connect", &settings());
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("FERROVPN_REASON"), Some("connect"));
        assert_eq!(get("FERROVPN_TUNDEV"), Some("fvpn0"));
        assert_eq!(get("FERROVPN_INTERNAL_IP4_ADDRESS"), Some("198.51.100.10"));
        assert_eq!(get("FERROVPN_INTERNAL_IP4_PREFIX"), Some("24"));
        assert_eq!(get("FERROVPN_DNS"), Some("198.51.100.53"));
        assert_eq!(get("FERROVPN_SPLIT_INCLUDE"), Some("203.0.113.0/24"));
        assert_eq!(get("FERROVPN_SPLIT_DNS"), Some("corp.example"));
        assert_eq!(get("FERROVPN_DEFAULT_DOMAIN"), Some("example.org"));
        assert_eq!(get("FERROVPN_BANNER"), Some("Welcome"));
        assert_eq!(get("FERROVPN_NBNS"), None);
    }
}

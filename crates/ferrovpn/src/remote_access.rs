//! What a remote-access client got from its gateway by Mode Config (issue 14), rendered for
//! the log and as the environment of a DNS/route hook script (a contract like vpnc-script's:
//! variables in, the user's script decides; /etc/resolv.conf is never rewritten by us).

use std::fmt::Write;

use ferrovpn_ike::wire::ModeCfgSettings;
use zeroize::Zeroizing;

use crate::config::{Config, Connection, Psk};

/// The connections whose XAuth password is to be typed (`xauth_user` without
/// `xauth_password_file`) and has not been yet.
fn wanting_password(cfg: &mut Config) -> impl Iterator<Item = &mut Connection> {
    cfg.connections.iter_mut().filter(|c| {
        c.remote_access
            .as_ref()
            .and_then(|r| r.xauth.as_ref())
            .is_some_and(|x| x.needs_password())
    })
}

/// A password as typed, wiped on drop.
pub type Typed = Zeroizing<Vec<u8>>;

/// True when `ferrovpn up` has an XAuth password to ask for.
pub fn wants_password(cfg: &mut Config) -> bool {
    wanting_password(cfg).next().is_some()
}

/// `ferrovpn up`: asks for each such password with `ask(prompt)` (the terminal, echo off) and
/// keeps it in the configuration, wiped on drop: the endpoint answers every XAuth REQUEST with
/// it, a phase 1 rekey's too. `terminal`: why there is none to ask on, if so (`up --daemon`,
/// no /dev/tty), which is then the error. Never logs the password.
pub fn ask_passwords(
    cfg: &mut Config,
    terminal: Result<(), String>,
    ask: &mut dyn FnMut(&str) -> Result<Typed, String>,
) -> Result<(), String> {
    for c in wanting_password(cfg) {
        let Some(x) = c.remote_access.as_mut().and_then(|r| r.xauth.as_mut()) else {
            continue;
        };
        if let Err(why) = &terminal {
            return Err(format!(
                "connection \"{}\": xauth_user \"{}\" has no xauth_password_file and the password cannot be asked for: {why}; set xauth_password_file (the password on one line, chmod 600), or run `ferrovpn up` in the foreground on a terminal",
                c.name, x.user
            ));
        }
        let prompt = format!("XAuth password for {} (connection {}): ", x.user, c.name);
        let password = ask(&prompt).map_err(|e| {
            format!(
                "connection \"{}\": reading the XAuth password of {}: {e}",
                c.name, x.user
            )
        })?;
        if password.is_empty() {
            return Err(format!(
                "connection \"{}\": empty XAuth password for {}",
                c.name, x.user
            ));
        }
        x.password = Psk::from_secret(password);
    }
    Ok(())
}

/// A reload cannot ask: each connection of `new` that wants a typed password takes the one
/// typed for the running connection of the same name and user, else the reload is refused.
pub fn keep_typed_passwords(new: &mut Config, running: &[&Connection]) -> Result<(), String> {
    for c in wanting_password(new) {
        let Some(x) = c.remote_access.as_mut().and_then(|r| r.xauth.as_mut()) else {
            continue;
        };
        let typed = running
            .iter()
            .filter(|r| r.name == c.name)
            .filter_map(|r| r.remote_access.as_ref().and_then(|r| r.xauth.as_ref()))
            .find(|r| r.user == x.user && r.password_file.is_none() && !r.needs_password());
        match typed {
            Some(t) => x.password = t.password.clone(),
            None => {
                return Err(format!(
                    "connection \"{}\": xauth_user \"{}\" has no xauth_password_file and no password was typed for it at `ferrovpn up` (a reload cannot ask): set xauth_password_file, or restart `ferrovpn up` in the foreground",
                    c.name, x.user
                ))
            }
        }
    }
    Ok(())
}

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

    const ASKING: &str = "[[connection]]\nname = \"asa\"\nlocal_addr = \"192.0.2.1\"\nremote_addr = \"192.0.2.2\"\npsk = \"group\"\nstart = \"initiate\"\nremote_access = \"client\"\nxauth_user = \"alice\"\n\n[connection.route_based]\ninterface = \"fvra0\"\nremote_ts = \"203.0.113.0/24\"\n";

    fn asking() -> Config {
        Config::parse(ASKING, std::path::Path::new("/tmp")).unwrap()
    }

    fn password(c: &Config) -> Vec<u8> {
        let x = c.connections[0]
            .remote_access
            .as_ref()
            .unwrap()
            .xauth
            .as_ref()
            .unwrap();
        x.password.as_bytes().to_vec()
    }

    /// The typed password goes into the config, and from there into the endpoint's XAuth
    /// credentials (used again on every phase 1 rekey); the prompt names user and connection.
    #[test]
    fn a_typed_password_is_kept_for_the_endpoint() {
        let mut c = asking();
        assert!(c.remarks.iter().any(|r| r
            .to_string()
            .contains("asks for the password on its terminal")));
        assert!(crate::cli::describe(std::path::Path::new("c.toml"), &c)
            .contains("XAuth       user alice, password asked for on the terminal at `up`"));
        let mut prompts = Vec::new();
        ask_passwords(&mut c, Ok(()), &mut |p| {
            prompts.push(p.to_string());
            Ok(Zeroizing::new(b"s3cret".to_vec()))
        })
        .unwrap();
        assert_eq!(prompts, vec!["XAuth password for alice (connection asa): "]);
        assert_eq!(password(&c), b"s3cret");
        let ike = crate::convert::connection(&c.connections[0]);
        let x = ike.remote_access.unwrap().xauth.unwrap();
        assert_eq!(&x.password[..], b"s3cret");
        assert!(!format!("{:?}", c.connections[0]).contains("s3cret"));
        // Asked once: a second call has nothing left to ask.
        ask_passwords(&mut c, Err("no terminal".into()), &mut |_| unreachable!()).unwrap();
    }

    #[test]
    fn no_terminal_or_an_empty_password_is_a_clear_error() {
        let e = ask_passwords(
            &mut asking(),
            Err("`up --daemon` has no terminal".into()),
            &mut |_| unreachable!(),
        )
        .unwrap_err();
        assert!(
            e.contains("connection \"asa\": xauth_user \"alice\" has no xauth_password_file"),
            "{e}"
        );
        assert!(
            e.contains("`up --daemon` has no terminal") && e.contains("set xauth_password_file"),
            "{e}"
        );
        let e = ask_passwords(&mut asking(), Ok(()), &mut |_| {
            Ok(Zeroizing::new(Vec::new()))
        })
        .unwrap_err();
        assert!(e.contains("empty XAuth password for alice"), "{e}");
        let e =
            ask_passwords(&mut asking(), Ok(()), &mut |_| Err("end of input".into())).unwrap_err();
        assert!(
            e.contains("reading the XAuth password of alice: end of input"),
            "{e}"
        );
        // With a password file nothing is asked.
        let dir = std::env::temp_dir().join(format!("ferrovpn-ask-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pw = dir.join("alice.pw");
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&pw)
                .unwrap();
            std::io::Write::write_all(&mut f, b"from-file\n").unwrap();
        }
        let text = ASKING.replace(
            "xauth_user = \"alice\"",
            &format!(
                "xauth_user = \"alice\"\nxauth_password_file = \"{}\"",
                pw.display()
            ),
        );
        let mut c = Config::parse(&text, &dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        ask_passwords(&mut c, Err("none".into()), &mut |_| unreachable!()).unwrap();
        assert_eq!(password(&c), b"from-file");
    }

    /// A reload keeps the password typed at start for the same connection and user, and is
    /// refused where there is none (it cannot ask).
    #[test]
    fn a_reload_keeps_the_typed_password_or_is_refused() {
        let mut running = asking();
        ask_passwords(&mut running, Ok(()), &mut |_| {
            Ok(Zeroizing::new(b"typed".to_vec()))
        })
        .unwrap();
        let r: Vec<&Connection> = running.connections.iter().collect();
        let mut new = asking();
        keep_typed_passwords(&mut new, &r).unwrap();
        assert_eq!(password(&new), b"typed");
        let mut other = Config::parse(
            &ASKING.replace("\"alice\"", "\"bob\""),
            std::path::Path::new("/tmp"),
        )
        .unwrap();
        let e = keep_typed_passwords(&mut other, &r).unwrap_err();
        assert!(
            e.contains("xauth_user \"bob\" has no xauth_password_file and no password was typed"),
            "{e}"
        );
    }
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

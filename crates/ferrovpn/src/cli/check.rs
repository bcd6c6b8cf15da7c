//! `ferrovpn check`'s report: what each connection would negotiate, with the config's
//! warnings and notes.

use std::fmt::Write as _;

use crate::config::{format_duration, Config, Mode, NatTraversal, Severity, Start, Tunnel};

/// The `check` report: what each connection would negotiate.
pub fn describe(path: &std::path::Path, cfg: &Config) -> String {
    let mut s = String::new();
    let remarks = cfg.remarks_by_connection();
    let n = cfg.connections.len();
    let w = cfg
        .remarks
        .iter()
        .filter(|r| r.severity == Severity::Warning)
        .count();
    let _ = writeln!(
        s,
        "{}: OK, {n} connection{}{}",
        path.display(),
        if n == 1 { "" } else { "s" },
        match w {
            0 => String::new(),
            1 => ", 1 warning".into(),
            _ => format!(", {w} warnings"),
        }
    );
    let _ = writeln!(
        s,
        "daemon: control socket {}, log level {}, {} data plane thread{} per direction",
        cfg.daemon.control_socket.display(),
        cfg.daemon.log_level.name(),
        cfg.daemon.workers,
        if cfg.daemon.workers.get() == 1 {
            ""
        } else {
            "s"
        }
    );
    if let Some(a) = cfg.daemon.metrics_listen {
        let _ = writeln!(s, "daemon: Prometheus metrics on http://{a}/metrics");
    }
    if let Some(d) = &cfg.daemon.save_keys_dir {
        let _ = writeln!(
            s,
            "daemon: KEY EXPORT ON: every SA's keys will be written to {} (debugging only)",
            d.display()
        );
    }
    for r in cfg.remarks_of(None) {
        let _ = writeln!(s, "{}: {r}", severity_word(r.severity));
    }
    for c in &cfg.connections {
        let field = |s: &mut String, k: &str, v: String| {
            let _ = writeln!(s, "  {k:<11} {v}");
        };
        let _ = writeln!(s, "\nconnection \"{}\"", c.name);
        let mode = match c.mode {
            Mode::Main => "Main Mode",
            Mode::Aggressive => "Aggressive Mode",
        };
        let start = match c.start {
            Start::Initiate => "we initiate",
            Start::Respond => "we respond",
        };
        field(
            &mut s,
            "peer",
            format!("{} -> {}", c.local_addr, c.remote_addr),
        );
        let auth = match &c.auth {
            crate::config::Auth::Psk => "PSK".to_string(),
            crate::config::Auth::Certificate { creds, .. } => {
                format!("{:?} signatures", creds.kind())
            }
        };
        field(&mut s, "phase 1", format!("IKEv1 {mode}, {auth}, {start}"));
        field(
            &mut s,
            "ids",
            format!("local {}, remote {}", c.local_id, c.remote_id),
        );
        match &c.auth {
            crate::config::Auth::Psk => field(
                &mut s,
                "PSK",
                match &c.psk_file {
                    Some(f) => format!("from {}", f.display()),
                    None => "inline (psk)".to_string(),
                },
            ),
            crate::config::Auth::Certificate {
                creds,
                cert_file,
                key_file,
                ca_file,
                crl,
            } => {
                let subject = creds.chain.first().map(|c| c.subject()).unwrap_or_default();
                field(
                    &mut s,
                    "certificate",
                    format!("{} (\"{subject}\")", cert_file.display()),
                );
                field(&mut s, "key", format!("from {}", key_file.display()));
                field(&mut s, "CAs", format!("from {}", ca_file.display()));
                if let Some(w) = crl {
                    let n = creds.crls.get().len();
                    field(
                        &mut s,
                        "CRLs",
                        format!(
                            "{n} from {} (read again when they change)",
                            w.path.display()
                        ),
                    );
                }
            }
        }
        if let Some(g) = &c.gateway {
            field(
                &mut s,
                "gateway",
                format!(
                    "pool {}, XAuth users: {}, a source locked out after {} wrong passwords within {}",
                    g.pool,
                    g.users.describe(),
                    g.max_failures,
                    format_duration(g.lockout)
                ),
            );
        }
        if let Some(x) = c.remote_access.as_ref().and_then(|r| r.xauth.as_ref()) {
            field(
                &mut s,
                "XAuth",
                match &x.password_file {
                    Some(f) => format!("user {}, password from {}", x.user, f.display()),
                    None => format!(
                        "user {}, password asked for on the terminal at `up`",
                        x.user
                    ),
                },
            );
        }
        if c.gateway.is_some() || c.remote_access.as_ref().is_some_and(|r| r.xauth.is_some()) {
            field(
                &mut s,
                "phase 1",
                if c.xauth_after_psk {
                    "auth method pre-shared key (1), XAuth after it (xauth_after_psk)"
                } else {
                    "auth method XAUTHInitPreShared (65001)"
                }
                .to_string(),
            );
        }
        let ike: Vec<String> = c
            .ike
            .iter()
            .map(|p| format!("{p} (PRF HMAC-{})", p.hash.name().to_uppercase()))
            .collect();
        field(&mut s, "IKE", ike.join(", "));
        field(
            &mut s,
            "IKE life",
            format_duration(c.ike_lifetime).to_string(),
        );
        let esp: Vec<String> = c.esp.iter().map(|p| p.to_string()).collect();
        field(&mut s, "ESP", esp.join(", "));
        let mut pfs: Vec<&str> = Vec::new();
        for g in c.esp.iter().filter_map(|p| p.pfs_group) {
            if !pfs.contains(&g.name()) {
                pfs.push(g.name());
            }
        }
        field(
            &mut s,
            "PFS",
            if pfs.is_empty() {
                "off".to_string()
            } else {
                pfs.join(", ")
            },
        );
        let mut life = format_duration(c.esp_lifetime);
        if let Some(b) = c.esp_lifetime_bytes {
            let _ = write!(life, " or {b} bytes");
        }
        field(&mut s, "ESP life", life);
        field(
            &mut s,
            "NAT-T",
            match c.nat_traversal {
                NatTraversal::Auto => "auto (UDP 4500 once a NAT is detected)".to_string(),
                NatTraversal::Force => "force (always UDP-encapsulated on 4500)".to_string(),
            },
        );
        field(
            &mut s,
            "keepalive",
            match c.nat_keepalive {
                None => "off".to_string(),
                Some(d) => format!(
                    "NAT-T keepalive every {} while behind a NAT",
                    format_duration(d)
                ),
            },
        );
        field(
            &mut s,
            "DPD",
            match c.dpd {
                None => "off".to_string(),
                Some(d) => format!(
                    "R-U-THERE after {} idle, peer dead after {}",
                    format_duration(d.interval),
                    format_duration(d.timeout)
                ),
            },
        );
        match &c.tunnel {
            Tunnel::RouteBased(r) => {
                let mtu = r
                    .mtu
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "auto".into());
                let addr: String = r
                    .addresses
                    .iter()
                    .map(|a| format!(", address {a}"))
                    .collect();
                field(
                    &mut s,
                    "tunnel",
                    format!("route-based, TUN {} (MTU {mtu}){addr}", r.interface),
                );
                field(
                    &mut s,
                    "selectors",
                    r.selectors
                        .iter()
                        .map(|p| format!("{} <=> {}", p.local, p.remote))
                        .collect::<Vec<_>>()
                        .join(", "),
                );
                let routes: Vec<String> = r.routes.iter().map(|n| n.to_string()).collect();
                let note = if r.routes.iter().any(|n| n.is_default()) {
                    " (default route via policy routing; IKE/ESP to the peer bypass it by fwmark)"
                } else {
                    ""
                };
                field(
                    &mut s,
                    "routes",
                    format!("{} via {}{note}", routes.join(", "), r.interface),
                );
            }
            Tunnel::PolicyBased(pairs) => {
                field(&mut s, "tunnel", "policy-based".to_string());
                for (i, p) in pairs.iter().enumerate() {
                    field(
                        &mut s,
                        if i == 0 { "selectors" } else { "" },
                        format!("{} <=> {}", p.local, p.remote),
                    );
                }
            }
        }
        for r in remarks.get(c.name.as_str()).into_iter().flatten() {
            field(&mut s, severity_word(r.severity), r.text.clone());
        }
    }
    s
}

fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Warning => "warning",
        Severity::Note => "note",
    }
}

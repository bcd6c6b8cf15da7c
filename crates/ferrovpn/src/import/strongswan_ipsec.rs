//! strongSwan's `ipsec.conf` (ipsec.conf(5) of strongSwan 5): `keyexchange=ikev1` connections
//! with `authby=secret`. `left` is taken as this host, as strongSwan's examples write it.

use std::net::IpAddr;
use std::time::Duration;

use super::ipsec_conf::{convert, sections, value, Entry, Settings};
use super::model::{
    dpd, identity, keep_proposals, lifetime, pairs, parse_time, several_selectors, subnet, Conn,
    Imported, Note, Phase, Start,
};

/// Settings with no ferrovpn equivalent, with the reason given in the report.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("mobike", "MOBIKE is IKEv2 only"),
    (
        "reauth",
        "IKEv1 rekeys phase 1 by a new Main Mode; ferrovpn always does",
    ),
    (
        "margintime",
        "ferrovpn schedules rekeying itself (before the lifetime ends)",
    ),
    (
        "rekeymargin",
        "ferrovpn schedules rekeying itself (before the lifetime ends)",
    ),
    (
        "rekeyfuzz",
        "ferrovpn schedules rekeying itself (before the lifetime ends)",
    ),
    ("marginbytes", "ferrovpn schedules rekeying itself"),
    ("marginpackets", "ferrovpn schedules rekeying itself"),
    ("lifepackets", "ferrovpn has no packet-count lifetime"),
    (
        "keyingtries",
        "ferrovpn retries with the [daemon] retransmit_* schedule",
    ),
    ("rekey", "ferrovpn always rekeys before the lifetime ends"),
    ("compress", "IPComp is not supported by ferrovpn"),
    (
        "leftupdown",
        "ferrovpn runs no updown script; it installs its own routes",
    ),
    (
        "rightupdown",
        "ferrovpn runs no updown script; it installs its own routes",
    ),
    ("leftfirewall", "ferrovpn installs no firewall rules"),
    ("rightfirewall", "ferrovpn installs no firewall rules"),
    ("lefthostaccess", "ferrovpn installs no firewall rules"),
    (
        "leftsourceip",
        "not carried over by `ferrovpn import`: write remote access by hand (remote_access = \"client\" or \"gateway\"; config/README.md)",
    ),
    (
        "rightsourceip",
        "not carried over by `ferrovpn import`: write remote access by hand (remote_access = \"client\" or \"gateway\"; config/README.md)",
    ),
    ("leftdns", "not carried over by `ferrovpn import`: write remote access by hand (remote_access = \"client\" or \"gateway\"; config/README.md)"),
    ("rightdns", "not carried over by `ferrovpn import`: write remote access by hand (remote_access = \"client\" or \"gateway\"; config/README.md)"),
    ("modeconfig", "not carried over by `ferrovpn import`: write remote access by hand (remote_access = \"client\" or \"gateway\"; config/README.md)"),
    ("leftsendcert", "not carried over by `ferrovpn import`: write certificate authentication by hand (auth = \"certificate\", cert_file, key_file, ca_file; config/README.md)"),
    ("rightsendcert", "not carried over by `ferrovpn import`: write certificate authentication by hand (auth = \"certificate\", cert_file, key_file, ca_file; config/README.md)"),
    ("leftca", "not carried over by `ferrovpn import`: write certificate authentication by hand (auth = \"certificate\", cert_file, key_file, ca_file; config/README.md)"),
    ("rightca", "not carried over by `ferrovpn import`: write certificate authentication by hand (auth = \"certificate\", cert_file, key_file, ca_file; config/README.md)"),
    (
        "installpolicy",
        "ferrovpn installs its own routes into its TUN device",
    ),
    ("mark", "ferrovpn uses its own TUN devices, not XFRM marks"),
    (
        "mark_in",
        "ferrovpn uses its own TUN devices, not XFRM marks",
    ),
    (
        "mark_out",
        "ferrovpn uses its own TUN devices, not XFRM marks",
    ),
    (
        "reqid",
        "XFRM reqids do not exist in ferrovpn's userspace data plane",
    ),
    (
        "closeaction",
        "ferrovpn does not restart on a peer's delete; use start = \"initiate\"",
    ),
    ("inactivity", "ferrovpn has no inactivity timeout"),
    ("replay_window", "ferrovpn's replay window is fixed"),
    (
        "tfc",
        "traffic flow confidentiality padding is not supported",
    ),
    ("ikedscp", "ferrovpn sets no DSCP on IKE packets"),
    (
        "fragmentation",
        "not carried over by `ferrovpn import`: ferrovpn fragments as strongSwan does by default (fragmentation = \"yes\"); set fragmentation by hand for \"force\" or \"no\"",
    ),
    (
        "sha256_96",
        "ferrovpn uses the standard 128-bit truncation for HMAC-SHA256 (RFC 4868)",
    ),
    (
        "leftprotoport",
        "protocol/port selectors are not supported (whole subnets only)",
    ),
    (
        "rightprotoport",
        "protocol/port selectors are not supported (whole subnets only)",
    ),
    ("leftallowany", "ferrovpn needs the peer's fixed address"),
    ("rightallowany", "ferrovpn needs the peer's fixed address"),
    (
        "dpdaction",
        "ferrovpn deletes the SAs of a dead peer and, with start = \"initiate\", negotiates again",
    ),
    ("xauth", "not carried over by `ferrovpn import`: write remote access by hand (remote_access = \"client\" or \"gateway\"; config/README.md)"),
    ("xauth_identity", "not carried over by `ferrovpn import`: write remote access by hand (remote_access = \"client\" or \"gateway\"; config/README.md)"),
    ("eap_identity", "EAP is IKEv2 only"),
    ("aaa_identity", "EAP is IKEv2 only"),
    ("leftikeport", "ferrovpn uses UDP 500 and 4500"),
    ("rightikeport", "ferrovpn uses UDP 500 and 4500"),
];

/// Reads a strongSwan ipsec.conf.
pub fn parse(text: &str, local_default: Option<IpAddr>) -> Imported {
    let mut imp = Imported::default();
    let secs = sections(text, &mut imp);
    for s in secs.iter().filter(|s| s.kind == "ca") {
        imp.notes.push(Note::new(
            s.line,
            format!("ca {}", s.name),
            "certificate authorities are not used by ferrovpn (PSK only)",
        ));
    }
    convert(
        &secs,
        &mut imp,
        "daemon settings of strongSwan's starter have no ferrovpn equivalent; see [daemon] in config/README.md",
        |name, line, set| conn(name, line, set, local_default),
    );
    imp
}

/// A literal address for `left`/`right`; anything the other daemon resolves at run time cannot
/// be carried over.
pub fn address(key: &str, e: Option<&Entry>) -> Result<IpAddr, String> {
    let Some(e) = e else {
        return Err(format!(
            "{key} is not set; ferrovpn needs the literal address"
        ));
    };
    e.value.parse().map_err(|_| {
        format!(
            "{key}={}: ferrovpn needs a literal IP address (no %defaultroute, %any or host names); write the address and import again",
            e.value
        )
    })
}

/// The local address: literal, or `--local-addr` where the source leaves it to the daemon
/// (`%defaultroute`, `%any`, unset).
pub fn local_address(
    c: &mut Conn,
    key: &str,
    e: Option<&Entry>,
    local_default: Option<IpAddr>,
) -> Result<IpAddr, String> {
    match (address(key, e), local_default) {
        (Ok(a), _) => Ok(a),
        (Err(_), Some(a)) if e.is_none_or(|e| e.value.starts_with('%')) => {
            c.note(
                e.map_or(c.line, |e| e.line),
                format!("{key}={}", e.map_or("(unset)", |e| e.value.as_str())),
                format!("resolved by the other daemon at run time; --local-addr {a} used"),
            );
            Ok(a)
        }
        (Err(r), _) => Err(format!("{r} (or give it with --local-addr)")),
    }
}

/// `ike=`/`esp=` lists in strongSwan syntax: the trailing `!` (strict) is dropped, IKEv2-only
/// PRF keywords removed, everything else is kept if ferrovpn's proposal parser accepts it.
fn proposals(c: &mut Conn, e: &Entry, phase: Phase) -> Option<String> {
    let mut list = Vec::new();
    let mut strict = false;
    for p in e.value.split(',') {
        let p = p.trim();
        let p = match p.strip_suffix('!') {
            Some(s) => {
                strict = true;
                s
            }
            None => p,
        };
        let toks: Vec<&str> = p
            .split('-')
            .filter(|t| {
                let prf = t.starts_with("prf");
                if prf {
                    c.note(
                        e.line,
                        &e.key,
                        format!("{t} dropped: IKEv1 has no separate PRF (the PRF is HMAC with the hash)"),
                    );
                }
                !prf
            })
            .collect();
        list.push(toks.join("-"));
    }
    if !strict {
        c.note(
            e.line,
            &e.key,
            "strongSwan appends its default proposals to a list without '!'; ferrovpn offers exactly the listed ones",
        );
    }
    keep_proposals(c, e.line, &e.key, phase, list)
}

fn conn(
    name: &str,
    line: usize,
    set: &Settings,
    local_default: Option<IpAddr>,
) -> Result<Conn, String> {
    let mut c = Conn::new(name, line);
    match value(set, "keyexchange") {
        Some("ikev1") => {}
        Some(v) => {
            return Err(format!(
                "keyexchange={v} is IKEv2; ferrovpn speaks IKEv1 only (use keyexchange=ikev1 on the peer, or keep this connection on strongSwan)"
            ))
        }
        None => return Err("keyexchange is not set, which is IKEv2 in strongSwan 5; ferrovpn speaks IKEv1 only".into()),
    }
    let auth = [
        value(set, "authby"),
        value(set, "leftauth"),
        value(set, "rightauth"),
    ];
    let psk = |v: &str| matches!(v, "secret" | "psk");
    match auth {
        [Some(a), _, _] if psk(a) => {}
        [None, Some(l), Some(r)] if psk(l) && psk(r) => {}
        [Some(a), _, _] if a.starts_with("xauth") => {
            return Err(format!("authby={a}: XAuth is carried over by `ferrovpn import`: write remote access by hand (remote_access = \"client\" or \"gateway\"; config/README.md)"))
        }
        [Some(a), _, _] => {
            return Err(format!(
                "authby={a}: public key authentication is carried over by `ferrovpn import`: write certificate authentication by hand (auth = \"certificate\", cert_file, key_file, ca_file; config/README.md)"
            ))
        }
        _ => {
            return Err(
                "authby is not set, which is public key (certificate) authentication in strongSwan; only PSK is carried over by `ferrovpn import` (write certificate authentication by hand, config/README.md)".into(),
            )
        }
    }
    for k in [
        "leftcert",
        "rightcert",
        "leftsigkey",
        "rightsigkey",
        "leftrsasigkey",
    ] {
        if let Some(e) = set.get(k) {
            c.note(
                e.line,
                k,
                "certificates/raw keys are not used with PSK authentication; ignored",
            );
        }
    }
    match value(set, "type") {
        None | Some("tunnel") => {}
        Some(t) => return Err(format!("type={t}: ferrovpn carries tunnel mode only")),
    }
    if let Some(e) = set.get("ah") {
        return Err(format!(
            "ah={}: AH is not supported by ferrovpn (ESP only)",
            e.value
        ));
    }
    let local = local_address(&mut c, "left", set.get("left"), local_default)?;
    let remote = address("right", set.get("right"))?;
    if local.is_ipv6() != remote.is_ipv6() {
        return Err("left and right are of different address families".into());
    }
    c.local_addr = Some(local);
    c.remote_addr = Some(remote);
    c.secret_selectors = vec![local.to_string(), remote.to_string()];
    for (key, slot) in [("leftid", 0), ("rightid", 1)] {
        if let Some(e) = set.get(key) {
            let id = identity(&e.value).map_err(|r| format!("{key}={}: {r}", e.value))?;
            if id.is_none() {
                c.note(
                    e.line,
                    key,
                    "%any: ferrovpn expects the peer's address as its identity",
                );
            }
            c.secret_selectors.push(e.value.clone());
            if slot == 0 {
                c.local_id = id;
            } else {
                c.remote_id = id;
            }
        }
    }
    let nets = |c: &mut Conn, key: &str| -> Result<Vec<_>, String> {
        match set.get(key) {
            None => Err(format!(
                "{key} is not set: a host-to-host tunnel between the outer addresses would carry ferrovpn's own IKE/ESP packets; ferrovpn supports subnets behind the gateways only"
            )),
            Some(e) => {
                let mut v = Vec::new();
                for s in e.value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let n = subnet(c, e.line, key, s).map_err(|r| format!("{key}: {r}"))?;
                    v.push(n);
                }
                if v.is_empty() {
                    return Err(format!("{key} is empty"));
                }
                Ok(v)
            }
        }
    };
    let l = nets(&mut c, "leftsubnet")?;
    let r = nets(&mut c, "rightsubnet")?;
    c.pairs = pairs(&l, &r, remote)?;
    if c.pairs.len() > 1 {
        let n = c.pairs.len();
        c.note(line, "leftsubnet/rightsubnet", several_selectors(n));
    }
    if let Some(e) = set.get("ike") {
        c.ike = proposals(&mut c, e, Phase::Ike);
    } else {
        c.note(line, "ike", "not set: strongSwan's default proposals differ from ferrovpn's default aes256-sha256-modp2048");
    }
    if let Some(e) = set.get("esp") {
        c.esp = proposals(&mut c, e, Phase::Esp);
    } else {
        c.note(line, "esp", "not set: strongSwan's default proposals (aes128-sha256 and others) differ from ferrovpn's default aes128gcm16");
    }
    if let Some(e) = set.get("ikelifetime") {
        c.ike_lifetime = lifetime(&mut c, e.line, "ikelifetime", &e.value);
    } else {
        c.ike_lifetime = Some(Duration::from_secs(3 * 3600));
    }
    if let Some(e) = set.get("lifetime").or_else(|| set.get("keylife")) {
        c.esp_lifetime = lifetime(&mut c, e.line, &e.key, &e.value);
    }
    if let Some(e) = set.get("lifebytes") {
        match e.value.parse::<u64>() {
            Ok(b) if b > 0 => c.esp_lifetime_bytes = Some(b),
            _ => c.note(e.line, "lifebytes", "not a byte count; not carried over"),
        }
    }
    if let Some(e) = set.get("aggressive") {
        c.aggressive = e.value == "yes";
    }
    if let Some(e) = set.get("forceencaps") {
        c.force_encap = e.value == "yes";
    }
    let action = value(set, "dpdaction").unwrap_or("none");
    if action == "none" {
        c.dpd = Some(None);
    } else {
        let interval = set.get("dpddelay").and_then(|e| parse_time(&e.value));
        let timeout = set.get("dpdtimeout").and_then(|e| parse_time(&e.value));
        c.dpd = Some(dpd(
            &mut c,
            line,
            interval.or(Some(Duration::from_secs(30))),
            timeout.or(Some(Duration::from_secs(150))),
        ));
    }
    let auto = set.get("auto");
    c.start = Some(match auto.map(|e| e.value.as_str()) {
        Some("start") => Start::Initiate,
        Some("add") => Start::Respond,
        Some("route") => {
            c.note(
                auto.map_or(line, |e| e.line),
                "auto=route",
                "ferrovpn has no trap policies (negotiate on the first packet); start = \"initiate\" negotiates at startup instead",
            );
            Start::Initiate
        }
        other => {
            c.note(
                auto.map_or(line, |e| e.line),
                format!("auto={}", other.unwrap_or("ignore")),
                "strongSwan does not load this connection by itself; written as start = \"respond\"",
            );
            Start::Respond
        }
    });
    let known = [
        "keyexchange",
        "authby",
        "leftauth",
        "rightauth",
        "type",
        "left",
        "right",
        "leftid",
        "rightid",
        "leftsubnet",
        "rightsubnet",
        "ike",
        "esp",
        "ikelifetime",
        "lifetime",
        "keylife",
        "lifebytes",
        "aggressive",
        "forceencaps",
        "dpddelay",
        "dpdtimeout",
        "auto",
        "leftcert",
        "rightcert",
        "leftsigkey",
        "rightsigkey",
        "leftrsasigkey",
        "dpdaction",
    ];
    for (k, e) in set {
        if let Some((_, why)) = UNSUPPORTED.iter().find(|(u, _)| u == k) {
            if k == "dpdaction" && e.value != "none" {
                c.note(e.line, format!("dpdaction={}", e.value), *why);
            } else if k != "dpdaction" {
                c.note(e.line, format!("{k}={}", e.value), *why);
            }
        } else if !known.contains(&k.as_str()) {
            c.note(
                e.line,
                format!("{k}={}", e.value),
                "no ferrovpn equivalent; not carried over",
            );
        }
    }
    Ok(c)
}

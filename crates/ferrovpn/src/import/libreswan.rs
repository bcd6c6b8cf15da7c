//! Libreswan's `ipsec.conf` (ipsec.conf(5) of Libreswan 4 and 5): IKEv1 connections
//! (`ikev2=no` / `keyexchange=ikev1`) with `authby=secret`. `left` is taken as this host.
//! Libreswan writes proposals as `aes256-sha2_256;modp2048` (DH groups after `;`) or with
//! `-` throughout; both are rewritten in strongSwan's keywords.

use std::time::Duration;

use super::ipsec_conf::{convert, sections, value, Entry, Settings};
use super::model::{
    dpd, identity, keep_proposals, lifetime, pairs, parse_time, subnet, Conn, Imported, Phase,
    Start,
};
use super::strongswan_ipsec::{address, local_address};
use std::net::IpAddr;

const UNSUPPORTED: &[(&str, &str)] = &[
    ("rekeymargin", "ferrovpn schedules rekeying itself (before the lifetime ends)"),
    ("rekeyfuzz", "ferrovpn schedules rekeying itself (before the lifetime ends)"),
    ("keyingtries", "ferrovpn retries with the [daemon] retransmit_* schedule"),
    ("rekey", "ferrovpn always rekeys before the lifetime ends"),
    ("compress", "IPComp is not supported by ferrovpn"),
    ("leftupdown", "ferrovpn runs no updown script; it installs its own routes"),
    ("rightupdown", "ferrovpn runs no updown script; it installs its own routes"),
    ("leftsourceip", "ferrovpn sets no source address on its routes"),
    ("rightsourceip", "ferrovpn sets no source address on its routes"),
    ("leftnexthop", "ferrovpn uses the routing table to reach the peer"),
    ("rightnexthop", "ferrovpn uses the routing table to reach the peer"),
    ("leftmodecfgclient", "not carried over by `ferrovpn import`: write remote access by hand (remote_access = \"client\" or \"gateway\"; config/README.md)"),
    ("rightmodecfgserver", "not carried over by `ferrovpn import`: write remote access by hand (remote_access = \"client\" or \"gateway\"; config/README.md)"),
    ("leftaddresspool", "not carried over by `ferrovpn import`: write remote access by hand (remote_access = \"client\" or \"gateway\"; config/README.md)"),
    ("leftxauthclient", "not carried over by `ferrovpn import`: write remote access by hand (remote_access = \"client\" or \"gateway\"; config/README.md)"),
    ("rightxauthserver", "not carried over by `ferrovpn import`: write remote access by hand (remote_access = \"client\" or \"gateway\"; config/README.md)"),
    ("leftcert", "not carried over by `ferrovpn import`: write certificate authentication by hand (auth = \"certificate\", cert_file, key_file, ca_file; config/README.md)"),
    ("rightcert", "not carried over by `ferrovpn import`: write certificate authentication by hand (auth = \"certificate\", cert_file, key_file, ca_file; config/README.md)"),
    ("leftrsasigkey", "raw RSA keys are not supported by ferrovpn (certificates or PSK)"),
    ("rightrsasigkey", "raw RSA keys are not supported by ferrovpn (certificates or PSK)"),
    ("leftsendcert", "not carried over by `ferrovpn import`: write certificate authentication by hand (auth = \"certificate\", cert_file, key_file, ca_file; config/README.md)"),
    ("rightca", "not carried over by `ferrovpn import`: write certificate authentication by hand (auth = \"certificate\", cert_file, key_file, ca_file; config/README.md)"),
    ("mark", "ferrovpn uses its own TUN devices, not XFRM marks"),
    ("vti-interface", "ferrovpn's route_based connections create their own TUN device: convert by hand to [connection.route_based]"),
    ("vti-routing", "ferrovpn's route_based connections install their own routes"),
    ("ipsec-interface", "ferrovpn's route_based connections create their own TUN device: convert by hand to [connection.route_based]"),
    ("replay-window", "ferrovpn's replay window is fixed"),
    ("nic-offload", "ferrovpn's data plane is in userspace"),
    ("fragmentation", "not carried over by `ferrovpn import`: ferrovpn fragments as strongSwan does by default (fragmentation = \"yes\"); set fragmentation by hand for \"force\" or \"no\""),
    ("ikepad", "ferrovpn pads IKE messages as RFC 2409 says"),
    ("sha2-truncbug", "ferrovpn uses the standard truncation of HMAC-SHA2 (RFC 4868)"),
    ("nat-keepalive", "ferrovpn sends NAT keepalives when behind a NAT"),
    ("narrowing", "ferrovpn negotiates exactly its configured selectors"),
    ("dpdaction", "ferrovpn deletes the SAs of a dead peer and, with start = \"initiate\", negotiates again"),
    ("retransmit-timeout", "ferrovpn retries with the [daemon] retransmit_* schedule"),
    ("retransmit-interval", "ferrovpn retries with the [daemon] retransmit_* schedule"),
    ("leftprotoport", "protocol/port selectors are not supported (whole subnets only)"),
    ("rightprotoport", "protocol/port selectors are not supported (whole subnets only)"),
];

/// Reads a Libreswan ipsec.conf.
pub fn parse(text: &str, local_default: Option<IpAddr>) -> Imported {
    let mut imp = Imported::default();
    let secs = sections(text, &mut imp);
    convert(
        &secs,
        &mut imp,
        "pluto's daemon settings have no ferrovpn equivalent; see [daemon] in config/README.md",
        |name, line, set| conn(name, line, set, local_default),
    );
    imp
}

/// One Libreswan algorithm keyword in strongSwan's spelling; `Ok(None)`: dropped (`null`
/// integrity next to AES-GCM); `Err`: unknown to ferrovpn.
fn keyword(t: &str, phase: Phase) -> Result<Option<String>, String> {
    let t = t.trim().to_ascii_lowercase();
    let s = match t.as_str() {
        "aes" | "aes_cbc" => "aes128-aes256",
        "aes128" | "aes_cbc128" | "aes_cbc_128" => "aes128",
        "aes192" | "aes_cbc192" | "aes_cbc_192" => "aes192",
        "aes256" | "aes_cbc256" | "aes_cbc_256" => "aes256",
        "3des" | "3des_cbc" => "3des",
        "sha" | "sha1" => "sha1",
        "sha2" | "sha2_256" | "sha256" => "sha256",
        "sha2_384" | "sha384" => "sha384",
        "sha2_512" | "sha512" => "sha512",
        "md5" => "md5",
        "null" | "none" if phase == Phase::Esp => return Ok(None),
        "modp1024" | "dh2" => "modp1024",
        "modp1536" | "dh5" => "modp1536",
        "modp2048" | "dh14" => "modp2048",
        "modp3072" | "dh15" => "modp3072",
        "modp4096" | "dh16" => "modp4096",
        "modp6144" | "dh17" => "modp6144",
        "modp8192" | "dh18" => "modp8192",
        "ecp256" | "ecp_256" | "dh19" => "ecp256",
        "ecp384" | "ecp_384" | "dh20" => "ecp384",
        "ecp521" | "ecp_521" | "dh21" => "ecp521",
        "curve25519" | "dh31" => "curve25519",
        "chacha20_poly1305" | "chacha20poly1305" => "chacha20poly1305",
        other => {
            // aes_gcm[_a|_b|_c|8|12|16|64|96|128][keylen]: ICV 16 and both key lengths unless given.
            if let Some(rest) = other.strip_prefix("aes_gcm") {
                let rest = rest.trim_start_matches('_');
                let (icv, keylen) = match rest {
                    "" => ("16", ""),
                    r if r.starts_with('a') => ("8", r.get(1..).unwrap_or("")),
                    r if r.starts_with('b') => ("12", r.get(1..).unwrap_or("")),
                    r if r.starts_with('c') => ("16", r.get(1..).unwrap_or("")),
                    r => ("16", r),
                };
                let keylen = keylen.trim_start_matches('_');
                return match keylen {
                    "" => Ok(Some(format!("aes256gcm{icv}-aes128gcm{icv}"))),
                    "128" | "192" | "256" => Ok(Some(format!("aes{keylen}gcm{icv}"))),
                    _ => Err(t.clone()),
                };
            }
            return Err(t);
        }
    };
    Ok(Some(s.to_string()))
}

/// Rewrites a Libreswan proposal list; `pfs_group` (from phase 1) is appended to ESP proposals
/// without a group when `pfs=yes`, as pluto does.
fn proposals(c: &mut Conn, e: &Entry, phase: Phase, pfs_group: Option<&str>) -> Vec<String> {
    let mut list = Vec::new();
    'next: for p in e.value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut out: Vec<String> = Vec::new();
        let mut has_group = false;
        for t in p.split([';', '-', '+']).filter(|t| !t.is_empty()) {
            match keyword(t, phase) {
                Ok(Some(k)) => {
                    has_group |= is_group(&k);
                    out.push(k);
                }
                Ok(None) => {}
                Err(unknown) => {
                    c.note(
                        e.line,
                        &e.key,
                        format!("proposal {p} dropped: {unknown} is not an algorithm ferrovpn has"),
                    );
                    continue 'next;
                }
            }
        }
        if phase == Phase::Esp && !has_group {
            if let Some(g) = pfs_group {
                out.push(g.to_string());
            }
        }
        if phase == Phase::Ike && !has_group && !out.is_empty() {
            c.note(
                e.line,
                &e.key,
                format!("proposal {p} names no DH group: pluto's IKEv1 default modp2048 written"),
            );
            out.push("modp2048".into());
        }
        list.push(out.join("-"));
    }
    list
}

fn is_group(k: &str) -> bool {
    k.starts_with("modp") || k.starts_with("ecp") || k == "curve25519"
}

fn conn(
    name: &str,
    line: usize,
    set: &Settings,
    local_default: Option<IpAddr>,
) -> Result<Conn, String> {
    let mut c = Conn::new(name, line);
    let ikev1 = match (value(set, "keyexchange"), value(set, "ikev2")) {
        (Some("ikev1"), _) => true,
        (Some(_), _) => false,
        (None, Some("no" | "never")) => true,
        _ => false,
    };
    if !ikev1 {
        return Err(
            "IKEv2 (Libreswan 4 and later default to it; ikev2=no or keyexchange=ikev1 selects IKEv1): ferrovpn speaks IKEv1 only. A file from Libreswan 3, where IKEv1 was the default, needs ikev2=no added before import".into(),
        );
    }
    match value(set, "authby") {
        Some(a) if a.split('|').any(|m| m == "secret") => {
            if a != "secret" {
                c.note(line, format!("authby={a}"), "only the PSK part (secret) is carried over");
            }
        }
        Some(a) => {
            return Err(format!(
                "authby={a}: only PSK (authby=secret) is carried over; certificate authentication is carried over by `ferrovpn import`: write certificate authentication by hand (auth = \"certificate\", cert_file, key_file, ca_file; config/README.md)"
            ))
        }
        None => {
            return Err(
                "authby is not set, which is RSA signatures in Libreswan; only PSK is carried over by `ferrovpn import` (write certificate authentication by hand, config/README.md)".into(),
            )
        }
    }
    match value(set, "type") {
        None | Some("tunnel") => {}
        Some(t) => return Err(format!("type={t}: ferrovpn carries tunnel mode only")),
    }
    if value(set, "phase2").is_some_and(|p| p == "ah") {
        return Err("phase2=ah: AH is not supported by ferrovpn (ESP only)".into());
    }
    let local = local_address(&mut c, "left", set.get("left"), local_default)?;
    let remote = address("right", set.get("right"))?;
    if local.is_ipv6() != remote.is_ipv6() {
        return Err("left and right are of different address families".into());
    }
    c.local_addr = Some(local);
    c.remote_addr = Some(remote);
    c.secret_selectors = vec![local.to_string(), remote.to_string()];
    for (key, local_side) in [("leftid", true), ("rightid", false)] {
        if let Some(e) = set.get(key) {
            let id = identity(&e.value).map_err(|r| format!("{key}={}: {r}", e.value))?;
            c.secret_selectors.push(e.value.clone());
            if local_side {
                c.local_id = id;
            } else {
                c.remote_id = id;
            }
        }
    }
    let nets = |c: &mut Conn, one: &str, many: &str| -> Result<Vec<_>, String> {
        let mut v = Vec::new();
        if let Some(e) = set.get(many) {
            let list = e.value.trim().trim_start_matches('{').trim_end_matches('}');
            for s in list.split([' ', ',', '\t']).filter(|s| !s.is_empty()) {
                v.push(subnet(c, e.line, many, s).map_err(|r| format!("{many}: {r}"))?);
            }
        }
        if let Some(e) = set.get(one) {
            for s in e.value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                v.push(subnet(c, e.line, one, s).map_err(|r| format!("{one}: {r}"))?);
            }
        }
        if v.is_empty() {
            return Err(format!(
                "neither {one} nor {many} is set: a host-to-host tunnel between the outer addresses would carry ferrovpn's own IKE/ESP packets; ferrovpn supports subnets behind the gateways only"
            ));
        }
        Ok(v)
    };
    let l = nets(&mut c, "leftsubnet", "leftsubnets")?;
    let r = nets(&mut c, "rightsubnet", "rightsubnets")?;
    c.pairs = pairs(&l, &r, remote)?;
    let ike_list = match set.get("ike") {
        Some(e) => proposals(&mut c, e, Phase::Ike, None),
        None => {
            c.note(line, "ike", "not set: Libreswan's default proposals differ from ferrovpn's default aes256-sha256-modp2048");
            Vec::new()
        }
    };
    // pluto's pfs=yes (the default) uses the phase 1 group for Quick Mode.
    let pfs = value(set, "pfs") != Some("no");
    let first_group = ike_list
        .first()
        .and_then(|p| p.split('-').find(|t| is_group(t)).map(str::to_string));
    if let Some(e) = set.get("ike") {
        c.ike = keep_proposals(&mut c, e.line, "ike", Phase::Ike, ike_list);
    }
    match set.get("phase2alg").or_else(|| set.get("esp")) {
        Some(e) => {
            let group = if pfs { first_group.as_deref() } else { None };
            let list = proposals(&mut c, e, Phase::Esp, group);
            c.esp = keep_proposals(&mut c, e.line, &e.key, Phase::Esp, list);
        }
        None => c.note(
            line,
            "phase2alg",
            "not set: Libreswan's default ESP proposals (with PFS in the phase 1 group) differ from ferrovpn's default aes128gcm16 without PFS",
        ),
    }
    c.ike_lifetime = Some(match set.get("ikelifetime") {
        Some(e) => lifetime(&mut c, e.line, "ikelifetime", &e.value)
            .unwrap_or(Duration::from_secs(8 * 3600)),
        None => Duration::from_secs(8 * 3600),
    });
    c.esp_lifetime = Some(
        match set
            .get("salifetime")
            .or_else(|| set.get("keylife"))
            .or_else(|| set.get("lifetime"))
        {
            Some(e) => {
                lifetime(&mut c, e.line, &e.key, &e.value).unwrap_or(Duration::from_secs(8 * 3600))
            }
            None => Duration::from_secs(8 * 3600),
        },
    );
    c.aggressive = value(set, "aggressive").or(value(set, "aggrmode")) == Some("yes");
    c.force_encap = value(set, "encapsulation") == Some("yes");
    match set.get("dpddelay") {
        Some(e) => {
            let interval = parse_time(&e.value);
            let timeout = set.get("dpdtimeout").and_then(|t| parse_time(&t.value));
            c.dpd = Some(dpd(&mut c, e.line, interval, timeout));
        }
        // pluto sends no R-U-THERE unless dpddelay is set.
        None => c.dpd = Some(None),
    }
    let auto = set.get("auto");
    c.start = Some(match auto.map(|e| e.value.as_str()) {
        Some("start" | "up") => Start::Initiate,
        Some("add" | "keep") => Start::Respond,
        Some(v @ ("route" | "ondemand")) => {
            c.note(
                auto.map_or(line, |e| e.line),
                format!("auto={v}"),
                "ferrovpn has no on-demand policies (negotiate on the first packet); start = \"initiate\" negotiates at startup instead",
            );
            Start::Initiate
        }
        other => {
            c.note(
                auto.map_or(line, |e| e.line),
                format!("auto={}", other.unwrap_or("ignore")),
                "pluto does not load this connection by itself; written as start = \"respond\"",
            );
            Start::Respond
        }
    });
    let known = [
        "keyexchange",
        "ikev2",
        "authby",
        "type",
        "phase2",
        "left",
        "right",
        "leftid",
        "rightid",
        "leftsubnet",
        "rightsubnet",
        "leftsubnets",
        "rightsubnets",
        "ike",
        "phase2alg",
        "esp",
        "pfs",
        "ikelifetime",
        "salifetime",
        "keylife",
        "lifetime",
        "aggressive",
        "aggrmode",
        "encapsulation",
        "dpddelay",
        "dpdtimeout",
        "auto",
    ];
    for (k, e) in set {
        if let Some((_, why)) = UNSUPPORTED.iter().find(|(u, _)| u == k) {
            c.note(e.line, format!("{k}={}", e.value), *why);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libreswan_algorithm_names_become_strongswan_keywords() {
        let e = Entry {
            key: "ike".into(),
            value: "aes256-sha2_256;modp2048, aes_gcm_c256-sha2;dh19, 3des-md5;dh2, serpent-sha1"
                .into(),
            line: 3,
        };
        let mut c = Conn::new("x", 1);
        let l = proposals(&mut c, &e, Phase::Ike, None);
        assert_eq!(
            l,
            [
                "aes256-sha256-modp2048",
                "aes256gcm16-sha256-ecp256",
                "3des-md5-modp1024"
            ]
        );
        assert!(c.notes[0].reason.contains("serpent"));
        let e = Entry {
            key: "phase2alg".into(),
            value: "aes_gcm-null, aes256-sha1".into(),
            line: 4,
        };
        let l = proposals(&mut c, &e, Phase::Esp, Some("modp2048"));
        assert_eq!(
            l,
            ["aes256gcm16-aes128gcm16-modp2048", "aes256-sha1-modp2048"]
        );
    }
}

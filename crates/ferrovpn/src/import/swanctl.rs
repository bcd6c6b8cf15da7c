//! strongSwan's `swanctl.conf` (swanctl.conf(5)): the `connections { NAME { ... } }` tree of
//! strongSwan's settings syntax, `version = 1` connections with `auth = psk` on both rounds,
//! and the `secrets { ike-X { id = ... secret = ... } }` section.

use std::time::Duration;

use super::model::{
    decode_secret, dpd, identity, keep_proposals, lifetime, pairs, parse_time, several_selectors,
    subnet, unquote, Conn, Imported, Note, Phase, SecretEntry, Start, MAX_PAIRS,
};

/// Deepest nesting of `{ }` read; deeper sections are reported and skipped.
const MAX_DEPTH: usize = 16;

/// A `name { ... }` section of the settings tree.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub line: usize,
    pub values: Vec<(String, String, usize)>,
    pub sections: Vec<Section>,
}

impl Section {
    fn get(&self, key: &str) -> Option<(&str, usize)> {
        self.values
            .iter()
            .rev()
            .find(|(k, _, _)| k == key)
            .map(|(_, v, l)| (v.as_str(), *l))
    }

    fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }
}

/// Parses the settings syntax into a tree; what cannot be read becomes a note.
pub fn tree(text: &str, notes: &mut Vec<Note>) -> Section {
    let mut stack: Vec<Section> = vec![Section::default()];
    // Lines may hold several statements (`local { auth = psk }`); split them into tokens
    // line by line: `{`, `}`, and `key = value` up to the end of line or a `}`.
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let mut rest = strip_comment(raw).trim();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('}') {
                if stack.len() > 1 {
                    if let Some(done) = stack.pop() {
                        if let Some(parent) = stack.last_mut() {
                            parent.sections.push(done);
                        }
                    }
                } else {
                    notes.push(Note::new(line, "}", "closes no section; ignored"));
                }
                rest = r.trim_start();
                continue;
            }
            let name_end = rest.find(['=', '{', '}']).unwrap_or(rest.len());
            let name = rest.get(..name_end).unwrap_or_default().trim();
            let after = rest.get(name_end..).unwrap_or_default();
            if let Some(r) = after.strip_prefix('{') {
                if name.starts_with("include ") || name.is_empty() {
                    notes.push(Note::new(line, name, "a section without a name; ignored"));
                }
                stack.push(Section {
                    name: name.to_string(),
                    line,
                    ..Section::default()
                });
                if stack.len() > MAX_DEPTH {
                    notes.push(Note::new(
                        line,
                        name,
                        "nested too deeply; the rest of the file is ignored",
                    ));
                    stack.pop();
                    return stack.into_iter().next().unwrap_or_default();
                }
                rest = r.trim_start();
                continue;
            }
            if let Some(r) = after.strip_prefix('=') {
                let (value, r) = take_value(r);
                if let Some(sec) = stack.last_mut() {
                    sec.values.push((name.to_string(), value, line));
                }
                rest = r;
                continue;
            }
            if let Some(file) = name.strip_prefix("include") {
                notes.push(Note::new(
                    line,
                    format!("include {}", file.trim()),
                    "not followed: run `ferrovpn import` on the included file as well",
                ));
            } else if after.is_empty() && !name.is_empty() {
                // `name` on its own line, `{` on the next one.
                notes.push(Note::new(
                    line,
                    name,
                    "not a `key = value` or `name {` line; ignored",
                ));
            }
            // Either the end of the line or a `}` handled by the next round.
            rest = after;
        }
    }
    while stack.len() > 1 {
        if let Some(done) = stack.pop() {
            notes.push(Note::new(
                done.line,
                &done.name,
                "section not closed with '}'",
            ));
            if let Some(parent) = stack.last_mut() {
                parent.sections.push(done);
            }
        }
    }
    stack.into_iter().next().unwrap_or_default()
}

/// A value up to the end of the line or an unquoted `}`; quoted values keep `#`, `{`, `}`.
fn take_value(r: &str) -> (String, &str) {
    let r = r.trim_start();
    if let Some(q) = r.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = q.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        out.push(match n {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                    }
                }
                '"' => return (out, q.get(i + 1..).unwrap_or_default().trim_start()),
                _ => out.push(c),
            }
        }
        return (out, "");
    }
    let end = r.find('}').unwrap_or(r.len());
    (
        r.get(..end).unwrap_or_default().trim().to_string(),
        r.get(end..).unwrap_or_default(),
    )
}

fn strip_comment(l: &str) -> &str {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in l.char_indices() {
        match c {
            '\\' if in_quotes && !escaped => {
                escaped = true;
                continue;
            }
            '"' if !escaped => in_quotes = !in_quotes,
            '#' if !in_quotes => return l.get(..i).unwrap_or(l),
            _ => {}
        }
        escaped = false;
    }
    l
}

/// Reads a swanctl.conf: its connections, and the PSKs of its `secrets` section.
pub fn parse(text: &str, local_default: Option<std::net::IpAddr>) -> (Imported, Vec<SecretEntry>) {
    let mut imp = Imported::default();
    let root = tree(text, &mut imp.notes);
    let secrets = secrets_of(&root, &mut imp.notes);
    for s in &root.sections {
        if !matches!(s.name.as_str(), "connections" | "secrets") {
            imp.notes.push(Note::new(
                s.line,
                &s.name,
                "only connections and secrets are carried over (write a gateway's pool and certificate authorities by hand; config/README.md)",
            ));
        }
    }
    if let Some(conns) = root.section("connections") {
        for s in &conns.sections {
            match conn(s, local_default) {
                Ok(c) => imp.conns.push(c),
                Err(reason) => imp.skip(&s.name, s.line, reason),
            }
        }
    }
    (imp, secrets)
}

/// The PSKs of the `secrets` section (`ike<suffix> { id<suffix> = ..., secret = ... }`).
pub fn secrets_of(root: &Section, notes: &mut Vec<Note>) -> Vec<SecretEntry> {
    let mut out = Vec::new();
    let Some(secrets) = root.section("secrets") else {
        return out;
    };
    for s in &secrets.sections {
        if !s.name.starts_with("ike") {
            notes.push(Note::new(
                s.line,
                format!("secrets.{}", s.name),
                "only IKE PSKs (ike sections) are carried over",
            ));
            continue;
        }
        let Some((secret, line)) = s.get("secret") else {
            notes.push(Note::new(
                s.line,
                format!("secrets.{}", s.name),
                "no secret; ignored",
            ));
            continue;
        };
        let Some(key) = decode_secret(secret) else {
            notes.push(Note::new(
                line,
                format!("secrets.{}.secret", s.name),
                "not readable (0x hex or 0s base64); ignored",
            ));
            continue;
        };
        let selectors = s
            .values
            .iter()
            .filter(|(k, _, _)| k.starts_with("id"))
            .map(|(_, v, _)| v.clone())
            .collect();
        out.push(SecretEntry {
            line: s.line,
            selectors,
            key,
        });
    }
    out
}

/// Settings of a connection, its `local`/`remote` rounds and children that ferrovpn has no
/// equivalent for: the reason in the report.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("local_port", "ferrovpn uses UDP 500 and 4500"),
    ("remote_port", "ferrovpn uses UDP 500 and 4500"),
    ("mobike", "MOBIKE is IKEv2 only"),
    (
        "fragmentation",
        "not carried over by `ferrovpn import`: ferrovpn fragments as strongSwan does by default (fragmentation = \"yes\"); set fragmentation by hand for \"force\" or \"no\"",
    ),
    ("send_certreq", "not carried over by `ferrovpn import`: write certificate authentication by hand (auth = \"certificate\", cert_file, key_file, ca_file; config/README.md)"),
    ("send_cert", "not carried over by `ferrovpn import`: write certificate authentication by hand (auth = \"certificate\", cert_file, key_file, ca_file; config/README.md)"),
    (
        "keyingtries",
        "ferrovpn retries with the [daemon] retransmit_* schedule",
    ),
    ("unique", "ferrovpn has one IKE SA per connection"),
    (
        "over_time",
        "ferrovpn schedules rekeying itself (before the lifetime ends)",
    ),
    (
        "rand_time",
        "ferrovpn schedules rekeying itself (before the lifetime ends)",
    ),
    (
        "pools",
        "not carried over by `ferrovpn import`: write remote access by hand (remote_access = \"client\" or \"gateway\"; config/README.md)",
    ),
    (
        "vips",
        "not carried over by `ferrovpn import`: write remote access by hand (remote_access = \"client\" or \"gateway\"; config/README.md)",
    ),
    ("dscp", "ferrovpn sets no DSCP on IKE packets"),
    (
        "if_id_in",
        "ferrovpn uses its own TUN devices, not XFRM interfaces",
    ),
    (
        "if_id_out",
        "ferrovpn uses its own TUN devices, not XFRM interfaces",
    ),
    (
        "updown",
        "ferrovpn runs no updown script; it installs its own routes",
    ),
    ("hostaccess", "ferrovpn installs no firewall rules"),
    ("ipcomp", "IPComp is not supported by ferrovpn"),
    ("life_time", "ferrovpn's hard lifetime follows esp_lifetime"),
    ("rekey_packets", "ferrovpn has no packet-count lifetime"),
    ("life_packets", "ferrovpn has no packet-count lifetime"),
    ("life_bytes", "ferrovpn rekeys at esp_lifetime_bytes"),
    (
        "dpd_action",
        "ferrovpn deletes the SAs of a dead peer and, with start = \"initiate\", negotiates again",
    ),
    (
        "close_action",
        "ferrovpn does not restart on a peer's delete; use start = \"initiate\"",
    ),
    (
        "policies",
        "ferrovpn installs its own routes into its TUN device",
    ),
    ("replay_window", "ferrovpn's replay window is fixed"),
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
    ("certs", "not carried over by `ferrovpn import`: write certificate authentication by hand (auth = \"certificate\", cert_file, key_file, ca_file; config/README.md)"),
    ("cacerts", "not carried over by `ferrovpn import`: write certificate authentication by hand (auth = \"certificate\", cert_file, key_file, ca_file; config/README.md)"),
    ("round", "ferrovpn has one authentication round"),
];

fn unsupported(c: &mut Conn, where_: &str, s: &Section, known: &[&str]) {
    for (k, v, line) in &s.values {
        let setting = format!("{where_}{k} = {v}");
        if let Some((_, why)) = UNSUPPORTED.iter().find(|(u, _)| u == k) {
            c.note(*line, setting, *why);
        } else if !known.contains(&k.as_str()) {
            c.note(*line, setting, "no ferrovpn equivalent; not carried over");
        }
    }
}

fn conn(s: &Section, local_default: Option<std::net::IpAddr>) -> Result<Conn, String> {
    let mut c = Conn::new(&s.name, s.line);
    match s.get("version") {
        Some(("1", _)) => {}
        Some((v, _)) if v != "0" => {
            return Err(format!("version = {v}: ferrovpn speaks IKEv1 only"))
        }
        _ => {
            return Err(
                "version is not 1 (0, the default, initiates IKEv2): ferrovpn speaks IKEv1 only"
                    .into(),
            )
        }
    }
    let addr = |key: &str| -> Result<std::net::IpAddr, String> {
        let (v, _) = s.get(key).ok_or_else(|| {
            format!("{key} is not set; ferrovpn needs the peer's literal address")
        })?;
        unquote(v).trim().parse().map_err(|_| {
            format!("{key} = {v}: ferrovpn needs one literal IP address (no %any, ranges, lists or host names)")
        })
    };
    let local = match (addr("local_addrs"), local_default) {
        (Ok(a), _) => a,
        (Err(_), Some(a)) if s.get("local_addrs").is_none_or(|(v, _)| v.starts_with('%')) => {
            c.note(
                s.get("local_addrs").map_or(s.line, |(_, l)| l),
                "local_addrs",
                format!("unset or %any (any address of the host); --local-addr {a} used"),
            );
            a
        }
        (Err(r), _) => return Err(format!("{r} (or give it with --local-addr)")),
    };
    let remote = addr("remote_addrs")?;
    if local.is_ipv6() != remote.is_ipv6() {
        return Err("local_addrs and remote_addrs are of different address families".into());
    }
    c.local_addr = Some(local);
    c.remote_addr = Some(remote);
    c.secret_selectors = vec![local.to_string(), remote.to_string()];
    let mut rounds = 0;
    for r in &s.sections {
        let local_side = r.name == "local" || r.name.starts_with("local-");
        let remote_side = r.name == "remote" || r.name.starts_with("remote-");
        if !local_side && !remote_side {
            continue;
        }
        rounds += 1;
        match r.get("auth") {
            Some(("psk", _)) => {}
            Some((a, _)) => {
                return Err(format!(
                    "{}.auth = {a}: only psk is carried over (write certificates and XAuth by hand, config/README.md; EAP is not supported by ferrovpn)",
                    r.name
                ))
            }
            None => {
                return Err(format!(
                    "{}.auth is not set, which is public key authentication; ferrovpn supports psk only",
                    r.name
                ))
            }
        }
        if let Some((id, line)) = r.get("id") {
            let ferro = identity(id).map_err(|e| format!("{}.id = {id}: {e}", r.name))?;
            if ferro.is_none() {
                c.note(
                    line,
                    format!("{}.id", r.name),
                    "%any: ferrovpn expects the peer's address as its identity",
                );
            }
            c.secret_selectors.push(id.to_string());
            if local_side {
                c.local_id = ferro;
            } else {
                c.remote_id = ferro;
            }
        }
        let prefix = format!("{}.", r.name);
        unsupported(&mut c, &prefix, r, &["auth", "id"]);
    }
    if rounds != 2 {
        return Err("needs one local and one remote section with auth = psk".into());
    }
    if let Some((v, line)) = s.get("proposals") {
        let list: Vec<String> = v.split(',').map(|p| p.trim().to_string()).collect();
        if list.iter().any(|p| p == "default") {
            c.note(
                line,
                "proposals",
                "'default' (strongSwan's own list) dropped; the listed ones are kept",
            );
        }
        let list = list.into_iter().filter(|p| p != "default").collect();
        c.ike = keep_proposals(&mut c, line, "proposals", Phase::Ike, list);
    } else {
        c.note(s.line, "proposals", "not set: strongSwan's default proposals differ from ferrovpn's default aes256-sha256-modp2048");
    }
    // IKEv1 renews phase 1 by reauthentication: reauth_time, else rekey_time (4h default).
    match s.get("reauth_time").or_else(|| s.get("rekey_time")) {
        Some((v, line)) => c.ike_lifetime = lifetime(&mut c, line, "rekey_time", v),
        None => c.ike_lifetime = Some(Duration::from_secs(4 * 3600)),
    }
    c.aggressive = s.get("aggressive").is_some_and(|(v, _)| v == "yes");
    c.force_encap = s.get("encap").is_some_and(|(v, _)| v == "yes");
    match s.get("dpd_delay") {
        Some((v, line)) => {
            let timeout = s.get("dpd_timeout").and_then(|(t, _)| parse_time(t));
            c.dpd = Some(dpd(&mut c, line, parse_time(v), timeout));
        }
        None => c.dpd = Some(None),
    }
    unsupported(
        &mut c,
        "",
        s,
        &[
            "version",
            "local_addrs",
            "remote_addrs",
            "proposals",
            "reauth_time",
            "rekey_time",
            "aggressive",
            "encap",
            "dpd_delay",
            "dpd_timeout",
        ],
    );
    for sub in &s.sections {
        let n = sub.name.as_str();
        if !(n == "children"
            || n == "local"
            || n == "remote"
            || n.starts_with("local-")
            || n.starts_with("remote-"))
        {
            c.note(sub.line, n, "no ferrovpn equivalent; not carried over");
        }
    }
    let children = s
        .section("children")
        .map(|c| c.sections.as_slice())
        .unwrap_or_default();
    let Some(first) = children.first() else {
        return Err("no children: nothing to protect".into());
    };
    let mut start = Start::Respond;
    for (i, ch) in children.iter().enumerate() {
        if let Some((m, _)) = ch.get("mode") {
            if m != "tunnel" {
                return Err(format!(
                    "children.{}.mode = {m}: ferrovpn carries tunnel mode only",
                    ch.name
                ));
            }
        }
        if ch.get("ah_proposals").is_some() {
            return Err(format!(
                "children.{}: AH is not supported by ferrovpn (ESP only)",
                ch.name
            ));
        }
        let nets = |c: &mut Conn, key: &str| -> Result<Vec<_>, String> {
            let (v, line) = ch.get(key).ok_or_else(|| {
                format!("children.{}.{key} is not set (dynamic: the outer address): a host-to-host tunnel would carry ferrovpn's own IKE/ESP packets; ferrovpn supports subnets behind the gateways only", ch.name)
            })?;
            let mut out = Vec::new();
            for t in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                if t == "dynamic" {
                    return Err(format!("children.{}.{key} = dynamic (the outer address): host-to-host tunnels are not supported by ferrovpn", ch.name));
                }
                out.push(
                    subnet(c, line, key, t)
                        .map_err(|e| format!("children.{}.{key}: {e}", ch.name))?,
                );
            }
            Ok(out)
        };
        let l = nets(&mut c, "local_ts")?;
        let r = nets(&mut c, "remote_ts")?;
        let child_pairs = pairs(&l, &r, remote)?;
        if child_pairs.len() > 1 {
            let n = child_pairs.len();
            c.note(
                ch.line,
                format!("children.{}.local_ts/remote_ts", ch.name),
                several_selectors(n),
            );
        }
        for p in child_pairs {
            if !c.pairs.contains(&p) {
                c.pairs.push(p);
            }
        }
        if c.pairs.len() > MAX_PAIRS {
            return Err(format!(
                "children: more than {MAX_PAIRS} Quick Mode pairs for one connection"
            ));
        }
        let where_ = format!("children.{}.", ch.name);
        if i == 0 {
            if let Some((v, line)) = ch.get("esp_proposals") {
                let list: Vec<String> = v
                    .split(',')
                    .map(|p| p.trim().to_string())
                    .filter(|p| p != "default")
                    .collect();
                c.esp = keep_proposals(&mut c, line, "esp_proposals", Phase::Esp, list);
            } else {
                c.note(ch.line, format!("{where_}esp_proposals"), "not set: strongSwan's default (aes128-sha256 and others) differs from ferrovpn's default aes128gcm16");
            }
            match ch.get("rekey_time") {
                Some((v, line)) => c.esp_lifetime = lifetime(&mut c, line, "rekey_time", v),
                None => c.esp_lifetime = Some(Duration::from_secs(3600)),
            }
            if let Some((v, line)) = ch.get("rekey_bytes") {
                match v.parse::<u64>() {
                    Ok(b) if b > 0 => c.esp_lifetime_bytes = Some(b),
                    _ => c.note(
                        line,
                        "rekey_bytes",
                        "not a plain byte count; not carried over",
                    ),
                }
            }
        } else {
            for k in ["esp_proposals", "rekey_time", "rekey_bytes"] {
                if ch.get(k) != first.get(k) {
                    c.note(
                        ch.get(k).map_or(ch.line, |(_, l)| l),
                        format!("{where_}{k}"),
                        format!("differs from the first child {}: ferrovpn uses one setting per connection, the first child's", first.name),
                    );
                }
            }
            c.note(
                ch.line,
                format!("children.{}", ch.name),
                "its selectors were added as Quick Mode pairs of this connection",
            );
        }
        match ch.get("start_action") {
            Some(("start", _)) => start = Start::Initiate,
            Some(("trap" | "trap|start" | "start|trap", line)) => {
                c.note(line, format!("{where_}start_action"), "ferrovpn has no trap policies (negotiate on the first packet); start = \"initiate\" negotiates at startup instead");
                start = Start::Initiate;
            }
            _ => {}
        }
        unsupported(
            &mut c,
            &where_,
            ch,
            &[
                "mode",
                "local_ts",
                "remote_ts",
                "esp_proposals",
                "rekey_time",
                "rekey_bytes",
                "start_action",
            ],
        );
    }
    c.start = Some(start);
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_tree_with_inline_sections_quotes_and_comments() {
        let text = r#"
connections {
   gw { # comment
      local { auth = psk }
      remote {
         id = "moon # not a comment"
      }
      children { net { local_ts = 10.1.0.0/16 } }
   }
}
secrets { ike-1 { secret = "a}b" } }
"#;
        let mut notes = Vec::new();
        let t = tree(text, &mut notes);
        assert!(notes.is_empty(), "{notes:?}");
        let gw = t.section("connections").unwrap().section("gw").unwrap();
        let local = gw.section("local").unwrap();
        assert_eq!(local.get("auth"), Some(("psk", 4)));
        assert_eq!(
            gw.section("remote").unwrap().get("id").unwrap().0,
            "moon # not a comment"
        );
        assert_eq!(
            gw.section("children")
                .unwrap()
                .section("net")
                .unwrap()
                .get("local_ts")
                .unwrap()
                .0,
            "10.1.0.0/16"
        );
        assert_eq!(
            t.section("secrets")
                .unwrap()
                .section("ike-1")
                .unwrap()
                .get("secret")
                .unwrap()
                .0,
            "a}b"
        );
    }

    #[test]
    fn unbalanced_braces_do_not_lose_or_panic() {
        let mut notes = Vec::new();
        let _ = tree("}}}\na {\n b {\n", &mut notes);
        assert!(notes.len() >= 3);
        let deep = "x {".repeat(100);
        let _ = tree(&deep, &mut notes);
    }
}

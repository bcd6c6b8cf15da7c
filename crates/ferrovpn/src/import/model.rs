//! The shared model of an imported connection, what every source format is mapped into, and
//! its rendering as ferrovpn TOML with a comment for every setting left behind.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::config::format_duration;
use crate::ipnet::{IfAddr, IpNet};
use ferrovpn_ike::proposal::{parse_esp_proposals, parse_ike_proposals};

/// Shortest and longest SA lifetimes ferrovpn accepts (config/README.md, "Maxima").
const MIN_LIFETIME: Duration = Duration::from_secs(10);
const MAX_LIFETIME: Duration = Duration::from_secs(86400);
const MAX_DPD_INTERVAL: Duration = Duration::from_secs(3600);
const MAX_DPD_TIMEOUT: Duration = Duration::from_secs(7200);
/// Most Quick Mode pairs one imported connection gets (each is its own SA pair to negotiate).
pub const MAX_PAIRS: usize = 256;

/// One setting that was not carried over (or was changed on the way), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Line in the source file (1-based), 0 when not tied to a line.
    pub line: usize,
    /// The source setting, e.g. `dpdaction=restart`; empty for a remark on the whole thing.
    pub setting: String,
    pub reason: String,
}

impl Note {
    pub fn new(line: usize, setting: impl Into<String>, reason: impl Into<String>) -> Note {
        Note {
            line,
            setting: setting.into(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: ", self.line)?;
        }
        if !self.setting.is_empty() {
            write!(f, "{}: ", self.setting)?;
        }
        f.write_str(&self.reason)
    }
}

/// How a connection starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Initiate,
    Respond,
}

/// A connection as far as it could be carried over, in ferrovpn's terms.
#[derive(Default)]
pub struct Conn {
    /// The name in the source file.
    pub source_name: String,
    pub line: usize,
    pub local_addr: Option<IpAddr>,
    pub remote_addr: Option<IpAddr>,
    /// ferrovpn identity syntax (`192.0.2.1`, `fqdn:x`, `userfqdn:a@b`, `keyid:…`).
    pub local_id: Option<String>,
    pub remote_id: Option<String>,
    /// Raw identities as the source wrote them, for matching secrets.
    pub secret_selectors: Vec<String>,
    pub ike: Option<String>,
    pub esp: Option<String>,
    pub ike_lifetime: Option<Duration>,
    pub esp_lifetime: Option<Duration>,
    pub esp_lifetime_bytes: Option<u64>,
    pub aggressive: bool,
    pub force_encap: bool,
    /// `Some(None)`: DPD off; `Some(Some(..))`: interval and optional timeout.
    pub dpd: Option<Option<(Duration, Option<Duration>)>>,
    pub start: Option<Start>,
    pub pairs: Vec<(IpNet, IpNet)>,
    pub psk: Option<Zeroizing<Vec<u8>>>,
    pub notes: Vec<Note>,
}

impl Conn {
    pub fn new(name: &str, line: usize) -> Conn {
        Conn {
            source_name: name.to_string(),
            line,
            ..Conn::default()
        }
    }

    pub fn note(&mut self, line: usize, setting: impl Into<String>, reason: impl Into<String>) {
        self.notes.push(Note::new(line, setting, reason));
    }

    /// Everything but the name, selectors and notes: connections that agree on it can share one
    /// ferrovpn connection (one IKE SA, several Quick Mode pairs).
    fn phase1_fingerprint(&self) -> String {
        format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{}|{}|{:?}|{:?}",
            self.local_addr,
            self.remote_addr,
            self.local_id,
            self.remote_id,
            self.ike,
            self.esp,
            self.ike_lifetime,
            self.esp_lifetime,
            self.esp_lifetime_bytes,
            self.aggressive,
            self.force_encap,
            self.dpd,
            self.start
        )
    }
}

/// A source connection that could not be carried over at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub name: String,
    pub line: usize,
    pub reason: String,
}

/// The result of reading one source file.
#[derive(Default)]
pub struct Imported {
    pub conns: Vec<Conn>,
    pub skipped: Vec<Skipped>,
    /// Remarks on the file as a whole (`config setup`, includes, unknown sections).
    pub notes: Vec<Note>,
}

impl Imported {
    pub fn skip(&mut self, name: &str, line: usize, reason: impl Into<String>) {
        self.skipped.push(Skipped {
            name: name.to_string(),
            line,
            reason: reason.into(),
        });
    }
}

/// Parses a time value as strongSwan and Libreswan write it: a number with an optional unit
/// `s`, `m`, `h` or `d` (seconds when none).
pub fn parse_time(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 's') => (s.get(..i)?, 1),
        (i, 'm') => (s.get(..i)?, 60),
        (i, 'h') => (s.get(..i)?, 3600),
        (i, 'd') => (s.get(..i)?, 86400),
        _ => (s, 1),
    };
    let n: u64 = num.trim().parse().ok()?;
    n.checked_mul(mult).map(Duration::from_secs)
}

/// A lifetime within ferrovpn's range: above the maximum is lowered (with a note), below the
/// minimum raised.
pub fn lifetime(conn: &mut Conn, line: usize, setting: &str, value: &str) -> Option<Duration> {
    let Some(d) = parse_time(value) else {
        conn.note(line, setting, "not a time value; ferrovpn's default used");
        return None;
    };
    if d > MAX_LIFETIME {
        conn.note(
            line,
            setting,
            format!(
                "{} is above ferrovpn's maximum of 1d (what Cisco and Juniper accept); lowered to 1d",
                format_duration(d)
            ),
        );
        return Some(MAX_LIFETIME);
    }
    if d < MIN_LIFETIME {
        conn.note(
            line,
            setting,
            "below ferrovpn's minimum lifetime of 10s; raised to 10s",
        );
        return Some(MIN_LIFETIME);
    }
    Some(d)
}

/// A DPD interval/timeout pair within ferrovpn's limits.
pub fn dpd(
    conn: &mut Conn,
    line: usize,
    interval: Option<Duration>,
    timeout: Option<Duration>,
) -> Option<(Duration, Option<Duration>)> {
    let mut interval = interval.unwrap_or(Duration::from_secs(30));
    if interval.is_zero() {
        return None;
    }
    if interval > MAX_DPD_INTERVAL {
        conn.note(
            line,
            "dpd delay",
            "above ferrovpn's maximum of 1h; lowered to 1h",
        );
        interval = MAX_DPD_INTERVAL;
    }
    let timeout = match timeout {
        Some(t) if t > MAX_DPD_TIMEOUT => {
            conn.note(
                line,
                "dpd timeout",
                "above ferrovpn's maximum of 2h; lowered to 2h",
            );
            Some(MAX_DPD_TIMEOUT)
        }
        Some(t) if t <= interval => {
            let t = interval.saturating_mul(5).min(MAX_DPD_TIMEOUT);
            conn.note(
                line,
                "dpd timeout",
                format!(
                    "ferrovpn needs the timeout above the interval; set to {}",
                    format_duration(t)
                ),
            );
            Some(t)
        }
        Some(t) => Some(t),
        // ferrovpn's default timeout (150s) must still exceed the interval.
        None if interval >= Duration::from_secs(150) => {
            Some(interval.saturating_mul(5).min(MAX_DPD_TIMEOUT))
        }
        None => None,
    };
    Some((interval, timeout))
}

/// Turns an identity as strongSwan/Libreswan write it (`@fqdn`, `user@domain`, an address,
/// `@#hex`, `%any`) into ferrovpn's syntax; `Err` says why it cannot be carried over.
pub fn identity(s: &str) -> Result<Option<String>, String> {
    let s = unquote(s.trim());
    if s.is_empty() || s == "%any" || s == "%any6" {
        return Ok(None);
    }
    if let Ok(a) = IpAddr::from_str(s) {
        return Ok(Some(a.to_string()));
    }
    if let Some(hex) = s.strip_prefix("@#") {
        if !hex.is_empty() && hex.len() % 2 == 0 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(Some(format!("keyid:#{}", hex.to_ascii_lowercase())));
        }
        return Err(format!("{s}: not an even number of hex digits"));
    }
    if let Some(k) = s.strip_prefix("keyid:") {
        if k.is_empty() || k.starts_with('#') {
            return Err(format!("{s}: not a key id ferrovpn can express"));
        }
        return Ok(Some(format!("keyid:{k}")));
    }
    if s.starts_with('%') {
        return Err(format!(
            "{s}: resolved by the other IKE daemon at run time; write the identity by hand"
        ));
    }
    if s.contains('=') || s.contains(',') {
        return Err(format!(
            "{s}: a distinguished name (ID_DER_ASN1_DN) belongs to certificate authentication, which ferrovpn does not have yet"
        ));
    }
    let bare = s.strip_prefix('@').unwrap_or(s).trim_start_matches('@');
    if bare.is_empty() || bare.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{s}: not an identity ferrovpn can express"));
    }
    if bare.contains('@') {
        return Ok(Some(format!("userfqdn:{bare}")));
    }
    Ok(Some(format!("fqdn:{bare}")))
}

/// The note on a child or conn with several subnets on a side. charon 5.9.8's IKEv1 Quick Mode
/// carries only the first of each list (seen: one QM1 with the first of two `local_ts`).
pub fn several_selectors(pairs: usize) -> String {
    format!("several subnets: strongSwan's IKEv1 negotiates only the first of each list, ferrovpn one Quick Mode SA pair per local/remote combination ({pairs} here); check that the peer accepts each")
}

/// A subnet as written in `leftsubnet`/`local_ts`: `10.1.0.0/16` or a host address. Host bits
/// are cleared as strongSwan does (with a note); port/protocol selectors cannot be expressed.
pub fn subnet(conn: &mut Conn, line: usize, setting: &str, s: &str) -> Result<IpNet, String> {
    let s = unquote(s.trim());
    if s.contains('[') {
        return Err(format!(
            "{s}: protocol/port selectors are not supported by ferrovpn (whole subnets only)"
        ));
    }
    if s.contains('-') && !s.contains('/') {
        return Err(format!("{s}: address ranges are not supported by ferrovpn"));
    }
    if let Ok(a) = IpAddr::from_str(s) {
        return Ok(IpNet::host(a));
    }
    let ifa = IfAddr::from_str(s).map_err(|_| format!("{s}: not a subnet"))?;
    let net = ifa.network();
    if net.addr() != ifa.addr {
        conn.note(
            line,
            setting,
            format!("{s} has host bits set; written as {net}"),
        );
    }
    Ok(net)
}

/// Removes one level of double or single quotes.
pub fn unquote(s: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    s
}

/// Which phase a proposal list is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Ike,
    Esp,
}

/// Keeps the proposals (already in ferrovpn/strongSwan keyword syntax) that ferrovpn accepts,
/// noting each dropped one with ferrovpn's reason; ESP proposals must all have a PFS group or
/// none. `None` when nothing is left.
pub fn keep_proposals(
    conn: &mut Conn,
    line: usize,
    setting: &str,
    phase: Phase,
    proposals: Vec<String>,
) -> Option<String> {
    let mut kept: Vec<String> = Vec::new();
    let mut pfs: Option<bool> = None;
    for p in proposals {
        let p = p.trim().to_string();
        if p.is_empty() {
            continue;
        }
        match phase {
            Phase::Ike => match parse_ike_proposals(&p) {
                Ok(_) => kept.push(p),
                Err(e) => conn.note(line, setting, format!("proposal {p} dropped: {e}")),
            },
            Phase::Esp => match parse_esp_proposals(&p) {
                Ok(parsed) => {
                    let has_group = parsed.iter().any(|e| e.pfs_group.is_some());
                    match pfs {
                        Some(want) if want != has_group => conn.note(
                            line,
                            setting,
                            format!(
                                "proposal {p} dropped: ferrovpn's Quick Mode carries a KE payload for every proposal or for none, and the first proposal kept {}",
                                if want { "has a DH group" } else { "has no DH group" }
                            ),
                        ),
                        _ => {
                            pfs = Some(has_group);
                            kept.push(p);
                        }
                    }
                }
                Err(e) => conn.note(line, setting, format!("proposal {p} dropped: {e}")),
            },
        }
    }
    if kept.is_empty() {
        conn.note(
            line,
            setting,
            "no proposal ferrovpn supports is left; ferrovpn's default is used",
        );
        return None;
    }
    Some(kept.join(", "))
}

/// Weak DH groups need `allow_weak_dh` in ferrovpn.
fn uses_weak_dh(s: &str) -> bool {
    s.split([',', '-'])
        .map(str::trim)
        .any(|t| matches!(t, "modp1024" | "modp1536"))
}

/// Joins connections to the same peer that agree on everything but their selectors (ferrovpn
/// has one connection per address pair, with several Quick Mode pairs), and drops the rest.
pub fn merge_same_peer(imp: &mut Imported) {
    let conns = std::mem::take(&mut imp.conns);
    let mut out: Vec<Conn> = Vec::new();
    let mut by_peer: std::collections::HashMap<(Option<IpAddr>, Option<IpAddr>), usize> =
        std::collections::HashMap::new();
    for c in conns {
        let key = (c.local_addr, c.remote_addr);
        let same_peer = by_peer.get(&key).and_then(|&i| out.get_mut(i));
        match same_peer {
            None => {
                by_peer.insert(key, out.len());
                out.push(c);
            }
            Some(o)
                if o.phase1_fingerprint() == c.phase1_fingerprint()
                    && o.pairs.len() + c.pairs.len() <= MAX_PAIRS =>
            {
                o.note(
                    c.line,
                    format!("conn {}", c.source_name),
                    format!(
                        "same peer and settings as {}: its traffic selectors were added to this connection",
                        o.source_name
                    ),
                );
                for p in c.pairs {
                    if !o.pairs.contains(&p) {
                        o.pairs.push(p);
                    }
                }
                o.notes.extend(c.notes);
                if o.psk.is_none() {
                    o.psk = c.psk;
                }
            }
            Some(o) => imp.skipped.push(Skipped {
                name: c.source_name,
                line: c.line,
                reason: format!(
                    "same local and remote address as {}, with other settings; IKEv1 with PSK tells peers apart by address, so ferrovpn has one connection per address pair: merge the two by hand",
                    o.source_name
                ),
            }),
        }
    }
    imp.conns = out;
}

/// A name ferrovpn accepts (letters, digits, `-`, `_`, `.`; at most 64), unique in `taken`.
fn ferrovpn_name(source: &str, taken: &std::collections::HashSet<String>) -> String {
    let mut n: String = source
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(56)
        .collect();
    if n.is_empty() {
        n = "conn".into();
    }
    let mut candidate = n.clone();
    let mut i = 2u32;
    while taken.contains(&candidate) {
        candidate = format!("{n}-{i}");
        i = i.saturating_add(1);
    }
    candidate
}

/// TOML string literal.
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Text from the source file with control characters (line breaks, terminal escapes, NUL,
/// which TOML comments may not hold) replaced by `?`.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// One comment line, cleaned: nothing of the source can end the comment early.
fn comment(out: &mut String, prefix: &str, text: &str) {
    let _ = writeln!(out, "{prefix}{}", clean(text));
}

/// Where each connection's PSK goes.
pub enum PskPlan {
    /// Written to this file (relative to the output file) by the caller.
    File(String),
    /// Not available: a placeholder file name the operator must fill, and why.
    Placeholder(String, String),
}

/// A rendered configuration: the TOML text and, per connection, the key and where it goes.
pub struct Rendered {
    pub toml: String,
    /// (ferrovpn name, psk file name relative to the output, key) for keys to be written.
    pub psk_files: Vec<(String, String, Zeroizing<Vec<u8>>)>,
    /// Every note, for stderr, as `conn NAME: ...` lines.
    pub report: Vec<String>,
    pub converted: usize,
}

/// Renders the connections as ferrovpn TOML; `write_keys`: keys found in the secrets are to be
/// written to files next to the output (else placeholders).
pub fn render(imp: Imported, source: &str, format: &str, write_keys: bool) -> Rendered {
    let mut out = String::new();
    let mut report = Vec::new();
    let mut psk_files = Vec::new();
    comment(
        &mut out,
        "# Converted by `ferrovpn import` from ",
        &format!("{source} ({format})."),
    );
    out.push_str(
        "# Review it, then validate with: ferrovpn check -c THIS_FILE\n\
         # Every setting that was not carried over is listed as an \"import:\" comment.\n",
    );
    for n in &imp.notes {
        comment(&mut out, "# import: ", &n.to_string());
        report.push(clean(&n.to_string()));
    }
    for s in &imp.skipped {
        let text = format!(
            "conn {} (line {}) NOT CONVERTED: {}",
            s.name, s.line, s.reason
        );
        comment(&mut out, "# import: ", &text);
        report.push(clean(&text));
    }
    let mut taken = std::collections::HashSet::new();
    let converted = imp.conns.len();
    for mut c in imp.conns {
        let name = ferrovpn_name(&c.source_name, &taken);
        taken.insert(name.clone());
        if name != c.source_name {
            c.note(
                c.line,
                "name",
                format!(
                    "{} renamed {name} (ferrovpn names use letters, digits, '-', '_', '.')",
                    c.source_name
                ),
            );
        }
        let (Some(local), Some(remote)) = (c.local_addr, c.remote_addr) else {
            // The format modules skip such connections; never emit a half connection.
            continue;
        };
        let weak = c.ike.as_deref().is_some_and(uses_weak_dh)
            || c.esp.as_deref().is_some_and(uses_weak_dh);
        if weak {
            c.note(
                c.line,
                "proposals",
                "modp1024/modp1536 kept for the peer: allow_weak_dh = true written (ferrovpn refuses them otherwise)",
            );
        }
        let start = c.start.unwrap_or(Start::Respond);
        if c.aggressive && start == Start::Respond {
            c.note(
                c.line,
                "aggressive",
                "Aggressive Mode as responder lets an eavesdropper crack the PSK offline; allow_aggressive_psk = true written to keep the source's behaviour: remove the connection's mode line if the peer can do Main Mode",
            );
        }
        let psk_name = format!("{name}.psk");
        let plan = match c.psk.take() {
            Some(k) if k.trim_ascii().len() != k.len() || k.is_empty() => PskPlan::Placeholder(
                psk_name.clone(),
                "the key found in the secrets begins or ends with whitespace, which ferrovpn trims from a psk_file: choose a new key".into(),
            ),
            Some(k) if write_keys => {
                psk_files.push((name.clone(), psk_name.clone(), k));
                PskPlan::File(psk_name.clone())
            }
            Some(_) => PskPlan::Placeholder(
                psk_name.clone(),
                "the key was found in the secrets, but keys are written to files only next to an output file (-o); copy it there by hand".into(),
            ),
            None => PskPlan::Placeholder(
                psk_name.clone(),
                "no matching PSK in the secrets given (--secrets)".into(),
            ),
        };
        if let PskPlan::Placeholder(_, why) = &plan {
            c.note(
                0,
                "psk",
                format!("PLACEHOLDER: put the pre-shared key into {psk_name} (chmod 600) before `ferrovpn up`: {why}"),
            );
        }

        // In source order, remarks without a line last; a note merged in twice once.
        c.notes
            .sort_by_key(|n| if n.line == 0 { usize::MAX } else { n.line });
        c.notes.dedup();
        out.push('\n');
        comment(
            &mut out,
            "# From conn ",
            &format!("{} (line {}).", c.source_name, c.line),
        );
        for n in &c.notes {
            comment(&mut out, "# import: ", &n.to_string());
            report.push(clean(&format!("conn {name}: {n}")));
        }
        let _ = writeln!(out, "[[connection]]");
        let _ = writeln!(out, "name = {}", q(&name));
        let _ = writeln!(out, "local_addr = {}", q(&local.to_string()));
        let _ = writeln!(out, "remote_addr = {}", q(&remote.to_string()));
        if let Some(id) = &c.local_id {
            let _ = writeln!(out, "local_id = {}", q(id));
        }
        if let Some(id) = &c.remote_id {
            let _ = writeln!(out, "remote_id = {}", q(id));
        }
        match &plan {
            PskPlan::File(f) => {
                let _ = writeln!(out, "psk_file = {}", q(f));
            }
            PskPlan::Placeholder(f, _) => {
                let _ = writeln!(
                    out,
                    "psk_file = {}  # PLACEHOLDER: create it with the key, chmod 600",
                    q(f)
                );
            }
        }
        if c.aggressive {
            let _ = writeln!(out, "mode = \"aggressive\"");
        }
        if let Some(p) = &c.ike {
            let _ = writeln!(out, "ike = {}", q(p));
        }
        if let Some(p) = &c.esp {
            let _ = writeln!(out, "esp = {}", q(p));
        }
        if let Some(d) = c.ike_lifetime {
            let _ = writeln!(out, "ike_lifetime = {}", q(&format_duration(d)));
        }
        if let Some(d) = c.esp_lifetime {
            let _ = writeln!(out, "esp_lifetime = {}", q(&format_duration(d)));
        }
        if let Some(b) = c.esp_lifetime_bytes {
            let _ = writeln!(out, "esp_lifetime_bytes = {b}");
        }
        if c.force_encap {
            let _ = writeln!(out, "nat_traversal = \"force\"");
        }
        match c.dpd {
            Some(None) => {
                let _ = writeln!(out, "dpd_interval = \"0s\"");
            }
            Some(Some((i, t))) => {
                let _ = writeln!(out, "dpd_interval = {}", q(&format_duration(i)));
                if let Some(t) = t {
                    let _ = writeln!(out, "dpd_timeout = {}", q(&format_duration(t)));
                }
            }
            None => {}
        }
        let _ = writeln!(
            out,
            "start = {}",
            match start {
                Start::Initiate => "\"initiate\"",
                Start::Respond => "\"respond\"",
            }
        );
        if weak {
            let _ = writeln!(out, "allow_weak_dh = true");
        }
        if c.aggressive && start == Start::Respond {
            let _ = writeln!(out, "allow_aggressive_psk = true");
        }
        let _ = writeln!(out, "\n[connection.policy_based]\npairs = [");
        for (l, r) in &c.pairs {
            let _ = writeln!(
                out,
                "    {{ local = {}, remote = {} }},",
                q(&l.to_string()),
                q(&r.to_string())
            );
        }
        let _ = writeln!(out, "]");
    }
    Rendered {
        toml: out,
        psk_files,
        report,
        converted,
    }
}

/// Every pair `local × remote` of two selector lists, checked against the outer addresses.
pub fn pairs(
    local: &[IpNet],
    remote: &[IpNet],
    remote_addr: IpAddr,
) -> Result<Vec<(IpNet, IpNet)>, String> {
    if local.len().saturating_mul(remote.len()) > MAX_PAIRS {
        return Err(format!(
            "{} local × {} remote subnets: more than {MAX_PAIRS} Quick Mode pairs for one connection",
            local.len(),
            remote.len()
        ));
    }
    let mut out = Vec::new();
    for r in remote {
        if r.contains_addr(remote_addr) && !r.is_default() {
            return Err(format!(
                "remote subnet {r} contains the peer's own address {remote_addr}: host-to-host and gateway-inside-subnet tunnels would carry ferrovpn's own IKE/ESP packets; ferrovpn supports subnets behind the peer only"
            ));
        }
        for l in local {
            if l.is_ipv6() == r.is_ipv6() && !out.contains(&(*l, *r)) {
                out.push((*l, *r));
            }
        }
    }
    if out.is_empty() {
        return Err("no pair of local and remote subnets of the same address family".into());
    }
    Ok(out)
}

/// Decodes the PSK notations of ipsec.secrets and swanctl.conf: `0x` hex, `0s` base64, or the
/// text itself.
pub fn decode_secret(s: &str) -> Option<Zeroizing<Vec<u8>>> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        let hex: String = hex.chars().filter(|c| *c != '_').collect();
        if hex.is_empty() || !hex.len().is_multiple_of(2) {
            return None;
        }
        let mut v = Zeroizing::new(Vec::with_capacity(hex.len() / 2));
        for i in (0..hex.len()).step_by(2) {
            v.push(u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()?);
        }
        return Some(v);
    }
    if let Some(b64) = s.strip_prefix("0s") {
        return base64(b64);
    }
    Some(Zeroizing::new(s.as_bytes().to_vec()))
}

fn base64(s: &str) -> Option<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::new());
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// Normalizes an identity or address for matching a secret to a connection.
pub fn selector_key(s: &str) -> String {
    let s = unquote(s.trim());
    if let Ok(a) = IpAddr::from_str(s) {
        return a.to_string();
    }
    s.trim_start_matches('@').to_ascii_lowercase()
}

/// A PSK with the selectors (identities/addresses) it belongs to; empty: any.
pub struct SecretEntry {
    pub line: usize,
    pub selectors: Vec<String>,
    pub key: Zeroizing<Vec<u8>>,
}

/// The PSK entries by their set of selectors, to find the best one for a connection as
/// strongSwan does: every selector of the entry must be one of the connection's identities or
/// addresses (or `%any`); the entry matching the most wins, the first in the file on a tie.
pub struct SecretIndex<'a> {
    by_set: std::collections::HashMap<Vec<String>, &'a SecretEntry>,
}

impl<'a> SecretIndex<'a> {
    pub fn new(secrets: &'a [SecretEntry]) -> SecretIndex<'a> {
        let mut by_set = std::collections::HashMap::new();
        for e in secrets {
            by_set.entry(selector_set(&e.selectors)).or_insert(e);
        }
        SecretIndex { by_set }
    }

    /// A connection has at most a handful of identities, so every subset of them is looked up
    /// (the work does not grow with the size of the secrets file).
    pub fn find(&self, conn: &Conn) -> Option<&'a SecretEntry> {
        let mine = selector_set(&conn.secret_selectors);
        let mine: Vec<String> = mine.into_iter().take(8).collect();
        let mut best: Option<(usize, &'a SecretEntry)> = None;
        for mask in 0u32..(1u32 << mine.len()) {
            let subset: Vec<String> = mine
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, k)| k.clone())
                .collect();
            let score = subset.len();
            if let Some(e) = self.by_set.get(&subset) {
                let better = match best {
                    None => true,
                    Some((b, be)) => score > b || (score == b && e.line < be.line),
                };
                if better {
                    best = Some((score, e));
                }
            }
        }
        best.map(|(_, e)| e)
    }
}

/// Sorted, deduplicated selector keys without `%any`.
fn selector_set(selectors: &[String]) -> Vec<String> {
    let mut v: Vec<String> = selectors
        .iter()
        .map(|s| selector_key(s))
        .filter(|k| k != "%any" && k != "%any6")
        .collect();
    v.sort();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_values_with_and_without_units() {
        assert_eq!(parse_time("3600"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_time("60m"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_time("8h"), Some(Duration::from_secs(28800)));
        assert_eq!(parse_time("1d"), Some(Duration::from_secs(86400)));
        assert_eq!(parse_time("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_time("h"), None);
        assert_eq!(parse_time(""), None);
        assert_eq!(parse_time("99999999999999999999d"), None);
    }

    #[test]
    fn identities_in_ferrovpn_syntax() {
        assert_eq!(
            identity("@moon.example").unwrap().unwrap(),
            "fqdn:moon.example"
        );
        assert_eq!(
            identity("moon.example").unwrap().unwrap(),
            "fqdn:moon.example"
        );
        assert_eq!(
            identity("carol@example.org").unwrap().unwrap(),
            "userfqdn:carol@example.org"
        );
        assert_eq!(identity("192.0.2.1").unwrap().unwrap(), "192.0.2.1");
        assert_eq!(identity("@#0a1B").unwrap().unwrap(), "keyid:#0a1b");
        assert_eq!(identity("%any").unwrap(), None);
        assert!(identity("\"C=CH, O=strongSwan, CN=moon\"").is_err());
        assert!(identity("%fromcert").is_err());
    }

    #[test]
    fn secrets_in_hex_base64_and_text() {
        assert_eq!(&decode_secret("0x41_42").unwrap()[..], b"AB");
        assert_eq!(&decode_secret("0sQUJD").unwrap()[..], b"ABC");
        assert_eq!(&decode_secret("plain").unwrap()[..], b"plain");
        assert!(decode_secret("0x4").is_none());
        assert!(decode_secret("0s!!").is_none());
    }

    #[test]
    fn the_most_specific_secret_wins() {
        let e = |line, sel: &[&str], k: &str| SecretEntry {
            line,
            selectors: sel.iter().map(|s| s.to_string()).collect(),
            key: Zeroizing::new(k.as_bytes().to_vec()),
        };
        let secrets = vec![
            e(1, &[], "any"),
            e(2, &["@moon.example", "@sun.example"], "both"),
            e(3, &["@moon.example", "@venus.example"], "other"),
        ];
        let idx = SecretIndex::new(&secrets);
        let mut c = Conn::new("x", 1);
        c.secret_selectors = vec![
            "moon.example".into(),
            "@sun.example".into(),
            "192.0.2.1".into(),
        ];
        assert_eq!(idx.find(&c).unwrap().line, 2);
        c.secret_selectors = vec!["192.0.2.9".into()];
        assert_eq!(idx.find(&c).unwrap().line, 1);
        c.secret_selectors = vec!["@moon.example".into()];
        assert_eq!(
            idx.find(&c).unwrap().line,
            1,
            "one of two selectors is no match"
        );
    }
}

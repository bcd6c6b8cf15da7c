//! The `ipsec.conf` syntax strongSwan's starter and Libreswan's pluto share: sections that
//! start in column 0 (`config setup`, `conn NAME`, `ca NAME`), indented `key=value` lines,
//! `#` comments, `also=` inclusion and `conn %default` (ipsec.conf(5)).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::model::{unquote, Conn, Imported, Note};

/// At most this many `also=` levels are followed (a cycle is reported, never looped on).
const MAX_ALSO_DEPTH: usize = 16;
/// At most this many sections are applied to build one connection: `also=` lists that fan out
/// at every level would otherwise take exponential time.
const MAX_ALSO_APPLIED: usize = 256;

/// One `key=value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// A section: `kind` is `conn`, `config`, `ca`, ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub kind: String,
    pub name: String,
    pub line: usize,
    pub entries: Vec<Entry>,
}

/// Splits the file into sections; lines it cannot read become notes.
pub fn sections(text: &str, imp: &mut Imported) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = strip_comment(raw);
        if l.trim().is_empty() {
            continue;
        }
        let indented = l.starts_with([' ', '\t']);
        let l = l.trim();
        if !indented {
            let mut words = l.split_whitespace();
            let kind = words.next().unwrap_or_default().to_string();
            let name = words.next().unwrap_or_default().to_string();
            match kind.as_str() {
                "conn" | "config" | "ca" => out.push(Section {
                    kind,
                    name,
                    line,
                    entries: Vec::new(),
                }),
                "include" => imp.notes.push(Note::new(
                    line,
                    format!("include {name}"),
                    "not followed: run `ferrovpn import` on the included file as well",
                )),
                "version" => {}
                _ => imp.notes.push(Note::new(
                    line,
                    l.chars().take(60).collect::<String>(),
                    "not a section ipsec.conf knows; ignored",
                )),
            }
            continue;
        }
        let Some(sec) = out.last_mut() else {
            imp.notes
                .push(Note::new(line, l, "setting outside any section; ignored"));
            continue;
        };
        match l.split_once('=') {
            Some((k, v)) => sec.entries.push(Entry {
                key: k.trim().to_ascii_lowercase(),
                value: unquote(v.trim()).to_string(),
                line,
            }),
            None => imp.notes.push(Note::new(
                line,
                l.chars().take(60).collect::<String>(),
                "not a key=value line; ignored",
            )),
        }
    }
    out
}

/// The part of a line before a `#` that is not inside double quotes.
fn strip_comment(l: &str) -> &str {
    let mut in_quotes = false;
    for (i, c) in l.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            '#' if !in_quotes => return l.get(..i).unwrap_or(l),
            _ => {}
        }
    }
    l
}

/// A connection's settings after `conn %default` and `also=` were applied: key → (value, line).
pub type Settings = BTreeMap<String, Entry>;

/// Resolves every `conn` section except `%default` and those only used through `also=`
/// (templates). Values set empty (`key=`) are removed, as both daemons treat them.
pub fn resolve_conns(secs: &[Section], imp: &mut Imported) -> Vec<(String, usize, Settings)> {
    let conns: Vec<&Section> = secs.iter().filter(|s| s.kind == "conn").collect();
    let by_name: HashMap<&str, &Section> = conns.iter().map(|s| (s.name.as_str(), *s)).collect();
    let defaults: Vec<&Entry> = conns
        .iter()
        .filter(|s| s.name == "%default")
        .flat_map(|s| s.entries.iter())
        .collect();
    let included: HashSet<&str> = conns
        .iter()
        .flat_map(|s| s.entries.iter())
        .filter(|e| e.key == "also")
        .flat_map(|e| e.value.split_whitespace())
        .collect();
    let mut out = Vec::new();
    for s in &conns {
        if s.name == "%default" || s.name.is_empty() {
            if s.name.is_empty() {
                imp.notes
                    .push(Note::new(s.line, "conn", "a conn without a name; ignored"));
            }
            continue;
        }
        if included.contains(s.name.as_str()) {
            continue;
        }
        let mut set = Settings::new();
        for e in &defaults {
            set.insert(e.key.clone(), (*e).clone());
        }
        let mut walk = Walk {
            by_name: &by_name,
            seen: Vec::new(),
            budget: MAX_ALSO_APPLIED,
        };
        walk.apply(s, &mut set, 0, imp);
        set.retain(|_, e| !e.value.is_empty());
        out.push((s.name.clone(), s.line, set));
    }
    out
}

struct Walk<'a, 'm> {
    by_name: &'m HashMap<&'a str, &'a Section>,
    seen: Vec<&'a str>,
    budget: usize,
}

impl<'a> Walk<'a, '_> {
    /// Applies `also=` sections first, then the section's own lines, so its own values win.
    fn apply(&mut self, s: &'a Section, set: &mut Settings, depth: usize, imp: &mut Imported) {
        if depth > MAX_ALSO_DEPTH || self.seen.contains(&s.name.as_str()) {
            imp.notes.push(Note::new(
                s.line,
                format!("also={}", s.name),
                "included in a cycle or too deeply; not applied again",
            ));
            return;
        }
        if self.budget == 0 {
            imp.notes.push(Note::new(
                s.line,
                format!("also={}", s.name),
                "more than 256 sections included into one conn; not applied",
            ));
            return;
        }
        self.budget -= 1;
        self.seen.push(&s.name);
        for e in s.entries.iter().filter(|e| e.key == "also") {
            for name in e.value.split_whitespace() {
                match self.by_name.get(name) {
                    Some(inc) => self.apply(inc, set, depth + 1, imp),
                    None => imp.notes.push(Note::new(
                        e.line,
                        format!("also={name}"),
                        "no conn of that name in this file; not applied",
                    )),
                }
            }
        }
        for e in s.entries.iter().filter(|e| e.key != "also") {
            set.insert(e.key.clone(), e.clone());
        }
        self.seen.pop();
    }
}

/// The value of `key` in a resolved conn.
pub fn value<'a>(set: &'a Settings, key: &str) -> Option<&'a str> {
    set.get(key).map(|e| e.value.as_str())
}

/// Both ipsec.conf dialects: every `config setup` entry is noted (`why`: daemon settings have no
/// ferrovpn equivalent), then each resolved conn is converted by `conn`; a refused one is
/// reported with its reason.
pub fn convert(
    secs: &[Section],
    imp: &mut Imported,
    why: &str,
    conn: impl Fn(&str, usize, &Settings) -> Result<Conn, String>,
) {
    if let Some(setup) = secs.iter().find(|s| s.kind == "config") {
        for e in &setup.entries {
            imp.notes
                .push(Note::new(e.line, format!("config setup: {}", e.key), why));
        }
    }
    for (name, line, set) in resolve_conns(secs, imp) {
        match conn(&name, line, &set) {
            Ok(c) => imp.conns.push(c),
            Err(reason) => imp.skip(&name, line, reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn also_and_default_are_applied_with_the_conns_own_values_winning() {
        let text = "\
config setup
    charondebug=\"ike 2\"   # comment

conn %default
    ikelifetime=60m
    keyexchange=ikev1

conn base
    left=192.0.2.1
    ike=aes128-sha1-modp2048 # inline comment

conn net-net
    also=base
    ike=aes256-sha256-modp2048
    leftsubnet=
";
        let mut imp = Imported::default();
        let secs = sections(text, &mut imp);
        assert_eq!(secs.len(), 4);
        let conns = resolve_conns(&secs, &mut imp);
        assert_eq!(conns.len(), 1, "base is only a template");
        let (name, line, set) = &conns[0];
        assert_eq!((name.as_str(), *line), ("net-net", 12));
        assert_eq!(set["ike"].value, "aes256-sha256-modp2048");
        assert_eq!(set["left"].value, "192.0.2.1");
        assert_eq!(set["ikelifetime"].value, "60m");
        assert!(!set.contains_key("leftsubnet"));
    }

    #[test]
    fn an_also_cycle_is_reported_not_followed_forever() {
        let text = "conn a\n also=b\nconn b\n also=a\nconn c\n also=a\n";
        let mut imp = Imported::default();
        let secs = sections(text, &mut imp);
        let conns = resolve_conns(&secs, &mut imp);
        assert_eq!(conns.len(), 1);
        assert!(imp.notes.iter().any(|n| n.reason.contains("cycle")));
    }

    #[test]
    fn also_lists_that_fan_out_at_every_level_are_cut_off() {
        // 16 levels of `also=` naming the next level 50 times: 50^16 applications unbounded.
        let mut text = String::from("conn top\n also=l0\n");
        for i in 0..16 {
            text.push_str(&format!(
                "conn l{i}\n also={}\n x{i}=1\n",
                format!("l{} ", i + 1).repeat(50)
            ));
        }
        let mut imp = Imported::default();
        let secs = sections(&text, &mut imp);
        let conns = resolve_conns(&secs, &mut imp);
        assert_eq!(conns.len(), 1);
        assert!(imp.notes.iter().any(|n| n.reason.contains("more than 256")));
    }
}

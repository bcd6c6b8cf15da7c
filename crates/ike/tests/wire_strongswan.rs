//! Every ISAKMP datagram of the recorded strongSwan 5.9.8 exchanges (tests/data/strongswan)
//! parses, re-emits byte for byte, and summarises to the payload list charon logged for it.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use ferrovpn_ike::wire::{
    emit_payloads, parse_payloads, payload_list, Flags, Header, Message, PayloadIter,
};

fn datasets() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/strongswan");
    let mut dirs: Vec<_> = fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("messages.txt").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// (exchange name, message ID) → payload lists charon logged as parsed or generated.
fn logged_lists(dir: &Path) -> HashMap<(String, u32), HashSet<String>> {
    let mut map: HashMap<_, HashSet<_>> = HashMap::new();
    for log in ["charon-initiator.log", "charon-responder.log"] {
        let text = fs::read_to_string(dir.join(log)).unwrap_or_default();
        for line in text.lines() {
            let Some(rest) = line
                .split("> parsed ")
                .nth(1)
                .or_else(|| line.split("> generating ").nth(1))
            else {
                continue;
            };
            let Some((head, list)) = rest.split_once(" [") else {
                continue;
            };
            let words: Vec<_> = head.split_whitespace().collect();
            let [exchange, _, mid] = words[..] else {
                continue;
            };
            let Ok(mid) = mid.parse::<u32>() else {
                continue;
            };
            map.entry((exchange.to_string(), mid))
                .or_default()
                .insert(format!("[{list}"));
        }
    }
    map
}

/// message line number (1-based) → (plaintext chain, padding).
fn decrypted(dir: &Path) -> HashMap<usize, (Vec<u8>, Vec<u8>)> {
    let text = fs::read_to_string(dir.join("decrypted.txt")).unwrap_or_default();
    let field = |line: &str, name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .map(|h| hex::decode(h).unwrap())
            .unwrap_or_default()
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let n: usize = l.split_whitespace().next().unwrap().parse().unwrap();
            (n, (field(l, "plaintext="), field(l, "padding=")))
        })
        .collect()
}

#[test]
fn strongswan_datagrams_parse_round_trip_and_match_charon_logs() {
    let dirs = datasets();
    assert!(
        dirs.len() >= 7,
        "expected the seven recorded datasets, found {}",
        dirs.len()
    );
    let mut checked = 0;
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let logged = logged_lists(&dir);
        let plain = decrypted(&dir);
        let messages = fs::read_to_string(dir.join("messages.txt")).unwrap();
        for (i, line) in messages
            .lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
        {
            let n = i + 1;
            let bytes = hex::decode(line.split_whitespace().nth(3).unwrap()).unwrap();
            let header = Header::parse(&bytes).unwrap_or_else(|e| panic!("{name} #{n}: {e}"));
            let payloads = if header.flags.contains(Flags::ENCRYPTION) {
                let (chain, padding) = plain
                    .get(&n)
                    .unwrap_or_else(|| panic!("{name} #{n}: no plaintext"));
                let body = [chain.as_slice(), padding.as_slice()].concat();
                let payloads = parse_payloads(header.next_payload, &body)
                    .unwrap_or_else(|e| panic!("{name} #{n}: {e}"));
                let mut it = PayloadIter::new(header.next_payload, &body);
                it.by_ref().for_each(|r| assert!(r.is_ok()));
                assert_eq!(it.trailing(), padding.as_slice(), "{name} #{n}: padding");
                let mut out = Vec::new();
                emit_payloads(&payloads, &mut out);
                assert_eq!(&out, chain, "{name} #{n}: re-emitted chain");
                payloads
            } else {
                let msg = Message::parse(&bytes).unwrap_or_else(|e| panic!("{name} #{n}: {e}"));
                assert_eq!(msg.emit(), bytes, "{name} #{n}: re-emitted message");
                msg.payloads
            };
            let key = (header.exchange.name().to_string(), header.message_id);
            let list = payload_list(&payloads);
            let seen = logged
                .get(&key)
                .unwrap_or_else(|| panic!("{name} #{n}: {key:?} not in charon logs"));
            assert!(
                seen.contains(&list),
                "{name} #{n}: {list} not among {seen:?}"
            );
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} datagrams checked");
}

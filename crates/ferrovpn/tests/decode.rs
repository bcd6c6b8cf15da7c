//! `ferrovpn decode` on the real strongSwan captures of tests/data/strongswan: message names,
//! payload lists, decryption with Wireshark's IKEv1 table and ESP flows match what each
//! recording's README, messages.txt, decrypted.txt and keys.txt say.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use clap::Parser;
use ferrovpn::decode::{self, Body, Decryption, EspSaTable, Format, KeyTable, MessageName, Report};
use ferrovpn_ike::wire::{parse_payloads, payload_list, Header};
use proptest::prelude::*;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data")
}

fn recordings() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(data_dir().join("strongswan"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("capture.pcap").exists())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 7, "recordings missing: {dirs:?}");
    dirs
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn keys_txt(dir: &Path) -> HashMap<String, String> {
    fs::read_to_string(dir.join("keys.txt"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Test helper: keys.txt turned into Wireshark's `ikev1_decryption_table` format.
fn decryption_table(dir: &Path) -> String {
    let k = keys_txt(dir);
    format!("\"{}\",\"{}\"\n", k["cookie_i"], k["enc_key"])
}

fn decode_file(path: &Path, keys: Option<&KeyTable>) -> Report {
    decode::decode(&fs::read(path).unwrap(), keys).unwrap()
}

/// One line of a README's "On the wire" list.
#[derive(Debug)]
struct WireLine {
    i2r: bool,
    src: String,
    dst: String,
    exchange: String,
    mid: u32,
    payloads: String,
}

fn wire_lines(dir: &Path) -> Vec<WireLine> {
    let readme = fs::read_to_string(dir.join("README.md")).unwrap();
    readme
        .lines()
        .filter(|l| {
            l.split_once(". ").is_some_and(|(n, rest)| {
                n.parse::<u32>().is_ok() && (rest.starts_with("i2r ") || rest.starts_with("r2i "))
            })
        })
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let start = l.find('[').unwrap();
            let end = start + l[start..].find(" ]").unwrap() + 2;
            WireLine {
                i2r: f[1] == "i2r",
                src: f[2].to_string(),
                dst: f[4].to_string(),
                exchange: f[5].to_string(),
                mid: f[6].strip_prefix("mid=").unwrap().parse().unwrap(),
                // The README spells the DPD notifies out; strongSwan's log labels are shorter.
                payloads: l[start..end]
                    .replace("N(DPD_R_U_THERE_ACK)", "N(DPD_ACK)")
                    .replace("N(DPD_R_U_THERE)", "N(DPD)"),
            }
        })
        .collect()
}

/// messages.txt: the ISAKMP bytes of every datagram, in capture order.
fn wire_bytes(dir: &Path) -> Vec<Vec<u8>> {
    fs::read_to_string(dir.join("messages.txt"))
        .unwrap()
        .lines()
        .map(|l| hex(l.split_whitespace().nth(3).unwrap()))
        .collect()
}

/// The names the README's list implies: the n-th distinct message of Main Mode is MMn, of
/// Aggressive Mode AMn, of each Quick Mode (per message ID) QMn; Informational is INFO; a
/// message repeating earlier bytes is a retransmission of that one.
fn expected_names(lines: &[WireLine], bytes: &[Vec<u8>]) -> Vec<(String, bool)> {
    let mut per_exchange: HashMap<(String, u32), u8> = HashMap::new();
    let mut names: Vec<(String, bool)> = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if let Some(j) = (0..i).find(|&j| bytes[j] == bytes[i]) {
            names.push((names[j].0.clone(), true));
            continue;
        }
        let n = per_exchange.entry((l.exchange.clone(), l.mid)).or_default();
        *n += 1;
        let name = match l.exchange.as_str() {
            "ID_PROT" => format!("MM{n}"),
            "AGGRESSIVE" => format!("AM{n}"),
            "QUICK_MODE" => format!("QM{n}"),
            "INFORMATIONAL" => "INFO".to_string(),
            other => panic!("unexpected exchange {other}"),
        };
        names.push((name, false));
    }
    names
}

#[test]
fn every_recording_is_named_as_its_readme_lists_it() {
    for dir in recordings() {
        let report = decode_file(&dir.join("capture.pcap"), None);
        let lines = wire_lines(&dir);
        let bytes = wire_bytes(&dir);
        assert_eq!(lines.len(), bytes.len(), "{dir:?}");
        let expected = expected_names(&lines, &bytes);
        let messages: Vec<_> = report.messages().collect();
        assert_eq!(messages.len(), lines.len(), "{dir:?}");
        assert_eq!(
            report.records.len(),
            lines.len(),
            "nothing undecodable in {dir:?}"
        );
        for ((m, l), (name, retransmitted)) in messages.iter().zip(&lines).zip(&expected) {
            let what = format!("{dir:?} frame {}", m.frame);
            assert_eq!(&m.name.to_string(), name, "{what}");
            assert_eq!(m.retransmission_of.is_some(), *retransmitted, "{what}");
            assert_eq!(m.src.to_string(), l.src, "{what}");
            assert_eq!(m.dst.to_string(), l.dst, "{what}");
            assert_eq!(m.header.message_id, l.mid, "{what}");
            assert!(m.simultaneous_with.is_empty(), "{what}");
            // Phase 1 initiator for MM/AM; all these Quick Modes and INFOs start at one side.
            if matches!(m.name, MessageName::Main(_) | MessageName::Aggressive(_)) {
                assert_eq!(m.from_initiator, l.i2r, "{what}");
            }
            match &m.body {
                Body::Plain(p) => assert_eq!(payload_list(p), l.payloads, "{what}"),
                Body::Encrypted(d) => assert_eq!(d, &Decryption::NoKey, "{what}"),
                Body::Malformed(e) => panic!("{what}: {e}"),
            }
        }
    }
}

#[test]
fn the_aggressive_mode_recording_shows_its_retransmitted_qm1() {
    let dir = data_dir().join("strongswan/am-psk-aes256-sha256-modp2048_esp-aes128gcm16");
    let report = decode_file(&dir.join("capture.pcap"), None);
    let names: Vec<String> = report
        .messages()
        .map(|m| match m.retransmission_of {
            Some(_) => format!("{}(again)", m.name),
            None => m.name.to_string(),
        })
        .collect();
    assert_eq!(
        names,
        [
            "AM1",
            "AM2",
            "AM3",
            "QM1",
            "QM1(again)",
            "QM2",
            "QM3",
            "INFO",
            "INFO"
        ]
    );
}

#[test]
fn with_the_decryption_table_every_encrypted_message_decrypts_to_strongswans_plaintext() {
    for dir in recordings() {
        let table = KeyTable::parse(&decryption_table(&dir)).unwrap();
        let report = decode_file(&dir.join("capture.pcap"), Some(&table));
        let messages: Vec<_> = report.messages().collect();
        let lines = wire_lines(&dir);
        let bytes = wire_bytes(&dir);
        for (m, l) in messages.iter().zip(&lines) {
            let p = m
                .payloads()
                .unwrap_or_else(|| panic!("{dir:?} frame {}: {:?}", m.frame, m.body));
            assert_eq!(payload_list(p), l.payloads, "{dir:?} frame {}", m.frame);
        }
        let decrypted = fs::read_to_string(dir.join("decrypted.txt")).unwrap();
        let mut count = 0;
        for line in decrypted.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let n: usize = f[0].parse().unwrap();
            let plaintext = hex(f[5].strip_prefix("plaintext=").unwrap());
            let padding = hex(f[6].strip_prefix("padding=").unwrap());
            let header = Header::parse(&bytes[n - 1]).unwrap();
            let expected = parse_payloads(header.next_payload, &plaintext).unwrap();
            match &messages[n - 1].body {
                Body::Encrypted(Decryption::Decrypted {
                    payloads,
                    padding: pad,
                }) => {
                    assert_eq!(payloads, &expected, "{dir:?} line {n}");
                    assert_eq!(*pad, padding.len(), "{dir:?} line {n}");
                }
                other => panic!("{dir:?} line {n}: {other:?}"),
            }
            count += 1;
        }
        let encrypted = messages
            .iter()
            .filter(|m| matches!(m.body, Body::Encrypted(_)))
            .count();
        assert_eq!(count, encrypted, "{dir:?}");
        assert!(count >= 6, "{dir:?}");
    }
}

#[test]
fn a_wrong_key_is_reported_not_trusted() {
    let dir =
        data_dir().join("strongswan/mm-psk-aes128-sha1-modp2048_esp-aes128-sha256-pfs-modp2048");
    let k = keys_txt(&dir);
    let table = KeyTable::parse(&format!("{},{}", k["cookie_i"], "00".repeat(16))).unwrap();
    let report = decode_file(&dir.join("capture.pcap"), Some(&table));
    let failed = report
        .messages()
        .filter(|m| matches!(m.body, Body::Encrypted(Decryption::Failed(_))))
        .count();
    let decrypted = report
        .messages()
        .filter(|m| matches!(m.body, Body::Encrypted(Decryption::Decrypted { .. })))
        .count();
    assert!(failed >= 5, "{failed} failed");
    // Random plaintext can parse as a payload chain by chance, but not for most messages.
    assert!(decrypted <= 1, "{decrypted} decrypted with a wrong key");
}

#[test]
fn esp_is_grouped_by_spi_and_direction_without_gaps() {
    for dir in recordings() {
        let report = decode_file(&dir.join("capture.pcap"), None);
        let readme = fs::read_to_string(dir.join("README.md")).unwrap();
        let total: usize = readme
            .split("ESP-in-UDP packets: ")
            .nth(1)
            .and_then(|s| s.split(';').next())
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            report.esp.iter().map(|f| f.packets).sum::<usize>(),
            total,
            "{dir:?}"
        );
        let k = keys_txt(&dir);
        let quick_modes = k.keys().filter(|n| n.ends_with("_spi_i")).count();
        assert_eq!(report.esp.len(), 2 * quick_modes, "{dir:?}");
        for f in &report.esp {
            let spi = format!("{:08x}", f.spi);
            let qm = (1..=quick_modes)
                .find(|n| k[&format!("qm{n}_spi_i")] == spi || k[&format!("qm{n}_spi_r")] == spi)
                .unwrap_or_else(|| panic!("{dir:?}: SPI {spi} not negotiated"));
            // The responder's SPI carries initiator-to-responder traffic, and vice versa.
            let i2r = k[&format!("qm{qm}_spi_r")] == spi;
            let (from, to) = if i2r {
                ("192.0.2.1", "192.0.2.2")
            } else {
                ("192.0.2.2", "192.0.2.1")
            };
            assert_eq!(
                (f.src.to_string().as_str(), f.dst.to_string().as_str()),
                (from, to)
            );
            assert_eq!(f.udp, Some((4500, 4500)));
            assert_eq!(f.first_seq, 1, "{dir:?} {spi}");
            assert_eq!(f.last_seq as usize, f.packets, "{dir:?} {spi}");
            assert!(f.gaps().is_empty());
            assert_eq!((f.out_of_order, f.duplicates), (0, 0));
        }
    }
}

#[test]
fn a_pcapng_conversion_decodes_identically() {
    let name = "mm-psk-aes256-sha256-modp2048_esp-aes128gcm16-rekey-dpd";
    let dir = data_dir().join("strongswan").join(name);
    let table = KeyTable::parse(&decryption_table(&dir)).unwrap();
    let pcap = decode_file(&dir.join("capture.pcap"), Some(&table));
    let ng = decode_file(
        &data_dir().join(format!("decode/{name}.pcapng")),
        Some(&table),
    );
    assert_eq!(pcap.format, Format::Pcap);
    assert_eq!(ng.format, Format::Pcapng);
    assert_eq!(ng.records, pcap.records);
    assert_eq!(ng.esp, pcap.esp);
    assert_eq!(ng.frames, pcap.frames);
    let body = |r: &Report| {
        decode::render(r, true)
            .split_once('\n')
            .unwrap()
            .1
            .to_string()
    };
    assert_eq!(body(&ng), body(&pcap));
}

#[test]
fn the_command_prints_names_cookies_and_decrypted_payloads() {
    let dir = data_dir().join("strongswan/mm-psk-3des-md5-modp1024_esp-aes128-sha256");
    let keys = std::env::temp_dir().join(format!("ferrovpn-decode-{}.keys", std::process::id()));
    fs::write(&keys, decryption_table(&dir)).unwrap();
    let cli = ferrovpn::cli::Cli::try_parse_from([
        "ferrovpn".as_ref(),
        "decode".as_ref(),
        dir.join("capture.pcap").as_os_str(),
        "--keys".as_ref(),
        keys.as_os_str(),
        "-v".as_ref(),
    ])
    .unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(ferrovpn::cli::run(cli, &mut out, &mut err), 0);
    fs::remove_file(&keys).unwrap();
    let out = String::from_utf8(out).unwrap();
    let k = keys_txt(&dir);
    let mm5 = out.lines().find(|l| l.contains(" MM5 ")).unwrap();
    assert!(
        mm5.contains(&format!("{} {}", k["cookie_i"], k["cookie_r"])),
        "{mm5}"
    );
    assert!(
        mm5.ends_with("[ ID HASH N(INITIAL_CONTACT) ] (decrypted)"),
        "{mm5}"
    );
    assert!(
        out.contains("    ID ID_IPV4_ADDR 192.0.2.1 protocol=0 port=0"),
        "{out}"
    );
    assert!(
        out.contains(&format!("    D protocol=ESP spis={}", k["qm1_spi_i"])),
        "{out}"
    );
    assert!(
        out.contains(
            "    SA doi=1 situation=1; P#1 ISAKMP spi=- T#1 id=1 \
(enc=5 hash=1 group=2 auth=1 life_type=1 life=15840)"
        ),
        "{out}"
    );
    assert!(
        out.contains("T#1 id=12 (key_len=128 auth=5 encap=3 life_type=1 life=3960)"),
        "{out}"
    );
    assert!(!out.contains(&k["enc_key"]), "the key is never printed");

    let cli =
        ferrovpn::cli::Cli::try_parse_from(["ferrovpn", "decode", "/nonexistent.pcap"]).unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(ferrovpn::cli::run(cli, &mut out, &mut err), 1);
    assert!(String::from_utf8(err)
        .unwrap()
        .contains("/nonexistent.pcap"));
}

// --- synthetic captures: simultaneous negotiations, retransmissions, other link layers ---

fn pcap_file(link_type: u32, frames: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&link_type.to_le_bytes());
    for (secs, data) in frames {
        f.extend_from_slice(&secs.to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&(data.len() as u32).to_le_bytes());
        f.extend_from_slice(&(data.len() as u32).to_le_bytes());
        f.extend_from_slice(data);
    }
    f
}

/// IPv6/UDP in a Linux cooked (SLL2) header.
fn sll2_udp6(src: u8, dst: u8, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x86, 0xdd];
    p.extend_from_slice(&[0; 18]);
    p.extend_from_slice(&[0x60, 0, 0, 0]);
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[17, 64]);
    for last in [src, dst] {
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        p.extend_from_slice(&[0; 11]);
        p.push(last);
    }
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

fn with_cookies(mm1: &[u8], cookie_i: u8, cookie_r: u8) -> Vec<u8> {
    let mut m = mm1.to_vec();
    m[..8].fill(cookie_i);
    m[8..16].fill(cookie_r);
    m
}

#[test]
fn two_cookie_pairs_in_flight_between_the_same_peers_are_simultaneous() {
    let dir = data_dir().join("strongswan/mm-psk-aes256-sha256-modp2048_esp-aes128gcm16");
    let bytes = wire_bytes(&dir);
    let (mm1, mm2) = (&bytes[0], &bytes[1]);
    let a = with_cookies(mm1, 0xaa, 0);
    let b = with_cookies(mm1, 0xbb, 0);
    let capture = pcap_file(
        276,
        &[
            (100, sll2_udp6(1, 2, 500, 500, &a)),
            (104, sll2_udp6(1, 2, 500, 500, &a)),
            (105, sll2_udp6(1, 2, 500, 500, &b)),
            (
                106,
                sll2_udp6(2, 1, 500, 500, &with_cookies(mm2, 0xbb, 0xcc)),
            ),
            // Another peer: not simultaneous with the two above.
            (107, sll2_udp6(3, 2, 500, 500, &with_cookies(mm1, 0xdd, 0))),
        ],
    );
    let report = decode::decode(&capture, None).unwrap();
    let m: Vec<_> = report.messages().collect();
    assert_eq!(m.len(), 5);
    let names: Vec<String> = m.iter().map(|m| m.name.to_string()).collect();
    assert_eq!(names, ["MM1", "MM1", "MM1", "MM2", "MM1"]);
    assert_eq!(m[1].retransmission_of, Some(1));
    assert!(m[0].simultaneous_with.is_empty());
    assert!(m[1].simultaneous_with.is_empty());
    assert_eq!(m[2].simultaneous_with, vec![[0xaa; 8]]);
    assert_eq!(m[3].simultaneous_with, vec![[0xaa; 8]]);
    assert!(m[4].simultaneous_with.is_empty());
    assert_eq!(m[0].src.to_string(), "[2001:db8::1]:500");
    let text = decode::render(&report, false);
    assert!(
        text.contains("! simultaneous with aaaaaaaaaaaaaaaa"),
        "{text}"
    );
    assert!(text.contains("(retransmission of frame 1)"), "{text}");
    assert!(text.contains("Linux cooked (SLL2)"), "{text}");
}

#[test]
fn a_negotiation_silent_for_minutes_is_no_longer_in_flight() {
    let dir = data_dir().join("strongswan/mm-psk-aes256-sha256-modp2048_esp-aes128gcm16");
    let mm1 = &wire_bytes(&dir)[0];
    let capture = pcap_file(
        276,
        &[
            (100, sll2_udp6(1, 2, 500, 500, &with_cookies(mm1, 0xaa, 0))),
            (400, sll2_udp6(1, 2, 500, 500, &with_cookies(mm1, 0xbb, 0))),
        ],
    );
    let report = decode::decode(&capture, None).unwrap();
    assert!(report.messages().all(|m| m.simultaneous_with.is_empty()));
}

#[test]
fn garbage_and_captures_cut_inside_their_header_are_errors_and_later_cuts_are_reports() {
    let real = fs::read(
        data_dir().join("strongswan/mm-psk-aes256-sha256-modp2048_esp-aes128gcm16/capture.pcap"),
    )
    .unwrap();
    for cut in [0, 3, 4, 23] {
        assert!(decode::decode(&real[..cut], None).is_err(), "cut at {cut}");
    }
    for cut in [24 + 7, 24 + 16 + 5, real.len() - 1] {
        let report = decode::decode(&real[..cut], None).unwrap();
        assert!(
            report.stopped.as_ref().is_some_and(|e| e.is_cut_short()),
            "cut at {cut}: {:?}",
            report.stopped
        );
    }
    assert!(decode::decode(b"this is not a capture file", None).is_err());
    // Every prefix: an error or a report, never a panic.
    for cut in (0..real.len()).step_by(13) {
        let _ = decode::decode(&real[..cut], None);
    }
}

/// A file of its own under the temporary directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &[u8]) -> TempFile {
        let dir = std::env::temp_dir().join(format!(
            "ferrovpn-decode-test-{}-{}",
            std::process::id(),
            name.replace('/', "_")
        ));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        fs::write(&path, contents).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// `ferrovpn decode` as the command runs it: (exit status, stdout, stderr).
fn run_decode(file: &Path, keys: &[PathBuf]) -> (i32, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = decode::run(file, keys, false, &mut out, &mut err);
    (
        status,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn a_capture_whose_last_record_is_cut_short_prints_every_frame_before_it_then_warns() {
    let dir = data_dir().join("interop/fv-main-gcm");
    let full = fs::read(dir.join("capture.pcap")).unwrap();
    let whole = decode::decode(&full, None).unwrap();
    assert!(whole.stopped.is_none());
    // What tcpdump leaves when killed in the middle of writing its last record.
    let cut = TempFile::new("capture.pcap", &full[..full.len() - 5]);
    let (status, out, err) = run_decode(&cut.0, std::slice::from_ref(&dir));
    assert_eq!(status, 0, "{err}");
    let report = decode::decode(&fs::read(&cut.0).unwrap(), None).unwrap();
    assert_eq!(report.frames, whole.frames - 1);
    let last = whole.frames;
    let frame_of = |r: &decode::Record| match r {
        decode::Record::Message(m) => m.frame,
        decode::Record::Undecodable(u) => u.frame,
    };
    let before: Vec<_> = whole
        .records
        .iter()
        .filter(|r| frame_of(r) < last)
        .cloned()
        .collect();
    assert_eq!(report.records, before);
    for name in ["MM1", "MM6", "QM1", "QM3"] {
        assert!(out.contains(&format!("{name} ")), "{name} missing:\n{out}");
    }
    assert!(out.contains("  decrypted "), "{out}");
    assert!(
        out.trim_end().ends_with(&format!(
            "the {} frames before it are decoded",
            whole.frames - 1
        )),
        "{out}"
    );
    assert!(
        err.contains("warning:")
            && err.contains("capture.pcap: capture truncated at byte")
            && err.contains(&format!("(frame {last})")),
        "{err}"
    );
}

#[test]
fn a_capture_damaged_in_the_middle_prints_the_frames_before_and_fails() {
    let dir = data_dir().join("interop/fv-main-gcm");
    let mut bytes = fs::read(dir.join("capture.pcap")).unwrap();
    let whole = decode::decode(&bytes, None).unwrap();
    // MM3's record gets a captured length far beyond any snap length.
    let mm3 = whole
        .messages()
        .find(|m| m.name == MessageName::Main(3))
        .unwrap()
        .frame;
    let mut at = 24;
    for _ in 1..mm3 {
        let incl = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16 + incl;
    }
    bytes[at + 8..at + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    let damaged = TempFile::new("damaged.pcap", &bytes);
    let (status, out, err) = run_decode(&damaged.0, &[]);
    assert_eq!(status, 1, "{err}");
    assert!(out.contains("MM1 ") && out.contains("MM2 "), "{out}");
    assert!(!out.contains("MM3 "), "{out}");
    assert!(
        err.contains(&format!("bad record length at byte {at}")),
        "{err}"
    );
    assert!(
        out.contains(&format!("the {} frames before it", mm3 - 1)),
        "{out}"
    );
}

#[test]
fn unusable_key_lines_are_named_with_why_and_the_good_lines_still_decrypt() {
    let dir = data_dir().join("interop/fv-main-gcm");
    let esp = fs::read_to_string(dir.join("esp_sa")).unwrap();
    let good: Vec<&str> = esp.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(good.len(), 2, "{esp}");
    let swapped = good[1]
        .replacen("192.0.2.2", "X", 1)
        .replacen("192.0.2.1", "192.0.2.2", 1)
        .replacen("X", "192.0.2.1", 1);
    assert_ne!(swapped, good[1]);
    let esp_lines = [
        good[0].to_string(),
        "not a table line".to_string(),
        good[0].replace(
            "AES-GCM with 16 octet ICV [RFC4106]",
            "TripleDES-CBC [RFC2451]",
        ),
        good[0].replacen("\",\"NULL\"", "00\",\"NULL\"", 1),
        good[0].replacen("192.0.2.1", "2001:db8::1", 1),
        swapped,
    ]
    .join("\n");
    let esp_file = TempFile::new("esp_sa", esp_lines.as_bytes());
    let ike = fs::read_to_string(dir.join("ikev1_decryption_table")).unwrap();
    let ike_file = TempFile::new(
        "ikev1_decryption_table",
        format!("\"0011\",\"00\"\n{ike}").as_bytes(),
    );
    let (status, out, err) = run_decode(
        &dir.join("capture.pcap"),
        &[ike_file.0.clone(), esp_file.0.clone()],
    );
    assert_eq!(status, 0, "{err}");
    let esp_name = esp_file.0.display().to_string();
    let ike_name = ike_file.0.display().to_string();
    for (file, line, why) in [
        (&ike_name, 1, "the initiator cookie must be 16 hex digits"),
        (&esp_name, 2, "expected 8 quoted fields"),
        (&esp_name, 3, "encryption 'TripleDES-CBC [RFC2451]'"),
        (
            &esp_name,
            4,
            "the key length does not fit AES-GCM with 16 octet ICV",
        ),
        (&esp_name, 5, "address 2001:db8::1 is not an IPv4 address"),
    ] {
        let want = format!("warning: {file}: line {line}: {why}");
        assert!(err.contains(&want), "no '{want}' in:\n{err}");
    }
    assert!(
        err.contains(&format!("warning: {esp_name}: line 6: SPI "))
            && err.contains("its packets are not decrypted"),
        "{err}"
    );
    // The good lines still work: phase 1 and one ESP direction decrypt.
    assert!(!out.contains("[ encrypted ]"), "{out}");
    assert_eq!(out.matches("  decrypted ").count(), 1, "{out}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode::decode(&bytes, None);
        let mut with_magic = 0xa1b2c3d4u32.to_le_bytes().to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = decode::decode(&with_magic, None);
        let mut ng = 0x0a0d0d0au32.to_be_bytes().to_vec();
        ng.extend_from_slice(&bytes);
        let _ = decode::decode(&ng, None);
    }

    #[test]
    fn corrupted_real_captures_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        which in 0usize..7,
    ) {
        let dir = recordings()[which].clone();
        let table = KeyTable::parse(&decryption_table(&dir)).unwrap();
        let mut capture = fs::read(dir.join("capture.pcap")).unwrap();
        for (at, value) in flips {
            let i = at.index(capture.len());
            capture[i] = value;
        }
        if let Ok(report) = decode::decode(&capture, Some(&table)) {
            let _ = decode::render(&report, true);
        }
    }
}

/// IPv4 in LINKTYPE_RAW: protocol 50 (ESP) or 17 (UDP, `payload` already with its header).
fn raw_ip4(protocol: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, protocol, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
    ];
    p[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(payload);
    p
}

#[test]
fn esp_over_ip_protocol_50_shows_missing_and_reordered_sequence_numbers() {
    let esp = |seq: u32| {
        let mut p = 0x0102_0304u32.to_be_bytes().to_vec();
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0xee; 32]);
        raw_ip4(50, &p)
    };
    let mut ikev2 = vec![0x11; 8];
    ikev2.extend_from_slice(&[0; 8]);
    ikev2.extend_from_slice(&[33, 0x20, 34, 8, 0, 0, 0, 0, 0, 0, 0, 28]);
    let mut udp = 500u16.to_be_bytes().to_vec();
    udp.extend_from_slice(&500u16.to_be_bytes());
    udp.extend_from_slice(&((8 + ikev2.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&ikev2);
    let frames: Vec<(u32, Vec<u8>)> = [1, 2, 5, 4, 9]
        .into_iter()
        .map(|s| (10, esp(s)))
        .chain([(11, raw_ip4(17, &udp))])
        .collect();
    let report = decode::decode(&pcap_file(101, &frames), None).unwrap();
    assert_eq!(report.esp.len(), 1);
    let f = &report.esp[0];
    assert_eq!(
        (f.spi, f.packets, f.first_seq, f.last_seq),
        (0x0102_0304, 5, 1, 9)
    );
    assert_eq!(f.udp, None);
    assert_eq!(f.gaps(), vec![(3, 3), (6, 8)]);
    assert_eq!(f.out_of_order, 1);
    assert!(matches!(
        &report.records[..],
        [decode::Record::Undecodable(u)] if u.reason.contains("IKEv2")
    ));
    let text = decode::render(&report, false);
    assert!(
        text.contains("SPI 01020304 192.0.2.1 -> 192.0.2.2 (IP protocol 50): 5 packets"),
        "{text}"
    );
    assert!(text.contains("4 missing: 3, 6-8, 1 out of order"), "{text}");
}

/// Test helper: the Quick Mode keys of keys.txt as Wireshark's `esp_sa` table, both directions
/// of every negotiated pair (the responder's SPI carries initiator-to-responder traffic).
fn esp_sa_table(dir: &Path) -> String {
    let k = keys_txt(dir);
    let name = dir.file_name().unwrap().to_str().unwrap();
    let esp = name.split("_esp-").nth(1).unwrap();
    let (enc, auth) = if esp.contains("gcm16") {
        (decode::esp_sa::AES_GCM_16, decode::esp_sa::AUTH_NULL)
    } else if esp.starts_with("aes128-sha256") {
        (decode::esp_sa::AES_CBC, decode::esp_sa::HMAC_SHA256_128)
    } else {
        panic!("{name}: ESP transform not mapped in this test")
    };
    let mut t = String::new();
    for n in (1..).take_while(|n| k.contains_key(&format!("qm{n}_spi_i"))) {
        for (src, dst, spi, dir) in [
            ("192.0.2.1", "192.0.2.2", "spi_r", "i2r"),
            ("192.0.2.2", "192.0.2.1", "spi_i", "r2i"),
        ] {
            let integ = k
                .get(&format!("qm{n}_integ_{dir}"))
                .map(|x| format!("0x{x}"))
                .unwrap_or_default();
            t += &format!(
                "\"IPv4\",\"{src}\",\"{dst}\",\"0x{}\",\"{enc}\",\"0x{}\",\"{auth}\",\"{integ}\"\n",
                k[&format!("qm{n}_{spi}")],
                k[&format!("qm{n}_encr_{dir}")]
            );
        }
    }
    t
}

#[test]
fn with_the_esp_sa_table_every_esp_packet_of_the_recordings_decrypts_to_the_pings() {
    for dir in recordings() {
        let esp = EspSaTable::parse(&esp_sa_table(&dir)).unwrap();
        let bytes = fs::read(dir.join("capture.pcap")).unwrap();
        let report = decode::decode_with(&bytes, None, Some(&esp)).unwrap();
        assert!(!report.esp.is_empty(), "{dir:?}");
        for f in &report.esp {
            let d = f
                .decryption
                .as_ref()
                .unwrap_or_else(|| panic!("{dir:?}: {:08x} not looked up", f.spi));
            assert_eq!(
                (d.decrypted, d.failed, d.not_ip),
                (f.packets, 0, 0),
                "{dir:?} {:08x}",
                f.spi
            );
            let (src, dst) = if f.src.to_string() == "192.0.2.1" {
                ("198.51.100.1", "203.0.113.1")
            } else {
                ("203.0.113.1", "198.51.100.1")
            };
            assert!(
                d.inner
                    .iter()
                    .all(|i| i.src.to_string() == src && i.dst.to_string() == dst),
                "{dir:?}: {:?}",
                d.inner
            );
            assert_eq!(
                d.inner.iter().map(|i| i.packets).sum::<usize>() + d.dummies,
                f.packets
            );
        }
    }
}

#[test]
fn a_wrong_esp_key_counts_failures_and_never_trusts_the_packet() {
    let dir = recordings()
        .into_iter()
        .find(|d| d.to_str().unwrap().contains("gcm16"))
        .unwrap();
    let table = esp_sa_table(&dir);
    // Flip one key digit in every line.
    let wrong: String = table
        .lines()
        .map(|l| {
            let mut f: Vec<String> = l.split("\",\"").map(str::to_string).collect();
            let flipped = if f[5].as_bytes()[2] == b'0' { "1" } else { "0" };
            f[5].replace_range(2..3, flipped);
            f.join("\",\"") + "\n"
        })
        .collect();
    let esp = EspSaTable::parse(&wrong).unwrap();
    let report = decode::decode_with(
        &fs::read(dir.join("capture.pcap")).unwrap(),
        None,
        Some(&esp),
    )
    .unwrap();
    for f in &report.esp {
        let d = f.decryption.as_ref().unwrap();
        assert_eq!((d.decrypted, d.failed), (0, f.packets));
        assert!(d.inner.is_empty());
    }
    let text = decode::render(&report, false);
    assert!(text.contains("decrypted 0 of"), "{text}");
    assert!(text.contains("failed (wrong key or corrupted)"), "{text}");
}

/// An ESP packet (RFC 4303 §2) carrying `inner` in tunnel mode, sealed with the data plane's
/// own cipher.
fn sealed_esp(crypto: &ferrovpn_esp::EspCrypto, spi: u32, seq: u32, inner: &[u8]) -> Vec<u8> {
    let mut p = spi.to_be_bytes().to_vec();
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&u64::from(seq).to_be_bytes());
    p.extend_from_slice(inner);
    let pad = crypto.pad_len(inner.len());
    p.extend((1..=pad as u8).collect::<Vec<u8>>());
    p.extend_from_slice(&[pad as u8, ferrovpn_esp::NEXT_HEADER_IPV4]);
    p.extend_from_slice(&vec![0; crypto.icv_len()]);
    crypto.seal(&mut p, None).unwrap();
    p
}

#[test]
fn raw_esp_with_aes_gcm_16_decrypts_to_the_inner_packets_and_bad_ones_are_counted() {
    let key = [0x5a; 20];
    let table = format!(
        "\"IPv4\",\"192.0.2.1\",\"192.0.2.2\",\"0x0000c0de\",\"{}\",\"0x{}\",\"NULL\",\"\"\n",
        decode::esp_sa::AES_GCM_16,
        "5a".repeat(20)
    );
    let esp_table = EspSaTable::parse(&table).unwrap();
    let crypto = ferrovpn_esp::EspCrypto::new(
        ferrovpn_esp::Cipher::AesGcm {
            key: ferrovpn_esp::AesKeyLen::Aes128,
            icv: ferrovpn_esp::GcmIcv::Icv16,
        },
        &ferrovpn_esp::SecretKey::new(&key),
        &ferrovpn_esp::SecretKey::empty(),
    )
    .unwrap();
    let inner = |proto: u8, dst: u8| {
        let mut p = vec![
            0x45, 0, 0, 48, 0, 0, 0, 0, 64, proto, 0, 0, 198, 51, 100, 1, 203, 0, 113, dst,
        ];
        p.extend_from_slice(&[0xab; 28]);
        p
    };
    let mut frames: Vec<(u32, Vec<u8>)> = (1..=3)
        .map(|s| {
            (
                10,
                raw_ip4(50, &sealed_esp(&crypto, 0xc0de, s, &inner(1, 1))),
            )
        })
        .collect();
    frames.push((
        10,
        raw_ip4(50, &sealed_esp(&crypto, 0xc0de, 4, &inner(6, 7))),
    ));
    let mut corrupted = sealed_esp(&crypto, 0xc0de, 5, &inner(1, 1));
    let last = corrupted.len() - 1;
    corrupted[last] ^= 1;
    frames.push((10, raw_ip4(50, &corrupted)));
    frames.push((10, raw_ip4(50, &[0, 0, 0xc0, 0xde, 0, 0, 0, 6, 1, 2])));
    let report = decode::decode_with(&pcap_file(101, &frames), None, Some(&esp_table)).unwrap();
    assert_eq!(report.esp.len(), 1);
    let f = &report.esp[0];
    assert_eq!((f.udp, f.packets), (None, 6));
    let d = f.decryption.as_ref().unwrap();
    assert_eq!((d.cipher, d.decrypted, d.failed), ("aes128gcm16", 4, 2));
    let inner_flows: Vec<String> = d
        .inner
        .iter()
        .map(|i| format!("{} {} {} {}", i.src, i.dst, i.protocol, i.packets))
        .collect();
    assert_eq!(
        inner_flows,
        [
            "198.51.100.1 203.0.113.1 1 3",
            "198.51.100.1 203.0.113.7 6 1"
        ]
    );
    let text = decode::render(&report, false);
    assert!(
        text.contains("  decrypted 4 of 6 (aes128gcm16), 2 failed"),
        "{text}"
    );
    assert!(
        text.contains("    inner 198.51.100.1 -> 203.0.113.1 ICMP: 3 packets, 144 bytes"),
        "{text}"
    );
    assert!(
        text.contains("    inner 198.51.100.1 -> 203.0.113.7 TCP: 1 packet, 48 bytes"),
        "{text}"
    );
    // ESP-in-UDP as a packet socket on a sender using UDP GSO sees it: two datagrams in one.
    let run = [
        sealed_esp(&crypto, 0xc0de, 1, &inner(1, 1)),
        sealed_esp(&crypto, 0xc0de, 2, &inner(1, 1)),
    ]
    .concat();
    let mut udp = [4500u16.to_be_bytes(), 4500u16.to_be_bytes()].concat();
    udp.extend_from_slice(&((8 + run.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&run);
    let report = decode::decode_with(
        &pcap_file(101, &[(10, raw_ip4(17, &udp))]),
        None,
        Some(&esp_table),
    )
    .unwrap();
    assert_eq!(report.gso_super_packets, 1);
    let f = &report.esp[0];
    assert_eq!(
        (f.udp, f.packets, f.first_seq, f.last_seq),
        (Some((4500, 4500)), 2, 1, 2)
    );
    assert_eq!(
        f.decryption.as_ref().map(|d| (d.decrypted, d.failed)),
        Some((2, 0))
    );
    assert!(decode::render(&report, false).contains("1 UDP GSO super-packet split"));
}

/// The interop captures of tests/data/interop: ferrovpn against strongSwan, with the key files
/// ferrovpn's key export wrote during the same run.
fn interop_captures() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(data_dir().join("interop"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("capture.pcap").exists())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 2, "interop captures missing: {dirs:?}");
    dirs
}

#[test]
fn the_interop_captures_decrypt_with_the_keys_ferrovpn_exported() {
    let mut modes = Vec::new();
    for dir in interop_captures() {
        let mut keys = decode::Keys::default();
        keys.load(&dir).unwrap();
        let table = fs::read_to_string(dir.join("ikev1_decryption_table")).unwrap();
        let cookie = table
            .lines()
            .next()
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .to_string();
        let bytes = fs::read(dir.join("capture.pcap")).unwrap();
        let report = decode::decode_with(&bytes, keys.ike.as_ref(), keys.esp.as_ref()).unwrap();
        let ours: Vec<_> = report
            .messages()
            .filter(|m| hex16(&m.header.initiator_spi) == cookie)
            .collect();
        let names: BTreeSet<String> = ours.iter().map(|m| m.name.to_string()).collect();
        let phase1: &[&str] = if dir.to_str().unwrap().contains("aggressive") {
            modes.push("aggressive");
            &["AM1", "AM2", "AM3"]
        } else {
            modes.push("main");
            &["MM1", "MM2", "MM3", "MM4", "MM5", "MM6"]
        };
        for n in phase1.iter().chain(&["QM1", "QM2", "QM3"]) {
            assert!(
                names.contains(*n),
                "{dir:?}: no {n} with cookie {cookie}: {names:?}"
            );
        }
        for m in report.messages() {
            if let Body::Encrypted(d) = &m.body {
                assert!(
                    matches!(d, Decryption::Decrypted { .. }),
                    "{dir:?} frame {}: {d:?}",
                    m.frame
                );
            }
        }
        assert!(
            ours.iter()
                .filter(|m| matches!(m.body, Body::Encrypted(_)))
                .count()
                >= 3
        );
        assert_eq!(report.esp.len(), 2, "{dir:?}");
        for f in &report.esp {
            let d = f.decryption.as_ref().unwrap();
            assert_eq!((d.decrypted, d.failed), (f.packets, 0), "{dir:?}");
            assert!(d.decrypted >= 3);
            let icmp: Vec<_> = d.inner.iter().filter(|i| i.protocol == 1).collect();
            assert_eq!(icmp.len(), 1, "{dir:?}: {:?}", d.inner);
            assert!(["198.51.100.1", "203.0.113.1"].contains(&icmp[0].src.to_string().as_str()));
        }
        // The command itself, given the directory.
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let status = decode::run(
            &dir.join("capture.pcap"),
            std::slice::from_ref(&dir),
            false,
            &mut out,
            &mut err,
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(status, 0, "{}", String::from_utf8_lossy(&err));
        assert!(text.contains(&format!(" {cookie} ")), "{text}");
        assert!(!text.contains("[ encrypted ]"), "{text}");
        assert_eq!(text.matches("  decrypted ").count(), 2, "{text}");
        assert!(
            text.contains("inner 198.51.100.1 -> 203.0.113.1 ICMP"),
            "{text}"
        );
    }
    modes.sort();
    assert_eq!(modes, ["aggressive", "main"]);
}

fn hex16(b: &[u8; 8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A plaintext ISAKMP message (RFC 2408 §3.1) with one Vendor ID payload carrying `tag`, so
/// each message has bytes of its own (no retransmission).
fn isakmp_with_vid(exchange: u8, message_id: u32, tag: u32) -> Vec<u8> {
    let mut m = vec![0x11; 8];
    m.extend_from_slice(&[0x22; 8]);
    m.extend_from_slice(&[13, 0x10, exchange, 0]);
    m.extend_from_slice(&message_id.to_be_bytes());
    m.extend_from_slice(&(28u32 + 8).to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 8]);
    m.extend_from_slice(&tag.to_be_bytes());
    m
}

#[test]
fn three_hundred_messages_under_one_cookie_pair_or_message_id_are_counted_on() {
    for (exchange, message_id, prefix) in [(2u8, 0u32, "MM"), (32, 0x0102_0304, "QM")] {
        let frames: Vec<(u32, Vec<u8>)> = (0..300u32)
            .map(|i| {
                let m = isakmp_with_vid(exchange, message_id, i);
                // Initiator (::1) and responder (::2) take turns.
                let (a, b) = if i % 2 == 0 { (1, 2) } else { (2, 1) };
                (100, sll2_udp6(a, b, 500, 500, &m))
            })
            .collect();
        let report = decode::decode(&pcap_file(276, &frames), None).unwrap();
        let names: Vec<String> = report.messages().map(|m| m.name.to_string()).collect();
        assert_eq!(names.len(), 300);
        for (i, name) in names.iter().enumerate() {
            assert_eq!(*name, format!("{prefix}{}", i + 1));
        }
        let m = report.messages().last().unwrap();
        assert!(!m.from_initiator);
        assert!(m.retransmission_of.is_none());
    }
}

#[test]
fn a_fragmented_mm5_is_reassembled_decrypted_and_named_and_fragments_do_not_count_as_messages() {
    let dir = data_dir().join("strongswan/mm-psk-aes256-sha256-modp2048_esp-aes128gcm16");
    let bytes = wire_bytes(&dir);
    let table = KeyTable::parse(&decryption_table(&dir)).unwrap();
    let whole = decode_file(&dir.join("capture.pcap"), Some(&table));
    let mm5_whole = whole
        .messages()
        .nth(4)
        .unwrap()
        .payloads()
        .unwrap()
        .to_vec();
    let pieces = ferrovpn_ike::fragment::split(&bytes[4], 60).unwrap();
    assert!(pieces.len() >= 3, "{}", pieces.len());
    let from = |i: usize| if i & 1 == 0 { (1, 2) } else { (2, 1) };
    let mut frames = Vec::new();
    for (i, m) in bytes.iter().enumerate().take(4) {
        let (s, d) = from(i);
        frames.push((100 + i as u32, sll2_udp6(s, d, 500, 500, m)));
    }
    // Out of order (the second piece first, and twice).
    let mut order: Vec<usize> = (0..pieces.len()).collect();
    order.swap(0, 1);
    order.insert(1, 1);
    for k in &order {
        frames.push((110, sll2_udp6(1, 2, 500, 500, &pieces[*k])));
    }
    frames.push((111, sll2_udp6(2, 1, 500, 500, &bytes[5])));
    let report = decode::decode(&pcap_file(276, &frames), Some(&table)).unwrap();
    let m: Vec<_> = report.messages().collect();
    let names: Vec<String> = m.iter().map(|m| m.name.to_string()).collect();
    let mut expected: Vec<String> = ["MM1", "MM2", "MM3", "MM4"].map(String::from).to_vec();
    expected.extend(order.iter().map(|_| "FRAG".to_string()));
    expected.extend(["MM5", "MM6"].map(String::from));
    assert_eq!(names, expected);
    let mm5 = m[4 + order.len()];
    let piece_frames: Vec<usize> = (5..5 + order.len()).filter(|f| *f != 6).collect();
    assert_eq!(mm5.reassembled_from, piece_frames);
    assert_eq!(mm5.payloads().unwrap(), mm5_whole.as_slice());
    assert_eq!(m[5].retransmission_of, Some(5), "the piece sent twice");
    assert!(matches!(
        m.last().unwrap().body,
        Body::Encrypted(Decryption::Decrypted { .. })
    ));
    let text = decode::render(&report, false);
    assert!(text.contains("FRAG id=1 number=2 "), "{text}");
    assert!(
        text.contains(&format!(
            "(reassembled from fragments in frames {})",
            piece_frames
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )),
        "{text}"
    );
}

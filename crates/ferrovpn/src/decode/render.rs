//! Text output of `ferrovpn decode`: one line per ISAKMP message in the style of strongSwan's
//! logs (`[ SA V V ]`), payload details with -v, then the ESP flows.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use ferrovpn_ike::wire::{vendor_id, AttributeValue, Flags, Payload, ProtocolId};

use super::capture::{CaptureError, Timestamp};
use super::isakmp::{Body, Decryption, IsakmpMessage, MessageName, Record};
use super::keys::hex;
use super::report::Report;

/// Most days a capture timestamp can be after the epoch (`u64::MAX` seconds).
const MAX_DAYS: i64 = (u64::MAX / 86_400) as i64;

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian calendar (H. Hinnant's
/// `civil_from_days`).
// With days clamped to [0, MAX_DAYS] (< 2^48), every intermediate below stays under 2^58 and
// every divisor is a nonzero constant: no operation can overflow.
#[allow(clippy::arithmetic_side_effects)]
fn civil_date(days: i64) -> (i64, u32, u32) {
    let z = days.clamp(0, MAX_DAYS) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn date(t: &Timestamp) -> String {
    let days = i64::try_from(t.secs / 86_400).unwrap_or(0);
    let (y, m, d) = civil_date(days);
    format!("{y:04}-{m:02}-{d:02}")
}

fn time_of_day(t: &Timestamp) -> String {
    let s = t.secs % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        t.nanos / 1000
    )
}

fn link_name(t: u16) -> String {
    match t {
        0 => "BSD loopback".into(),
        1 => "Ethernet".into(),
        12 | 14 | 101 => "raw IP".into(),
        113 => "Linux cooked (SLL)".into(),
        228 => "raw IPv4".into(),
        229 => "raw IPv6".into(),
        276 => "Linux cooked (SLL2)".into(),
        t => format!("link type {t} (not decoded)"),
    }
}

fn flags(f: Flags) -> String {
    let mut s = String::new();
    for (bit, c) in [
        (Flags::ENCRYPTION, 'E'),
        (Flags::COMMIT, 'C'),
        (Flags::AUTH_ONLY, 'A'),
    ] {
        if f.contains(bit) {
            s.push(c);
        }
    }
    if s.is_empty() {
        s.push('-');
    }
    s
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The whole report as text; `verbose` adds one line per payload.
pub fn render(report: &Report, verbose: bool) -> String {
    let mut out = String::new();
    let links: Vec<String> = report.link_types.iter().map(|t| link_name(*t)).collect();
    let first = report.messages().map(|m| m.time).next();
    let _ = writeln!(
        out,
        "{} capture, {}{}{}",
        report.format,
        plural(report.frames, "frame", "frames"),
        if links.is_empty() {
            String::new()
        } else {
            format!(" ({})", links.join(", "))
        },
        first.map_or(String::new(), |t| format!(", times UTC from {}", date(&t))),
    );

    let messages: Vec<&IsakmpMessage> = report.messages().collect();
    let sas: BTreeSet<[u8; 8]> = messages.iter().map(|m| m.header.initiator_spi).collect();
    let _ = writeln!(
        out,
        "\nISAKMP: {}, {}",
        plural(messages.len(), "message", "messages"),
        plural(sas.len(), "IKE SA", "IKE SAs")
    );
    for r in &report.records {
        match r {
            Record::Message(m) => message(&mut out, m, verbose),
            Record::Undecodable(u) => {
                let _ = writeln!(
                    out,
                    "{} ?    {} -> {} {}",
                    time_of_day(&u.time),
                    u.src,
                    u.dst,
                    u.reason
                );
            }
        }
    }
    simultaneous(&mut out, &messages);
    esp(&mut out, report, &messages);
    let mut notes = Vec::new();
    if report.keepalives > 0 {
        notes.push(plural(
            report.keepalives,
            "NAT-T keepalive",
            "NAT-T keepalives",
        ));
    }
    if report.gso_super_packets > 0 {
        notes.push(format!(
            "{} split into their ESP packets (captured on the sending host)",
            plural(
                report.gso_super_packets,
                "UDP GSO super-packet",
                "UDP GSO super-packets"
            )
        ));
    }
    if report.fragments > 0 {
        notes.push(format!(
            "{} (not reassembled)",
            plural(report.fragments, "IP fragment", "IP fragments")
        ));
    }
    if report.truncated > 0 {
        notes.push(plural(
            report.truncated,
            "truncated or malformed packet",
            "truncated or malformed packets",
        ));
    }
    if !notes.is_empty() {
        let _ = writeln!(out, "\nAlso: {}", notes.join(", "));
    }
    if let Some(e) = &report.stopped {
        let _ = writeln!(out, "\n! {}", stopped_note(e, report.frames));
    }
    out
}

/// Why the capture was not read to its end, and what that means for the report.
pub fn stopped_note(e: &CaptureError, frames: usize) -> String {
    let before = plural(frames, "frame", "frames");
    if e.is_cut_short() {
        format!(
            "{e}: the last record is incomplete (as a killed tcpdump leaves it); the {before} \
             before it are decoded"
        )
    } else {
        format!("{e}: the {before} before it are decoded, the rest of the file is not")
    }
}

fn message(out: &mut String, m: &IsakmpMessage, verbose: bool) {
    let h = &m.header;
    let payloads = match &m.body {
        Body::Plain(p) if m.name == MessageName::Fragment => {
            p.iter().map(detail).collect::<Vec<_>>().join(", ")
        }
        Body::Plain(p) => ferrovpn_ike::wire::payload_list(p),
        Body::Encrypted(Decryption::Decrypted { payloads, .. }) => {
            format!("{} (decrypted)", ferrovpn_ike::wire::payload_list(payloads))
        }
        Body::Encrypted(Decryption::NoKey) => "[ encrypted ]".into(),
        Body::Encrypted(Decryption::Failed(e)) => format!("[ encrypted ] not decrypted: {e}"),
        Body::Malformed(e) => format!("[ malformed: {e} ]"),
    };
    let _ = write!(
        out,
        "{} {:<4} {} -> {} {} {} mid={} flags={} {}",
        time_of_day(&m.time),
        m.name.to_string(),
        m.src,
        m.dst,
        hex(&h.initiator_spi),
        hex(&h.responder_spi),
        h.message_id,
        flags(h.flags),
        payloads
    );
    if let Some(f) = m.retransmission_of {
        let _ = write!(out, " (retransmission of frame {f})");
    }
    if !m.reassembled_from.is_empty() {
        let frames: Vec<String> = m.reassembled_from.iter().map(ToString::to_string).collect();
        let _ = write!(
            out,
            " (reassembled from fragments in frames {})",
            frames.join(", ")
        );
    }
    if !m.simultaneous_with.is_empty() {
        let others: Vec<String> = m.simultaneous_with.iter().map(|c| hex(c)).collect();
        let _ = write!(out, " ! simultaneous with {}", others.join(", "));
    }
    out.push('\n');
    if verbose && m.retransmission_of.is_none() {
        if let Some(p) = m.payloads() {
            for p in p {
                let _ = writeln!(out, "    {}", detail(p));
            }
        }
        if let Body::Encrypted(Decryption::Decrypted { padding, .. }) = &m.body {
            let _ = writeln!(out, "    padding: {padding} bytes");
        }
    }
}

fn attr_value(v: &AttributeValue) -> String {
    match v {
        AttributeValue::Basic(v) => v.to_string(),
        AttributeValue::Variable(b) if b.len() <= 8 => b
            .iter()
            .fold(0u64, |a, x| (a << 8) | u64::from(*x))
            .to_string(),
        AttributeValue::Variable(b) => format!("0x{}", hex(b)),
    }
}

/// Attribute class names: phase 1 (RFC 2409 App. A) for ISAKMP proposals, else the IPsec
/// DOI's (RFC 2407 §4.5); unnamed classes by number.
fn attr_name(protocol: ProtocolId, attr_type: u16) -> String {
    use ferrovpn_ike::wire::attr::{ike, ipsec};
    let name = if protocol == ProtocolId::ISAKMP {
        match attr_type {
            ike::ENCRYPTION_ALGORITHM => "enc",
            ike::HASH_ALGORITHM => "hash",
            ike::AUTHENTICATION_METHOD => "auth",
            ike::GROUP_DESCRIPTION => "group",
            ike::LIFE_TYPE => "life_type",
            ike::LIFE_DURATION => "life",
            ike::PRF => "prf",
            ike::KEY_LENGTH => "key_len",
            _ => "",
        }
    } else {
        match attr_type {
            ipsec::SA_LIFE_TYPE => "life_type",
            ipsec::SA_LIFE_DURATION => "life",
            ipsec::GROUP_DESCRIPTION => "group",
            ipsec::ENCAPSULATION_MODE => "encap",
            ipsec::AUTH_ALGORITHM => "auth",
            ipsec::KEY_LENGTH => "key_len",
            ipsec::EXTENDED_SEQUENCE_NUMBER => "esn",
            _ => "",
        }
    };
    if name.is_empty() {
        format!("attr{attr_type}")
    } else {
        name.to_string()
    }
}

/// One payload in detail (-v).
fn detail(p: &Payload) -> String {
    match p {
        Payload::Sa(sa) => {
            let mut s = format!("SA doi={} situation={}", sa.doi, sa.situation);
            for prop in &sa.proposals {
                let spi = if prop.spi.is_empty() {
                    "-".to_string()
                } else {
                    hex(&prop.spi)
                };
                let _ = write!(
                    s,
                    "; P#{} {} spi={}",
                    prop.number,
                    prop.protocol.name(),
                    spi
                );
                for t in &prop.transforms {
                    let attrs: Vec<String> = t
                        .attributes
                        .iter()
                        .map(|a| {
                            format!(
                                "{}={}",
                                attr_name(prop.protocol, a.attr_type),
                                attr_value(&a.value)
                            )
                        })
                        .collect();
                    let _ = write!(
                        s,
                        " T#{} id={} ({})",
                        t.number,
                        t.transform_id,
                        attrs.join(" ")
                    );
                }
            }
            s
        }
        Payload::KeyExchange(k) => format!("KE {} bytes", k.len()),
        Payload::Nonce(n) => format!("No {} bytes", n.len()),
        Payload::Identification(id) => {
            let value = id.value().map_or_else(|_| hex(&id.data), |v| v.to_string());
            format!(
                "ID {} {} protocol={} port={}",
                id.id_type, value, id.protocol, id.port
            )
        }
        Payload::Hash(h) => format!("HASH {}", hex(h)),
        Payload::Signature(s) => format!("SIG {} bytes", s.len()),
        Payload::Certificate { encoding, data } => {
            format!("CERT encoding={encoding} {} bytes", data.len())
        }
        Payload::CertificateRequest { encoding, .. } => format!("CR encoding={encoding}"),
        Payload::Notification(n) => format!(
            "N({}) protocol={} spi={} data={} bytes",
            n.notify_type,
            n.protocol,
            if n.spi.is_empty() {
                "-".to_string()
            } else {
                hex(&n.spi)
            },
            n.data.len()
        ),
        Payload::Delete(d) => {
            let spis: Vec<String> = d.spis.iter().map(|s| hex(s)).collect();
            format!("D protocol={} spis={}", d.protocol, spis.join(","))
        }
        Payload::VendorId(v) => match vendor_id::recognise(v) {
            Some(k) => format!("V {} ({})", hex(v), k.name()),
            None => format!("V {}", hex(v)),
        },
        Payload::NatD { hash, .. } => format!("NAT-D {}", hex(hash)),
        Payload::NatOa { id, .. } => format!(
            "NAT-OA {}",
            id.value().map_or_else(|_| hex(&id.data), |v| v.to_string())
        ),
        Payload::Fragment(f) => format!(
            "FRAG id={} number={}{} {} bytes",
            f.id,
            f.number,
            if f.last { " last" } else { "" },
            f.data.len()
        ),
        Payload::Unknown { payload_type, data } => {
            format!("{} {} bytes", payload_type, data.len())
        }
        // Attribute types and identifier only: an XAuth reply carries a password.
        Payload::Attributes(a) => format!("CP id={} {}", a.identifier, a.summary()),
    }
}

/// Summary of IKE SAs that were negotiated at the same time between the same addresses.
fn simultaneous(out: &mut String, messages: &[&IsakmpMessage]) {
    let mut groups: BTreeSet<Vec<[u8; 8]>> = BTreeSet::new();
    for m in messages {
        if !m.simultaneous_with.is_empty() {
            let mut g = m.simultaneous_with.clone();
            g.push(m.header.initiator_spi);
            g.sort_unstable();
            g.dedup();
            groups.insert(g);
        }
    }
    for g in groups {
        let names: Vec<String> = g.iter().map(|c| hex(c)).collect();
        let _ = writeln!(
            out,
            "! simultaneous negotiations: initiator cookies {} were in flight together between \
the same peers",
            names.join(", ")
        );
    }
}

fn esp(out: &mut String, report: &Report, messages: &[&IsakmpMessage]) {
    // ESP SPIs from the Quick Mode SA payloads that are readable (RFC 2409 §5.5).
    let mut negotiated: HashMap<Vec<u8>, String> = HashMap::new();
    for m in messages {
        for p in m.payloads().unwrap_or_default() {
            if let Payload::Sa(sa) = p {
                for prop in sa
                    .proposals
                    .iter()
                    .filter(|p| p.protocol == ProtocolId::ESP)
                {
                    negotiated
                        .entry(prop.spi.clone())
                        .or_insert_with(|| format!("{} mid={}", m.name, m.header.message_id));
                }
            }
        }
    }
    let total: usize = report.esp.iter().map(|f| f.packets).sum();
    let _ = writeln!(
        out,
        "\nESP: {}, {}",
        plural(total, "packet", "packets"),
        plural(report.esp.len(), "SPI", "SPIs")
    );
    for f in &report.esp {
        let via = match f.udp {
            Some((s, d)) => format!("UDP {s}->{d}"),
            None => "IP protocol 50".into(),
        };
        let _ = write!(
            out,
            "SPI {:08x} {} -> {} ({}): {}, seq {}..{} (first {}, last {}), {} .. {}",
            f.spi,
            f.src,
            f.dst,
            via,
            plural(f.packets, "packet", "packets"),
            f.lowest_seq(),
            f.highest_seq(),
            f.first_seq,
            f.last_seq,
            time_of_day(&f.first_time),
            time_of_day(&f.last_time),
        );
        let gaps = f.gaps();
        if gaps.is_empty() {
            out.push_str(", no gaps");
        } else {
            let missing: u64 = gaps.iter().fold(0, |n, (a, b)| {
                n.saturating_add(u64::from(b.saturating_sub(*a)).saturating_add(1))
            });
            let shown: Vec<String> = gaps
                .iter()
                .take(20)
                .map(|(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect();
            let _ = write!(
                out,
                ", {missing} missing: {}{}",
                shown.join(", "),
                if gaps.len() > 20 { ", ..." } else { "" }
            );
        }
        if f.out_of_order > 0 {
            let _ = write!(out, ", {} out of order", f.out_of_order);
        }
        if f.duplicates > 0 {
            let _ = write!(out, ", {}", plural(f.duplicates, "duplicate", "duplicates"));
        }
        if let Some(qm) = negotiated.get(f.spi.to_be_bytes().as_slice()) {
            let _ = write!(out, "; SPI from {qm}");
        }
        out.push('\n');
        if let Some(d) = &f.decryption {
            decrypted_esp(out, d);
        }
    }
}

/// The ESP decryption of one flow: how many opened, and the inner packets by address pair.
fn decrypted_esp(out: &mut String, d: &super::esp::EspDecryption) {
    let _ = write!(
        out,
        "  decrypted {} of {} ({})",
        d.decrypted,
        d.decrypted.saturating_add(d.failed),
        d.cipher
    );
    if d.failed > 0 {
        let _ = write!(out, ", {} failed (wrong key or corrupted)", d.failed);
    }
    if d.dummies > 0 {
        let _ = write!(out, ", {}", plural(d.dummies, "dummy", "dummies"));
    }
    if d.not_ip > 0 {
        let _ = write!(out, ", {} not IP", d.not_ip);
    }
    out.push('\n');
    for i in &d.inner {
        let _ = writeln!(
            out,
            "    inner {} -> {} {}: {}, {} bytes",
            i.src,
            i.dst,
            super::esp::protocol_name(i.protocol),
            plural(i.packets, "packet", "packets"),
            i.bytes
        );
    }
    if d.inner_other > 0 {
        let _ = writeln!(
            out,
            "    and {} more",
            plural(d.inner_other, "packet", "packets")
        );
    }
}

#[cfg(test)]
// In tests an out-of-range index or an overflow is a failed test, which is what it should be.
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(civil_date(20_415), (2025, 11, 23));
        let t = Timestamp {
            secs: 1_763_891_343,
            nanos: 123_456_789,
        };
        assert_eq!(date(&t), "2025-11-23");
        assert_eq!(time_of_day(&t), "09:49:03.123456");
    }
}

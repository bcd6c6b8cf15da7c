//! `ferrovpn import`: converts strongSwan `ipsec.conf` / `swanctl.conf` and Libreswan
//! `ipsec.conf` connections (IKEv1 with PSK) into ferrovpn TOML, reporting every setting that
//! could not be carried over. The source files are untrusted input: parsing never panics.

pub mod ipsec_conf;
pub mod ipsec_secrets;
pub mod libreswan;
pub mod model;
pub mod strongswan_ipsec;
pub mod swanctl;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use zeroize::Zeroizing;

use model::{merge_same_peer, render, Imported, Note, SecretEntry, SecretIndex};

/// Largest source or secrets file read (real ones are a few KiB).
pub const MAX_INPUT: u64 = 1 << 20;

/// The source format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Guess from the contents.
    Auto,
    /// strongSwan's ipsec.conf (stroke/starter).
    StrongswanIpsec,
    /// strongSwan's swanctl.conf (vici).
    Swanctl,
    /// Libreswan's ipsec.conf.
    Libreswan,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::StrongswanIpsec => "strongSwan ipsec.conf",
            Format::Swanctl => "strongSwan swanctl.conf",
            Format::Libreswan => "Libreswan ipsec.conf",
        }
    }
}

/// Keywords only one of the two ipsec.conf dialects has.
const LIBRESWAN_ONLY: &[&str] = &[
    "ikev2=",
    "phase2alg=",
    "leftsubnets=",
    "rightsubnets=",
    "salifetime=",
    "encapsulation=",
    "protostack=",
    "virtual-private=",
    "virtual_private=",
    "plutodebug=",
    "logfile=",
    "nat_traversal=",
    "aggrmode=",
    "pfs=",
    "vti-interface=",
    "ipsec-interface=",
    "phase2=",
    "leftnexthop=",
    "rightnexthop=",
    "leftrsasigkey=",
    "uniqueids=",
];
const STRONGSWAN_ONLY: &[&str] = &[
    "charondebug=",
    "leftauth=",
    "rightauth=",
    "forceencaps=",
    "leftfirewall=",
    "lefthostaccess=",
    "mobike=",
    "reauth=",
    "margintime=",
    "rekeymargin=",
    "leftsendcert=",
    "strictcrlpolicy=",
    "uniqueids=never",
    "eap_identity=",
    "leftikeport=",
    "closeaction=",
    "lifebytes=",
];

/// Guesses the format: a `connections {` section means swanctl.conf; otherwise the ipsec.conf
/// dialect whose own keywords occur more often (strongSwan when neither does).
pub fn detect(text: &str) -> Format {
    let mut libre = 0usize;
    let mut strong = 0usize;
    for l in text.lines() {
        let t = l.split('#').next().unwrap_or_default().trim();
        if t.starts_with("connections")
            && t.get(11..)
                .is_some_and(|r| r.trim_start().starts_with('{') || r.trim().is_empty())
        {
            return Format::Swanctl;
        }
        let compact: String = t.chars().filter(|c| !c.is_whitespace()).collect();
        libre += LIBRESWAN_ONLY
            .iter()
            .filter(|k| compact.starts_with(*k))
            .count();
        strong += STRONGSWAN_ONLY
            .iter()
            .filter(|k| compact.starts_with(*k))
            .count();
    }
    if libre > strong {
        Format::Libreswan
    } else {
        Format::StrongswanIpsec
    }
}

/// The result of a conversion: the TOML, the keys to write next to it, and the report.
pub struct Conversion {
    pub format: Format,
    pub rendered: model::Rendered,
}

/// Converts source text (and optional secrets texts, each ipsec.secrets or swanctl.conf) into
/// ferrovpn TOML. `write_keys`: keys found are to be written to files (else placeholders).
pub fn convert(
    text: &str,
    source_name: &str,
    format: Format,
    secrets: &[(String, Zeroizing<String>)],
    local_addr: Option<std::net::IpAddr>,
    write_keys: bool,
) -> Conversion {
    let format = match format {
        Format::Auto => detect(text),
        f => f,
    };
    let (mut imp, mut keys): (Imported, Vec<SecretEntry>) = match format {
        Format::Swanctl => swanctl::parse(text, local_addr),
        Format::Libreswan => (libreswan::parse(text, local_addr), Vec::new()),
        Format::StrongswanIpsec | Format::Auto => {
            (strongswan_ipsec::parse(text, local_addr), Vec::new())
        }
    };
    for (name, s) in secrets {
        let mut notes = Vec::new();
        // A secrets file is swanctl.conf syntax when it has a `secrets {` section.
        let is_swanctl = s.lines().any(|l| {
            let t = l.trim();
            t.starts_with("secrets")
                && t.get(7..)
                    .is_some_and(|r| r.trim_start().starts_with('{') || r.trim().is_empty())
        });
        if is_swanctl {
            let root = swanctl::tree(s, &mut notes);
            keys.extend(swanctl::secrets_of(&root, &mut notes));
        } else {
            keys.extend(ipsec_secrets::parse(s, &mut notes));
        }
        imp.notes.extend(notes.into_iter().map(|n| Note {
            setting: format!("{name}: {}", n.setting),
            ..n
        }));
    }
    let index = SecretIndex::new(&keys);
    for c in &mut imp.conns {
        if let Some(e) = index.find(c) {
            c.psk = Some(e.key.clone());
            c.note(
                0,
                "psk",
                format!("taken from the secrets entry at line {}", e.line),
            );
        }
    }
    merge_same_peer(&mut imp);
    let rendered = render(imp, source_name, format.name(), write_keys);
    Conversion { format, rendered }
}

/// Reads a file of at most [`MAX_INPUT`] bytes as text; the contents are wiped when dropped.
pub fn read_text(path: &Path) -> Result<Zeroizing<String>, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut buf = Zeroizing::new(Vec::new());
    f.take(MAX_INPUT + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if buf.len() as u64 > MAX_INPUT {
        return Err(format!(
            "{}: larger than 1 MiB; not an IPsec configuration",
            path.display()
        ));
    }
    let s = String::from_utf8_lossy(&buf).into_owned();
    Ok(Zeroizing::new(s))
}

/// Writes a key file with mode 0600, never through a symlink and never over an existing file
/// unless `force` (then only a regular file is replaced).
pub fn write_private(path: &Path, data: &[u8], force: bool) -> Result<(), String> {
    if force {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_file() => {
                std::fs::remove_file(path).map_err(|e| format!("{}: {e}", path.display()))?
            }
            Ok(_) => {
                return Err(format!(
                    "{}: exists and is not a regular file",
                    path.display()
                ))
            }
            Err(_) => {}
        }
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                format!("{} exists; remove it or pass --force", path.display())
            }
            _ => format!("{}: {e}", path.display()),
        })?;
    f.write_all(data)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Arguments of `ferrovpn import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// strongSwan ipsec.conf or swanctl.conf, or Libreswan ipsec.conf.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Format of FILE (auto: a `connections {` section is swanctl.conf, else the ipsec.conf
    /// dialect whose own keywords it uses).
    #[arg(long, value_enum, default_value_t = Format::Auto, value_name = "FORMAT")]
    pub format: Format,
    /// ipsec.secrets or swanctl.conf holding the PSKs (may be repeated; swanctl.conf's own
    /// secrets section is always read).
    #[arg(long, value_name = "FILE")]
    pub secrets: Vec<PathBuf>,
    /// Write the TOML here (keys go next to it as NAME.psk, mode 0600) instead of stdout.
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// This host's address, for connections whose source leaves it to the daemon
    /// (left=%defaultroute, swanctl.conf without local_addrs).
    #[arg(long, value_name = "ADDR")]
    pub local_addr: Option<std::net::IpAddr>,
    /// Replace an existing output file and key files.
    #[arg(long)]
    pub force: bool,
}

/// `ferrovpn import`: exit 0 when at least one connection was converted, 1 otherwise.
pub fn run(args: &ImportArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let fail = |err: &mut dyn Write, m: String| {
        let _ = writeln!(err, "ferrovpn import: {m}");
        crate::exit_code::EXIT_FAILURE
    };
    let text = match read_text(&args.file) {
        Ok(t) => t,
        Err(e) => return fail(err, e),
    };
    let mut secrets = Vec::new();
    for p in &args.secrets {
        match read_text(p) {
            Ok(t) => secrets.push((p.display().to_string(), t)),
            Err(e) => return fail(err, e),
        }
    }
    let conv = convert(
        &text,
        &args.file.display().to_string(),
        args.format,
        &secrets,
        args.local_addr,
        args.output.is_some(),
    );
    let r = &conv.rendered;
    let _ = writeln!(
        err,
        "ferrovpn import: {} read as {}: {} connection{} converted",
        args.file.display(),
        conv.format.name(),
        r.converted,
        if r.converted == 1 { "" } else { "s" }
    );
    for line in &r.report {
        let _ = writeln!(err, "  {line}");
    }
    if r.converted == 0 {
        return fail(
            err,
            "no connection could be converted (reasons above)".into(),
        );
    }
    match &args.output {
        None => {
            let _ = out.write_all(r.toml.as_bytes());
        }
        Some(path) => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            // Keys first: a config whose key files could not be written is not left behind.
            for (_, file, key) in &r.psk_files {
                let mut data = Zeroizing::new(key.to_vec());
                data.push(b'\n');
                if let Err(e) = write_private(&dir.join(file), &data, args.force) {
                    return fail(err, e);
                }
                let _ = writeln!(
                    err,
                    "  wrote key file {} (mode 0600)",
                    dir.join(file).display()
                );
            }
            let written = if args.force {
                std::fs::write(path, r.toml.as_bytes())
                    .map_err(|e| format!("{}: {e}", path.display()))
            } else {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o644)
                    .open(path)
                    .and_then(|mut f| f.write_all(r.toml.as_bytes()))
                    .map_err(|e| match e.kind() {
                        std::io::ErrorKind::AlreadyExists => {
                            format!("{} exists; remove it or pass --force", path.display())
                        }
                        _ => format!("{}: {e}", path.display()),
                    })
            };
            if let Err(e) = written {
                return fail(err, e);
            }
            let _ = writeln!(
                err,
                "  wrote {}; validate it with: ferrovpn check -c {}",
                path.display(),
                path.display()
            );
        }
    }
    crate::exit_code::EXIT_OK
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Fragments of all three syntaxes, so random files reach deep into the parsers.
    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("conn a\n".to_string()),
            Just("conn %default\n".to_string()),
            Just("\talso=a\n".to_string()),
            Just("\tkeyexchange=ikev1\n\tauthby=secret\n".to_string()),
            Just("\tikev2=no\n".to_string()),
            Just("\tleft=192.0.2.1\n\tright=192.0.2.2\n".to_string()),
            Just("\tleftid=@#0a\n\trightid=keyid:\n\tleftid=\"a b\"\n\trightid=x@\n".to_string()),
            Just("\tikelifetime=0\n\tlifetime=99d\n\tdpddelay=2h\n\tdpdtimeout=1s\n\tdpdaction=hold\n".to_string()),
            Just("\taggressive=yes\n\tforceencaps=yes\n\tauto=add\n\tlifebytes=0\n".to_string()),
            Just("\tesp=aes128gcm16-modp2048,aes128-sha1!\n\tike=3des-md5-modp1024\n".to_string()),
            Just("\tleftsubnet=10.1.0.0/16\n\trightsubnet=10.2.0.0/16,10.3.0.0/16\n".to_string()),
            Just("\tleftsubnets={10.1.0.0/24 10.1.1.0/24}\n".to_string()),
            Just(
                "\tike=aes256-sha2;dh19,aes_gcm_c-sha1\n\tphase2alg=aes_gcm256-null\n".to_string()
            ),
            Just("connections {\n b {\n version = 1\n".to_string()),
            Just(" local_addrs = 192.0.2.1\n remote_addrs = 192.0.2.2\n".to_string()),
            Just(" local { auth = psk }\n remote {\n auth = psk\n id = @x\n }\n".to_string()),
            Just(
                " children { c { local_ts = 10.1.0.0/16\n remote_ts = 10.2.0.0/16\n }".to_string()
            ),
            Just("}\n".to_string()),
            Just("secrets { ike { secret = \"x\\\"y\" }\n".to_string()),
            "[ -~\t\n{}=#\"';:,%@/\x00-\x1f\x7f]{0,40}",
        ]
    }

    #[test]
    fn several_selectors_in_a_swanctl_child_are_noted_with_what_charon_does() {
        let text = "connections {\n a {\n version = 1\n local_addrs = 192.0.2.1\n remote_addrs = 192.0.2.2\n local { auth = psk }\n remote { auth = psk }\n children { c {\n local_ts = 10.1.0.0/24, 10.1.1.0/24\n remote_ts = 10.2.0.0/16\n } }\n }\n}\n";
        let c = convert(text, "f", Format::Swanctl, &[], None, false);
        assert_eq!(c.rendered.converted, 1);
        assert!(
            c.rendered.report.iter().any(|l| l.contains(
                "strongSwan's IKEv1 negotiates only the first of each list, ferrovpn one Quick Mode SA pair per local/remote combination (2 here)"
            )),
            "{:?}",
            c.rendered.report
        );
    }

    #[test]
    fn control_characters_of_the_source_reach_neither_the_toml_nor_the_terminal() {
        // Found by fuzz/fuzz_targets/import_parse.rs: a conn name with \x01 broke the TOML.
        let text = "conn a\x01b\x1b[31m\n\tkeyexchange=ikev1\n\tauthby=secret\n\tleft=192.0.2.1\n\tright=192.0.2.2\n\tleftsubnet=10.1.0.0/16\n\trightsubnet=10.2.0.0/16\n\tfoo\x1b]0;x\x07=1\n";
        let c = convert(text, "f\x1b", Format::StrongswanIpsec, &[], None, false);
        assert_eq!(c.rendered.converted, 1);
        assert!(
            toml::from_str::<toml::Value>(&c.rendered.toml).is_ok(),
            "{}",
            c.rendered.toml
        );
        assert!(!c.rendered.toml.contains(['\x01', '\x1b', '\x07']));
        for l in &c.rendered.report {
            assert!(!l.contains(|ch: char| ch.is_control()), "{l:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn no_file_makes_any_parser_panic(parts in proptest::collection::vec(fragment(), 0..24)) {
            let text = parts.concat();
            let secrets = vec![("s".to_string(), Zeroizing::new(text.clone()))];
            for f in [Format::Auto, Format::StrongswanIpsec, Format::Swanctl, Format::Libreswan] {
                let c = convert(&text, "f", f, &secrets, Some("192.0.2.9".parse().unwrap()), true);
                // Whatever was converted passes ferrovpn's own validation (as `check`).
                if c.rendered.converted > 0 {
                    let checked = crate::config::Config::parse_for(
                        &c.rendered.toml,
                        std::path::Path::new("/nonexistent-ferrovpn-import"),
                        crate::config::Purpose::Check,
                    );
                    prop_assert!(checked.is_ok(), "{:?}\n{}", checked.err(), c.rendered.toml);
                }
            }
            let mut notes = Vec::new();
            let _ = ipsec_secrets::parse(&text, &mut notes);
        }

        #[test]
        fn settings_added_to_a_valid_connection_still_pass_check(
            parts in proptest::collection::vec(fragment(), 0..8),
            v in 0usize..3,
        ) {
            let base = [
                "conn a\n\tkeyexchange=ikev1\n\tauthby=secret\n\tleft=192.0.2.1\n\tright=192.0.2.2\n\tleftsubnet=10.1.0.0/16\n\trightsubnet=10.2.0.0/16\n",
                "conn a\n\tikev2=no\n\tauthby=secret\n\tleft=192.0.2.1\n\tright=192.0.2.2\n\tleftsubnet=10.1.0.0/16\n\trightsubnet=10.2.0.0/16\n",
                "connections {\n a {\n version = 1\n local_addrs = 192.0.2.1\n remote_addrs = 192.0.2.2\n local { auth = psk }\n remote { auth = psk }\n children { c {\n local_ts = 10.1.0.0/16\n remote_ts = 10.2.0.0/16\n",
            ];
            let format = [Format::StrongswanIpsec, Format::Libreswan, Format::Swanctl][v];
            let text = format!("{}{}", base[v], parts.concat());
            let c = convert(&text, "f", format, &[], None, true);
            if c.rendered.converted > 0 {
                let checked = crate::config::Config::parse_for(
                    &c.rendered.toml,
                    std::path::Path::new("/nonexistent-ferrovpn-import"),
                    crate::config::Purpose::Check,
                );
                prop_assert!(checked.is_ok(), "{:?}\n{}\n{}", checked.err(), text, c.rendered.toml);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let text = String::from_utf8_lossy(&bytes);
            for f in [Format::StrongswanIpsec, Format::Swanctl, Format::Libreswan] {
                let _ = convert(&text, "f", f, &[], None, false);
            }
        }
    }
}

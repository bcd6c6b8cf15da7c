//! `ferrovpn import` on strongSwan and Libreswan configurations written after those projects'
//! documented examples (tests/import/README.md): what each converts to, that every result
//! passes the validation of `ferrovpn check`, and that keys never reach stdout.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use ferrovpn::config::{Config, Purpose, Tunnel};
use ferrovpn::import::{convert, Format};
use zeroize::Zeroizing;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/import")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap()
}

/// A fresh private directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "ferrovpn-import-{tag}-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
        TempDir(p)
    }
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Case {
    conf: &'static str,
    secrets: Option<&'static str>,
    format: Format,
    /// (ferrovpn connection name, number of Quick Mode pairs).
    converted: &'static [(&'static str, usize)],
    /// Source connections reported as not converted.
    skipped: &'static [&'static str],
    /// Lines the TOML must contain.
    contains: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        conf: "strongswan-net2net-psk.conf",
        secrets: Some("strongswan-net2net-psk.secrets"),
        format: Format::StrongswanIpsec,
        converted: &[("net-net", 1)],
        skipped: &[],
        contains: &[
            "local_id = \"fqdn:moon.strongswan.example\"",
            "ike_lifetime = \"1h\"",
            "esp_lifetime = \"20m\"",
            "dpd_interval = \"20s\"",
            "start = \"initiate\"",
            "# import: line 12: keyingtries=1:",
        ],
    },
    Case {
        conf: "strongswan-mixed.conf",
        secrets: Some("strongswan-mixed.secrets"),
        format: Format::StrongswanIpsec,
        converted: &[("branch-a-lan", 2), ("partner", 2)],
        skipped: &["mobile-ikev2", "cert-site", "host-host"],
        contains: &[
            "allow_weak_dh = true",
            "nat_traversal = \"force\"",
            "mode = \"aggressive\"",
            "ike = \"aes256-sha256-ecp256, aes256-sha384-ecp384\"",
            "esp_lifetime_bytes = 500000000",
            "NOT CONVERTED: authby=pubkey",
            "proposal aes128ctr-sha256-ecp256 dropped",
        ],
    },
    Case {
        conf: "swanctl-net2net-psk.conf",
        secrets: None,
        format: Format::Swanctl,
        converted: &[("gw-gw", 2)],
        skipped: &["rw"],
        contains: &[
            "esp = \"aes128gcm16-modp2048\"",
            "ike_lifetime = \"4h\"",
            "esp_lifetime = \"50m\"",
            "dpd_timeout = \"2m\"",
            "secrets.eap-carol: only IKE PSKs",
        ],
    },
    Case {
        conf: "libreswan-westnet-eastnet-psk.conf",
        secrets: Some("libreswan-westnet-eastnet-psk.secrets"),
        format: Format::Libreswan,
        converted: &[
            ("westnet-eastnet-ipv4-psk", 2),
            ("westnet-eastnet-ipv6-psk", 1),
        ],
        skipped: &["westnet-eastnet-ikev2"],
        contains: &[
            "ike = \"aes256-sha256-modp2048, aes128-sha1-modp2048\"",
            "esp = \"aes256gcm16-modp2048\"",
            "esp = \"aes256-sha256\"",
            "remote_id = \"fqdn:east\"",
        ],
    },
    Case {
        conf: "libreswan5-road.conf",
        secrets: Some("libreswan5-road.secrets"),
        format: Format::Libreswan,
        converted: &[("branch-1", 1)],
        skipped: &["branch-rsa"],
        contains: &[
            "local_addr = \"192.0.2.70\"",
            "ike = \"aes256-sha256-ecp256, 3des-sha1-modp1024\"",
            "vti-interface=vti01: ferrovpn's route_based",
        ],
    },
];

#[test]
fn every_documented_example_converts_to_a_config_that_check_accepts() {
    for case in CASES {
        let text = read(case.conf);
        assert_eq!(
            ferrovpn::import::detect(&text),
            case.format,
            "{}",
            case.conf
        );
        let secrets: Vec<(String, Zeroizing<String>)> = case
            .secrets
            .map(|s| (s.to_string(), Zeroizing::new(read(s))))
            .into_iter()
            .collect();
        let conv = convert(
            &text,
            case.conf,
            Format::Auto,
            &secrets,
            Some("192.0.2.70".parse().unwrap()),
            true,
        );
        let r = &conv.rendered;
        for want in case.contains {
            assert!(
                r.toml.contains(want),
                "{}: no {want:?} in\n{}",
                case.conf,
                r.toml
            );
        }
        for s in case.skipped {
            assert!(
                r.toml.contains(&format!("conn {s} (line")) && r.toml.contains("NOT CONVERTED"),
                "{}: {s} not reported as skipped",
                case.conf
            );
        }
        // Every connection found its key, and it went to a key file, not into the TOML.
        assert_eq!(r.psk_files.len(), case.converted.len(), "{}", case.conf);
        for (_, _, key) in &r.psk_files {
            let k = String::from_utf8_lossy(key);
            assert!(
                !r.toml.contains(k.as_ref()),
                "{}: key in the TOML",
                case.conf
            );
            assert!(!r.report.iter().any(|l| l.contains(k.as_ref())));
        }
        let dir = TempDir::new("check");
        for (_, file, key) in &r.psk_files {
            let p = dir.0.join(file);
            std::fs::write(&p, &key[..]).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let path = dir.0.join("ferrovpn.toml");
        std::fs::write(&path, &r.toml).unwrap();
        // Purpose::Run: every key file is there and valid, as `up` needs it.
        let cfg = Config::load_for(&path, Purpose::Run)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", case.conf, r.toml));
        let got: Vec<(&str, usize)> = cfg
            .connections
            .iter()
            .map(|c| match &c.tunnel {
                Tunnel::PolicyBased(p) => (c.name.as_str(), p.len()),
                Tunnel::RouteBased(_) => (c.name.as_str(), 0),
            })
            .collect();
        assert_eq!(got, case.converted, "{}", case.conf);
    }
}

#[test]
fn without_secrets_the_psk_file_is_a_marked_placeholder_that_check_accepts() {
    let conv = convert(
        &read("strongswan-net2net-psk.conf"),
        "x",
        Format::Auto,
        &[],
        None,
        true,
    );
    let t = &conv.rendered.toml;
    assert!(t.contains("psk_file = \"net-net.psk\"  # PLACEHOLDER"));
    assert!(t.contains("no matching PSK in the secrets given"));
    assert!(conv.rendered.psk_files.is_empty());
    assert!(Config::parse_for(t, Path::new("/nonexistent"), Purpose::Check).is_ok());
}

#[test]
fn ikev2_and_certificate_only_files_convert_nothing_and_say_why() {
    let text = "conn a\n\tleft=192.0.2.1\n\tright=192.0.2.2\n\tleftsubnet=10.1.0.0/16\n\trightsubnet=10.2.0.0/16\n\tauthby=secret\n\tauto=add\n";
    let conv = convert(text, "x", Format::StrongswanIpsec, &[], None, false);
    assert_eq!(conv.rendered.converted, 0);
    assert!(conv.rendered.report[0].contains("keyexchange is not set, which is IKEv2"));
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferrovpn"))
}

#[test]
fn the_cli_writes_keys_mode_0600_next_to_the_output_and_never_prints_them() {
    let dir = TempDir::new("cli");
    let out = dir.0.join("site.toml");
    let run = |extra: &[&str]| {
        bin()
            .arg("import")
            .arg(fixture("swanctl-net2net-psk.conf"))
            .arg("-o")
            .arg(&out)
            .args(extra)
            .output()
            .unwrap()
    };
    let o = run(&[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(o.stdout.is_empty());
    // 0sFpZAZqEN6Ti9sqt4ZP5EWcqx is base64 for these bytes.
    let key = std::fs::read(dir.0.join("gw-gw.psk")).unwrap();
    let want = [
        0x16, 0x96, 0x40, 0x66, 0xa1, 0x0d, 0xe9, 0x38, 0xbd, 0xb2, 0xab, 0x78, 0x64, 0xfe, 0x44,
        0x59, 0xca, 0xb1,
    ];
    assert_eq!(&key[..key.len() - 1], &want);
    let mode = std::fs::metadata(dir.0.join("gw-gw.psk"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(!stderr.contains("FpZAZqEN6Ti9sqt4ZP5EWcqx"));
    assert!(!std::fs::read_to_string(&out)
        .unwrap()
        .contains("FpZAZqEN6Ti9sqt4ZP5EWcqx"));
    assert!(stderr.contains("NOT CONVERTED"), "{stderr}");
    // Nothing is overwritten without --force.
    let again = run(&[]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists; remove it or pass --force"));
    assert_eq!(run(&["--force"]).status.code(), Some(0));
    // The result passes `ferrovpn check`.
    let check = bin().arg("check").arg("-c").arg(&out).output().unwrap();
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn to_stdout_the_key_is_not_printed_but_left_as_a_placeholder() {
    let o = bin()
        .arg("import")
        .arg(fixture("libreswan-westnet-eastnet-psk.conf"))
        .arg("--secrets")
        .arg(fixture("libreswan-westnet-eastnet-psk.secrets"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stdout.contains("# PLACEHOLDER"));
    assert!(!stdout.contains("ABCDE1234567890") && !stderr.contains("ABCDE1234567890"));
}

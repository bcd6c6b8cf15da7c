//! Opt-in key export for Wireshark (`[daemon] save_keys_dir`), the files strongSwan's save-keys
//! plugin writes: `ikev1_decryption_table` (initiator cookie, phase 1 encryption key; RFC 2409
//! Appendix B) and `esp_sa` (one line per SA direction, Wireshark's ESP SA table). The
//! directory must be ours and writable by nobody else; it is held open, and the files in it are
//! created 0600 (never through a symlink, never chmod'ed afterwards) and appended to as SAs are
//! established. Whoever reads these files can decrypt the traffic: every use is announced at
//! WARN level, and no key ever reaches a log.

use std::io::{self, Write};
use std::path::Path;

use ferrovpn_ike::{ChildSa, Cookies, EspKeys};
use tracing::warn;

use crate::convert;
use crate::decode::esp_sa::wireshark_names;
use crate::key_files::{ESP_TABLE, IKEV1_TABLE};
use crate::secret_file::PrivateDir;

/// Appends SA keys to the Wireshark tables in one directory.
pub struct KeyExport {
    dir: PrivateDir,
    /// Tables already announced at WARN level since startup.
    announced: Vec<&'static str>,
}

impl KeyExport {
    /// Opens and checks the directory and the tables already in it (a symlink, a file of
    /// another user or one others may read is refused), then says loudly that keys will be
    /// written there.
    pub fn new(dir: &Path) -> io::Result<KeyExport> {
        let private = PrivateDir::open(dir).map_err(io::Error::other)?;
        for name in [IKEV1_TABLE, ESP_TABLE] {
            private.check_existing(name).map_err(io::Error::other)?;
        }
        warn!(
            "KEY EXPORT ON: save_keys_dir = {}: IKE and ESP keys of every SA will be written to {}/{{{IKEV1_TABLE},{ESP_TABLE}}}; anyone who can read them can decrypt this host's VPN traffic. For debugging only",
            dir.display(),
            dir.display()
        );
        Ok(KeyExport {
            dir: private,
            announced: Vec::new(),
        })
    }

    /// An ISAKMP SA's phase 1 encryption key.
    pub fn ike_sa(&mut self, cookies: &Cookies, enc_key: &[u8]) {
        self.append(IKEV1_TABLE, &ikev1_line(&cookies.initiator_spi, enc_key));
    }

    /// Both directions of an IPsec SA pair.
    pub fn child_sa(&mut self, child: &ChildSa) {
        let Some(cipher) = convert::cipher(child.cipher, child.integrity) else {
            return;
        };
        let (local, remote) = (child.local.ip(), child.remote.ip());
        let mut lines = esp_line(cipher, local, remote, &child.outbound);
        lines.push_str(&esp_line(cipher, remote, local, &child.inbound));
        self.append(ESP_TABLE, &lines);
    }

    fn append(&mut self, name: &'static str, text: &str) {
        let path = self.dir.path().join(name);
        let written = self
            .dir
            .open_append(name)
            .map_err(io::Error::other)
            .and_then(|mut f| f.write_all(text.as_bytes()));
        if let Err(e) = written {
            warn!("key export: not written: {e}");
            return;
        }
        if !self.announced.contains(&name) {
            self.announced.push(name);
            warn!(
                "KEY EXPORT: writing key material to {} (save_keys_dir is set)",
                path.display()
            );
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One line of `ikev1_decryption_table`: initiator cookie and encryption key in hex.
pub fn ikev1_line(initiator_spi: &[u8; 8], enc_key: &[u8]) -> String {
    format!("{},{}\n", hex(initiator_spi), hex(enc_key))
}

/// One line of `esp_sa`: the SA carrying packets from `src` to `dst`.
pub fn esp_line(
    cipher: ferrovpn_esp::Cipher,
    src: std::net::IpAddr,
    dst: std::net::IpAddr,
    keys: &EspKeys,
) -> String {
    let (enc, auth) = wireshark_names(cipher);
    let auth_key = if keys.auth_key.is_empty() {
        String::new()
    } else {
        format!("0x{}", hex(&keys.auth_key))
    };
    format!(
        "\"{}\",\"{src}\",\"{dst}\",\"0x{:08x}\",\"{enc}\",\"0x{}\",\"{auth}\",\"{auth_key}\"\n",
        if src.is_ipv4() { "IPv4" } else { "IPv6" },
        keys.spi,
        hex(&keys.enc_key)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{EspSaTable, KeyTable};
    use ferrovpn_ike::crypto::Secret;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn lines_are_read_back_by_the_decoder() {
        let ike = ikev1_line(
            &[0x29, 0x4f, 0xc8, 0x1d, 0xda, 0x83, 0xb4, 0xc6],
            &[0xea; 32],
        );
        assert_eq!(ike, format!("294fc81dda83b4c6,{}\n", "ea".repeat(32)));
        assert_eq!(KeyTable::parse(&ike).unwrap().len(), 1);

        let keys = |spi, n: usize, a: usize| EspKeys {
            spi,
            enc_key: Secret::new(vec![7; n]),
            auth_key: Secret::new(vec![9; a]),
        };
        let (a, b) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let gcm = ferrovpn_esp::Cipher::AesGcm {
            key: ferrovpn_esp::AesKeyLen::Aes128,
            icv: ferrovpn_esp::GcmIcv::Icv16,
        };
        let line = esp_line(gcm, a, b, &keys(0xc65cbcd3, 20, 0));
        assert_eq!(
            line,
            format!("\"IPv4\",\"192.0.2.1\",\"192.0.2.2\",\"0xc65cbcd3\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"0x{}\",\"NULL\",\"\"\n", "07".repeat(20))
        );
        let cbc = ferrovpn_esp::Cipher::AesCbc {
            key: ferrovpn_esp::AesKeyLen::Aes256,
            integrity: ferrovpn_esp::Integrity::HmacSha256_128,
        };
        let line2 = esp_line(cbc, b, a, &keys(1, 32, 32));
        assert!(line2.contains("\"AES-CBC [RFC3602]\",\"0x0707"));
        assert!(line2.contains("\"HMAC-SHA-256-128 [RFC4868]\",\"0x0909"));
        let t = EspSaTable::parse(&(line + &line2)).unwrap();
        assert_eq!((t.len(), t.unsupported), (2, 0));
        assert!(t.get(0xc65cbcd3, a, b).is_some());
        assert!(t.get(1, b, a).is_some());
    }

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ferrovpn-save-keys-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        dir
    }

    #[test]
    fn files_are_created_0600_and_appended() {
        let dir = temp_dir("ok");
        let mut x = KeyExport::new(&dir).unwrap();
        let c = Cookies {
            initiator_spi: [1; 8],
            responder_spi: [2; 8],
        };
        x.ike_sa(&c, &[3; 16]);
        x.ike_sa(&c, &[4; 16]);
        let p = dir.join(IKEV1_TABLE);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(&p).unwrap().lines().count(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(KeyExport::new(Path::new("/nonexistent/ferrovpn-keys")).is_err());
    }

    /// A local user who can write into the directory, or swap it for a symlink, must not make
    /// the daemon append keys to (or chmod) a file of their choosing.
    #[test]
    fn unsafe_directories_and_planted_files_are_refused_at_startup_and_nothing_is_written() {
        let base = temp_dir("unsafe");
        let victim = base.join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();

        let real = base.join("real");
        std::fs::create_dir(&real).unwrap();
        let link = base.join("keys-link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let e = KeyExport::new(&link).err().unwrap().to_string();
        assert!(e.contains("is a symbolic link"), "{e}");

        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = KeyExport::new(&real).err().unwrap().to_string();
        assert!(e.contains("is writable by group/others (mode 0777)"), "{e}");
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();

        std::os::unix::fs::symlink(&victim, real.join(ESP_TABLE)).unwrap();
        let e = KeyExport::new(&real).err().unwrap().to_string();
        assert!(
            e.contains(&format!("{}/esp_sa is a symbolic link", real.display())),
            "{e}"
        );

        // Planted after startup: the write is refused, the target untouched.
        std::fs::remove_file(real.join(ESP_TABLE)).unwrap();
        let mut x = KeyExport::new(&real).unwrap();
        std::os::unix::fs::symlink(&victim, real.join(IKEV1_TABLE)).unwrap();
        let c = Cookies {
            initiator_spi: [1; 8],
            responder_spi: [2; 8],
        };
        x.ike_sa(&c, &[3; 16]);
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        let mode = std::fs::metadata(&victim).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        std::fs::remove_dir_all(&base).unwrap();
    }
}

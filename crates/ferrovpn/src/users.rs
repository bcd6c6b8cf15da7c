//! The XAuth users of a remote-access gateway (issue 14): a file of `name:$6$salt$hash` lines
//! (SHA-512 crypt, the format of /etc/shadow, so `mkpasswd -m sha-512` works too), read with
//! the checks of a PSK file (owner, mode 600, no symlink). `ferrovpn user add` writes it.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use sha_crypt::{sha512_check, sha512_simple, Sha512Params};

/// Rounds of new hashes: the crypt(3) default; a check costs a few milliseconds.
const ROUNDS: usize = 5000;

/// A hash no password matches, checked for unknown users so that their answer takes as long.
const DUMMY: &str =
    "$6$ferrovpnunknown$wSWgAMyRQA5D5xKcXeGmIUTDK1bTUZzvsH.rO0ViqXODdd70Ai608xLOF136n4VwzPMAcpfTas.ZDy1YHvpOI1";

/// Users and their password hashes.
#[derive(Clone, Default)]
pub struct Users {
    hashes: HashMap<String, String>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Users({} users)", self.hashes.len())
    }
}

/// A user name: 1 to 255 characters, no `:`, whitespace or control characters.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name
            .chars()
            .any(|c| c == ':' || c.is_whitespace() || c.is_control())
}

impl Users {
    /// Parses the file's text; `#` starts a comment line, blank lines are skipped. Every
    /// error names its line.
    pub fn parse(text: &str) -> Result<Users, String> {
        let mut hashes = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let n = i.saturating_add(1);
            let Some((name, hash)) = line.split_once(':') else {
                return Err(format!("line {n}: not NAME:HASH"));
            };
            if !valid_name(name) {
                return Err(format!("line {n}: bad user name"));
            }
            if !hash.starts_with("$6$") {
                return Err(format!(
                    "line {n}: user {name}: the hash is not SHA-512 crypt ($6$...); make it with `ferrovpn user add`"
                ));
            }
            if hashes.insert(name.to_string(), hash.to_string()).is_some() {
                return Err(format!("line {n}: user {name} a second time"));
            }
        }
        Ok(Users { hashes })
    }

    /// Reads `path` with the checks of a secret file.
    pub fn load(path: &Path) -> Result<Users, String> {
        let bytes = crate::secret_file::read_private(path).map_err(|e| e.to_string())?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| format!("{} is not UTF-8 text", path.display()))?;
        Users::parse(text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The file's text with `name` set to a new hash of `password` (added or replaced).
    pub fn with(mut self, name: &str, password: &str) -> Result<Users, String> {
        if !valid_name(name) {
            return Err(format!(
                "'{name}' is not a user name (1 to 255 characters, no ':', spaces or control characters)"
            ));
        }
        let params = Sha512Params::new(ROUNDS).map_err(|e| format!("{e:?}"))?;
        let hash = sha512_simple(password, &params).map_err(|e| format!("{e:?}"))?;
        self.hashes.insert(name.to_string(), hash);
        Ok(self)
    }

    /// The file's text: one line per user, sorted by name.
    pub fn to_text(&self) -> String {
        let mut names: Vec<_> = self.hashes.keys().collect();
        names.sort();
        let mut s = String::from(
            "# ferrovpn XAuth users: NAME:SHA-512-crypt (ferrovpn user add FILE NAME)\n",
        );
        for n in names {
            if let Some(h) = self.hashes.get(n) {
                s.push_str(&format!("{n}:{h}\n"));
            }
        }
        s
    }
}

impl ferrovpn_ike::config::XauthVerifier for Users {
    fn verify(&self, user: &str, password: &[u8]) -> bool {
        let Ok(password) = std::str::from_utf8(password) else {
            return false;
        };
        match self.hashes.get(user) {
            Some(h) => sha512_check(password, h).is_ok(),
            None => {
                let _ = sha512_check(password, DUMMY);
                false
            }
        }
    }
}

/// `ferrovpn user add FILE NAME`: sets NAME's password (one line from `password`) in FILE,
/// created with mode 600 when missing, replaced whole (write to a temporary file, rename).
pub fn add(file: &Path, name: &str, password: &str) -> Result<(), String> {
    let users = match std::fs::symlink_metadata(file) {
        Ok(_) => Users::load(file)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Users::default(),
        Err(e) => return Err(format!("{}: {e}", file.display())),
    };
    if password.is_empty() {
        return Err("empty password".into());
    }
    let users = users.with(name, password)?;
    let tmp = file.with_extension("ferrovpn-new");
    let write = || -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        f.write_all(users.to_text().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("{}: {e}", file.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovpn_ike::config::XauthVerifier;

    #[test]
    fn a_user_added_verifies_with_its_password_only() {
        let u = Users::default().with("alice", "correct-horse").unwrap();
        let u = Users::parse(&u.to_text()).unwrap();
        assert!(u.verify("alice", b"correct-horse"));
        assert!(!u.verify("alice", b"correct-horsE"));
        assert!(!u.verify("bob", b"correct-horse"));
        assert!(!u.verify("alice", &[0xff, 0xfe]));
        assert!(!u.to_text().contains("correct-horse"));
    }

    #[test]
    fn a_known_shadow_hash_verifies() {
        // openssl passwd -6 -salt saltsalt password
        let u = Users::parse("carol:$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/\n").unwrap();
        assert!(u.verify("carol", b"password"));
        assert!(!u.verify("carol", b"passwore"));
    }

    #[test]
    fn bad_lines_are_named() {
        assert_eq!(
            Users::parse("# c\n\nalice").unwrap_err(),
            "line 3: not NAME:HASH"
        );
        assert!(Users::parse("alice:plain")
            .unwrap_err()
            .contains("not SHA-512 crypt"));
        assert!(Users::parse("a:$6$x$y\na:$6$x$y")
            .unwrap_err()
            .contains("a second time"));
        assert!(Users::parse("a b:$6$x$y").is_err());
    }

    #[test]
    fn add_creates_a_private_file_and_replaces_a_password() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("ferrovpn-users-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("users");
        add(&f, "alice", "one").unwrap();
        add(&f, "bob", "two").unwrap();
        add(&f, "alice", "three").unwrap();
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        let u = Users::load(&f).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(mode, 0o600);
        assert_eq!(u.len(), 2);
        assert!(u.verify("alice", b"three"));
        assert!(!u.verify("alice", b"one"));
        assert!(u.verify("bob", b"two"));
    }
}

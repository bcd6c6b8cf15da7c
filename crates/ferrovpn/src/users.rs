//! The XAuth users of a remote-access gateway (issue 14): a file of `name:$6$salt$hash` lines
//! (SHA-512 crypt, the format of /etc/shadow, so `mkpasswd -m sha-512` works too), read with
//! the checks of a PSK file (owner, mode 600, no symlink). `ferrovpn user add` writes it.
//!
//! The gateway checks passwords on the event loop (`XauthVerifier` is a synchronous input of
//! the sans-IO `ike`), so [`UserStore`] bounds what that costs: a password that verified once
//! is recognised again by one HMAC (a client's phase 1 rekey, a reconnect), and full SHA-512
//! crypt checks (5000 rounds, a few ms each) are limited to [`CHECKS_PER_SECOND`] over the whole
//! process; beyond that a REPLY is answered `Busy` (checked on its retransmission, not counted
//! as a failure) and counted.

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ferrovpn_ike::config::XauthVerdict;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sha_crypt::{sha512_check, sha512_simple, Sha512Params};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Rounds of new hashes: the crypt(3) default; a check costs a few milliseconds.
const ROUNDS: usize = 5000;

/// A hash no password matches, checked for unknown users so that their answer takes as long.
const DUMMY: &str =
    "$6$ferrovpnunknown$wSWgAMyRQA5D5xKcXeGmIUTDK1bTUZzvsH.rO0ViqXODdd70Ai608xLOF136n4VwzPMAcpfTas.ZDy1YHvpOI1";

/// Full SHA-512 crypt checks per second (and burst) across all gateway connections.
pub const CHECKS_PER_SECOND: u64 = 20;

/// Users and their password hashes.
#[derive(Clone, Default, PartialEq, Eq)]
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

    /// The user names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut n: Vec<&str> = self.hashes.keys().map(String::as_str).collect();
        n.sort_unstable();
        n
    }

    /// The full check: right password for a known user. Unknown users cost the same.
    fn check(&self, user: &str, password: &str) -> bool {
        match self.hashes.get(user) {
            Some(h) => sha512_check(password, h).is_ok(),
            None => {
                let _ = sha512_check(password, DUMMY);
                false
            }
        }
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

/// What a reload changed in a users file.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct UsersChange {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Users whose password hash changed.
    pub changed: Vec<String>,
}

impl UsersChange {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

impl std::fmt::Display for UsersChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        for (sign, names) in [
            ("+", &self.added),
            ("-", &self.removed),
            ("~", &self.changed),
        ] {
            parts.extend(names.iter().map(|n| format!("{sign}{n}")));
        }
        write!(f, "{}", parts.join(" "))
    }
}

/// The process-wide budget of full password checks, and what happened to the checks.
#[derive(Debug)]
pub struct Limiter {
    bucket: Mutex<Bucket>,
    /// Full SHA-512 crypt checks run.
    pub hashed: AtomicU64,
    /// Passwords recognised from the cache of recent successes.
    pub cached: AtomicU64,
    /// REPLYs answered `Busy`: over the rate.
    pub throttled: AtomicU64,
}

/// A token bucket in thousandths of a check.
#[derive(Debug)]
struct Bucket {
    per_second: u64,
    milli: u64,
    at: Option<Instant>,
}

impl Bucket {
    fn take(&mut self, now: Instant) -> bool {
        let full = self.per_second.saturating_mul(1000);
        match self.at {
            None => {
                self.milli = full;
                self.at = Some(now);
            }
            Some(at) => {
                let ms = u64::try_from(now.saturating_duration_since(at).as_millis())
                    .unwrap_or(u64::MAX);
                self.milli = self
                    .milli
                    .saturating_add(ms.saturating_mul(self.per_second))
                    .min(full);
                // Only whole milliseconds are spent, so frequent calls still refill.
                self.at = at.checked_add(Duration::from_millis(ms)).or(Some(now));
            }
        }
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }
}

impl Limiter {
    pub fn new(per_second: u64) -> Arc<Limiter> {
        Arc::new(Limiter {
            bucket: Mutex::new(Bucket {
                per_second,
                milli: 0,
                at: None,
            }),
            hashed: AtomicU64::new(0),
            cached: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
        })
    }

    /// The one all stores of this process share (`CHECKS_PER_SECOND`).
    pub fn global() -> Arc<Limiter> {
        static GLOBAL: OnceLock<Arc<Limiter>> = OnceLock::new();
        GLOBAL
            .get_or_init(|| Limiter::new(CHECKS_PER_SECOND))
            .clone()
    }

    fn take(&self, now: Instant) -> bool {
        self.bucket
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(now)
    }
}

/// A gateway connection's users as the endpoint checks them: the file's hashes (replaced in
/// place by a reload, see [`UserStore::replace`]), a cache of the last password that verified
/// per user (an HMAC under a key made at start, bound to the user's current hash, so a changed
/// or removed entry invalidates it), and the shared [`Limiter`].
pub struct UserStore {
    inner: Mutex<Inner>,
    limiter: Arc<Limiter>,
}

struct Inner {
    users: Users,
    key: Zeroizing<[u8; 32]>,
    cache: HashMap<String, [u8; 32]>,
}

impl std::fmt::Debug for UserStore {
    /// Without the users: a reload compares connections by their Debug text, and a changed
    /// users file alone is applied in place, not as a changed connection.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserStore")
    }
}

impl UserStore {
    pub fn new(users: Users) -> UserStore {
        UserStore::with_limiter(users, Limiter::global())
    }

    pub fn with_limiter(users: Users, limiter: Arc<Limiter>) -> UserStore {
        UserStore {
            inner: Mutex::new(Inner {
                users,
                key: Zeroizing::new(rand::random()),
                cache: HashMap::new(),
            }),
            limiter,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the users as they are now.
    pub fn users(&self) -> Users {
        self.lock().users.clone()
    }

    /// Takes `new`'s users (a reload read the file again); returns what changed. Cached
    /// successes of removed or changed users are dropped.
    pub fn replace(&self, new: Users) -> UsersChange {
        let mut inner = self.lock();
        let old = &inner.users;
        let mut change = UsersChange::default();
        for n in new.names() {
            match (old.hashes.get(n), new.hashes.get(n)) {
                (None, _) => change.added.push(n.to_string()),
                (Some(a), Some(b)) if a != b => change.changed.push(n.to_string()),
                _ => {}
            }
        }
        change.removed = old
            .names()
            .into_iter()
            .filter(|n| !new.hashes.contains_key(*n))
            .map(str::to_string)
            .collect();
        for n in change.removed.iter().chain(&change.changed) {
            inner.cache.remove(n);
        }
        inner.users = new;
        change
    }
}

/// HMAC-SHA-256 over the user's current hash and the password.
fn fingerprint(key: &[u8; 32], hash: &str, password: &[u8]) -> [u8; 32] {
    let Ok(mut m) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0; 32];
    };
    m.update(hash.as_bytes());
    m.update(&[0]);
    m.update(password);
    m.finalize().into_bytes().into()
}

impl ferrovpn_ike::config::XauthVerifier for UserStore {
    /// The client's address does not matter: a users file has no per-host rules.
    fn verify(&self, now: Instant, _peer: IpAddr, user: &str, password: &[u8]) -> XauthVerdict {
        let Ok(text) = std::str::from_utf8(password) else {
            return XauthVerdict::Reject;
        };
        let mut inner = self.lock();
        let print = inner
            .users
            .hashes
            .get(user)
            .map(|h| fingerprint(&inner.key, h, password));
        if let (Some(p), Some(c)) = (&print, inner.cache.get(user)) {
            if bool::from(p.ct_eq(c)) {
                self.limiter.cached.fetch_add(1, Ordering::Relaxed);
                return XauthVerdict::Accept;
            }
        }
        if !self.limiter.take(now) {
            self.limiter.throttled.fetch_add(1, Ordering::Relaxed);
            return XauthVerdict::Busy;
        }
        self.limiter.hashed.fetch_add(1, Ordering::Relaxed);
        if !inner.users.check(user, text) {
            return XauthVerdict::Reject;
        }
        if let Some(p) = print {
            inner.cache.insert(user.to_string(), p);
        }
        XauthVerdict::Accept
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
    use XauthVerdict::{Accept, Busy, Reject};

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

    /// A store with its own, generous limiter (tests run in parallel).
    fn store(u: Users) -> UserStore {
        UserStore::with_limiter(u, Limiter::new(1000))
    }

    #[test]
    fn a_user_added_verifies_with_its_password_only() {
        let u = Users::default().with("alice", "correct-horse").unwrap();
        let u = Users::parse(&u.to_text()).unwrap();
        assert!(!u.to_text().contains("correct-horse"));
        let s = store(u);
        let t = Instant::now();
        assert_eq!(s.verify(t, PEER, "alice", b"correct-horse"), Accept);
        assert_eq!(s.verify(t, PEER, "alice", b"correct-horsE"), Reject);
        assert_eq!(s.verify(t, PEER, "bob", b"correct-horse"), Reject);
        assert_eq!(s.verify(t, PEER, "alice", &[0xff, 0xfe]), Reject);
    }

    #[test]
    fn a_known_shadow_hash_verifies() {
        // openssl passwd -6 -salt saltsalt password
        let u = Users::parse("carol:$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/\n").unwrap();
        let s = store(u);
        assert_eq!(s.verify(Instant::now(), PEER, "carol", b"password"), Accept);
        assert_eq!(s.verify(Instant::now(), PEER, "carol", b"passwore"), Reject);
    }

    /// A second login with the password that verified costs one HMAC, not a crypt check, and
    /// needs no budget; a wrong one does need a full check.
    #[test]
    fn a_password_that_verified_is_recognised_from_the_cache() {
        let lim = Limiter::new(1);
        let s = UserStore::with_limiter(Users::default().with("alice", "pw").unwrap(), lim.clone());
        let t = Instant::now();
        assert_eq!(s.verify(t, PEER, "alice", b"pw"), Accept);
        assert_eq!(lim.hashed.load(Ordering::Relaxed), 1);
        for _ in 0..3 {
            assert_eq!(s.verify(t, PEER, "alice", b"pw"), Accept);
        }
        assert_eq!(lim.hashed.load(Ordering::Relaxed), 1);
        assert_eq!(lim.cached.load(Ordering::Relaxed), 3);
        // The budget (1 per second) is spent: a wrong password waits for the next token.
        assert_eq!(s.verify(t, PEER, "alice", b"px"), Busy);
        assert_eq!(lim.throttled.load(Ordering::Relaxed), 1);
        assert_eq!(
            s.verify(t + Duration::from_secs(1), PEER, "alice", b"px"),
            Reject
        );
    }

    /// Full checks are limited per second over all stores sharing the limiter; the excess is
    /// `Busy` (not a rejection) and counted, and the budget refills with time.
    #[test]
    fn full_checks_beyond_the_rate_are_busy_and_counted() {
        let lim = Limiter::new(3);
        let users = Users::default().with("alice", "pw").unwrap();
        let a = UserStore::with_limiter(users.clone(), lim.clone());
        let b = UserStore::with_limiter(users, lim.clone());
        let t = Instant::now();
        let v: Vec<_> = (0..5)
            .map(|i| if i % 2 == 0 { &a } else { &b })
            .map(|s| s.verify(t, PEER, "mallory", b"guess"))
            .collect();
        assert_eq!(v, vec![Reject, Reject, Reject, Busy, Busy]);
        assert_eq!(lim.hashed.load(Ordering::Relaxed), 3);
        assert_eq!(lim.throttled.load(Ordering::Relaxed), 2);
        // A third of a second brings one check back; calls in between do not lose the time.
        for ms in [100, 200] {
            assert_eq!(
                a.verify(t + Duration::from_millis(ms), PEER, "x", b"y"),
                Busy
            );
        }
        assert_eq!(
            a.verify(t + Duration::from_millis(334), PEER, "alice", b"pw"),
            Accept
        );
    }

    /// A reload replaces the users in place: an added user verifies, a removed one no longer
    /// does (not even from the cache), a changed password only in its new form.
    #[test]
    fn replace_applies_a_new_users_file_in_place() {
        let old = Users::default()
            .with("alice", "a1")
            .and_then(|u| u.with("carol", "c1"))
            .unwrap();
        let s = store(old.clone());
        let t = Instant::now();
        assert_eq!(s.verify(t, PEER, "alice", b"a1"), Accept);
        assert_eq!(s.verify(t, PEER, "carol", b"c1"), Accept);
        let new = Users::parse(&old.to_text())
            .unwrap()
            .with("bob", "b1")
            .and_then(|u| u.with("carol", "c2"))
            .unwrap();
        let mut new = new;
        new.hashes.remove("alice");
        let change = s.replace(new);
        assert_eq!(change.to_string(), "+bob -alice ~carol");
        assert_eq!(s.verify(t, PEER, "alice", b"a1"), Reject);
        assert_eq!(s.verify(t, PEER, "bob", b"b1"), Accept);
        assert_eq!(s.verify(t, PEER, "carol", b"c1"), Reject);
        assert_eq!(s.verify(t, PEER, "carol", b"c2"), Accept);
        assert!(s.replace(s.users()).is_empty());
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
        let (s, t) = (store(u), Instant::now());
        assert_eq!(s.verify(t, PEER, "alice", b"three"), Accept);
        assert_eq!(s.verify(t, PEER, "alice", b"one"), Reject);
        assert_eq!(s.verify(t, PEER, "bob", b"two"), Accept);
    }
}

//! XAuth users checked by PAM (issue 14, `xauth_pam_service`): a PAM check blocks (pam_unix
//! waits after a wrong password, LDAP goes to the network), so it never runs on the event loop.
//! PAM sees the client's address as PAM_RHOST. [`PamVerifier`] answers a REPLY from a
//! short-lived result of an earlier check of the same user and password from the same address
//! (keyed by an HMAC of the password) when one is ready; otherwise it queues
//! the check for its worker threads and answers `Busy`, and the client's retransmission
//! (prompted by ours of the REQUEST, draft-beaulieu-ike-xauth §4.2) finds the result. The
//! queue is bounded, identical pending checks run once, at most [`WORKERS`] run at a time.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use ferrovpn_ike::config::{XauthVerdict, XauthVerifier};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Worker threads per gateway connection: PAM checks in flight at once.
pub const WORKERS: usize = 4;
/// Checks waiting for a worker; beyond, a REPLY is answered `Busy` without queueing.
pub const MAX_QUEUED: usize = 64;
/// How long a result answers REPLYs: longer than the gap between our REQUEST's
/// retransmissions that bring the client's REPLY back, short enough that a changed password
/// or a locked account takes effect soon.
pub const RESULT_TTL: Duration = Duration::from_secs(60);
/// Longer user names are refused without asking PAM (and never fill the result table).
const MAX_USER: usize = 255;
/// Linux-PAM's PAM_MAX_RESP_SIZE: a longer password cannot be a conversation's answer.
const MAX_PASSWORD: usize = 512;
/// PAM errors (not denials) are logged at most this often.
const ERROR_LOG_EVERY: Duration = Duration::from_secs(10);
/// Results kept at most (the oldest goes first).
const MAX_RESULTS: usize = 4096;

/// What PAM checks did, over the whole process (status `counters.ike`, metrics).
#[derive(Debug, Default)]
pub struct PamStats {
    /// PAM conversations run (pam_authenticate + pam_acct_mgmt).
    pub checks: AtomicU64,
    /// REPLYs answered from a ready result.
    pub answered: AtomicU64,
    /// REPLYs answered `Busy`: their check was queued or still running.
    pub busy: AtomicU64,
    /// REPLYs answered `Busy` because the queue was full (not queued).
    pub queue_full: AtomicU64,
    /// Checks that failed by an error of PAM itself (not a denial): a missing module, a broken
    /// service file. Answered as a rejection.
    pub errors: AtomicU64,
}

impl PamStats {
    pub fn global() -> &'static PamStats {
        static GLOBAL: OnceLock<PamStats> = OnceLock::new();
        GLOBAL.get_or_init(PamStats::default)
    }
}

/// A check: true when PAM accepted the user with the password from the client's address.
pub type Checker = Arc<dyn Fn(&str, IpAddr, &[u8]) -> bool + Send + Sync>;

/// A user, the client's address (PAM rules may depend on it) and the HMAC of the password
/// tried.
type Key = (String, IpAddr, [u8; 32]);

struct Job {
    key: Key,
    password: Zeroizing<Vec<u8>>,
}

/// The results, the queue and what is pending: the logic, without threads or clock reads.
#[derive(Default)]
struct Board {
    /// Accepted?, and when the check finished.
    results: HashMap<Key, (bool, Instant)>,
    /// Queued or running.
    pending: HashSet<Key>,
    queue: VecDeque<Job>,
    closed: bool,
}

/// The board's answer to a REPLY.
#[derive(Debug, PartialEq, Eq)]
enum Ask {
    Ready(bool),
    Queued,
    Pending,
    Full,
}

impl Board {
    fn ask(&mut self, now: Instant, key: &Key, password: &[u8]) -> Ask {
        if let Some(&(ok, at)) = self.results.get(key) {
            if now.saturating_duration_since(at) < RESULT_TTL {
                return Ask::Ready(ok);
            }
            self.results.remove(key);
        }
        if self.pending.contains(key) {
            return Ask::Pending;
        }
        if self.queue.len() >= MAX_QUEUED {
            return Ask::Full;
        }
        self.pending.insert(key.clone());
        self.queue.push_back(Job {
            key: key.clone(),
            password: Zeroizing::new(password.to_vec()),
        });
        Ask::Queued
    }

    fn done(&mut self, key: Key, ok: bool, at: Instant) {
        self.pending.remove(&key);
        self.results
            .retain(|_, (_, t)| at.saturating_duration_since(*t) < RESULT_TTL);
        if self.results.len() >= MAX_RESULTS {
            let oldest = self
                .results
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.results.remove(&k);
            }
        }
        self.results.insert(key, (ok, at));
    }
}

struct Shared {
    board: Mutex<Board>,
    wake: Condvar,
    check: Checker,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs one queued check (blocking in `check`); false when the queue is empty.
    fn work_one(&self, at: impl FnOnce() -> Instant) -> bool {
        let Some(job) = self.lock().queue.pop_front() else {
            return false;
        };
        let ok = (self.check)(&job.key.0, job.key.1, &job.password);
        drop(job.password);
        self.lock().done(job.key, ok, at());
        true
    }

    fn worker(self: Arc<Self>) {
        loop {
            {
                let mut b = self.lock();
                while b.queue.is_empty() && !b.closed {
                    b = self.wake.wait(b).unwrap_or_else(|p| p.into_inner());
                }
                if b.closed {
                    return;
                }
            }
            self.work_one(Instant::now);
        }
    }
}

/// A gateway connection's XAuth users as PAM knows them (see the module doc).
pub struct PamVerifier {
    pub service: String,
    /// `xauth_pam_confdir`: the service file's directory instead of /etc/pam.d.
    pub confdir: Option<PathBuf>,
    key: Zeroizing<[u8; 32]>,
    shared: Arc<Shared>,
    /// Worker threads started (lazily, at the first check: loading a config starts none).
    workers: Mutex<usize>,
    /// False in tests: checks run only through `work_one`.
    threads: bool,
    stats: &'static PamStats,
}

impl std::fmt::Debug for PamVerifier {
    /// The service and directory only: a reload compares connections by their Debug text.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PamVerifier")
            .field("service", &self.service)
            .field("confdir", &self.confdir)
            .finish()
    }
}

impl PamVerifier {
    /// Checks through PAM service `service` (its file in `confdir` when given).
    pub fn new(service: String, confdir: Option<PathBuf>) -> PamVerifier {
        let (s, d) = (service.clone(), confdir.clone());
        let stats = PamStats::global();
        let last_log: Mutex<Option<Instant>> = Mutex::new(None);
        let check: Checker = Arc::new(move |user: &str, rhost: IpAddr, password: &[u8]| {
            stats.checks.fetch_add(1, Ordering::Relaxed);
            match crate::sys::pam::check(&s, d.as_deref(), rhost, user, password) {
                Ok(()) => true,
                Err(f) => {
                    if !f.is_denial() {
                        stats.errors.fetch_add(1, Ordering::Relaxed);
                        let mut last = last_log.lock().unwrap_or_else(|p| p.into_inner());
                        let now = Instant::now();
                        if last.is_none_or(|t| now.saturating_duration_since(t) >= ERROR_LOG_EVERY)
                        {
                            *last = Some(now);
                            tracing::warn!(service = %s, "PAM error, answered as a rejection (logged at most every {}s; all counted in xauth_pam_errors): {f}", ERROR_LOG_EVERY.as_secs());
                        }
                    }
                    false
                }
            }
        });
        PamVerifier::with_checker(service, confdir, check, true, stats)
    }

    fn with_checker(
        service: String,
        confdir: Option<PathBuf>,
        check: Checker,
        threads: bool,
        stats: &'static PamStats,
    ) -> PamVerifier {
        PamVerifier {
            service,
            confdir,
            key: Zeroizing::new(rand::random()),
            shared: Arc::new(Shared {
                board: Mutex::new(Board::default()),
                wake: Condvar::new(),
                check,
            }),
            workers: Mutex::new(0),
            threads,
            stats,
        }
    }

    fn key(&self, user: &str, peer: IpAddr, password: &[u8]) -> Key {
        let mac = Hmac::<Sha256>::new_from_slice(self.key.as_slice()).map(|mut m| {
            m.update(user.as_bytes());
            m.update(&[0]);
            m.update(password);
            <[u8; 32]>::from(m.finalize().into_bytes())
        });
        (user.to_string(), peer, mac.unwrap_or([0; 32]))
    }

    /// Starts a worker when fewer than [`WORKERS`] run.
    fn spawn_worker(&self) {
        if !self.threads {
            return;
        }
        let mut n = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        if *n >= WORKERS {
            return;
        }
        let shared = self.shared.clone();
        match std::thread::Builder::new()
            .name("ferrovpn-pam".into())
            .spawn(move || shared.worker())
        {
            Ok(_) => *n = n.saturating_add(1),
            Err(e) => tracing::warn!("cannot start a PAM worker thread: {e}"),
        }
    }
}

impl Drop for PamVerifier {
    /// Workers finish the check they run and exit; queued checks are dropped (wiped).
    fn drop(&mut self) {
        let mut b = self.shared.lock();
        b.closed = true;
        b.queue.clear();
        drop(b);
        self.shared.wake.notify_all();
    }
}

impl XauthVerifier for PamVerifier {
    fn verify(&self, now: Instant, peer: IpAddr, user: &str, password: &[u8]) -> XauthVerdict {
        if user.is_empty()
            || user.len() > MAX_USER
            || user.contains('\0')
            || password.is_empty()
            || password.len() > MAX_PASSWORD
            || password.contains(&0)
        {
            return XauthVerdict::Reject;
        }
        let key = self.key(user, peer, password);
        let ask = self.shared.lock().ask(now, &key, password);
        match ask {
            Ask::Ready(ok) => {
                self.stats.answered.fetch_add(1, Ordering::Relaxed);
                if ok {
                    XauthVerdict::Accept
                } else {
                    XauthVerdict::Reject
                }
            }
            Ask::Queued => {
                self.stats.busy.fetch_add(1, Ordering::Relaxed);
                self.spawn_worker();
                self.shared.wake.notify_one();
                XauthVerdict::Busy
            }
            Ask::Pending => {
                self.stats.busy.fetch_add(1, Ordering::Relaxed);
                XauthVerdict::Busy
            }
            Ask::Full => {
                self.stats.busy.fetch_add(1, Ordering::Relaxed);
                self.stats.queue_full.fetch_add(1, Ordering::Relaxed);
                XauthVerdict::Busy
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use XauthVerdict::{Accept, Busy, Reject};

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

    /// A verifier without threads whose "PAM" accepts alice/secret and counts its checks.
    fn manual() -> (PamVerifier, Arc<AtomicUsize>, &'static PamStats) {
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let check: Checker = Arc::new(move |u: &str, from: IpAddr, p: &[u8]| {
            r.fetch_add(1, Ordering::Relaxed);
            u == "alice" && p == b"secret" && from == CLIENT
        });
        let stats: &'static PamStats = Box::leak(Box::default());
        let v = PamVerifier::with_checker("test".into(), None, check, false, stats);
        (v, runs, stats)
    }

    fn work(v: &PamVerifier, at: Instant) -> bool {
        v.shared.work_one(|| at)
    }

    /// The first REPLY is Busy (queued, not a rejection); its retransmission after the check
    /// gets the verdict; retransmissions before it stay Busy and queue nothing more.
    #[test]
    fn a_check_is_busy_until_its_result_is_ready() {
        let (v, runs, stats) = manual();
        let t = Instant::now();
        assert_eq!(v.verify(t, CLIENT, "alice", b"secret"), Busy);
        assert_eq!(v.verify(t, CLIENT, "alice", b"secret"), Busy);
        assert_eq!(v.verify(t, CLIENT, "mallory", b"guess"), Busy);
        assert!(work(&v, t));
        assert!(work(&v, t));
        assert!(!work(&v, t), "identical pending checks run once");
        assert_eq!(runs.load(Ordering::Relaxed), 2);
        let t4 = t + Duration::from_secs(4);
        assert_eq!(v.verify(t4, CLIENT, "alice", b"secret"), Accept);
        assert_eq!(v.verify(t4, CLIENT, "mallory", b"guess"), Reject);
        assert_eq!(v.verify(t4, CLIENT, "alice", b"secreT"), Busy);
        assert_eq!(stats.busy.load(Ordering::Relaxed), 4);
        assert_eq!(stats.answered.load(Ordering::Relaxed), 2);
        assert_eq!(runs.load(Ordering::Relaxed), 2);
    }

    /// A wrong password gives one Reject per REPLY that reaches a result (the endpoint counts
    /// each against the source once); Busy answers before it are not rejections.
    #[test]
    fn a_rejection_is_answered_once_per_reply_and_busy_never_rejects() {
        let (v, _, _) = manual();
        let t = Instant::now();
        let first: Vec<_> = (0..3)
            .map(|_| v.verify(t, CLIENT, "alice", b"wrong"))
            .collect();
        assert_eq!(first, vec![Busy, Busy, Busy]);
        work(&v, t);
        assert_eq!(v.verify(t, CLIENT, "alice", b"wrong"), Reject);
    }

    /// Results answer for RESULT_TTL after their check, then a new check is queued (a
    /// changed password or a locked account takes effect).
    #[test]
    fn results_expire() {
        let (v, runs, _) = manual();
        let t = Instant::now();
        assert_eq!(v.verify(t, CLIENT, "alice", b"secret"), Busy);
        work(&v, t);
        assert_eq!(
            v.verify(
                t + RESULT_TTL - Duration::from_secs(1),
                CLIENT,
                "alice",
                b"secret"
            ),
            Accept
        );
        let later = t + RESULT_TTL;
        assert_eq!(v.verify(later, CLIENT, "alice", b"secret"), Busy);
        work(&v, later);
        assert_eq!(v.verify(later, CLIENT, "alice", b"secret"), Accept);
        assert_eq!(runs.load(Ordering::Relaxed), 2);
    }

    /// The queue holds MAX_QUEUED checks; beyond, REPLYs are Busy without being queued, and
    /// counted; once a worker takes one, there is room again.
    #[test]
    fn the_queue_is_bounded() {
        let (v, runs, stats) = manual();
        let t = Instant::now();
        for i in 0..MAX_QUEUED {
            assert_eq!(v.verify(t, CLIENT, &format!("u{i}"), b"pw"), Busy);
        }
        assert_eq!(v.verify(t, CLIENT, "alice", b"secret"), Busy);
        assert_eq!(stats.queue_full.load(Ordering::Relaxed), 1);
        assert_eq!(v.shared.lock().queue.len(), MAX_QUEUED);
        work(&v, t);
        assert_eq!(v.verify(t, CLIENT, "alice", b"secret"), Busy);
        assert_eq!(stats.queue_full.load(Ordering::Relaxed), 1);
        while work(&v, t) {}
        assert_eq!(runs.load(Ordering::Relaxed), MAX_QUEUED + 1);
        assert_eq!(v.verify(t, CLIENT, "alice", b"secret"), Accept);
    }

    /// Results are keyed by user, client address and password: none answers for another (a
    /// PAM rule may accept a user from one host only).
    #[test]
    fn a_result_answers_only_its_user_and_password() {
        let (v, _, _) = manual();
        let t = Instant::now();
        v.verify(t, CLIENT, "alice", b"secret");
        work(&v, t);
        assert_eq!(v.verify(t, CLIENT, "alice", b"secret"), Accept);
        assert_eq!(v.verify(t, CLIENT, "alicf", b"secret"), Busy);
        assert_eq!(v.verify(t, CLIENT, "alice", b"secret2"), Busy);
        let elsewhere = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 8));
        assert_eq!(v.verify(t, elsewhere, "alice", b"secret"), Busy);
        assert_eq!(v.verify(t, CLIENT, "", b"secret"), Reject);
        assert_eq!(v.verify(t, CLIENT, "alice", b""), Reject);
        assert_eq!(v.verify(t, CLIENT, "alice", b"sec\0ret"), Reject);
        assert_eq!(v.verify(t, CLIENT, &"a".repeat(256), b"secret"), Reject);
        assert_eq!(v.verify(t, CLIENT, "alice", &[b'x'; 513]), Reject);
        assert_eq!(
            v.shared.lock().queue.len(),
            3,
            "alicf, secret2 and the other address only were queued"
        );
    }

    /// The result table is bounded: past MAX_RESULTS the oldest result goes.
    #[test]
    fn results_are_bounded() {
        let mut b = Board::default();
        let t = Instant::now();
        for i in 0..=MAX_RESULTS {
            let at = t + Duration::from_millis(u64::try_from(i).unwrap());
            b.done((format!("u{i}"), CLIENT, [0; 32]), true, at);
        }
        assert_eq!(b.results.len(), MAX_RESULTS);
        assert!(!b.results.contains_key(&("u0".to_string(), CLIENT, [0; 32])));
    }

    /// With threads: a dropped verifier's workers exit (a reload drops unused ones).
    #[test]
    fn workers_run_checks_and_stop_with_the_verifier() {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let done_tx = Mutex::new(done_tx);
        let check: Checker = Arc::new(move |u: &str, _: IpAddr, _: &[u8]| {
            let _ = done_tx.lock().unwrap().send(());
            u == "alice"
        });
        let stats: &'static PamStats = Box::leak(Box::default());
        let v = PamVerifier::with_checker("test".into(), None, check, true, stats);
        let t = Instant::now();
        assert_eq!(v.verify(t, CLIENT, "alice", b"pw"), Busy);
        done_rx.recv().unwrap();
        // The worker stores the result right after the check returns.
        let verdict = loop {
            match v.verify(t, CLIENT, "alice", b"pw") {
                Busy => std::thread::yield_now(),
                other => break other,
            }
        };
        assert_eq!(verdict, Accept);
        let shared = Arc::downgrade(&v.shared);
        drop(v);
        while shared.strong_count() > 0 {
            std::thread::yield_now();
        }
    }
}

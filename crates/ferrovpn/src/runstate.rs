//! Run-state records: what a daemon created, so that a later start removes only what a dead
//! ferrovpn provably made, and refuses names that anything else holds.
//!
//! Each daemon writes `<run_dir>/<pid>.state` (JSON, replaced atomically by rename) holding its
//! PID and the process start time (`/proc/PID/stat` field 22, so a reused PID is not mistaken
//! for it), its network namespace (device and inode of `/proc/thread-self/ns/net`), the TUN
//! devices it created (name and ifindex), the policy rules it installed and its control socket
//! (path, device and inode). Routes and addresses are not recorded: they hang off the TUN
//! devices, which are not persistent (no `TUNSETPERSIST`) and vanish with the daemon's last fd,
//! even after SIGKILL. What does survive SIGKILL is the rules and the socket file.
//!
//! At startup, for every record of the same network namespace:
//! - its process is gone (no process with that PID and start time): what it recorded and what
//!   still matches (same name *and* ifindex, same rule, same socket inode) is removed, then the
//!   record;
//! - its process runs: a name it holds is refused, naming its PID and control socket.
//!
//! A name that no record explains (a TUN made with `ip tuntap add`, a device of another program,
//! a regular file at the control socket path) is refused, never removed. The one exception is a
//! unix socket file at the control socket path that refuses connections: see [`check_socket`].
//!
//! The run directory must be a directory owned by this user and writable by nobody else: its
//! records decide what gets deleted.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::netlink::{self, Errno, Netlink, Rule};

/// Default `[daemon] run_dir`.
pub const DEFAULT_RUN_DIR: &str = "/run/ferrovpn";

/// Records larger than this are not read (a record holds a few devices and rules).
const MAX_RECORD_BYTES: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum OwnershipError {
    #[error("run_dir {path}: {why}")]
    RunDir { path: String, why: String },
    #[error(
        "interface {name} belongs to another running ferrovpn (pid {pid}, control socket {socket})"
    )]
    InterfaceLive {
        name: String,
        pid: u32,
        socket: String,
    },
    #[error(
        "interface {name} already exists ({what}) and no ferrovpn created it; ferrovpn neither \
         uses nor removes it: choose another `interface`, or remove it yourself (ip link del {name})"
    )]
    InterfaceTaken { name: String, what: String },
    #[error(
        "control_socket {path} is {what}, not a socket ferrovpn left behind; ferrovpn will not \
         remove it: choose another control_socket path"
    )]
    SocketPathTaken { path: String, what: String },
    #[error("control_socket {path}: another ferrovpn answers there{owner}")]
    SocketLive { path: String, owner: String },
    #[error(
        "policy {rule} belongs to another running ferrovpn (pid {pid}, control socket {socket})"
    )]
    RuleLive {
        rule: String,
        pid: u32,
        socket: String,
    },
    #[error("{0}")]
    Io(String),
}

/// A policy rule as recorded (`netlink::Rule` field by field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct RuleRecord {
    v6: bool,
    priority: u32,
    fwmark: Option<u32>,
    invert: bool,
    table: u32,
    suppress_prefixlength: Option<u32>,
}

impl From<Rule> for RuleRecord {
    fn from(r: Rule) -> Self {
        RuleRecord {
            v6: r.v6,
            priority: r.priority,
            fwmark: r.fwmark,
            invert: r.invert,
            table: r.table,
            suppress_prefixlength: r.suppress_prefixlength,
        }
    }
}

impl From<RuleRecord> for Rule {
    fn from(r: RuleRecord) -> Self {
        Rule {
            v6: r.v6,
            priority: r.priority,
            fwmark: r.fwmark,
            invert: r.invert,
            table: r.table,
            suppress_prefixlength: r.suppress_prefixlength,
        }
    }
}

/// A TUN device a daemon created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    pub name: String,
    pub ifindex: u32,
}

/// What one daemon created, with the identity of its process and network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub pid: u32,
    /// Start time of the process in clock ticks since boot (`/proc/PID/stat` field 22).
    pub start_time: u64,
    /// `(st_dev, st_ino)` of the network namespace.
    pub netns: (u64, u64),
    pub control_socket: PathBuf,
    /// `(st_dev, st_ino)` of the control socket file once bound.
    pub socket_inode: Option<(u64, u64)>,
    pub interfaces: Vec<LinkRecord>,
    rules: Vec<RuleRecord>,
}

impl Record {
    /// The record of this process in the calling thread's network namespace.
    pub fn for_self(control_socket: &Path) -> io::Result<Record> {
        let pid = std::process::id();
        let start_time = start_time_of(pid).ok_or_else(|| {
            io::Error::other(format!("cannot read the start time of pid {pid} in /proc"))
        })?;
        Ok(Record {
            pid,
            start_time,
            netns: current_netns()?,
            control_socket: control_socket.to_path_buf(),
            socket_inode: None,
            interfaces: Vec::new(),
            rules: Vec::new(),
        })
    }

    pub fn add_rule(&mut self, r: Rule) {
        self.rules.push(r.into());
    }

    pub fn rules(&self) -> impl Iterator<Item = Rule> + '_ {
        self.rules.iter().map(|&r| r.into())
    }

    /// True while the recorded process runs: same PID, the same start time, and not a zombie
    /// (killed, its parent has not reaped it yet: it holds nothing any more).
    pub fn is_alive(&self) -> bool {
        start_time_of(self.pid) == Some(self.start_time) && !is_zombie(self.pid)
    }

    fn file_name(pid: u32) -> String {
        format!("{pid}.state")
    }

    /// Writes the record to `<dir>/<pid>.state` atomically (a temporary file, fsync, rename).
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        let tmp = dir.join(format!(".{}.state.tmp", self.pid));
        let _ = fs::remove_file(&tmp);
        let json = serde_json::to_vec(self).map_err(io::Error::other)?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        f.write_all(&json)?;
        f.sync_all()?;
        fs::rename(&tmp, dir.join(Self::file_name(self.pid)))
    }

    /// Removes this process's record (orderly exit).
    pub fn remove(&self, dir: &Path) {
        let _ = fs::remove_file(dir.join(Self::file_name(self.pid)));
    }
}

/// Start time of process `pid` (field 22 of `/proc/PID/stat`), `None` when there is no such
/// process.
pub fn start_time_of(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may itself contain ") ".
    let rest = stat.get(stat.rfind(')')?.checked_add(1)?..)?;
    // Fields from 3 (state) on; 22 is the 20th of them.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether `pid` has exited and waits to be reaped (state `Z` in `/proc/PID/stat`).
fn is_zombie(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    stat.rfind(')')
        .and_then(|i| stat.get(i + 1..))
        .and_then(|rest| rest.split_whitespace().next())
        == Some("Z")
}

/// `(st_dev, st_ino)` of the calling thread's network namespace.
pub fn current_netns() -> io::Result<(u64, u64)> {
    let m = fs::metadata("/proc/thread-self/ns/net")?;
    Ok((m.dev(), m.ino()))
}

/// Creates `dir` (mode 0700) if needed and checks that it can be trusted: a real directory owned
/// by this user, not writable by group or others.
pub fn ensure_run_dir(dir: &Path) -> Result<(), OwnershipError> {
    let bad = |why: String| OwnershipError::RunDir {
        path: dir.display().to_string(),
        why,
    };
    if !dir.is_absolute() {
        return Err(bad("must be an absolute path".into()));
    }
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) => return Err(bad(format!("cannot create it: {e}"))),
    }
    let m = fs::symlink_metadata(dir).map_err(|e| bad(e.to_string()))?;
    if !m.file_type().is_dir() {
        return Err(bad("is not a directory (symbolic links are refused)".into()));
    }
    let me = crate::sys::process::effective_uid();
    if m.uid() != me {
        return Err(bad(format!(
            "is owned by uid {}, not by this user (uid {me}); its records decide what ferrovpn deletes",
            m.uid()
        )));
    }
    if m.mode() & 0o022 != 0 {
        return Err(bad(format!(
            "is writable by group or others (mode {:o}); its records decide what ferrovpn \
             deletes: chmod 700 it",
            m.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Every readable record in `dir`, with its file; unreadable or malformed files are skipped
/// with a warning (and never acted on).
pub fn load_all(dir: &Path) -> Vec<(PathBuf, Record)> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') || !name.ends_with(".state") {
            continue;
        }
        let parsed = fs::symlink_metadata(&path)
            .ok()
            .filter(|m| m.file_type().is_file() && m.len() <= MAX_RECORD_BYTES)
            .and_then(|_| fs::read(&path).ok())
            .and_then(|b| serde_json::from_slice::<Record>(&b).ok());
        match parsed {
            Some(r) => out.push((path, r)),
            None => tracing::warn!("ignoring unreadable run-state record {}", path.display()),
        }
    }
    out.sort_by_key(|(_, r)| r.pid);
    out
}

/// The records in `dir` of ferrovpns that run in the calling thread's network namespace.
pub fn live_records(dir: &Path) -> Vec<Record> {
    let here = current_netns().ok();
    load_all(dir)
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| Some(r.netns) == here && r.is_alive())
        .collect()
}

/// What the starting daemon is about to claim.
#[derive(Debug, Clone)]
pub struct Claim<'a> {
    pub interfaces: &'a [&'a str],
    pub control_socket: &'a Path,
    pub rules: &'a [Rule],
}

/// Prepares a start: removes what dead ferrovpns of this network namespace recorded and left
/// behind, refuses names held by a live ferrovpn or by anything unrecorded, then saves this
/// process's (still empty) record. Returns the record and one line per item removed.
pub fn prepare(
    dir: &Path,
    nl: &mut Netlink,
    claim: &Claim<'_>,
) -> Result<(Record, Vec<String>), OwnershipError> {
    ensure_run_dir(dir)?;
    let io = |what: &str, e: &dyn std::fmt::Display| OwnershipError::Io(format!("{what}: {e}"));
    let me = Record::for_self(claim.control_socket).map_err(|e| io("run-state record", &e))?;
    let (live, dead): (Vec<_>, Vec<_>) = load_all(dir)
        .into_iter()
        // A record with our PID but another start time is a dead process whose PID we reused:
        // cleaned like any other before ours replaces its file.
        .filter(|(_, r)| (r.pid, r.start_time) != (me.pid, me.start_time))
        .partition(|(_, r)| r.is_alive());
    let mut removed = Vec::new();
    for (path, r) in &dead {
        if r.netns != me.netns {
            // Its rules live in another namespace: a daemon started there cleans them.
            continue;
        }
        let rules: Vec<Rule> = r
            .rules()
            .filter(|x| !live.iter().any(|(_, l)| l.rules().any(|y| y == *x)))
            .collect();
        let links: Vec<(&str, u32)> = r
            .interfaces
            .iter()
            .map(|l| (l.name.as_str(), l.ifindex))
            .collect();
        let what = crate::routing::clean_stale(nl, &links, &rules)
            .map_err(|e| io("removing what a dead ferrovpn left behind", &e))?;
        removed.extend(
            what.into_iter()
                .map(|w| format!("{w} (of ferrovpn pid {})", r.pid)),
        );
        if let Some(ino) = r.socket_inode {
            if socket_inode(&r.control_socket) == Some(ino) {
                fs::remove_file(&r.control_socket)
                    .map_err(|e| io(&r.control_socket.display().to_string(), &e))?;
                removed.push(format!(
                    "stale control socket {} (of ferrovpn pid {})",
                    r.control_socket.display(),
                    r.pid
                ));
            }
        }
        let _ = fs::remove_file(path);
    }
    let live_here: Vec<&Record> = live
        .iter()
        .map(|(_, r)| r)
        .filter(|r| r.netns == me.netns)
        .collect();
    for &name in claim.interfaces {
        check_interface(nl, name, &live_here)?;
    }
    for rule in claim.rules {
        if let Some(r) = live_here.iter().find(|r| r.rules().any(|x| x == *rule)) {
            return Err(OwnershipError::RuleLive {
                rule: netlink::Change::Rule(*rule).to_string(),
                pid: r.pid,
                socket: r.control_socket.display().to_string(),
            });
        }
    }
    let all_live: Vec<&Record> = live.iter().map(|(_, r)| r).collect();
    if let Some(line) = check_socket(claim.control_socket, &all_live)? {
        removed.push(line);
    }
    me.save(dir)
        .map_err(|e| io("writing the run-state record", &e))?;
    Ok((me, removed))
}

/// `Ok` when no interface is called `name`; otherwise who holds it.
pub fn check_interface(
    nl: &mut Netlink,
    name: &str,
    live: &[&Record],
) -> Result<(), OwnershipError> {
    let Ok(ifindex) = netlink::link_index(name) else {
        return Ok(());
    };
    if let Some(r) = live.iter().find(|r| {
        r.interfaces
            .iter()
            .any(|l| l.name == name && l.ifindex == ifindex)
    }) {
        return Err(OwnershipError::InterfaceLive {
            name: name.to_string(),
            pid: r.pid,
            socket: r.control_socket.display().to_string(),
        });
    }
    let what = match nl.link_kind(ifindex) {
        Ok(Some(k)) if k == "tun" => {
            "a TUN device, made persistent (ip tuntap add) or held open by another program".into()
        }
        Ok(Some(k)) => format!("a {k} device"),
        Ok(None) => "a device without a link kind (physical, or the kernel's)".into(),
        Err(e) => format!("ifindex {ifindex}: {e}"),
    };
    Err(OwnershipError::InterfaceTaken {
        name: name.to_string(),
        what,
    })
}

/// `(st_dev, st_ino)` of `path` when it is a unix socket file (not following symlinks).
pub fn socket_inode(path: &Path) -> Option<(u64, u64)> {
    let m = fs::symlink_metadata(path).ok()?;
    m.file_type().is_socket().then(|| (m.dev(), m.ino()))
}

/// Checks the control socket path before binding. Nothing there: fine. A socket a live ferrovpn
/// answers on: refused. Anything that is not a socket: refused, never removed.
///
/// A socket file that refuses connections (`ECONNREFUSED`: no process listens on it) is removed
/// even without a record. Such a file is inert: nothing can be reached through it and it holds no
/// data, so removing it destroys nothing that works; ferrovpn publishes its own socket only once
/// it listens (see `control::bind_restricted`), so a refused connect is never a ferrovpn still
/// starting; and refusing would make every restart after a lost run directory (or after a version
/// without records) a manual job. Returns the line to log when it removed one.
pub fn check_socket(path: &Path, live: &[&Record]) -> Result<Option<String>, OwnershipError> {
    let shown = path.display().to_string();
    let m = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(OwnershipError::Io(format!("control_socket {shown}: {e}"))),
        Ok(m) => m,
    };
    let ft = m.file_type();
    if !ft.is_socket() {
        let what = if ft.is_file() {
            format!("a regular file ({} bytes)", m.len())
        } else if ft.is_dir() {
            "a directory".into()
        } else if ft.is_symlink() {
            "a symbolic link".into()
        } else if ft.is_fifo() {
            "a FIFO".into()
        } else {
            "a device file".into()
        };
        return Err(OwnershipError::SocketPathTaken { path: shown, what });
    }
    match UnixStream::connect(path) {
        Ok(_) => {
            let owner = live
                .iter()
                .find(|r| r.socket_inode == Some((m.dev(), m.ino())))
                .map(|r| format!(" (pid {})", r.pid))
                .unwrap_or_default();
            Err(OwnershipError::SocketLive { path: shown, owner })
        }
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
            fs::remove_file(path).map_err(|e| OwnershipError::Io(format!("{shown}: {e}")))?;
            Ok(Some(format!(
                "stale control socket {shown} (nobody listening on it)"
            )))
        }
        Err(e) => Err(OwnershipError::Io(format!(
            "control_socket {shown}: a socket is there and connecting to it fails ({e}); \
             ferrovpn will not remove it"
        ))),
    }
}

/// Errno of an EEXIST from netlink, for callers that explain a rule that is already there.
pub fn is_exists(e: &netlink::NetlinkError) -> bool {
    e.errno() == Some(Errno::Exists)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns::{require_root, NetNs};
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixListener;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "fv-runstate-{tag}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        fs::DirBuilder::new().mode(0o700).create(&d).unwrap();
        d
    }

    #[test]
    fn a_record_survives_a_round_trip_and_names_a_live_process() {
        let dir = tmpdir("rt");
        let mut r = Record::for_self(Path::new("/run/x.sock")).unwrap();
        r.interfaces.push(LinkRecord {
            name: "fv0".into(),
            ifindex: 7,
        });
        r.add_rule(Rule {
            v6: false,
            priority: 18006,
            fwmark: Some(0x4656),
            invert: true,
            table: 18006,
            suppress_prefixlength: None,
        });
        r.save(&dir).unwrap();
        let all = load_all(&dir);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].1, r);
        assert!(r.is_alive());
        let mode = fs::metadata(dir.join(format!("{}.state", r.pid)))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // The same PID with another start time is a different (dead) process.
        let reused = Record {
            start_time: r.start_time + 1,
            ..r.clone()
        };
        assert!(!reused.is_alive());
        r.remove(&dir);
        assert!(load_all(&dir).is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_killed_process_not_yet_reaped_is_not_alive() {
        // A zombie keeps its PID and start time but holds no interface or rule any more: a
        // restart must not be refused because of it.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let r = Record {
            pid,
            start_time: start_time_of(pid).unwrap(),
            netns: current_netns().unwrap(),
            control_socket: PathBuf::from("/nonexistent"),
            socket_inode: None,
            interfaces: Vec::new(),
            rules: Vec::new(),
        };
        assert!(r.is_alive());
        child.kill().unwrap();
        let t = std::time::Instant::now();
        while r.is_alive() && t.elapsed() < std::time::Duration::from_secs(5) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!r.is_alive(), "a zombie counts as dead");
        child.wait().unwrap();
    }

    #[test]
    fn garbage_records_are_ignored() {
        let dir = tmpdir("garbage");
        fs::write(dir.join("1.state"), b"{\"pid\": \"no\"").unwrap();
        fs::write(dir.join("2.state"), [0xff; 100]).unwrap();
        assert!(load_all(&dir).is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_run_dir_others_can_write_is_refused() {
        let dir = tmpdir("perm");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let e = ensure_run_dir(&dir).unwrap_err();
        assert!(e.to_string().contains("writable by group or others"), "{e}");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        ensure_run_dir(&dir).unwrap();
        let link = dir.with_extension("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(ensure_run_dir(&link).is_err());
        fs::remove_file(&link).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_regular_file_at_the_socket_path_is_refused_and_kept() {
        let dir = tmpdir("sockfile");
        let path = dir.join("ferrovpn.toml");
        fs::write(&path, b"[daemon]\n").unwrap();
        let e = check_socket(&path, &[]).unwrap_err();
        assert!(matches!(e, OwnershipError::SocketPathTaken { .. }), "{e:?}");
        assert!(e.to_string().contains("a regular file (9 bytes)"), "{e}");
        assert_eq!(fs::read(&path).unwrap(), b"[daemon]\n");
        let sub = dir.join("sub");
        fs::create_dir(&sub).unwrap();
        assert!(check_socket(&sub, &[])
            .unwrap_err()
            .to_string()
            .contains("a directory"));
        assert!(sub.is_dir());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_socket_someone_answers_on_is_refused_and_a_dead_one_removed() {
        let dir = tmpdir("sock");
        let path = dir.join("c.sock");
        let l = UnixListener::bind(&path).unwrap();
        let e = check_socket(&path, &[]).unwrap_err();
        assert!(matches!(e, OwnershipError::SocketLive { .. }), "{e:?}");
        assert!(socket_inode(&path).is_some());
        drop(l);
        // The listener is closed; the file stays and refuses connections.
        assert!(socket_inode(&path).is_some());
        let line = check_socket(&path, &[]).unwrap().unwrap();
        assert!(line.contains("nobody listening"), "{line}");
        assert!(!path.exists());
        assert_eq!(check_socket(&path, &[]).unwrap(), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A TUN made with `ip tuntap add` is nobody's leftover: refused and kept. A live record's
    /// interface is refused with its PID; a dead record's rules and socket are removed.
    #[test]
    fn prepare_removes_only_what_a_dead_ferrovpn_recorded() {
        if !require_root("runstate::prepare_removes_only_what_a_dead_ferrovpn_recorded") {
            return;
        }
        let ns = NetNs::new("rsprep").unwrap();
        let dir = tmpdir("prep");
        ns.ip(&["tuntap", "add", "dev", "fvp0", "mode", "tun"])
            .unwrap();
        ns.ip(&["rule", "add", "priority", "18006", "lookup", "100"])
            .unwrap();
        let sock = dir.join("c.sock");
        ns.run(|| {
            let mut nl = Netlink::open().unwrap();
            let claim = Claim {
                interfaces: &["fvp0"],
                control_socket: &sock,
                rules: &[],
            };
            let e = prepare(&dir, &mut nl, &claim).unwrap_err();
            assert!(
                matches!(&e, OwnershipError::InterfaceTaken { name, .. } if name == "fvp0"),
                "{e:?}"
            );
            assert!(e.to_string().contains("ip tuntap add"), "{e}");
        });
        assert!(
            ns.ip(&["link", "show", "fvp0"]).is_ok(),
            "persistent TUN deleted"
        );

        // A live ferrovpn (this test process, recorded as another pid would be) owns fvp0.
        let ifindex: u32 = ns.run(|| netlink::link_index("fvp0").unwrap());
        let mut live = ns.run(|| Record::for_self(Path::new("/run/live.sock")).unwrap());
        live.interfaces.push(LinkRecord {
            name: "fvp0".into(),
            ifindex,
        });
        let e = ns.run(|| {
            let mut nl = Netlink::open().unwrap();
            check_interface(&mut nl, "fvp0", &[&live]).unwrap_err()
        });
        assert_eq!(
            e.to_string(),
            format!(
                "interface fvp0 belongs to another running ferrovpn (pid {}, control socket /run/live.sock)",
                live.pid
            )
        );

        // A dead ferrovpn recorded a rule, a TUN (the same name, a stale ifindex) and a socket.
        let ours = Rule {
            v6: false,
            priority: 18007,
            fwmark: Some(0x4656),
            invert: true,
            table: 18006,
            suppress_prefixlength: None,
        };
        ns.ip(&[
            "rule", "add", "priority", "18007", "not", "fwmark", "0x4656", "lookup", "18006",
        ])
        .unwrap();
        let l = UnixListener::bind(&sock).unwrap();
        drop(l);
        // Its PID is ours now (reused): only the start time tells the processes apart.
        let mut dead = live.clone();
        dead.start_time = live.start_time.wrapping_add(1);
        dead.interfaces[0].ifindex = ifindex + 1000;
        dead.socket_inode = socket_inode(&sock);
        dead.control_socket = sock.clone();
        dead.add_rule(ours);
        dead.save(&dir).unwrap();
        ns.ip(&["link", "del", "fvp0"]).unwrap();
        let (me, removed) = ns.run(|| {
            let mut nl = Netlink::open().unwrap();
            let claim = Claim {
                interfaces: &["fvp0"],
                control_socket: &sock,
                rules: &[ours],
            };
            prepare(&dir, &mut nl, &claim).unwrap()
        });
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(removed[0].contains("rule priority 18007"), "{removed:?}");
        assert!(removed[1].contains("stale control socket"), "{removed:?}");
        let rules = ns.ip(&["rule", "show"]).unwrap();
        assert!(!rules.contains("fwmark"), "{rules}");
        assert!(rules.contains("lookup 100"), "someone else's rule: {rules}");
        // The dead record is gone, ours replaced it.
        let all = load_all(&dir);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].1, me);
        fs::remove_dir_all(&dir).unwrap();
    }
}

//! Test support: throwaway network namespaces (`ip netns add`), and running code inside one on a
//! dedicated thread (`setns(2)` changes only the calling thread's namespace).
//!
//! Tests that need root call [`require_root`] first: without root they print why and skip,
//! unless `CI=true`, where a skipped namespace test would hide a regression, so they panic.

use std::fs::File;
use std::io;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// True when the caller may create namespaces; otherwise explains (or panics under CI=true).
pub fn require_root(test: &str) -> bool {
    if crate::sys::process::effective_uid() == 0 {
        return true;
    }
    let why = format!("{test}: needs root to create network namespaces");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why}; refusing to skip under CI=true");
    }
    eprintln!("skipping {why}");
    false
}

/// A network namespace that is deleted (with everything in it) when dropped.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl NetNs {
    /// Creates `fv-<tag>-<pid>-<n>`, unique per process and call; loopback is brought up.
    pub fn new(tag: &str) -> io::Result<NetNs> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("fv-{tag}-{}-{n}", std::process::id());
        run_ip(&["netns", "add", &name])?;
        let ns = NetNs { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n <ns> ARGS...`, returning stdout; a non-zero exit is an error with stderr.
    pub fn ip(&self, args: &[&str]) -> io::Result<String> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run_ip(&all)
    }

    /// Runs `f` on a new thread that has joined this namespace; panics in `f` propagate.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
                crate::sys::process::enter_netns(&file)
                    .unwrap_or_else(|e| panic!("setns {path}: {e}"));
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Two namespaces `{tag}a` and `{tag}b` joined by a veth pair: `fva` 192.0.2.1/24 and
    /// 2001:db8::1/64 in a, `fvb` 192.0.2.2/24 and 2001:db8::2/64 in b.
    pub fn pair(tag: &str) -> io::Result<(NetNs, NetNs)> {
        let a = NetNs::new(&format!("{tag}a"))?;
        let b = NetNs::new(&format!("{tag}b"))?;
        NetNs::veth_pair(&a, "fva", "192.0.2.1/24", &b, "fvb", "192.0.2.2/24")?;
        a.ip(&["addr", "add", "2001:db8::1/64", "dev", "fva", "nodad"])?;
        b.ip(&["addr", "add", "2001:db8::2/64", "dev", "fvb", "nodad"])?;
        Ok((a, b))
    }

    /// Connects two namespaces with a veth pair and gives each end an address (`a/len`, `b/len`).
    pub fn veth_pair(
        a: &NetNs,
        a_if: &str,
        a_addr: &str,
        b: &NetNs,
        b_if: &str,
        b_addr: &str,
    ) -> io::Result<()> {
        a.ip(&[
            "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", &b.name,
        ])?;
        a.ip(&["addr", "add", a_addr, "dev", a_if, "nodad"])?;
        b.ip(&["addr", "add", b_addr, "dev", b_if, "nodad"])?;
        a.ip(&["link", "set", a_if, "up"])?;
        b.ip(&["link", "set", b_if, "up"])?;
        Ok(())
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Err(e) = run_ip(&["netns", "del", &self.name]) {
            eprintln!("warning: could not delete namespace {}: {e}", self.name);
        }
    }
}

fn run_ip(args: &[&str]) -> io::Result<String> {
    let out = Command::new("ip").args(args).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_is_isolated_and_removed_on_drop() {
        if !require_root("netns::namespace_is_isolated_and_removed_on_drop") {
            return;
        }
        let ns = NetNs::new("probe").unwrap();
        let name = ns.name().to_string();
        let out = ns.ip(&["-o", "link"]).unwrap();
        assert_eq!(out.lines().count(), 1, "only lo in a new namespace: {out}");
        ns.ip(&[
            "link", "add", "fvdummy0", "type", "veth", "peer", "name", "fvdummy1",
        ])
        .unwrap();
        let index = |name: &str| {
            let c = std::ffi::CString::new(name).unwrap();
            crate::sys::iface::index_of(&c).unwrap_or(0)
        };
        assert_ne!(ns.run(|| index("fvdummy0")), 0, "visible inside");
        assert_eq!(index("fvdummy0"), 0, "invisible outside");
        drop(ns);
        let list = run_ip(&["netns", "list"]).unwrap();
        assert!(!list
            .lines()
            .any(|l| l.split_whitespace().next() == Some(&name)));
    }
}

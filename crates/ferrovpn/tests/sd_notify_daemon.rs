//! `ferrovpn up` under a test NOTIFY_SOCKET, in a throwaway network namespace (root): READY=1
//! arrives only once the control socket answers, the TUN device and its route exist; WATCHDOG=1
//! pings follow with WATCHDOG_USEC set; SIGTERM brings STOPPING=1 and a clean exit. Without root
//! it skips with a reason, except under CI=true where it fails.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let why = format!("{test}: needs root to create a network namespace and a TUN device");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why}; refusing to skip under CI=true");
    }
    eprintln!("skipping {why}");
    false
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The namespace, the daemon and the scratch directory, all removed when dropped.
struct Scene {
    ns: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl Drop for Scene {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn control(sock: &Path, cmd: &str) -> std::io::Result<String> {
    let mut s = UnixStream::connect(sock)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(format!("{cmd}\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

#[test]
fn ready_comes_after_setup_and_the_watchdog_is_pinged() {
    if !require_root("sd_notify_daemon") {
        return;
    }
    let pid = std::process::id();
    let mut scene = Scene {
        ns: format!("fv-notify-{pid}"),
        dir: std::env::temp_dir().join(format!("fv-notify-{pid}")),
        child: None,
    };
    let _ = std::fs::remove_dir_all(&scene.dir);
    std::fs::create_dir(&scene.dir).unwrap();
    std::fs::set_permissions(&scene.dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    ip(&["netns", "add", &scene.ns]);
    ip(&["-n", &scene.ns, "link", "set", "lo", "up"]);
    // Both ends of a veth pair inside the namespace: an interface that holds the local address.
    ip(&[
        "-n", &scene.ns, "link", "add", "v0", "type", "veth", "peer", "name", "v1",
    ]);
    ip(&[
        "-n",
        &scene.ns,
        "address",
        "add",
        "192.0.2.1/24",
        "dev",
        "v0",
    ]);
    ip(&["-n", &scene.ns, "link", "set", "v0", "up"]);
    ip(&["-n", &scene.ns, "link", "set", "v1", "up"]);

    let dir = scene.dir.clone();
    let psk = dir.join("psk");
    std::fs::write(&psk, "sd-notify-test-secret\n").unwrap();
    std::fs::set_permissions(&psk, std::fs::Permissions::from_mode(0o600)).unwrap();
    let sock = dir.join("c.sock");
    let tun = format!("fvnt{}", pid % 100_000);
    let cfg = dir.join("fv.toml");
    std::fs::write(
        &cfg,
        format!(
            "[daemon]\ncontrol_socket = \"{}\"\nrun_dir = \"{}\"\n\n[[connection]]\nname = \"t\"\n\
             local_addr = \"192.0.2.1\"\nremote_addr = \"192.0.2.2\"\npsk_file = \"{}\"\n\
             start = \"respond\"\n\n[connection.route_based]\ninterface = \"{tun}\"\n\
             routes = [\"203.0.113.0/24\"]\n",
            sock.display(),
            dir.join("run").display(),
            psk.display(),
        ),
    )
    .unwrap();
    let notify_path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    // A deadline for a daemon that never speaks, not a timing assertion.
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let log = std::fs::File::create(dir.join("log")).unwrap();
    scene.child = Some(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &scene.ns,
                env!("CARGO_BIN_EXE_ferrovpn"),
                "up",
                "-c",
            ])
            .arg(&cfg)
            .env("NOTIFY_SOCKET", &notify_path)
            .env("WATCHDOG_USEC", "1000000")
            .env_remove("WATCHDOG_PID")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let log_of = |dir: &Path| std::fs::read_to_string(dir.join("log")).unwrap_or_default();

    let mut buf = [0u8; 4096];
    let mut recv = || -> String {
        let n = notify
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no notification: {e}\n{}", log_of(&dir)));
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let first = recv();
    assert_eq!(
        first,
        "READY=1\nSTATUS=1 connection, 0 up\n",
        "{}",
        log_of(&dir)
    );
    // At READY=1 everything is there: the control socket answers, the device and route exist.
    let status = control(&sock, "status json").expect("control socket answers at READY=1");
    assert!(status.contains("\"name\":\"t\""), "{status}");
    ip(&["-n", &scene.ns, "link", "show", &tun]);
    let routes = Command::new("ip")
        .args(["-n", &scene.ns, "route", "show", "dev", &tun])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&routes.stdout).contains("203.0.113.0/24"),
        "{routes:?}"
    );

    let mut pings = 0;
    while pings < 2 {
        let m = recv();
        if m == "WATCHDOG=1\n" {
            pings += 1;
        } else {
            assert!(m.starts_with("STATUS="), "unexpected {m:?}");
        }
    }

    let child_pid = scene.child.as_ref().unwrap().id() as libc::pid_t;
    // SAFETY: kill(2) on the PID of the child this test spawned and has not reaped.
    assert_eq!(unsafe { libc::kill(child_pid, libc::SIGTERM) }, 0);
    loop {
        let m = recv();
        if m.starts_with("STOPPING=1\n") {
            break;
        }
        assert!(
            m == "WATCHDOG=1\n" || m.starts_with("STATUS="),
            "unexpected {m:?}"
        );
    }
    let status = scene.child.take().unwrap().wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", log_of(&dir));
    assert!(!sock.exists(), "control socket removed at exit");
}

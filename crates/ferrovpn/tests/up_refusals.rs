//! `ferrovpn up` refuses what it cannot do before touching the host, and says why, also under
//! `--daemon` (whose parent waits for the child's setup). These runs stop before any device,
//! route or socket is created, so they need neither root nor a namespace.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "fv-up-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

/// A one-connection config in `dir`; `socket: None` makes the config file its own socket path.
fn write_config(dir: &Path, local: &str, socket: Option<&Path>) -> PathBuf {
    let psk = dir.join("psk");
    std::fs::write(&psk, "up-refusals-secret\n").unwrap();
    std::fs::set_permissions(&psk, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = dir.join("fv.toml");
    let sock = socket.map_or_else(|| cfg.clone(), Path::to_path_buf);
    let text = format!(
        "[daemon]\ncontrol_socket = \"{}\"\nrun_dir = \"{}\"\n\n[[connection]]\nname = \"t\"\n\
         local_addr = \"{local}\"\nremote_addr = \"192.0.2.2\"\npsk_file = \"{}\"\n\
         start = \"respond\"\n\n[connection.route_based]\ninterface = \"fvut{}\"\n\
         routes = [\"203.0.113.0/24\"]\n",
        sock.display(),
        dir.join("run").display(),
        psk.display(),
        std::process::id() % 100_000
    );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

fn up(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrovpn"))
        .arg("up")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// 192.0.2.77 (TEST-NET-1) is on no interface: setup fails (binding UDP 500, unless config
/// validation already refuses the address), and the parent of `--daemon` exits 1 with that
/// error instead of 0.
#[test]
fn up_daemon_exits_1_when_the_local_address_is_missing() {
    let dir = tmpdir("daemon");
    let sock = dir.join("c.sock");
    let cfg = write_config(&dir, "192.0.2.77", Some(&sock));
    let (code, err) = up(&["--daemon", "-c", cfg.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("ferrovpn up: binding UDP 500/4500")
                || (l.contains("192.0.2.77") && !l.contains(" INFO "))),
        "{err}"
    );
    assert!(!sock.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A failure only the running daemon can see (someone answers on the control socket): the
/// child reports it over the readiness pipe and the parent exits 1 with it.
#[test]
fn up_daemon_reports_a_failure_of_the_child_setup() {
    let dir = tmpdir("daemon-live");
    let sock = dir.join("c.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let cfg = write_config(&dir, "192.0.2.77", Some(&sock));
    let (code, err) = up(&["--daemon", "-c", cfg.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    let want = format!(
        "ferrovpn up: control_socket {}: another ferrovpn answers there",
        sock.display()
    );
    assert!(err.lines().any(|l| l == want), "{err}");
    assert!(sock.exists(), "the live socket was removed");
    let left: Vec<_> = std::fs::read_dir(dir.join("run")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `control_socket` naming the config file: refused, with the file intact (it used to be
/// unlinked).
#[test]
fn a_control_socket_path_holding_a_file_is_refused_and_kept() {
    let dir = tmpdir("sockfile");
    let cfg = write_config(&dir, "192.0.2.77", None);
    let before = std::fs::read(&cfg).unwrap();
    let (code, err) = up(&["-c", cfg.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    // The config check refuses it before the daemon starts (the daemon's own check, for a
    // file that appears later, is control.rs's unit test).
    let want = format!(
        "control_socket: {} exists and is not a socket; ferrovpn will not replace it",
        cfg.display()
    );
    assert!(err.contains(&want), "{err}");
    assert_eq!(std::fs::read(&cfg).unwrap(), before);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A remote-access client with `xauth_user` but no `xauth_password_file` has its password
/// typed at `up`: without a terminal to ask on (a new session without one, via setsid(1)), and
/// with `--daemon`, `up` exits 1 naming the connection and the fix, before touching the host.
#[test]
fn a_password_to_type_without_a_terminal_is_refused_with_the_fix() {
    let dir = tmpdir("xauth");
    let cfg = write_config(&dir, "192.0.2.1", Some(&dir.join("sock")));
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = text
        .replace(
            "start = \"respond\"",
            "start = \"initiate\"\nremote_access = \"client\"\nxauth_user = \"alice\"",
        )
        .replace(
            "routes = [\"203.0.113.0/24\"]",
            "remote_ts = \"203.0.113.0/24\"",
        );
    std::fs::write(&cfg, text).unwrap();
    let cfg_s = cfg.to_str().unwrap();
    let out = Command::new("setsid")
        .args(["-w", env!("CARGO_BIN_EXE_ferrovpn"), "up", "-c", cfg_s])
        .stdin(Stdio::null())
        .output()
        .expect("setsid (util-linux) is needed to run without a controlling terminal");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("connection \"t\": xauth_user \"alice\" has no xauth_password_file and the password cannot be asked for: no terminal to ask on"),
        "{err}"
    );
    assert!(err.contains("set xauth_password_file"), "{err}");
    let (code, err) = up(&["-c", cfg_s, "--daemon"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("`ferrovpn up --daemon` does not ask"), "{err}");
    assert!(!dir.join("run").exists(), "nothing set up");
    std::fs::remove_dir_all(&dir).unwrap();
}

//! `ferrovpn initiate/terminate/rekey/reload` against a stand-in daemon on a test control
//! socket: the request line each sends, and the exit status each answer maps to (0 done,
//! 1 failed or no daemon, 3 unknown connection, 4 not up, 5 timed out). No root needed.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::Command;

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fv-ctlcli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir(&d).unwrap();
    d
}

/// Runs `ferrovpn ARGS --socket S` while a stand-in daemon answers `answer` to one request;
/// returns (exit status, the request line it got, stdout, stderr).
fn run(tag: &str, args: &[&str], answer: &str) -> (i32, String, String, String) {
    let dir = tmpdir(tag);
    let sock = dir.join("c.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let answer = answer.to_string();
    let server = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let mut line = String::new();
        BufReader::new(s.try_clone().unwrap())
            .read_line(&mut line)
            .unwrap();
        let mut s = s;
        s.write_all(answer.as_bytes()).unwrap();
        line.trim_end().to_string()
    });
    let out = Command::new(env!("CARGO_BIN_EXE_ferrovpn"))
        .args(args)
        .arg("--socket")
        .arg(&sock)
        .output()
        .unwrap();
    let request = server.join().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    (
        out.status.code().unwrap_or(-1),
        request,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn each_answer_maps_to_its_exit_status_and_the_request_names_wait_and_connection() {
    let (code, req, out, _) = run(
        "init",
        &["initiate", "site-b", "--timeout", "1m"],
        "ok: site-b up: IPsec SA pair(s) in/out 0000abcd/0000dcba\n",
    );
    assert_eq!((code, req.as_str()), (0, "initiate 60 site-b"));
    assert_eq!(
        out,
        "site-b up: IPsec SA pair(s) in/out 0000abcd/0000dcba\n"
    );

    let (code, req, _, err) = run(
        "term",
        &["terminate", "nosuch"],
        "error unknown-connection: no connection named \"nosuch\"\n",
    );
    assert_eq!((code, req.as_str()), (3, "terminate 0 nosuch"));
    assert_eq!(err, "ferrovpn terminate: no connection named \"nosuch\"\n");

    let (code, req, _, _) = run("rekey", &["rekey", "x"], "error not-up: x is not up\n");
    assert_eq!((code, req.as_str()), (4, "rekey 30 x"));
    let (code, _, _, _) = run(
        "late",
        &["rekey", "x"],
        "error timeout: x: not rekeyed after 30s\n",
    );
    assert_eq!(code, 5);
    let (code, _, _, _) = run(
        "fail",
        &["initiate", "x"],
        "error failed: x: NO-PROPOSAL-CHOSEN\n",
    );
    assert_eq!(code, 1);

    let (code, req, _, err) = run(
        "reload",
        &["reload"],
        "error failed: [daemon] workers cannot change while ferrovpn runs\n",
    );
    assert_eq!((code, req.as_str()), (1, "reload"));
    assert!(err.contains("workers cannot change"), "{err}");
}

#[test]
fn without_a_daemon_the_commands_exit_1() {
    for args in [
        &["initiate", "x"][..],
        &["terminate", "x"],
        &["rekey", "x"],
        &["reload"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ferrovpn"))
            .args(args)
            .args(["--socket", "/nonexistent/ferrovpn-test.sock"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("is ferrovpn up running?"),
            "{args:?}"
        );
    }
}

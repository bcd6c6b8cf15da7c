//! The `diagnose`, `history` and `status --watch` commands: fetch from the control socket,
//! reason with [`super::diagnose_all`], print.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::render;
use super::verdict::{Options, Severity};
use crate::config::parse_duration;
use crate::daemon::control;
use crate::snapshot::Snapshot;

/// Exit status of `diagnose`: nothing wrong.
pub const EXIT_HEALTHY: i32 = 0;
/// Exit status of `diagnose`: at least one problem found.
pub const EXIT_PROBLEM: i32 = 1;
/// Exit status of `diagnose`: no daemon answered (or its answer was unreadable).
pub const EXIT_NO_DAEMON: i32 = 2;

fn duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}

#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    /// Only this connection (its `name` in the configuration); default: every connection.
    #[arg(value_name = "CONNECTION")]
    pub connection: Option<String>,
    /// Print the verdicts as a JSON array instead of text.
    #[arg(long)]
    pub json: bool,
    /// ESP counts as one-way when packets went out and none came in (or the reverse) for this
    /// long.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration_arg)]
    pub esp_window: Duration,
    /// Control socket of the running daemon.
    #[arg(long, value_name = "PATH", default_value = crate::config::DEFAULT_CONTROL_SOCKET)]
    pub socket: PathBuf,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only this connection; default: every connection.
    #[arg(value_name = "CONNECTION")]
    pub connection: Option<String>,
    /// Only events of the last DURATION (e.g. 90s, 10m, 1h); default: all that are kept.
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub since: Option<Duration>,
    /// Print the daemon's snapshot (history, counter samples, live SAs) as JSON.
    #[arg(long)]
    pub json: bool,
    /// Control socket of the running daemon.
    #[arg(long, value_name = "PATH", default_value = crate::config::DEFAULT_CONTROL_SOCKET)]
    pub socket: PathBuf,
}

fn fetch(socket: &PathBuf) -> Result<Snapshot, String> {
    let answer = control::request(socket, "snapshot").map_err(|e| e.to_string())?;
    serde_json::from_str(&answer).map_err(|e| {
        format!(
            "unreadable answer from {}: {e} ({})",
            socket.display(),
            answer.lines().next().unwrap_or("")
        )
    })
}

fn unknown(s: &Snapshot, name: Option<&str>) -> Option<String> {
    let n = name?;
    if s.connections.iter().any(|c| c.name == n) {
        return None;
    }
    let names: Vec<&str> = s.connections.iter().map(|c| c.name.as_str()).collect();
    Some(format!(
        "no connection named \"{n}\" (configured: {})",
        names.join(", ")
    ))
}

/// `ferrovpn diagnose`.
pub fn diagnose(a: &DiagnoseArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let snap = match fetch(&a.socket) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(err, "ferrovpn diagnose: {e}");
            return EXIT_NO_DAEMON;
        }
    };
    if let Some(e) = unknown(&snap, a.connection.as_deref()) {
        let _ = writeln!(err, "ferrovpn diagnose: {e}");
        return EXIT_PROBLEM;
    }
    let opts = Options {
        esp_window_s: a.esp_window.as_secs().max(1),
        ..Options::default()
    };
    let verdicts = super::diagnose_all(&snap, a.connection.as_deref(), &opts);
    let text = if a.json {
        format!(
            "{}\n",
            serde_json::to_string_pretty(&verdicts).unwrap_or_default()
        )
    } else {
        render::verdicts(&verdicts)
    };
    let _ = out.write_all(text.as_bytes());
    if verdicts.iter().any(|v| v.severity == Severity::Problem) {
        EXIT_PROBLEM
    } else {
        EXIT_HEALTHY
    }
}

/// `ferrovpn history`.
pub fn history(a: &HistoryArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let snap = match fetch(&a.socket) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(err, "ferrovpn history: {e}");
            return 1;
        }
    };
    if let Some(e) = unknown(&snap, a.connection.as_deref()) {
        let _ = writeln!(err, "ferrovpn history: {e}");
        return 1;
    }
    let since = a
        .since
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let text = if a.json {
        let mut s = snap;
        if let Some(n) = &a.connection {
            s.connections.retain(|c| &c.name == n);
        }
        if let Some(d) = since {
            let from = s.now_ms.saturating_sub(d);
            for c in &mut s.connections {
                c.history.retain(|r| r.t_ms >= from);
                c.samples.retain(|r| r.t_ms >= from);
            }
        }
        format!("{}\n", serde_json::to_string(&s).unwrap_or_default())
    } else {
        render::history(&snap, a.connection.as_deref(), since)
    };
    let _ = out.write_all(text.as_bytes());
    0
}

/// `ferrovpn status --watch`: redraws the status table every `interval` until interrupted
/// (or `count` times).
pub fn watch(
    socket: &Path,
    interval: Duration,
    count: Option<u64>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let mut n = 0u64;
    let socket = socket.to_path_buf();
    loop {
        let answer = match control::request(&socket, "status") {
            Ok(a) => a,
            Err(e) => {
                let _ = writeln!(err, "ferrovpn status: {e}");
                return 1;
            }
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(0))
            .unwrap_or(0);
        // Home and clear screen (ANSI), then the table: the terminal shows one live view.
        let _ = write!(
            out,
            "\x1b[H\x1b[2J{}  every {}s, Ctrl-C to stop\n{answer}",
            render::utc(now),
            interval.as_secs()
        );
        let _ = out.flush();
        n += 1;
        if count.is_some_and(|c| n >= c) {
            return 0;
        }
        std::thread::sleep(interval);
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::tests::run_args;
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use std::time::Duration;

    #[test]
    fn without_a_daemon_diagnose_exits_2_and_history_1() {
        let (code, out, err) = run_args(&["ferrovpn", "diagnose", "--socket", "/nonexistent/s"]);
        assert_eq!(code, super::EXIT_NO_DAEMON);
        assert!(out.is_empty());
        assert!(err.contains("is ferrovpn up running?"), "{err}");
        let (code, _, err) = run_args(&["ferrovpn", "history", "--socket", "/nonexistent/s"]);
        assert_eq!(code, 1);
        assert!(err.contains("ferrovpn history"), "{err}");
        let (code, _, _) = run_args(&[
            "ferrovpn",
            "status",
            "--watch",
            "--socket",
            "/nonexistent/s",
        ]);
        assert_eq!(code, 1);
    }

    #[test]
    fn options_parse() {
        let cli = Cli::try_parse_from(["ferrovpn", "history", "site-b", "--since", "10m"]).unwrap();
        let Command::History(h) = cli.command else {
            panic!()
        };
        assert_eq!(h.connection.as_deref(), Some("site-b"));
        assert_eq!(h.since, Some(Duration::from_secs(600)));
        let cli =
            Cli::try_parse_from(["ferrovpn", "diagnose", "--json", "--esp-window", "5s"]).unwrap();
        let Command::Diagnose(d) = cli.command else {
            panic!()
        };
        assert!(d.json && d.connection.is_none());
        assert_eq!(d.esp_window, Duration::from_secs(5));
        let cli =
            Cli::try_parse_from(["ferrovpn", "status", "--watch", "--interval", "2s"]).unwrap();
        let Command::Status(s) = cli.command else {
            panic!()
        };
        assert!(s.watch);
        assert_eq!(s.interval, Duration::from_secs(2));
        for bad in [
            &["ferrovpn", "status", "--interval", "2s"][..],
            &["ferrovpn", "status", "--watch", "--json"],
            &["ferrovpn", "status", "--watch", "--interval", "0s"],
            &["ferrovpn", "history", "--since", "ten minutes"],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn help_documents_verdicts_and_exit_status() {
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        let help = cmd
            .find_subcommand_mut("diagnose")
            .unwrap()
            .render_long_help()
            .to_string();
        for want in [
            "EXIT STATUS",
            "0   healthy",
            "2   no daemon",
            "udp4500-blocked",
            "EXAMPLES",
        ] {
            assert!(help.contains(want), "missing {want:?} in\n{help}");
        }
    }
}

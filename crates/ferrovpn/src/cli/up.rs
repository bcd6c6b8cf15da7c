//! `ferrovpn up`: validate, ask for typed passwords, run the daemon in the foreground or
//! detached (`--daemon`, ready when set up).

use std::io::Write;

use crate::config::{Config, Severity};

use crate::exit_code::{EXIT_FAILURE, EXIT_OK};

use super::{LogFormat, UpArgs};

/// `ferrovpn up`: validate, set up logging, run the daemon until a signal or `down`.
pub(super) fn up(args: UpArgs, err: &mut dyn Write) -> i32 {
    let mut cfg = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(err, "{}: {e}", args.config.display());
            return EXIT_FAILURE;
        }
    };
    if crate::remote_access::wants_password(&mut cfg) {
        if let Err(e) = ask_passwords(&mut cfg, args.daemon) {
            let _ = writeln!(err, "ferrovpn up: {e}");
            return EXIT_FAILURE;
        }
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(cfg.daemon.log_level.name()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::logging::Stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match args.log_format {
        LogFormat::Text => builder.event_format(crate::logging::TextLine).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    for r in &cfg.remarks {
        match r.severity {
            Severity::Warning => tracing::warn!("{r}"),
            Severity::Note => tracing::info!("{r}"),
        }
    }
    if args.daemon {
        return up_daemon(&args.config, cfg, err);
    }
    let config_path = std::path::absolute(&args.config).unwrap_or_else(|_| args.config.clone());
    match crate::daemon::run(Some(&config_path), cfg) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            tracing::error!("{e}");
            let _ = writeln!(err, "ferrovpn up: {e}");
            EXIT_FAILURE
        }
    }
}

/// The XAuth passwords `ferrovpn up` asks for on its controlling terminal, echo off; only in
/// the foreground (`--daemon` detaches from the terminal, and a service has none).
fn ask_passwords(cfg: &mut Config, daemon: bool) -> Result<(), String> {
    use std::os::fd::AsFd;
    let tty = if daemon {
        Err("`ferrovpn up --daemon` does not ask".to_string())
    } else {
        crate::sys::tty::controlling().map_err(|e| format!("no terminal to ask on (/dev/tty: {e})"))
    };
    let terminal = tty.as_ref().map(drop).map_err(Clone::clone);
    crate::remote_access::ask_passwords(cfg, terminal, &mut |prompt| {
        let fd = tty.as_ref().map_err(Clone::clone)?;
        crate::sys::tty::read_secret(fd.as_fd(), prompt).map_err(|e| e.to_string())
    })
}

/// What the daemon child writes to its parent on the readiness pipe once set up.
const READY: &[u8] = b"ready\n";
/// Prefix of the line the child writes instead when setup fails.
const SETUP_FAILED: &[u8] = b"error: ";

/// `up --daemon`: fork; the child detaches (setsid, cwd /, stdin and stdout on /dev/null, logs
/// still on the inherited stderr) and runs the daemon; the parent waits on a pipe until the
/// child reports that setup is done (exit 0) or why it failed (the error, exit 1). A child that
/// dies without a word (killed during setup) also makes the parent exit 1.
fn up_daemon(config: &std::path::Path, cfg: Config, err: &mut dyn Write) -> i32 {
    // The child's working directory is /, so `reload` needs the file's absolute path.
    let config_path = std::path::absolute(config).unwrap_or_else(|_| config.to_path_buf());
    use std::io::Read;

    use crate::sys::process::{self, Forked};

    let (rd, wr) = match process::pipe() {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(err, "ferrovpn up: pipe: {e}");
            return EXIT_FAILURE;
        }
    };
    // No thread has been started yet, so the child is a complete copy.
    let forked = match process::fork() {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(err, "ferrovpn up: fork: {e}");
            return EXIT_FAILURE;
        }
    };
    if let Forked::Parent(pid) = forked {
        drop(wr);
        let mut said = Vec::new();
        let _ = std::fs::File::from(rd).take(4096).read_to_end(&mut said);
        if said == READY {
            return EXIT_OK;
        }
        if let Some(msg) = said.strip_prefix(SETUP_FAILED) {
            let msg = String::from_utf8_lossy(msg);
            let _ = writeln!(err, "ferrovpn up: {}", msg.trim_end());
        } else {
            let status = process::wait_child(pid);
            let how = if libc::WIFSIGNALED(status) {
                format!("killed by signal {}", libc::WTERMSIG(status))
            } else {
                format!("exit status {}", libc::WEXITSTATUS(status))
            };
            let _ = writeln!(
                err,
                "ferrovpn up: the daemon exited during setup ({how}) without reporting why; see its log"
            );
        }
        return EXIT_FAILURE;
    }
    drop(rd);
    process::detach();
    let mut pipe = Some(std::fs::File::from(wr));
    let result = crate::daemon::run_with(Some(&config_path), cfg, || {
        if let Some(mut p) = pipe.take() {
            let _ = p.write_all(READY);
        }
    });
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => {
            tracing::error!("{e}");
            if let Some(mut p) = pipe.take() {
                let _ = p.write_all(SETUP_FAILED);
                let _ = writeln!(p, "{e}");
            }
            EXIT_FAILURE
        }
    }
}

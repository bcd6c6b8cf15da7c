//! `cargo run -p xtask -- assets OUTDIR`: writes ferrovpn's man pages (OUTDIR/man/ferrovpn.1 and
//! one ferrovpn-SUBCOMMAND.1 per subcommand) and shell completions (OUTDIR/completions/:
//! bash, zsh, fish) from the clap definitions the binary itself parses, so they never drift.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [cmd, out] if cmd == "assets" => match assets(Path::new(out)) {
            Ok(n) => {
                println!("xtask: wrote {n} files under {out}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("xtask: {e}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("usage: cargo run -p xtask -- assets OUTDIR");
            ExitCode::from(2)
        }
    }
}

fn assets(out: &Path) -> std::io::Result<usize> {
    let man = out.join("man");
    let completions = out.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    let mut cmd = ferrovpn::cli::Cli::command();
    cmd.build();
    let mut written = 0;
    written += man_page(&cmd, "ferrovpn", &man)?;
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let name = format!("ferrovpn-{}", sub.get_name());
        // Command::name takes a static string; this runs once per subcommand in a build tool.
        let sub = sub.clone().name(&*Box::leak(name.clone().into_boxed_str()));
        written += man_page(&sub, &name, &man)?;
    }
    for (shell, file) in [
        (Shell::Bash, "ferrovpn"),
        (Shell::Zsh, "_ferrovpn"),
        (Shell::Fish, "ferrovpn.fish"),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "ferrovpn", &mut buf);
        std::fs::write(completions.join(file), buf)?;
        written += 1;
    }
    Ok(written)
}

fn man_page(cmd: &clap::Command, name: &str, dir: &Path) -> std::io::Result<usize> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut buf)?;
    let path: PathBuf = dir.join(format!("{name}.1"));
    std::fs::write(path, buf)?;
    Ok(1)
}

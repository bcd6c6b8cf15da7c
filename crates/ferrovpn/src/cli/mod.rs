//! The `ferrovpn` command line: `up`, `down`, `status`, `diagnose`, `history`, `check`, `decode`.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{Config, Purpose};

use crate::daemon::control::{ConnOp, Outcome};
pub use crate::exit_code::{EXIT_FAILURE, EXIT_OK, EXIT_USAGE};

mod check;
mod up;

pub use check::describe;
use up::up;

const MAIN_AFTER: &str = "\
EXAMPLES:
    Validate a configuration and show what would be negotiated:
        ferrovpn check -c /etc/ferrovpn/ferrovpn.toml

    Bring the tunnels up in the foreground, logging JSON:
        ferrovpn up -c /etc/ferrovpn/ferrovpn.toml --log-format json

    Show the state of a running daemon and tear it down:
        ferrovpn status
        ferrovpn down

    Change it while it runs (reload re-reads the file, as SIGHUP does):
        ferrovpn reload
        ferrovpn rekey site-b
        ferrovpn terminate site-b
        ferrovpn initiate site-b

    Ask why a tunnel is down, and what happened lately:
        ferrovpn diagnose
        ferrovpn history site-b --since 10m

FILES:
    /etc/ferrovpn/*.toml    configuration (see config/README.md for every key)
    /run/ferrovpn/ferrovpn.sock  control socket of a running daemon (daemon.control_socket,
                                 by default in daemon.run_dir)
    /run/ferrovpn/PID.state      what a running daemon created (daemon.run_dir)

EXIT STATUS:
    0   success (for check: the configuration is valid)
    1   the configuration is invalid or the operation failed; the reason is printed on stderr
    2   usage error
    3   initiate, terminate, rekey: no connection of that name
    4   terminate, rekey: the connection is not up
    5   initiate, rekey: not done within --timeout
    diagnose has its own: 0 no problem found, 1 a problem found, 2 no daemon answered";

/// Userspace IKEv1/IPsec VPN endpoint.
#[derive(Debug, Parser)]
#[command(
    name = "ferrovpn",
    version,
    about = "Userspace IKEv1/IPsec VPN endpoint",
    long_about = "ferrovpn is a userspace IKEv1 (RFC 2409) / IPsec ESP (RFC 4303) VPN endpoint. It \
negotiates Main or Aggressive Mode with pre-shared keys or certificates (RSA, ECDSA) and \
Quick Mode SAs with optional PFS, over IPv4 and IPv6, handles NAT traversal (RFC 3947) and dead \
peer detection (RFC 3706), and moves ESP packets between a TUN device and UDP/raw sockets in \
software. As a remote-access client or gateway it runs XAuth and Mode Config (Cisco Unity \
attributes, IPv4 and IPv6 addresses). Connections are described in a TOML file \
using strongSwan's proposal syntax (aes256-sha256-modp2048, aes128gcm16).",
    after_long_help = MAIN_AFTER
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the daemon and bring up the configured connections.
    #[command(
        long_about = "Start the daemon: open the TUN devices and sockets, install routes and \
policy rules, and initiate or await each connection as its `start` key says. Runs in the \
foreground unless --daemon is given; with --daemon it exits 0 once the daemon is set up, or 1 \
with the reason. Everything installed in the routing table is removed again on exit. Only what a \
dead ferrovpn recorded in its run_dir is removed at startup (its policy rules and control socket \
after a kill -9); an interface, rule or file that a running ferrovpn or anything else holds is an \
error and left alone. With --log-format json every IKE line carries conn, cookies and, for messages, msg \
(MM1...QM3, INFO) and message_id fields. Optional, in [daemon]: metrics_listen serves Prometheus \
metrics on GET /metrics (loopback only unless metrics_allow_remote = true); save_keys_dir \
(debugging only, announced at WARN) writes every SA's keys to Wireshark's ikev1_decryption_table \
and esp_sa files there, which `ferrovpn decode --keys DIR` also reads. A remote-access client connection with xauth_user but no xauth_password_file makes `up` ask for that XAuth password on its terminal first (echo off; kept in memory for every XAuth of the connection); without a terminal, and with --daemon, `up` exits 1 with the reason.",
        after_long_help = "EXAMPLES:\n    ferrovpn up -c /etc/ferrovpn/ferrovpn.toml\n    \
ferrovpn up -c site.toml --daemon --log-format json\n\n\
EXIT STATUS:\n    0   the daemon stopped cleanly (with --daemon: the daemon is set up and runs)\n    \
1   the configuration is invalid or setup failed\n    2   usage error"
    )]
    Up(UpArgs),
    /// Ask a running daemon to tear down all connections and exit.
    #[command(
        long_about = "Connect to the control socket of a running daemon and ask it to delete its \
SAs (sending delete notifications to the peers), remove its routes and rules, and exit.",
        after_long_help = "EXAMPLES:\n    ferrovpn down\n    ferrovpn down --socket /run/ferrovpn-lab.sock\n\n\
EXIT STATUS:\n    0   the daemon acknowledged and stopped: its teardown is done and its control socket \
gone, so an `up` may follow at once\n    1   no daemon answered on the socket, or it still answered 60s after \
acknowledging\n    2   usage error"
    )]
    Down(DownArgs),
    /// Show connections, SAs and counters of a running daemon.
    #[command(
        long_about = "Connect to the control socket of a running daemon and print each \
connection's phase 1 and phase 2 SAs, their lifetimes, NAT-T and DPD state and packet/byte \
counters. With --watch the table is fetched again and redrawn in place every --interval until \
interrupted; `ferrovpn history` shows what led there and `ferrovpn diagnose` why.",
        after_long_help = "EXAMPLES:\n    ferrovpn status\n    ferrovpn status --json | jq .\n    \
ferrovpn status --watch --interval 2s\n\n\
EXIT STATUS:\n    0   status printed\n    1   no daemon answered on the socket\n    \
2   usage error"
    )]
    Status(StatusArgs),
    /// Say why a tunnel is down (or one-way), with the evidence and the next step.
    #[command(
        long_about = "Fetch the live state, counters and recent IKE events of a running daemon \
and reason about them as an engineer reading the trace would. Each verdict comes with the \
evidence that proves it (messages by name MM1-MM6, AM1-AM3, QM1-QM3, INFO, with their cookies; \
ESP counters) and the next step to take. Verdicts: unreachable (no reply to MM1/AM1 after the \
retransmissions: peer down or UDP 500 blocked), udp4500-blocked (answers on UDP 500, silence \
after the NAT-T float to UDP 4500), no-proposal-chosen (our offer and the peer's side by side), \
psk-mismatch (MM5/MM6 do not decrypt, HASH invalid, or silence after MM5), identity-mismatch, \
selectors-refused (INVALID-ID-INFORMATION, both selector sets), esp-not-arriving (encapsulated \
packets rising, decapsulated flat for the --esp-window: ESP or UDP 4500 dropped inbound) and \
its mirror esp-not-sent, simultaneous (both sides initiating: more than one cookie pair in \
flight), peer-dead (DPD), expired-without-rekey, stalled (the peer stopped answering mid \
exchange), failed (any other failure); or healthy, waiting, negotiating when nothing is wrong.\n\n\
Failures older than the last IPsec SA established are considered overcome. Run it on both \
gateways when ESP is one-way: the side whose decapsulated counter stays flat is the one whose \
inbound path drops ESP.",
        after_long_help = "EXAMPLES:\n    ferrovpn diagnose\n    ferrovpn diagnose site-b\n    \
ferrovpn diagnose --json | jq '.[] | select(.severity == \"problem\") | .code'\n\n\
EXIT STATUS:\n    0   healthy: no problem found\n    1   at least one problem found (or no \
such connection)\n    2   no daemon answered on the control socket (also: usage error)"
    )]
    Diagnose(crate::diagnose::command::DiagnoseArgs),
    /// Print the recent IKE events of each connection, with cookies and message names.
    #[command(
        long_about = "Print the IKE events a running daemon keeps per connection (the last 256): \
every message sent and received by its operator name (MM1-MM6, AM1-AM3, QM1-QM3, INFO) with \
payload list, both cookies, message ID and UDP port, and every SA established, failed (with the \
reason), deleted or declared dead, each with UTC wall time and seconds since the daemon started. \
Then the ESP packets encapsulated and decapsulated over the last two minutes.",
        after_long_help = "EXAMPLES:\n    ferrovpn history\n    ferrovpn history site-b --since 10m\n    \
ferrovpn history --json | jq '.connections[0].samples[-1]'\n\n\
EXIT STATUS:\n    0   history printed\n    1   no daemon answered, or no such connection\n    \
2   usage error"
    )]
    History(crate::diagnose::command::HistoryArgs),
    /// Validate a configuration file and print what would be negotiated.
    #[command(
        long_about = "Parse and validate a configuration file without touching the system, then \
print per connection what would be negotiated: the phase 1 mode and proposals, the ESP proposals \
and PFS group, lifetimes, traffic selectors and routes, NAT traversal and DPD, with every path \
resolved (relative paths are relative to the file's directory). It runs the validation `up` \
runs, and looks at the host: the psk_file and save_keys_dir (owner, mode, no symlinks), \
interfaces of the configured names, the control socket path. On error, print one message \
naming the connection and key that is wrong. Warnings (legacy algorithms, chacha20poly1305 \
outside ferrovpn pairs, a psk_file not created yet, which `up` refuses) leave the status 0.",
        after_long_help = "EXAMPLES:\n    ferrovpn check -c /etc/ferrovpn/ferrovpn.toml\n\n\
EXIT STATUS:\n    0   the configuration is valid (warnings, if any, on stdout)\n    1   the configuration is invalid (the reason \
is printed on stderr)\n    2   usage error"
    )]
    Check(CheckArgs),
    /// Decode IKEv1 and ESP traffic in a capture file (pcap or pcapng).
    #[command(
        long_about = "Read a capture file (classic pcap or pcapng, as written by tcpdump, dumpcap \
or tshark; Ethernet, raw IP or Linux cooked link layers; IPv4 and IPv6) and print every ISAKMP \
message on UDP 500 and 4500 in capture order, named as operators know them: MM1-MM6 (Main \
Mode), AM1-AM3 (Aggressive Mode), QM1-QM3 (Quick Mode) and INFO, with time, addresses and \
ports, both cookies, message ID, flags and the payload list as strongSwan logs it \
([ SA V V V ]). Retransmissions (the same bytes again) are marked, and so are simultaneous \
negotiations: more than one cookie pair in flight between the same two addresses. ESP packets \
(IP protocol 50 or UDP 4500) are grouped by SPI and direction, with their count, first and \
last sequence numbers, missing sequence numbers and reordering.\n\n\
With --keys, encrypted messages (MM5, MM6, AM3, Quick Mode and Informational) are decrypted \
and their payload lists printed: the key file is Wireshark's IKEv1 decryption table, one line \
per IKE SA with the initiator cookie and the phase 1 encryption key in hex, as strongSwan's \
save-keys plugin writes it. The cipher and hash come from the SA chosen in MM2/AM2 and the IVs \
from the KE payloads, so the capture must hold the whole exchange from MM1/AM1 on. With \
Wireshark's ESP SA table (esp_sa: protocol, source, destination, SPI, encryption, key, \
authentication, key), ESP packets (AES-GCM, ChaCha20-Poly1305, AES-CBC with HMAC; raw or in \
UDP 4500) are decrypted and their inner packets summarised per SPI (source, destination, \
protocol). --keys takes a directory holding both tables, as the daemon's save_keys_dir or \
strongSwan's save-keys plugin write them, or a single table file; it may be repeated. UDP GSO \
super-packets (several ESP-in-UDP datagrams in one frame, as tcpdump on a sending host that \
uses UDP GSO, like ferrovpn, records them) are split into their datagrams.",
        after_long_help = "EXAMPLES:\n    tcpdump -i eth0 -w ike.pcap 'udp port 500 or udp port 4500 or esp'\n    \
ferrovpn decode ike.pcap\n    ferrovpn decode ike.pcapng --keys ikev1_decryption_table -v\n    \
ferrovpn decode ike.pcap --keys /run/ferrovpn-keys\n\n\
KEY FILES:\n    ikev1_decryption_table:\n    \"294fc81dda83b4c6\",\"ea7ca8ff575625e1083bd7629832e4c8...\"\n    \
esp_sa:\n    \"IPv4\",\"192.0.2.1\",\"192.0.2.2\",\"0xc65cbcd3\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"0x1f2e...\",\"NULL\",\"\"\n    \
(quotes optional in the first; blank lines and lines starting with # are ignored)\n\n\
KEY LINES THAT CANNOT BE USED (malformed, an algorithm decode does not implement, a key of the \
wrong length, an address of the wrong family) are skipped with a warning on stderr naming the \
file, the line and why; the other lines are used. A warning also names an esp_sa line whose SPI the \
capture shows only between other addresses.\n\n\
EXIT STATUS:\n    0   the capture was decoded; also when its last record is cut short (as a \
killed tcpdump leaves it): every frame before it is printed, then a warning on stderr\n    \
1   a file could not be read or is not a capture, or the capture is damaged before its end \
(the frames before the damage are printed)\n    2   usage error"
    )]
    Decode(DecodeArgs),
    /// Convert strongSwan or Libreswan connections (IKEv1, PSK, site to site) into ferrovpn TOML.
    #[command(
        long_about = "Read a strongSwan ipsec.conf or swanctl.conf, or a Libreswan ipsec.conf, and \
write its IKEv1 connections with pre-shared keys as ferrovpn TOML (policy_based, one Quick Mode \
SA pair per local/remote subnet). `left` is taken as this host. Every setting that cannot be \
carried over is reported, with the reason, on stderr and as an \"import:\" comment in the TOML; \
IKEv2 connections, certificate/XAuth/EAP authentication, transport mode, host-to-host tunnels and \
addresses resolved at run time (%defaultroute, %any, host names) are not converted. PSKs are \
looked up in --secrets files (ipsec.secrets, or a swanctl.conf secrets section) and written to \
NAME.psk next to the -o file with mode 0600; they never go to stdout. Without -o, or without a \
matching secret, psk_file names a placeholder file that you must create.",
        after_long_help = "EXAMPLES:\n    ferrovpn import /etc/ipsec.conf --secrets /etc/ipsec.secrets -o /etc/ferrovpn/ferrovpn.toml\n    \
ferrovpn import /etc/swanctl/swanctl.conf -o site.toml\n    \
ferrovpn import /etc/ipsec.d/branch.conf --format libreswan\n\n\
EXIT STATUS:\n    0   at least one connection was converted (the report on stderr lists what was not)\n    \
1   nothing could be converted, or a file could not be read or written\n    2   usage error"
    )]
    Import(crate::import::ImportArgs),
    /// Bring one connection up now and wait until its IPsec SAs are installed.
    #[command(
        long_about = "Ask the running daemon to negotiate the connection NAME now (phase 1, then a \
Quick Mode per configured pair), as swanctl --initiate does, and wait until its IPsec SAs are \
installed, the negotiation fails, or --timeout passes. A connection that is up is left as it \
is. Also ends the hold of a `ferrovpn terminate`: a start = \"initiate\" connection is \
initiated again after failures from then on.",
        after_long_help = "EXAMPLES:\n    ferrovpn initiate site-b\n    ferrovpn initiate site-b --timeout 1m\n\n\
EXIT STATUS:\n    0   the connection is up (its IPsec SAs are installed)\n    \
1   the negotiation failed (the reason is printed), or no daemon answered\n    2   usage error\n    \
3   no connection of that name\n    5   not up within --timeout (the negotiation may still complete)"
    )]
    Initiate(ConnArgs),
    /// Delete one connection's IPsec and ISAKMP SAs, telling the peer.
    #[command(
        long_about = "Ask the running daemon to delete every IPsec SA pair and ISAKMP SA of the \
connection NAME, sending DELETE notifications to the peer, as swanctl --terminate does. The \
TUN device and routes stay. The connection then stays down: the daemon does not initiate it \
again, not even a start = \"initiate\" connection (no retries, no DPD restart), until \
`ferrovpn initiate NAME`, a reload that changes it, or the peer initiates (a peer that \
initiates, with start = \"initiate\" on its side, will usually do so within its retry time; \
terminate it there too to keep the tunnel down).",
        after_long_help = "EXAMPLES:\n    ferrovpn terminate site-b\n\n\
EXIT STATUS:\n    0   SAs deleted\n    1   no daemon answered\n    2   usage error\n    \
3   no connection of that name\n    4   the connection was not up (it is held down all the same)"
    )]
    Terminate(TerminateArgs),
    /// Replace one connection's IPsec SAs with fresh Quick Mode SAs.
    #[command(
        long_about = "Ask the running daemon to negotiate a new Quick Mode for every IPsec SA \
pair of the connection NAME over its ISAKMP SA, as swanctl --rekey does for CHILD_SAs, and wait \
until the new pairs are installed. Make-before-break: traffic moves to the new pair at once and \
the old one is deleted (the peer told) a few seconds later, so no packet is lost. The ISAKMP SA \
is kept.",
        after_long_help = "EXAMPLES:\n    ferrovpn rekey site-b\n\n\
EXIT STATUS:\n    0   new IPsec SAs installed\n    1   a Quick Mode failed (the reason is printed), \
or no daemon answered\n    2   usage error\n    3   no connection of that name\n    \
4   the connection is not up\n    5   not done within --timeout"
    )]
    Rekey(ConnArgs),
    /// Re-read the configuration file of the running daemon (as SIGHUP does).
    #[command(
        long_about = "Ask the running daemon to re-read its configuration file (the -c file of \
`ferrovpn up`), as SIGHUP does. The new file is checked first, as `ferrovpn check` does: if it \
is invalid, or changes a [daemon] setting that cannot change while running, the reload is \
refused with the error, and nothing changes. Otherwise added connections are set up (TUN device, \
address, routes) and started, removed ones are deleted (the peer told) and their TUN device and \
routes removed, changed ones (any setting differs) are deleted and set up again under the new \
settings, and unchanged ones are not touched: their SAs, SPIs and counters stay.",
        after_long_help = "EXAMPLES:\n    ferrovpn reload\n    systemctl reload ferrovpn\n\n\
EXIT STATUS:\n    0   the new configuration is in effect (what changed is printed)\n    \
1   refused (the error is printed; the running configuration is unchanged), or no daemon answered\n    \
2   usage error"
    )]
    Reload(DownArgs),
    /// Manage the XAuth users file of a remote-access gateway (`users_file`).
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Set a user's password in FILE (created with mode 600 if missing); the password is the
    /// first line of standard input (asked for, echo off, when it is a terminal). Stored as
    /// SHA-512 crypt. A running gateway takes the change at `ferrovpn reload`.
    #[command(
        after_long_help = "EXAMPLES:\n    ferrovpn user add /etc/ferrovpn/users alice\n    \
printf '%s\\n' \"$PW\" | ferrovpn user add users alice\n\n\
EXIT STATUS:\n    0   stored\n    1   the file or the input was refused (the reason is printed)"
    )]
    Add {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        #[arg(value_name = "NAME")]
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct ConnArgs {
    /// Connection name (its `name` key).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// How long to wait for the result (5s, 1m).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = watch_interval)]
    pub timeout: std::time::Duration,
    /// Control socket of the running daemon.
    #[arg(long, value_name = "PATH", default_value = crate::config::DEFAULT_CONTROL_SOCKET)]
    pub socket: PathBuf,
}

#[derive(Debug, Args)]
pub struct TerminateArgs {
    /// Connection name (its `name` key).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Control socket of the running daemon.
    #[arg(long, value_name = "PATH", default_value = crate::config::DEFAULT_CONTROL_SOCKET)]
    pub socket: PathBuf,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Configuration file (TOML).
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
    /// Run in the background: exits 0 once the daemon is set up (TUN devices, sockets, routes,
    /// control socket), or 1 with the error when setup fails.
    #[arg(long)]
    pub daemon: bool,
    /// Format of log lines written to stderr (json: one object per line, IKE lines with conn,
    /// cookies, msg and message_id fields).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Control socket of the running daemon.
    #[arg(long, value_name = "PATH", default_value = crate::config::DEFAULT_CONTROL_SOCKET)]
    pub socket: PathBuf,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print machine-readable JSON instead of text.
    #[arg(long, conflicts_with = "watch")]
    pub json: bool,
    /// Redraw the status table live until interrupted (Ctrl-C).
    #[arg(long)]
    pub watch: bool,
    /// Time between redraws with --watch (whole seconds: 1s, 5s, 1m).
    #[arg(long, value_name = "DURATION", default_value = "1s", requires = "watch",
          value_parser = watch_interval)]
    pub interval: std::time::Duration,
    /// With --watch: stop after this many redraws.
    #[arg(long, value_name = "N", requires = "watch")]
    pub count: Option<u64>,
    /// Control socket of the running daemon.
    #[arg(long, value_name = "PATH", default_value = crate::config::DEFAULT_CONTROL_SOCKET)]
    pub socket: PathBuf,
}

fn watch_interval(s: &str) -> Result<std::time::Duration, String> {
    let d = crate::config::parse_duration(s)?;
    if d.is_zero() {
        return Err("must be at least 1s".into());
    }
    Ok(d)
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Configuration file (TOML) to validate.
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// Capture file (pcap or pcapng).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Key export directory (ikev1_decryption_table and esp_sa, as [daemon] save_keys_dir or
    /// strongSwan's save-keys plugin write them) or one of those files; may be repeated.
    // The doc comment is also `--help` text, where "[daemon]" must stay a plain TOML table name.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(long, value_name = "DIR|FILE")]
    pub keys: Vec<PathBuf>,
    /// Also print every payload's contents (IDs, SA transforms, notify types, SPIs, sizes).
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Entry point of the binary: parses `std::env::args` and returns the exit status.
pub fn main() -> i32 {
    match Cli::try_parse() {
        Ok(cli) => run(cli, &mut std::io::stdout(), &mut std::io::stderr()),
        Err(e) => {
            let _ = e.print();
            e.exit_code()
        }
    }
}

/// How long `down` waits for the daemon to finish its teardown (10,000 tunnels take a few
/// seconds).
const DOWN_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Waits until nothing accepts connections on the control socket any more (the daemon removes
/// it as the last step of its teardown); false after `limit`.
fn wait_until_stopped(socket: &std::path::Path, limit: std::time::Duration) -> bool {
    let until = std::time::Instant::now() + limit;
    loop {
        if std::os::unix::net::UnixStream::connect(socket).is_err() {
            return true;
        }
        if std::time::Instant::now() >= until {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Runs a parsed command, writing its output and diagnostics to the given streams.
pub fn run(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match cli.command {
        Command::Up(args) => up(args, err),
        Command::Down(args) => match crate::daemon::control::request(&args.socket, "down") {
            Ok(answer) => {
                let _ = out.write_all(answer.as_bytes());
                // The daemon answers before its teardown: wait for it to finish, so that an
                // `up` right after does not meet its interfaces and rules.
                if wait_until_stopped(&args.socket, DOWN_WAIT) {
                    let _ = writeln!(out, "ok: stopped");
                    EXIT_OK
                } else {
                    let _ = writeln!(
                        err,
                        "ferrovpn down: the daemon acknowledged but still answers on {} after {}s",
                        args.socket.display(),
                        DOWN_WAIT.as_secs()
                    );
                    EXIT_FAILURE
                }
            }
            Err(e) => {
                let _ = writeln!(err, "ferrovpn down: {e}");
                EXIT_FAILURE
            }
        },
        Command::Status(args) if args.watch => {
            crate::diagnose::command::watch(&args.socket, args.interval, args.count, out, err)
        }
        Command::Diagnose(args) => crate::diagnose::command::diagnose(&args, out, err),
        Command::History(args) => crate::diagnose::command::history(&args, out, err),
        Command::Status(args) => {
            let cmd = if args.json { "status json" } else { "status" };
            match crate::daemon::control::request(&args.socket, cmd) {
                Ok(answer) => {
                    let _ = out.write_all(answer.as_bytes());
                    EXIT_OK
                }
                Err(e) => {
                    let _ = writeln!(err, "ferrovpn status: {e}");
                    EXIT_FAILURE
                }
            }
        }
        Command::Initiate(a) => {
            conn_command(ConnOp::Initiate, &a.name, a.timeout, &a.socket, out, err)
        }
        Command::Rekey(a) => conn_command(ConnOp::Rekey, &a.name, a.timeout, &a.socket, out, err),
        Command::Terminate(a) => conn_command(
            ConnOp::Terminate,
            &a.name,
            std::time::Duration::ZERO,
            &a.socket,
            out,
            err,
        ),
        Command::User(UserCommand::Add { file, name }) => {
            use std::os::fd::AsFd;
            let stdin = std::io::stdin();
            let line = if crate::sys::tty::is_terminal(stdin.as_fd()) {
                // Typed: echo off, as `ferrovpn up` asks for a client's password.
                crate::sys::tty::read_secret(stdin.as_fd(), &format!("password for {name}: "))
                    .and_then(|b| {
                        String::from_utf8(b.to_vec())
                            .map(zeroize::Zeroizing::new)
                            .map_err(|_| std::io::Error::other("not UTF-8"))
                    })
            } else {
                let mut line = zeroize::Zeroizing::new(String::new());
                stdin.read_line(&mut line).map(|_| line)
            };
            let line = match line {
                Ok(l) => l,
                Err(e) => {
                    let _ = writeln!(err, "ferrovpn user add: reading the password: {e}");
                    return EXIT_FAILURE;
                }
            };
            let password = line.trim_end_matches(['\n', '\r']);
            match crate::users::add(&file, &name, password) {
                Ok(()) => {
                    let _ = writeln!(out, "user {name} stored in {}", file.display());
                    EXIT_OK
                }
                Err(e) => {
                    let _ = writeln!(err, "ferrovpn user add: {e}");
                    EXIT_FAILURE
                }
            }
        }
        Command::Reload(a) => {
            let answer = crate::daemon::control::request_waiting(
                &a.socket,
                "reload",
                std::time::Duration::from_secs(70),
            );
            report("reload", answer, out, err)
        }
        Command::Decode(args) => crate::decode::run(&args.file, &args.keys, args.verbose, out, err),
        Command::Import(args) => crate::import::run(&args, out, err),
        Command::Check(args) => match Config::load_for(&args.config, Purpose::Check) {
            Ok(cfg) => {
                let _ = out.write_all(describe(&args.config, &cfg).as_bytes());
                EXIT_OK
            }
            Err(e) => {
                let _ = writeln!(err, "{}: {e}", args.config.display());
                EXIT_FAILURE
            }
        },
    }
}

/// `initiate`, `terminate`, `rekey`: one request, its answer printed, its exit status returned.
fn conn_command(
    op: ConnOp,
    name: &str,
    wait: std::time::Duration,
    socket: &PathBuf,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let wait = wait.min(crate::daemon::control::MAX_WAIT);
    let cmd = format!("{} {} {name}", op.word(), wait.as_secs());
    let answer = crate::daemon::control::request_waiting(
        socket,
        &cmd,
        wait + std::time::Duration::from_secs(10),
    );
    report(op.word(), answer, out, err)
}

/// Prints a control answer (success on stdout, anything else on stderr) and maps it to the
/// exit status.
fn report(
    what: &str,
    answer: std::io::Result<String>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    match answer {
        Ok(text) => {
            let o = Outcome::parse(&text);
            if o.exit_code() == EXIT_OK {
                let _ = writeln!(out, "{}", o.message());
            } else {
                let _ = writeln!(err, "ferrovpn {what}: {}", o.message());
            }
            o.exit_code()
        }
        Err(e) => {
            let _ = writeln!(err, "ferrovpn {what}: {e}");
            EXIT_FAILURE
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Runs the CLI on `args`: exit code, stdout, stderr.
    pub(crate) fn run_args(args: &[&str]) -> (i32, String, String) {
        let cli = Cli::try_parse_from(args).unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(cli, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn commands_without_a_daemon_or_config_fail_with_a_reason() {
        let (code, _, err) = run_args(&["ferrovpn", "up", "-c", "/nonexistent/x.toml"]);
        assert_eq!(code, EXIT_FAILURE);
        assert!(err.contains("/nonexistent/x.toml"), "{err}");
        for args in [
            &["ferrovpn", "down", "--socket", "/nonexistent/s"][..],
            &["ferrovpn", "status", "--json", "--socket", "/nonexistent/s"],
        ] {
            let (code, out, err) = run_args(args);
            assert_eq!(code, EXIT_FAILURE);
            assert!(out.is_empty());
            assert!(err.contains("is ferrovpn up running?"), "{err}");
        }
    }

    #[test]
    fn options_parse() {
        let cli = Cli::try_parse_from([
            "ferrovpn",
            "up",
            "-c",
            "a.toml",
            "--daemon",
            "--log-format",
            "json",
        ])
        .unwrap();
        let Command::Up(a) = cli.command else {
            panic!()
        };
        assert!(a.daemon);
        assert_eq!(a.log_format, LogFormat::Json);
        let cli = Cli::try_parse_from(["ferrovpn", "status", "--socket", "/tmp/s"]).unwrap();
        let Command::Status(s) = cli.command else {
            panic!()
        };
        assert_eq!(s.socket, PathBuf::from("/tmp/s"));
        assert!(Cli::try_parse_from(["ferrovpn", "check"]).is_err());
        assert!(Cli::try_parse_from(["ferrovpn", "up", "-c", "a", "--log-format", "xml"]).is_err());
    }

    #[test]
    fn long_help_documents_exit_codes_and_examples() {
        let mut cmd = Cli::command();
        let help = cmd.render_long_help().to_string();
        assert!(help.contains("EXIT STATUS"));
        assert!(help.contains("EXAMPLES"));
        let check = cmd
            .find_subcommand_mut("check")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(check.contains("EXIT STATUS") && check.contains("--config <FILE>"));
    }

    /// The README's first command and every example pass `check` on a fresh clone, where the
    /// key files they name do not exist yet; `up` refuses the same file for that reason.
    #[test]
    fn check_accepts_every_example_and_up_wants_its_key_file() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for name in ["route-based.toml", "policy-based.toml"] {
            let f = root.join("config").join(name);
            let (code, out, err) = run_args(&["ferrovpn", "check", "-c", f.to_str().unwrap()]);
            assert_eq!(code, EXIT_OK, "{name}: {err}");
            assert!(out.contains(": OK, "), "{out}");
            if !std::path::Path::new("/etc/ferrovpn").exists() {
                assert!(out.contains("  PSK         from /etc/ferrovpn/"), "{out}");
                assert!(
                    out.contains(
                        ".psk does not exist (yet): `ferrovpn up` refuses to start until it does"
                    ),
                    "{out}"
                );
                let (code, _, err) = run_args(&["ferrovpn", "up", "-c", f.to_str().unwrap()]);
                assert_eq!(code, EXIT_FAILURE);
                assert!(err.contains(".psk does not exist\n"), "{err}");
            }
        }
    }

    #[test]
    fn check_shows_resolved_paths_and_warnings() {
        let dir = std::env::temp_dir().join(format!("ferrovpn-cli-paths-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("keys")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("keys"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(dir.join("k.psk"), "secret").unwrap();
        std::fs::set_permissions(dir.join("k.psk"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        let f = dir.join("c.toml");
        std::fs::write(
            &f,
            "[daemon]\ncontrol_socket = \"ctl.sock\"\nsave_keys_dir = \"keys\"\n\n[[connection]]\nname = \"a\"\nlocal_addr = \"192.0.2.1\"\nremote_addr = \"192.0.2.2\"\npsk_file = \"k.psk\"\nike = \"aes128-sha1-modp2048\"\nesp = \"chacha20poly1305\"\nstart = \"initiate\"\n[connection.route_based]\ninterface = \"fv0\"\n",
        )
        .unwrap();
        let (code, out, err) = run_args(&["ferrovpn", "check", "-c", f.to_str().unwrap()]);
        assert_eq!(code, EXIT_OK, "{err}");
        let d = dir.display();
        for want in [
            format!("control socket {d}/ctl.sock,"),
            format!("every SA's keys will be written to {d}/keys "),
            format!("  PSK         from {d}/k.psk\n"),
            "  warning     ike: sha1 in 'aes128-sha1-modp2048' is a legacy hash".to_string(),
            "  warning     esp: chacha20poly1305 in 'chacha20poly1305' works only between ferrovpn peers".to_string(),
        ] {
            assert!(out.contains(&want), "missing {want:?} in\n{out}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn check_reports_what_would_be_negotiated() {
        let dir = std::env::temp_dir().join(format!("ferrovpn-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(
            &f,
            r#"
[[connection]]
name = "site-b"
local_addr = "192.0.2.1"
remote_addr = "192.0.2.2"
psk = "x"
ike = "aes256-sha256-modp2048"
esp = "aes128gcm16-ecp256-modp3072, aes256-sha256-ecp256-modp3072"
esp_lifetime_bytes = 1000000
start = "initiate"
[connection.route_based]
interface = "fv0"
address = "198.51.100.1/32"
"#,
        )
        .unwrap();
        let (code, out, err) = run_args(&["ferrovpn", "check", "-c", f.to_str().unwrap()]);
        assert_eq!(code, EXIT_OK, "{err}");
        for want in [
            "OK, 1 connection",
            "connection \"site-b\"",
            "IKEv1 Main Mode, PSK, we initiate",
            "aes256-sha256-modp2048 (PRF HMAC-SHA256)",
            "aes128gcm16-ecp256",
            "PFS         ecp256, modp3072\n",
            "ESP life    1h or 1000000 bytes",
            "IKE life    8h",
            "0.0.0.0/0 <=> 0.0.0.0/0",
            "TUN fv0 (MTU auto), address 198.51.100.1/32",
            "bypass it by fwmark",
            "NAT-T       auto",
            "DPD         R-U-THERE after 30s idle, peer dead after 150s",
        ] {
            assert!(out.contains(want), "missing {want:?} in\n{out}");
        }
        assert!(!out.contains("\"x\""));

        std::fs::write(&f, "[[connection]]\nname = \"a\"\n").unwrap();
        let (code, out, err) = run_args(&["ferrovpn", "check", "-c", f.to_str().unwrap()]);
        assert_eq!(code, EXIT_FAILURE);
        assert!(out.is_empty());
        assert!(err.contains("missing field"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();

        let (code, _, err) = run_args(&["ferrovpn", "check", "-c", "/nonexistent/x.toml"]);
        assert_eq!(code, EXIT_FAILURE);
        assert!(err.contains("cannot read /nonexistent/x.toml"), "{err}");
    }
}

//! The kernel's ceiling per socket type (issue #18): how many 1400-byte payloads per second the
//! kernel moves from one process to another, with no crypto and no TUN, through
//!
//! - `raw`: a protocol 50 raw socket, `sendmmsg` of one packet per message (the kernel writes
//!   the IPv4 header), received on a protocol 50 raw socket with `recvmmsg`;
//! - `hdrincl`: the send-only `IPPROTO_RAW` socket the data plane uses, our own 20-byte header
//!   in its own iovec, received as `raw`;
//! - `udp-gso`: UDP with GSO (`UDP_SEGMENT`, one message a train of up to 46 segments, the most
//!   that fit in 64 KB), received with `UDP_GRO` (what ESP-in-UDP uses);
//! - `udp`: UDP, one datagram per message, no GRO;
//! - `packet`: an `AF_PACKET` socket on the outer device with `PACKET_QDISC_BYPASS`, whole
//!   Ethernet frames (our IPv4 header) by `sendmmsg`: no route lookup, no IP output path, no
//!   qdisc (what a packet-socket data plane would save), received as `raw`;
//! - `packet-ring`: the same socket with a `TPACKET_V2` transmit ring: frames are written into
//!   shared memory and one `send` hands the kernel all that are ready (no per-packet copy
//!   from an iovec), received as `raw`.
//!
//! It uses ferrovpn's own socket wrappers (`socket`, `sys::mmsg`). Run as root, sender and
//! receiver in two network namespaces (`scripts/bench-ceiling.sh` does all of it):
//!
//! ```text
//! socket_ceiling recv --mode udp-gso --local 192.0.2.2 --ready /tmp/x.ready
//! socket_ceiling send --mode udp-gso --local 192.0.2.1 --remote 192.0.2.2 --seconds 5
//! ```
//!
//! Each prints one line of `key=value` pairs: the receiver counts from its first packet until
//! nothing arrived for `--idle-ms`, then reports packets, payload bytes, its window, its own CPU
//! time (`getrusage`) and the drops its socket saw (`/proc/net/{raw,udp}`). A benchmark tool,
//! not part of the daemon.

use std::io::{self, IoSlice};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use ferrovpn::socket::{bind_udp, enable_udp_gro, RawEsp, SocketOptions, IPPROTO_ESP};
use ferrovpn::sys::fd::wait;
use ferrovpn::sys::mmsg::{recvmmsg, sendmmsg, Received, RecvMsg, SendMsg, MAX_MSGS};
use ferrovpn::sys::process::cpu_time_us;
use ferrovpn_esp::ip::{ipv4_header, IPV4_MIN_HEADER};

/// UDP port of the UDP modes (the NAT-T port ESP-in-UDP uses).
const PORT: u16 = 4500;
/// Send and receive buffers, as the daemon sets them (`SOCKET_BUFFER`).
const SOCKET_BUFFER: u32 = 8 << 20;
/// UDP GSO segments per message: the most 1400-byte segments under the 64 KB limit of one
/// UDP datagram (46 × 1400 + 8 + 20 < 65 536), as the data plane's `GSO_MAX_BYTES` allows.
const GSO_MAX_BYTES: usize = 65_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Raw,
    Hdrincl,
    UdpGso,
    Udp,
    Packet,
    PacketRing,
}

#[derive(Parser)]
#[command(about = "Kernel ceiling per socket type: sender and receiver of 1400-byte payloads")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Send for a fixed time as fast as the kernel takes the packets.
    Send(SendArgs),
    /// Receive until nothing arrived for `--idle-ms` after the first packet.
    Recv {
        /// `hdrincl`, `packet`, `packet-ring` and `raw` receive alike (a protocol 50 raw
        /// socket).
        #[arg(long, value_enum)]
        mode: Mode,
        #[arg(long)]
        local: Ipv4Addr,
        /// Created once the socket is bound: the sender may start.
        #[arg(long)]
        ready: Option<PathBuf>,
        #[arg(long, default_value_t = 1000)]
        idle_ms: i32,
        /// Give up when no first packet came within this time.
        #[arg(long, default_value_t = 60)]
        wait_s: i32,
        /// Never sleep in `poll` once packets flow: call `recvmmsg` again at once, so the
        /// sender never pays for waking the receiver (it burns the receiver's CPU instead).
        #[arg(long)]
        spin: bool,
    },
}

fn opts() -> SocketOptions {
    SocketOptions {
        fwmark: None,
        nonblocking: false,
        buffer_bytes: Some(SOCKET_BUFFER),
    }
}

fn cpu() -> io::Result<(u64, u64)> {
    cpu_time_us()
}

/// Microseconds this (single-threaded) process has waited on a run queue while runnable:
/// the second field of `/proc/self/schedstat`; 0 when the kernel keeps no schedstats.
fn runq_wait_us() -> u64 {
    std::fs::read_to_string("/proc/self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |ns| ns / 1000)
}

#[derive(clap::Args)]
struct SendArgs {
    #[arg(long, value_enum)]
    mode: Mode,
    #[arg(long)]
    local: Ipv4Addr,
    #[arg(long)]
    remote: Ipv4Addr,
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Payload bytes per packet (the ESP packet, or the UDP payload).
    #[arg(long, default_value_t = 1400)]
    size: usize,
    /// Packets per `sendmmsg` (raw, hdrincl, udp); udp-gso sends two GSO messages per call.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// The outer device in the sender's namespace (packet modes).
    #[arg(long)]
    dev: Option<String>,
    /// The receiving device's MAC address, `aa:bb:cc:dd:ee:ff` (packet modes).
    #[arg(long)]
    dst_mac: Option<String>,
}

fn send(a: SendArgs) -> io::Result<()> {
    let SendArgs {
        mode,
        local,
        remote,
        seconds,
        size,
        batch,
        ..
    } = a;
    if matches!(mode, Mode::Packet | Mode::PacketRing) {
        return packet::send(&a);
    }
    let batch = batch.clamp(1, MAX_MSGS);
    let payload = {
        let mut p = vec![0x5a_u8; size];
        // An ESP-looking start: SPI 0x00001001, sequence number 1.
        for (d, s) in p.iter_mut().zip([0, 0, 0x10, 0x01, 0, 0, 0, 1]) {
            *d = s;
        }
        p
    };
    // Keep whatever owns the descriptors alive for the whole run.
    let mut raw_keep = None;
    let mut udp_keep = None;
    let (fd, dst): (RawFd, SocketAddr) = match mode {
        Mode::Raw | Mode::Hdrincl | Mode::Packet | Mode::PacketRing => {
            let s = RawEsp::open(IpAddr::V4(local), &opts())?;
            let fd = match mode {
                Mode::Hdrincl => {
                    s.hdrincl()
                        .ok_or_else(|| io::Error::other("no send-only IPPROTO_RAW socket"))?
                        .fd
                }
                _ => s.as_raw_fd(),
            };
            raw_keep = Some(s);
            (fd, SocketAddr::new(IpAddr::V4(remote), 0))
        }
        Mode::UdpGso | Mode::Udp => {
            let s = bind_udp(SocketAddr::new(IpAddr::V4(local), PORT), &opts())?;
            let fd = s.as_raw_fd();
            udp_keep = Some(s);
            (fd, SocketAddr::new(IpAddr::V4(remote), PORT))
        }
    };
    let ttl = raw_keep
        .as_ref()
        .and_then(|s| s.hdrincl())
        .map_or(64, |h| h.ttl);
    let total = u16::try_from(size + IPV4_MIN_HEADER)
        .map_err(|_| io::Error::other("packet too large for IPv4"))?;
    let header = ipv4_header(local, remote, IPPROTO_ESP as u8, ttl, total, false);
    let segment =
        u16::try_from(size).map_err(|_| io::Error::other("segment too large for UDP GSO"))?;
    let gso = (GSO_MAX_BYTES / size.max(1)).clamp(1, 64);
    // The iovecs and messages of one call.
    let mut parts: Vec<IoSlice<'_>> = Vec::new();
    let mut msgs: Vec<SendMsg> = Vec::new();
    let msg = |first, count, segment| SendMsg {
        first,
        count,
        dst,
        segment,
    };
    match mode {
        Mode::Raw | Mode::Udp | Mode::Packet | Mode::PacketRing => {
            for k in 0..batch {
                parts.push(IoSlice::new(&payload));
                msgs.push(msg(k, 1, 0));
            }
        }
        Mode::Hdrincl => {
            for k in 0..batch {
                parts.push(IoSlice::new(&header));
                parts.push(IoSlice::new(&payload));
                msgs.push(msg(2 * k, 2, 0));
            }
        }
        Mode::UdpGso => {
            for k in 0..2 {
                for _ in 0..gso {
                    parts.push(IoSlice::new(&payload));
                }
                msgs.push(msg(k * gso, gso, segment));
            }
        }
    }
    // Packets per message: hdrincl messages are [header, packet], the others one iovec each.
    let per_msg: Vec<u64> = msgs
        .iter()
        .map(|m| {
            if mode == Mode::Hdrincl {
                1
            } else {
                m.count as u64
            }
        })
        .collect();
    let (u0, s0) = cpu()?;
    let w0 = runq_wait_us();
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(seconds);
    let (mut sent, mut calls, mut errors) = (0u64, 0u64, 0u64);
    while Instant::now() < until {
        let mut done = 0;
        while done < msgs.len() {
            let rest = msgs.get(done..).unwrap_or_default();
            match sendmmsg(fd, &parts, rest) {
                Ok(n) if n > 0 => {
                    sent += per_msg.iter().skip(done).take(n).sum::<u64>();
                    done += n;
                }
                Ok(_) => break,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOBUFS | libc::EAGAIN)) => {
                    errors += 1;
                    wait(fd, libc::POLLOUT, 10);
                    break;
                }
                Err(e) => return Err(e),
            }
            calls += 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (u1, s1) = cpu()?;
    let waited = runq_wait_us().saturating_sub(w0);
    drop((raw_keep, udp_keep));
    report_send(
        mode,
        sent,
        size,
        elapsed,
        calls,
        errors,
        (u1 - u0, s1 - s0),
        waited,
    );
    Ok(())
}

/// The sender's line: packets and bytes handed to the kernel, calls, CPU and run-queue wait.
#[allow(clippy::too_many_arguments)]
fn report_send(
    mode: Mode,
    sent: u64,
    size: usize,
    elapsed: f64,
    calls: u64,
    errors: u64,
    (utime, stime): (u64, u64),
    waited: u64,
) {
    println!(
        "role=send mode={mode:?} sent_pkts={sent} sent_bytes={} seconds={elapsed:.4} calls={calls} \
         send_errors={errors} utime_us={utime} stime_us={stime} runq_wait_us={waited}",
        sent * size as u64,
    );
}

/// The socket inode of `fd` (`/proc/self/fd/N` reads `socket:[INODE]`).
fn socket_inode(fd: RawFd) -> Option<String> {
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
    let s = link.to_str()?;
    Some(s.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
}

/// The `drops` column of this socket's line in `/proc/net/raw` or `/proc/net/udp` (of the
/// namespace this process runs in).
fn socket_drops(table: &str, fd: RawFd) -> Option<u64> {
    let inode = socket_inode(fd)?;
    let text = std::fs::read_to_string(table).ok()?;
    text.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        match (f.get(9), f.get(12)) {
            (Some(i), Some(d)) if *i == inode => d.parse().ok(),
            _ => None,
        }
    })
}

/// Packets dropped by all CPUs' input backlogs (`/proc/net/softnet_stat`, second column; the
/// whole machine, not one namespace).
fn backlog_drops() -> u64 {
    std::fs::read_to_string("/proc/net/softnet_stat")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|h| u64::from_str_radix(h, 16).ok())
        .sum()
}

fn recv(
    mode: Mode,
    local: Ipv4Addr,
    ready: Option<PathBuf>,
    idle_ms: i32,
    wait_s: i32,
    spin: bool,
) -> io::Result<()> {
    let o = SocketOptions {
        nonblocking: true,
        ..opts()
    };
    let mut raw_keep = None;
    let mut udp_keep = None;
    let (fd, table, gro) = match mode {
        Mode::Raw | Mode::Hdrincl | Mode::Packet | Mode::PacketRing => {
            let s = RawEsp::open(IpAddr::V4(local), &o)?;
            let fd = s.as_raw_fd();
            raw_keep = Some(s);
            (fd, "/proc/net/raw", false)
        }
        Mode::UdpGso | Mode::Udp => {
            let s = bind_udp(SocketAddr::new(IpAddr::V4(local), PORT), &o)?;
            let gro = mode == Mode::UdpGso;
            if gro && !enable_udp_gro(&s) {
                return Err(io::Error::other("UDP_GRO not available"));
            }
            let fd = s.as_raw_fd();
            udp_keep = Some(s);
            (fd, "/proc/net/udp", gro)
        }
    };
    let buf_len = if gro { 65_536 } else { 2048 };
    let mut store = vec![0u8; buf_len * MAX_MSGS];
    let mut msgs: Vec<RecvMsg<'_>> = store.chunks_exact_mut(buf_len).map(RecvMsg::new).collect();
    let mut meta = [Received::default(); MAX_MSGS];
    let drops0 = socket_drops(table, fd).unwrap_or(0);
    let backlog0 = backlog_drops();
    let (u0, s0) = cpu()?;
    let w0 = runq_wait_us();
    if let Some(p) = &ready {
        std::fs::write(p, b"ready\n")?;
    }
    if !wait(fd, libc::POLLIN, wait_s.saturating_mul(1000)) {
        return Err(io::Error::other("no packet arrived"));
    }
    let (mut pkts, mut bytes, mut bad, mut calls, mut wakes) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut first = None;
    let mut last = Instant::now();
    loop {
        let got = recvmmsg(fd, &mut msgs, &mut meta, gro);
        calls += 1;
        if got == 0 {
            if spin {
                let idle = Duration::from_millis(u64::try_from(idle_ms).unwrap_or(0));
                if last.elapsed() > idle && first.is_some() {
                    break;
                }
                continue;
            }
            wakes += 1;
            if !wait(fd, libc::POLLIN, idle_ms) {
                break;
            }
            continue;
        }
        last = Instant::now();
        first.get_or_insert(last);
        for m in meta.iter().take(got) {
            let payload = match mode {
                // Raw IPv4 sockets deliver the IPv4 header (ours have no options).
                Mode::Raw | Mode::Hdrincl | Mode::Packet | Mode::PacketRing => {
                    m.len.saturating_sub(IPV4_MIN_HEADER)
                }
                _ => m.len,
            };
            if m.truncated || payload == 0 {
                bad += 1;
                continue;
            }
            pkts += match m.gro_segment {
                Some(seg) => payload.div_ceil(seg) as u64,
                None => 1,
            };
            bytes += payload as u64;
        }
    }
    let (u1, s1) = cpu()?;
    let waited = runq_wait_us().saturating_sub(w0);
    let drops = socket_drops(table, fd).unwrap_or(0).saturating_sub(drops0);
    let backlog = backlog_drops().saturating_sub(backlog0);
    drop(msgs);
    drop((raw_keep, udp_keep));
    let window = first.map_or(0.0, |f| last.duration_since(f).as_secs_f64());
    println!(
        "role=recv mode={mode:?} recv_pkts={pkts} recv_bytes={bytes} seconds={window:.4} \
         calls={calls} wakes={wakes} bad={bad} sock_drops={drops} backlog_drops={backlog} \
         utime_us={} stime_us={} runq_wait_us={waited}",
        u1.saturating_sub(u0),
        s1.saturating_sub(s0),
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Send(a) => send(a),
        Cmd::Recv {
            mode,
            local,
            ready,
            idle_ms,
            wait_s,
            spin,
        } => recv(mode, local, ready, idle_ms, wait_s, spin),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("socket_ceiling: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The `packet` and `packet-ring` senders: whole Ethernet frames on an `AF_PACKET` socket bound
/// to the outer device, its qdisc bypassed (packet(7)).
mod packet {
    use std::ffi::CString;
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::sync::atomic::{fence, Ordering};
    use std::time::{Duration, Instant};

    use ferrovpn::sys::fd::wait;
    use ferrovpn_esp::ip::{ipv4_header, IPV4_MIN_HEADER};

    use super::{cpu, report_send, runq_wait_us, Mode, SendArgs, SOCKET_BUFFER};

    const ETH_HEADER: usize = 14;
    /// One frame slot of the transmit ring: the `tpacket2_hdr` (32 bytes, aligned to 16) and
    /// a frame of up to 2016 bytes.
    const FRAME_SIZE: usize = 2048;
    /// Where a frame's data starts in its slot (`TPACKET2_HDRLEN - sizeof(sockaddr_ll)`).
    const FRAME_DATA: usize = 32;
    const BLOCK_SIZE: usize = 1 << 16;
    const BLOCKS: usize = 16;

    fn check(r: libc::c_int) -> io::Result<libc::c_int> {
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r)
        }
    }

    fn set(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, v: &[u8]) -> io::Result<()> {
        // SAFETY: `v` is valid for `v.len()` bytes for the call.
        check(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                level,
                name,
                v.as_ptr().cast(),
                v.len() as libc::socklen_t,
            )
        })
        .map(drop)
    }

    fn mac(s: &str) -> io::Result<[u8; 6]> {
        let mut m = [0u8; 6];
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return Err(io::Error::other(format!("bad MAC address {s}")));
        }
        for (d, p) in m.iter_mut().zip(parts) {
            *d = u8::from_str_radix(p, 16)
                .map_err(|_| io::Error::other(format!("bad MAC address {s}")))?;
        }
        Ok(m)
    }

    /// An `AF_PACKET` socket that receives nothing (protocol 0), bound to `dev`, with the
    /// qdisc bypassed and the daemon's send buffer.
    fn open(dev: &str) -> io::Result<(OwnedFd, [u8; 6])> {
        let name = CString::new(dev).map_err(|_| io::Error::other("bad device name"))?;
        // SAFETY: a C string that lives through the call.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::other(format!("no device {dev}")));
        }
        // SAFETY: plain socket(2); the descriptor is owned right after.
        let raw = check(unsafe {
            libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0)
        })?;
        // SAFETY: `raw` is a new descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        set(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_QDISC_BYPASS,
            &1i32.to_ne_bytes(),
        )?;
        set(
            &fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUFFORCE,
            &(SOCKET_BUFFER as i32).to_ne_bytes(),
        )?;
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a valid sockaddr_ll for the call.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        let own = std::fs::read_to_string(format!("/sys/class/net/{dev}/address"))?;
        Ok((fd, mac(own.trim())?))
    }

    pub(super) fn send(a: &SendArgs) -> io::Result<()> {
        let dev = a
            .dev
            .as_deref()
            .ok_or_else(|| io::Error::other("--dev is needed"))?;
        let dst = mac(a
            .dst_mac
            .as_deref()
            .ok_or_else(|| io::Error::other("--dst-mac is needed"))?)?;
        let (fd, src) = open(dev)?;
        let total = u16::try_from(a.size + IPV4_MIN_HEADER)
            .map_err(|_| io::Error::other("packet too large for IPv4"))?;
        let mut frame = Vec::with_capacity(ETH_HEADER + usize::from(total));
        frame.extend_from_slice(&dst);
        frame.extend_from_slice(&src);
        frame.extend_from_slice(&0x0800u16.to_be_bytes());
        frame.extend_from_slice(&ipv4_header(a.local, a.remote, 50, 64, total, false));
        frame.extend(std::iter::repeat_n(0x5a_u8, a.size));
        if let Some(esp) =
            frame.get_mut(ETH_HEADER + IPV4_MIN_HEADER..ETH_HEADER + IPV4_MIN_HEADER + 8)
        {
            esp.copy_from_slice(&[0, 0, 0x10, 0x01, 0, 0, 0, 1]);
        }
        if frame.len() > FRAME_SIZE - FRAME_DATA {
            return Err(io::Error::other("frame too large for a ring slot"));
        }
        let batch = a.batch.clamp(1, 1024);
        let (u0, s0) = cpu()?;
        let w0 = runq_wait_us();
        let start = Instant::now();
        let until = start + Duration::from_secs_f64(a.seconds);
        let (sent, calls, errors) = match a.mode {
            Mode::PacketRing => ring(&fd, &frame, batch, until)?,
            _ => mmsg(&fd, &frame, batch.min(ferrovpn::sys::mmsg::MAX_MSGS), until)?,
        };
        let elapsed = start.elapsed().as_secs_f64();
        let (u1, s1) = cpu()?;
        let waited = runq_wait_us().saturating_sub(w0);
        report_send(
            a.mode,
            sent,
            a.size,
            elapsed,
            calls,
            errors,
            (u1 - u0, s1 - s0),
            waited,
        );
        Ok(())
    }

    /// `sendmmsg` of `batch` copies of `frame`, no destination (the bound device).
    fn mmsg(
        fd: &OwnedFd,
        frame: &[u8],
        batch: usize,
        until: Instant,
    ) -> io::Result<(u64, u64, u64)> {
        let mut iov: Vec<libc::iovec> = (0..batch)
            .map(|_| libc::iovec {
                iov_base: frame.as_ptr() as *mut libc::c_void,
                iov_len: frame.len(),
            })
            .collect();
        // SAFETY: mmsghdr is plain data; all-zero is a valid value.
        let mut msgs: Vec<libc::mmsghdr> =
            (0..batch).map(|_| unsafe { std::mem::zeroed() }).collect();
        for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
        }
        let (mut sent, mut calls, mut errors) = (0u64, 0u64, 0u64);
        while Instant::now() < until {
            // SAFETY: every message points at one iovec over `frame`, all alive for the call.
            let n = unsafe { libc::sendmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), batch as u32, 0) };
            calls += 1;
            if n < 0 {
                let e = io::Error::last_os_error();
                if matches!(e.raw_os_error(), Some(libc::ENOBUFS | libc::EAGAIN)) {
                    errors += 1;
                    wait(fd.as_raw_fd(), libc::POLLOUT, 10);
                    continue;
                }
                return Err(e);
            }
            sent += n as u64;
        }
        Ok((sent, calls, errors))
    }

    /// A `TPACKET_V2` transmit ring: fill up to `batch` free slots with `frame`, mark them
    /// ready, one `send` for all of them.
    fn ring(
        fd: &OwnedFd,
        frame: &[u8],
        batch: usize,
        until: Instant,
    ) -> io::Result<(u64, u64, u64)> {
        set(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            &(libc::tpacket_versions::TPACKET_V2 as i32).to_ne_bytes(),
        )?;
        let req = libc::tpacket_req {
            tp_block_size: BLOCK_SIZE as u32,
            tp_block_nr: BLOCKS as u32,
            tp_frame_size: FRAME_SIZE as u32,
            tp_frame_nr: (BLOCK_SIZE / FRAME_SIZE * BLOCKS) as u32,
        };
        // SAFETY: tpacket_req is plain data, read as bytes for setsockopt.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&req as *const libc::tpacket_req).cast::<u8>(),
                std::mem::size_of::<libc::tpacket_req>(),
            )
        };
        set(fd, libc::SOL_PACKET, libc::PACKET_TX_RING, bytes)?;
        let len = BLOCK_SIZE * BLOCKS;
        // SAFETY: mapping the ring the kernel just set up on this socket.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = base.cast::<u8>();
        let slots = len / FRAME_SIZE;
        let status = |i: usize| -> *mut u32 {
            // SAFETY (of the callers' use): slot `i < slots` lies within the mapping, and its
            // first field is the 32-bit status word.
            unsafe { base.add(i * FRAME_SIZE).cast::<u32>() }
        };
        let (mut sent, mut calls, mut errors, mut next) = (0u64, 0u64, 0u64, 0usize);
        while Instant::now() < until {
            let mut filled = 0;
            while filled < batch {
                let st = status(next);
                // SAFETY: see `status`; the kernel writes the word, so read it volatile.
                let s = unsafe { std::ptr::read_volatile(st) };
                if s & libc::TP_STATUS_WRONG_FORMAT != 0 {
                    errors += 1;
                } else if s != libc::TP_STATUS_AVAILABLE {
                    break; // still being sent: the ring is full
                }
                // SAFETY: slot `next` is ours (status AVAILABLE); header then data lie in it.
                unsafe {
                    let slot = base.add(next * FRAME_SIZE);
                    let h = slot.cast::<libc::tpacket2_hdr>();
                    (*h).tp_len = frame.len() as u32;
                    std::ptr::copy_nonoverlapping(
                        frame.as_ptr(),
                        slot.add(FRAME_DATA),
                        frame.len(),
                    );
                    fence(Ordering::Release);
                    std::ptr::write_volatile(st, libc::TP_STATUS_SEND_REQUEST);
                }
                filled += 1;
                next = (next + 1) % slots;
            }
            if filled == 0 {
                wait(fd.as_raw_fd(), libc::POLLOUT, 10);
                continue;
            }
            // SAFETY: send(2) with no data: transmit what the ring holds.
            let r = unsafe { libc::send(fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT) };
            calls += 1;
            if r < 0 {
                let e = io::Error::last_os_error();
                if !matches!(e.raw_os_error(), Some(libc::ENOBUFS | libc::EAGAIN)) {
                    return Err(e);
                }
                errors += 1;
            }
            sent += filled as u64;
        }
        // SAFETY: unmapping what was mapped above; nothing points into it any more.
        unsafe { libc::munmap(base.cast(), len) };
        Ok((sent, calls, errors))
    }
}

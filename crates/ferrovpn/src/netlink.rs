//! A minimal rtnetlink client (rtnetlink(7), RFC 3549) over a raw `NETLINK_ROUTE` socket: link
//! up/MTU, addresses, routes and policy rules, each request acknowledged (`NLM_F_ACK`) and kernel
//! errors mapped to [`Errno`].
//!
//! Every address, route and rule this client adds is recorded; [`Netlink::undo_all`] (also run on
//! drop) removes them in reverse order, so the daemon leaves the routing table as it found it.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, OwnedFd};

use crate::ipnet::{IfAddr, IpNet};
use crate::sys;

/// The `main` routing table.
pub const TABLE_MAIN: u32 = 254;

const NLMSG_HDR_LEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_NEWRULE: u16 = 32;
const RTM_DELRULE: u16 = 33;

const IFLA_MTU: u16 = 4;
const IFLA_TXQLEN: u16 = 13;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFINFOMSG_LEN: usize = 16;
/// Attribute type without the NLA_F_NESTED / NLA_F_NET_BYTEORDER flags.
const NLA_TYPE_MASK: u16 = 0x3fff;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_F_NODAD: u8 = 0x02;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_TABLE: u16 = 15;
const RTPROT_STATIC: u8 = 4;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RT_SCOPE_NOWHERE: u8 = 255;
const RTN_UNICAST: u8 = 1;
const FR_ACT_TO_TBL: u8 = 1;
const FIB_RULE_INVERT: u32 = 0x2;
const FRA_PRIORITY: u16 = 6;
const FRA_FWMARK: u16 = 10;
const FRA_SUPPRESS_PREFIXLEN: u16 = 14;
const FRA_TABLE: u16 = 15;
const FRA_FWMASK: u16 = 16;

/// A kernel error code from an rtnetlink ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Errno {
    /// EEXIST: the address/route/rule is already there.
    Exists,
    /// ENOENT / ESRCH: nothing matched (e.g. deleting what is not there).
    NotFound,
    /// ENODEV: no such interface.
    NoDevice,
    /// EPERM / EACCES: needs CAP_NET_ADMIN.
    Permission,
    /// EINVAL.
    Invalid,
    /// ENETUNREACH / EHOSTUNREACH: e.g. a gateway not on a connected network.
    Unreachable,
    Other(i32),
}

impl Errno {
    pub fn from_raw(e: i32) -> Self {
        match e {
            libc::EEXIST => Errno::Exists,
            libc::ENOENT | libc::ESRCH => Errno::NotFound,
            libc::ENODEV => Errno::NoDevice,
            libc::EPERM | libc::EACCES => Errno::Permission,
            libc::EINVAL => Errno::Invalid,
            libc::ENETUNREACH | libc::EHOSTUNREACH => Errno::Unreachable,
            other => Errno::Other(other),
        }
    }

    pub fn raw(self) -> i32 {
        match self {
            Errno::Exists => libc::EEXIST,
            Errno::NotFound => libc::ENOENT,
            Errno::NoDevice => libc::ENODEV,
            Errno::Permission => libc::EPERM,
            Errno::Invalid => libc::EINVAL,
            Errno::Unreachable => libc::ENETUNREACH,
            Errno::Other(e) => e,
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", io::Error::from_raw_os_error(self.raw()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("netlink socket: {0}")]
    Io(#[from] io::Error),
    #[error("{op}: {errno}")]
    Kernel { op: String, errno: Errno },
    #[error("no interface named '{0}'")]
    NoSuchInterface(String),
    #[error("malformed netlink reply: {0}")]
    Malformed(&'static str),
}

impl NetlinkError {
    /// The kernel's error code, when the kernel refused the request.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            NetlinkError::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// A route to `dst` out of interface `ifindex`, in routing table `table`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub dst: IpNet,
    pub ifindex: u32,
    pub table: u32,
}

/// A policy routing rule (ip-rule(8)): `[not] fwmark M lookup T [suppress_prefixlength N]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub v6: bool,
    pub priority: u32,
    /// Match packets with this mark (mask 0xffffffff).
    pub fwmark: Option<u32>,
    /// Match the packets that do NOT satisfy the selector (`not`).
    pub invert: bool,
    pub table: u32,
    /// Ignore results of `table` whose prefix is this long or shorter.
    pub suppress_prefixlength: Option<u32>,
}

/// Something this client installed, to be removed later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Address { ifindex: u32, addr: IfAddr },
    Route(Route),
    Rule(Rule),
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Address { ifindex, addr } => write!(f, "address {addr} on ifindex {ifindex}"),
            Change::Route(r) => write!(
                f,
                "route {} dev ifindex {} table {}",
                r.dst, r.ifindex, r.table
            ),
            Change::Rule(r) => {
                write!(f, "rule priority {} ", r.priority)?;
                if r.invert {
                    f.write_str("not ")?;
                }
                if let Some(m) = r.fwmark {
                    write!(f, "fwmark {m:#x} ")?;
                }
                write!(f, "table {}", r.table)?;
                if let Some(p) = r.suppress_prefixlength {
                    write!(f, " suppress_prefixlength {p}")?;
                }
                Ok(())
            }
        }
    }
}

/// An open rtnetlink socket plus the record of what it installed.
#[derive(Debug)]
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
    installed: Vec<Change>,
}

/// Builds one netlink message: header, fixed body, then 4-byte aligned attributes.
struct Msg {
    buf: Vec<u8>,
}

impl Msg {
    fn new(ty: u16, flags: u16, seq: u32) -> Msg {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set in finish()
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: kernel fills it in
        Msg { buf }
    }

    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    fn attr(&mut self, ty: u16, data: &[u8]) -> &mut Self {
        let len = 4 + data.len();
        self.buf
            .extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.buf.resize(self.buf.len() + (4 - len % 4) % 4, 0);
        self
    }

    fn attr_u32(&mut self, ty: u16, v: u32) -> &mut Self {
        self.attr(ty, &v.to_ne_bytes())
    }

    fn finish(&mut self) -> &[u8] {
        let len = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        &self.buf
    }
}

fn family(v6: bool) -> u8 {
    if v6 {
        libc::AF_INET6 as u8
    } else {
        libc::AF_INET as u8
    }
}

fn addr_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Table number for the one-byte header field; tables above 255 go only in the attribute.
fn table_byte(table: u32) -> u8 {
    u8::try_from(table).unwrap_or(0)
}

fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Resolves an interface name in the calling thread's network namespace.
pub fn link_index(name: &str) -> Result<u32, NetlinkError> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| NetlinkError::NoSuchInterface(name.to_string()))?;
    sys::iface::index_of(&c).ok_or_else(|| NetlinkError::NoSuchInterface(name.to_string()))
}

/// MTU of the interface that holds `addr` in the calling thread's network namespace
/// (`getifaddrs`, then `SIOCGIFMTU`); None when no interface has it.
pub fn mtu_of_address(addr: IpAddr) -> Option<u32> {
    let name = sys::iface::holding_address(addr)?;
    sys::iface::mtu_of(&name)
}

/// Every address of this host (in the calling thread's network namespace), read once.
pub fn host_addresses() -> std::collections::HashSet<IpAddr> {
    sys::iface::all_addresses().into_iter().collect()
}

/// [`mtu_of_address`] for many addresses from one read of the interface list, each distinct
/// address and interface asked once: what start-up uses, so it stays linear in connections.
pub fn mtus_of_addresses(addrs: &[IpAddr]) -> std::collections::HashMap<IpAddr, u32> {
    let mut distinct: Vec<IpAddr> = addrs.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let names = sys::iface::holding_addresses(&distinct);
    let mut by_name: std::collections::HashMap<std::ffi::CString, Option<u32>> =
        std::collections::HashMap::new();
    let mut out = std::collections::HashMap::new();
    for (a, name) in distinct.into_iter().zip(names) {
        let Some(name) = name else { continue };
        let mtu = *by_name
            .entry(name)
            .or_insert_with_key(|n| sys::iface::mtu_of(n));
        if let Some(m) = mtu {
            out.insert(a, m);
        }
    }
    out
}

impl Netlink {
    /// Opens a NETLINK_ROUTE socket in the calling thread's network namespace.
    pub fn open() -> Result<Netlink, NetlinkError> {
        let fd = sys::netlink::route_socket()?;
        Ok(Netlink {
            fd,
            seq: 0,
            installed: Vec::new(),
        })
    }

    /// What this client has installed and not yet removed, oldest first.
    pub fn installed(&self) -> &[Change] {
        &self.installed
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn send(&mut self, msg: &mut Msg) -> Result<(), NetlinkError> {
        let data = msg.finish();
        sys::netlink::send_to_kernel(self.fd.as_fd(), data)?;
        Ok(())
    }

    /// Receives one datagram of netlink messages (retrying on EINTR).
    fn recv<'b>(&mut self, buf: &'b mut [u8]) -> Result<&'b [u8], NetlinkError> {
        loop {
            let n = match sys::netlink::recv(self.fd.as_fd(), buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            return Ok(buf.get(..n).unwrap_or(&[]));
        }
    }

    /// Sends one request and waits for its ACK.
    fn request(&mut self, op: impl FnOnce() -> String, msg: &mut Msg) -> Result<(), NetlinkError> {
        let seq = read_u32(&msg.buf, 8).ok_or(NetlinkError::Malformed("request"))?;
        self.send(msg)?;
        let mut buf = vec![0u8; 16384];
        loop {
            let got = self.recv(&mut buf)?;
            if let Some(result) = find_ack(got, seq)? {
                return result.map_err(|errno| NetlinkError::Kernel { op: op(), errno });
            }
        }
    }

    /// Sends one request and collects the answering messages (type, body) until its ACK.
    fn query(
        &mut self,
        op: impl FnOnce() -> String,
        msg: &mut Msg,
    ) -> Result<Vec<(u16, Vec<u8>)>, NetlinkError> {
        let seq = read_u32(&msg.buf, 8).ok_or(NetlinkError::Malformed("request"))?;
        self.send(msg)?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 32768];
        loop {
            let got = self.recv(&mut buf)?;
            let mut b = got;
            while b.len() >= NLMSG_HDR_LEN {
                let len = read_u32(b, 0).ok_or(NetlinkError::Malformed("header"))? as usize;
                let ty = read_u16(b, 4).ok_or(NetlinkError::Malformed("header"))?;
                let mseq = read_u32(b, 8).ok_or(NetlinkError::Malformed("header"))?;
                if len < NLMSG_HDR_LEN || len > b.len() {
                    return Err(NetlinkError::Malformed("message length"));
                }
                if mseq == seq && ty != NLMSG_ERROR && ty != NLMSG_DONE {
                    let body = b.get(NLMSG_HDR_LEN..len).unwrap_or(&[]);
                    out.push((ty, body.to_vec()));
                }
                let aligned = len.checked_add(3).map(|l| l & !3).unwrap_or(usize::MAX);
                b = b.get(aligned..).unwrap_or(&[]);
            }
            if let Some(result) = find_ack(got, seq)? {
                return result
                    .map(|()| out)
                    .map_err(|errno| NetlinkError::Kernel { op: op(), errno });
            }
        }
    }

    /// Sets the interface administratively up or down.
    pub fn set_link_up(&mut self, ifindex: u32, up: bool) -> Result<(), NetlinkError> {
        let seq = self.next_seq();
        let mut m = Msg::new(RTM_NEWLINK, 0, seq);
        let flag = libc::IFF_UP as u32;
        m.bytes(&[libc::AF_UNSPEC as u8, 0, 0, 0])
            .bytes(&(ifindex as i32).to_ne_bytes())
            .bytes(&(if up { flag } else { 0 }).to_ne_bytes())
            .bytes(&flag.to_ne_bytes());
        self.request(
            || format!("set ifindex {ifindex} {}", if up { "up" } else { "down" }),
            &mut m,
        )
    }

    /// The link kind (`IFLA_INFO_KIND`, e.g. "tun", "veth") of an interface; `None` if the kernel
    /// reports none (physical devices).
    pub fn link_kind(&mut self, ifindex: u32) -> Result<Option<String>, NetlinkError> {
        let seq = self.next_seq();
        let mut m = Msg::new(RTM_GETLINK, 0, seq);
        m.bytes(&[libc::AF_UNSPEC as u8, 0, 0, 0])
            .bytes(&(ifindex as i32).to_ne_bytes())
            .bytes(&0u32.to_ne_bytes())
            .bytes(&0u32.to_ne_bytes());
        let replies = self.query(|| format!("get link ifindex {ifindex}"), &mut m)?;
        for (ty, body) in replies {
            if ty != RTM_NEWLINK {
                continue;
            }
            let attrs = body.get(IFINFOMSG_LEN..).unwrap_or(&[]);
            if let Some(info) = find_attr(attrs, IFLA_LINKINFO) {
                if let Some(kind) = find_attr(info, IFLA_INFO_KIND) {
                    let kind = kind.split(|&b| b == 0).next().unwrap_or(&[]);
                    return Ok(Some(String::from_utf8_lossy(kind).into_owned()));
                }
            }
            return Ok(None);
        }
        Err(NetlinkError::Malformed("no RTM_NEWLINK in the reply"))
    }

    /// Deletes an interface (`ip link del`).
    pub fn del_link(&mut self, ifindex: u32) -> Result<(), NetlinkError> {
        let seq = self.next_seq();
        let mut m = Msg::new(RTM_DELLINK, 0, seq);
        m.bytes(&[libc::AF_UNSPEC as u8, 0, 0, 0])
            .bytes(&(ifindex as i32).to_ne_bytes())
            .bytes(&0u32.to_ne_bytes())
            .bytes(&0u32.to_ne_bytes());
        self.request(|| format!("delete link ifindex {ifindex}"), &mut m)
    }

    /// Sets the interface MTU.
    pub fn set_mtu(&mut self, ifindex: u32, mtu: u32) -> Result<(), NetlinkError> {
        self.set_link_u32(ifindex, IFLA_MTU, mtu, "mtu")
    }

    /// Sets the interface transmit queue length (`ip link set txqueuelen`): the packets the
    /// kernel queues for a TUN reader before dropping.
    pub fn set_txqueuelen(&mut self, ifindex: u32, len: u32) -> Result<(), NetlinkError> {
        self.set_link_u32(ifindex, IFLA_TXQLEN, len, "txqueuelen")
    }

    /// RTM_NEWLINK on an existing interface with one u32 attribute (rtnetlink(7)).
    fn set_link_u32(
        &mut self,
        ifindex: u32,
        attr: u16,
        value: u32,
        what: &str,
    ) -> Result<(), NetlinkError> {
        let seq = self.next_seq();
        let mut m = Msg::new(RTM_NEWLINK, 0, seq);
        m.bytes(&[libc::AF_UNSPEC as u8, 0, 0, 0])
            .bytes(&(ifindex as i32).to_ne_bytes())
            .bytes(&0u32.to_ne_bytes())
            .bytes(&0u32.to_ne_bytes())
            .attr_u32(attr, value);
        self.request(
            || format!("set {what} {value} on ifindex {ifindex}"),
            &mut m,
        )
    }

    fn addr_msg(&mut self, ty: u16, flags: u16, ifindex: u32, addr: IfAddr) -> Msg {
        let seq = self.next_seq();
        let mut m = Msg::new(ty, flags, seq);
        let v6 = addr.addr.is_ipv6();
        let ifa_flags = if v6 { IFA_F_NODAD } else { 0 };
        let a = addr_bytes(addr.addr);
        m.bytes(&[family(v6), addr.prefix_len, ifa_flags, RT_SCOPE_UNIVERSE])
            .bytes(&ifindex.to_ne_bytes())
            .attr(IFA_LOCAL, &a)
            .attr(IFA_ADDRESS, &a);
        m
    }

    /// Adds an address (IPv6 without duplicate address detection, as on a point-to-point TUN).
    pub fn add_address(&mut self, ifindex: u32, addr: IfAddr) -> Result<(), NetlinkError> {
        let mut m = self.addr_msg(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ifindex, addr);
        self.request(
            || format!("add address {addr} to ifindex {ifindex}"),
            &mut m,
        )?;
        self.installed.push(Change::Address { ifindex, addr });
        Ok(())
    }

    pub fn del_address(&mut self, ifindex: u32, addr: IfAddr) -> Result<(), NetlinkError> {
        let mut m = self.addr_msg(RTM_DELADDR, 0, ifindex, addr);
        self.request(
            || format!("delete address {addr} from ifindex {ifindex}"),
            &mut m,
        )?;
        self.forget(&Change::Address { ifindex, addr });
        Ok(())
    }

    fn route_msg(&mut self, ty: u16, flags: u16, r: &Route, add: bool) -> Msg {
        let seq = self.next_seq();
        let mut m = Msg::new(ty, flags, seq);
        let (proto, scope, rtype) = if add {
            (RTPROT_STATIC, RT_SCOPE_LINK, RTN_UNICAST)
        } else {
            (0, RT_SCOPE_NOWHERE, 0)
        };
        m.bytes(&[
            family(r.dst.is_ipv6()),
            r.dst.prefix_len(),
            0,
            0,
            table_byte(r.table),
            proto,
            scope,
            rtype,
        ])
        .bytes(&0u32.to_ne_bytes());
        if r.dst.prefix_len() > 0 {
            m.attr(RTA_DST, &addr_bytes(r.dst.addr()));
        }
        if r.ifindex != 0 {
            m.attr_u32(RTA_OIF, r.ifindex);
        }
        m.attr_u32(RTA_TABLE, r.table);
        m
    }

    /// Adds a device route (`ip route add DST dev IF table T`).
    pub fn add_route(&mut self, r: Route) -> Result<(), NetlinkError> {
        let mut m = self.route_msg(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &r, true);
        self.request(|| format!("add {}", Change::Route(r)), &mut m)?;
        self.installed.push(Change::Route(r));
        Ok(())
    }

    pub fn del_route(&mut self, r: Route) -> Result<(), NetlinkError> {
        let mut m = self.route_msg(RTM_DELROUTE, 0, &r, false);
        self.request(|| format!("delete {}", Change::Route(r)), &mut m)?;
        self.forget(&Change::Route(r));
        Ok(())
    }

    fn rule_msg(&mut self, ty: u16, flags: u16, r: &Rule) -> Msg {
        let seq = self.next_seq();
        let mut m = Msg::new(ty, flags, seq);
        let fr_flags = if r.invert { FIB_RULE_INVERT } else { 0 };
        m.bytes(&[
            family(r.v6),
            0,
            0,
            0,
            table_byte(r.table),
            0,
            0,
            FR_ACT_TO_TBL,
        ])
        .bytes(&fr_flags.to_ne_bytes())
        .attr_u32(FRA_PRIORITY, r.priority)
        .attr_u32(FRA_TABLE, r.table);
        if let Some(mark) = r.fwmark {
            m.attr_u32(FRA_FWMARK, mark).attr_u32(FRA_FWMASK, u32::MAX);
        }
        if let Some(p) = r.suppress_prefixlength {
            m.attr_u32(FRA_SUPPRESS_PREFIXLEN, p);
        }
        m
    }

    /// Adds a policy rule (`ip rule add [not] fwmark M table T priority P ...`).
    pub fn add_rule(&mut self, r: Rule) -> Result<(), NetlinkError> {
        let mut m = self.rule_msg(RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, &r);
        self.request(|| format!("add {}", Change::Rule(r)), &mut m)?;
        self.installed.push(Change::Rule(r));
        Ok(())
    }

    pub fn del_rule(&mut self, r: Rule) -> Result<(), NetlinkError> {
        let mut m = self.rule_msg(RTM_DELRULE, 0, &r);
        self.request(|| format!("delete {}", Change::Rule(r)), &mut m)?;
        self.forget(&Change::Rule(r));
        Ok(())
    }

    /// Removes one change; one that is already gone (e.g. with its interface) counts as removed.
    pub fn undo(&mut self, c: &Change) -> Result<(), NetlinkError> {
        let r = match *c {
            Change::Address { ifindex, addr } => self.del_address(ifindex, addr),
            Change::Route(r) => self.del_route(r),
            Change::Rule(r) => self.del_rule(r),
        };
        match r {
            Err(e) if matches!(e.errno(), Some(Errno::NotFound | Errno::NoDevice)) => {
                self.forget(c);
                Ok(())
            }
            other => other,
        }
    }

    /// Removes everything installed, newest first; returns the failures (the rest still go).
    pub fn undo_all(&mut self) -> Vec<NetlinkError> {
        let mut errors = Vec::new();
        while let Some(c) = self.installed.last().copied() {
            if let Err(e) = self.undo(&c) {
                errors.push(e);
                self.forget(&c);
            }
        }
        errors
    }

    fn forget(&mut self, c: &Change) {
        if let Some(i) = self.installed.iter().rposition(|x| x == c) {
            self.installed.remove(i);
        }
    }
}

impl Drop for Netlink {
    fn drop(&mut self) {
        for e in self.undo_all() {
            tracing::warn!("netlink cleanup: {e}");
        }
    }
}

/// The payload of the first attribute of type `ty` in a run of 4-byte aligned rtattrs.
fn find_attr(mut b: &[u8], ty: u16) -> Option<&[u8]> {
    while b.len() >= 4 {
        let len = usize::from(read_u16(b, 0)?);
        let t = read_u16(b, 2)? & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            return None;
        }
        if t == ty {
            return b.get(4..len);
        }
        b = b.get((len + 3) & !3..).unwrap_or(&[]);
    }
    None
}

/// Scans a datagram of netlink messages for the ACK/error answering `seq`.
fn find_ack(mut b: &[u8], seq: u32) -> Result<Option<Result<(), Errno>>, NetlinkError> {
    while b.len() >= NLMSG_HDR_LEN {
        let len = read_u32(b, 0).ok_or(NetlinkError::Malformed("header"))? as usize;
        let ty = read_u16(b, 4).ok_or(NetlinkError::Malformed("header"))?;
        let mseq = read_u32(b, 8).ok_or(NetlinkError::Malformed("header"))?;
        if len < NLMSG_HDR_LEN || len > b.len() {
            return Err(NetlinkError::Malformed("message length"));
        }
        if mseq == seq && ty == NLMSG_ERROR {
            let code =
                read_u32(b, NLMSG_HDR_LEN).ok_or(NetlinkError::Malformed("nlmsgerr"))? as i32;
            return Ok(Some(if code == 0 {
                Ok(())
            } else {
                Err(Errno::from_raw(code.checked_neg().unwrap_or(i32::MAX)))
            }));
        }
        if mseq == seq && ty == NLMSG_DONE {
            return Ok(Some(Ok(())));
        }
        let aligned = len.checked_add(3).map(|l| l & !3).unwrap_or(usize::MAX);
        b = b.get(aligned..).unwrap_or(&[]);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns::{require_root, NetNs};

    #[test]
    fn ack_parsing_finds_our_sequence_number() {
        let mut b = Vec::new();
        for (seq, code) in [(7u32, 0i32), (9, -libc::EEXIST)] {
            b.extend_from_slice(&36u32.to_ne_bytes());
            b.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
            b.extend_from_slice(&0u16.to_ne_bytes());
            b.extend_from_slice(&seq.to_ne_bytes());
            b.extend_from_slice(&0u32.to_ne_bytes());
            b.extend_from_slice(&code.to_ne_bytes());
            b.extend_from_slice(&[0u8; 16]);
        }
        assert_eq!(find_ack(&b, 7).unwrap(), Some(Ok(())));
        assert_eq!(find_ack(&b, 9).unwrap(), Some(Err(Errno::Exists)));
        assert_eq!(find_ack(&b, 8).unwrap(), None);
        assert!(find_ack(&b[..20], 7).is_err(), "truncated message");
        assert_eq!(find_ack(&b[..10], 7).unwrap(), None, "short tail ignored");
    }

    #[test]
    fn addresses_routes_rules_are_installed_and_undone() {
        if !require_root("netlink::addresses_routes_rules_are_installed_and_undone") {
            return;
        }
        let ns = NetNs::new("nl").unwrap();
        ns.ip(&[
            "link", "add", "fvd0", "type", "veth", "peer", "name", "fvd0p",
        ])
        .unwrap();
        let rule_suppress = Rule {
            v6: false,
            priority: 1000,
            fwmark: None,
            invert: false,
            table: TABLE_MAIN,
            suppress_prefixlength: Some(0),
        };
        let rule_mark = Rule {
            v6: false,
            priority: 1001,
            fwmark: Some(0xca6c),
            invert: true,
            table: 51820,
            suppress_prefixlength: None,
        };
        let mut nl = ns.run(|| {
            let mut nl = Netlink::open().unwrap();
            let idx = link_index("fvd0").unwrap();
            assert!(matches!(
                link_index("nope0"),
                Err(NetlinkError::NoSuchInterface(_))
            ));
            nl.set_mtu(idx, 1400).unwrap();
            nl.set_txqueuelen(idx, 1000).unwrap();
            nl.set_link_up(idx, true).unwrap();
            let v4: IfAddr = "198.51.100.1/24".parse().unwrap();
            let v6: IfAddr = "2001:db8:1::1/64".parse().unwrap();
            nl.add_address(idx, v4).unwrap();
            nl.add_address(idx, v6).unwrap();
            assert_eq!(mtu_of_address(v4.addr), Some(1400));
            assert_eq!(mtu_of_address(v6.addr), Some(1400));
            assert_eq!(mtu_of_address("192.0.2.99".parse().unwrap()), None);
            let missing: IpAddr = "192.0.2.99".parse().unwrap();
            let all = mtus_of_addresses(&[v4.addr, v6.addr, missing, v4.addr]);
            assert_eq!(all.get(&v4.addr), Some(&1400));
            assert_eq!(all.get(&v6.addr), Some(&1400));
            assert_eq!(all.get(&missing), None);
            let held = host_addresses();
            assert!(held.contains(&v4.addr) && held.contains(&v6.addr));
            assert!(!held.contains(&missing));
            let e = nl.add_address(idx, v4).unwrap_err();
            assert_eq!(e.errno(), Some(Errno::Exists), "{e}");
            for (dst, table) in [
                ("203.0.113.0/24", TABLE_MAIN),
                ("0.0.0.0/0", 51820),
                ("2001:db8:2::/48", TABLE_MAIN),
            ] {
                nl.add_route(Route {
                    dst: dst.parse().unwrap(),
                    ifindex: idx,
                    table,
                })
                .unwrap();
            }
            nl.add_rule(rule_suppress).unwrap();
            nl.add_rule(rule_mark).unwrap();
            let e = nl.add_rule(rule_mark).unwrap_err();
            assert_eq!(e.errno(), Some(Errno::Exists), "{e}");
            let e = nl
                .del_route(Route {
                    dst: "192.0.2.0/24".parse().unwrap(),
                    ifindex: idx,
                    table: TABLE_MAIN,
                })
                .unwrap_err();
            assert_eq!(e.errno(), Some(Errno::NotFound), "{e}");
            assert_eq!(nl.installed().len(), 7);
            nl
        });

        let link = ns.ip(&["-o", "link", "show", "fvd0"]).unwrap();
        assert!(link.contains(",UP") && link.contains("mtu 1400"), "{link}");
        assert!(link.contains("qlen 1000"), "{link}");
        let addrs = ns.ip(&["-o", "addr", "show", "fvd0"]).unwrap();
        assert!(addrs.contains("198.51.100.1/24"), "{addrs}");
        assert!(addrs.contains("2001:db8:1::1/64"), "{addrs}");
        let routes = ns.ip(&["route", "show", "table", "main"]).unwrap();
        assert!(routes.contains("203.0.113.0/24 dev fvd0"), "{routes}");
        let t = ns.ip(&["route", "show", "table", "51820"]).unwrap();
        assert!(t.contains("default dev fvd0"), "{t}");
        let r6 = ns.ip(&["-6", "route", "show"]).unwrap();
        assert!(r6.contains("2001:db8:2::/48 dev fvd0"), "{r6}");
        let rules = ns.ip(&["rule", "show"]).unwrap();
        assert!(
            rules.contains("1000:\tfrom all lookup main suppress_prefixlength 0"),
            "{rules}"
        );
        assert!(
            rules.contains("1001:\tnot from all fwmark 0xca6c lookup 51820"),
            "{rules}"
        );

        ns.run(|| assert!(nl.undo_all().is_empty()));
        assert!(nl.installed().is_empty());
        let addrs = ns.ip(&["-o", "addr", "show", "fvd0"]).unwrap();
        assert!(!addrs.contains("198.51.100.1"), "{addrs}");
        assert!(!addrs.contains("2001:db8:1::1"), "{addrs}");
        let rules = ns.ip(&["rule", "show"]).unwrap();
        assert!(
            !rules.contains("1000:") && !rules.contains("1001:"),
            "{rules}"
        );
        assert!(ns
            .ip(&["route", "show", "table", "51820"])
            .is_err_or_empty());
        let routes = ns.ip(&["route", "show"]).unwrap();
        assert!(!routes.contains("203.0.113.0/24"), "{routes}");
        drop(nl);
    }

    #[test]
    fn drop_removes_what_was_installed() {
        if !require_root("netlink::drop_removes_what_was_installed") {
            return;
        }
        let ns = NetNs::new("nldrop").unwrap();
        ns.ip(&[
            "link", "add", "fvd1", "type", "veth", "peer", "name", "fvd1p",
        ])
        .unwrap();
        ns.run(|| {
            let mut nl = Netlink::open().unwrap();
            let idx = link_index("fvd1").unwrap();
            nl.add_address(idx, "198.51.100.9/32".parse().unwrap())
                .unwrap();
        });
        let addrs = ns.ip(&["-o", "addr", "show", "fvd1"]).unwrap();
        assert!(!addrs.contains("198.51.100.9"), "{addrs}");
    }

    trait EmptyOrErr {
        fn is_err_or_empty(&self) -> bool;
    }

    impl EmptyOrErr for io::Result<String> {
        fn is_err_or_empty(&self) -> bool {
            self.as_ref().map(|s| s.trim().is_empty()).unwrap_or(true)
        }
    }
}

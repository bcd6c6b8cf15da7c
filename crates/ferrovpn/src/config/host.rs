//! What the host says about a connection before anything is started (interfaces, addresses).

use super::connection::Connection;
use super::remark::Severity;
use super::tunnel::Tunnel;

/// The host's addresses, read on first use and then kept for every connection of the file
/// (one read of the interface list, not one per connection).
#[derive(Default)]
pub(super) struct HostAddresses(Option<std::collections::HashSet<std::net::IpAddr>>);

impl HostAddresses {
    fn holds(&mut self, a: std::net::IpAddr) -> bool {
        self.0
            .get_or_insert_with(crate::netlink::host_addresses)
            .contains(&a)
    }
}

/// What the host says about a connection before anything is started: its TUN name taken by
/// a device that is not a TUN is an error; an existing TUN, or a `local_addr` no interface
/// holds, is told (the daemon decides about the TUN; the address may be added later).
pub(super) fn inspect_host(
    c: &Connection,
    host: &mut HostAddresses,
    notes: &mut Vec<(Severity, String)>,
) -> Result<(), String> {
    if let Tunnel::RouteBased(r) = &c.tunnel {
        if let Ok(index) = crate::netlink::link_index(&r.interface) {
            let kind = crate::netlink::Netlink::open()
                .and_then(|mut nl| nl.link_kind(index))
                .map_err(|e| {
                    format!(
                        "route_based.interface: {} exists, and its kind cannot be read: {e}",
                        r.interface
                    )
                })?;
            match kind.as_deref() {
                Some("tun") => notes.push((
                    Severity::Note,
                    format!(
                        "route_based.interface: a TUN device {} exists already; `up` takes it over only if a ferrovpn that is no longer running left it behind",
                        r.interface
                    ),
                )),
                other => {
                    return Err(format!(
                        "route_based.interface: {} is an existing {} device, not a TUN; ferrovpn creates its own TUN device, so pick a name no interface has",
                        r.interface,
                        match other {
                            Some(k) => k,
                            // Linux gives the loopback device ifindex 1 in every namespace.
                            None if index == 1 => "loopback",
                            None => "physical or loopback",
                        }
                    ))
                }
            }
        }
    }
    if !host.holds(c.local_addr) {
        notes.push((
            Severity::Warning,
            format!(
                "local_addr {} is not an address of this host (in this network namespace): `up` cannot bind IKE to it until it is",
                c.local_addr
            ),
        ));
    }
    Ok(())
}

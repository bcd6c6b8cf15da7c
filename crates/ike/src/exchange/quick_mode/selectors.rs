//! Traffic selectors as Quick Mode ID payloads (RFC 2409 §5.5, RFC 2407 §4.6.2): which
//! configured pair a QM1 asks for, and whether a QM2 narrowed ours.

use std::net::IpAddr;

use super::state::QuickMode;
use crate::config::{ConnectionConfig, TrafficSelector};
use crate::error::InputError;
use crate::event::Failure;
use crate::wire::{Identification, Payload};

pub(super) fn ids_of(payloads: &[Payload]) -> Vec<&Identification> {
    payloads
        .iter()
        .filter_map(|p| match p {
            Payload::Identification(i) => Some(i),
            _ => None,
        })
        .collect()
}

pub(super) fn selector(id: &Identification) -> Option<TrafficSelector> {
    TrafficSelector::from_id_value(&id.value().ok()?, id.protocol, id.port)
}

/// Responder: the configured pair whose selectors mirror QM1's IDci/IDcr (without IDs, the
/// two hosts themselves, RFC 2409 §5.5). `Ok(Err(_))` names both sides for the
/// INVALID-ID-INFORMATION report; `Err(_)` is a QM1 with other than zero or two IDs.
pub(super) fn requested_pair(
    cfg: &ConnectionConfig,
    ids: &[&Identification],
    local: IpAddr,
    remote: IpAddr,
    assigned: &[IpAddr],
) -> Result<Result<usize, Failure>, InputError> {
    let (theirs_local, theirs_remote) = match ids {
        [] => (
            Some(TrafficSelector::host(remote)),
            Some(TrafficSelector::host(local)),
        ),
        [ci, cr] => (selector(ci), selector(cr)),
        _ => {
            return Err(InputError::Unexpected(
                "Quick Mode needs zero or two ID payloads",
            ))
        }
    };
    let index = match (theirs_local, theirs_remote) {
        // A gateway's client must use exactly the address it was assigned in that family,
        // inside a configured pair (issue 14); without one (Mode Config not done, or no
        // address of the family) nothing matches.
        (Some(ci), Some(cr)) if cfg.gateway.is_some() => assigned
            .iter()
            .find(|a| TrafficSelector::host(**a).normalized() == ci)
            .and_then(|&a| {
                cfg.children
                    .iter()
                    .position(|c| c.local_ts.normalized() == cr && covers(c.remote_ts, a))
            }),
        (Some(ci), Some(cr)) => cfg
            .children
            .iter()
            .position(|c| c.remote_ts.normalized() == ci && c.local_ts.normalized() == cr),
        _ => None,
    };
    Ok(index.ok_or_else(|| {
        let show = |t: Option<TrafficSelector>| {
            t.map_or("(unsupported ID)".to_string(), |t| t.to_string())
        };
        let ours = cfg
            .children
            .iter()
            .map(|c| format!("{} === {}", c.local_ts, c.remote_ts))
            .collect::<Vec<_>>()
            .join(", ");
        Failure::InvalidSelectors {
            ours,
            theirs: format!("{} === {}", show(theirs_remote), show(theirs_local)),
        }
    }))
}

/// True when the all-protocol selector `ts` covers the address `a` (of its family).
fn covers(ts: TrafficSelector, a: IpAddr) -> bool {
    ts.protocol == 0
        && ts.port == 0
        && ts.addr.is_ipv6() == a.is_ipv6()
        && TrafficSelector { addr: a, ..ts }.normalized() == ts.normalized()
}

/// Initiator: QM2's IDs, when present, must be the ones we sent; a responder that narrowed
/// them gets the failure to report.
pub(super) fn narrowed(qm: &QuickMode, ids: &[&Identification]) -> Option<Failure> {
    let [ci, cr] = ids else {
        return None;
    };
    if selector(ci) == Some(qm.local_ts.normalized())
        && selector(cr) == Some(qm.remote_ts.normalized())
    {
        return None;
    }
    Some(Failure::InvalidSelectors {
        ours: format!("{} === {}", qm.local_ts, qm.remote_ts),
        theirs: format!(
            "{} === {} (narrowed by the responder)",
            selector(ci).map(|s| s.to_string()).unwrap_or_default(),
            selector(cr).map(|s| s.to_string()).unwrap_or_default()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ChildConfig, RemoteAccessGateway};
    use std::net::Ipv4Addr;

    fn gateway() -> ConnectionConfig {
        let mut c = ConnectionConfig::new(
            "gw",
            [192, 0, 2, 2].into(),
            Ipv4Addr::UNSPECIFIED.into(),
            b"k",
        );
        c.children = vec![
            ChildConfig {
                local_ts: TrafficSelector::any_v4(),
                remote_ts: TrafficSelector::subnet([198, 51, 100, 128].into(), 25),
            },
            ChildConfig {
                local_ts: TrafficSelector::subnet(std::net::Ipv6Addr::UNSPECIFIED.into(), 0),
                remote_ts: TrafficSelector::subnet(v6("2001:db8:1::"), 112),
            },
        ];
        c.gateway = Some(RemoteAccessGateway {
            users: None,
            pool: (Ipv4Addr::new(198, 51, 100, 128), 25),
            pool6: Some(("2001:db8:1::".parse().unwrap(), 112)),
            settings: Default::default(),
            push: false,
            max_failures: 3,
            failure_window: std::time::Duration::from_secs(60),
        });
        c
    }

    fn v6(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ask(assigned: &[IpAddr], client: IpAddr) -> Result<usize, Failure> {
        let any = if client.is_ipv6() {
            TrafficSelector::subnet(std::net::Ipv6Addr::UNSPECIFIED.into(), 0)
        } else {
            TrafficSelector::any_v4()
        };
        let ci = Identification::new(&TrafficSelector::host(client).to_id_value(), 0, 0);
        let cr = Identification::new(&any.to_id_value(), 0, 0);
        requested_pair(
            &gateway(),
            &[&ci, &cr],
            [192, 0, 2, 2].into(),
            [192, 0, 2, 9].into(),
            assigned,
        )
        .unwrap()
    }

    #[test]
    fn a_gateway_client_must_use_exactly_its_assigned_address() {
        let mine: IpAddr = [198, 51, 100, 129].into();
        let mine6 = v6("2001:db8:1::1");
        assert_eq!(ask(&[mine], mine), Ok(0));
        // Another address of the pool, one outside it, or any before Mode Config: refused.
        assert!(ask(&[mine], [198, 51, 100, 130].into()).is_err());
        assert!(ask(&[mine], [203, 0, 113, 7].into()).is_err());
        assert!(ask(&[], mine).is_err());
        // Dual stack: each family's pair with exactly that family's address.
        assert_eq!(ask(&[mine, mine6], mine6), Ok(1));
        assert_eq!(ask(&[mine, mine6], mine), Ok(0));
        assert!(ask(&[mine, mine6], v6("2001:db8:1::2")).is_err());
        assert!(ask(&[mine], mine6).is_err(), "no IPv6 address leased");
        assert!(
            ask(&[mine, v6("2001:db8:9::1")], v6("2001:db8:9::1")).is_err(),
            "outside the pool's pair"
        );
    }
}

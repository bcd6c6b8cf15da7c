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

//! From a classified failure record to its [`Verdict`]: one function per known failure, grouped
//! by what failed (the path, authentication, or what the peer refused).

use super::classify::Kind;
use super::evidence::{ago, Facts};
use super::verdict::Verdict;
use super::{auth, path, refusal};
use crate::snapshot::{ConnSnapshot, Record, What};

pub(super) fn explain(
    c: &ConnSnapshot,
    now_ms: u64,
    i: usize,
    kind: Kind,
    repeats: usize,
) -> Verdict {
    let h = &c.history;
    let fallback = Record {
        t_ms: now_ms,
        unix_ms: 0,
        cookies: String::new(),
        message_id: 0,
        what: What::InitialContact,
    };
    let r = h.get(i).unwrap_or(&fallback);
    let peer = &c.remote_addr;
    // With certificates there is no PSK: silence after MM5 is named for what we sent there;
    // when the peer had asked for CAs none of our certificates chains to, that is the cause.
    let unmatched_cr = auth::unmatched_cr(h, r);
    let refused = matches!(kind, Kind::PeerRefusedCertificate { .. })
        || (c.certificate && matches!(kind, Kind::PskSilent { .. }));
    let code = match kind {
        _ if refused && unmatched_cr.is_some() => "no-certificate-matches-cr",
        Kind::PskSilent { .. } if c.certificate => "silent-after-certificate",
        _ => kind.code(),
    };
    let f = Facts {
        c,
        h,
        r,
        i,
        now_ms,
        peer,
        code,
    };
    let mut v = match kind {
        Kind::PeerRefusedCertificate { notify } if unmatched_cr.is_some() => {
            auth::no_certificate_matches_cr(&f, unmatched_cr.unwrap_or_default(), Some(&notify))
        }
        Kind::PskSilent { .. } if refused && unmatched_cr.is_some() => {
            auth::no_certificate_matches_cr(&f, unmatched_cr.unwrap_or_default(), None)
        }
        Kind::Unreachable => path::unreachable(&f),
        Kind::Udp4500Blocked => path::udp4500_blocked(&f),
        Kind::PskSilent { probe } if c.certificate => auth::certificate_silent(&f, probe),
        Kind::PskSilent { probe } => auth::psk_silent(&f, probe),
        Kind::Unprocessable {
            message,
            reason,
            notify,
        } => refusal::unprocessable(&f, message, reason, notify),
        Kind::RemoteAccess { detail } => refusal::remote_access(&f, detail),
        Kind::Stalled(m) => path::stalled(&f, m),
        Kind::NoProposal {
            phase1,
            ours,
            theirs,
        } => refusal::no_proposal(&f, phase1, ours, theirs),
        Kind::Psk {
            ours_detail,
            notify,
        } => auth::psk(&f, ours_detail, notify),
        Kind::Identity { expected, received } => auth::identity(&f, expected, received),
        Kind::IdInfoPhase1 => auth::id_info_phase1(&f),
        Kind::Selectors { ours, theirs } => refusal::selectors(&f, ours, theirs),
        Kind::PeerDead => path::peer_dead(&f),
        Kind::Expired { what } => path::expired(&f, what),
        Kind::Certificate { reason, detail } => auth::certificate(&f, &reason, detail),
        Kind::PeerRefusedCertificate { notify } => auth::peer_refused_certificate(&f, &notify),
        Kind::Other(text) => refusal::other(&f, text),
    };
    if repeats > 1 {
        v.evidence.push(format!(
            "seen {repeats} times since the tunnel last worked (last {})",
            ago(now_ms, r.t_ms)
        ));
    }
    v
}

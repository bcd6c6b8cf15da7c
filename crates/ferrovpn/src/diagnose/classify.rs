//! Which known failure a history record is ([`Kind`]), and the stable code of each.

use super::evidence::{initiator_cookie, is_msg};
use crate::snapshot::{ConnSnapshot, FailureRecord, Record, What};

/// How a record touches a known diagnosis; `None` for records that are not a failure.
pub(super) enum Kind {
    Unreachable,
    Udp4500Blocked,
    /// Silent after MM5; `probe` as in `FailureRecord::SilentAfterMm5`.
    PskSilent {
        probe: Option<String>,
    },
    /// The peer sent something we cannot process (answered with `notify`).
    Unprocessable {
        message: String,
        reason: String,
        notify: Option<String>,
    },
    /// The peer is a remote-access client or server (XAuth / Mode Config).
    RemoteAccess {
        detail: String,
    },
    Stalled(String),
    NoProposal {
        phase1: bool,
        ours: String,
        theirs: Option<String>,
    },
    Psk {
        ours_detail: Option<String>,
        notify: Option<String>,
    },
    Identity {
        expected: String,
        received: String,
    },
    Selectors {
        ours: String,
        theirs: Option<String>,
    },
    IdInfoPhase1,
    PeerDead,
    Expired {
        what: String,
    },
    /// The peer's certificate or signature was refused; `reason` as in the record.
    Certificate {
        reason: String,
        detail: String,
    },
    /// With certificates, the peer reported phase 1 authentication failed: it did not accept
    /// our certificate, chain or signature; `notify` as it sent it.
    PeerRefusedCertificate {
        notify: String,
    },
    Other(String),
}

impl Kind {
    pub(super) fn code(&self) -> &'static str {
        match self {
            Kind::Unreachable => "unreachable",
            Kind::Udp4500Blocked => "udp4500-blocked",
            Kind::PskSilent { .. } | Kind::Psk { .. } => "psk-mismatch",
            Kind::Unprocessable { .. } => "unprocessable",
            Kind::RemoteAccess { .. } => "remote-access",
            Kind::Stalled(_) => "stalled",
            Kind::NoProposal { .. } => "no-proposal-chosen",
            Kind::Identity { .. } | Kind::IdInfoPhase1 => "identity-mismatch",
            Kind::Selectors { .. } => "selectors-refused",
            Kind::PeerDead => "peer-dead",
            Kind::Expired { .. } => "expired-without-rekey",
            Kind::Certificate { reason, .. } => match reason.as_str() {
                "untrusted_ca" => "untrusted-ca",
                "certificate_expired" => "certificate-expired",
                "certificate_not_yet_valid" => "certificate-not-yet-valid",
                "identity_not_in_certificate" => "identity-not-in-certificate",
                "no_certificate" => "no-certificate",
                "signature_invalid" => "signature-invalid",
                "revoked" => "revoked",
                _ => "certificate-invalid",
            },
            Kind::PeerRefusedCertificate { .. } => "peer-refused-certificate",
            Kind::Other(_) => "failed",
        }
    }
}

/// What kind of failure record `h[i]` is, if any.
pub(super) fn classify(
    c: &ConnSnapshot,
    h: &[Record],
    i: usize,
    established: &[&str],
) -> Option<Kind> {
    let r = h.get(i)?;
    let phase1_done = established.contains(&r.cookies.as_str());
    let from_notify = |n: &str, in_quick_mode: bool| -> Option<Kind> {
        match n {
            "NO-PROPOSAL-CHOSEN" => Some(Kind::NoProposal {
                phase1: !in_quick_mode,
                ours: if in_quick_mode {
                    c.esp_proposals.clone()
                } else {
                    c.ike_proposals.clone()
                },
                theirs: None,
            }),
            "AUTHENTICATION-FAILED"
            | "INVALID-SIGNATURE"
            | "INVALID-CERT-AUTHORITY"
            | "INVALID-CERTIFICATE"
            | "INVALID-CERT-ENCODING"
            | "CERT-TYPE-UNSUPPORTED"
            | "CERTIFICATE-UNAVAILABLE"
                if !in_quick_mode && c.certificate =>
            {
                Some(Kind::PeerRefusedCertificate {
                    notify: n.to_string(),
                })
            }
            "AUTHENTICATION-FAILED" | "INVALID-HASH-INFORMATION" if !in_quick_mode => {
                Some(Kind::Psk {
                    ours_detail: None,
                    notify: Some(n.to_string()),
                })
            }
            "PAYLOAD-MALFORMED" | "INVALID-PAYLOAD-TYPE" if !in_quick_mode => Some(Kind::Psk {
                ours_detail: None,
                notify: Some(n.to_string()),
            }),
            "INVALID-ID-INFORMATION" if in_quick_mode => Some(Kind::Selectors {
                ours: c.selectors.join(", "),
                theirs: None,
            }),
            "INVALID-ID-INFORMATION" => Some(Kind::IdInfoPhase1),
            _ => None,
        }
    };
    // A plain error notify the peer sent on this negotiation before it gave up: recorded
    // only (it may be forged), but the best explanation of the silence that followed.
    let notified = || -> Option<Kind> {
        h.iter().rev().find_map(|x| match &x.what {
            What::Notify { notify, .. }
                if initiator_cookie(&x.cookies) == initiator_cookie(&r.cookies) =>
            {
                from_notify(notify, false)
            }
            _ => None,
        })
    };
    let from_failure = |f: &FailureRecord, in_quick_mode: bool| -> Kind {
        match f {
            FailureRecord::NoResponse { .. } | FailureRecord::SilentAfterMm5 { .. }
                if !in_quick_mode && notified().is_some() =>
            {
                notified().unwrap_or(Kind::Other(f.to_string()))
            }
            FailureRecord::NoResponse { message, .. } => {
                let floated = h
                    .iter()
                    .any(|x| x.cookies == r.cookies && is_msg(x, true).is_some_and(|(_, u)| u));
                match message.as_str() {
                    "MM1" | "AM1" => Kind::Unreachable,
                    _ if floated && !in_quick_mode && !phase1_done => Kind::Udp4500Blocked,
                    "MM5" => Kind::PskSilent { probe: None },
                    m => Kind::Stalled(m.to_string()),
                }
            }
            FailureRecord::SilentAfterMm5 { probe, .. } => match probe.as_str() {
                "unanswered" => Kind::Udp4500Blocked,
                p => Kind::PskSilent {
                    probe: Some(p.to_string()),
                },
            },
            FailureRecord::NoProposalChosen { theirs, .. } if theirs.contains("XAuth") => {
                Kind::RemoteAccess {
                    detail: format!("the peer offered {theirs}"),
                }
            }
            FailureRecord::Abandoned { .. } => Kind::Other(f.to_string()),
            FailureRecord::PeerNotify { notify } => {
                from_notify(notify, in_quick_mode).unwrap_or_else(|| Kind::Other(f.to_string()))
            }
            FailureRecord::NoProposalChosen { ours, theirs } => Kind::NoProposal {
                phase1: !in_quick_mode,
                ours: ours.clone(),
                theirs: Some(theirs.clone()),
            },
            FailureRecord::AuthenticationFailed { detail } => Kind::Psk {
                ours_detail: Some(detail.clone()),
                notify: None,
            },
            FailureRecord::IdentityMismatch { expected, received } => Kind::Identity {
                expected: expected.clone(),
                received: received.clone(),
            },
            FailureRecord::InvalidSelectors { ours, theirs } => Kind::Selectors {
                ours: ours.clone(),
                theirs: Some(theirs.clone()),
            },
            FailureRecord::Certificate { reason, detail } => Kind::Certificate {
                reason: reason.clone(),
                detail: detail.clone(),
            },
            FailureRecord::Other { detail } => Kind::Other(detail.clone()),
        }
    };
    match &r.what {
        // A half-open SA that never heard back is noise, counted in the notes.
        What::IkeFailed {
            failure: FailureRecord::Abandoned { .. },
        } => None,
        What::Unprocessable {
            remote_access: true,
            reason,
            ..
        } => Some(Kind::RemoteAccess {
            detail: reason.clone(),
        }),
        What::Unprocessable {
            message,
            reason,
            notify,
            ..
        } => Some(Kind::Unprocessable {
            message: message.clone(),
            reason: reason.clone(),
            notify: notify.clone(),
        }),
        What::IkeFailed { failure } => Some(from_failure(failure, false)),
        What::ChildFailed { failure } => Some(from_failure(failure, true)),
        What::Notify { notify, .. } => from_notify(notify, phase1_done),
        What::PeerDead => Some(Kind::PeerDead),
        What::ChildDeleted { spi_in, reason, .. } if reason.contains("lifetime expired") => {
            // Expired without a successor: no IPsec SA was established after this one.
            let born = h.iter().position(
                |x| matches!(x.what, What::ChildEstablished { spi_in: s, .. } if s == *spi_in),
            );
            let successor = h.iter().enumerate().any(|(j, x)| {
                j < i
                    && born.is_some_and(|b| j > b)
                    && matches!(x.what, What::ChildEstablished { .. })
            });
            (!successor && reason.contains("lifetime")).then(|| Kind::Expired {
                what: format!("IPsec SA spi in {spi_in:08x}"),
            })
        }
        What::IkeDeleted { reason } if reason.contains("lifetime expired") => {
            let born = h.iter().position(|x| {
                x.cookies == r.cookies && matches!(x.what, What::IkeEstablished { .. })
            });
            let successor = h.iter().enumerate().any(|(j, x)| {
                j < i
                    && born.is_some_and(|b| j > b)
                    && matches!(x.what, What::IkeEstablished { .. })
            });
            (!successor).then(|| Kind::Expired {
                what: format!("ISAKMP SA {}", r.cookies),
            })
        }
        _ => None,
    }
}

//! What the peer refused or could not process: proposals, traffic selectors, messages ferrovpn
//! cannot handle, remote access, and any other failure.

use super::evidence::{ago, failure_line, Facts};
use super::verdict::Verdict;

/// `unprocessable`: the peer sent a message ferrovpn cannot process.
pub(super) fn unprocessable(
    f: &Facts,
    message: String,
    reason: String,
    notify: Option<String>,
) -> Verdict {
    let Facts {
        r, now_ms, peer, ..
    } = *f;
    let mut v = f.problem(format!(
        "{peer} sent a {message} that ferrovpn cannot process: {reason}"
    ));
    v.evidence.push(format!(
        "{message} on {} mid {:08x} ({}), {}",
        r.cookies,
        r.message_id,
        ago(now_ms, r.t_ms),
        match &notify {
            Some(n) => format!("answered with a protected {n}"),
            None => "no notify applies".into(),
        }
    ));
    v.next = vec![
        format!("read the peer's log for cookies {}: its {message} carries something ferrovpn does not implement or the peer built it wrongly", r.cookies),
        "an ESP proposal with no transform usually means the peer is configured with a cipher IKEv1 cannot name (e.g. chacha20poly1305 in strongSwan's IKEv1): use a cipher both sides support in IKEv1, e.g. aes128gcm16 or aes256-sha256".into(),
    ];
    v
}

/// `remote-access`: the peer expects XAuth / Mode Config.
pub(super) fn remote_access(f: &Facts, detail: String) -> Verdict {
    let Facts { r, peer, .. } = *f;
    let mut v = f.problem(format!("{peer} expects XAuth/Mode Config — remote access, which this connection is not configured for"));
    v.evidence.push(format!("{detail} (cookies {})", r.cookies));
    v.next = vec![
        "configure the peer for a site-to-site connection with a pre-shared key only (no xauth round, no mode config / virtual IP)".into(),
        "or, if the peer is a remote-access gateway and this host its client, set remote_access = \"client\" with xauth_user (config/README.md)".into(), "or, if this host is the remote-access gateway and the peer its client, make this connection one: remote_access = \"gateway\" with remote_addr = \"any\", pool and users_file or xauth_pam_service (config/README.md)".into(),
    ];
    v
}

/// `no-proposal-chosen`: no phase 1 or Quick Mode proposal in common.
pub(super) fn no_proposal(
    f: &Facts,
    phase1: bool,
    ours: String,
    theirs: Option<String>,
) -> Verdict {
    let Facts { peer, .. } = *f;
    let which = if phase1 {
        "phase 1 (IKE)"
    } else {
        "Quick Mode (ESP)"
    };
    let mut v = f.problem(format!(
        "NO-PROPOSAL-CHOSEN: no {which} proposal in common with {peer}"
    ));
    v.evidence.push(format!("ours:   {ours}"));
    v.evidence.push(match &theirs {
        Some(t) => format!("peer's: {t}"),
        None => "peer's: not known here (the peer only answered NO-PROPOSAL-CHOSEN); run ferrovpn diagnose on the peer or read its log".into(),
    });
    v.evidence.push(f.failure_with_cookies());
    v.next = vec![format!(
        "make one proposal identical on both sides: the `{}` key here and the peer's {} proposals (cipher, hash/integrity, DH group{})",
        if phase1 { "ike" } else { "esp" },
        if phase1 { "IKE" } else { "ESP" },
        if phase1 { "" } else { ", PFS group" }
    )];
    v
}

/// `selectors-refused`: Quick Mode refused for its traffic selectors.
pub(super) fn selectors(f: &Facts, ours: String, theirs: Option<String>) -> Verdict {
    let Facts { r, .. } = *f;
    let mut v = f.problem("Quick Mode refused for traffic selectors (INVALID-ID-INFORMATION): the subnets do not match".into());
    v.evidence.push(format!("ours:   {ours}"));
    v.evidence.push(match &theirs {
        Some(t) => format!("peer's: {t}"),
        None => "peer's: not known here (the peer only answered INVALID-ID-INFORMATION); run ferrovpn diagnose on the peer".into(),
    });
    v.evidence.push(format!(
        "{} (cookies {}, message ID {:08x})",
        failure_line(r),
        r.cookies,
        r.message_id
    ));
    v.next = vec![
        "the selectors must mirror each other exactly (ferrovpn does not narrow): our local is the peer's remote and our remote is the peer's local, with the same prefix lengths".into(),
    ];
    v
}

/// `failed`: any other failure, with its messages.
pub(super) fn other(f: &Facts, text: String) -> Verdict {
    let Facts { r, peer, .. } = *f;
    let mut v = f.problem(format!("negotiation with {peer} failed: {text}"));
    v.evidence.push(format!("cookies {}", r.cookies));
    v.evidence.extend(f.messages(6));
    v.next = vec!["read the daemon log of both sides for these cookies".into()];
    v
}

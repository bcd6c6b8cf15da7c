//! CRL files read again when they change (see `config::credentials::CrlWatch`): checked
//! before IKE messages are handled, at most once a second, and on every `reload`.

use std::time::Instant;

use tracing::{info, warn};

use super::state::Daemon;
use crate::config::{Auth, CRL_CHECK_INTERVAL};

impl Daemon {
    /// Reads changed CRL files into the running connections' trust (`force`: now, a reload).
    /// Each watch looks at its files at most once per `CRL_CHECK_INTERVAL`, so the walk over
    /// the connections runs at most that often too: it is called for every IKE datagram, and
    /// a gateway may have thousands of connections.
    pub(super) fn refresh_crls(&mut self, now: Instant, force: bool) {
        if !force
            && self
                .crls_checked
                .is_some_and(|t| now.saturating_duration_since(t) < CRL_CHECK_INTERVAL)
        {
            return;
        }
        self.crls_checked = Some(now);
        for c in self.conns.iter().filter(|c| !c.removed) {
            let Auth::Certificate {
                creds,
                crl: Some(watch),
                ..
            } = &c.cfg.auth
            else {
                continue;
            };
            match watch.refresh(creds, now, force) {
                None => {}
                Some(Ok(n)) => info!(
                    conn = %c.cfg.name,
                    "crl_file {} changed: {n} CRLs in use",
                    watch.path.display()
                ),
                Some(Err(e)) => warn!(
                    conn = %c.cfg.name,
                    "{e}; the CRLs read before stay in use"
                ),
            }
        }
    }
}

//! Identities in phase 1 (RFC 2409 §5, RFC 2407 §4.6.2): our ID payload, the check of the
//! peer's, and the HASH_I/HASH_R that proves it, or with certificates the CERT and SIG
//! payloads over it (RFC 2409 §5.1).

use std::sync::Arc;
use std::time::Instant;

use crate::cert::{self, CertAuth, CertFailure};
use crate::config::{ConnectionConfig, Phase1Auth};
use crate::context::Ctx;
use crate::crypto;
use crate::event::{Event, Failure, Role};
use crate::exchange::payloads::{find, hash_of, id_body, id_of};
use crate::keyed::Keyed;
use crate::sa::IkeSa;
use crate::wire::{IdType, IdValue, Identification, NotifyType, Payload};

/// Our phase 1 ID payload. RFC 2407 §4.6.2: protocol/port may be 0 or UDP/500; we send 0.
/// A DN that names our certificate's subject goes out as that subject's exact DER.
pub(crate) fn our_id(cfg: &ConnectionConfig) -> Identification {
    if let (IdValue::Other(IdType::DER_ASN1_DN, dn), Phase1Auth::Certificate(c)) =
        (&cfg.local_id, &cfg.auth)
    {
        if let Some(ours) = c.chain.first().map(|c| c.subject_der()) {
            if cert::same_dn(dn, &ours) {
                return Identification::new(&IdValue::Other(IdType::DER_ASN1_DN, ours), 0, 0);
            }
        }
    }
    Identification::new(&cfg.local_id, 0, 0)
}

/// The peer's ID must be the configured one (RFC 2409 §5: checked with the HASH); a
/// configured DN may hold wildcard values (`CN=*`, see `cert::dn_matches`).
pub(crate) fn check_peer_id(cfg: &ConnectionConfig, id: &Identification) -> Result<(), Failure> {
    let got = id.value().map_err(|e| Failure::Malformed(e.to_string()))?;
    // A gateway whose remote ID is the unspecified address takes any client ID (iPhones send
    // their private address, others the group name): the group PSK authenticated phase 1 and
    // XAuth authenticates the user (issue 14).
    if cfg.gateway.is_some() && matches!(cfg.remote_id, IdValue::Ipv4(a) if a.is_unspecified()) {
        return Ok(());
    }
    let same = match (&got, &cfg.remote_id) {
        (IdValue::Other(IdType::DER_ASN1_DN, a), IdValue::Other(IdType::DER_ASN1_DN, b)) => {
            cert::same_dn(a, b) || cert::dn_matches(b, a)
        }
        _ => got == cfg.remote_id,
    };
    if same {
        Ok(())
    } else {
        Err(Failure::IdentityMismatch {
            expected: cfg.remote_id.to_string(),
            received: got.to_string(),
        })
    }
}

impl IkeSa {
    /// Checks the peer's HASH in constant time; a mismatch fails the SA with
    /// AUTHENTICATION-FAILED, naming `what` (e.g. "HASH_I in MM5").
    pub(crate) fn verify_peer_hash(
        &mut self,
        ctx: &mut Ctx<'_>,
        keys: &Keyed,
        hash: &[u8],
        id_b: &[u8],
        what: &str,
    ) -> bool {
        let expected = keys.auth_hash(&self.cookies, self.role.peer(), id_b);
        let ok = crypto::ct_eq(&expected, hash);
        if !ok {
            let reason = Failure::AuthenticationFailed {
                detail: format!("{what} does not verify"),
            };
            self.fail(
                ctx,
                reason,
                Some(crate::wire::NotifyType::AUTHENTICATION_FAILED),
            );
        }
        ok
    }
}

/// CR payloads naming each CA we trust (RFC 2408 §3.10), sent in MM3/MM4 with certificates.
pub(crate) fn cert_requests(cfg: &ConnectionConfig) -> Vec<Payload> {
    match &cfg.auth {
        Phase1Auth::Psk => Vec::new(),
        Phase1Auth::Certificate(c) => c
            .requested_cas()
            .into_iter()
            .map(|authority| Payload::CertificateRequest {
                encoding: cert::X509_SIGNATURE,
                authority,
            })
            .collect(),
    }
}

impl IkeSa {
    /// What proves us in MM5/MM6 (RFC 2409 §5, §5.1): ID and HASH with a PSK; ID, our
    /// certificate chain (CERT) and SIG over the HASH with certificates. `None` if the key
    /// could not sign (the SA failed).
    pub(crate) fn our_proof(&mut self, ctx: &mut Ctx<'_>, keys: &Keyed) -> Option<Vec<Payload>> {
        let id = our_id(ctx.cfg);
        let hash = keys.auth_hash(&self.cookies, self.role, &id_body(&id));
        let Phase1Auth::Certificate(c) = &ctx.cfg.auth else {
            return Some(vec![
                Payload::Identification(id),
                Payload::Hash(hash.to_vec()),
            ]);
        };
        let (chain, key, matched) = c.choose(&self.peer_cert_requests);
        if matched == cert::CrMatch::Unmatched {
            ctx.event(Event::CertificateRequestUnmatched {
                conn: self.conn,
                cookies: self.cookies,
                requested: self
                    .peer_cert_requests
                    .iter()
                    .map(|dn| cert::dn_string(dn))
                    .collect(),
            });
        }
        let Some(sig) = key.sign_hash(&hash, ctx.rng) else {
            let reason = Failure::Malformed("our private key failed to sign".into());
            self.fail(ctx, reason, None);
            return None;
        };
        let mut payloads = vec![Payload::Identification(id)];
        payloads.extend(chain.iter().map(|cert| Payload::Certificate {
            encoding: cert::X509_SIGNATURE,
            data: cert.der().to_vec(),
        }));
        payloads.push(Payload::Signature(sig));
        Some(payloads)
    }

    /// The peer's proof in MM5/MM6: with a PSK its HASH, with certificates its chain to a
    /// trusted CA, its ID in the certificate and its SIG over the HASH (RFC 2409 §5.1); then
    /// the ID must be the configured one. `false` after failing the SA with the notify RFC
    /// 2408 §5 names.
    pub(crate) fn peer_proves_with(
        &mut self,
        ctx: &mut Ctx<'_>,
        keys: &Keyed,
        payloads: &[Payload],
        what: &str,
    ) -> bool {
        // Only the responder reports a missing payload to the peer (as before certificates).
        let missing = (self.role == Role::Responder).then_some(NotifyType::PAYLOAD_MALFORMED);
        let Phase1Auth::Certificate(c) = &ctx.cfg.auth else {
            let (Some(id), Some(hash)) = (find(payloads, id_of), find(payloads, hash_of)) else {
                let reason = Failure::Malformed("ID or HASH payload missing".into());
                self.fail(ctx, reason, missing);
                return false;
            };
            return self.peer_proves(ctx, keys, id, hash, what);
        };
        let Some(id) = find(payloads, id_of) else {
            let reason = Failure::Malformed("ID payload missing".into());
            self.fail(ctx, reason, missing);
            return false;
        };
        let c = Arc::clone(c);
        let certs: Vec<&[u8]> = payloads
            .iter()
            .filter_map(|p| match p {
                Payload::Certificate { encoding, data } if *encoding == cert::X509_SIGNATURE => {
                    Some(data.as_slice())
                }
                _ => None,
            })
            .collect();
        let checked = self.check_signature(&c, ctx.now, keys, id, &certs, payloads);
        if let Err((f, notify)) = checked {
            self.fail(ctx, Failure::Certificate(f), Some(notify));
            return false;
        }
        if let Err(f) = check_peer_id(ctx.cfg, id) {
            self.refuse_identity(ctx, keys, f);
            return false;
        }
        true
    }

    fn check_signature(
        &self,
        c: &CertAuth,
        now: Instant,
        keys: &Keyed,
        id: &Identification,
        certs: &[&[u8]],
        payloads: &[Payload],
    ) -> Result<(), (CertFailure, NotifyType)> {
        if certs.is_empty() {
            return Err((
                CertFailure::NoCertificate,
                NotifyType::CERTIFICATE_UNAVAILABLE,
            ));
        }
        let Some(sig) = payloads.iter().find_map(|p| match p {
            Payload::Signature(s) => Some(s.as_slice()),
            _ => None,
        }) else {
            let f = CertFailure::SignatureInvalid {
                detail: "no SIG payload".into(),
            };
            return Err((f, NotifyType::INVALID_SIGNATURE));
        };
        let peer = c.verify_peer(certs, c.clock.unix_at(now)).map_err(|f| {
            let n = match f {
                CertFailure::UntrustedCa { .. } => NotifyType::INVALID_CERT_AUTHORITY,
                _ => NotifyType::INVALID_CERTIFICATE,
            };
            (f, n)
        })?;
        let value = id.value().map_err(|e| {
            (
                cert::CertFailure::Invalid {
                    detail: e.to_string(),
                },
                NotifyType::INVALID_ID_INFORMATION,
            )
        })?;
        if !peer.names(&value) {
            let f = CertFailure::IdentityNotInCertificate {
                id: value.to_string(),
                subject: peer.subject(),
            };
            return Err((f, NotifyType::INVALID_ID_INFORMATION));
        }
        let hash = keys.auth_hash(&self.cookies, self.role.peer(), &id_body(id));
        cert::verify_signature(&peer, c.kind(), &hash, sig)
            .map_err(|f| (f, NotifyType::INVALID_SIGNATURE))
    }
}

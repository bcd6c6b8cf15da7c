//! Diffie-Hellman shared secrets computed off the endpoint's thread (issue #20). When an
//! exchange needs g^xy (MM3, MM4, AM1, AM2), it builds a [`DhJob`]: our private value, the
//! peer's public value and everything the phase 1 key schedule needs (RFC 2409 §5, App. B).
//! Inline, the exchange runs it at once; with offloading on (`Settings::dh_offload`) the SA
//! waits, the endpoint hands the job out (`Endpoint::poll_dh_job`), the driver runs it on any
//! thread and feeds the [`DhDone`] back (`Endpoint::dh_done`), and the exchange continues as
//! if it had computed inline. Both types are opaque: key material stays inside and is wiped
//! on drop; `Debug` prints none.

use core::fmt;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::algorithm::{DhGroup, IkeCipher, IkeHash};
use crate::crypto::{self, CryptoError, DhPrivate, Phase1Keys, Secret};

/// Which job a [`DhDone`] answers; unique per endpoint.
pub type DhJobId = u64;

/// How SKEYID is made (RFC 2409 §5): from the PSK, or from g^xy for signatures.
pub(crate) enum SkeyidFrom {
    Psk(Secret),
    Signature,
}

/// The phase 1 key schedule's inputs besides g^xy (RFC 2409 §5, App. B).
pub(crate) struct Schedule {
    pub hash: IkeHash,
    pub cipher: IkeCipher,
    pub auth: SkeyidFrom,
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
    pub cky_i: [u8; 8],
    pub cky_r: [u8; 8],
    pub g_xi: Vec<u8>,
    pub g_xr: Vec<u8>,
}

/// One shared-secret computation, with the key derivation that follows it.
pub struct DhJob {
    id: DhJobId,
    dh: Arc<DhPrivate>,
    peer: Vec<u8>,
    schedule: Schedule,
}

/// The result of a [`DhJob`]: the phase 1 keys, or the peer's public value was invalid.
pub struct DhDone {
    id: DhJobId,
    pub(crate) result: Result<Phase1Keys, CryptoError>,
}

impl fmt::Debug for DhJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DhJob")
            .field("id", &self.id)
            .field("group", &self.dh.group())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for DhDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DhDone")
            .field("id", &self.id)
            .field("ok", &self.result.is_ok())
            .finish_non_exhaustive()
    }
}

impl DhJob {
    pub(crate) fn new(dh: Arc<DhPrivate>, peer: &[u8], schedule: Schedule) -> DhJob {
        DhJob {
            id: 0,
            dh,
            peer: peer.to_vec(),
            schedule,
        }
    }

    pub fn id(&self) -> DhJobId {
        self.id
    }

    pub fn group(&self) -> DhGroup {
        self.dh.group()
    }

    /// Computes g^xy, SKEYID and its children (RFC 2409 §5, App. B); pure, any thread.
    pub fn run(self) -> DhDone {
        let s = &self.schedule;
        let result = self.dh.shared_secret(&self.peer).map(|g_xy| {
            let skeyid = match &s.auth {
                SkeyidFrom::Psk(psk) => crypto::skeyid_psk(s.hash, psk, &s.ni, &s.nr),
                SkeyidFrom::Signature => crypto::skeyid_sig(s.hash, &s.ni, &s.nr, &g_xy),
            };
            Phase1Keys::derive(
                s.hash, s.cipher, skeyid, &g_xy, &s.cky_i, &s.cky_r, &s.g_xi, &s.g_xr,
            )
        });
        DhDone {
            id: self.id,
            result,
        }
    }
}

impl DhDone {
    pub fn id(&self) -> DhJobId {
        self.id
    }
}

/// The endpoint's jobs: handed out (`outbox`) and awaited (`waiting`, by initiator cookie).
#[derive(Default)]
pub(crate) struct DhJobs {
    /// Off: every job runs inline in the exchange that made it.
    pub offload: bool,
    next_id: DhJobId,
    outbox: VecDeque<DhJob>,
    waiting: HashMap<DhJobId, [u8; 8]>,
}

impl DhJobs {
    pub(crate) fn new(offload: bool) -> Self {
        DhJobs {
            offload,
            ..DhJobs::default()
        }
    }

    /// Queues `job` for the driver on behalf of the ISAKMP SA `sa`; its id.
    pub(crate) fn submit(&mut self, sa: [u8; 8], mut job: DhJob) -> DhJobId {
        self.next_id += 1;
        job.id = self.next_id;
        self.waiting.insert(job.id, sa);
        self.outbox.push_back(job);
        self.next_id
    }

    pub(crate) fn poll(&mut self) -> Option<DhJob> {
        self.outbox.pop_front()
    }

    /// The SA a finished job belongs to; None for an unknown or already answered id.
    pub(crate) fn finish(&mut self, id: DhJobId) -> Option<[u8; 8]> {
        self.waiting.remove(&id)
    }

    /// Jobs handed out or queued and not yet answered.
    pub(crate) fn in_flight(&self) -> usize {
        self.waiting.len()
    }

    /// Jobs made since the start.
    pub(crate) fn total(&self) -> u64 {
        self.next_id
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    fn job(peer: &[u8], dh: DhPrivate) -> DhJob {
        let schedule = Schedule {
            hash: IkeHash::Sha2_256,
            cipher: IkeCipher::AesCbc128,
            auth: SkeyidFrom::Psk(Secret::new(b"psk-not-in-debug".to_vec())),
            ni: vec![1; 32],
            nr: vec![2; 32],
            cky_i: [3; 8],
            cky_r: [4; 8],
            g_xi: vec![5; 32],
            g_xr: vec![6; 32],
        };
        DhJob::new(Arc::new(dh), peer, schedule)
    }

    #[test]
    fn both_sides_jobs_agree_and_debug_shows_no_key_material() {
        let mut rng = StdRng::from_seed([5; 32]);
        let a = DhPrivate::generate(DhGroup::Curve25519, &mut rng);
        let b = DhPrivate::generate(DhGroup::Curve25519, &mut rng);
        let (pa, pb) = (a.public_value(), b.public_value());
        let (ja, jb) = (job(&pb, a), job(&pa, b));
        let shown = format!("{ja:?}");
        assert!(
            shown.contains("Curve25519") && !shown.contains("psk"),
            "{shown}"
        );
        let (ka, kb) = (ja.run(), jb.run());
        let (ka, kb) = (ka.result.unwrap(), kb.result.unwrap());
        assert_eq!(*ka.enc_key, *kb.enc_key, "g^xy and the schedule agree");
        assert_eq!(*ka.skeyid_d, *kb.skeyid_d);
    }

    #[test]
    fn an_invalid_public_value_is_an_error_result() {
        let mut rng = StdRng::from_seed([6; 32]);
        let a = DhPrivate::generate(DhGroup::Curve25519, &mut rng);
        let done = job(&[0; 32], a).run();
        assert!(done.result.is_err());
        assert!(format!("{done:?}").contains("ok: false"));
    }

    #[test]
    fn jobs_are_numbered_and_answered_once() {
        let mut rng = StdRng::from_seed([7; 32]);
        let mut jobs = DhJobs::new(true);
        let a = DhPrivate::generate(DhGroup::Curve25519, &mut rng);
        let b = DhPrivate::generate(DhGroup::Curve25519, &mut rng);
        let id1 = jobs.submit([1; 8], job(&[9; 32], a));
        let id2 = jobs.submit([2; 8], job(&[9; 32], b));
        assert_ne!(id1, id2);
        assert_eq!(jobs.in_flight(), 2);
        assert_eq!(jobs.poll().map(|j| j.id()), Some(id1));
        assert_eq!(jobs.finish(id2), Some([2; 8]));
        assert_eq!(jobs.finish(id2), None, "a second answer finds nothing");
        assert_eq!((jobs.in_flight(), jobs.total()), (1, 2));
    }
}

//! Shared secrets computed by the driver (`dh_job`, issue #20): jobs out, results in. A
//! result continues the exchange that asked for it exactly as the inline computation would
//! have; one whose SA is gone, or no longer waits for it, is dropped (and wiped).

use std::time::Instant;

use super::{count, Endpoint};
use crate::context::Ctx;
use crate::dh_job::{DhDone, DhJob};
use crate::error::InputError;
use crate::sa::{IkeSa, Phase1};

impl Endpoint {
    /// The next shared secret to compute (`Settings::dh_offload`): run it anywhere
    /// (`DhJob::run`) and hand the result to [`Endpoint::dh_done`], in any order.
    pub fn poll_dh_job(&mut self) -> Option<DhJob> {
        self.env.jobs.poll()
    }

    /// Jobs handed out (or waiting to be) whose results have not come back.
    pub fn dh_jobs_in_flight(&self) -> usize {
        self.env.jobs.in_flight()
    }

    /// Jobs handed out since the start (0 without `Settings::dh_offload`).
    pub fn dh_jobs_total(&self) -> u64 {
        self.env.jobs.total()
    }

    /// A computed job: its exchange continues (answers, events, timers as after a datagram).
    pub fn dh_done(&mut self, now: Instant, done: DhDone) {
        let Some(key) = self.env.jobs.finish(done.id()) else {
            return;
        };
        let Some(sa) = self.sas.get_mut(&key) else {
            return;
        };
        if sa.phase.computing().map(|c| c.job) != Some(done.id()) {
            return;
        }
        let Some(mut ctx) = self.env.ctx(now, sa.conn) else {
            return;
        };
        let result = resume(sa, &mut ctx, done);
        count(&mut self.counters, result);
        self.after_input(now, key);
    }
}

/// Continues the computing state of `sa` with `done`.
fn resume(sa: &mut IkeSa, ctx: &mut Ctx<'_>, done: DhDone) -> Result<(), InputError> {
    match std::mem::replace(&mut sa.phase, Phase1::Dead) {
        Phase1::MmR3Computing(c) | Phase1::MmI4Computing(c) => {
            sa.main_mode_keys_done(ctx, *c, done.result)
        }
        Phase1::AmR1Computing(c, reply) => {
            sa.aggressive_mode_keys_done(ctx, *c, Some(*reply), done.result)
        }
        Phase1::AmI2Computing(c) => sa.aggressive_mode_keys_done(ctx, *c, None, done.result),
        other => {
            sa.phase = other;
            Err(InputError::Unexpected("no keys awaited"))
        }
    }
}

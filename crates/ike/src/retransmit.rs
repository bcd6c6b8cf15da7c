//! Retransmission of the last message of an exchange and the cache of our last reply, which
//! answers a retransmitted request (RFC 2408 §5, RFC 2409 §5).

use std::time::{Duration, Instant};

use crate::context::{Ctx, Datagram};
use crate::crypto;
use crate::event::{Cookies, Direction, Event, MessageLog};
use crate::time::later;
use crate::wire::{payload_list, Payload};

/// The last message of an exchange we wait an answer for.
#[derive(Debug, Clone)]
pub(crate) struct Retransmit {
    pub datagram: Datagram,
    pub name: &'static str,
    pub payloads: String,
    pub message_id: u32,
    pub sent: u32,
    pub next_at: Instant,
}

impl Retransmit {
    pub fn new(
        ctx: &Ctx<'_>,
        datagram: Datagram,
        name: &'static str,
        payloads: &[Payload],
        message_id: u32,
    ) -> Self {
        Retransmit {
            datagram,
            name,
            payloads: payload_list(payloads),
            message_id,
            sent: 0,
            next_at: later(ctx.now, ctx.settings.retransmit_timeout),
        }
    }
}

/// Answers a retransmitted request with the reply it already got (RFC 2408 §5: the
/// responder must not reprocess a message it has seen).
#[derive(Debug, Clone, Default)]
pub(crate) struct ReplyCache {
    digest: Vec<u8>,
    reply: Option<Datagram>,
}

impl ReplyCache {
    pub fn remember(&mut self, request: &[u8], reply: Option<Datagram>) {
        self.remember_request(request);
        self.reply = reply;
    }

    pub fn remember_request(&mut self, request: &[u8]) {
        self.digest = crypto::hash(crate::algorithm::IkeHash::Sha2_256, &[request]);
    }

    pub fn set_reply(&mut self, reply: Option<Datagram>) {
        self.reply = reply;
    }

    /// Some(reply or None) when `request` is the last one seen.
    pub fn lookup(&self, request: &[u8]) -> Option<Option<&Datagram>> {
        if self.digest.is_empty() {
            return None;
        }
        let d = crypto::hash(crate::algorithm::IkeHash::Sha2_256, &[request]);
        crypto::ct_eq(&d, &self.digest).then_some(self.reply.as_ref())
    }
}

impl Retransmit {
    /// Resends the outstanding message when due; fails the SA when the tries are used up.
    pub fn due(&mut self, ctx: &mut Ctx<'_>, cookies: Cookies) -> Result<(), (&'static str, u32)> {
        if ctx.now < self.next_at {
            return Ok(());
        }
        if self.sent >= ctx.settings.retransmit_tries {
            return Err((self.name, self.sent));
        }
        self.sent += 1;
        let wait = ctx.settings.retransmit_timeout.as_secs_f64()
            * ctx
                .settings
                .retransmit_base
                .powi(i32::try_from(self.sent).unwrap_or(i32::MAX));
        let wait =
            Duration::try_from_secs_f64(wait.min(3600.0)).unwrap_or(Duration::from_secs(3600));
        self.next_at = later(ctx.now, wait);
        ctx.out.transmits.push_back(self.datagram.clone());
        ctx.event(Event::Message(MessageLog {
            direction: Direction::Sent,
            name: self.name,
            cookies,
            message_id: self.message_id,
            payloads: self.payloads.clone(),
            peer: self.datagram.remote,
            local: self.datagram.local,
            retransmission: true,
        }));
        Ok(())
    }
}

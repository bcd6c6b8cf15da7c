//! Retransmission of the last message of an exchange and the cache of our last reply, which
//! answers a retransmitted request (RFC 2408 §5, RFC 2409 §5).

use std::time::{Duration, Instant};

use crate::config::Settings;
use crate::context::{Ctx, Datagram};
use crate::crypto;
use crate::event::{Cookies, Direction, Event, MessageLog};
use crate::time::later;
use crate::wire::{payload_list, Payload};

/// The last message of an exchange we wait an answer for.
#[derive(Debug, Clone)]
pub(crate) struct Retransmit {
    /// The message as sent: one datagram, or its fragments.
    pub datagrams: Vec<Datagram>,
    /// Fragments of a message that went out whole: sent from the first retransmission on
    /// (the whole one may be too large for the path).
    pub fallback: Option<Vec<Datagram>>,
    pub name: &'static str,
    pub payloads: String,
    pub message_id: u32,
    pub sent: u32,
    pub next_at: Instant,
}

impl Retransmit {
    pub fn new(
        ctx: &Ctx<'_>,
        sent: Sent,
        name: &'static str,
        payloads: &[Payload],
        message_id: u32,
    ) -> Self {
        Retransmit {
            datagrams: sent.datagrams,
            fallback: sent.fallback,
            name,
            payloads: payload_list(payloads),
            message_id,
            sent: 0,
            next_at: later(ctx.now, ctx.settings.retransmit_timeout),
        }
    }
}

/// A message as it went out: its datagrams (one, or its fragments) and, for a large message
/// that went whole, the fragments a resend uses.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sent {
    pub datagrams: Vec<Datagram>,
    pub fallback: Option<Vec<Datagram>>,
    /// When it last went out (as a reply: first sent, or resent by [`ReplyCache::lookup`]).
    pub at: Option<Instant>,
}

impl Sent {
    /// What a resend transmits: the fragments, if the message has any, else as before.
    pub fn resend(&self) -> &[Datagram] {
        self.fallback.as_deref().unwrap_or(&self.datagrams)
    }
}

/// Answers a retransmitted request with the reply it already got (RFC 2408 §5: the
/// responder must not reprocess a message it has seen).
#[derive(Debug, Clone, Default)]
pub(crate) struct ReplyCache {
    digest: Vec<u8>,
    reply: Option<Sent>,
}

impl ReplyCache {
    pub fn remember(&mut self, request: &[u8], reply: Option<Sent>) {
        self.remember_request(request);
        self.reply = reply;
    }

    pub fn remember_request(&mut self, request: &[u8]) {
        self.digest = crypto::hash(crate::algorithm::IkeHash::Sha2_256, &[request]);
    }

    /// Our last message of the exchange, as sent.
    pub fn reply(&self) -> Option<&Sent> {
        self.reply.as_ref()
    }

    pub fn set_reply(&mut self, reply: Option<Sent>) {
        self.reply = reply;
    }

    /// Some(reply or None) when `request` is the last one seen: the datagrams to send again
    /// (a large reply that went whole goes as fragments now, see [`Sent::resend`]), or None
    /// when the reply went out less than half a retransmission timeout ago (a peer's own
    /// retransmissions are a timeout apart). Copies of one request that arrive together
    /// (a peer's retransmissions piled up while we were busy) so get one answer, not one each:
    /// the peer would answer each of those copies in turn, and so on down the exchange, which
    /// turns a slow moment into a retransmission storm.
    pub fn lookup(
        &mut self,
        request: &[u8],
        now: Instant,
        settings: &Settings,
    ) -> Option<Option<&[Datagram]>> {
        let gap = settings.retransmit_timeout / 2;
        if self.digest.is_empty() {
            return None;
        }
        let d = crypto::hash(crate::algorithm::IkeHash::Sha2_256, &[request]);
        if !crypto::ct_eq(&d, &self.digest) {
            return None;
        }
        let Some(reply) = self.reply.as_mut() else {
            return Some(None);
        };
        if reply
            .at
            .is_some_and(|t| now.saturating_duration_since(t) < gap)
        {
            return Some(None);
        }
        reply.at = Some(now);
        Some(Some(reply.resend()))
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
        self.resend(ctx, cookies);
        Ok(())
    }

    /// Sends the message again (its fragments, if it has any) and logs it as a retransmission.
    pub fn resend(&mut self, ctx: &mut Ctx<'_>, cookies: Cookies) {
        if let Some(f) = self.fallback.take() {
            self.datagrams = f;
        }
        ctx.out.transmits.extend(self.datagrams.iter().cloned());
        let Some(first) = self.datagrams.first() else {
            return;
        };
        ctx.event(Event::Message(MessageLog {
            direction: Direction::Sent,
            name: self.name,
            cookies,
            message_id: self.message_id,
            payloads: self.payloads.clone(),
            peer: first.remote,
            local: first.local,
            retransmission: true,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(at: Instant) -> Sent {
        let d = Datagram {
            local: "192.0.2.1:500".parse().unwrap(),
            remote: "192.0.2.2:500".parse().unwrap(),
            data: b"MM4".to_vec(),
        };
        Sent {
            datagrams: vec![d],
            fallback: None,
            at: Some(at),
        }
    }

    #[test]
    fn a_repeated_request_is_answered_at_most_once_per_half_timeout() {
        let t0 = Instant::now();
        let s = Settings::default();
        let gap = s.retransmit_timeout / 2;
        let mut c = ReplyCache::default();
        assert!(c.lookup(b"MM3", t0, &s).is_none(), "nothing seen yet");
        c.remember(b"MM3", Some(reply(t0)));
        assert!(c.lookup(b"MM5", t0, &s).is_none(), "another request");
        // Copies arriving together: the reply just went, none goes again.
        assert_eq!(c.lookup(b"MM3", t0, &s), Some(None));
        let t1 = t0 + gap - Duration::from_millis(1);
        assert_eq!(c.lookup(b"MM3", t1, &s), Some(None));
        // A gap later the peer evidently missed it: once more, and the gap starts again.
        let t2 = t0 + gap;
        assert_eq!(
            c.lookup(b"MM3", t2, &s).map(|r| r.map(<[_]>::len)),
            Some(Some(1))
        );
        assert_eq!(
            c.lookup(b"MM3", t2 + Duration::from_secs(1), &s),
            Some(None)
        );
        assert!(matches!(c.lookup(b"MM3", t2 + gap, &s), Some(Some(_))));
        // A request that needs no answer is recognised, never answered.
        c.remember(b"AM3", None);
        assert_eq!(c.lookup(b"AM3", t2 + 10 * gap, &s), Some(None));
    }
}

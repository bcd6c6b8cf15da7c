//! IKEv1 fragments on input (`crate::fragment`): kept for reassembly when they belong to an
//! ISAKMP SA with their sender (or are a first message from a configured peer), every drop
//! counted with its sender and reason.

use std::time::Instant;

use super::Endpoint;
use crate::context::Datagram;
use crate::fragment::{self, Added, FragmentError};
use crate::wire::ExchangeType;

impl Endpoint {
    /// The latest IKEv1 fragment dropped (`Counters::fragments_dropped`): sender and reason.
    pub fn last_fragment_drop(&self) -> Option<(std::net::IpAddr, &FragmentError)> {
        self.last_fragment_drop.as_ref().map(|(a, e)| (*a, e))
    }

    /// IKEv1 reassemblies in progress and the bytes they hold.
    pub fn reassembly(&self) -> (usize, usize) {
        (self.fragments.len(), self.fragments.bytes())
    }

    /// One IKEv1 fragment: kept for reassembly if it belongs to an ISAKMP SA with this peer
    /// whose connection has fragmentation on; a completed message goes the normal way.
    pub(super) fn handle_fragment(&mut self, now: Instant, d: Datagram) {
        self.counters.fragments_received += 1;
        match self.add_fragment(now, &d) {
            Ok(Added::Pending) => {}
            Ok(Added::Complete(whole)) => {
                self.counters.fragments_reassembled += 1;
                self.counters.received = self.counters.received.saturating_sub(1);
                self.handle_datagram(now, Datagram { data: whole, ..d });
            }
            Err(e) => {
                self.counters.fragments_dropped += 1;
                self.last_fragment_drop = Some((d.remote.ip(), e.clone()));
                if matches!(
                    e,
                    FragmentError::BadNumber(_)
                        | FragmentError::TooLarge(_)
                        | FragmentError::TooManyReassemblies
                ) {
                    self.counters.fragments_over_limit += 1;
                }
            }
        }
    }

    fn add_fragment(&mut self, now: Instant, d: &Datagram) -> Result<Added, FragmentError> {
        let (header, frag) = fragment::parse(&d.data)?;
        let conn = match self.sas.get(&header.initiator_spi) {
            Some(sa) => Some(sa)
                .filter(|sa| {
                    sa.remote.ip() == d.remote.ip()
                        && (sa.cookies.responder_spi == header.responder_spi
                            || sa.cookies.responder_spi == [0; 8])
                })
                .map(|sa| sa.conn),
            // A fragmented MM1/AM1 (a peer with fragmentation = force): from an address a
            // connection names, as `new_responder` will require.
            None if header.responder_spi == [0; 8]
                && matches!(
                    header.exchange,
                    ExchangeType::IDENTITY_PROTECTION | ExchangeType::AGGRESSIVE
                ) =>
            {
                self.env.conn_for(Some(d.local.ip()), d.remote.ip())
            }
            None => None,
        };
        let cfg = conn
            .and_then(|c| self.env.conns.get(c))
            .ok_or(FragmentError::NoSa)?;
        if cfg.fragmentation == crate::config::Fragmentation::No {
            return Err(FragmentError::Refused);
        }
        let limits = self.env.settings.fragments;
        let added = self
            .fragments
            .add(now, &limits, d.remote.ip(), &header, frag);
        let evicted = self.fragments.take_evicted();
        self.counters.fragments_dropped += evicted;
        self.counters.fragments_over_limit += evicted;
        added
    }
}

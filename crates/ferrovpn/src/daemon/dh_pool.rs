//! The Diffie-Hellman key maker: one worker thread that fills the IKE endpoint's pool of key
//! pairs (`[daemon] dh_pool`, `ferrovpn_ike::Settings::dh_pool`), so the control thread only
//! computes shared secrets while many peers set up at once.

use std::collections::HashMap;
use std::io;

use crossbeam_channel::{Receiver, Sender};
use ferrovpn_ike::algorithm::DhGroup;
use ferrovpn_ike::crypto::DhPrivate;
use ferrovpn_ike::Endpoint;
use rand::rngs::StdRng;
use rand::SeedableRng;

pub(super) struct DhMaker {
    requests: Sender<(DhGroup, usize)>,
    keys: Receiver<DhPrivate>,
    /// Asked for and not yet received, per group.
    asked: HashMap<DhGroup, usize>,
}

impl DhMaker {
    /// Starts the thread; it ends when the maker is dropped.
    pub(super) fn start() -> io::Result<DhMaker> {
        let (req_tx, req_rx) = crossbeam_channel::unbounded::<(DhGroup, usize)>();
        let (key_tx, key_rx) = crossbeam_channel::unbounded();
        std::thread::Builder::new()
            .name("ferrovpn-dh".into())
            .spawn(move || {
                let mut rng = StdRng::from_entropy();
                for (group, n) in req_rx {
                    for _ in 0..n {
                        if key_tx.send(DhPrivate::generate(group, &mut rng)).is_err() {
                            return;
                        }
                    }
                }
            })?;
        Ok(DhMaker {
            requests: req_tx,
            keys: key_rx,
            asked: HashMap::new(),
        })
    }

    /// Hands the key pairs made so far to the endpoint and asks for what its pool lacks.
    pub(super) fn serve(&mut self, endpoint: &mut Endpoint) {
        while let Ok(key) = self.keys.try_recv() {
            if let Some(n) = self.asked.get_mut(&key.group()) {
                *n = n.saturating_sub(1);
            }
            endpoint.supply_dh(key);
        }
        for (group, lacking) in endpoint.dh_wanted() {
            let asked = self.asked.entry(group).or_default();
            let more = lacking.saturating_sub(*asked);
            if more > 0 && self.requests.send((group, more)).is_ok() {
                *asked += more;
            }
        }
    }
}

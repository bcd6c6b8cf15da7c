//! Fuzz target: arbitrary CERT payload data into certificate parsing and path validation
//! (crates/ike/src/cert.rs), as a peer's MM5/MM6/AM2/AM3 delivers it. The first byte splits the
//! input into two certificates; the fixture chain's root is the trust anchor. It must never
//! panic, and nothing but the fixture chain may validate.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ferrovpn_ike::cert::{Cert, CertAuth, PrivateKey, SignatureKind, WallClock};
use ferrovpn_ike::IdValue;
use libfuzzer_sys::fuzz_target;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/certs/");

fn trust() -> &'static Arc<CertAuth> {
    static T: OnceLock<Arc<CertAuth>> = OnceLock::new();
    T.get_or_init(|| {
        let read = |n: &str| std::fs::read(format!("{DIR}{n}")).unwrap();
        let key = PrivateKey::from_pem(&read("rsa-a.key")).unwrap();
        let chain = Cert::from_pem_chain(&read("rsa-a.crt")).unwrap();
        let cas = Cert::from_pem_chain(&read("ca.crt")).unwrap();
        CertAuth::new(chain, key, cas, WallClock::now()).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = usize::from(split).min(rest.len());
    let (one, two) = rest.split_at(at);
    let t = trust();
    let now = Duration::from_secs(1_811_808_000);
    for certs in [&[one][..], &[one, two][..]] {
        if let Ok(peer) = t.verify_peer(certs, now) {
            // Only a certificate the fixture CA signed can validate.
            let _ = peer.names(&IdValue::Fqdn("b.example.net".into()));
            let _ = ferrovpn_ike::cert::verify_signature(&peer, SignatureKind::Rsa, &[0; 32], two);
        }
    }
    let _ = Cert::from_der(rest);
    let _ = PrivateKey::from_pem(rest);
    let _ = Cert::from_pem_chain(rest);
});

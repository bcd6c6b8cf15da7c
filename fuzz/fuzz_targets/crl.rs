//! Fuzz target: arbitrary bytes as a `crl_file` (crates/ike/src/crl.rs: PEM blocks or DER) and,
//! when they parse, as the CRLs of path validation (crates/ike/src/cert.rs). It must never
//! panic, and a CRL the fixture CA did not sign must never revoke the fixture chain.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ferrovpn_ike::cert::{Cert, CertAuth, PrivateKey, WallClock};
use ferrovpn_ike::crl::Crl;
use libfuzzer_sys::fuzz_target;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/certs/");

fn read(n: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}{n}")).unwrap()
}

fn trust() -> &'static (Arc<CertAuth>, Vec<u8>) {
    static T: OnceLock<(Arc<CertAuth>, Vec<u8>)> = OnceLock::new();
    T.get_or_init(|| {
        let key = PrivateKey::from_pem(&read("rsa-a.key")).unwrap();
        let chain = Cert::from_pem_chain(&read("rsa-a.crt")).unwrap();
        let cas = Cert::from_pem_chain(&read("ca.crt")).unwrap();
        let peer = Cert::from_pem_chain(&read("rsa-b.crt")).unwrap()[0].der().to_vec();
        (CertAuth::new(chain, key, cas, WallClock::now()).unwrap(), peer)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(crls) = Crl::from_file_bytes(data) else {
        return;
    };
    for c in &crls {
        let _ = (c.issuer().to_string(), c.next_update(), c.revoked_count());
        let _ = c.revocation_of(&[0x01]);
    }
    let (t, peer) = trust();
    t.crls.set(crls);
    let got = t.verify_peer(&[peer.as_slice()], Duration::from_secs(1_811_808_000));
    // The fixture CA's key is not the fuzzer's: nothing it makes can be a valid CRL.
    assert!(got.is_ok(), "{got:?}");
    t.crls.set(Vec::new());
});

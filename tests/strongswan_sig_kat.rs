//! Known answers for the signed hash of RFC 2409 §5.1 from a real strongSwan 5.9.8 exchange
//! (tests/data/strongswan-sig, made by scripts/capture-strongswan-sig.sh): our PRF reproduces
//! the HASH_R charon computed from the data it logged, our verifier accepts the SIG charon sent
//! with its certificate, and our signer, given charon's key, makes the same SIG byte for byte
//! (PKCS#1 v1.5 is deterministic).

use std::collections::HashMap;

use ferrovpn_ike::algorithm::IkeHash;
use ferrovpn_ike::cert::{verify_signature, Cert, PrivateKey, SignatureKind};
use ferrovpn_ike::crypto;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/strongswan-sig/");

fn fixture() -> (HashMap<String, Vec<u8>>, Cert) {
    let keys = std::fs::read_to_string(format!("{DIR}keys.txt"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.to_string(), hex::decode(v).unwrap()))
        .collect();
    let cert = Cert::from_pem_chain(&std::fs::read(format!("{DIR}strongswan.crt")).unwrap())
        .unwrap()
        .remove(0);
    (keys, cert)
}

#[test]
fn hash_r_is_the_prf_under_skeyid_of_what_rfc_2409_names() {
    let (k, _) = fixture();
    let data = &k["hash_r_data"];
    // g^xr | g^xi (modp2048: 256 bytes each) | CKY-R | CKY-I | SAi_b | IDir_b.
    let id_r = &data[data.len() - 8..];
    assert_eq!(
        id_r,
        [0x01, 0, 0, 0, 192, 0, 2, 2],
        "IDir_b: ID_IPV4_ADDR 192.0.2.2"
    );
    let hash = crypto::prf(IkeHash::Sha2_256, &k["skeyid"], &[data]);
    assert_eq!(hash.as_slice(), k["hash_r"].as_slice());
}

#[test]
fn strongswans_sig_over_hash_r_verifies_with_its_certificate() {
    let (k, cert) = fixture();
    assert!(cert.subject().contains("192.0.2.2"), "{}", cert.subject());
    verify_signature(&cert, SignatureKind::Rsa, &k["hash_r"], &k["sig_r"]).unwrap();
    // One bit of the hash or of the signature off: refused.
    let mut hash = k["hash_r"].clone();
    hash[0] ^= 1;
    let err = verify_signature(&cert, SignatureKind::Rsa, &hash, &k["sig_r"]).unwrap_err();
    assert_eq!(err.name(), "signature_invalid");
    let mut sig = k["sig_r"].clone();
    sig[10] ^= 0x80;
    assert!(verify_signature(&cert, SignatureKind::Rsa, &k["hash_r"], &sig).is_err());
    // The certificate's key is RSA: an ECDSA method is refused, not misread.
    assert!(verify_signature(&cert, SignatureKind::EcdsaP256, &k["hash_r"], &k["sig_r"]).is_err());
}

#[test]
fn our_signer_with_strongswans_key_makes_the_sig_it_sent() {
    let (k, _) = fixture();
    let key =
        PrivateKey::from_pem(&std::fs::read(format!("{DIR}strongswan.key")).unwrap()).unwrap();
    let sig = key
        .sign_hash(&k["hash_r"], &mut rand::thread_rng())
        .unwrap();
    assert_eq!(sig, k["sig_r"]);
}

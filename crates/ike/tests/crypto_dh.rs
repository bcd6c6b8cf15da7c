//! Diffie-Hellman known answers (RFC 5903 §8, RFC 7748 §6.1, fixed MODP exponents checked with
//! Python), agreement in every group, and rejection of invalid peer values.

use ferrovpn_ike::algorithm::DhGroup;
use ferrovpn_ike::crypto::dh::modp_prime;
use ferrovpn_ike::crypto::{CryptoError, DhPrivate};

#[allow(dead_code)]
mod vectors {
    include!("data/keysched_vectors.rs");
}
use vectors::*;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

/// One side's private value, the other side's, their public values and the shared secret.
fn known_answer(group: DhGroup, i: &str, gi: &str, r: &str, gr: &str, gir: &str) {
    let ini = DhPrivate::from_secret_bytes(group, &h(i)).unwrap();
    let res = DhPrivate::from_secret_bytes(group, &h(r)).unwrap();
    assert_eq!(ini.group(), group);
    assert_eq!(ini.public_value(), h(gi), "{group:?} g^i");
    assert_eq!(res.public_value(), h(gr), "{group:?} g^r");
    assert_eq!(
        *ini.shared_secret(&h(gr)).unwrap(),
        h(gir),
        "{group:?} i side"
    );
    assert_eq!(
        *res.shared_secret(&h(gi)).unwrap(),
        h(gir),
        "{group:?} r side"
    );
}

#[test]
fn ecp256_matches_rfc5903_8_1() {
    known_answer(
        DhGroup::Ecp256,
        "c88f01f510d9ac3f70a292daa2316de544e9aab8afe84049c62a9c57862d1433",
        "dad0b65394221cf9b051e1feca5787d098dfe637fc90b9ef945d0c3772581180\
         5271a0461cdb8252d61f1c456fa3e59ab1f45b33accf5f58389e0577b8990bb3",
        "c6ef9c5d78ae012a011164acb397ce2088685d8f06bf9be0b283ab46476bee53",
        "d12dfb5289c8d4f81208b70270398c342296970a0bccb74c736fc7554494bf63\
         56fbf3ca366cc23e8157854c13c58d6aac23f046ada30f8353e74f33039872ab",
        // g^ir: the x-coordinate only (RFC 5903 §7).
        "d6840f6b42f6edafd13116e0e12565202fef8e9ece7dce03812464d04b9442de",
    );
}

#[test]
fn ecp384_matches_rfc5903_8_2() {
    known_answer(
        DhGroup::Ecp384,
        "099f3c7034d4a2c699884d73a375a67f7624ef7c6b3c0f160647b67414dce655\
         e35b538041e649ee3faef896783ab194",
        "667842d7d180ac2cde6f74f37551f55755c7645c20ef73e31634fe72b4c55ee6\
         de3ac808acb4bdb4c88732aee95f41aa\
         9482ed1fc0eeb9cafc4984625ccfc23f65032149e0e144ada024181535a0f38e\
         eb9fcff3c2c947dae69b4c634573a81c",
        "41cb0779b4bdb85d47846725fbec3c9430fab46cc8dc5060855cc9bda0aa2942\
         e0308312916b8ed2960e4bd55a7448fc",
        "e558dbef53eecde3d3fccfc1aea08a89a987475d12fd950d83cfa41732bc509d\
         0d1ac43a0336def96fda41d0774a3571\
         dcfbec7aacf3196472169e838430367f66eebe3c6e70c416dd5f0c68759dd1ff\
         f83fa40142209dff5eaad96db9e6386c",
        "11187331c279962d93d604243fd592cb9d0a926f422e47187521287e7156c5c4\
         d603135569b9e9d09cf5d4a270f59746",
    );
}

#[test]
fn ecp521_matches_rfc5903_8_3() {
    known_answer(
        DhGroup::Ecp521,
        "0037ade9319a89f4dabdb3ef411aaccca5123c61acab57b5393dce47608172a0\
         95aa85a30fe1c2952c6771d937ba9777f5957b2639bab072462f68c27a57382d\
         4a52",
        "0015417e84dbf28c0ad3c278713349dc7df153c897a1891bd98bab4357c9ecbe\
         e1e3bf42e00b8e380aeae57c2d107564941885942af5a7f4601723c4195d176c\
         ed3e\
         017cae20b6641d2eeb695786d8c946146239d099e18e1d5a514c739d7cb4a10a\
         d8a788015ac405d7799dc75e7b7d5b6cf2261a6a7f1507438bf01beb6ca3926f\
         9582",
        "0145ba99a847af43793fdd0e872e7cdfa16be30fdc780f97bccc3f078380201e\
         9c677d600b343757a3bdbf2a3163e4c2f869cca7458aa4a4effc311f5cb15168\
         5eb9",
        "00d0b3975ac4b799f5bea16d5e13e9af971d5e9b984c9f39728b5e5739735a21\
         9b97c356436adc6e95bb0352f6be64a6c2912d4ef2d0433ced2b6171640012d9\
         460f\
         015c68226383956e3bd066e797b623c27ce0eac2f551a10c2c724d9852077b87\
         220b6536c5c408a1d2aebb8e86d678ae49cb57091f4732296579ab44fcd17f0f\
         c56a",
        "01144c7d79ae6956bc8edb8e7c787c4521cb086fa64407f97894e5e6b2d79b04\
         d1427e73ca4baa240a34786859810c06b3c715a3a8cc3151f2bee417996d19f3\
         ddea",
    );
}

#[test]
fn curve25519_matches_rfc7748_6_1() {
    known_answer(
        DhGroup::Curve25519,
        "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
        "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
        "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
        "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742",
    );
}

#[test]
fn modp1024_and_modp2048_match_python_pow() {
    // Expected values computed by tests/data/keysched_vectors.py with Python's pow(): the MODP-1024
    // shared secret, for one, is reproduced from tests/data by
    // python3 -c 'import hashlib as h; from keysched_vectors import P1024 as p; xi,xr=(int.from_bytes(h.sha256(s).digest(),"big") for s in (b"ferrovpn modp xi",b"ferrovpn modp xr")); print(hex(pow(pow(2,xr,p),xi,p)))'
    known_answer(
        DhGroup::Modp1024,
        MODP1024_XI,
        MODP1024_GXI,
        MODP1024_XR,
        MODP1024_GXR,
        MODP1024_GXY,
    );
    known_answer(
        DhGroup::Modp2048,
        MODP2048_XI,
        MODP2048_GXI,
        MODP2048_XR,
        MODP2048_GXR,
        MODP2048_GXY,
    );
}

#[test]
fn both_sides_agree_in_every_group() {
    let mut rng = rand::thread_rng();
    for group in DhGroup::ALL {
        let a = DhPrivate::generate(group, &mut rng);
        let b = DhPrivate::generate(group, &mut rng);
        assert_eq!(a.public_value().len(), group.public_len(), "{group:?}");
        assert_ne!(a.public_value(), b.public_value(), "{group:?}");
        let ab = a.shared_secret(&b.public_value()).unwrap();
        let ba = b.shared_secret(&a.public_value()).unwrap();
        assert_eq!(ab, ba, "{group:?}");
        let secret_len = match group {
            DhGroup::Ecp256 => 32,
            DhGroup::Ecp384 => 48,
            DhGroup::Ecp521 => 66,
            DhGroup::Curve25519 => 32,
            modp => modp.public_len(),
        };
        assert_eq!(ab.len(), secret_len, "{group:?}");
    }
}

/// `n` as a big-endian integer of `len` bytes.
fn be(n: u8, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    v[len - 1] = n;
    v
}

#[test]
fn modp_rejects_degenerate_and_out_of_range_values() {
    let mut rng = rand::thread_rng();
    for group in [DhGroup::Modp1024, DhGroup::Modp2048] {
        let me = DhPrivate::generate(group, &mut rng);
        let len = group.public_len();
        let p = modp_prime(group).unwrap().to_vec();
        let mut p_minus_1 = p.clone();
        p_minus_1[len - 1] -= 1;
        for (what, y) in [
            ("0", be(0, len)),
            ("1", be(1, len)),
            ("p-1", p_minus_1),
            ("p", p.clone()),
            ("all ones", vec![0xff; len]),
        ] {
            assert_eq!(
                me.shared_secret(&y),
                Err(CryptoError::InvalidPublicValue),
                "{group:?} {what}"
            );
        }
        assert!(me.shared_secret(&be(2, len)).is_ok(), "2 is a valid value");
        let mut long = vec![0];
        long.extend(me.public_value());
        assert_eq!(me.shared_secret(&long), Err(CryptoError::BadLength));
        assert_eq!(
            me.shared_secret(&me.public_value()[1..]),
            Err(CryptoError::BadLength)
        );
        assert_eq!(me.shared_secret(&[]), Err(CryptoError::BadLength));
    }
}

#[test]
fn ecp_rejects_points_off_the_curve() {
    let mut rng = rand::thread_rng();
    for group in [DhGroup::Ecp256, DhGroup::Ecp384, DhGroup::Ecp521] {
        let me = DhPrivate::generate(group, &mut rng);
        let peer = DhPrivate::generate(group, &mut rng).public_value();
        let mut off_curve = peer.clone();
        *off_curve.last_mut().unwrap() ^= 1;
        let len = group.public_len();
        for (what, y) in [
            ("zero point", vec![0; len]),
            ("off curve", off_curve),
            ("all ones", vec![0xff; len]),
        ] {
            assert_eq!(
                me.shared_secret(&y),
                Err(CryptoError::InvalidPublicValue),
                "{group:?} {what}"
            );
        }
        let mut sec1 = vec![4];
        sec1.extend(&peer);
        assert_eq!(
            me.shared_secret(&sec1),
            Err(CryptoError::BadLength),
            "{group:?}: no 0x04 prefix on the wire"
        );
        assert!(me.shared_secret(&peer).is_ok());
    }
}

#[test]
fn curve25519_rejects_low_order_points() {
    let me = DhPrivate::generate(DhGroup::Curve25519, &mut rand::thread_rng());
    // u = 0 and u = 1 give an all-zero shared secret (RFC 7748 §6.1).
    for u in [be(0, 32), {
        let mut one = vec![0; 32];
        one[0] = 1;
        one
    }] {
        assert_eq!(me.shared_secret(&u), Err(CryptoError::InvalidPublicValue));
    }
    assert_eq!(me.shared_secret(&[9; 31]), Err(CryptoError::BadLength));
}

#[test]
fn private_values_out_of_range_are_refused() {
    let g = DhGroup::Ecp256;
    assert_eq!(
        DhPrivate::from_secret_bytes(g, &[0; 32]).unwrap_err(),
        CryptoError::InvalidPrivateValue
    );
    assert_eq!(
        DhPrivate::from_secret_bytes(g, &[0xff; 32]).unwrap_err(),
        CryptoError::InvalidPrivateValue,
        "not below the group order"
    );
    assert!(DhPrivate::from_secret_bytes(DhGroup::Curve25519, &[1; 31]).is_err());
    let p = modp_prime(DhGroup::Modp2048).unwrap();
    assert!(DhPrivate::from_secret_bytes(DhGroup::Modp2048, p).is_err());
    assert!(DhPrivate::from_secret_bytes(DhGroup::Modp2048, &[1]).is_err());
}

#[test]
fn debug_does_not_show_the_private_value() {
    let k = DhPrivate::from_secret_bytes(DhGroup::Modp1024, &h(MODP1024_XI)).unwrap();
    let s = format!("{k:?}");
    assert!(!s.contains("50e7") && !s.contains("80, 231"), "{s}");
}

mod arbitrary_peer_values {
    use super::*;
    use proptest::prelude::*;

    fn group_and_value() -> impl Strategy<Value = (DhGroup, Vec<u8>)> {
        (0..DhGroup::ALL.len()).prop_flat_map(|i| {
            let group = DhGroup::ALL[i];
            let len = group.public_len();
            prop_oneof![
                proptest::collection::vec(any::<u8>(), len),
                proptest::collection::vec(any::<u8>(), 0..len + 2),
            ]
            .prop_map(move |v| (group, v))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Whatever a peer sends as KE data, the result is a secret of the group's size or an
        /// error, never a panic.
        #[test]
        fn never_panic((group, value) in group_and_value()) {
            let me = DhPrivate::from_secret_bytes(group, &[0x42; 32]).unwrap();
            match me.shared_secret(&value) {
                Ok(s) => prop_assert!(!s.is_empty() && s.len() <= group.public_len()),
                Err(CryptoError::BadLength) => prop_assert_ne!(value.len(), group.public_len()),
                Err(e) => prop_assert_eq!(e, CryptoError::InvalidPublicValue),
            }
        }
    }
}

//! Known-answer tests of the IKE PRF (HMAC) and hash functions.

use ferrovpn_ike::algorithm::IkeHash;
use ferrovpn_ike::crypto::{ct_eq, hash, prf};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

const JEFE_DATA: &[u8] = b"what do ya want for nothing?";
const LARGE_KEY_DATA: &[u8] = b"Test Using Larger Than Block-Size Key - Hash Key First";

#[test]
fn hmac_md5_matches_rfc2202() {
    let md5 = IkeHash::Md5;
    // Test cases 1, 2 and 6 of RFC 2202 §2.
    assert_eq!(
        *prf(md5, &[0x0b; 16], &[b"Hi There"]),
        h("9294727a3638bb1c13f48ef8158bfc9d")
    );
    assert_eq!(
        *prf(md5, b"Jefe", &[JEFE_DATA]),
        h("750c783e6ab0b503eaa86e310a5db738")
    );
    assert_eq!(
        *prf(md5, &[0xaa; 80], &[LARGE_KEY_DATA]),
        h("6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd")
    );
}

#[test]
fn hmac_sha1_matches_rfc2202() {
    let sha1 = IkeHash::Sha1;
    // Test cases 1, 2 and 6 of RFC 2202 §3.
    assert_eq!(
        *prf(sha1, &[0x0b; 20], &[b"Hi There"]),
        h("b617318655057264e28bc0b6fb378c8ef146be00")
    );
    assert_eq!(
        *prf(sha1, b"Jefe", &[JEFE_DATA]),
        h("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
    );
    assert_eq!(
        *prf(sha1, &[0xaa; 80], &[LARGE_KEY_DATA]),
        h("aa4ae5e15272d00e95705637ce8a3b55ed402112")
    );
}

#[test]
fn hmac_sha2_matches_rfc4231() {
    // Test cases 1, 2 and 6 of RFC 4231 §4.
    let cases = [
        (
            IkeHash::Sha2_256,
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ),
        (
            IkeHash::Sha2_384,
            "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c\
             faea9ea9076ede7f4af152e8b2fa9cb6",
            "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e\
             8e2240ca5e69e2c78b3239ecfab21649",
            "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c6\
             0c2ef6ab4030fe8296248df163f44952",
        ),
        (
            IkeHash::Sha2_512,
            "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde\
             daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
             9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
            "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352\
             6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
        ),
    ];
    for (alg, tc1, tc2, tc6) in cases {
        assert_eq!(*prf(alg, &[0x0b; 20], &[b"Hi There"]), h(tc1), "{alg:?} 1");
        assert_eq!(*prf(alg, b"Jefe", &[JEFE_DATA]), h(tc2), "{alg:?} 2");
        assert_eq!(
            *prf(alg, &[0xaa; 131], &[LARGE_KEY_DATA]),
            h(tc6),
            "{alg:?} 6"
        );
    }
}

#[test]
fn prf_concatenates_its_data_parts() {
    assert_eq!(
        *prf(
            IkeHash::Sha1,
            b"Jefe",
            &[b"what do ya ", b"", b"want for nothing?"]
        ),
        h("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
    );
}

#[test]
fn hashes_match_fips180_and_rfc1321() {
    // "abc" from RFC 1321 §A.5 and FIPS 180-2 Appendix A/B/C/D.
    let abc: &[&[u8]] = &[b"a", b"bc"];
    assert_eq!(
        hash(IkeHash::Md5, abc),
        h("900150983cd24fb0d6963f7d28e17f72")
    );
    assert_eq!(
        hash(IkeHash::Sha1, abc),
        h("a9993e364706816aba3e25717850c26c9cd0d89d")
    );
    assert_eq!(
        hash(IkeHash::Sha2_256, abc),
        h("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    );
    assert_eq!(
        hash(IkeHash::Sha2_384, abc),
        h(
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
           8086072ba1e7cc2358baeca134c825a7"
        )
    );
    assert_eq!(
        hash(IkeHash::Sha2_512, abc),
        h(
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
           2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        )
    );
}

#[test]
fn ct_eq_requires_equal_length_and_content() {
    assert!(ct_eq(&[1, 2, 3], &[1, 2, 3]));
    assert!(!ct_eq(&[1, 2, 3], &[1, 2, 4]));
    assert!(!ct_eq(&[1, 2, 3], &[1, 2]));
}

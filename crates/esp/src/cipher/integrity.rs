//! HMAC integrity for ESP: HMAC-SHA1-96 (RFC 2404) and HMAC-SHA-256/384/512 truncated to half
//! the output (RFC 4868 §2). ring::hmac in the `ring` build, RustCrypto `hmac` otherwise.

use subtle::ConstantTimeEq;

/// Integrity algorithm of a CBC SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum Integrity {
    HmacSha1_96,
    HmacSha256_128,
    HmacSha384_192,
    HmacSha512_256,
}

impl Integrity {
    /// Key length = full hash output (RFC 2404 §3, RFC 4868 §2.1.1).
    pub fn key_len(self) -> usize {
        match self {
            Integrity::HmacSha1_96 => 20,
            Integrity::HmacSha256_128 => 32,
            Integrity::HmacSha384_192 => 48,
            Integrity::HmacSha512_256 => 64,
        }
    }

    /// Truncated ICV length.
    pub fn icv_len(self) -> usize {
        match self {
            Integrity::HmacSha1_96 => 12,
            Integrity::HmacSha256_128 => 16,
            Integrity::HmacSha384_192 => 24,
            Integrity::HmacSha512_256 => 32,
        }
    }
}

/// Full HMAC output (up to 64 bytes) plus its length.
pub(crate) struct MacOut {
    buf: [u8; 64],
    len: usize,
}

impl MacOut {
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn from(bytes: &[u8]) -> MacOut {
        let mut buf = [0u8; 64];
        for (d, s) in buf.iter_mut().zip(bytes) {
            *d = *s;
        }
        MacOut {
            buf,
            len: bytes.len().min(64),
        }
    }
}

/// A keyed HMAC instance.
pub(crate) struct Mac {
    alg: Integrity,
    key: backend::Key,
}

impl Mac {
    /// Any key length is accepted here (HMAC allows it); SA creation checks the ESP length.
    pub(crate) fn new(alg: Integrity, key: &[u8]) -> Mac {
        Mac {
            alg,
            key: backend::Key::new(alg, key),
        }
    }

    pub(crate) fn icv_len(&self) -> usize {
        self.alg.icv_len()
    }

    /// HMAC over the concatenation of `parts`, full length.
    pub(crate) fn full(&self, parts: &[&[u8]]) -> MacOut {
        self.key.compute(parts)
    }

    /// Truncated ICV compared in constant time.
    pub(crate) fn verify(&self, parts: &[&[u8]], icv: &[u8]) -> bool {
        let out = self.full(parts);
        match out.as_slice().get(..self.icv_len()) {
            Some(t) => t.ct_eq(icv).into(),
            None => false,
        }
    }
}

#[cfg(feature = "ring")]
mod backend {
    use super::{Integrity, MacOut};
    use ring::hmac;

    pub(super) struct Key(hmac::Key);

    impl Key {
        pub(super) fn new(alg: Integrity, key: &[u8]) -> Key {
            let a = match alg {
                Integrity::HmacSha1_96 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
                Integrity::HmacSha256_128 => hmac::HMAC_SHA256,
                Integrity::HmacSha384_192 => hmac::HMAC_SHA384,
                Integrity::HmacSha512_256 => hmac::HMAC_SHA512,
            };
            Key(hmac::Key::new(a, key))
        }

        pub(super) fn compute(&self, parts: &[&[u8]]) -> MacOut {
            let mut ctx = hmac::Context::with_key(&self.0);
            for p in parts {
                ctx.update(p);
            }
            MacOut::from(ctx.sign().as_ref())
        }
    }
}

#[cfg(not(feature = "ring"))]
mod backend {
    use super::{Integrity, MacOut};
    use hmac::{Hmac, Mac as _};

    pub(super) enum Key {
        Sha1(Hmac<sha1::Sha1>),
        Sha256(Hmac<sha2::Sha256>),
        Sha384(Hmac<sha2::Sha384>),
        Sha512(Hmac<sha2::Sha512>),
    }

    fn run<M: hmac::Mac + Clone>(m: &M, parts: &[&[u8]]) -> MacOut {
        let mut m = m.clone();
        for p in parts {
            m.update(p);
        }
        MacOut::from(&m.finalize().into_bytes())
    }

    impl Key {
        pub(super) fn new(alg: Integrity, key: &[u8]) -> Key {
            // new_from_slice never fails for HMAC (any key length is valid).
            match alg {
                Integrity::HmacSha1_96 => Key::Sha1(
                    Hmac::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC key")),
                ),
                Integrity::HmacSha256_128 => Key::Sha256(
                    Hmac::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC key")),
                ),
                Integrity::HmacSha384_192 => Key::Sha384(
                    Hmac::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC key")),
                ),
                Integrity::HmacSha512_256 => Key::Sha512(
                    Hmac::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC key")),
                ),
            }
        }

        pub(super) fn compute(&self, parts: &[&[u8]]) -> MacOut {
            match self {
                Key::Sha1(m) => run(m, parts),
                Key::Sha256(m) => run(m, parts),
                Key::Sha384(m) => run(m, parts),
                Key::Sha512(m) => run(m, parts),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! RFC 2202 §3 (HMAC-SHA-1), RFC 4231 §4 (HMAC-SHA-2) and RFC 4868 §2.7 (truncated ICVs).
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace([' ', '\n'], "")).unwrap()
    }

    fn full(alg: Integrity, key: &[u8], data: &[u8]) -> Vec<u8> {
        Mac::new(alg, key).full(&[data]).as_slice().to_vec()
    }

    #[test]
    fn rfc2202_hmac_sha1() {
        use Integrity::HmacSha1_96 as A;
        assert_eq!(
            full(A, &[0x0b; 20], b"Hi There"),
            h("b617318655057264e28bc0b6fb378c8ef146be00")
        );
        assert_eq!(
            full(A, b"Jefe", b"what do ya want for nothing?"),
            h("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
        );
        assert_eq!(
            full(A, &[0xaa; 20], &[0xdd; 50]),
            h("125d7342b9ac11cd91a39af48aa17b4f63f175d3")
        );
        // Test case 5: truncation to 96 bits.
        let mac = Mac::new(A, &[0x0c; 20]);
        assert!(mac.verify(&[b"Test With Truncation"], &h("4c1a03424b55e07fe7f27be1")));
    }

    #[test]
    fn rfc4231_hmac_sha2() {
        let cases: [(&[u8], &[u8], [&str; 3]); 2] = [
            (
                &[0x0b; 20],
                b"Hi There",
                [
                    "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
                    "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c\
                     faea9ea9076ede7f4af152e8b2fa9cb6",
                    "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde\
                     daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
                ],
            ),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                [
                    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
                    "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e\
                     8e2240ca5e69e2c78b3239ecfab21649",
                    "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
                     9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
                ],
            ),
        ];
        for (key, data, [s256, s384, s512]) in cases {
            assert_eq!(full(Integrity::HmacSha256_128, key, data), h(s256));
            assert_eq!(full(Integrity::HmacSha384_192, key, data), h(s384));
            assert_eq!(full(Integrity::HmacSha512_256, key, data), h(s512));
        }
    }

    /// RFC 4868 §2.7.2.1–2.7.2.3 AUTH test case 1: key = 0x0b repeated (full hash length),
    /// data "Hi There", ICV = first half of the HMAC.
    #[test]
    fn rfc4868_truncated_icvs() {
        let cases = [
            (
                Integrity::HmacSha256_128,
                "198a607eb44bfbc69903a0f1cf2bbdc5",
            ),
            (
                Integrity::HmacSha384_192,
                "b6a8d5636f5c6a7224f9977dcf7ee6c7fb6d0c48cbdee973",
            ),
            (
                Integrity::HmacSha512_256,
                "637edc6e01dce7e6742a99451aae82df23da3e92439e590e43e761b33e910fb8",
            ),
        ];
        for (alg, icv) in cases {
            let key = vec![0x0b; alg.key_len()];
            let mac = Mac::new(alg, &key);
            assert_eq!(mac.icv_len(), icv.len() / 2);
            assert!(mac.verify(&[b"Hi ", b"There"], &h(icv)));
            let mut wrong = h(icv);
            wrong[0] ^= 1;
            assert!(!mac.verify(&[b"Hi There"], &wrong));
        }
        // AUTH256-2: key "JefeJefe…" (32 bytes).
        let mac = Mac::new(Integrity::HmacSha256_128, &b"Jefe".repeat(8));
        assert!(mac.verify(
            &[b"what do ya want for nothing?"],
            &h("167f928588c5cc2eef8e3093caa0e87c")
        ));
    }
}

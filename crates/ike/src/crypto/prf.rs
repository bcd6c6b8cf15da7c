//! Hash functions and the HMAC pseudo-random function of the negotiated phase 1 hash
//! (RFC 2409 §4: "the HMAC version of the negotiated hash algorithm").

use hmac::{Hmac, Mac};
use sha2::Digest;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::secret::Secret;
use crate::algorithm::IkeHash;

/// Runs `$body` with `$d` bound to the digest type of `$hash`.
macro_rules! with_digest {
    ($hash:expr, $d:ident => $body:expr) => {
        match $hash {
            IkeHash::Md5 => {
                type $d = md5::Md5;
                $body
            }
            IkeHash::Sha1 => {
                type $d = sha1::Sha1;
                $body
            }
            IkeHash::Sha2_256 => {
                type $d = sha2::Sha256;
                $body
            }
            IkeHash::Sha2_384 => {
                type $d = sha2::Sha384;
                $body
            }
            IkeHash::Sha2_512 => {
                type $d = sha2::Sha512;
                $body
            }
        }
    };
}

/// `prf(key, data[0] | data[1] | ...)`: HMAC-`hash` over the concatenation of `data`.
pub fn prf(hash: IkeHash, key: &[u8], data: &[&[u8]]) -> Secret {
    with_digest!(hash, D => {
        // HMAC accepts keys of every length (RFC 2104 §2), so this never fails.
        let mut mac = <Hmac<D> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
        for part in data {
            mac.update(part);
        }
        let mut out = mac.finalize().into_bytes();
        let secret = Zeroizing::new(out.to_vec());
        out.as_mut_slice().zeroize();
        secret
    })
}

/// Plain digest of the concatenation of `data`.
pub fn hash(hash: IkeHash, data: &[&[u8]]) -> Vec<u8> {
    with_digest!(hash, D => {
        let mut h = D::new();
        for part in data {
            h.update(part);
        }
        h.finalize().to_vec()
    })
}

/// Constant-time equality of two byte strings (the lengths are not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_have_the_hash_length() {
        for h in [
            IkeHash::Md5,
            IkeHash::Sha1,
            IkeHash::Sha2_256,
            IkeHash::Sha2_384,
            IkeHash::Sha2_512,
        ] {
            assert_eq!(prf(h, b"k", &[b"x"]).len(), h.output_len());
            assert_eq!(hash(h, &[b"x"]).len(), h.output_len());
        }
    }

    #[test]
    fn data_is_concatenated() {
        let h = IkeHash::Sha2_256;
        assert_eq!(
            prf(h, b"key", &[b"ab", b"", b"c"]),
            prf(h, b"key", &[b"abc"])
        );
        assert_eq!(hash(h, &[b"a", b"bc"]), hash(h, &[b"abc"]));
    }

    #[test]
    fn ct_eq_compares_content_and_length() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(ct_eq(b"", b""));
    }
}

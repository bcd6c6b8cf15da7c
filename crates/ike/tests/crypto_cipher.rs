//! Known-answer tests of the phase 1 CBC ciphers.

use ferrovpn_ike::algorithm::IkeCipher;
use ferrovpn_ike::crypto::cipher::{decrypt, encrypt};
use ferrovpn_ike::crypto::CryptoError;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

/// Encrypts `plain` in place, compares with `cipher_text`, then decrypts back.
fn check(cipher: IkeCipher, key: &str, iv: &str, plain: &[u8], cipher_text: &str) {
    let (key, iv) = (h(key), h(iv));
    let mut buf = plain.to_vec();
    encrypt(cipher, &key, &iv, &mut buf).unwrap();
    assert_eq!(hex::encode(&buf), cipher_text, "{cipher:?} encrypt");
    decrypt(cipher, &key, &iv, &mut buf).unwrap();
    assert_eq!(buf, plain, "{cipher:?} decrypt");
}

#[test]
fn aes128_cbc_matches_rfc3602_cases() {
    // RFC 3602 §4, cases #1 to #4.
    check(
        IkeCipher::AesCbc128,
        "06a9214036b8a15b512e03d534120006",
        "3dafba429d9eb430b422da802c9fac41",
        b"Single block msg",
        "e353779c1079aeb82708942dbe77181a",
    );
    check(
        IkeCipher::AesCbc128,
        "c286696d887c9aa0611bbb3e2025a45a",
        "562e17996d093d28ddb3ba695a2e6f58",
        &h("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"),
        "d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1",
    );
    check(
        IkeCipher::AesCbc128,
        "6c3ea0477630ce21a2ce334aa746c2cd",
        "c782dc4c098c66cbd9cd27d825682c81",
        b"This is a 48-byte message (exactly 3 AES blocks)",
        "d0a02b3836451753d493665d33f0e8862dea54cdb293abc7506939276772f8d5\
         021c19216bad525c8579695d83ba2684",
    );
    let plain4: Vec<u8> = (0xa0..0xe0).collect();
    check(
        IkeCipher::AesCbc128,
        "56e47a38c5598974bc46903dba290349",
        "8ce82eefbea0da3c44699ed7db51b7d9",
        &plain4,
        "c30e32ffedc0774e6aff6af0869f71aa0f3af07a9a31a9c684db207eb0ef8e4e\
         35907aa632c3ffdf868bb7b29d3d46ad83ce9f9a102ee99d49a53e87f4c3da55",
    );
}

#[test]
fn aes192_and_aes256_cbc_match_sp800_38a() {
    // NIST SP 800-38A F.2.3 (CBC-AES192) and F.2.5 (CBC-AES256), first two blocks.
    let plain = h("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
    let iv = "000102030405060708090a0b0c0d0e0f";
    check(
        IkeCipher::AesCbc192,
        "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b",
        iv,
        &plain,
        "4f021db243bc633d7178183a9fa071e8b4d9ada9ad7dedf4e5e738763f69145a",
    );
    check(
        IkeCipher::AesCbc256,
        "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
        iv,
        &plain,
        "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d",
    );
}

#[test]
fn triple_des_cbc_matches_openssl() {
    // Computed independently with OpenSSL 3.0:
    // echo 4e6f77206973207468652074696d6520666f7220616c6c20 | xxd -r -p | openssl enc \
    //   -des-ede3-cbc -K 0123456789abcdef23456789abcdef01456789abcdef0123 -iv 1234567890abcdef \
    //   -nopad | xxd -p
    check(
        IkeCipher::TripleDesCbc,
        "0123456789abcdef23456789abcdef01456789abcdef0123",
        "1234567890abcdef",
        b"Now is the time for all ",
        "f3c0ff026c023089656fbb169def7edb30ba36075d6f0176",
    );
}

#[test]
fn partial_blocks_and_wrong_key_or_iv_lengths_are_errors() {
    let mut seven = [0u8; 7];
    assert_eq!(
        encrypt(IkeCipher::TripleDesCbc, &[0; 24], &[0; 8], &mut seven),
        Err(CryptoError::BadLength)
    );
    let mut block = [0u8; 16];
    assert_eq!(
        decrypt(IkeCipher::AesCbc256, &[0; 16], &[0; 16], &mut block),
        Err(CryptoError::BadKeyLength)
    );
    assert_eq!(
        encrypt(IkeCipher::AesCbc128, &[0; 16], &[0; 8], &mut block),
        Err(CryptoError::BadIvLength)
    );
    assert_eq!(block, [0; 16], "failed calls leave the data alone");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    const ALL: [IkeCipher; 4] = [
        IkeCipher::TripleDesCbc,
        IkeCipher::AesCbc128,
        IkeCipher::AesCbc192,
        IkeCipher::AesCbc256,
    ];

    proptest! {
        /// Decryption inverts encryption for whole blocks; any other length is refused untouched.
        #[test]
        fn round_trip_or_bad_length(
            c in 0..ALL.len(),
            key in proptest::collection::vec(any::<u8>(), 32),
            iv in proptest::collection::vec(any::<u8>(), 16),
            data in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let cipher = ALL[c];
            let (key, iv) = (&key[..cipher.key_len()], &iv[..cipher.block_len()]);
            let mut buf = data.clone();
            match encrypt(cipher, key, iv, &mut buf) {
                Ok(()) => {
                    prop_assert_eq!(data.len() % cipher.block_len(), 0);
                    decrypt(cipher, key, iv, &mut buf).unwrap();
                    prop_assert_eq!(buf, data);
                }
                Err(e) => {
                    prop_assert_eq!(e, CryptoError::BadLength);
                    prop_assert_eq!(buf, data);
                }
            }
        }
    }
}

//! Phase 1 encryption: AES-CBC (RFC 3602) and 3DES-CBC (RFC 2451), in place, without padding
//! (ISAKMP pads to the block length itself, RFC 2409 Appendix B).

use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};

use super::error::CryptoError;
use crate::algorithm::IkeCipher;

fn check(cipher: IkeCipher, key: &[u8], iv: &[u8], data: &[u8]) -> Result<(), CryptoError> {
    if key.len() != cipher.key_len() {
        return Err(CryptoError::BadKeyLength);
    }
    if iv.len() != cipher.block_len() {
        return Err(CryptoError::BadIvLength);
    }
    if !data.len().is_multiple_of(cipher.block_len()) {
        return Err(CryptoError::BadLength);
    }
    Ok(())
}

fn enc<C>(key: &[u8], iv: &[u8], data: &mut [u8]) -> Result<(), CryptoError>
where
    cbc::Encryptor<C>: KeyIvInit + BlockEncryptMut,
    C: cbc::cipher::BlockCipher + cbc::cipher::BlockEncryptMut,
{
    let c = cbc::Encryptor::<C>::new_from_slices(key, iv).map_err(|_| CryptoError::BadKeyLength)?;
    let len = data.len();
    c.encrypt_padded_mut::<NoPadding>(data, len)
        .map(|_| ())
        .map_err(|_| CryptoError::BadLength)
}

fn dec<C>(key: &[u8], iv: &[u8], data: &mut [u8]) -> Result<(), CryptoError>
where
    cbc::Decryptor<C>: KeyIvInit + BlockDecryptMut,
    C: cbc::cipher::BlockCipher + cbc::cipher::BlockDecryptMut,
{
    let c = cbc::Decryptor::<C>::new_from_slices(key, iv).map_err(|_| CryptoError::BadKeyLength)?;
    c.decrypt_padded_mut::<NoPadding>(data)
        .map(|_| ())
        .map_err(|_| CryptoError::BadLength)
}

/// Encrypts `data` in place with `cipher` in CBC mode; `data` must be a whole number of blocks.
pub fn encrypt(
    cipher: IkeCipher,
    key: &[u8],
    iv: &[u8],
    data: &mut [u8],
) -> Result<(), CryptoError> {
    check(cipher, key, iv, data)?;
    match cipher {
        IkeCipher::TripleDesCbc => enc::<des::TdesEde3>(key, iv, data),
        IkeCipher::AesCbc128 => enc::<aes::Aes128>(key, iv, data),
        IkeCipher::AesCbc192 => enc::<aes::Aes192>(key, iv, data),
        IkeCipher::AesCbc256 => enc::<aes::Aes256>(key, iv, data),
    }
}

/// Decrypts `data` in place with `cipher` in CBC mode; `data` must be a whole number of blocks.
pub fn decrypt(
    cipher: IkeCipher,
    key: &[u8],
    iv: &[u8],
    data: &mut [u8],
) -> Result<(), CryptoError> {
    check(cipher, key, iv, data)?;
    match cipher {
        IkeCipher::TripleDesCbc => dec::<des::TdesEde3>(key, iv, data),
        IkeCipher::AesCbc128 => dec::<aes::Aes128>(key, iv, data),
        IkeCipher::AesCbc192 => dec::<aes::Aes192>(key, iv, data),
        IkeCipher::AesCbc256 => dec::<aes::Aes256>(key, iv, data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [IkeCipher; 4] = [
        IkeCipher::TripleDesCbc,
        IkeCipher::AesCbc128,
        IkeCipher::AesCbc192,
        IkeCipher::AesCbc256,
    ];

    #[test]
    fn round_trip_every_cipher() {
        for c in ALL {
            let key = vec![0x5a; c.key_len()];
            let iv = vec![0xa5; c.block_len()];
            let plain: Vec<u8> = (0..(3 * c.block_len()) as u8).collect();
            let mut buf = plain.clone();
            encrypt(c, &key, &iv, &mut buf).unwrap();
            assert_ne!(buf, plain);
            decrypt(c, &key, &iv, &mut buf).unwrap();
            assert_eq!(buf, plain);
        }
    }

    #[test]
    fn rejects_bad_lengths() {
        for c in ALL {
            let key = vec![1; c.key_len()];
            let iv = vec![2; c.block_len()];
            let mut partial = vec![0; c.block_len() + 1];
            assert_eq!(
                encrypt(c, &key, &iv, &mut partial),
                Err(CryptoError::BadLength)
            );
            assert_eq!(
                decrypt(c, &key, &iv, &mut partial),
                Err(CryptoError::BadLength)
            );
            let mut block = vec![0; c.block_len()];
            assert_eq!(
                encrypt(c, &key[1..], &iv, &mut block),
                Err(CryptoError::BadKeyLength)
            );
            assert_eq!(
                decrypt(c, &key, &iv[1..], &mut block),
                Err(CryptoError::BadIvLength)
            );
        }
    }

    #[test]
    fn empty_data_is_a_no_op() {
        let mut empty = [];
        encrypt(IkeCipher::AesCbc128, &[0; 16], &[0; 16], &mut empty).unwrap();
    }
}

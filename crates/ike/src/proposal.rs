//! strongSwan proposal syntax (`aes256-sha256-modp2048`, `aes128gcm16-modp2048`) for IKEv1.
//!
//! A list is comma-separated; each proposal is `-`-separated algorithm keywords. Listing several
//! algorithms of one kind in one proposal offers their cartesian product, in the order written,
//! cipher outermost (as strongSwan expands a proposal into IKEv1 transforms):
//! `aes128-aes256-sha256-modp2048-ecp256` gives aes128/modp2048, aes128/ecp256, aes256/modp2048,
//! aes256/ecp256. Keywords are matched case-insensitively. Rules particular to IKEv1:
//! - Phase 1 (RFC 2409 App. A) has no AEAD ciphers and no separate PRF (its PRF is the HMAC of
//!   the hash algorithm), so `aes128gcm16` and `prfsha256` are refused in IKE proposals.
//! - In ESP, a DH group means PFS (RFC 2409 §5.5). An AEAD cipher (RFC 4106, RFC 7634) needs no
//!   integrity algorithm; as strongSwan does, integrity keywords listed next to an AEAD are
//!   ignored. A CBC cipher needs one. AEAD and CBC ciphers cannot share one proposal.
//! - `esn`/`noesn` (RFC 4304): IKEv1 carries one ESN attribute per transform and strongSwan sends
//!   the first one listed, so when both appear the first wins. Default is `noesn`.

use std::fmt;

use crate::algorithm::{DhGroup, EspCipher, EspIntegrity, IkeCipher, IkeHash};

/// One phase 1 transform: cipher, hash (and thereby PRF), DH group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IkeProposal {
    pub cipher: IkeCipher,
    pub hash: IkeHash,
    pub group: DhGroup,
}

/// One phase 2 ESP transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EspProposal {
    pub cipher: EspCipher,
    /// `None` only for AEAD ciphers.
    pub integrity: Option<EspIntegrity>,
    /// DH group of the Quick Mode KE payload; `Some` means PFS.
    pub pfs_group: Option<DhGroup>,
    /// Extended sequence numbers (RFC 4304).
    pub esn: bool,
}

/// Why a proposal string was refused; each message names the token and the proposal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposalError {
    #[error("empty proposal list")]
    EmptyList,
    #[error("empty proposal in '{list}'")]
    EmptyProposal { list: String },
    #[error("empty algorithm name in '{proposal}'")]
    EmptyToken { proposal: String },
    #[error("unknown algorithm '{token}' in '{proposal}'")]
    UnknownAlgorithm { token: String, proposal: String },
    #[error("'{token}' in '{proposal}': IKEv1 has no AEAD phase 1 ciphers; use a CBC cipher with a hash, e.g. aes256-sha256-modp2048")]
    AeadInIke { token: String, proposal: String },
    #[error("'{token}' in '{proposal}': IKEv1 has no separate PRF, its PRF is HMAC of the hash algorithm; write the hash instead (e.g. sha256)")]
    PrfInIke { token: String, proposal: String },
    #[error("'{token}' in '{proposal}' is not an IKE phase 1 algorithm ({reason})")]
    NotForIke {
        token: String,
        proposal: String,
        reason: &'static str,
    },
    #[error("'{token}' in '{proposal}' is not supported for ESP ({reason})")]
    NotForEsp {
        token: String,
        proposal: String,
        reason: &'static str,
    },
    #[error("no encryption algorithm in '{proposal}'")]
    MissingCipher { proposal: String },
    #[error("no hash algorithm in '{proposal}' (IKEv1 phase 1 needs one, e.g. sha256)")]
    MissingHash { proposal: String },
    #[error("no DH group in '{proposal}' (IKEv1 phase 1 needs one, e.g. modp2048)")]
    MissingGroup { proposal: String },
    #[error("'{cipher}' in '{proposal}' needs an integrity algorithm (e.g. {cipher}-sha256)")]
    MissingIntegrity { cipher: String, proposal: String },
    #[error("'{proposal}' mixes AEAD and non-AEAD ciphers; put them in separate proposals separated by a comma")]
    MixedAead { proposal: String },
}

/// A keyword as it may appear in either kind of proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// AES-CBC (usable in IKE and ESP) with key bits.
    AesCbc(u16),
    TripleDes,
    AesGcm {
        key_bits: u16,
        icv_len: u8,
    },
    ChaCha20Poly1305,
    Md5,
    /// SHA-1 / SHA-2 by digest bits (160, 256, 384, 512).
    Sha(u16),
    Prf,
    Group(DhGroup),
    Esn(bool),
}

fn lookup(token: &str) -> Option<Token> {
    let t = token.to_ascii_lowercase();
    Some(match t.as_str() {
        "aes" | "aes128" => Token::AesCbc(128),
        "aes192" => Token::AesCbc(192),
        "aes256" => Token::AesCbc(256),
        "3des" => Token::TripleDes,
        "chacha20poly1305" => Token::ChaCha20Poly1305,
        "md5" => Token::Md5,
        "sha" | "sha1" => Token::Sha(160),
        "sha256" | "sha2_256" => Token::Sha(256),
        "sha384" | "sha2_384" => Token::Sha(384),
        "sha512" | "sha2_512" => Token::Sha(512),
        "esn" => Token::Esn(true),
        "noesn" => Token::Esn(false),
        "curve25519" | "x25519" => Token::Group(DhGroup::Curve25519),
        _ if t.starts_with("prf") => Token::Prf,
        _ => {
            if let Some(g) = DhGroup::ALL.into_iter().find(|g| g.name() == t) {
                return Some(Token::Group(g));
            }
            return lookup_gcm(&t);
        }
    })
}

/// `aes{128,192,256}gcm{,8,12,16,64,96,128}`; the ICV may be given in bytes or bits.
fn lookup_gcm(t: &str) -> Option<Token> {
    let rest = t.strip_prefix("aes")?;
    let (bits, icv) = rest.split_once("gcm")?;
    let key_bits = match bits {
        "128" => 128,
        "192" => 192,
        "256" => 256,
        _ => return None,
    };
    let icv_len = match icv {
        "" | "16" | "128" => 16,
        "12" | "96" => 12,
        "8" | "64" => 8,
        _ => return None,
    };
    Some(Token::AesGcm { key_bits, icv_len })
}

/// Splits a list into trimmed proposal strings, refusing empty ones.
fn split_list(s: &str) -> Result<Vec<&str>, ProposalError> {
    if s.trim().is_empty() {
        return Err(ProposalError::EmptyList);
    }
    s.split(',')
        .map(str::trim)
        .map(|p| {
            if p.is_empty() {
                Err(ProposalError::EmptyProposal {
                    list: s.to_string(),
                })
            } else {
                Ok(p)
            }
        })
        .collect()
}

/// Resolves every `-`-separated keyword of one proposal.
fn tokens(proposal: &str) -> Result<Vec<(&str, Token)>, ProposalError> {
    proposal
        .split('-')
        .map(|raw| {
            let t = raw.trim();
            if t.is_empty() {
                return Err(ProposalError::EmptyToken {
                    proposal: proposal.to_string(),
                });
            }
            lookup(t)
                .map(|tok| (t, tok))
                .ok_or_else(|| ProposalError::UnknownAlgorithm {
                    token: t.to_string(),
                    proposal: proposal.to_string(),
                })
        })
        .collect()
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

/// Parses an IKE (phase 1) proposal list, e.g. `aes256-sha256-modp2048,aes128-sha1-ecp256`.
pub fn parse_ike_proposals(s: &str) -> Result<Vec<IkeProposal>, ProposalError> {
    let mut out = Vec::new();
    for proposal in split_list(s)? {
        let mut ciphers = Vec::new();
        let mut hashes = Vec::new();
        let mut groups = Vec::new();
        for (text, tok) in tokens(proposal)? {
            let err_not = |reason| ProposalError::NotForIke {
                token: text.to_string(),
                proposal: proposal.to_string(),
                reason,
            };
            match tok {
                Token::AesCbc(128) => push_unique(&mut ciphers, IkeCipher::AesCbc128),
                Token::AesCbc(192) => push_unique(&mut ciphers, IkeCipher::AesCbc192),
                Token::AesCbc(_) => push_unique(&mut ciphers, IkeCipher::AesCbc256),
                Token::TripleDes => push_unique(&mut ciphers, IkeCipher::TripleDesCbc),
                Token::AesGcm { .. } | Token::ChaCha20Poly1305 => {
                    return Err(ProposalError::AeadInIke {
                        token: text.to_string(),
                        proposal: proposal.to_string(),
                    })
                }
                Token::Md5 => push_unique(&mut hashes, IkeHash::Md5),
                Token::Sha(160) => push_unique(&mut hashes, IkeHash::Sha1),
                Token::Sha(256) => push_unique(&mut hashes, IkeHash::Sha2_256),
                Token::Sha(384) => push_unique(&mut hashes, IkeHash::Sha2_384),
                Token::Sha(_) => push_unique(&mut hashes, IkeHash::Sha2_512),
                Token::Prf => {
                    return Err(ProposalError::PrfInIke {
                        token: text.to_string(),
                        proposal: proposal.to_string(),
                    })
                }
                Token::Group(g) => push_unique(&mut groups, g),
                Token::Esn(_) => return Err(err_not("ESN applies to ESP only")),
            }
        }
        let missing = |e: fn(String) -> ProposalError| e(proposal.to_string());
        if ciphers.is_empty() {
            return Err(missing(|proposal| ProposalError::MissingCipher {
                proposal,
            }));
        }
        if hashes.is_empty() {
            return Err(missing(|proposal| ProposalError::MissingHash { proposal }));
        }
        if groups.is_empty() {
            return Err(missing(|proposal| ProposalError::MissingGroup { proposal }));
        }
        for &cipher in &ciphers {
            for &hash in &hashes {
                for &group in &groups {
                    push_unique(
                        &mut out,
                        IkeProposal {
                            cipher,
                            hash,
                            group,
                        },
                    );
                }
            }
        }
    }
    Ok(out)
}

/// Parses an ESP (phase 2) proposal list, e.g. `aes128gcm16-modp2048,aes256-sha256`.
pub fn parse_esp_proposals(s: &str) -> Result<Vec<EspProposal>, ProposalError> {
    let mut out = Vec::new();
    for proposal in split_list(s)? {
        let mut ciphers: Vec<(EspCipher, &str)> = Vec::new();
        let mut integrity = Vec::new();
        let mut groups = Vec::new();
        let mut esn = None;
        for (text, tok) in tokens(proposal)? {
            let err_not = |reason| ProposalError::NotForEsp {
                token: text.to_string(),
                proposal: proposal.to_string(),
                reason,
            };
            let cipher = match tok {
                Token::AesCbc(key_bits) => Some(EspCipher::AesCbc { key_bits }),
                Token::AesGcm { key_bits, icv_len } => {
                    Some(EspCipher::AesGcm { key_bits, icv_len })
                }
                Token::ChaCha20Poly1305 => Some(EspCipher::ChaCha20Poly1305),
                Token::TripleDes => return Err(err_not("3DES is not implemented for ESP")),
                Token::Md5 => return Err(err_not("HMAC-MD5 is not implemented for ESP")),
                Token::Prf => return Err(err_not("a PRF is not an ESP algorithm")),
                Token::Sha(bits) => {
                    let i = match bits {
                        160 => EspIntegrity::HmacSha1_96,
                        256 => EspIntegrity::HmacSha256_128,
                        384 => EspIntegrity::HmacSha384_192,
                        _ => EspIntegrity::HmacSha512_256,
                    };
                    push_unique(&mut integrity, i);
                    None
                }
                Token::Group(g) => {
                    push_unique(&mut groups, g);
                    None
                }
                Token::Esn(e) => {
                    esn.get_or_insert(e);
                    None
                }
            };
            if let Some(c) = cipher {
                if !ciphers.iter().any(|(x, _)| *x == c) {
                    ciphers.push((c, text));
                }
            }
        }
        let Some(&(first, first_text)) = ciphers.first() else {
            return Err(ProposalError::MissingCipher {
                proposal: proposal.to_string(),
            });
        };
        let aead = first.is_aead();
        if ciphers.iter().any(|(c, _)| c.is_aead() != aead) {
            return Err(ProposalError::MixedAead {
                proposal: proposal.to_string(),
            });
        }
        let integrity: Vec<Option<EspIntegrity>> = if aead {
            vec![None]
        } else if integrity.is_empty() {
            return Err(ProposalError::MissingIntegrity {
                cipher: first_text.to_string(),
                proposal: proposal.to_string(),
            });
        } else {
            integrity.into_iter().map(Some).collect()
        };
        let groups: Vec<Option<DhGroup>> = if groups.is_empty() {
            vec![None]
        } else {
            groups.into_iter().map(Some).collect()
        };
        let esn = esn.unwrap_or(false);
        for &(cipher, _) in &ciphers {
            for &integrity in &integrity {
                for &pfs_group in &groups {
                    push_unique(
                        &mut out,
                        EspProposal {
                            cipher,
                            integrity,
                            pfs_group,
                            esn,
                        },
                    );
                }
            }
        }
    }
    Ok(out)
}

impl fmt::Display for IkeProposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}-{}",
            self.cipher.name(),
            self.hash.name(),
            self.group.name()
        )
    }
}

impl fmt::Display for EspProposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.cipher.name())?;
        if let Some(i) = self.integrity {
            write!(f, "-{}", i.name())?;
        }
        if let Some(g) = self.pfs_group {
            write!(f, "-{}", g.name())?;
        }
        if self.esn {
            f.write_str("-esn")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ike(s: &str) -> Vec<String> {
        parse_ike_proposals(s)
            .unwrap()
            .iter()
            .map(|p| p.to_string())
            .collect()
    }

    fn esp(s: &str) -> Vec<String> {
        parse_esp_proposals(s)
            .unwrap()
            .iter()
            .map(|p| p.to_string())
            .collect()
    }

    fn ike_err(s: &str) -> String {
        parse_ike_proposals(s).unwrap_err().to_string()
    }

    fn esp_err(s: &str) -> String {
        parse_esp_proposals(s).unwrap_err().to_string()
    }

    #[test]
    fn ike_single_proposal_parses_to_its_parts() {
        assert_eq!(
            parse_ike_proposals("aes256-sha256-modp2048").unwrap(),
            vec![IkeProposal {
                cipher: IkeCipher::AesCbc256,
                hash: IkeHash::Sha2_256,
                group: DhGroup::Modp2048,
            }]
        );
    }

    #[test]
    fn ike_display_round_trips() {
        for s in [
            "aes256-sha256-modp2048",
            "aes128-sha1-ecp256",
            "3des-md5-modp1024",
            "aes192-sha384-ecp384",
            "aes256-sha512-curve25519",
            "aes128-sha256-modp8192",
            "aes256-sha256-ecp521",
        ] {
            assert_eq!(ike(s), vec![s.to_string()]);
        }
    }

    #[test]
    fn ike_aliases_map_to_canonical_names() {
        assert_eq!(ike("aes-sha-modp2048"), ["aes128-sha1-modp2048"]);
        assert_eq!(ike("aes256-sha2_256-x25519"), ["aes256-sha256-curve25519"]);
        assert_eq!(ike("aes256-sha2_384-ecp384"), ["aes256-sha384-ecp384"]);
        assert_eq!(ike("aes256-sha2_512-modp4096"), ["aes256-sha512-modp4096"]);
        assert_eq!(ike("AES256-SHA256-MODP2048"), ["aes256-sha256-modp2048"]);
    }

    #[test]
    fn ike_all_modp_groups_known() {
        for g in [
            "modp1024", "modp1536", "modp2048", "modp3072", "modp4096", "modp6144", "modp8192",
        ] {
            assert_eq!(ike(&format!("aes-sha1-{g}")), [format!("aes128-sha1-{g}")]);
        }
    }

    #[test]
    fn ike_multiple_algorithms_give_cartesian_product_in_order() {
        assert_eq!(
            ike("aes128-aes256-sha256-modp2048-ecp256"),
            [
                "aes128-sha256-modp2048",
                "aes128-sha256-ecp256",
                "aes256-sha256-modp2048",
                "aes256-sha256-ecp256",
            ]
        );
        assert_eq!(
            ike("aes128-sha1-sha256-modp2048"),
            ["aes128-sha1-modp2048", "aes128-sha256-modp2048"]
        );
    }

    #[test]
    fn comma_separates_proposals_and_duplicates_collapse() {
        assert_eq!(
            ike("aes256-sha256-modp2048, aes128-sha1-ecp256,aes256-sha256-modp2048"),
            ["aes256-sha256-modp2048", "aes128-sha1-ecp256"]
        );
    }

    #[test]
    fn unknown_algorithm_names_token_and_proposal() {
        assert_eq!(
            ike_err("aes257-sha256-modp2048"),
            "unknown algorithm 'aes257' in 'aes257-sha256-modp2048'"
        );
        assert_eq!(
            esp_err("aes128gcm17"),
            "unknown algorithm 'aes128gcm17' in 'aes128gcm17'"
        );
    }

    #[test]
    fn ike_needs_cipher_hash_and_group() {
        assert_eq!(
            ike_err("sha256-modp2048"),
            "no encryption algorithm in 'sha256-modp2048'"
        );
        assert!(ike_err("aes256-modp2048").starts_with("no hash algorithm in 'aes256-modp2048'"));
        assert!(ike_err("aes256-sha256").starts_with("no DH group in 'aes256-sha256'"));
    }

    #[test]
    fn ike_refuses_aead_with_clear_message() {
        let e = ike_err("aes128gcm16-modp2048");
        assert!(e.contains("IKEv1 has no AEAD phase 1 ciphers"), "{e}");
        assert!(e.contains("'aes128gcm16'"), "{e}");
        assert!(ike_err("chacha20poly1305-sha256-modp2048")
            .contains("IKEv1 has no AEAD phase 1 ciphers"));
    }

    #[test]
    fn ike_refuses_prf_and_explains() {
        let e = ike_err("aes256-sha256-prfsha256-modp2048");
        assert!(e.contains("'prfsha256'"), "{e}");
        assert!(e.contains("PRF is HMAC of the hash"), "{e}");
    }

    #[test]
    fn ike_refuses_esn() {
        assert!(ike_err("aes256-sha256-modp2048-esn").contains("ESP only"));
    }

    #[test]
    fn empty_pieces_are_errors() {
        assert_eq!(parse_ike_proposals("  "), Err(ProposalError::EmptyList));
        assert_eq!(
            ike_err("aes256-sha256-modp2048,"),
            "empty proposal in 'aes256-sha256-modp2048,'"
        );
        assert_eq!(
            esp_err("aes128--sha256"),
            "empty algorithm name in 'aes128--sha256'"
        );
    }

    #[test]
    fn esp_aead_needs_no_integrity() {
        assert_eq!(
            parse_esp_proposals("aes128gcm16").unwrap(),
            vec![EspProposal {
                cipher: EspCipher::AesGcm {
                    key_bits: 128,
                    icv_len: 16
                },
                integrity: None,
                pfs_group: None,
                esn: false,
            }]
        );
        assert_eq!(esp("chacha20poly1305"), ["chacha20poly1305"]);
    }

    #[test]
    fn esp_gcm_spellings() {
        assert_eq!(esp("aes128gcm"), ["aes128gcm16"]);
        assert_eq!(esp("aes128gcm128"), ["aes128gcm16"]);
        assert_eq!(esp("aes128gcm96"), ["aes128gcm12"]);
        assert_eq!(esp("aes128gcm64"), ["aes128gcm8"]);
        assert_eq!(esp("aes128gcm12"), ["aes128gcm12"]);
        assert_eq!(esp("aes128gcm8"), ["aes128gcm8"]);
        assert_eq!(esp("aes256gcm16"), ["aes256gcm16"]);
        assert_eq!(esp("aes256gcm"), ["aes256gcm16"]);
        assert_eq!(esp("aes192gcm16"), ["aes192gcm16"]);
    }

    #[test]
    fn esp_cbc_needs_integrity() {
        assert_eq!(esp("aes128-sha256"), ["aes128-sha256"]);
        assert_eq!(esp("aes-sha1"), ["aes128-sha1"]);
        assert_eq!(
            parse_esp_proposals("aes256-sha512").unwrap()[0].integrity,
            Some(EspIntegrity::HmacSha512_256)
        );
        assert_eq!(
            esp_err("aes128-modp2048"),
            "'aes128' in 'aes128-modp2048' needs an integrity algorithm (e.g. aes128-sha256)"
        );
    }

    #[test]
    fn esp_dh_group_means_pfs() {
        let p = parse_esp_proposals("aes128gcm16-modp2048").unwrap();
        assert_eq!(p[0].pfs_group, Some(DhGroup::Modp2048));
        assert_eq!(esp("aes128gcm16-modp2048"), ["aes128gcm16-modp2048"]);
        assert_eq!(
            esp("aes256-sha256-ecp256-curve25519"),
            ["aes256-sha256-ecp256", "aes256-sha256-curve25519"]
        );
    }

    #[test]
    fn esp_integrity_next_to_aead_is_ignored_as_strongswan_does() {
        assert_eq!(esp("aes256gcm16-sha256-modp2048"), ["aes256gcm16-modp2048"]);
    }

    #[test]
    fn esp_mixing_aead_and_cbc_is_an_error() {
        assert!(esp_err("aes128gcm16-aes128-sha256").contains("mixes AEAD and non-AEAD"));
    }

    #[test]
    fn esp_cartesian_product_in_order() {
        assert_eq!(
            esp("aes128-aes256-sha1-sha256"),
            [
                "aes128-sha1",
                "aes128-sha256",
                "aes256-sha1",
                "aes256-sha256"
            ]
        );
    }

    #[test]
    fn esp_esn_first_listed_wins() {
        assert_eq!(esp("aes128gcm16-esn"), ["aes128gcm16-esn"]);
        assert_eq!(esp("aes128gcm16-noesn"), ["aes128gcm16"]);
        assert!(parse_esp_proposals("aes128gcm16-esn-noesn").unwrap()[0].esn);
        assert!(!parse_esp_proposals("aes128gcm16-noesn-esn").unwrap()[0].esn);
    }

    #[test]
    fn esp_refuses_what_is_not_implemented() {
        assert!(esp_err("3des-sha1").contains("not supported for ESP"));
        assert!(esp_err("aes128-md5").contains("not supported for ESP"));
        assert!(esp_err("aes128-sha256-prfsha256").contains("'prfsha256'"));
        assert_eq!(esp_err("sha256"), "no encryption algorithm in 'sha256'");
    }

    #[test]
    fn every_ike_proposal_round_trips_through_display() {
        let ciphers = [
            IkeCipher::TripleDesCbc,
            IkeCipher::AesCbc128,
            IkeCipher::AesCbc192,
            IkeCipher::AesCbc256,
        ];
        let hashes = [
            IkeHash::Md5,
            IkeHash::Sha1,
            IkeHash::Sha2_256,
            IkeHash::Sha2_384,
            IkeHash::Sha2_512,
        ];
        for cipher in ciphers {
            for hash in hashes {
                for group in DhGroup::ALL {
                    let p = IkeProposal {
                        cipher,
                        hash,
                        group,
                    };
                    assert_eq!(parse_ike_proposals(&p.to_string()).unwrap(), vec![p]);
                }
            }
        }
    }

    #[test]
    fn every_esp_proposal_round_trips_through_display() {
        let mut ciphers = vec![EspCipher::ChaCha20Poly1305];
        for key_bits in [128, 192, 256] {
            ciphers.push(EspCipher::AesCbc { key_bits });
            for icv_len in [8, 12, 16] {
                ciphers.push(EspCipher::AesGcm { key_bits, icv_len });
            }
        }
        let integrities = [
            EspIntegrity::HmacSha1_96,
            EspIntegrity::HmacSha256_128,
            EspIntegrity::HmacSha384_192,
            EspIntegrity::HmacSha512_256,
        ];
        let groups = std::iter::once(None).chain(DhGroup::ALL.into_iter().map(Some));
        for pfs_group in groups {
            for &cipher in &ciphers {
                let integ: Vec<Option<EspIntegrity>> = if cipher.is_aead() {
                    vec![None]
                } else {
                    integrities.iter().copied().map(Some).collect()
                };
                for integrity in integ {
                    for esn in [false, true] {
                        let p = EspProposal {
                            cipher,
                            integrity,
                            pfs_group,
                            esn,
                        };
                        assert_eq!(parse_esp_proposals(&p.to_string()).unwrap(), vec![p]);
                    }
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in "[a-z0-9_,\\- ]{0,40}") {
            let _ = parse_ike_proposals(&s);
            let _ = parse_esp_proposals(&s);
        }
    }
}

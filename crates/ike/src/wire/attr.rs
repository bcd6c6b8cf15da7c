//! Attribute classes and well-known values (RFC 2409 App. A, RFC 2407 §4.5, RFC 3947 §5).

/// Phase 1 (ISAKMP SA) attribute classes (RFC 2409 App. A).
pub mod ike {
    pub const ENCRYPTION_ALGORITHM: u16 = 1;
    pub const HASH_ALGORITHM: u16 = 2;
    pub const AUTHENTICATION_METHOD: u16 = 3;
    pub const GROUP_DESCRIPTION: u16 = 4;
    pub const GROUP_TYPE: u16 = 5;
    pub const GROUP_PRIME: u16 = 6;
    pub const GROUP_GENERATOR_ONE: u16 = 7;
    pub const GROUP_GENERATOR_TWO: u16 = 8;
    pub const GROUP_CURVE_A: u16 = 9;
    pub const GROUP_CURVE_B: u16 = 10;
    pub const LIFE_TYPE: u16 = 11;
    pub const LIFE_DURATION: u16 = 12;
    pub const PRF: u16 = 13;
    pub const KEY_LENGTH: u16 = 14;
    pub const FIELD_SIZE: u16 = 15;
    pub const GROUP_ORDER: u16 = 16;
}

/// Phase 2 (IPsec DOI) SA attribute types (RFC 2407 §4.5, RFC 4304 for ESN).
pub mod ipsec {
    pub const SA_LIFE_TYPE: u16 = 1;
    pub const SA_LIFE_DURATION: u16 = 2;
    pub const GROUP_DESCRIPTION: u16 = 3;
    pub const ENCAPSULATION_MODE: u16 = 4;
    pub const AUTH_ALGORITHM: u16 = 5;
    pub const KEY_LENGTH: u16 = 6;
    pub const KEY_ROUNDS: u16 = 7;
    pub const COMPRESS_DICTIONARY_SIZE: u16 = 8;
    pub const COMPRESS_PRIVATE_ALGORITHM: u16 = 9;
    pub const ECN_TUNNEL: u16 = 10;
    pub const EXTENDED_SEQUENCE_NUMBER: u16 = 11;
}

/// Life Type values, shared by phase 1 class 11 and phase 2 type 1.
pub mod life_type {
    pub const SECONDS: u16 = 1;
    pub const KILOBYTES: u16 = 2;
}

/// Encapsulation Mode values (RFC 2407 §4.5, RFC 3947 §5, draft NAT-T private values).
pub mod encap_mode {
    pub const TUNNEL: u16 = 1;
    pub const TRANSPORT: u16 = 2;
    pub const UDP_TUNNEL: u16 = 3;
    pub const UDP_TRANSPORT: u16 = 4;
    pub const UDP_TUNNEL_DRAFT: u16 = 61443;
    pub const UDP_TRANSPORT_DRAFT: u16 = 61444;
}

/// Authentication Method values (RFC 2409 App. A, RFC 4754, XAuth/hybrid drafts).
pub mod auth_method {
    pub const PSK: u16 = 1;
    pub const DSS_SIG: u16 = 2;
    pub const RSA_SIG: u16 = 3;
    pub const RSA_ENC: u16 = 4;
    pub const RSA_ENC_REV: u16 = 5;
    pub const ECDSA_256: u16 = 9;
    pub const ECDSA_384: u16 = 10;
    pub const ECDSA_521: u16 = 11;
    pub const HYBRID_INIT_RSA: u16 = 64221;
    pub const HYBRID_RESP_RSA: u16 = 64222;
    pub const XAUTH_INIT_PSK: u16 = 65001;
    pub const XAUTH_RESP_PSK: u16 = 65002;
    pub const XAUTH_INIT_RSA: u16 = 65005;
    pub const XAUTH_RESP_RSA: u16 = 65006;
}

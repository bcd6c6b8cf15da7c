//! Registered numbers of ISAKMP fields as open newtypes: unknown values stay representable.

use std::fmt;

/// Declares consts on a newtype and a `name()` lookup; `Display` prints the name or the number.
macro_rules! registry {
    ($ty:ident($int:ty), $unknown:literal, { $($(#[$m:meta])* $c:ident = $v:literal => $n:literal,)* }) => {
        impl $ty {
            $($(#[$m])* pub const $c: $ty = $ty($v);)*

            /// Name as operators see it in logs, or a placeholder for unregistered values.
            pub fn name(&self) -> &'static str {
                match self.0 {
                    $($v => $n,)*
                    _ => $unknown,
                }
            }

            /// Whether the value is one this module has a name for.
            pub fn is_known(&self) -> bool {
                self.name() != $unknown
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                if self.is_known() {
                    f.write_str(self.name())
                } else {
                    write!(f, "{}({})", $unknown, self.0)
                }
            }
        }
    };
}

/// Exchange type (RFC 2408 §3.1, RFC 2409 §5.5, draft-dukes-ike-mode-cfg).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExchangeType(pub u8);

registry!(ExchangeType(u8), "EXCHANGE", {
    NONE = 0 => "NONE",
    BASE = 1 => "BASE",
    /// Main Mode.
    IDENTITY_PROTECTION = 2 => "ID_PROT",
    AUTH_ONLY = 3 => "AUTH_ONLY",
    AGGRESSIVE = 4 => "AGGRESSIVE",
    INFORMATIONAL = 5 => "INFORMATIONAL_V1",
    TRANSACTION = 6 => "TRANSACTION",
    QUICK_MODE = 32 => "QUICK_MODE",
    NEW_GROUP_MODE = 33 => "NEW_GROUP_MODE",
});

/// Payload type (RFC 2408 §3.1, RFC 3947 §3–§4, draft NAT-T 130/131, fragmentation 132).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PayloadType(pub u8);

registry!(PayloadType(u8), "U", {
    NONE = 0 => "--",
    SA = 1 => "SA",
    PROPOSAL = 2 => "PROP",
    TRANSFORM = 3 => "TRANS",
    KE = 4 => "KE",
    ID = 5 => "ID",
    CERT = 6 => "CERT",
    CR = 7 => "CERTREQ",
    HASH = 8 => "HASH",
    SIG = 9 => "SIG",
    NONCE = 10 => "No",
    N = 11 => "N",
    D = 12 => "D",
    VID = 13 => "V",
    ATTR = 14 => "CP",
    NAT_D = 20 => "NAT-D",
    NAT_OA = 21 => "NAT-OA",
    NAT_D_DRAFT = 130 => "NAT-D",
    NAT_OA_DRAFT = 131 => "NAT-OA",
    FRAGMENT = 132 => "FRAG",
});

impl PayloadType {
    /// Types 128–255 are private use (RFC 2408 §3.1): unknown ones may be skipped.
    pub fn is_private(&self) -> bool {
        self.0 >= 128
    }
}

/// Header flags (RFC 2408 §3.1); the constants are bits: `Flags(Flags::COMMIT)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    pub const ENCRYPTION: u8 = 1;
    pub const COMMIT: u8 = 2;
    pub const AUTH_ONLY: u8 = 4;

    /// Whether every bit of `bits` is set.
    pub fn contains(&self, bits: u8) -> bool {
        self.0 & bits == bits
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

/// Notify message type (RFC 2408 §3.14.1, RFC 2407 §4.6.3, RFC 3706 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NotifyType(pub u16);

registry!(NotifyType(u16), "NOTIFY", {
    INVALID_PAYLOAD_TYPE = 1 => "INVALID-PAYLOAD-TYPE",
    DOI_NOT_SUPPORTED = 2 => "DOI-NOT-SUPPORTED",
    SITUATION_NOT_SUPPORTED = 3 => "SITUATION-NOT-SUPPORTED",
    INVALID_COOKIE = 4 => "INVALID-COOKIE",
    INVALID_MAJOR_VERSION = 5 => "INVALID-MAJOR-VERSION",
    INVALID_MINOR_VERSION = 6 => "INVALID-MINOR-VERSION",
    INVALID_EXCHANGE_TYPE = 7 => "INVALID-EXCHANGE-TYPE",
    INVALID_FLAGS = 8 => "INVALID-FLAGS",
    INVALID_MESSAGE_ID = 9 => "INVALID-MESSAGE-ID",
    INVALID_PROTOCOL_ID = 10 => "INVALID-PROTOCOL-ID",
    INVALID_SPI = 11 => "INVALID-SPI",
    INVALID_TRANSFORM_ID = 12 => "INVALID-TRANSFORM-ID",
    ATTRIBUTES_NOT_SUPPORTED = 13 => "ATTRIBUTES-NOT-SUPPORTED",
    NO_PROPOSAL_CHOSEN = 14 => "NO-PROPOSAL-CHOSEN",
    BAD_PROPOSAL_SYNTAX = 15 => "BAD-PROPOSAL-SYNTAX",
    PAYLOAD_MALFORMED = 16 => "PAYLOAD-MALFORMED",
    INVALID_KEY_INFORMATION = 17 => "INVALID-KEY-INFORMATION",
    INVALID_ID_INFORMATION = 18 => "INVALID-ID-INFORMATION",
    INVALID_CERT_ENCODING = 19 => "INVALID-CERT-ENCODING",
    INVALID_CERTIFICATE = 20 => "INVALID-CERTIFICATE",
    CERT_TYPE_UNSUPPORTED = 21 => "CERT-TYPE-UNSUPPORTED",
    INVALID_CERT_AUTHORITY = 22 => "INVALID-CERT-AUTHORITY",
    INVALID_HASH_INFORMATION = 23 => "INVALID-HASH-INFORMATION",
    AUTHENTICATION_FAILED = 24 => "AUTHENTICATION-FAILED",
    INVALID_SIGNATURE = 25 => "INVALID-SIGNATURE",
    ADDRESS_NOTIFICATION = 26 => "ADDRESS-NOTIFICATION",
    NOTIFY_SA_LIFETIME = 27 => "NOTIFY-SA-LIFETIME",
    CERTIFICATE_UNAVAILABLE = 28 => "CERTIFICATE-UNAVAILABLE",
    UNSUPPORTED_EXCHANGE_TYPE = 29 => "UNSUPPORTED-EXCHANGE-TYPE",
    UNEQUAL_PAYLOAD_LENGTHS = 30 => "UNEQUAL-PAYLOAD-LENGTHS",
    /// Answer to the commit bit (RFC 2408 §3.14.1, §4.6).
    CONNECTED = 16384 => "CONNECTED",
    RESPONDER_LIFETIME = 24576 => "RESPONDER-LIFETIME",
    REPLAY_STATUS = 24577 => "REPLAY-STATUS",
    INITIAL_CONTACT = 24578 => "INITIAL-CONTACT",
    R_U_THERE = 36136 => "R-U-THERE",
    R_U_THERE_ACK = 36137 => "R-U-THERE-ACK",
});

impl NotifyType {
    /// Error types are below 16384, status types from 16384 on (RFC 2408 §3.14.1).
    pub fn is_error(&self) -> bool {
        self.0 < 16384
    }
}

/// Protocol identifier (RFC 2407 §4.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProtocolId(pub u8);

registry!(ProtocolId(u8), "PROTO", {
    NONE = 0 => "NONE",
    ISAKMP = 1 => "ISAKMP",
    AH = 2 => "AH",
    ESP = 3 => "ESP",
    IPCOMP = 4 => "IPCOMP",
});

/// Identification type (RFC 2407 §4.6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdType(pub u8);

registry!(IdType(u8), "ID", {
    IPV4_ADDR = 1 => "ID_IPV4_ADDR",
    FQDN = 2 => "ID_FQDN",
    USER_FQDN = 3 => "ID_USER_FQDN",
    IPV4_ADDR_SUBNET = 4 => "ID_IPV4_ADDR_SUBNET",
    IPV6_ADDR = 5 => "ID_IPV6_ADDR",
    IPV6_ADDR_SUBNET = 6 => "ID_IPV6_ADDR_SUBNET",
    IPV4_ADDR_RANGE = 7 => "ID_IPV4_ADDR_RANGE",
    IPV6_ADDR_RANGE = 8 => "ID_IPV6_ADDR_RANGE",
    DER_ASN1_DN = 9 => "ID_DER_ASN1_DN",
    DER_ASN1_GN = 10 => "ID_DER_ASN1_GN",
    KEY_ID = 11 => "ID_KEY_ID",
});

/// The IPsec DOI (RFC 2407 §4.2).
pub const IPSEC_DOI: u32 = 1;
/// SIT_IDENTITY_ONLY, the only IPsec DOI situation we handle (RFC 2407 §4.2).
pub const SIT_IDENTITY_ONLY: u32 = 1;
/// SIT_SECRECY (RFC 2407 §4.2): labelled domains, refused.
pub const SIT_SECRECY: u32 = 2;
/// SIT_INTEGRITY (RFC 2407 §4.2): labelled domains, refused.
pub const SIT_INTEGRITY: u32 = 4;

/// Type of an Attribute payload (draft-dukes-ike-mode-cfg §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CfgType(pub u8);

/// Attribute type of the Attribute payload, without the AF bit (draft-dukes-ike-mode-cfg §3.3,
/// draft-beaulieu-ike-xauth §4.2, Cisco Unity private range 28672–).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CfgAttrType(pub u16);

registry!(CfgType(u8), "CFG", {
    REQUEST = 1 => "CFG_REQUEST",
    REPLY = 2 => "CFG_REPLY",
    SET = 3 => "CFG_SET",
    ACK = 4 => "CFG_ACK",
});

registry!(CfgAttrType(u16), "ATTR", {
    INTERNAL_IP4_ADDRESS = 1 => "INTERNAL_IP4_ADDRESS",
    INTERNAL_IP4_NETMASK = 2 => "INTERNAL_IP4_NETMASK",
    INTERNAL_IP4_DNS = 3 => "INTERNAL_IP4_DNS",
    INTERNAL_IP4_NBNS = 4 => "INTERNAL_IP4_NBNS",
    INTERNAL_ADDRESS_EXPIRY = 5 => "INTERNAL_ADDRESS_EXPIRY",
    INTERNAL_IP4_DHCP = 6 => "INTERNAL_IP4_DHCP",
    APPLICATION_VERSION = 7 => "APPLICATION_VERSION",
    INTERNAL_IP6_ADDRESS = 8 => "INTERNAL_IP6_ADDRESS",
    INTERNAL_IP6_NETMASK = 9 => "INTERNAL_IP6_NETMASK",
    INTERNAL_IP6_DNS = 10 => "INTERNAL_IP6_DNS",
    INTERNAL_IP6_NBNS = 11 => "INTERNAL_IP6_NBNS",
    INTERNAL_IP6_DHCP = 12 => "INTERNAL_IP6_DHCP",
    INTERNAL_IP4_SUBNET = 13 => "INTERNAL_IP4_SUBNET",
    SUPPORTED_ATTRIBUTES = 14 => "SUPPORTED_ATTRIBUTES",
    INTERNAL_IP6_SUBNET = 15 => "INTERNAL_IP6_SUBNET",
    XAUTH_TYPE = 16520 => "XAUTH_TYPE",
    XAUTH_USER_NAME = 16521 => "XAUTH_USER_NAME",
    XAUTH_USER_PASSWORD = 16522 => "XAUTH_USER_PASSWORD",
    XAUTH_PASSCODE = 16523 => "XAUTH_PASSCODE",
    XAUTH_MESSAGE = 16524 => "XAUTH_MESSAGE",
    XAUTH_CHALLENGE = 16525 => "XAUTH_CHALLENGE",
    XAUTH_DOMAIN = 16526 => "XAUTH_DOMAIN",
    XAUTH_STATUS = 16527 => "XAUTH_STATUS",
    XAUTH_NEXT_PIN = 16528 => "XAUTH_NEXT_PIN",
    XAUTH_ANSWER = 16529 => "XAUTH_ANSWER",
    UNITY_BANNER = 28672 => "UNITY_BANNER",
    UNITY_SAVE_PASSWD = 28673 => "UNITY_SAVE_PASSWD",
    UNITY_DEF_DOMAIN = 28674 => "UNITY_DEF_DOMAIN",
    UNITY_SPLITDNS_NAME = 28675 => "UNITY_SPLITDNS_NAME",
    UNITY_SPLIT_INCLUDE = 28676 => "UNITY_SPLIT_INCLUDE",
    UNITY_NATT_PORT = 28677 => "UNITY_NATT_PORT",
    UNITY_LOCAL_LAN = 28678 => "UNITY_LOCAL_LAN",
    UNITY_PFS = 28679 => "UNITY_PFS",
    UNITY_FW_TYPE = 28680 => "UNITY_FW_TYPE",
    UNITY_BACKUP_SERVERS = 28681 => "UNITY_BACKUP_SERVERS",
    UNITY_DDNS_HOSTNAME = 28682 => "UNITY_DDNS_HOSTNAME",
});

//! Vendor ID payload values we send or recognise (RFC 2408 §3.16). Most are MD5 of a string;
//! DPD and Cisco Unity carry a version in their last two bytes, FRAGMENTATION optional flags.

/// A vendor ID whose meaning we know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KnownVendor {
    /// Dead Peer Detection, RFC 3706 §5 (version 1.0).
    Dpd,
    /// NAT-T, RFC 3947: MD5("RFC 3947").
    NatTRfc3947,
    /// MD5("draft-ietf-ipsec-nat-t-ike-00").
    NatTDraft00,
    /// MD5("draft-ietf-ipsec-nat-t-ike-01").
    NatTDraft01,
    /// MD5("draft-ietf-ipsec-nat-t-ike-02").
    NatTDraft02,
    /// MD5("draft-ietf-ipsec-nat-t-ike-02\n"), the variant with a newline many peers send.
    NatTDraft02N,
    /// MD5("draft-ietf-ipsec-nat-t-ike-03").
    NatTDraft03,
    /// MD5("draft-ietf-ipsec-nat-t-ike-04") … 08: later drafts, advertised by some old peers.
    NatTDraft(u8),
    /// IKEv1 fragmentation: MD5("FRAGMENTATION"), optionally followed by a 32-bit flag word.
    Fragmentation,
    /// Cisco Unity: MD5("CISCO-UNITY") with a major/minor version in the last two bytes.
    CiscoUnity,
    /// XAuth: first 8 bytes of MD5("draft-ietf-ipsra-isakmp-xauth-06.txt").
    XAuth,
    /// strongSwan: MD5("strongSwan").
    StrongSwan,
    /// Windows: "MS NT5 ISAKMPOAKLEY" followed by a version.
    MsWindows,
}

const DPD: [u8; 16] = hex16("afcad71368a1f1c96b8696fc77570100");
const RFC3947: [u8; 16] = hex16("4a131c81070358455c5728f20e95452f");
const DRAFT00: [u8; 16] = hex16("4485152d18b6bbcd0be8a8469579ddcc");
const DRAFT01: [u8; 16] = hex16("16f6ca16e4a4066d83821a0f0aeaa862");
const DRAFT02: [u8; 16] = hex16("cd60464335df21f87cfdb2fc68b6a448");
const DRAFT02N: [u8; 16] = hex16("90cb80913ebb696e086381b5ec427b1f");
const DRAFT03: [u8; 16] = hex16("7d9419a65310ca6f2c179d9215529d56");
const LATER_DRAFTS: [(u8, [u8; 16]); 5] = [
    (4, hex16("9909b64eed937c6573de52ace952fa6b")),
    (5, hex16("80d0bb3def54565ee84645d4c85ce3ee")),
    (6, hex16("4d1e0e136deafa34c4f3ea9f02ec7285")),
    (7, hex16("439b59f8ba676c4c7737ae22eab8f582")),
    (8, hex16("8f8d83826d246b6fc7a8a6a428c11de8")),
];
const FRAGMENTATION: [u8; 16] = hex16("4048b7d56ebce88525e7de7f00d6c2d3");
/// Flag word after the FRAGMENTATION VID: fragmentation of Main/Aggressive Mode messages.
const FRAGMENTATION_IKE: u32 = 0x8000_0000;
const CISCO_UNITY: [u8; 16] = hex16("12f5f28c457168a9702d9fe274cc0100");
const XAUTH: [u8; 8] = [0x09, 0x00, 0x26, 0x89, 0xdf, 0xd6, 0xb7, 0x12];
const STRONGSWAN: [u8; 16] = hex16("882fe56d6fd20dbc2251613b2ebe5beb");
const MS_NT5: [u8; 16] = hex16("1e2b516905991c7d7c96fcbfb587e461");

/// Compile-time only (the table of constants below): a bad literal fails the build.
#[allow(clippy::arithmetic_side_effects, clippy::indexing_slicing)]
const fn hex16(s: &str) -> [u8; 16] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("bad hex in vendor ID table"),
        }
    }
    let b = s.as_bytes();
    assert!(b.len() == 32);
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        out[i] = nibble(b[2 * i]) << 4 | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

impl KnownVendor {
    pub fn name(&self) -> &'static str {
        match self {
            KnownVendor::Dpd => "DPD",
            KnownVendor::NatTRfc3947 => "NAT-T (RFC 3947)",
            KnownVendor::NatTDraft00 => "draft-ietf-ipsec-nat-t-ike-00",
            KnownVendor::NatTDraft01 => "draft-ietf-ipsec-nat-t-ike-01",
            KnownVendor::NatTDraft02 => "draft-ietf-ipsec-nat-t-ike-02",
            KnownVendor::NatTDraft02N => "draft-ietf-ipsec-nat-t-ike-02\\n",
            KnownVendor::NatTDraft03 => "draft-ietf-ipsec-nat-t-ike-03",
            KnownVendor::NatTDraft(4) => "draft-ietf-ipsec-nat-t-ike-04",
            KnownVendor::NatTDraft(5) => "draft-ietf-ipsec-nat-t-ike-05",
            KnownVendor::NatTDraft(6) => "draft-ietf-ipsec-nat-t-ike-06",
            KnownVendor::NatTDraft(7) => "draft-ietf-ipsec-nat-t-ike-07",
            KnownVendor::NatTDraft(8) => "draft-ietf-ipsec-nat-t-ike-08",
            KnownVendor::NatTDraft(_) => "draft-ietf-ipsec-nat-t-ike",
            KnownVendor::Fragmentation => "FRAGMENTATION",
            KnownVendor::CiscoUnity => "Cisco Unity",
            KnownVendor::XAuth => "XAuth",
            KnownVendor::StrongSwan => "strongSwan",
            KnownVendor::MsWindows => "MS NT5 ISAKMPOAKLEY",
        }
    }

    /// The NAT-T drafts 02/02\n/03 whose payload types (130/131) and UDP encapsulation modes
    /// (61443/61444) we speak; older and later drafts differ in details and are not used.
    pub fn is_nat_t_draft(&self) -> bool {
        matches!(
            self,
            KnownVendor::NatTDraft02 | KnownVendor::NatTDraft02N | KnownVendor::NatTDraft03
        )
    }
}

/// Recognises a received vendor ID. DPD and Cisco Unity match on their first 14 bytes (the
/// last two are a version); FRAGMENTATION is 16 bytes, or 20 with the IKE-fragmentation flag.
pub fn recognise(vid: &[u8]) -> Option<KnownVendor> {
    let exact: [(&[u8], KnownVendor); 10] = [
        (&RFC3947, KnownVendor::NatTRfc3947),
        (&DRAFT00, KnownVendor::NatTDraft00),
        (&DRAFT01, KnownVendor::NatTDraft01),
        (&DRAFT02, KnownVendor::NatTDraft02),
        (&DRAFT02N, KnownVendor::NatTDraft02N),
        (&DRAFT03, KnownVendor::NatTDraft03),
        (&XAUTH, KnownVendor::XAuth),
        (&STRONGSWAN, KnownVendor::StrongSwan),
        (&DPD, KnownVendor::Dpd),
        (&CISCO_UNITY, KnownVendor::CiscoUnity),
    ];
    if let Some((_, k)) = exact.iter().find(|(v, _)| *v == vid) {
        return Some(*k);
    }
    if let Some((n, _)) = LATER_DRAFTS.iter().find(|(_, v)| v.as_slice() == vid) {
        return Some(KnownVendor::NatTDraft(*n));
    }
    let prefix14 = vid.get(..14);
    if vid.len() == 16 && prefix14 == DPD.get(..14) {
        return Some(KnownVendor::Dpd);
    }
    if vid.len() == 16 && prefix14 == CISCO_UNITY.get(..14) {
        return Some(KnownVendor::CiscoUnity);
    }
    if vid.get(..16) == Some(FRAGMENTATION.as_slice()) {
        match vid.get(16..) {
            Some([]) => return Some(KnownVendor::Fragmentation),
            Some(&[a, b, c, d]) if u32::from_be_bytes([a, b, c, d]) & FRAGMENTATION_IKE != 0 => {
                return Some(KnownVendor::Fragmentation)
            }
            _ => {}
        }
    }
    if vid.len() >= 16 && vid.get(..16) == Some(MS_NT5.as_slice()) {
        return Some(KnownVendor::MsWindows);
    }
    None
}

/// The bytes we send for a vendor ID (FRAGMENTATION with the IKE-fragmentation flag word).
pub fn vid_bytes(v: KnownVendor) -> Vec<u8> {
    match v {
        KnownVendor::Dpd => DPD.to_vec(),
        KnownVendor::NatTRfc3947 => RFC3947.to_vec(),
        KnownVendor::NatTDraft00 => DRAFT00.to_vec(),
        KnownVendor::NatTDraft01 => DRAFT01.to_vec(),
        KnownVendor::NatTDraft02 => DRAFT02.to_vec(),
        KnownVendor::NatTDraft02N => DRAFT02N.to_vec(),
        KnownVendor::NatTDraft03 => DRAFT03.to_vec(),
        KnownVendor::NatTDraft(n) => LATER_DRAFTS
            .iter()
            .find(|(d, _)| *d == n)
            .map(|(_, v)| v.to_vec())
            .unwrap_or_else(|| DRAFT02.to_vec()),
        KnownVendor::Fragmentation => {
            [FRAGMENTATION.as_slice(), &FRAGMENTATION_IKE.to_be_bytes()].concat()
        }
        KnownVendor::CiscoUnity => CISCO_UNITY.to_vec(),
        KnownVendor::XAuth => XAUTH.to_vec(),
        KnownVendor::StrongSwan => STRONGSWAN.to_vec(),
        KnownVendor::MsWindows => [MS_NT5.as_slice(), &[0, 0, 0, 9]].concat(),
    }
}

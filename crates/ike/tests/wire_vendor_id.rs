//! Vendor IDs against their published values (RFC 3706 §5, RFC 3947 §3.1, the NAT-T drafts,
//! Cisco Unity, XAuth, strongSwan, the IKE fragmentation extension).

use ferrovpn_ike::wire::vendor_id::{recognise, vid_bytes};
use ferrovpn_ike::wire::KnownVendor;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

#[test]
fn published_values_are_recognised() {
    let table = [
        ("afcad71368a1f1c96b8696fc77570100", KnownVendor::Dpd),
        ("4a131c81070358455c5728f20e95452f", KnownVendor::NatTRfc3947),
        ("4485152d18b6bbcd0be8a8469579ddcc", KnownVendor::NatTDraft00),
        ("16f6ca16e4a4066d83821a0f0aeaa862", KnownVendor::NatTDraft01),
        ("cd60464335df21f87cfdb2fc68b6a448", KnownVendor::NatTDraft02),
        (
            "90cb80913ebb696e086381b5ec427b1f",
            KnownVendor::NatTDraft02N,
        ),
        ("7d9419a65310ca6f2c179d9215529d56", KnownVendor::NatTDraft03),
        (
            "8f8d83826d246b6fc7a8a6a428c11de8",
            KnownVendor::NatTDraft(8),
        ),
        ("12f5f28c457168a9702d9fe274cc0100", KnownVendor::CiscoUnity),
        ("09002689dfd6b712", KnownVendor::XAuth),
        ("882fe56d6fd20dbc2251613b2ebe5beb", KnownVendor::StrongSwan),
        (
            "4048b7d56ebce88525e7de7f00d6c2d3",
            KnownVendor::Fragmentation,
        ),
        (
            "4048b7d56ebce88525e7de7f00d6c2d380000000",
            KnownVendor::Fragmentation,
        ),
        (
            "4048b7d56ebce88525e7de7f00d6c2d3c0000000",
            KnownVendor::Fragmentation,
        ),
        (
            "1e2b516905991c7d7c96fcbfb587e46100000009",
            KnownVendor::MsWindows,
        ),
    ];
    for (hex, want) in table {
        assert_eq!(recognise(&h(hex)), Some(want), "{hex}");
    }
}

#[test]
fn versioned_ids_match_on_their_prefix() {
    // DPD 1.x and Cisco Unity 1.x carry the version in the last two bytes.
    assert_eq!(
        recognise(&h("afcad71368a1f1c96b8696fc77570101")),
        Some(KnownVendor::Dpd)
    );
    assert_eq!(
        recognise(&h("12f5f28c457168a9702d9fe274cc0200")),
        Some(KnownVendor::CiscoUnity)
    );
}

#[test]
fn near_misses_are_not_recognised() {
    assert_eq!(recognise(&[]), None);
    assert_eq!(recognise(&h("4a131c81070358455c5728f20e95452e")), None);
    assert_eq!(recognise(&h("4a131c81070358455c5728f20e95452f00")), None);
    assert_eq!(recognise(&h("09002689dfd6b7")), None);
    // FRAGMENTATION with a flag word lacking the IKE-fragmentation bit.
    assert_eq!(
        recognise(&h("4048b7d56ebce88525e7de7f00d6c2d340000000")),
        None
    );
}

#[test]
fn what_we_send_is_what_we_recognise() {
    assert_eq!(
        vid_bytes(KnownVendor::Dpd),
        h("afcad71368a1f1c96b8696fc77570100")
    );
    assert_eq!(
        vid_bytes(KnownVendor::NatTRfc3947),
        h("4a131c81070358455c5728f20e95452f")
    );
    assert_eq!(
        vid_bytes(KnownVendor::NatTDraft02),
        h("cd60464335df21f87cfdb2fc68b6a448")
    );
    assert_eq!(
        vid_bytes(KnownVendor::NatTDraft02N),
        h("90cb80913ebb696e086381b5ec427b1f")
    );
    assert_eq!(
        vid_bytes(KnownVendor::Fragmentation),
        h("4048b7d56ebce88525e7de7f00d6c2d380000000")
    );
    let all = [
        KnownVendor::Dpd,
        KnownVendor::NatTRfc3947,
        KnownVendor::NatTDraft00,
        KnownVendor::NatTDraft01,
        KnownVendor::NatTDraft02,
        KnownVendor::NatTDraft02N,
        KnownVendor::NatTDraft03,
        KnownVendor::NatTDraft(4),
        KnownVendor::NatTDraft(7),
        KnownVendor::Fragmentation,
        KnownVendor::CiscoUnity,
        KnownVendor::XAuth,
        KnownVendor::StrongSwan,
        KnownVendor::MsWindows,
    ];
    for k in all {
        assert_eq!(recognise(&vid_bytes(k)), Some(k), "{}", k.name());
    }
}

#[test]
fn only_drafts_02_and_03_count_as_the_nat_t_draft_we_speak() {
    assert!(KnownVendor::NatTDraft02N.is_nat_t_draft());
    assert!(KnownVendor::NatTDraft03.is_nat_t_draft());
    assert!(!KnownVendor::NatTDraft00.is_nat_t_draft());
    assert!(!KnownVendor::NatTRfc3947.is_nat_t_draft());
    assert_eq!(
        KnownVendor::NatTDraft02N.name(),
        "draft-ietf-ipsec-nat-t-ike-02\\n"
    );
}

//! ISAKMP codec against hand-built messages laid out per RFC 2408 §3, RFC 2407 §4 and RFC 3947.

use std::net::Ipv4Addr;

use ferrovpn_ike::wire::{
    attr, emit_payloads, parse_payloads, payload_list, vendor_id, Attribute, AttributeValue,
    Delete, ExchangeType, Flags, Fragment, Header, HeaderView, IdType, IdValue, Identification,
    KnownVendor, Message, Notification, NotifyType, Payload, PayloadIter, PayloadType, ProtocolId,
    IPSEC_DOI, SIT_IDENTITY_ONLY,
};

/// Hex with whitespace and `|` separators ignored.
fn h(s: &str) -> Vec<u8> {
    let clean: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    hex::decode(clean).unwrap()
}

/// MM1 as strongSwan sends it, but with three proposals of one transform each, and five VIDs.
fn mm1() -> Vec<u8> {
    h("
    0102030405060708 0000000000000000 01 10 02 00 00000000 00000118
    0d 00 009c  00000001 00000001
      02 00 0030  01 01 00 01
        00 00 0028  01 01 0000  8001 0007 800e 0100 8002 0004 8003 0001 800e 0100 800b 0001 000c 0004 00007080
      02 00 0030  02 01 00 01
        00 00 0028  01 01 0000  8001 0007 800e 0080 8002 0002 8003 0001 8004 000e 800b 0001 000c 0004 00007080
      00 00 0030  03 01 00 01
        00 00 0028  01 01 0000  8001 0007 800e 0080 8002 0004 8003 0001 8004 0013 800b 0001 000c 0004 00015180
    0d 00 000c  09002689dfd6b712
    0d 00 0014  afcad71368a1f1c96b8696fc77570100
    0d 00 0018  4048b7d56ebce88525e7de7f00d6c2d3 80000000
    0d 00 0014  4a131c81070358455c5728f20e95452f
    00 00 0014  90cb80913ebb696e086381b5ec427b1f
    ")
}

#[test]
fn mm1_with_three_proposals_and_five_vids_parses_and_round_trips() {
    let bytes = mm1();
    let msg = Message::parse(&bytes).unwrap();
    assert_eq!(msg.header.initiator_spi, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(msg.header.responder_spi, [0; 8]);
    assert_eq!(msg.header.exchange, ExchangeType::IDENTITY_PROTECTION);
    assert_eq!(msg.header.version, 0x10);
    assert_eq!(msg.header.length, 0x118);
    assert_eq!(payload_list(&msg.payloads), "[ SA V V V V V ]");

    let Payload::Sa(sa) = &msg.payloads[0] else {
        panic!("first payload is not SA")
    };
    assert_eq!((sa.doi, sa.situation), (IPSEC_DOI, SIT_IDENTITY_ONLY));
    assert_eq!(sa.proposals.len(), 3);
    assert_eq!(
        sa.proposals.iter().map(|p| p.number).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let p3 = &sa.proposals[2];
    assert_eq!(p3.protocol, ProtocolId::ISAKMP);
    assert!(p3.spi.is_empty());
    let t = &p3.transforms[0];
    assert_eq!(t.transform_id, 1);
    assert_eq!(
        t.attribute(attr::ike::GROUP_DESCRIPTION).unwrap().as_u64(),
        Some(19)
    );
    assert_eq!(
        t.attribute(attr::ike::LIFE_DURATION).unwrap().as_u64(),
        Some(86400)
    );
    assert_eq!(
        t.attribute(attr::ike::LIFE_DURATION).unwrap().value,
        AttributeValue::Variable(vec![0, 1, 0x51, 0x80])
    );

    let vendors: Vec<_> = msg
        .payloads
        .iter()
        .filter_map(|p| match p {
            Payload::VendorId(v) => vendor_id::recognise(v),
            _ => None,
        })
        .collect();
    assert_eq!(
        vendors,
        [
            KnownVendor::XAuth,
            KnownVendor::Dpd,
            KnownVendor::Fragmentation,
            KnownVendor::NatTRfc3947,
            KnownVendor::NatTDraft02N
        ]
    );
    assert_eq!(msg.emit(), bytes);
}

#[test]
fn header_view_exposes_fields_and_body() {
    let bytes = mm1();
    let v = HeaderView::new_checked(&bytes[..]).unwrap();
    assert_eq!(v.next_payload(), PayloadType::SA);
    assert_eq!(v.exchange(), ExchangeType::IDENTITY_PROTECTION);
    assert_eq!(v.flags(), Flags(0));
    assert_eq!(v.message_id(), 0);
    assert_eq!(v.length() as usize, bytes.len());
    assert_eq!(v.body(), &bytes[28..]);
    assert_eq!(Header::parse(&bytes).unwrap(), v.header());
    let mut out = Vec::new();
    v.header().emit(&mut out);
    assert_eq!(out, &bytes[..Header::LEN]);
}

/// Builds a generic payload: next, RESERVED, length, body.
fn pl(next: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![next, 0];
    v.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn message(exchange: u8, flags: u8, msgid: u32, first: u8, chain: &[u8]) -> Vec<u8> {
    let mut v = h("a1a2a3a4a5a6a7a8 b1b2b3b4b5b6b7b8");
    v.extend_from_slice(&[first, 0x10, exchange, flags]);
    v.extend_from_slice(&msgid.to_be_bytes());
    v.extend_from_slice(&((chain.len() + 28) as u32).to_be_bytes());
    v.extend_from_slice(chain);
    v
}

/// QM1 payloads HASH(1), SA, Ni, KE, IDci, IDcr (RFC 2409 §5.5), shown decrypted.
fn qm1_chain() -> Vec<u8> {
    let sa = h("
        00000001 00000001
        00 00 002c  01 03 04 01  c0ffee01
          00 00 0020  01 0c 0000  8001 0001 8002 0e10 8004 0001 8005 000c 8006 0080 8003 000e
    ");
    [
        pl(1, &[0x11; 32]),
        pl(10, &sa),
        pl(4, &[0x22; 16]),
        pl(5, &[0x33; 256]),
        pl(5, &h("04 00 0000 c6336400 ffffff00")),
        pl(0, &h("04 11 01f4 cb007100 ffffff00")),
    ]
    .concat()
}

#[test]
fn qm1_parses_into_typed_payloads_and_round_trips() {
    let bytes = message(32, 0, 0x0102_0304, 8, &qm1_chain());
    let msg = Message::parse(&bytes).unwrap();
    assert_eq!(msg.header.exchange, ExchangeType::QUICK_MODE);
    assert_eq!(payload_list(&msg.payloads), "[ HASH SA No KE ID ID ]");
    let Payload::Sa(sa) = &msg.payloads[1] else {
        panic!()
    };
    let p = &sa.proposals[0];
    assert_eq!(
        (p.protocol, p.spi.as_slice()),
        (ProtocolId::ESP, &[0xc0, 0xff, 0xee, 0x01][..])
    );
    let t = &p.transforms[0];
    assert_eq!(t.transform_id, 12);
    assert_eq!(
        t.attribute(attr::ipsec::ENCAPSULATION_MODE)
            .unwrap()
            .as_u64(),
        Some(u64::from(attr::encap_mode::TUNNEL))
    );
    assert_eq!(
        t.attribute(attr::ipsec::SA_LIFE_DURATION).unwrap().as_u64(),
        Some(3600)
    );
    let Payload::Identification(idci) = &msg.payloads[4] else {
        panic!()
    };
    assert_eq!(
        idci.value().unwrap(),
        IdValue::Ipv4Subnet(
            Ipv4Addr::new(198, 51, 100, 0),
            Ipv4Addr::new(255, 255, 255, 0)
        )
    );
    assert_eq!(idci.value().unwrap().to_string(), "198.51.100.0/24");
    let Payload::Identification(idcr) = &msg.payloads[5] else {
        panic!()
    };
    assert_eq!((idcr.protocol, idcr.port), (17, 500));
    assert_eq!(msg.emit(), bytes);

    // The same chain with the E flag set is refused by the plaintext parser…
    let enc = message(32, 1, 0x0102_0304, 8, &qm1_chain());
    assert_eq!(
        Message::parse(&enc),
        Err(ferrovpn_ike::wire::WireError::Encrypted)
    );
    // …while the decrypted body, padding included, goes through parse_payloads/PayloadIter.
    let mut padded = qm1_chain();
    padded.extend_from_slice(&[0, 0, 0, 7]);
    assert_eq!(
        parse_payloads(PayloadType::HASH, &padded).unwrap(),
        msg.payloads
    );
    let mut it = PayloadIter::new(PayloadType::HASH, &padded);
    let raws: Vec<_> = it.by_ref().map(Result::unwrap).collect();
    assert_eq!(raws.len(), 6);
    assert_eq!(raws[1].payload_type, PayloadType::SA);
    assert_eq!(raws[1].next_payload, PayloadType::NONCE);
    assert_eq!(raws[1].offset, 36);
    assert_eq!(raws[5].next_payload, PayloadType::NONE);
    assert_eq!(it.trailing(), &[0, 0, 0, 7]);
}

#[test]
fn informational_with_hash_notification_and_delete_round_trips() {
    let n = h("00000001 01 10 8d28 a1a2a3a4a5a6a7a8b1b2b3b4b5b6b7b8 0000002a");
    let d = h("00000001 03 04 0002 c0ffee01 c0ffee02");
    let chain = [pl(11, &[0x44; 20]), pl(12, &n), pl(0, &d)].concat();
    let bytes = message(5, 0, 0x7777_0000, 8, &chain);
    let msg = Message::parse(&bytes).unwrap();
    assert_eq!(payload_list(&msg.payloads), "[ HASH N(DPD) D ]");
    assert_eq!(
        msg.payloads[1],
        Payload::Notification(Notification {
            doi: 1,
            protocol: ProtocolId::ISAKMP,
            notify_type: NotifyType::R_U_THERE,
            spi: h("a1a2a3a4a5a6a7a8b1b2b3b4b5b6b7b8"),
            data: vec![0, 0, 0, 0x2a],
        })
    );
    assert_eq!(
        msg.payloads[2],
        Payload::Delete(Delete {
            doi: 1,
            protocol: ProtocolId::ESP,
            spi_size: 4,
            spis: vec![h("c0ffee01"), h("c0ffee02")]
        })
    );
    assert_eq!(msg.emit(), bytes);
}

#[test]
fn nat_d_nat_oa_fragment_cert_and_private_payloads_round_trip() {
    let chain = [
        // Each body belongs to the type named by the previous next-payload field.
        pl(20, &[0x55; 20]),               // NAT-D (20)
        pl(130, &[0x66; 20]),              // NAT-D (20)
        pl(21, &[0x77; 20]),               // NAT-D draft (130)
        pl(131, &h("01 000000 c0000201")), // NAT-OA (21)
        pl(6, &h("01 000000 c0000202")),   // NAT-OA draft (131)
        pl(7, &h("04 3082")),              // CERT
        pl(200, &h("0102")),               // CR
        pl(0, &h("09 deadbeef")),          // private 200
    ]
    .concat();
    let bytes = message(2, 0, 0, 20, &chain);
    let msg = Message::parse(&bytes).unwrap();
    assert_eq!(
        payload_list(&msg.payloads),
        "[ NAT-D NAT-D NAT-D NAT-OA NAT-OA CERT CERTREQ U(200) ]"
    );
    assert_eq!(
        msg.payloads[0],
        Payload::NatD {
            draft: false,
            hash: vec![0x55; 20]
        }
    );
    assert_eq!(
        msg.payloads[2],
        Payload::NatD {
            draft: true,
            hash: vec![0x77; 20]
        }
    );
    let Payload::NatOa { draft: true, id } = &msg.payloads[4] else {
        panic!()
    };
    assert_eq!(
        id.value().unwrap(),
        IdValue::Ipv4(Ipv4Addr::new(192, 0, 2, 2))
    );
    assert_eq!(msg.emit(), bytes);

    let frag = message(2, 0, 0, 132, &pl(0, &h("0007 02 01 cafe")));
    let msg = Message::parse(&frag).unwrap();
    assert_eq!(
        msg.payloads,
        [Payload::Fragment(Fragment {
            id: 7,
            number: 2,
            last: true,
            data: h("cafe")
        })]
    );
    assert_eq!(payload_list(&msg.payloads), "[ FRAG ]");
    assert_eq!(msg.emit(), frag);
}

#[test]
fn emit_payloads_fills_next_and_length_fields() {
    let payloads = vec![
        Payload::KeyExchange(vec![1; 3]),
        Payload::Nonce(vec![2; 2]),
        Payload::VendorId(vendor_id::vid_bytes(KnownVendor::Dpd)),
    ];
    let mut out = Vec::new();
    assert_eq!(emit_payloads(&payloads, &mut out), PayloadType::KE);
    assert_eq!(
        out,
        [
            pl(10, &[1; 3]),
            pl(13, &[2; 2]),
            pl(0, &vendor_id::vid_bytes(KnownVendor::Dpd))
        ]
        .concat()
    );
    assert_eq!(emit_payloads(&[], &mut Vec::new()), PayloadType::NONE);
}

#[test]
fn emit_body_of_identification_is_what_phase1_hashes_cover() {
    let id = Identification::new(&IdValue::Fqdn("vpn.example".into()), 17, 500);
    assert_eq!(id.id_type, IdType::FQDN);
    let mut out = Vec::new();
    Payload::Identification(id).emit_body(&mut out);
    assert_eq!(out, [&h("02 11 01f4")[..], b"vpn.example"].concat());
}

#[test]
fn attributes_choose_basic_or_variable_encoding() {
    assert_eq!(
        Attribute::from_u64(2, 3600).value,
        AttributeValue::Basic(3600)
    );
    assert_eq!(
        Attribute::from_u64(2, 86400).value,
        AttributeValue::Variable(vec![0, 1, 0x51, 0x80])
    );
    assert_eq!(
        Attribute::from_u64(2, 1 << 40).value,
        AttributeValue::Variable(vec![0, 0, 1, 0, 0, 0, 0, 0])
    );
    assert_eq!(Attribute::from_u64(2, 1 << 40).as_u64(), Some(1 << 40));
    let long = Attribute {
        attr_type: 9,
        value: AttributeValue::Variable(vec![1; 9]),
    };
    assert_eq!(long.as_u64(), None);
    assert_eq!(
        Attribute {
            attr_type: 9,
            value: AttributeValue::Variable(vec![])
        }
        .as_u64(),
        None
    );
}

#[test]
fn names_match_the_registries_and_strongswan_logs() {
    assert_eq!(NotifyType::NO_PROPOSAL_CHOSEN.name(), "NO-PROPOSAL-CHOSEN");
    assert_eq!(NotifyType(30).name(), "UNEQUAL-PAYLOAD-LENGTHS");
    assert!(NotifyType::PAYLOAD_MALFORMED.is_error());
    assert!(!NotifyType::INITIAL_CONTACT.is_error());
    assert_eq!(NotifyType(9999).to_string(), "NOTIFY(9999)");
    assert_eq!(ExchangeType::IDENTITY_PROTECTION.name(), "ID_PROT");
    assert_eq!(ExchangeType::QUICK_MODE.to_string(), "QUICK_MODE");
    assert_eq!(PayloadType::NONCE.name(), "No");
    assert_eq!(PayloadType::NAT_D_DRAFT.name(), "NAT-D");
    assert!(Flags(Flags::ENCRYPTION | Flags::COMMIT).contains(Flags::COMMIT));
    assert!(!Flags(Flags::ENCRYPTION).contains(Flags::COMMIT));
}

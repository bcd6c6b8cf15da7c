//! Every malformed input gets its typed error and the notify RFC 2408 §5 prescribes.

use ferrovpn_ike::wire::{
    Header, Message, NotifyType, Payload, PayloadIter, PayloadType, WireError,
};

fn h(s: &str) -> Vec<u8> {
    let clean: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    hex::decode(clean).unwrap()
}

fn pl(next: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![next, 0];
    v.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn message_with(flags: u8, first: u8, chain: &[u8]) -> Vec<u8> {
    let mut v = vec![0xaa; 8];
    v.extend_from_slice(&[0; 8]);
    v.extend_from_slice(&[first, 0x10, 2, flags, 0, 0, 0, 0]);
    v.extend_from_slice(&((chain.len() + 28) as u32).to_be_bytes());
    v.extend_from_slice(chain);
    v
}

fn message(first: u8, chain: &[u8]) -> Vec<u8> {
    message_with(0, first, chain)
}

/// SA body (DOI 1, SIT_IDENTITY_ONLY) around the given proposal chain.
fn sa(proposals: &str) -> Vec<u8> {
    [h("00000001 00000001"), h(proposals)].concat()
}

const GOOD_PROPOSAL: &str = "00 00 0014  01 01 00 01  00 00 000c 01 01 0000 8001 0007";

fn sa_message(proposals: &str) -> Vec<u8> {
    message(1, &pl(0, &sa(proposals)))
}

fn with_header_len(mut m: Vec<u8>, len: u32) -> Vec<u8> {
    m[24..28].copy_from_slice(&len.to_be_bytes());
    m
}

fn bad_len(what: &'static str) -> impl Fn(&WireError) -> bool {
    move |e| matches!(e, WireError::BadLength { what: w, .. } if *w == what)
}

fn is(expected: WireError) -> impl Fn(&WireError) -> bool {
    move |e| *e == expected
}

#[test]
fn the_good_base_messages_parse() {
    Message::parse(&sa_message(GOOD_PROPOSAL)).unwrap();
    Message::parse(&message(13, &pl(0, b"vid"))).unwrap();
}

#[test]
fn malformed_inputs_give_typed_errors() {
    let good = sa_message(GOOD_PROPOSAL);
    let len = good.len() as u32;
    let mut extra = good.clone();
    extra.push(0);
    let mut v2 = good.clone();
    v2[17] = 0x20;
    let mut zero_len_payload = message(13, &pl(0, b"abcd"));
    zero_len_payload[30..32].copy_from_slice(&[0, 0]);
    let mut short_payload = message(13, &pl(0, b"abcd"));
    short_payload[30..32].copy_from_slice(&[0, 3]);
    let mut long_payload = message(13, &pl(0, b"abcd"));
    long_payload[30..32].copy_from_slice(&[0, 9]);
    let mut critical_private = message(200, &pl(0, b"x"));
    critical_private[29] = 0x80;
    let sixty_five_vids: Vec<u8> = (0..65)
        .flat_map(|i| pl(if i == 64 { 0 } else { 13 }, b"v"))
        .collect();
    let mut trailing = pl(0, b"vid");
    trailing.extend_from_slice(&[0, 0, 0, 0]);

    type Check = Box<dyn Fn(&WireError) -> bool>;
    let cases: Vec<(&str, Vec<u8>, Check)> = vec![
        (
            "header shorter than 28 bytes",
            good[..20].to_vec(),
            Box::new(is(WireError::Truncated)),
        ),
        ("empty datagram", vec![], Box::new(is(WireError::Truncated))),
        (
            "header length beyond the datagram",
            with_header_len(good.clone(), len + 1),
            Box::new(is(WireError::Truncated)),
        ),
        (
            "bytes after the header length",
            extra,
            Box::new(bad_len("message")),
        ),
        (
            "header length below 28",
            with_header_len(good.clone(), 27),
            Box::new(bad_len("message")),
        ),
        (
            "major version 2",
            v2,
            Box::new(is(WireError::UnsupportedVersion(0x20))),
        ),
        (
            "zero-length payload",
            zero_len_payload,
            Box::new(bad_len("payload")),
        ),
        (
            "payload length 3",
            short_payload,
            Box::new(bad_len("payload")),
        ),
        (
            "payload length past the end",
            long_payload,
            Box::new(bad_len("payload")),
        ),
        (
            "generic header cut short",
            message(13, &[0, 0]),
            Box::new(is(WireError::Truncated)),
        ),
        (
            "chain claims a next payload that is missing",
            message(13, &pl(13, b"v")),
            Box::new(is(WireError::Truncated)),
        ),
        (
            "unknown payload type 15",
            message(15, &pl(0, b"x")),
            Box::new(is(WireError::UnsupportedPayload(15))),
        ),
        (
            "unknown payload type 127",
            message(127, &pl(0, b"x")),
            Box::new(is(WireError::UnsupportedPayload(127))),
        ),
        (
            "private payload marked critical",
            critical_private,
            Box::new(is(WireError::UnsupportedPayload(200))),
        ),
        (
            "65 payloads",
            message(13, &sixty_five_vids),
            Box::new(is(WireError::TooManyPayloads)),
        ),
        (
            "encrypted message",
            message_with(1, 13, &pl(0, b"vid")),
            Box::new(is(WireError::Encrypted)),
        ),
        (
            "bytes after the last payload",
            message(13, &trailing),
            Box::new(bad_len("message")),
        ),
        (
            "fewer transforms than declared",
            sa_message("00 00 0014  01 01 00 02  00 00 000c 01 01 0000 8001 0007"),
            Box::new(is(WireError::TransformCount {
                declared: 2,
                found: 1,
            })),
        ),
        (
            "more transforms than declared",
            sa_message("00 00 0018  01 01 00 01  03 00 0008 01 01 0000  00 00 0008 02 01 0000"),
            Box::new(is(WireError::TransformCount {
                declared: 1,
                found: 2,
            })),
        ),
        (
            "proposal without transforms",
            sa_message("00 00 0008  01 01 00 00"),
            Box::new(is(WireError::BadProposalSyntax(
                "proposal without transforms",
            ))),
        ),
        (
            "proposal length beyond the SA",
            sa_message("00 00 0015  01 01 00 01  00 00 000c 01 01 0000 8001 0007"),
            Box::new(bad_len("proposal")),
        ),
        (
            "proposal length shorter than its transforms",
            sa_message("00 00 0013  01 01 00 01  00 00 000c 01 01 0000 8001 0007 00"),
            Box::new(bad_len("transform")),
        ),
        (
            "proposal length below 4",
            sa_message("00 00 0002  01 01 00 01  00 00 000c 01 01 0000 8001 0007"),
            Box::new(bad_len("proposal")),
        ),
        (
            "bytes in the proposal after its last transform",
            sa_message("00 00 0016  01 01 00 01  00 00 000c 01 01 0000 8001 0007 0000"),
            Box::new(bad_len("proposal")),
        ),
        (
            "transform length beyond the proposal",
            sa_message("00 00 0014  01 01 00 01  00 00 000d 01 01 0000 8001 0007"),
            Box::new(bad_len("transform")),
        ),
        (
            "transform length cutting an attribute",
            sa_message("00 00 0014  01 01 00 01  00 00 000a 01 01 0000 8001 0007"),
            Box::new(bad_len("attribute")),
        ),
        (
            "bytes in the SA after its last proposal",
            sa_message("00 00 0014  01 01 00 01  00 00 000c 01 01 0000 8001 0007  00000000"),
            Box::new(bad_len("SA")),
        ),
        (
            "proposal announcing a following proposal that is missing",
            sa_message("02 00 0014  01 01 00 01  00 00 000c 01 01 0000 8001 0007"),
            Box::new(is(WireError::Truncated)),
        ),
        (
            "proposal followed by a KE",
            sa_message("04 00 0014  01 01 00 01  00 00 000c 01 01 0000 8001 0007"),
            Box::new(|e: &WireError| matches!(e, WireError::BadProposalSyntax(_))),
        ),
        (
            "transform followed by a proposal",
            sa_message("00 00 0014  01 01 00 01  02 00 000c 01 01 0000 8001 0007"),
            Box::new(|e: &WireError| matches!(e, WireError::BadProposalSyntax(_))),
        ),
        (
            "ESP proposal with a 3-byte SPI",
            sa_message("00 00 0017  01 03 03 01  aabbcc  00 00 000c 01 0c 0000 8001 0001"),
            Box::new(is(WireError::BadSpiSize {
                protocol: 3,
                size: 3,
            })),
        ),
        (
            "SPI size past the proposal",
            sa_message("00 00 000a  01 01 10 01  0000"),
            Box::new(bad_len("proposal SPI")),
        ),
        (
            "SA without proposals",
            message(1, &pl(0, &sa(""))),
            Box::new(|e: &WireError| matches!(e, WireError::BadProposalSyntax(_))),
        ),
        (
            "variable attribute of 65 bytes",
            {
                let attr = [h("000c 0041"), vec![0; 65]].concat();
                let t = [h("01 01 0000"), attr].concat();
                let p = [h("01 01 00 01"), pl(0, &t)].concat();
                message(1, &pl(0, &[h("00000001 00000001"), pl(0, &p)].concat()))
            },
            Box::new(is(WireError::AttributeTooLong)),
        ),
        (
            "variable attribute longer than its transform",
            sa_message("00 00 0018  01 01 00 01  00 00 0010 01 01 0000 000c 0008 00007080"),
            Box::new(bad_len("attribute")),
        ),
        (
            "SA in another DOI",
            message(1, &pl(0, &h("00000002 00000001"))),
            Box::new(is(WireError::UnsupportedDoi(2))),
        ),
        (
            "labelled situation",
            message(1, &pl(0, &h("00000001 00000002"))),
            Box::new(is(WireError::UnsupportedSituation(2))),
        ),
        (
            "SA shorter than DOI and situation",
            message(1, &pl(0, &h("00000001"))),
            Box::new(is(WireError::Truncated)),
        ),
        (
            "IPv4 ID with 5 bytes",
            message(5, &pl(0, &h("01 00 0000 c000020101"))),
            Box::new(is(WireError::BadIdLength {
                id_type: 1,
                length: 5,
            })),
        ),
        (
            "IPv4 subnet ID with 4 bytes",
            message(5, &pl(0, &h("04 00 0000 c0000201"))),
            Box::new(is(WireError::BadIdLength {
                id_type: 4,
                length: 4,
            })),
        ),
        (
            "IPv6 range ID with 16 bytes",
            message(5, &pl(0, &[h("08 00 0000"), vec![0; 16]].concat())),
            Box::new(is(WireError::BadIdLength {
                id_type: 8,
                length: 16,
            })),
        ),
        (
            "ID shorter than its fixed part",
            message(5, &pl(0, &h("01 00"))),
            Box::new(is(WireError::Truncated)),
        ),
        (
            "notify shorter than its fixed part",
            message(11, &pl(0, &h("00000001 01 00"))),
            Box::new(is(WireError::Malformed("N"))),
        ),
        (
            "notify SPI size past the payload",
            message(11, &pl(0, &h("00000001 03 04 0018 aabbcc"))),
            Box::new(bad_len("notify SPI")),
        ),
        (
            "delete with fewer SPIs than counted",
            message(12, &pl(0, &h("00000001 03 04 0002 c0ffee01"))),
            Box::new(bad_len("delete SPIs")),
        ),
        (
            "delete with bytes after its SPIs",
            message(12, &pl(0, &h("00000001 03 04 0001 c0ffee01 00"))),
            Box::new(bad_len("delete SPIs")),
        ),
        (
            "delete with SPI size 0 and a count",
            message(12, &pl(0, &h("00000001 03 00 0001"))),
            Box::new(is(WireError::BadSpiSize {
                protocol: 3,
                size: 0,
            })),
        ),
        (
            "NAT-OA carrying an FQDN",
            message(20 + 1, &pl(0, &h("02 000000 6162"))),
            Box::new(is(WireError::Malformed("NAT-OA"))),
        ),
        (
            "fragment shorter than its fixed part",
            message(132, &pl(0, &h("0001 01"))),
            Box::new(is(WireError::Malformed("FRAG"))),
        ),
        (
            "certificate without encoding",
            message(6, &pl(0, &[])),
            Box::new(is(WireError::Malformed("CERT"))),
        ),
    ];
    for (name, bytes, check) in &cases {
        match Message::parse(bytes) {
            Err(e) => assert!(check(&e), "{name}: unexpected error {e:?}"),
            Ok(m) => panic!("{name}: parsed as {m:?}"),
        }
    }
}

#[test]
fn errors_map_to_the_notify_peers_expect() {
    assert_eq!(
        WireError::UnsupportedPayload(15).notify(),
        NotifyType::INVALID_PAYLOAD_TYPE
    );
    assert_eq!(
        WireError::UnsupportedVersion(0x20).notify(),
        NotifyType::INVALID_MAJOR_VERSION
    );
    assert_eq!(WireError::Truncated.notify(), NotifyType::PAYLOAD_MALFORMED);
    assert_eq!(
        WireError::BadLength {
            what: "payload",
            length: 0,
            available: 4
        }
        .notify(),
        NotifyType::PAYLOAD_MALFORMED
    );
    assert_eq!(
        WireError::TransformCount {
            declared: 2,
            found: 1
        }
        .notify(),
        NotifyType::BAD_PROPOSAL_SYNTAX
    );
    assert_eq!(
        WireError::UnsupportedSituation(2).notify(),
        NotifyType::SITUATION_NOT_SUPPORTED
    );
    assert_eq!(
        WireError::UnsupportedDoi(2).notify(),
        NotifyType::DOI_NOT_SUPPORTED
    );
    assert_eq!(
        WireError::BadSpiSize {
            protocol: 3,
            size: 3
        }
        .notify(),
        NotifyType::INVALID_SPI
    );
    assert_eq!(
        WireError::BadIdLength {
            id_type: 1,
            length: 5
        }
        .notify(),
        NotifyType::INVALID_ID_INFORMATION
    );
}

#[test]
fn minor_versions_are_accepted() {
    let mut m = message(13, &pl(0, b"vid"));
    m[17] = 0x11;
    assert_eq!(Header::parse(&m).unwrap().minor_version(), 1);
    Message::parse(&m).unwrap();
}

#[test]
fn unknown_private_payload_without_critical_bit_is_carried() {
    let m = message(200, &pl(0, b"x"));
    let msg = Message::parse(&m).unwrap();
    assert_eq!(
        msg.payloads,
        [Payload::Unknown {
            payload_type: PayloadType(200),
            data: b"x".to_vec()
        }]
    );
}

#[test]
fn payload_iter_stops_after_an_error() {
    let body = [pl(13, b"v"), vec![0, 0, 0, 0]].concat();
    let mut it = PayloadIter::new(PayloadType::VID, &body);
    assert!(it.next().unwrap().is_ok());
    assert!(matches!(
        it.next(),
        Some(Err(WireError::BadLength {
            what: "payload",
            length: 0,
            ..
        }))
    ));
    assert!(it.next().is_none());
    assert!(PayloadIter::new(PayloadType::NONE, &body).next().is_none());
    assert_eq!(
        PayloadIter::new(PayloadType::NONE, &body).trailing(),
        &body[..]
    );
}

//! Properties: no input panics the parser, and generated valid messages round trip byte for byte.

use proptest::collection::vec;
use proptest::prelude::*;

use ferrovpn_ike::wire::{
    parse_payloads, Attribute, AttributePayload, AttributeValue, CfgAttrType, CfgAttribute,
    CfgType, Delete, ExchangeType, Flags, Fragment, Header, IdType, Identification, Message,
    Notification, NotifyType, Payload, PayloadIter, PayloadType, Proposal, ProtocolId, SaPayload,
    Transform, IPSEC_DOI, SIT_IDENTITY_ONLY,
};

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

fn attribute() -> impl Strategy<Value = Attribute> {
    prop_oneof![
        (0u16..0x8000, any::<u16>()).prop_map(|(t, v)| Attribute::basic(t, v)),
        (0u16..0x8000, bytes(65)).prop_map(|(t, v)| Attribute {
            attr_type: t,
            value: AttributeValue::Variable(v)
        }),
        (0u16..0x8000, any::<u64>()).prop_map(|(t, v)| Attribute::from_u64(t, v)),
    ]
}

fn transform() -> impl Strategy<Value = Transform> {
    (any::<u8>(), any::<u8>(), vec(attribute(), 0..8)).prop_map(
        |(number, transform_id, attributes)| Transform {
            number,
            transform_id,
            attributes,
        },
    )
}

fn proposal() -> impl Strategy<Value = Proposal> {
    let protocol = prop_oneof![
        Just((ProtocolId::ISAKMP, 0usize)),
        Just((ProtocolId::ISAKMP, 16)),
        Just((ProtocolId::ESP, 4)),
        Just((ProtocolId::AH, 4)),
        Just((ProtocolId::IPCOMP, 2)),
    ];
    (
        any::<u8>(),
        protocol,
        vec(any::<u8>(), 16),
        vec(transform(), 1..5),
    )
        .prop_map(|(number, (protocol, spi_len), spi, transforms)| Proposal {
            number,
            protocol,
            spi: spi[..spi_len].to_vec(),
            transforms,
        })
}

fn identification() -> impl Strategy<Value = Identification> {
    let typed = prop_oneof![
        Just((IdType::IPV4_ADDR, 4usize)),
        Just((IdType::IPV4_ADDR_SUBNET, 8)),
        Just((IdType::IPV4_ADDR_RANGE, 8)),
        Just((IdType::IPV6_ADDR, 16)),
        Just((IdType::IPV6_ADDR_SUBNET, 32)),
        Just((IdType::IPV6_ADDR_RANGE, 32)),
    ]
    .prop_flat_map(|(t, n)| vec(any::<u8>(), n).prop_map(move |d| (t, d)));
    let free = (
        prop_oneof![
            Just(IdType::FQDN),
            Just(IdType::USER_FQDN),
            Just(IdType::KEY_ID),
            Just(IdType(99))
        ],
        bytes(40),
    );
    (prop_oneof![typed, free], any::<u8>(), any::<u16>()).prop_map(
        |((id_type, data), protocol, port)| Identification {
            id_type,
            protocol,
            port,
            data,
        },
    )
}

fn nat_oa() -> impl Strategy<Value = Payload> {
    (
        any::<bool>(),
        any::<bool>(),
        vec(any::<u8>(), 16),
        any::<u8>(),
        any::<u16>(),
    )
        .prop_map(|(draft, v6, d, protocol, port)| {
            let (id_type, data) = if v6 {
                (IdType::IPV6_ADDR, d)
            } else {
                (IdType::IPV4_ADDR, d[..4].to_vec())
            };
            Payload::NatOa {
                draft,
                id: Identification {
                    id_type,
                    protocol,
                    port,
                    data,
                },
            }
        })
}

fn payload() -> impl Strategy<Value = Payload> {
    let private = (128u8..=255).prop_filter("known private types", |t| !(130..=132).contains(t));
    prop_oneof![
        vec(proposal(), 1..4).prop_map(|proposals| Payload::Sa(SaPayload {
            doi: IPSEC_DOI,
            situation: SIT_IDENTITY_ONLY,
            proposals
        })),
        bytes(300).prop_map(Payload::KeyExchange),
        identification().prop_map(Payload::Identification),
        (any::<u8>(), bytes(50))
            .prop_map(|(encoding, data)| Payload::Certificate { encoding, data }),
        (any::<u8>(), bytes(50)).prop_map(|(encoding, authority)| Payload::CertificateRequest {
            encoding,
            authority
        }),
        bytes(64).prop_map(Payload::Hash),
        bytes(64).prop_map(Payload::Signature),
        bytes(64).prop_map(Payload::Nonce),
        (
            any::<u32>(),
            any::<u8>(),
            any::<u16>(),
            bytes(17),
            bytes(20)
        )
            .prop_map(|(doi, p, t, spi, data)| {
                Payload::Notification(Notification {
                    doi,
                    protocol: ProtocolId(p),
                    notify_type: NotifyType(t),
                    spi,
                    data,
                })
            }),
        (any::<u32>(), any::<u8>(), 1u8..17, 0usize..5).prop_map(|(doi, p, spi_size, n)| {
            let spis = (0..n)
                .map(|i| vec![i as u8; usize::from(spi_size)])
                .collect();
            Payload::Delete(Delete {
                doi,
                protocol: ProtocolId(p),
                spi_size,
                spis,
            })
        }),
        (any::<u32>(), any::<u8>()).prop_map(|(doi, p)| Payload::Delete(Delete {
            doi,
            protocol: ProtocolId(p),
            spi_size: 0,
            spis: vec![]
        })),
        bytes(40).prop_map(Payload::VendorId),
        (any::<bool>(), bytes(48)).prop_map(|(draft, hash)| Payload::NatD { draft, hash }),
        nat_oa(),
        (any::<u16>(), any::<u8>(), any::<bool>(), bytes(100)).prop_map(
            |(id, number, last, data)| Payload::Fragment(Fragment {
                id,
                number,
                last,
                data
            })
        ),
        (private, bytes(20)).prop_map(|(t, data)| Payload::Unknown {
            payload_type: PayloadType(t),
            data
        }),
        (
            any::<u8>(),
            any::<u16>(),
            vec(
                (
                    0u16..0x8000,
                    prop_oneof![
                        any::<u16>().prop_map(AttributeValue::Basic),
                        bytes(20).prop_map(AttributeValue::Variable),
                    ]
                ),
                0..6
            )
        )
            .prop_map(|(t, id, attrs)| Payload::Attributes(AttributePayload::new(
                CfgType(t),
                id,
                attrs
                    .into_iter()
                    .map(|(attr_type, value)| CfgAttribute {
                        attr_type: CfgAttrType(attr_type),
                        value
                    })
                    .collect()
            ))),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (
        any::<[u8; 8]>(),
        any::<[u8; 8]>(),
        0x10u8..0x20,
        any::<u8>(),
        any::<u8>(),
        any::<u32>(),
        vec(payload(), 0..12),
    )
        .prop_map(
            |(i, r, version, exchange, flags, message_id, payloads)| Message {
                header: Header {
                    initiator_spi: i,
                    responder_spi: r,
                    next_payload: PayloadType::NONE,
                    version,
                    exchange: ExchangeType(exchange),
                    flags: Flags(flags & !Flags::ENCRYPTION),
                    message_id,
                    length: 0,
                },
                payloads,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(data in bytes(600), first in any::<u8>()) {
        let _ = Message::parse(&data);
        let _ = Header::parse(&data);
        for raw in PayloadIter::new(PayloadType(first), &data) {
            if raw.is_err() {
                break;
            }
        }
        let _ = parse_payloads(PayloadType(first), &data);
    }

    #[test]
    fn valid_messages_round_trip(msg in message()) {
        let bytes = msg.emit();
        let parsed = Message::parse(&bytes).unwrap();
        prop_assert_eq!(&parsed.payloads, &msg.payloads);
        prop_assert_eq!(parsed.header.length as usize, bytes.len());
        prop_assert_eq!(parsed.emit(), bytes);
    }

    #[test]
    fn mutated_valid_messages_never_panic(msg in message(), flips in vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut bytes = msg.emit();
        for (at, x) in flips {
            let n = bytes.len();
            bytes[at % n] ^= x;
        }
        if let Ok(m) = Message::parse(&bytes) {
            // Whatever parses must emit back to the same bytes, except for bits the codec
            // normalises (RESERVED fields, fragment flags).
            let again = Message::parse(&m.emit()).unwrap();
            prop_assert_eq!(again, m);
        }
    }
}

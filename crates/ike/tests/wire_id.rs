//! Identification values (RFC 2407 §4.6.2) and how they print in logs.

use std::net::{Ipv4Addr, Ipv6Addr};

use ferrovpn_ike::wire::{IdType, IdValue, Identification, WireError};

#[test]
fn every_value_round_trips_through_the_payload_data() {
    let a4 = Ipv4Addr::new(198, 51, 100, 0);
    let m4 = Ipv4Addr::new(255, 255, 255, 0);
    let a6: Ipv6Addr = "2001:db8::".parse().unwrap();
    let m6: Ipv6Addr = "ffff:ffff::".parse().unwrap();
    let values = [
        IdValue::Ipv4(a4),
        IdValue::Ipv6(a6),
        IdValue::Ipv4Subnet(a4, m4),
        IdValue::Ipv6Subnet(a6, m6),
        IdValue::Ipv4Range(a4, Ipv4Addr::new(198, 51, 100, 9)),
        IdValue::Ipv6Range(a6, "2001:db8::9".parse().unwrap()),
        IdValue::Fqdn("vpn.example.com".into()),
        IdValue::UserFqdn("alice@example.com".into()),
        IdValue::KeyId(vec![1, 2, 3]),
        IdValue::Other(IdType::DER_ASN1_DN, vec![0x30, 0]),
    ];
    for v in values {
        let id = Identification::new(&v, 17, 4500);
        assert_eq!((id.protocol, id.port), (17, 4500));
        assert_eq!(id.value().unwrap(), v);
    }
}

#[test]
fn display_is_strongswan_like() {
    let s = |v: IdValue| v.to_string();
    assert_eq!(s(IdValue::Ipv4(Ipv4Addr::new(192, 0, 2, 1))), "192.0.2.1");
    assert_eq!(
        s(IdValue::Ipv4Subnet(
            Ipv4Addr::new(198, 51, 100, 0),
            Ipv4Addr::new(255, 255, 255, 0)
        )),
        "198.51.100.0/24"
    );
    assert_eq!(
        s(IdValue::Ipv4Subnet(
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED
        )),
        "0.0.0.0/0"
    );
    assert_eq!(
        s(IdValue::Ipv4Subnet(
            Ipv4Addr::new(10, 0, 0, 0),
            Ipv4Addr::new(255, 0, 255, 0)
        )),
        "10.0.0.0/255.0.255.0"
    );
    assert_eq!(
        s(IdValue::Ipv6Subnet(
            "2001:db8::".parse().unwrap(),
            "ffff:ffff:ffff:ffff::".parse().unwrap()
        )),
        "2001:db8::/64"
    );
    assert_eq!(
        s(IdValue::Ipv6Subnet(
            Ipv6Addr::UNSPECIFIED,
            Ipv6Addr::from(u128::MAX)
        )),
        "::/128"
    );
    assert_eq!(
        s(IdValue::Ipv4Range(
            Ipv4Addr::new(203, 0, 113, 1),
            Ipv4Addr::new(203, 0, 113, 9)
        )),
        "203.0.113.1-203.0.113.9"
    );
    assert_eq!(s(IdValue::Fqdn("vpn.example".into())), "vpn.example");
    assert_eq!(s(IdValue::UserFqdn("a@b".into())), "a@b");
    assert_eq!(s(IdValue::KeyId(vec![0xab, 0x01])), "@#ab01");
}

#[test]
fn malformed_id_data_is_refused() {
    let id = |t: IdType, data: Vec<u8>| Identification {
        id_type: t,
        protocol: 0,
        port: 0,
        data,
    };
    assert_eq!(
        id(IdType::IPV4_ADDR, vec![1; 3]).value(),
        Err(WireError::BadIdLength {
            id_type: 1,
            length: 3
        })
    );
    assert_eq!(
        id(IdType::IPV6_ADDR_SUBNET, vec![1; 16]).value(),
        Err(WireError::BadIdLength {
            id_type: 6,
            length: 16
        })
    );
    assert_eq!(
        id(IdType::FQDN, vec![0xff, 0xfe]).value(),
        Err(WireError::BadIdText)
    );
}

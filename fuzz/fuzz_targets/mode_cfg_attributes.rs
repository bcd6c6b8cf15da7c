//! The Attribute payload of the Transaction exchange (XAuth, Mode Config, Cisco Unity) fed
//! arbitrary bodies: parsing and decoding never panic, and whatever parses emits bytes that
//! parse back to the same payload.
#![no_main]

use ferrovpn_ike::wire::{AttributePayload, AttributePayloadView, ModeCfgSettings};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(view) = AttributePayloadView::new_checked(data) {
        let _ = (view.cfg_type(), view.identifier(), view.attributes().count());
    }
    if let Ok(p) = AttributePayload::parse(data) {
        let _ = ModeCfgSettings::from_payload(&p);
        for a in &p.attributes {
            let _ = (a.u16(), a.u32(), a.ipv4(), a.ipv6(), a.text(), a.ipv4_networks());
        }
        let mut out = Vec::new();
        p.emit(&mut out);
        let again = AttributePayload::parse(&out).expect("emitted payload must parse");
        assert_eq!(again, p);
        // Decoded settings re-encode to attributes that decode to the same settings.
        if let Ok(s) = ModeCfgSettings::from_payload(&p) {
            let q = AttributePayload::new(p.cfg_type, p.identifier, s.to_attributes());
            assert_eq!(ModeCfgSettings::from_payload(&q).as_ref(), Ok(&s));
        }
    }
});

//! The ISAKMP codec fed arbitrary datagrams: parsing never panics, and whatever parses emits
//! bytes that parse back to the same message.
#![no_main]

use ferrovpn_ike::wire::{parse_payloads, Header, HeaderView, Message, PayloadIter, PayloadType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Header::parse(data);
    if let Ok(view) = HeaderView::new_checked(data) {
        let first = view.next_payload();
        for raw in PayloadIter::new(first, view.body()) {
            if raw.is_err() {
                break;
            }
        }
        // Decrypted bodies go through parse_payloads with padding after the chain.
        let _ = parse_payloads(first, view.body());
    }
    if let Some((&first, body)) = data.split_first() {
        let _ = parse_payloads(PayloadType(first), body);
    }
    if let Ok(msg) = Message::parse(data) {
        let again = Message::parse(&msg.emit()).expect("emitted message must parse");
        assert_eq!(again, msg);
    }
});

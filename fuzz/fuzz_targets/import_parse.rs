//! Fuzz target: arbitrary files through `ferrovpn import`'s parsers (strongSwan ipsec.conf,
//! swanctl.conf, Libreswan ipsec.conf, ipsec.secrets). None may panic, and whatever is
//! converted must be well-formed TOML.
#![no_main]

use ferrovpn::import::{convert, ipsec_secrets, Format};
use libfuzzer_sys::fuzz_target;
use zeroize::Zeroizing;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The first half doubles as a secrets file.
    let half = text.get(..text.len() / 2).unwrap_or_default().to_string();
    let secrets = vec![("s".to_string(), Zeroizing::new(half))];
    for f in [Format::StrongswanIpsec, Format::Swanctl, Format::Libreswan, Format::Auto] {
        let c = convert(&text, "fuzz", f, &secrets, Some([192, 0, 2, 9].into()), true);
        if c.rendered.converted > 0 {
            assert!(toml::from_str::<toml::Value>(&c.rendered.toml).is_ok());
        }
    }
    let _ = ipsec_secrets::parse(&text, &mut Vec::new());
});

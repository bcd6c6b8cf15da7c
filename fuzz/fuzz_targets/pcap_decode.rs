//! `ferrovpn decode` fed arbitrary capture files: reading pcap/pcapng, the link, IP and UDP
//! layers, naming, decryption and rendering never panic. Seed the corpus with the strongSwan
//! recordings and the interop captures (`cp tests/data/strongswan/*/capture.pcap
//! tests/data/interop/*/capture.pcap fuzz/corpus/pcap_decode/`); their phase 1 and ESP keys
//! are below so mutations reach IKE and ESP decryption.
#![no_main]

use ferrovpn::decode::{decode_with, render, EspSaTable, KeyTable};
use libfuzzer_sys::fuzz_target;

/// Wireshark IKEv1 decryption table of the tests/data/strongswan recordings and the
/// tests/data/interop captures.
const KEYS: &str = "\
efc784116b977181,2f5dec8174e0b0eaebba3e3f2b9e2b0f34f354300ab47d75a8ab7f8981a2b223
3284abacff6c7c2a,f3c754a6530a56906203241b7c0f1ab80e6866cb70150f20
98beec88a6c6a472,8c4483db812479b9a58d0efd95e609ca
f13ec303963bd3ec,ac0745172af6e1bd5976db558166cb42
294fc81dda83b4c6,ea7ca8ff575625e1083bd7629832e4c89646f3d8a18b3c655cdeb91b356c0820
4371612df9e4d66d,be1be364a506157390a50cead2ead9a31ac70083c194de6e684e476a91563421
b0c28365bfcdd846,b617a5f988f53fb7b3af9168fb2fc02bc1b4cd209a2b43d3bca86169414bd8c2
2dbbf2b0c176f43e,66dfe8002477c4c8442feb93710c0b8a80a9c49d00a10f07bd096eac1b51ecdc
0e58d6166bc4a606,6692f5c8ba32aebcfda5da3c20cd7009fdc16b4eafb66aa249b413f67f784d28
";

/// Wireshark ESP SA table of the tests/data/interop captures.
const ESP_KEYS: &str = include_str!("../../tests/data/interop/esp_sa.fuzz");

fuzz_target!(|data: &[u8]| {
    let keys = KeyTable::parse(KEYS).ok();
    let esp = EspSaTable::parse(ESP_KEYS).ok();
    if let Ok(report) = decode_with(data, keys.as_ref(), esp.as_ref()) {
        let _ = render(&report, true);
    }
});

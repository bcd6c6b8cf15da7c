//! Two real endpoints negotiate (MM or AM, Quick Mode with or without PFS and the commit bit,
//! then an hour of timers) while the input rewrites the *plaintext* payloads of the messages
//! they send: MM1/MM2/AM2, the protected MM5/MM6/AM3, QM1/QM2/QM3 and Informational. The
//! rewrite happens before the HASH (HASH(1)/(2)/(3), HASH_I/R over a new ID) is computed and
//! the message is encrypted with the session keys (`Settings::tamper`), so unlike
//! `ike_conversation` the receiver's code behind the HASH checks runs on the mutated content.
//! Input: a flags byte, then programs `[message index, length, mutations…]` (see
//! `ferrovpn_tests::hostile`). Asserts no panic and no lifetime above the receiver's own.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ferrovpn_tests::hostile::plaintext_conversation(data);
});

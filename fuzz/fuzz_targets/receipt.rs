//! The receipt file `kubechain verify-receipt` reads: `Receipt::from_file_text` (JSON, accepted
//! only as the byte-for-byte canonical text, docs/encoding.md), then `Receipt::verify` from the
//! fixed chain's genesis (following any rule changes it carries), on the receipt as read and once
//! more with its signatures, seals and certificate targets made afresh by the fixture keys (so the
//! Merkle paths, the seals, the certificates' votes and the rule changes are checked with fuzzed
//! values too). A verdict, never a panic.
#![no_main]

use kubechain_fuzz::{fixture, repair};
use kubechain_types::Receipt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: kubechain_fuzz::init(env!("CARGO_BIN_NAME")), |data: &[u8]| {
    let Ok(receipt) = Receipt::from_file_text(data) else { return };
    assert_eq!(receipt.to_file_text().as_bytes(), data, "a receipt accepted from non-canonical text");
    let genesis = &fixture().genesis;
    let _ = receipt.verify(genesis);
    let repaired = repair::receipt(&receipt);
    let _ = repaired.verify(genesis);
    // What the command prints about a receipt that verified.
    let _ = (receipt.transaction.hash(), receipt.header.hash(), receipt.certificate.to_string());
});

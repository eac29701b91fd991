//! Canonical bytes of transactions: one `Transaction`, and the `Vec<Transaction>` that a binary
//! `POST /v1/transactions` body (application/octet-stream, read by the node's own
//! `kubechain_api::parse_submission`) and a peer's transactions frame carry.
//! What decodes must encode back to the same bytes and keep the properties of
//! `properties::transaction`; the batch signature check gives each transaction the verdict it
//! gets alone.
#![no_main]

use kubechain_api::parse_submission;
use kubechain_fuzz::properties;
use kubechain_types::Transaction;
use kubechain_types::encoding::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: kubechain_fuzz::init(env!("CARGO_BIN_NAME")), |data: &[u8]| {
    if let Ok(transaction) = decode::<Transaction>(data) {
        assert_eq!(encode(&transaction), data, "a transaction decoded from non-canonical bytes");
        properties::transaction(&transaction);
    }
    let submitted = parse_submission("application/octet-stream", data).map(|s| s.transactions);
    assert_eq!(submitted.as_ref().ok(), decode::<Vec<Transaction>>(data).as_ref().ok());
    if let Ok(transactions) = decode::<Vec<Transaction>>(data) {
        assert_eq!(encode(&transactions), data, "a list decoded from non-canonical bytes");
        transactions.iter().for_each(properties::transaction);
        let verdicts = Transaction::verify_signatures(&transactions.iter().collect::<Vec<_>>());
        for (transaction, verdict) in transactions.iter().zip(verdicts) {
            assert_eq!(verdict, transaction.verify_signature().is_ok(), "batch and single verdicts differ");
        }
    }
});

//! A JSON request body of `POST /v1/transactions`, read by the node's own parser
//! (`kubechain_api::parse_submission`: one transaction or an array, straight from the bytes), and
//! directly as one transaction and as a list; then each transaction's signature check and hash,
//! and the round trips: through JSON and through the canonical encoding, every transaction that
//! parsed comes back equal.
#![no_main]

use kubechain_api::parse_submission;
use kubechain_fuzz::properties;
use kubechain_types::Transaction;
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: kubechain_fuzz::init(env!("CARGO_BIN_NAME")), |data: &[u8]| {
    if let Ok(transaction) = serde_json::from_slice::<Transaction>(data) {
        properties::transaction(&transaction);
    }
    if let Ok(transactions) = serde_json::from_slice::<Vec<Transaction>>(data) {
        transactions.iter().for_each(properties::transaction);
    }
    if let Ok(submission) = parse_submission("application/json", data) {
        assert!(!submission.single || submission.transactions.len() == 1);
        submission.transactions.iter().for_each(properties::transaction);
    }
});

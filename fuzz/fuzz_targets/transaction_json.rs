//! A JSON request body of `POST /transactions`: parsed as the node's API does (a JSON value, then
//! one transaction or an array of them) and directly with `serde_json::from_slice`; then each
//! transaction's signature check and hash, and the round trips: through JSON and through the
//! canonical encoding, every transaction that parsed comes back equal.
#![no_main]

use kubechain_fuzz::properties;
use kubechain_types::Transaction;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(init: kubechain_fuzz::init(env!("CARGO_BIN_NAME")), |data: &[u8]| {
    if let Ok(transaction) = serde_json::from_slice::<Transaction>(data) {
        properties::transaction(&transaction);
    }
    if let Ok(transactions) = serde_json::from_slice::<Vec<Transaction>>(data) {
        transactions.iter().for_each(properties::transaction);
    }
    // As the API reads a body: a value first, then one transaction or a list.
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return };
    let parsed: Result<Vec<Transaction>, _> = if value.is_array() {
        serde_json::from_value(value)
    } else {
        serde_json::from_value(value).map(|transaction| vec![transaction])
    };
    if let Ok(transactions) = parsed {
        transactions.iter().for_each(properties::transaction);
    }
});

//! The JSON answers of a node that the operator and the CLI parse: `GET /v1/consortium`,
//! `GET /v1/status` and `GET /v1/accounts/{key}`, from a node that may lie or be broken. Each
//! answer that parses serialises and parses back equal, and a consortium's members keep their keys.
#![no_main]

use kubechain_api::{AccountView, ConsortiumView, NodeStatus};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trips<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
    let text = serde_json::to_vec(value).expect("a parsed answer serialises");
    let again: T = serde_json::from_slice(&text).expect("a serialised answer parses");
    assert_eq!(&again, value);
}

fuzz_target!(init: kubechain_fuzz::init(env!("CARGO_BIN_NAME")), |data: &[u8]| {
    if let Ok(consortium) = serde_json::from_slice::<ConsortiumView>(data) {
        round_trips(&consortium);
    }
    if let Ok(status) = serde_json::from_slice::<NodeStatus>(data) {
        round_trips(&status);
    }
    if let Ok(account) = serde_json::from_slice::<AccountView>(data) {
        round_trips(&account);
    }
});

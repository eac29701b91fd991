//! Fixtures and the JSON pinning check shared by the answer types' tests.

use kubechain_types::{Hash, PublicKey};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub fn hash(byte: u8) -> Hash {
    Hash([byte; 32])
}

pub fn key(byte: u8) -> PublicKey {
    PublicKey([byte; 32])
}

/// `value` is written exactly as `json` (the wire format other versions read) and read back.
pub fn pinned<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T, json: &str) {
    assert_eq!(serde_json::to_string(value).unwrap(), json);
    assert_eq!(&serde_json::from_str::<T>(json).unwrap(), value);
}

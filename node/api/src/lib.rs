//! `kubechain-api`: the node's HTTP contract as types. The node serialises them, and the
//! operator, the CLI and the e2e suites read the node's answers with them, so both sides agree by
//! construction. The OpenAPI document (`openapi.json`, served at `/v1/openapi.json`) is generated
//! from the same types by the `openapigen` binary; a test fails when it drifts.
//!
//! No RocksDB, axum or tokio here: every client of a node can depend on it.

pub mod blocks;
pub mod error;
pub mod openapi;
pub mod state;
pub mod status;
pub mod transactions;

pub use blocks::{BlockAnnouncement, BlockView};
pub use error::{ErrorBody, ErrorCode};
pub use openapi::{MAX_BATCH, OPENAPI, REGENERATE_COMMAND, openapi_json};
pub use state::{AccountView, StateEntry};
pub use status::{Live, Liveness, NodeStatus, Readiness};
pub use transactions::{BatchVerdicts, Submitted, TransactionStatus, Verdict};

#[cfg(test)]
mod tests {
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
}

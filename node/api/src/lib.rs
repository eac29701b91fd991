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
pub mod submission;
pub mod transactions;

pub use blocks::{BlockAnnouncement, BlockView};
pub use error::{ErrorBody, ErrorCode};
pub use openapi::{MAX_BATCH, OPENAPI, REGENERATE_COMMAND, openapi_json};
pub use state::{AccountView, ConsortiumView, MAX_CONSORTIUM_ENTRIES, StateEntry};
pub use status::{Live, Liveness, NodeStatus, Readiness, Role, ScheduledRules};
pub use submission::{Submission, SubmissionError, parse_submission};
pub use transactions::{BatchVerdicts, Submitted, TransactionStatus, Verdict};

#[cfg(test)]
mod test_support;

//! kubechain's data model.
//!
//! Everything that is hashed or signed has exactly one byte encoding ([`encoding`]), and every
//! signature is bound to a purpose and a chain ([`crypto::Domain`]), so a signature made for one
//! thing can never be replayed as another. `docs/encoding.md` specifies the bytes.

pub mod block;
pub mod certificate;
pub mod crypto;
#[cfg(feature = "edge-signatures")]
pub mod edge_signatures;
pub mod encoding;
pub mod genesis;
pub mod keyfile;
pub mod merkle;
pub mod receipt;
pub mod schedule;
pub mod transaction;
pub mod validators;

pub use block::{Block, Header};
pub use certificate::{CommitCertificate, CommitVote, VoteTarget};
pub use crypto::{Domain, Hash, PublicKey, Signature, SigningKey};
pub use genesis::{ConsensusParams, Genesis, Member};
pub use keyfile::KeyFileError;
pub use merkle::MerkleProof;
pub use receipt::{ProvenTransaction, Receipt, ReceiptError, ReceiptFileError, RuleChange};
pub use schedule::{HashedRules, Rules, Schedule};
pub use transaction::{AdminOperation, DocumentAnchor, Operation, Transaction, TxBody};
pub use validators::{ValidatorSet, fault_tolerance, quorum};

//! Submitting transactions (`POST /v1/transactions`) and asking about one
//! (`GET /v1/transactions/{hash}`).

use kubechain_types::{Hash, Receipt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{ErrorBody, ErrorCode};

/// 202 to a single JSON transaction: it is in the mempool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Submitted {
    pub hash: Hash,
}

/// 200 (429 when every one was refused for a full mempool) to a list of transactions: one
/// verdict per transaction, in request order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BatchVerdicts {
    /// How many were accepted.
    pub accepted: u64,
    pub results: Vec<Verdict>,
}

/// One transaction of a batch: accepted (`{hash}`) or refused (`{hash, code, message}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Verdict {
    // Refused first: an untagged reader takes the first shape that fits, and `{hash}` fits both.
    Refused { hash: Hash, code: ErrorCode, message: String },
    Accepted { hash: Hash },
}

impl Verdict {
    pub fn hash(&self) -> &Hash {
        match self {
            Verdict::Refused { hash, .. } | Verdict::Accepted { hash } => hash,
        }
    }
}

/// `GET /v1/transactions/{hash}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TransactionStatus {
    /// In this node's mempool.
    Pending { hash: Hash },
    /// In the committed block at `height`, at `index`, with a receipt that verifies offline
    /// (`kubechain verify-receipt`) against the genesis file.
    Committed { hash: Hash, height: u64, index: u32, receipt: Box<Receipt> },
    /// Refused or dropped by this node, and why.
    Rejected { hash: Hash, error: ErrorBody },
}

impl TransactionStatus {
    pub fn hash(&self) -> &Hash {
        match self {
            TransactionStatus::Pending { hash }
            | TransactionStatus::Committed { hash, .. }
            | TransactionStatus::Rejected { hash, .. } => hash,
        }
    }
}

#[cfg(test)]
mod tests {
    use kubechain_types::{
        CommitCertificate, CommitVote, Header, MerkleProof, Operation, Signature, Transaction, TxBody,
        VoteTarget,
    };

    use super::*;
    use crate::test_support::{hash, key, pinned};

    #[test]
    fn submit_answers_are_pinned() {
        pinned(&Submitted { hash: hash(1) }, &format!(r#"{{"hash":"{}"}}"#, hash(1)));
        let batch = BatchVerdicts {
            accepted: 1,
            results: vec![
                Verdict::Accepted { hash: hash(1) },
                Verdict::Refused { hash: hash(2), code: ErrorCode::MempoolFull, message: "full".into() },
            ],
        };
        let json = format!(
            r#"{{"accepted":1,"results":[{{"hash":"{}"}},{{"hash":"{}","code":"mempool_full","message":"full"}}]}}"#,
            hash(1),
            hash(2)
        );
        pinned(&batch, &json);
    }

    #[test]
    fn transaction_statuses_are_pinned() {
        pinned(
            &TransactionStatus::Pending { hash: hash(1) },
            &format!(r#"{{"status":"pending","hash":"{}"}}"#, hash(1)),
        );
        let rejected = TransactionStatus::Rejected {
            hash: hash(1),
            error: ErrorBody { code: ErrorCode::Expired, message: "expired".into() },
        };
        pinned(
            &rejected,
            &format!(
                r#"{{"status":"rejected","hash":"{}","error":{{"code":"expired","message":"expired"}}}}"#,
                hash(1)
            ),
        );
        let transaction = Transaction {
            body: TxBody {
                chain_id: "c-1".into(),
                sender: key(5),
                nonce: 1,
                operations: vec![Operation::Put { key: "k".into(), value: b"v".to_vec() }],
            },
            signature: Signature([6; 64]),
        };
        let header = Header {
            chain_id: "c-1".into(),
            height: 3,
            view: 0,
            previous_hash: hash(7),
            tx_root: hash(8),
            state_root: hash(9),
            rules_hash: hash(11),
            timestamp_ms: 1000,
            proposer: key(5),
            pow_difficulty: 0,
            pow_nonce: 0,
        };
        let committed = TransactionStatus::Committed {
            hash: hash(1),
            height: 3,
            index: 0,
            receipt: Box::new(Receipt {
                transaction,
                proof: MerkleProof { index: 0, leaf_count: 1, path: vec![] },
                header,
                certificate: CommitCertificate {
                    target: VoteTarget { height: 3, view: 0, block_hash: hash(10) },
                    votes: vec![CommitVote { voter: key(5), signature: Signature([6; 64]) }],
                },
                rule_changes: Vec::new(),
            }),
        };
        let json = format!(
            concat!(
                r#"{{"status":"committed","hash":"{h1}","height":3,"index":0,"receipt":{{"#,
                r#""transaction":{{"body":{{"chain_id":"c-1","sender":"{k5}","nonce":1,"operations":[{{"op":"put","key":"k","value":"76"}}]}},"signature":"{s6}"}},"#,
                r#""proof":{{"index":0,"leaf_count":1,"path":[]}},"#,
                r#""header":{{"chain_id":"c-1","height":3,"view":0,"previous_hash":"{h7}","tx_root":"{h8}","state_root":"{h9}","rules_hash":"{h11}","timestamp_ms":1000,"proposer":"{k5}","pow_difficulty":0,"pow_nonce":0}},"#,
                r#""certificate":{{"target":{{"height":3,"view":0,"block_hash":"{h10}"}},"votes":[{{"voter":"{k5}","signature":"{s6}"}}]}}}}}}"#
            ),
            h1 = hash(1),
            k5 = key(5),
            s6 = Signature([6; 64]),
            h7 = hash(7),
            h8 = hash(8),
            h9 = hash(9),
            h10 = hash(10),
            h11 = hash(11),
        );
        pinned(&committed, &json);
    }
}

//! Committed blocks: `GET /v1/blocks/{id}` and the events of `GET /v1/stream/blocks`.

use kubechain_types::{Block, CommitCertificate, Hash, PublicKey};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A committed block with the certificate that made it final: `height`, `hash`, the block's own
/// fields (`header`, `transactions`) and `certificate`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BlockView {
    pub height: u64,
    /// The block hash: SHA-256 of the canonical header.
    pub hash: Hash,
    #[serde(flatten)]
    pub block: Block,
    pub certificate: CommitCertificate,
}

/// The data of one `block` event on the stream of newly committed blocks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BlockAnnouncement {
    pub height: u64,
    pub hash: Hash,
    pub view: u64,
    pub proposer: PublicKey,
    pub timestamp_ms: u64,
    /// How many transactions the block holds.
    pub transactions: u64,
    /// The block's transaction hashes in order; only on streams asked with `?transactions=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_hashes: Option<Vec<Hash>>,
}

#[cfg(test)]
mod tests {
    use kubechain_types::{CommitVote, Header, Signature, VoteTarget};

    use super::*;
    use crate::test_support::{hash, key, pinned};

    #[test]
    fn a_block_is_pinned() {
        let header = Header {
            chain_id: "c-1".into(),
            height: 2,
            view: 1,
            previous_hash: hash(1),
            tx_root: hash(2),
            state_root: hash(3),
            rules_hash: hash(7),
            timestamp_ms: 1000,
            proposer: key(4),
            pow_difficulty: 8,
            pow_nonce: 99,
        };
        let view = BlockView {
            height: 2,
            hash: hash(5),
            block: Block { header, transactions: vec![] },
            certificate: CommitCertificate {
                target: VoteTarget { height: 2, view: 1, block_hash: hash(5) },
                votes: vec![CommitVote { voter: key(4), signature: Signature([6; 64]) }],
            },
        };
        let json = format!(
            concat!(
                r#"{{"height":2,"hash":"{h5}","#,
                r#""header":{{"chain_id":"c-1","height":2,"view":1,"previous_hash":"{h1}","tx_root":"{h2}","state_root":"{h3}","rules_hash":"{h7}","timestamp_ms":1000,"proposer":"{k4}","pow_difficulty":8,"pow_nonce":99}},"#,
                r#""transactions":[],"#,
                r#""certificate":{{"target":{{"height":2,"view":1,"block_hash":"{h5}"}},"votes":[{{"voter":"{k4}","signature":"{s6}"}}]}}}}"#
            ),
            h1 = hash(1),
            h2 = hash(2),
            h3 = hash(3),
            k4 = key(4),
            h5 = hash(5),
            s6 = Signature([6; 64]),
            h7 = hash(7),
        );
        pinned(&view, &json);
    }

    #[test]
    fn announcements_carry_hashes_only_when_asked() {
        let mut announcement = BlockAnnouncement {
            height: 2,
            hash: hash(1),
            view: 0,
            proposer: key(2),
            timestamp_ms: 1000,
            transactions: 1,
            transaction_hashes: None,
        };
        let plain = format!(
            r#"{{"height":2,"hash":"{}","view":0,"proposer":"{}","timestamp_ms":1000,"transactions":1}}"#,
            hash(1),
            key(2)
        );
        pinned(&announcement, &plain);
        announcement.transaction_hashes = Some(vec![hash(3)]);
        let with_hashes = format!(
            r#"{{"height":2,"hash":"{}","view":0,"proposer":"{}","timestamp_ms":1000,"transactions":1,"transaction_hashes":["{}"]}}"#,
            hash(1),
            key(2),
            hash(3)
        );
        pinned(&announcement, &with_hashes);
    }
}

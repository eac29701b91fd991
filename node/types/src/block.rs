//! Block headers and blocks.

use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::crypto::{Hash, PublicKey};
use crate::encoding::encode;
use crate::merkle::{self, MerkleProof};
use crate::transaction::Transaction;

/// The header, in canonical field order. Its hash is the block hash.
#[derive(
    Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema,
)]
pub struct Header {
    pub chain_id: String,
    pub height: u64,
    /// The view in which the block was first proposed (a re-proposal after a view change keeps it,
    /// so the block hash does not change).
    pub view: u64,
    pub previous_hash: Hash,
    /// Merkle root (RFC 6962) of the transaction hashes in block order.
    pub tx_root: Hash,
    /// State root after executing this block.
    pub state_root: Hash,
    /// Hash of the latest scheduled rules (validators and parameters) after this block's admin
    /// operations, changes not yet in force included: `Rules::hash`. Offline verifiers check
    /// against it that a receipt left no rule change out (docs/encoding.md, sections 8.1 and 9).
    pub rules_hash: Hash,
    pub timestamp_ms: u64,
    pub proposer: PublicKey,
    pub pow_difficulty: u8,
    pub pow_nonce: u64,
}

impl Header {
    /// SHA-256 of the canonical encoding of the header.
    pub fn hash(&self) -> Hash {
        Hash::digest(&encode(self))
    }

    /// The proof-of-work seal: searches nonces from `pow_nonce` upward until the hash has
    /// `pow_difficulty` leading zero bits. Rewriting history then costs work even with stolen
    /// validator keys, and a faulty primary cannot flood the chain with proposals. Returns the
    /// number of hashes tried; expected work is `2^difficulty` hashes.
    pub fn seal(&mut self) -> u64 {
        let mut tries = 1;
        while !self.is_sealed() {
            self.pow_nonce = self.pow_nonce.wrapping_add(1);
            tries += 1;
        }
        tries
    }

    /// True if the hash has at least `pow_difficulty` leading zero bits.
    pub fn is_sealed(&self) -> bool {
        self.hash().leading_zero_bits() >= u32::from(self.pow_difficulty)
    }
}

#[derive(Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema)]
pub struct Block {
    pub header: Header,
    pub transactions: Vec<Transaction>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("block is for chain {found:?}, expected {expected:?}")]
    WrongChain { expected: String, found: String },
    #[error("transaction root does not match the transactions")]
    TxRoot,
    #[error("proof-of-work seal does not meet {0} bits")]
    Seal(u8),
    #[error("block asks for difficulty {found}, the chain requires {expected}")]
    Difficulty { expected: u8, found: u8 },
}

impl Block {
    /// Builds an unsealed block whose `tx_root` matches `transactions`.
    pub fn new(mut header: Header, transactions: Vec<Transaction>) -> Block {
        header.tx_root = tx_root(&transactions);
        Block { header, transactions }
    }

    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    pub fn height(&self) -> u64 {
        self.header.height
    }

    /// Checks what a block proves about itself: chain, transaction root and seal at the
    /// difficulty the chain requires at this height. Execution and signatures are checked elsewhere.
    pub fn check_integrity(&self, chain_id: &str, difficulty: u8) -> Result<(), BlockError> {
        if self.header.chain_id != chain_id {
            return Err(BlockError::WrongChain {
                expected: chain_id.to_string(),
                found: self.header.chain_id.clone(),
            });
        }
        if self.header.pow_difficulty != difficulty {
            return Err(BlockError::Difficulty { expected: difficulty, found: self.header.pow_difficulty });
        }
        self.check_body()?;
        if !self.header.is_sealed() {
            return Err(BlockError::Seal(difficulty));
        }
        Ok(())
    }

    /// Checks that the transactions are the ones the header commits to. Signatures on a block
    /// (proposal, votes, certificates) cover only its header hash, so a block taken from anyone
    /// passes this before its body is executed, voted on or stored.
    pub fn check_body(&self) -> Result<(), BlockError> {
        if tx_root(&self.transactions) == self.header.tx_root { Ok(()) } else { Err(BlockError::TxRoot) }
    }

    /// Inclusion proof of the transaction at `index`.
    pub fn tx_proof(&self, index: usize) -> Option<MerkleProof> {
        MerkleProof::new(&tx_hashes(&self.transactions), index)
    }
}

pub fn tx_hashes(transactions: &[Transaction]) -> Vec<Hash> {
    transactions.iter().map(Transaction::hash).collect()
}

pub fn tx_root(transactions: &[Transaction]) -> Hash {
    merkle::root(&tx_hashes(transactions))
}

impl fmt::Debug for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Block(#{} {:?} {} txs)", self.header.height, self.hash(), self.transactions.len())
    }
}

impl fmt::Display for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "block {} at height {} (view {}, {} txs, proposer {:?})",
            self.hash(),
            self.header.height,
            self.header.view,
            self.transactions.len(),
            self.header.proposer
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SigningKey;
    use crate::encoding::decode;
    use crate::transaction::{Operation, TxBody};

    pub(crate) fn sample_block(difficulty: u8) -> Block {
        let key = SigningKey::from_seed([2; 32]);
        let tx = Transaction::new(
            TxBody {
                chain_id: "c1".into(),
                sender: key.public_key(),
                nonce: 1,
                operations: vec![Operation::Delete { key: "k".into() }],
            },
            &key,
        );
        let header = Header {
            chain_id: "c1".into(),
            height: 1,
            view: 0,
            previous_hash: Hash::digest(b"genesis"),
            tx_root: Hash::ZERO,
            state_root: Hash::digest(b"state"),
            rules_hash: Hash::digest(b"rules"),
            timestamp_ms: 1_700_000_000_000,
            proposer: key.public_key(),
            pow_difficulty: difficulty,
            pow_nonce: 0,
        };
        let mut block = Block::new(header, vec![tx]);
        block.header.seal();
        block
    }

    #[test]
    fn sealed_block_passes_and_tampering_fails() {
        let block = sample_block(10);
        assert!(block.hash().leading_zero_bits() >= 10);
        assert_eq!(block.check_integrity("c1", 10), Ok(()));
        assert!(matches!(block.check_integrity("c2", 10), Err(BlockError::WrongChain { .. })));
        assert!(matches!(block.check_integrity("c1", 11), Err(BlockError::Difficulty { .. })));

        let mut unsealed = block.clone();
        // Walk to a nonce that does not meet 10 bits (almost every nonce).
        while unsealed.header.is_sealed() {
            unsealed.header.pow_nonce += 1;
        }
        assert_eq!(unsealed.check_integrity("c1", 10), Err(BlockError::Seal(10)));

        let mut extra_tx = block.clone();
        extra_tx.transactions.push(block.transactions[0].clone());
        assert_eq!(extra_tx.check_integrity("c1", 10), Err(BlockError::TxRoot));
    }

    #[test]
    fn difficulty_zero_accepts_any_nonce() {
        let block = sample_block(0);
        assert_eq!(block.header.pow_nonce, 0);
        assert_eq!(block.check_integrity("c1", 0), Ok(()));
    }

    #[test]
    fn block_round_trips() {
        let block = sample_block(4);
        let back: Block = decode(&encode(&block)).unwrap();
        assert_eq!(back, block);
        assert_eq!(back.hash(), block.hash());
    }

    #[test]
    fn tx_proof_verifies_against_header() {
        let block = sample_block(0);
        let proof = block.tx_proof(0).unwrap();
        assert!(proof.verify(&block.transactions[0].hash(), &block.header.tx_root));
    }
}

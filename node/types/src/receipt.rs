//! Offline-verifiable proof that a transaction is in a final block.
//!
//! A receipt carries the transaction, its Merkle path to the block's transaction root, the block
//! header and the block's commit certificate. Anyone holding the validator set in force at that
//! height (the genesis file, while the set has not changed) can check it without a node.

use borsh::{BorshDeserialize, BorshSerialize};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::block::Header;
use crate::certificate::{CertificateError, CommitCertificate, VoteTarget};
use crate::merkle::MerkleProof;
use crate::transaction::Transaction;
use crate::validators::ValidatorSet;

#[derive(
    Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema,
)]
pub struct Receipt {
    pub transaction: Transaction,
    pub proof: MerkleProof,
    pub header: Header,
    pub certificate: CommitCertificate,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("receipt is for chain {found:?}, expected {expected:?}")]
    WrongChain { expected: String, found: String },
    #[error("the transaction is for chain {found:?}, its block for {expected:?}")]
    TransactionChain { expected: String, found: String },
    #[error("the transaction's signature does not verify")]
    TransactionSignature,
    #[error("the Merkle path does not lead from the transaction to the header's transaction root")]
    MerklePath,
    #[error("the header's proof-of-work seal does not meet its {0} bits")]
    Seal(u8),
    #[error("the certificate is for height {found}, the header is at {expected}")]
    CertificateHeight { expected: u64, found: u64 },
    #[error("the certificate is for another block than this header")]
    CertificateBlock,
    #[error("the commit certificate does not verify: {0}")]
    Certificate(#[from] CertificateError),
}

/// Why a receipt file was refused before its proofs were even checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptFileError {
    #[error("not a receipt: {0}")]
    Parse(String),
    #[error(
        "the file is not byte for byte the canonical receipt text (as `kubechain receipt --out` writes it): it was changed"
    )]
    NotCanonical,
}

impl Receipt {
    /// The receipt file: pretty-printed JSON with lowercase hex and a final newline. A file is
    /// accepted only in exactly this form, so that any change to it, even one that would not
    /// change what it proves (spacing, hex case), is refused.
    pub fn to_file_text(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Reads a receipt file written by [`Receipt::to_file_text`]; the proofs (including the
    /// certificate's vote order) are checked by [`Receipt::verify`], not here.
    pub fn from_file_text(bytes: &[u8]) -> Result<Receipt, ReceiptFileError> {
        let receipt: Receipt =
            serde_json::from_slice(bytes).map_err(|error| ReceiptFileError::Parse(error.to_string()))?;
        if receipt.to_file_text().as_bytes() != bytes {
            return Err(ReceiptFileError::NotCanonical);
        }
        Ok(receipt)
    }

    /// Checks every link from the transaction to a quorum of `validators` (the set in force at
    /// the receipt's height) signing COMMIT for its block on `chain_id`.
    pub fn verify(&self, chain_id: &str, validators: &ValidatorSet) -> Result<(), ReceiptError> {
        if self.header.chain_id != chain_id {
            return Err(ReceiptError::WrongChain {
                expected: chain_id.to_string(),
                found: self.header.chain_id.clone(),
            });
        }
        if self.transaction.body.chain_id != chain_id {
            return Err(ReceiptError::TransactionChain {
                expected: chain_id.to_string(),
                found: self.transaction.body.chain_id.clone(),
            });
        }
        self.transaction.verify_signature().map_err(|_| ReceiptError::TransactionSignature)?;
        if !self.proof.verify(&self.transaction.hash(), &self.header.tx_root) {
            return Err(ReceiptError::MerklePath);
        }
        if !self.header.is_sealed() {
            return Err(ReceiptError::Seal(self.header.pow_difficulty));
        }
        let target = self.certificate.target;
        if target.height != self.header.height {
            return Err(ReceiptError::CertificateHeight {
                expected: self.header.height,
                found: target.height,
            });
        }
        let expected =
            VoteTarget { height: self.header.height, view: target.view, block_hash: self.header.hash() };
        if target != expected {
            return Err(ReceiptError::CertificateBlock);
        }
        self.certificate.verify(chain_id, validators)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificate::{CommitVote, sign_vote};
    use crate::crypto::{Domain, Hash, SigningKey};
    use crate::encoding::{decode, encode};
    use crate::transaction::{Operation, TxBody};
    use crate::{Block, Transaction};

    const CHAIN: &str = "receipt-test";

    fn receipt() -> (Receipt, ValidatorSet) {
        let keys: Vec<SigningKey> = (1..=4u8).map(|seed| SigningKey::from_seed([seed; 32])).collect();
        let validators = ValidatorSet::new(keys.iter().map(SigningKey::public_key).collect());
        let client = SigningKey::from_seed([9; 32]);
        let transactions: Vec<Transaction> = (1..=3)
            .map(|nonce| {
                let body = TxBody {
                    chain_id: CHAIN.to_string(),
                    sender: client.public_key(),
                    nonce,
                    operations: vec![Operation::Put { key: format!("k{nonce}"), value: vec![nonce as u8] }],
                };
                Transaction::new(body, &client)
            })
            .collect();
        let header = Header {
            chain_id: CHAIN.to_string(),
            height: 7,
            view: 2,
            previous_hash: Hash::digest(b"parent"),
            tx_root: Hash::ZERO,
            state_root: Hash::digest(b"state"),
            timestamp_ms: 1_000,
            proposer: validators.primary(2),
            pow_difficulty: 4,
            pow_nonce: 0,
        };
        let mut block = Block::new(header, transactions);
        block.header.seal();
        let target = VoteTarget { height: 7, view: 2, block_hash: block.hash() };
        let mut votes: Vec<CommitVote> = keys[..3]
            .iter()
            .map(|key| CommitVote {
                voter: key.public_key(),
                signature: sign_vote(Domain::Commit, CHAIN, &target, key),
            })
            .collect();
        // As nodes write them: ordered by voter.
        votes.sort_by_key(|vote| vote.voter);
        let certificate = CommitCertificate { target, votes };
        let receipt = Receipt {
            transaction: block.transactions[1].clone(),
            proof: block.tx_proof(1).unwrap(),
            header: block.header.clone(),
            certificate,
        };
        (receipt, validators)
    }

    #[test]
    fn a_receipt_from_a_certified_block_verifies() {
        let (receipt, validators) = receipt();
        assert_eq!(receipt.verify(CHAIN, &validators), Ok(()));
        let json = serde_json::to_string(&receipt).unwrap();
        let back: Receipt = serde_json::from_str(&json).unwrap();
        assert_eq!(back.verify(CHAIN, &validators), Ok(()));
    }

    #[test]
    fn changing_any_byte_of_the_receipt_breaks_it() {
        let (receipt, validators) = receipt();
        let bytes = encode(&receipt);
        for position in 0..bytes.len() {
            let mut tampered = bytes.clone();
            tampered[position] ^= 0x01;
            if let Ok(changed) = decode::<Receipt>(&tampered) {
                assert!(
                    changed.verify(CHAIN, &validators).is_err(),
                    "flipping byte {position} still verifies"
                );
            }
        }
    }

    /// The file either parses to a receipt that fails, or is refused as not canonical, for every
    /// byte and several kinds of change (bit flips, case, whitespace swaps).
    #[test]
    fn changing_any_byte_of_the_receipt_file_breaks_it() {
        let (receipt, validators) = receipt();
        let text = receipt.to_file_text().into_bytes();
        let read = Receipt::from_file_text(&text).unwrap();
        assert_eq!(read.verify(CHAIN, &validators), Ok(()));
        for position in 0..text.len() {
            for change in [0x01, 0x20, 0x80] {
                let mut tampered = text.clone();
                tampered[position] ^= change;
                let verdict = Receipt::from_file_text(&tampered).map_err(|error| error.to_string()).and_then(
                    |changed| changed.verify(CHAIN, &validators).map_err(|error| error.to_string()),
                );
                assert!(verdict.is_err(), "changing byte {position} by {change:#x} still verifies");
            }
        }
        let mut spaced = text.clone();
        spaced.insert(1, b' ');
        assert_eq!(Receipt::from_file_text(&spaced), Err(ReceiptFileError::NotCanonical));
        // Votes out of voter order: the file is well formed, the certificate is not.
        let mut reordered = receipt.clone();
        reordered.certificate.votes.reverse();
        let reordered = Receipt::from_file_text(&reordered.to_file_text().into_bytes()).unwrap();
        assert!(matches!(
            reordered.verify(CHAIN, &validators),
            Err(ReceiptError::Certificate(CertificateError::VotesOutOfOrder { .. }))
        ));
    }

    #[test]
    fn a_receipt_checked_against_another_chain_or_set_fails() {
        let (receipt, validators) = receipt();
        assert!(matches!(receipt.verify("other", &validators), Err(ReceiptError::WrongChain { .. })));
        let strangers = ValidatorSet::new(
            (11..=14u8).map(|seed| SigningKey::from_seed([seed; 32]).public_key()).collect(),
        );
        assert!(matches!(receipt.verify(CHAIN, &strangers), Err(ReceiptError::Certificate(_))));
    }
}

//! Offline-verifiable proof that a transaction is in a final block.
//!
//! A receipt carries the transaction, its Merkle path to the block's transaction root, the block
//! header and the block's commit certificate, and the blocks that changed the rules between genesis
//! and that height (each certified by the set in force at its own height, with its admin
//! transactions and their Merkle paths). Anyone holding the genesis file can check it without a
//! node: start from the genesis set, follow each change to the set in force at the receipt's
//! height, and check the quorum of that set. Each change's header commits to the rules its block
//! leaves scheduled (`Header::rules_hash`), so a receipt that leaves out an admin transaction or
//! an earlier change derives other rules than the header names, and is refused.

use borsh::{BorshDeserialize, BorshSerialize};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::block::Header;
use crate::certificate::{CertificateError, CommitCertificate, VoteTarget};
use crate::crypto::Hash;
use crate::genesis::Genesis;
use crate::merkle::MerkleProof;
use crate::schedule::Schedule;
use crate::transaction::{Operation, Transaction};
use crate::validators::ValidatorSet;

#[derive(
    Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema,
)]
pub struct Receipt {
    pub transaction: Transaction,
    pub proof: MerkleProof,
    pub header: Header,
    pub certificate: CommitCertificate,
    /// Every block that changed the validators or parameters in force at or below this block's
    /// height, oldest first (none while the genesis rules hold, and then the field is left out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rule_changes: Vec<RuleChange>,
}

/// A committed block that changed the rules: its header, its commit certificate, and its admin
/// transactions in block order with their Merkle paths.
#[derive(
    Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema,
)]
pub struct RuleChange {
    pub header: Header,
    pub certificate: CommitCertificate,
    pub transactions: Vec<ProvenTransaction>,
}

/// A transaction with its Merkle path to its block's transaction root.
#[derive(
    Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema,
)]
pub struct ProvenTransaction {
    pub transaction: Transaction,
    pub proof: MerkleProof,
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
    #[error("the rule change at height {height} is not above the one before it (height {previous})")]
    RuleChangeOrder { height: u64, previous: u64 },
    #[error(
        "the rule change at height {height} takes effect at {activation}, above the receipt's height {receipt_height}"
    )]
    RuleChangeAfterBlock { height: u64, activation: u64, receipt_height: u64 },
    #[error(
        "the rule change at height {height} carries a transaction without an admin operation, or none at all"
    )]
    RuleChangeTransactions { height: u64 },
    #[error("the rule change at height {height} changes no rule")]
    RuleChangeChangesNothing { height: u64 },
    #[error(
        "rule change at height {height}: its header commits to rules {committed:?}, the receipt's transactions give {derived:?} (a transaction or an earlier rule change was left out)"
    )]
    RuleChangeRulesHash { height: u64, committed: Hash, derived: Hash },
    #[error("the rule change at height {height}: {reason}")]
    RuleChange { height: u64, reason: Box<ReceiptError> },
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

    /// Checks the receipt against the chain's `genesis`: follows each rule change from the
    /// genesis rules, then checks every link from the transaction to a quorum of the set in force
    /// at its block's height. Returns that set.
    pub fn verify(&self, genesis: &Genesis) -> Result<ValidatorSet, ReceiptError> {
        let validators = self.validators_at_block(genesis)?;
        self.verify_against(&genesis.chain_id, &validators)?;
        Ok(validators)
    }

    /// The set in force at this receipt's height, from `genesis` and the rule changes, each of
    /// which is checked against the set in force at its own height and against the rules its
    /// header commits to.
    fn validators_at_block(&self, genesis: &Genesis) -> Result<ValidatorSet, ReceiptError> {
        let mut schedule = Schedule::from_genesis(genesis);
        let mut previous = 0;
        for change in &self.rule_changes {
            let height = change.header.height;
            if height <= previous {
                return Err(ReceiptError::RuleChangeOrder { height, previous });
            }
            let activation = schedule.activation(height);
            if activation > self.header.height {
                return Err(ReceiptError::RuleChangeAfterBlock {
                    height,
                    activation,
                    receipt_height: self.header.height,
                });
            }
            change
                .verify(&genesis.chain_id, schedule.validators_at(height))
                .map_err(|reason| ReceiptError::RuleChange { height, reason: Box::new(reason) })?;
            if !schedule.observe(height, change.transactions.iter().map(|proven| &proven.transaction)) {
                return Err(ReceiptError::RuleChangeChangesNothing { height });
            }
            // The header names the rules its whole block left scheduled on the whole chain: a
            // transaction or an earlier change left out of the receipt gives other rules.
            let derived = schedule.latest().hash();
            if derived != change.header.rules_hash {
                return Err(ReceiptError::RuleChangeRulesHash {
                    height,
                    committed: change.header.rules_hash,
                    derived,
                });
            }
            previous = height;
        }
        Ok(schedule.validators_at(self.header.height).clone())
    }

    /// Checks every link from the transaction to a quorum of `validators` (the set in force at
    /// the receipt's height) signing COMMIT for its block on `chain_id`. The rule changes are not
    /// looked at: [`Receipt::verify`] is the check from genesis.
    pub fn verify_against(&self, chain_id: &str, validators: &ValidatorSet) -> Result<(), ReceiptError> {
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
        verify_certified_header(&self.header, &self.certificate, chain_id, validators)
    }
}

impl RuleChange {
    /// The proof for a committed `block` that changed the rules: its admin transactions.
    pub fn from_block(block: &crate::Block, certificate: CommitCertificate) -> RuleChange {
        let transactions = block
            .transactions
            .iter()
            .enumerate()
            .filter(|(_, transaction)| {
                transaction.body.operations.iter().any(|op| matches!(op, Operation::Admin(_)))
            })
            .filter_map(|(index, transaction)| {
                Some(ProvenTransaction { transaction: transaction.clone(), proof: block.tx_proof(index)? })
            })
            .collect();
        RuleChange { header: block.header.clone(), certificate, transactions }
    }

    /// The block is certified by `validators` (the set in force at its height), and every
    /// transaction is an admin transaction in it, in block order.
    fn verify(&self, chain_id: &str, validators: &ValidatorSet) -> Result<(), ReceiptError> {
        verify_certified_header(&self.header, &self.certificate, chain_id, validators)?;
        let height = self.header.height;
        let mut last_index = None;
        for ProvenTransaction { transaction, proof } in &self.transactions {
            let is_admin = transaction.body.operations.iter().any(|op| matches!(op, Operation::Admin(_)));
            if !is_admin || last_index.is_some_and(|last| proof.index <= last) {
                return Err(ReceiptError::RuleChangeTransactions { height });
            }
            if !proof.verify(&transaction.hash(), &self.header.tx_root) {
                return Err(ReceiptError::MerklePath);
            }
            last_index = Some(proof.index);
        }
        if self.transactions.is_empty() {
            return Err(ReceiptError::RuleChangeTransactions { height });
        }
        Ok(())
    }
}

/// `header` is on `chain_id`, sealed, and committed by a quorum of `validators` (`certificate`).
fn verify_certified_header(
    header: &Header,
    certificate: &CommitCertificate,
    chain_id: &str,
    validators: &ValidatorSet,
) -> Result<(), ReceiptError> {
    if header.chain_id != chain_id {
        return Err(ReceiptError::WrongChain {
            expected: chain_id.to_string(),
            found: header.chain_id.clone(),
        });
    }
    if !header.is_sealed() {
        return Err(ReceiptError::Seal(header.pow_difficulty));
    }
    let target = certificate.target;
    if target.height != header.height {
        return Err(ReceiptError::CertificateHeight { expected: header.height, found: target.height });
    }
    // The view is the certificate's own: a block re-proposed after a view change commits later.
    if target != (VoteTarget { height: header.height, view: target.view, block_hash: header.hash() }) {
        return Err(ReceiptError::CertificateBlock);
    }
    certificate.verify(chain_id, validators)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificate::{CommitVote, sign_vote};
    use crate::crypto::{Domain, Hash, SigningKey};
    use crate::encoding::{decode, encode};
    use crate::transaction::{AdminOperation, Operation, TxBody};
    use crate::{Block, PublicKey, Rules, Transaction};

    const CHAIN: &str = "receipt-test";

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_seed([seed; 32])
    }

    fn transaction(sender: &SigningKey, nonce: u64, operation: Operation) -> Transaction {
        let body = TxBody {
            chain_id: CHAIN.to_string(),
            sender: sender.public_key(),
            nonce,
            operations: vec![operation],
        };
        Transaction::new(body, sender)
    }

    /// A sealed block at `height` with `transactions`, and a certificate signed by `signers`.
    fn certified(height: u64, transactions: Vec<Transaction>, signers: &[u8]) -> (Block, CommitCertificate) {
        certified_with_rules(height, transactions, signers, Hash::digest(b"rules"))
    }

    /// The same, its header committing to `rules_hash`.
    fn certified_with_rules(
        height: u64,
        transactions: Vec<Transaction>,
        signers: &[u8],
        rules_hash: Hash,
    ) -> (Block, CommitCertificate) {
        let header = Header {
            chain_id: CHAIN.to_string(),
            height,
            view: 2,
            previous_hash: Hash::digest(b"parent"),
            tx_root: Hash::ZERO,
            state_root: Hash::digest(b"state"),
            rules_hash,
            timestamp_ms: 1_000,
            proposer: key(1).public_key(),
            pow_difficulty: 4,
            pow_nonce: 0,
        };
        let mut block = Block::new(header, transactions);
        block.header.seal();
        let target = VoteTarget { height, view: 2, block_hash: block.hash() };
        let mut votes: Vec<CommitVote> = signers
            .iter()
            .map(|seed| CommitVote {
                voter: key(*seed).public_key(),
                signature: sign_vote(Domain::Commit, CHAIN, &target, &key(*seed)),
            })
            .collect();
        // As nodes write them: ordered by voter.
        votes.sort_by_key(|vote| vote.voter);
        (block, CommitCertificate { target, votes })
    }

    fn receipt() -> (Receipt, ValidatorSet) {
        let validators = ValidatorSet::new((1..=4).map(|seed| key(seed).public_key()).collect());
        let client = key(9);
        let transactions: Vec<Transaction> = (1..=3)
            .map(|nonce| {
                transaction(
                    &client,
                    nonce,
                    Operation::Put { key: format!("k{nonce}"), value: vec![nonce as u8] },
                )
            })
            .collect();
        let (block, certificate) = certified(7, transactions, &[1, 2, 3]);
        let receipt = Receipt {
            transaction: block.transactions[1].clone(),
            proof: block.tx_proof(1).unwrap(),
            header: block.header.clone(),
            certificate,
            rule_changes: Vec::new(),
        };
        (receipt, validators)
    }

    /// Genesis validators 1..=4, admin 100, checkpoint interval 2 (a change committed at `c`
    /// applies from `c + 5`).
    fn genesis() -> Genesis {
        Genesis {
            chain_id: CHAIN.into(),
            genesis_time_ms: 0,
            validators: (1..=4).map(|seed| key(seed).public_key()).collect(),
            admins: vec![key(100).public_key()],
            members: Vec::new(),
            params: crate::ConsensusParams { checkpoint_interval: 2, ..crate::ConsensusParams::default() },
        }
    }

    /// A block at `height` that applies `operations` (one admin transaction each, after an
    /// ordinary one) on top of `rules`, the latest scheduled before it, which it advances; its
    /// header commits to the result. Certified by `signers`.
    fn rule_change(
        height: u64,
        operations: Vec<AdminOperation>,
        signers: &[u8],
        rules: &mut Rules,
    ) -> RuleChange {
        let mut transactions = vec![transaction(&key(9), height, Operation::Delete { key: "k".into() })];
        transactions.extend(
            operations
                .into_iter()
                .enumerate()
                .map(|(i, op)| transaction(&key(100), height * 10 + i as u64, Operation::Admin(op))),
        );
        if let Some(next) = rules.after(&transactions) {
            *rules = next;
        }
        let (block, certificate) = certified_with_rules(height, transactions, signers, rules.hash());
        RuleChange::from_block(&block, certificate)
    }

    /// The genesis rules and what `operations` make of them, in order.
    fn rules_after(operations: &[AdminOperation]) -> Rules {
        let mut rules = Rules::from_genesis(&genesis());
        for (i, operation) in operations.iter().enumerate() {
            let tx = transaction(&key(100), i as u64, Operation::Admin(operation.clone()));
            rules = rules.after([&tx]).unwrap_or(rules);
        }
        rules
    }

    fn add(seed: u8) -> AdminOperation {
        AdminOperation::AddValidator { public_key: key(seed).public_key() }
    }

    fn remove(seed: u8) -> AdminOperation {
        AdminOperation::RemoveValidator { public_key: key(seed).public_key() }
    }

    /// Validator 5 joins at height 3 (in force from 8), validator 1 leaves at height 9 (from 14);
    /// the receipt is at height 20, certified by 2, 3 and 5 (a quorum of the four then).
    fn receipt_after_changes() -> Receipt {
        let mut rules = Rules::from_genesis(&genesis());
        let add = rule_change(3, vec![add(5)], &[1, 2, 3], &mut rules);
        let remove = rule_change(9, vec![remove(1)], &[1, 2, 5, 4], &mut rules);
        let (block, certificate) =
            certified(20, vec![transaction(&key(9), 1, Operation::Delete { key: "x".into() })], &[2, 3, 5]);
        Receipt {
            transaction: block.transactions[0].clone(),
            proof: block.tx_proof(0).unwrap(),
            header: block.header,
            certificate,
            rule_changes: vec![add, remove],
        }
    }

    /// A receipt at height 20 certified by `signers`, with `rule_changes`.
    fn receipt_at_20(signers: &[u8], rule_changes: Vec<RuleChange>) -> Receipt {
        let (block, certificate) =
            certified(20, vec![transaction(&key(9), 1, Operation::Delete { key: "x".into() })], signers);
        Receipt {
            transaction: block.transactions[0].clone(),
            proof: block.tx_proof(0).unwrap(),
            header: block.header,
            certificate,
            rule_changes,
        }
    }

    #[test]
    fn a_receipt_follows_the_rule_changes_from_genesis() {
        let receipt = receipt_after_changes();
        let set = receipt.verify(&genesis()).expect("verifies from genesis");
        let expected: Vec<PublicKey> = [2, 3, 4, 5].map(|seed| key(seed).public_key()).to_vec();
        assert_eq!(set.keys(), expected.as_slice());
        let read = Receipt::from_file_text(receipt.to_file_text().as_bytes()).unwrap();
        assert_eq!(read.verify(&genesis()), Ok(set));

        // Without the changes the genesis set does not know validator 5.
        let mut bare = receipt.clone();
        bare.rule_changes.clear();
        assert!(matches!(bare.verify(&genesis()), Err(ReceiptError::Certificate(_))));
        // Without the removal, the set is five and three votes are short of its quorum of four.
        let mut partial = receipt.clone();
        partial.rule_changes.truncate(1);
        assert!(matches!(partial.verify(&genesis()), Err(ReceiptError::Certificate(_))));
        // Twice the same change.
        let mut repeated = receipt.clone();
        repeated.rule_changes.push(receipt.rule_changes[1].clone());
        assert!(matches!(
            repeated.verify(&genesis()),
            Err(ReceiptError::RuleChangeOrder { height: 9, previous: 9 })
        ));
        // The removal certified by the genesis set alone (no vote of 5, and 1 voted): 3 of 5.
        let mut short = receipt.clone();
        short.rule_changes[1] = rule_change(9, vec![remove(1)], &[1, 2, 3], &mut rules_after(&[add(5)]));
        assert!(matches!(short.verify(&genesis()), Err(ReceiptError::RuleChange { height: 9, .. })));
        // A change that cannot apply yet at the receipt's height.
        let mut late = receipt.clone();
        late.rule_changes.push(rule_change(
            16,
            vec![add(6)],
            &[2, 3, 5],
            &mut rules_after(&[add(5), remove(1)]),
        ));
        assert!(matches!(
            late.verify(&genesis()),
            Err(ReceiptError::RuleChangeAfterBlock { height: 16, .. })
        ));
        // A block that changed nothing is no rule change; nor is a non-admin transaction.
        let mut idle = receipt.clone();
        idle.rule_changes.insert(1, rule_change(5, vec![add(5)], &[1, 2, 3], &mut rules_after(&[add(5)])));
        assert!(matches!(idle.verify(&genesis()), Err(ReceiptError::RuleChangeChangesNothing { height: 5 })));
        let mut ordinary = receipt.clone();
        let (block, certificate) =
            certified(3, vec![transaction(&key(9), 1, Operation::Delete { key: "k".into() })], &[1, 2, 3]);
        ordinary.rule_changes[0] = RuleChange {
            transactions: vec![ProvenTransaction {
                transaction: block.transactions[0].clone(),
                proof: block.tx_proof(0).unwrap(),
            }],
            header: block.header,
            certificate,
        };
        assert!(matches!(ordinary.verify(&genesis()), Err(ReceiptError::RuleChange { height: 3, .. })));
    }

    /// `change` with its header's `rules_hash` set to `rules_hash`, sealed and certified again by
    /// `signers`: what the receipts below would need were the rules not bound into the header.
    fn recommitted(change: &RuleChange, rules_hash: Hash, signers: &[u8]) -> RuleChange {
        let transactions = change.transactions.iter().map(|proven| proven.transaction.clone());
        let mut all = vec![transaction(&key(9), change.header.height, Operation::Delete { key: "k".into() })];
        all.extend(transactions);
        let (block, certificate) = certified_with_rules(change.header.height, all, signers, rules_hash);
        RuleChange::from_block(&block, certificate)
    }

    #[test]
    fn a_receipt_that_leaves_out_an_admin_transaction_is_refused() {
        // At height 3 validator 5 joins and validator 1 leaves, in two transactions: the set from
        // height 8 on is 2, 3, 4, 5 (a quorum of three).
        let mut rules = Rules::from_genesis(&genesis());
        let change = rule_change(3, vec![add(5), remove(1)], &[1, 2, 3], &mut rules);
        assert_eq!(change.transactions.len(), 2);
        let genuine = receipt_at_20(&[2, 3, 4], vec![change.clone()]);
        assert_eq!(genuine.verify(&genesis()).map(|set| set.len()), Ok(4));

        // Without the addition, validators 2 and 3 would be a quorum of 2, 3, 4.
        let mut partial = change.clone();
        partial.transactions.remove(0);
        let forged = receipt_at_20(&[2, 3], vec![partial.clone()]);
        let derived = rules_after(&[remove(1)]).hash();
        assert_eq!(
            forged.verify(&genesis()),
            Err(ReceiptError::RuleChangeRulesHash { height: 3, committed: rules.hash(), derived })
        );
        // Every other check passes: a header committing to the derived rules would let it through.
        let unbound = receipt_at_20(&[2, 3], vec![recommitted(&partial, derived, &[1, 2, 3])]);
        assert_eq!(unbound.verify(&genesis()).map(|set| set.len()), Ok(3));
    }

    #[test]
    fn a_receipt_that_leaves_out_an_earlier_rule_change_is_refused() {
        // The chain grows (5, 6 and 7 join at height 3) and then shrinks (1 to 4 leave at height
        // 5): from height 10 on the set is 5, 6, 7.
        let mut rules = Rules::from_genesis(&genesis());
        let grow = rule_change(3, vec![add(5), add(6), add(7)], &[1, 2, 3], &mut rules);
        let shrink = rule_change(5, vec![remove(1), remove(2), remove(3), remove(4)], &[1, 2, 3], &mut rules);
        let genuine = receipt_at_20(&[5, 6], vec![grow, shrink.clone()]);
        let expected: Vec<PublicKey> = [5, 6, 7].map(|seed| key(seed).public_key()).to_vec();
        assert_eq!(genuine.verify(&genesis()).map(|set| set.keys().to_vec()), Ok(expected));

        // Left out, the growth leaves validator 4 alone (the last is never removed): a set that
        // never existed, whose quorum validator 4, removed at height 5, meets by itself.
        let forged = receipt_at_20(&[4], vec![shrink.clone()]);
        let derived = rules_after(&[remove(1), remove(2), remove(3), remove(4)]);
        assert_eq!(derived.validators.keys(), &[key(4).public_key()]);
        assert_eq!(
            forged.verify(&genesis()),
            Err(ReceiptError::RuleChangeRulesHash {
                height: 5,
                committed: rules.hash(),
                derived: derived.hash()
            })
        );
        let unbound = receipt_at_20(&[4], vec![recommitted(&shrink, derived.hash(), &[1, 2, 3])]);
        assert_eq!(unbound.verify(&genesis()).map(|set| set.len()), Ok(1));
    }

    #[test]
    fn a_rule_change_at_an_absurd_height_is_refused_without_overflow() {
        let mut receipt = receipt_after_changes();
        receipt.rule_changes[1].header.height = u64::MAX;
        assert!(matches!(receipt.verify(&genesis()), Err(ReceiptError::RuleChangeAfterBlock { .. })));
    }

    #[test]
    fn changing_any_byte_of_a_receipt_with_rule_changes_breaks_it() {
        let receipt = receipt_after_changes();
        let bytes = encode(&receipt);
        for position in 0..bytes.len() {
            let mut tampered = bytes.clone();
            tampered[position] ^= 0x01;
            if let Ok(changed) = decode::<Receipt>(&tampered) {
                assert!(changed.verify(&genesis()).is_err(), "flipping byte {position} still verifies");
            }
        }
    }

    #[test]
    fn a_receipt_from_a_certified_block_verifies() {
        let (receipt, validators) = receipt();
        assert_eq!(receipt.verify_against(CHAIN, &validators), Ok(()));
        let json = serde_json::to_string(&receipt).unwrap();
        let back: Receipt = serde_json::from_str(&json).unwrap();
        assert_eq!(back.verify_against(CHAIN, &validators), Ok(()));
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
                    changed.verify_against(CHAIN, &validators).is_err(),
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
        assert_eq!(read.verify_against(CHAIN, &validators), Ok(()));
        for position in 0..text.len() {
            for change in [0x01, 0x20, 0x80] {
                let mut tampered = text.clone();
                tampered[position] ^= change;
                let verdict = Receipt::from_file_text(&tampered).map_err(|error| error.to_string()).and_then(
                    |changed| changed.verify_against(CHAIN, &validators).map_err(|error| error.to_string()),
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
            reordered.verify_against(CHAIN, &validators),
            Err(ReceiptError::Certificate(CertificateError::VotesOutOfOrder { .. }))
        ));
    }

    #[test]
    fn a_receipt_checked_against_another_chain_or_set_fails() {
        let (receipt, validators) = receipt();
        assert!(matches!(receipt.verify_against("other", &validators), Err(ReceiptError::WrongChain { .. })));
        let strangers = ValidatorSet::new(
            (11..=14u8).map(|seed| SigningKey::from_seed([seed; 32]).public_key()).collect(),
        );
        assert!(matches!(receipt.verify_against(CHAIN, &strangers), Err(ReceiptError::Certificate(_))));
    }
}

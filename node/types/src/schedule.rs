//! Which validators and parameters govern each height.
//!
//! An admin transaction committed at height `c` changes the validator set or the consensus
//! parameters from height `c + window + 1` on, where `window` is the watermark window. Every
//! replica that handles a height has committed at least `height - window` blocks (it accepts
//! nothing beyond its window), so all of them know the rules for every height they touch, and
//! all apply a change at the same height.
//!
//! Every header commits to the latest scheduled rules after its block (`Header::rules_hash`),
//! so a verifier that follows the chain's rule changes can tell when one was left out.
//!
//! Replicas and offline receipt verification (a receipt carries the blocks that changed the
//! rules, `crate::receipt`) follow changes through this one type, so they cannot disagree.

use std::collections::BTreeMap;
use std::sync::Arc;

use borsh::{BorshDeserialize, BorshSerialize};

use crate::block::Block;
use crate::crypto::Hash;
use crate::encoding::encode;
use crate::genesis::{ConsensusParams, Genesis};
use crate::transaction::{AdminOperation, Operation, Transaction};
use crate::validators::ValidatorSet;

/// The rules in force from some height on. Encoded as `encode(validators: Vec<PublicKey>) ||
/// encode(params)` (a `ValidatorSet` is its key list), which is what `rules_hash` hashes.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Rules {
    pub validators: ValidatorSet,
    pub params: ConsensusParams,
}

impl Rules {
    pub fn from_genesis(genesis: &Genesis) -> Rules {
        Rules { validators: genesis.validator_set(), params: genesis.params.clone() }
    }

    /// What a header's `rules_hash` holds: SHA-256 of the canonical encoding.
    pub fn hash(&self) -> Hash {
        Hash::digest(&encode(self))
    }

    /// These rules with the admin operations of `transactions` applied in order
    /// (docs/encoding.md, section 8.1), or `None` if they come out the same. Operations were
    /// authorised by execution before a block could commit; parameters that are no valid change
    /// are skipped, as execution refuses them.
    pub fn after<'a>(&self, transactions: impl IntoIterator<Item = &'a Transaction>) -> Option<Rules> {
        // Cloned at the first operation that may change something: most blocks have none.
        let mut next: Option<Rules> = None;
        for operation in transactions.into_iter().flat_map(|tx| &tx.body.operations) {
            let Operation::Admin(operation) = operation else { continue };
            match operation {
                AdminOperation::AddValidator { public_key } => {
                    next.get_or_insert_with(|| self.clone()).validators.add(*public_key);
                }
                AdminOperation::RemoveValidator { public_key } => {
                    next.get_or_insert_with(|| self.clone()).validators.remove(public_key);
                }
                AdminOperation::SetConsensusParams { params } => {
                    let rules = next.get_or_insert_with(|| self.clone());
                    if rules.params.validate_change(params).is_ok() {
                        rules.params = params.clone();
                    }
                }
                AdminOperation::AddMember { .. }
                | AdminOperation::RemoveMember { .. }
                | AdminOperation::AddAdmin { .. }
                | AdminOperation::RemoveAdmin { .. } => {}
            }
        }
        next.filter(|next| next != self)
    }
}

/// Rules with their hash beside them, shared rather than copied: what the blocks in flight leave
/// scheduled, so a header's `rules_hash` is checked without hashing again unless its block
/// changes the rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashedRules {
    rules: Arc<Rules>,
    hash: Hash,
}

impl HashedRules {
    pub fn new(rules: Rules) -> HashedRules {
        let hash = rules.hash();
        HashedRules { rules: Arc::new(rules), hash }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// The latest scheduled rules after a block of `transactions` on top of these.
    pub fn after(&self, transactions: &[Transaction]) -> HashedRules {
        match self.rules.after(transactions) {
            Some(next) => HashedRules::new(next),
            None => self.clone(),
        }
    }
}

/// Rules by the height they take effect. Persisted with each block that changes it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Schedule {
    window: u64,
    by_activation: BTreeMap<u64, Rules>,
}

impl Schedule {
    pub fn from_genesis(genesis: &Genesis) -> Schedule {
        Schedule {
            window: genesis.params.watermark_window(),
            by_activation: BTreeMap::from([(1, Rules::from_genesis(genesis))]),
        }
    }

    /// False for a schedule no genesis could produce (read back from a damaged store).
    pub fn is_well_formed(&self) -> bool {
        self.window > 0 && self.by_activation.first_key_value().is_some()
    }

    /// The rules for `height`.
    pub fn at(&self, height: u64) -> &Rules {
        // Below the earliest kept activation (pruned history) the earliest rules are the best
        // answer; a schedule is never empty (built from genesis, pruning keeps one entry).
        self.by_activation
            .range(..=height)
            .next_back()
            .or_else(|| self.by_activation.first_key_value())
            .map(|(_, rules)| rules)
            .unwrap_or_else(|| unreachable!("a schedule always holds rules"))
    }

    /// The rules of the last change committed, in force or not yet: what the last committed
    /// header's `rules_hash` commits to. (Pruning keeps them.)
    pub fn latest(&self) -> &Rules {
        self.by_activation
            .last_key_value()
            .map(|(_, rules)| rules)
            .unwrap_or_else(|| unreachable!("a schedule always holds rules"))
    }

    /// The height from which the rules for `height` govern (1 for the genesis rules; the earliest
    /// kept activation below pruned history).
    pub fn in_force_since(&self, height: u64) -> u64 {
        self.by_activation
            .range(..=height)
            .next_back()
            .or_else(|| self.by_activation.first_key_value())
            .map_or(1, |(activation, _)| *activation)
    }

    pub fn validators_at(&self, height: u64) -> &ValidatorSet {
        &self.at(height).validators
    }

    pub fn params_at(&self, height: u64) -> &ConsensusParams {
        &self.at(height).params
    }

    pub fn window(&self) -> u64 {
        self.window
    }

    /// The latest scheduled rules and the height they take effect, if that is after `height`:
    /// a change committed but not yet in force there.
    pub fn pending_after(&self, height: u64) -> Option<(u64, &Rules)> {
        let (activation, rules) = self.by_activation.last_key_value()?;
        (*activation > height).then_some((*activation, rules))
    }

    /// True if the rules change anywhere in `from..=to`.
    pub fn changes_within(&self, from: u64, to: u64) -> bool {
        from < to && self.by_activation.range(from + 1..=to).next().is_some()
    }

    /// The first height governed by a change committed at `committed_at`.
    pub fn activation(&self, committed_at: u64) -> u64 {
        // Saturating: a height read from a hostile receipt may be anything.
        committed_at.saturating_add(self.window).saturating_add(1)
    }

    /// Applies the admin operations of a committed `block`. Returns true if the schedule changed.
    /// Operations were authorised by execution before the block could commit.
    pub fn observe_commit(&mut self, block: &Block) -> bool {
        self.observe(block.height(), &block.transactions)
    }

    /// Applies the admin operations of `transactions`, in order, committed at `height`
    /// ([`Rules::after`] on the latest rules). Returns true if the rules changed.
    pub fn observe<'a>(
        &mut self,
        height: u64,
        transactions: impl IntoIterator<Item = &'a Transaction>,
    ) -> bool {
        let Some(next) = self.latest().after(transactions) else { return false };
        self.by_activation.insert(self.activation(height), next);
        true
    }

    /// Forgets rules for heights below `height` (a stable checkpoint: certificates at it and
    /// above are still checked, e.g. the committed tip a view change carries).
    pub fn prune(&mut self, height: u64) {
        let keep_from = self.by_activation.range(..=height).next_back().map(|(activation, _)| *activation);
        if let Some(keep_from) = keep_from {
            self.by_activation = self.by_activation.split_off(&keep_from);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Header, PublicKey, SigningKey, TxBody};

    const CHAIN: &str = "schedule-test";
    const CHECKPOINT_INTERVAL: u64 = 2;
    /// The watermark window, twice the checkpoint interval.
    const WINDOW: u64 = 2 * CHECKPOINT_INTERVAL;

    fn validator(i: u8) -> PublicKey {
        SigningKey::from_seed([i; 32]).public_key()
    }

    fn genesis() -> Genesis {
        Genesis {
            chain_id: CHAIN.into(),
            genesis_time_ms: 0,
            validators: (1..=4).map(validator).collect(),
            admins: vec![SigningKey::from_seed([100; 32]).public_key()],
            members: Vec::new(),
            params: ConsensusParams {
                checkpoint_interval: CHECKPOINT_INTERVAL,
                pow_difficulty_bits: 4,
                ..ConsensusParams::default()
            },
        }
    }

    /// A committed block at `height` carrying one admin transaction with `operation`.
    fn admin_block(height: u64, operation: AdminOperation) -> Block {
        let admin = SigningKey::from_seed([100; 32]);
        let body = TxBody {
            chain_id: CHAIN.into(),
            sender: admin.public_key(),
            nonce: height,
            operations: vec![Operation::Admin(operation)],
        };
        let header = Header {
            chain_id: CHAIN.into(),
            height,
            view: 0,
            previous_hash: Hash::ZERO,
            tx_root: Hash::ZERO,
            state_root: Hash::ZERO,
            rules_hash: Hash::ZERO,
            timestamp_ms: 0,
            proposer: validator(1),
            pow_difficulty: 0,
            pow_nonce: 0,
        };
        Block::new(header, vec![Transaction::new(body, &admin)])
    }

    fn with_params(change: impl FnOnce(&mut ConsensusParams)) -> AdminOperation {
        let mut params = genesis().params;
        change(&mut params);
        AdminOperation::SetConsensusParams { params }
    }

    #[test]
    fn window_is_twice_the_checkpoint_interval() {
        assert_eq!(Schedule::from_genesis(&genesis()).window(), WINDOW);
    }

    #[test]
    fn added_validator_takes_effect_after_the_window() {
        let mut schedule = Schedule::from_genesis(&genesis());
        let before = schedule.validators_at(1).clone();
        assert_eq!(before.len(), 4);
        let committed_at = 3;
        assert!(schedule.observe_commit(&admin_block(
            committed_at,
            AdminOperation::AddValidator { public_key: validator(9) }
        )));
        let activation = committed_at + WINDOW + 1;
        for height in 0..activation {
            assert_eq!(schedule.validators_at(height), &before, "height {height}");
            assert_eq!(schedule.in_force_since(height), 1, "height {height}");
        }
        assert_eq!(schedule.in_force_since(activation + 5), activation);
        for height in activation..activation + 3 {
            let after = schedule.validators_at(height);
            assert_eq!(after.len(), 5, "height {height}");
            assert!(after.contains(&validator(9)));
        }
        // Adding a validator twice changes nothing.
        assert!(
            !schedule
                .observe_commit(&admin_block(4, AdminOperation::AddValidator { public_key: validator(9) }))
        );
    }

    #[test]
    fn removed_validator_leaves_after_the_window() {
        let mut schedule = Schedule::from_genesis(&genesis());
        let committed_at = 6;
        assert!(schedule.observe_commit(&admin_block(
            committed_at,
            AdminOperation::RemoveValidator { public_key: validator(2) }
        )));
        let activation = committed_at + WINDOW + 1;
        assert!(schedule.validators_at(activation - 1).contains(&validator(2)));
        assert!(!schedule.validators_at(activation).contains(&validator(2)));
        assert_eq!(schedule.validators_at(activation).keys(), &[validator(1), validator(3), validator(4)]);
        // Removing a key that is not a validator changes nothing.
        assert!(
            !schedule.observe_commit(&admin_block(
                7,
                AdminOperation::RemoveValidator { public_key: validator(9) }
            ))
        );
        assert!(!schedule.changes_within(activation, activation + 10));
    }

    #[test]
    fn changes_build_on_earlier_pending_changes() {
        let mut schedule = Schedule::from_genesis(&genesis());
        assert!(
            schedule
                .observe_commit(&admin_block(3, AdminOperation::AddValidator { public_key: validator(9) }))
        );
        assert!(
            schedule.observe_commit(&admin_block(
                4,
                AdminOperation::RemoveValidator { public_key: validator(1) }
            ))
        );
        let first = 3 + WINDOW + 1;
        assert_eq!(schedule.validators_at(first).len(), 5);
        let second = schedule.validators_at(first + 1);
        assert_eq!(second.keys(), &[validator(2), validator(3), validator(4), validator(9)]);
    }

    #[test]
    fn checkpoint_interval_cannot_change() {
        let mut schedule = Schedule::from_genesis(&genesis());
        let operation = with_params(|params| {
            params.checkpoint_interval = 8;
            params.pow_difficulty_bits = 6;
        });
        assert!(!schedule.observe_commit(&admin_block(2, operation)));
        assert_eq!(schedule.params_at(1_000), &genesis().params);
        assert!(!schedule.changes_within(1, 1_000));
    }

    #[test]
    fn difficulty_change_applies_at_the_activation_height() {
        let mut schedule = Schedule::from_genesis(&genesis());
        let committed_at = 5;
        assert!(schedule.observe_commit(&admin_block(
            committed_at,
            with_params(|params| params.pow_difficulty_bits = 9)
        )));
        let activation = committed_at + WINDOW + 1;
        assert_eq!(schedule.params_at(activation - 1).pow_difficulty_bits, 4);
        assert_eq!(schedule.params_at(activation).pow_difficulty_bits, 9);
        assert_eq!(schedule.validators_at(activation), schedule.validators_at(1), "validators unchanged");
        // Setting the same parameters again is no change.
        assert!(
            !schedule.observe_commit(&admin_block(6, with_params(|params| params.pow_difficulty_bits = 9)))
        );
        // Out-of-range parameters are ignored.
        assert!(
            !schedule.observe_commit(&admin_block(7, with_params(|params| params.pow_difficulty_bits = 40)))
        );
    }

    #[test]
    fn changes_within_sees_only_activations_after_from() {
        let mut schedule = Schedule::from_genesis(&genesis());
        assert!(!schedule.changes_within(1, 100));
        schedule.observe_commit(&admin_block(3, AdminOperation::AddValidator { public_key: validator(9) }));
        let activation = 3 + WINDOW + 1;
        assert!(schedule.changes_within(activation - 1, activation));
        assert!(schedule.changes_within(1, 100));
        assert!(!schedule.changes_within(1, activation - 1));
        assert!(!schedule.changes_within(activation, activation + 50));
        assert!(!schedule.changes_within(activation, activation), "an empty range");
        assert!(!schedule.changes_within(activation, activation - 1), "a reversed range");
    }

    #[test]
    fn the_rules_hash_covers_the_key_list_and_the_parameters() {
        let rules = Rules::from_genesis(&genesis());
        // docs/encoding.md, section 8.1: u32 key count, the keys, then the 29 parameter bytes.
        let mut bytes = (rules.validators.len() as u32).to_le_bytes().to_vec();
        for key in rules.validators.keys() {
            bytes.extend_from_slice(&key.0);
        }
        bytes.extend_from_slice(&encode(&rules.params));
        assert_eq!(bytes.len(), 4 + 4 * 32 + 29);
        assert_eq!(rules.hash(), Hash::digest(&bytes));
        let mut reordered = rules.clone();
        reordered.validators = ValidatorSet::new(rules.validators.keys().iter().rev().copied().collect());
        assert_ne!(reordered.hash(), rules.hash(), "the order of the set is part of the rules");
    }

    #[test]
    fn the_latest_rules_follow_every_change_and_only_changes_rehash() {
        let mut schedule = Schedule::from_genesis(&genesis());
        let genesis_rules = HashedRules::new(Rules::from_genesis(&genesis()));
        assert_eq!(genesis_rules.hash(), schedule.latest().hash());

        // A block of ordinary transactions, or of admin operations that change nothing.
        let ordinary = admin_block(2, AdminOperation::RemoveMember { name: "nobody".into() });
        let present = admin_block(3, AdminOperation::AddValidator { public_key: validator(2) });
        for block in [&ordinary, &present] {
            assert_eq!(genesis_rules.rules().after(&block.transactions), None);
            assert_eq!(genesis_rules.after(&block.transactions), genesis_rules);
            assert!(!schedule.observe_commit(block));
        }

        // A change committed but not in force yet is already the latest.
        let add = admin_block(4, AdminOperation::AddValidator { public_key: validator(9) });
        let after_add = genesis_rules.after(&add.transactions);
        assert!(schedule.observe_commit(&add));
        assert_ne!(after_add.hash(), genesis_rules.hash());
        assert_eq!(schedule.latest(), after_add.rules());
        assert_eq!(schedule.latest().hash(), after_add.hash());
        assert_eq!(schedule.validators_at(5), &genesis_rules.rules().validators);

        // Added and removed again in one block: the rules come out the same, so no change.
        let mut both = admin_block(6, AdminOperation::AddValidator { public_key: validator(7) });
        both.transactions.extend(
            admin_block(6, AdminOperation::RemoveValidator { public_key: validator(7) }).transactions,
        );
        assert_eq!(after_add.after(&both.transactions), after_add);
        assert!(!schedule.observe_commit(&both));

        // Pruning keeps the latest rules.
        schedule.prune(1_000);
        assert_eq!(schedule.latest().hash(), after_add.hash());
    }

    #[test]
    fn prune_keeps_the_rules_in_force_from_the_pruned_height_on() {
        let mut original = Schedule::from_genesis(&genesis());
        original.observe_commit(&admin_block(3, AdminOperation::AddValidator { public_key: validator(9) }));
        original.observe_commit(&admin_block(12, with_params(|params| params.pow_difficulty_bits = 7)));
        let (first, second) = (3 + WINDOW + 1, 12 + WINDOW + 1);
        for committed in [0, first - 2, first - 1, first, first + 3, second - 1, second + 5] {
            let mut pruned = original.clone();
            pruned.prune(committed);
            for height in committed.max(1)..second + 10 {
                assert_eq!(pruned.at(height), original.at(height), "pruned at {committed}, height {height}");
            }
            assert_eq!(pruned.window(), WINDOW);
        }
        // Pruning forgets what no longer matters: past the last activation, no change is ahead.
        let mut pruned = original.clone();
        pruned.prune(second + 5);
        assert_eq!(pruned.by_activation.len(), 1);
    }
}

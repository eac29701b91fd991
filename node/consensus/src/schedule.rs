//! Which validators and parameters govern each height.
//!
//! An admin transaction committed at height `c` changes the validator set or the consensus
//! parameters from height `c + window + 1` on, where `window` is the watermark window. Every
//! replica that handles a height has committed at least `height - window` blocks (it accepts
//! nothing beyond its window), so all of them know the rules for every height they touch, and
//! all apply a change at the same height.

use std::collections::BTreeMap;

use borsh::{BorshDeserialize, BorshSerialize};
use kubechain_types::{AdminOperation, Block, ConsensusParams, Genesis, Operation, ValidatorSet};

/// The rules in force from some height on.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Rules {
    pub validators: ValidatorSet,
    pub params: ConsensusParams,
}

/// Rules by the height they take effect. Persisted with each block that changes it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Schedule {
    window: u64,
    by_activation: BTreeMap<u64, Rules>,
}

impl Schedule {
    pub fn from_genesis(genesis: &Genesis) -> Schedule {
        let rules = Rules { validators: genesis.validator_set(), params: genesis.params.clone() };
        Schedule { window: genesis.params.watermark_window(), by_activation: BTreeMap::from([(1, rules)]) }
    }

    /// The rules for `height`.
    pub fn at(&self, height: u64) -> &Rules {
        self.by_activation
            .range(..=height.max(1))
            .next_back()
            .map(|(_, rules)| rules)
            .unwrap_or_else(|| unreachable!("the schedule always has rules from height 1"))
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

    /// True if the rules change anywhere in `from..=to`.
    pub fn changes_within(&self, from: u64, to: u64) -> bool {
        from < to && self.by_activation.range(from + 1..=to).next().is_some()
    }

    /// Applies the admin operations of a committed `block`. Returns true if the schedule changed.
    /// Operations were authorised by execution before the block could commit.
    pub fn observe_commit(&mut self, block: &Block) -> bool {
        let mut next = match self.by_activation.last_key_value() {
            Some((_, rules)) => rules.clone(),
            None => return false,
        };
        let mut changed = false;
        for operation in block.transactions.iter().flat_map(|tx| &tx.body.operations) {
            match operation {
                Operation::Admin(AdminOperation::AddValidator { public_key }) => {
                    changed |= !next.validators.contains(public_key);
                    next.validators.add(*public_key);
                }
                Operation::Admin(AdminOperation::RemoveValidator { public_key }) => {
                    changed |= next.validators.remove(public_key);
                }
                Operation::Admin(AdminOperation::SetConsensusParams { params })
                    if next.params.validate_change(params).is_ok() =>
                {
                    changed |= next.params != *params;
                    next.params = params.clone();
                }
                _ => {}
            }
        }
        if changed {
            let activation = block.height() + self.window + 1;
            self.by_activation.insert(activation, next);
        }
        changed
    }

    /// Forgets rules that no height above `committed` can need.
    pub fn prune(&mut self, committed: u64) {
        let keep_from = self.by_activation.range(..=committed + 1).next_back().map(|(height, _)| *height);
        if let Some(keep_from) = keep_from {
            self.by_activation = self.by_activation.split_off(&keep_from);
        }
    }
}

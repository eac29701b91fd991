//! The chain as a replica holds it: the committed tip, and for each uncommitted height a slot with
//! its proposal and votes; and the one answer to "what does a block at height h extend?".

use std::collections::BTreeMap;

use kubechain_types::{Block, CommitCertificate, Hash, HashedRules, Header};

use crate::messages::{PreparedCertificate, VoteKind};
use crate::votes::Votes;

/// The committed tip.
#[derive(Clone, Debug)]
pub(crate) struct Tip {
    pub height: u64,
    pub hash: Hash,
    pub state_root: Hash,
    pub timestamp_ms: u64,
    pub certificate: Option<CommitCertificate>,
    /// The latest scheduled rules after the tip: what its header's `rules_hash` commits to.
    pub rules: HashedRules,
}

impl Tip {
    /// The tip once the block with `header` is committed with `certificate`, leaving `rules`
    /// scheduled.
    pub fn committed(header: &Header, certificate: CommitCertificate, rules: HashedRules) -> Tip {
        Tip {
            height: header.height,
            hash: header.hash(),
            state_root: header.state_root,
            timestamp_ms: header.timestamp_ms,
            certificate: Some(certificate),
            rules,
        }
    }
}

/// What a new block extends: the hash it names as previous, the state it executes on, and the
/// time it may not precede.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Parent {
    pub hash: Hash,
    pub state_root: Hash,
    pub timestamp_ms: u64,
}

/// A block accepted as the proposal for its height, in the view it was accepted in.
#[derive(Clone, Debug)]
pub(crate) struct Proposal {
    pub view: u64,
    pub block: Block,
    pub hash: Hash,
    /// The application has executed it (blocks re-proposed by a view change arrive unexecuted).
    pub executed: bool,
    /// The latest scheduled rules after it, once its `rules_hash` was checked against them (a
    /// block re-proposed above a gap, or read back from the journal, waits for its parent's).
    pub rules_after: Option<HashedRules>,
}

impl Proposal {
    pub fn new(view: u64, block: Block, executed: bool, rules_after: Option<HashedRules>) -> Proposal {
        let hash = block.hash();
        Proposal { view, block, hash, executed, rules_after }
    }
}

/// Everything known about one uncommitted height.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    /// The accepted proposal, in the view it was accepted in.
    pub proposal: Option<Proposal>,
    /// The prepared certificate of the highest view.
    pub prepared: Option<PreparedCertificate>,
    pub prepares: Votes,
    pub commits: Votes,
    pub sent_prepare_view: Option<u64>,
}

impl Slot {
    pub fn prepared_in(&self, view: u64) -> bool {
        self.prepared.as_ref().is_some_and(|prepared| prepared.view == view)
    }

    /// The block with `hash`, if this slot knows it.
    pub fn block(&self, hash: &Hash) -> Option<&Block> {
        let proposed = self.proposal.as_ref().filter(|p| p.hash == *hash).map(|p| &p.block);
        proposed.or_else(|| self.prepared.as_ref().map(|p| &p.block).filter(|block| block.hash() == *hash))
    }

    /// The proposal accepted in `view`, if any.
    pub fn proposal_in(&self, view: u64) -> Option<&Proposal> {
        self.proposal.as_ref().filter(|p| p.view == view)
    }

    /// Puts back a proposal read from the journal, unless one of a later view is here already.
    pub fn restore_proposal(&mut self, view: u64, block: Block) {
        if self.proposal.as_ref().is_none_or(|p| p.view <= view) {
            self.proposal = Some(Proposal::new(view, block, false, None));
        }
    }

    /// Puts back a prepared certificate read from the journal, unless one of a later view is here.
    pub fn restore_prepared(&mut self, certificate: PreparedCertificate) {
        if self.prepared.as_ref().is_none_or(|p| p.view <= certificate.view) {
            self.prepared = Some(certificate);
        }
    }

    pub fn votes_mut(&mut self, kind: VoteKind) -> &mut Votes {
        match kind {
            VoteKind::Prepare => &mut self.prepares,
            VoteKind::Commit => &mut self.commits,
        }
    }
}

/// The parent of a block at `height` proposed in `view`: the committed tip right above it, or
/// else the proposal accepted at `height - 1` in that same view (a proposal of an earlier view
/// may be replaced, so nothing is built on it). `None` until that proposal is here.
pub(crate) fn parent_of(tip: &Tip, slots: &BTreeMap<u64, Slot>, height: u64, view: u64) -> Option<Parent> {
    if height == tip.height + 1 {
        return Some(Parent { hash: tip.hash, state_root: tip.state_root, timestamp_ms: tip.timestamp_ms });
    }
    let below = slots.get(&height.checked_sub(1)?)?.proposal_in(view)?;
    let header = &below.block.header;
    Some(Parent { hash: below.hash, state_root: header.state_root, timestamp_ms: header.timestamp_ms })
}

#[cfg(test)]
mod tests {
    use kubechain_types::{ConsensusParams, Header, PublicKey, Rules, ValidatorSet};

    use super::*;

    fn block(height: u64, view: u64, previous_hash: Hash) -> Block {
        let header = Header {
            chain_id: "chain-test".into(),
            height,
            view,
            previous_hash,
            tx_root: Hash::ZERO,
            state_root: Hash::digest(&height.to_le_bytes()),
            rules_hash: Hash::ZERO,
            timestamp_ms: 100 + height,
            proposer: PublicKey([0; 32]),
            pow_difficulty: 0,
            pow_nonce: 0,
        };
        Block::new(header, Vec::new())
    }

    fn tip() -> Tip {
        Tip {
            height: 5,
            hash: Hash::digest(b"tip"),
            state_root: Hash::digest(b"tip state"),
            timestamp_ms: 50,
            certificate: None,
            rules: HashedRules::new(Rules {
                validators: ValidatorSet::new(Vec::new()),
                params: ConsensusParams::default(),
            }),
        }
    }

    fn slot_with(block: Block, view: u64) -> Slot {
        Slot { proposal: Some(Proposal::new(view, block, true, None)), ..Slot::default() }
    }

    #[test]
    fn the_first_height_above_the_tip_extends_the_tip() {
        let parent = parent_of(&tip(), &BTreeMap::new(), 6, 3);
        assert_eq!(parent, Some(Parent { hash: tip().hash, state_root: tip().state_root, timestamp_ms: 50 }));
    }

    #[test]
    fn higher_heights_extend_the_proposal_below_in_the_same_view_only() {
        let below = block(6, 2, tip().hash);
        let slots = BTreeMap::from([(6, slot_with(below.clone(), 2))]);
        let expected = Parent {
            hash: below.hash(),
            state_root: below.header.state_root,
            timestamp_ms: below.header.timestamp_ms,
        };
        assert_eq!(parent_of(&tip(), &slots, 7, 2), Some(expected));
        assert_eq!(parent_of(&tip(), &slots, 7, 3), None, "a proposal of another view is no parent");
        assert_eq!(parent_of(&tip(), &slots, 8, 2), None, "nothing proposed at 7 yet");
    }

    #[test]
    fn a_slot_knows_its_proposed_and_its_prepared_block() {
        let proposed = block(6, 1, tip().hash);
        let prepared = block(6, 0, Hash::digest(b"other parent"));
        let mut slot = slot_with(proposed.clone(), 1);
        slot.prepared = Some(PreparedCertificate { view: 0, block: prepared.clone(), prepares: Vec::new() });
        assert_eq!(slot.block(&proposed.hash()), Some(&proposed));
        assert_eq!(slot.block(&prepared.hash()), Some(&prepared));
        assert_eq!(slot.block(&Hash::digest(b"unknown")), None);
        assert!(slot.prepared_in(0) && !slot.prepared_in(1));
        assert!(slot.proposal_in(1).is_some() && slot.proposal_in(0).is_none());
    }

    #[test]
    fn the_journal_restores_the_records_of_the_latest_view() {
        let (early, late) = (block(6, 0, tip().hash), block(6, 2, tip().hash));
        let mut slot = Slot::default();
        slot.restore_proposal(2, late.clone());
        slot.restore_proposal(0, early.clone());
        assert_eq!(
            slot.proposal.as_ref().map(|p| (p.view, p.hash, p.executed)),
            Some((2, late.hash(), false))
        );
        let prepared =
            |view, block: &Block| PreparedCertificate { view, block: block.clone(), prepares: Vec::new() };
        slot.restore_prepared(prepared(2, &late));
        slot.restore_prepared(prepared(0, &early));
        assert!(slot.prepared_in(2));
        slot.restore_prepared(prepared(3, &early));
        assert!(slot.prepared_in(3), "a later view replaces an earlier one");
    }
}

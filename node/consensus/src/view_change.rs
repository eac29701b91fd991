//! Which blocks a new view must re-propose, derived the same way by the new primary and by every
//! replica that checks its NEW-VIEW.

use kubechain_types::{Block, CommitCertificate, Hash};

use crate::messages::ViewChange;

/// What a quorum of view changes proves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    /// The highest committed block any of them proved (`None`: nothing above genesis).
    pub committed: Option<CommitCertificate>,
    /// Blocks above it to re-propose, in height order, each extending the one before.
    pub blocks: Vec<Block>,
}

impl Selection {
    pub fn committed_height(&self) -> u64 {
        self.committed.as_ref().map_or(0, CommitCertificate::height)
    }

    /// Height of the last block the new view starts from (committed or re-proposed).
    pub fn last_height(&self) -> u64 {
        self.blocks.last().map_or(self.committed_height(), Block::height)
    }
}

/// For each height above the highest proved commit, the block prepared in the highest view,
/// stopping at the first height with none or whose block does not extend the previous one.
///
/// Why stopping is safe: a replica prepares height h+1 in a view only once it has prepared h in
/// that view, so if h+1 committed, a quorum prepared h too, and any quorum of view changes holds
/// an honest replica reporting h. Standard PBFT reasoning then makes the highest-view prepared
/// block at h the one that h+1 extends, so the chain check never cuts a committed block.
pub fn select(view_changes: &[ViewChange], genesis_hash: Hash) -> Selection {
    let committed = view_changes
        .iter()
        .filter_map(|view_change| view_change.committed.as_ref())
        .max_by_key(|certificate| certificate.height())
        .cloned();
    let mut blocks: Vec<Block> = Vec::new();
    if cfg!(feature = "bug-newview-drops-prepared") {
        // Deliberately wrong: forget everything prepared, so the new primary proposes afresh.
        return Selection { committed, blocks };
    }
    let mut parent_hash = committed.as_ref().map_or(genesis_hash, CommitCertificate::block_hash);
    // Checked: a certificate (or a block) at the last height there is has nothing above it.
    let mut next_height = committed.as_ref().map_or(0, CommitCertificate::height).checked_add(1);
    while let Some(height) = next_height {
        let best = view_changes
            .iter()
            .flat_map(|view_change| &view_change.prepared)
            .filter(|prepared| prepared.block.height() == height)
            // Highest view wins; the hash breaks ties deterministically (a quorum cannot prepare
            // two blocks in one view, so a tie only ever repeats the same block).
            .max_by_key(|prepared| (prepared.view, prepared.block.hash()));
        match best {
            Some(prepared) if prepared.block.header.previous_hash == parent_hash => {
                parent_hash = prepared.block.hash();
                blocks.push(prepared.block.clone());
                next_height = height.checked_add(1);
            }
            _ => break,
        }
    }
    Selection { committed, blocks }
}

#[cfg(all(test, not(feature = "bug-newview-drops-prepared")))]
mod tests {
    use kubechain_types::certificate::sign_vote;
    use kubechain_types::{CommitVote, Domain, Header, PublicKey, SigningKey, VoteTarget};

    use super::*;
    use crate::messages::PreparedCertificate;

    const CHAIN: &str = "vc-test";

    fn keys() -> Vec<SigningKey> {
        (1..=4).map(|i| SigningKey::from_seed([i; 32])).collect()
    }

    fn genesis_hash() -> Hash {
        Hash::digest(b"genesis")
    }

    /// An unsealed block (difficulty 0); `tag` tells apart two blocks at the same place.
    fn block(height: u64, view: u64, previous_hash: Hash, tag: &str) -> Block {
        let header = Header {
            chain_id: CHAIN.into(),
            height,
            view,
            previous_hash,
            tx_root: Hash::ZERO,
            state_root: Hash::digest(tag.as_bytes()),
            rules_hash: Hash::ZERO,
            timestamp_ms: height,
            proposer: PublicKey([0; 32]),
            pow_difficulty: 0,
            pow_nonce: 0,
        };
        Block::new(header, Vec::new())
    }

    /// `count` blocks on top of `parent` (height `first_height` on), all proposed in view 0.
    fn chain(first_height: u64, parent: Hash, count: u64, tag: &str) -> Vec<Block> {
        let mut blocks: Vec<Block> = Vec::new();
        for height in first_height..first_height + count {
            let previous = blocks.last().map_or(parent, Block::hash);
            blocks.push(block(height, 0, previous, &format!("{tag}{height}")));
        }
        blocks
    }

    /// Votes of validators 0-2, in ascending voter order as nodes write them.
    fn votes(domain: Domain, target: &VoteTarget) -> Vec<CommitVote> {
        let mut votes: Vec<CommitVote> = keys()[..3]
            .iter()
            .map(|key| CommitVote {
                voter: key.public_key(),
                signature: sign_vote(domain, CHAIN, target, key),
            })
            .collect();
        votes.sort_by_key(|vote| vote.voter);
        votes
    }

    fn prepared(view: u64, block: &Block) -> PreparedCertificate {
        let target = VoteTarget { height: block.height(), view, block_hash: block.hash() };
        PreparedCertificate { view, block: block.clone(), prepares: votes(Domain::Prepare, &target) }
    }

    fn committed(view: u64, block: &Block) -> CommitCertificate {
        let target = VoteTarget { height: block.height(), view, block_hash: block.hash() };
        CommitCertificate { target, votes: votes(Domain::Commit, &target) }
    }

    /// A view change to view 5 from validator `sender`.
    fn view_change(
        sender: usize,
        committed: Option<CommitCertificate>,
        prepared: Vec<PreparedCertificate>,
    ) -> ViewChange {
        ViewChange::new(5, committed, prepared, CHAIN, &keys()[sender])
    }

    fn hashes(blocks: &[Block]) -> Vec<Hash> {
        blocks.iter().map(Block::hash).collect()
    }

    #[test]
    fn fixtures_are_validly_signed() {
        let set = kubechain_types::ValidatorSet::new(keys().iter().map(SigningKey::public_key).collect());
        let blocks = chain(1, genesis_hash(), 2, "a");
        let vc = view_change(0, Some(committed(0, &blocks[0])), vec![prepared(1, &blocks[1])]);
        assert_eq!(vc.verify(CHAIN, &set), Ok(()));
    }

    #[test]
    fn nothing_committed_or_prepared_selects_nothing() {
        let empty = Selection { committed: None, blocks: Vec::new() };
        assert_eq!(select(&[], genesis_hash()), empty);
        let view_changes: Vec<ViewChange> =
            (0..3).map(|sender| view_change(sender, None, Vec::new())).collect();
        let selection = select(&view_changes, genesis_hash());
        assert_eq!(selection, empty);
        assert_eq!((selection.committed_height(), selection.last_height()), (0, 0));
    }

    /// Heights come from the wire: a certificate or a prepared block at u64::MAX (which only a
    /// quorum could sign) must end the selection, not overflow it (the peer_frame fuzz target's
    /// re-signed NEW-VIEWs reach it: fuzz/regressions/peer_frame/).
    #[test]
    fn the_last_height_there_is_ends_the_selection() {
        let top = block(u64::MAX, 0, genesis_hash(), "top");
        let at_top: Vec<ViewChange> =
            (0..3).map(|sender| view_change(sender, Some(committed(0, &top)), Vec::new())).collect();
        let selection = select(&at_top, genesis_hash());
        assert_eq!((selection.committed_height(), selection.blocks.len()), (u64::MAX, 0));

        let below = block(u64::MAX - 1, 0, genesis_hash(), "below");
        let above = block(u64::MAX, 0, below.hash(), "above");
        let one_below: Vec<ViewChange> = (0..3)
            .map(|sender| view_change(sender, Some(committed(0, &below)), vec![prepared(1, &above)]))
            .collect();
        let selection = select(&one_below, genesis_hash());
        assert_eq!(hashes(&selection.blocks), vec![above.hash()]);
        assert_eq!(selection.last_height(), u64::MAX);
    }

    #[test]
    fn picks_the_highest_committed_certificate() {
        let blocks = chain(1, genesis_hash(), 4, "a");
        // Sender 0 committed height 1 only and still reports height 2 as prepared: the proved
        // commit at 3 supersedes it. Height 4 extends the commit and is carried over.
        let view_changes = vec![
            view_change(0, Some(committed(0, &blocks[0])), vec![prepared(0, &blocks[1])]),
            view_change(1, Some(committed(0, &blocks[2])), vec![prepared(0, &blocks[3])]),
            view_change(2, Some(committed(0, &blocks[1])), Vec::new()),
        ];
        let selection = select(&view_changes, genesis_hash());
        assert_eq!(selection.committed, Some(committed(0, &blocks[2])));
        assert_eq!(selection.committed_height(), 3);
        assert_eq!(hashes(&selection.blocks), vec![blocks[3].hash()]);
        assert_eq!(selection.last_height(), 4);
    }

    #[test]
    fn prefers_the_block_prepared_in_the_highest_view() {
        let early = block(1, 0, genesis_hash(), "early");
        let late = block(1, 2, genesis_hash(), "late");
        let child_of_late = block(2, 2, late.hash(), "child");
        let forward = vec![
            view_change(0, None, vec![prepared(0, &early)]),
            view_change(1, None, vec![prepared(2, &late), prepared(2, &child_of_late)]),
            view_change(2, None, vec![prepared(1, &early)]),
        ];
        let mut backward = forward.clone();
        backward.reverse();
        for view_changes in [forward, backward] {
            let selection = select(&view_changes, genesis_hash());
            assert_eq!(selection.committed, None);
            assert_eq!(hashes(&selection.blocks), vec![late.hash(), child_of_late.hash()]);
        }
    }

    #[test]
    fn stops_at_the_first_height_nobody_prepared() {
        let blocks = chain(1, genesis_hash(), 4, "a");
        // Heights 1, 2 and 4 are prepared somewhere, 3 nowhere.
        let view_changes = vec![
            view_change(0, None, vec![prepared(0, &blocks[0]), prepared(0, &blocks[1])]),
            view_change(1, None, vec![prepared(0, &blocks[0]), prepared(0, &blocks[3])]),
            view_change(2, None, Vec::new()),
        ];
        let selection = select(&view_changes, genesis_hash());
        assert_eq!(hashes(&selection.blocks), hashes(&blocks[..2]));
        assert_eq!(selection.last_height(), 2);
    }

    #[test]
    fn stops_where_the_chosen_block_does_not_extend_the_previous_one() {
        // Height 1: "a1" prepared in view 0, "b1" in view 1 (wins). Height 2 only extends "a1".
        let a = chain(1, genesis_hash(), 2, "a");
        let b1 = block(1, 1, genesis_hash(), "b1");
        let view_changes = vec![
            view_change(0, None, vec![prepared(0, &a[0]), prepared(0, &a[1])]),
            view_change(1, None, vec![prepared(1, &b1)]),
        ];
        assert_eq!(hashes(&select(&view_changes, genesis_hash()).blocks), vec![b1.hash()]);

        // The first block above the proved commit must extend the committed block.
        let committed_chain = chain(1, genesis_hash(), 2, "c");
        let stray = block(3, 0, Hash::digest(b"elsewhere"), "stray");
        let view_changes = vec![
            view_change(0, Some(committed(0, &committed_chain[1])), Vec::new()),
            view_change(1, None, vec![prepared(0, &stray)]),
        ];
        let selection = select(&view_changes, genesis_hash());
        assert_eq!(selection.committed_height(), 2);
        assert!(selection.blocks.is_empty());

        // ... and with nothing committed, the genesis hash.
        let orphan = block(1, 0, Hash::digest(b"another genesis"), "orphan");
        let view_changes = vec![view_change(0, None, vec![prepared(0, &orphan)])];
        assert!(select(&view_changes, genesis_hash()).blocks.is_empty());
    }
}

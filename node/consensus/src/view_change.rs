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
    let mut height = committed.as_ref().map_or(0, CommitCertificate::height) + 1;
    loop {
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
                height += 1;
            }
            _ => return Selection { committed, blocks },
        }
    }
}

//! Proposals that arrived before this replica could take them: ahead of the NEW-VIEW that starts
//! their view, or ahead of their parent. Only the primary of a view can sign its proposals, so a
//! bound per view is a bound per sender: a faulty primary fills its own share and nobody else's.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use kubechain_types::PublicKey;

use crate::messages::PrePrepare;

/// Bytes of proposals kept per view (several full blocks of the ledger's 16 MiB bound).
pub(crate) const MAX_PARKED_BYTES_PER_VIEW: usize = 64 * 1024 * 1024;

/// The view's share is used up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the proposals parked for this view exceed {MAX_PARKED_BYTES_PER_VIEW} bytes")]
pub(crate) struct OverQuota;

#[derive(Debug, Default)]
pub(crate) struct Parked {
    /// By (height, view): who sent it, the verified proposal, and its encoded size.
    by_slot: BTreeMap<(u64, u64), (PublicKey, PrePrepare, usize)>,
    bytes_by_view: BTreeMap<u64, usize>,
}

impl Parked {
    /// Keeps a verified proposal until it can be taken. The first one for a height and view
    /// stays: a second is an equivocation, noticed when the proposals are taken.
    pub fn park(&mut self, from: PublicKey, pre_prepare: PrePrepare) -> Result<(), OverQuota> {
        let key = (pre_prepare.block.height(), pre_prepare.view);
        if self.by_slot.contains_key(&key) {
            return Ok(());
        }
        let bytes = borsh::object_length(&pre_prepare).unwrap_or(usize::MAX);
        let used = self.bytes_by_view.entry(pre_prepare.view).or_default();
        if used.saturating_add(bytes) > MAX_PARKED_BYTES_PER_VIEW {
            return Err(OverQuota);
        }
        *used += bytes;
        self.by_slot.insert(key, (from, pre_prepare, bytes));
        Ok(())
    }

    /// Takes the proposals parked at `heights` for which `ready(height, view)` holds, in height
    /// then view order.
    pub fn take(
        &mut self,
        heights: RangeInclusive<u64>,
        ready: impl Fn(u64, u64) -> bool,
    ) -> Vec<(PublicKey, PrePrepare)> {
        let keys: Vec<(u64, u64)> = self
            .by_slot
            .range((*heights.start(), 0)..=(*heights.end(), u64::MAX))
            .map(|(key, _)| *key)
            .filter(|(height, view)| ready(*height, *view))
            .collect();
        keys.into_iter().filter_map(|key| self.remove(key)).collect()
    }

    /// Forgets proposals of views before `view` and at heights up to `height` (committed).
    pub fn forget(&mut self, below_view: u64, through_height: u64) {
        let stale: Vec<(u64, u64)> = self
            .by_slot
            .keys()
            .filter(|(height, view)| *view < below_view || *height <= through_height)
            .copied()
            .collect();
        for key in stale {
            self.remove(key);
        }
    }

    fn remove(&mut self, key: (u64, u64)) -> Option<(PublicKey, PrePrepare)> {
        let (from, pre_prepare, bytes) = self.by_slot.remove(&key)?;
        if let Some(used) = self.bytes_by_view.get_mut(&key.1) {
            *used -= bytes;
            if *used == 0 {
                self.bytes_by_view.remove(&key.1);
            }
        }
        Some((from, pre_prepare))
    }
}

#[cfg(test)]
mod tests {
    use kubechain_types::{Block, Hash, Header, Operation, SigningKey, Transaction, TxBody};

    use super::*;

    const CHAIN: &str = "parked-test";

    fn primary() -> SigningKey {
        SigningKey::from_seed([1; 32])
    }

    /// A proposal at `height` in `view` carrying `payload` bytes in one transaction.
    fn proposal(height: u64, view: u64, payload: usize) -> PrePrepare {
        let operations = vec![Operation::Put { key: "k".into(), value: vec![7; payload] }];
        let body = TxBody { chain_id: CHAIN.into(), sender: primary().public_key(), nonce: 1, operations };
        let header = Header {
            chain_id: CHAIN.into(),
            height,
            view,
            previous_hash: Hash::ZERO,
            tx_root: Hash::ZERO,
            state_root: Hash::ZERO,
            rules_hash: Hash::ZERO,
            timestamp_ms: 0,
            proposer: primary().public_key(),
            pow_difficulty: 0,
            pow_nonce: 0,
        };
        let block = Block::new(header, vec![Transaction::new(body, &primary())]);
        PrePrepare::new(view, block, CHAIN, &primary())
    }

    fn heights(taken: &[(PublicKey, PrePrepare)]) -> Vec<(u64, u64)> {
        taken.iter().map(|(_, p)| (p.block.height(), p.view)).collect()
    }

    #[test]
    fn proposals_are_taken_by_height_and_forgotten_by_view_or_commit() {
        let mut parked = Parked::default();
        let from = primary().public_key();
        for (height, view) in [(3, 1), (2, 1), (2, 2), (5, 2), (9, 2)] {
            parked.park(from, proposal(height, view, 10)).unwrap();
        }
        assert_eq!(heights(&parked.take(2..=9, |height, _| height <= 3)), vec![(2, 1), (2, 2), (3, 1)]);
        parked.park(from, proposal(4, 1, 10)).unwrap();
        parked.forget(2, 5);
        assert_eq!(heights(&parked.take(0..=u64::MAX, |_, view| view == 1)), Vec::new());
        assert_eq!(heights(&parked.take(0..=u64::MAX, |_, _| true)), vec![(9, 2)]);
        assert!(parked.by_slot.is_empty());
        assert!(parked.bytes_by_view.is_empty(), "bytes are given back");
    }

    #[test]
    fn a_views_share_is_bounded_in_bytes_and_leaves_other_views_alone() {
        let mut parked = Parked::default();
        let from = primary().public_key();
        let big = MAX_PARKED_BYTES_PER_VIEW / 3;
        for height in 1..=2 {
            assert_eq!(parked.park(from, proposal(height, 7, big)), Ok(()));
        }
        assert_eq!(parked.park(from, proposal(3, 7, big)), Err(OverQuota));
        // The same height and view again changes nothing; another view has its own share.
        assert_eq!(parked.park(from, proposal(1, 7, big)), Ok(()));
        assert_eq!(parked.park(from, proposal(3, 8, big)), Ok(()));
        // Taking one frees its room.
        assert_eq!(heights(&parked.take(1..=1, |_, _| true)), vec![(1, 7)]);
        assert_eq!(parked.park(from, proposal(3, 7, big)), Ok(()));
    }
}

//! Checkpoints: which validators claimed which block at each checkpoint height, the stable
//! checkpoint (a quorum's claim, durable here too) below which everything is pruned, and the
//! claims that show this replica is behind and should fetch blocks.

use std::collections::{BTreeMap, BTreeSet};

use kubechain_types::{Hash, PublicKey, ValidatorSet};

/// Blocks to fetch: up to `height`, from the validators that vouch for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FetchUpTo {
    pub height: u64,
    pub sources: Vec<PublicKey>,
}

/// What a recorded claim calls for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ClaimOutcome {
    /// f+1 validators claim a checkpoint above the tip: at least one honest one is ahead.
    pub fetch: Option<FetchUpTo>,
    /// The claim made this height the stable checkpoint: prune what lies below it.
    pub stabilised: Option<u64>,
}

#[derive(Debug)]
pub(crate) struct Checkpoints {
    stable: u64,
    /// The highest committed height the runtime reported durable.
    persisted_height: u64,
    /// Hashes of committed blocks from the stable checkpoint up, to match claims against.
    recent_hashes: BTreeMap<u64, Hash>,
    /// Claims above the stable checkpoint within reach: voters by height and block hash.
    claims: BTreeMap<u64, BTreeMap<Hash, BTreeSet<PublicKey>>>,
    /// The latest far-ahead checkpoint height each validator claimed.
    far_claims: BTreeMap<PublicKey, u64>,
}

impl Checkpoints {
    /// Starting from the committed (and durable) tip, which counts as stable.
    pub fn new(tip_height: u64, tip_hash: Hash) -> Checkpoints {
        Checkpoints {
            stable: tip_height,
            persisted_height: tip_height,
            recent_hashes: BTreeMap::from([(tip_height, tip_hash)]),
            claims: BTreeMap::new(),
            far_claims: BTreeMap::new(),
        }
    }

    pub fn stable(&self) -> u64 {
        self.stable
    }

    /// The block at `height` was committed; quorum claims may have waited for it.
    pub fn committed(&mut self, height: u64, hash: Hash) {
        self.recent_hashes.insert(height, hash);
        self.far_claims.retain(|_, claimed| *claimed > height);
    }

    /// The block at `height` is durable. Returns its hash if this replica should now claim it as a
    /// checkpoint (every `interval` blocks above the stable checkpoint).
    pub fn persisted(&mut self, height: u64, interval: u64) -> Option<Hash> {
        self.persisted_height = self.persisted_height.max(height);
        if height <= self.stable || !height.is_multiple_of(interval) {
            return None;
        }
        self.recent_hashes.get(&height).copied()
    }

    /// Records `voter`'s claim that `hash` is the block at `height` (one claim per validator and
    /// height); `validators` govern that height and `tip_height` is this replica's.
    pub fn record(
        &mut self,
        height: u64,
        hash: Hash,
        voter: PublicKey,
        validators: &ValidatorSet,
        tip_height: u64,
    ) -> ClaimOutcome {
        let by_hash = self.claims.entry(height).or_default();
        if by_hash.iter().any(|(other, voters)| *other != hash && voters.contains(&voter)) {
            return ClaimOutcome::default();
        }
        let voters = by_hash.entry(hash).or_default();
        voters.insert(voter);
        let count = voters.len();
        let fetch = (height > tip_height && count >= validators.weak_quorum())
            .then(|| FetchUpTo { height, sources: voters.iter().copied().collect() });
        let stabilised = (count >= validators.quorum() && self.try_stabilise(height, hash)).then_some(height);
        ClaimOutcome { fetch, stabilised }
    }

    /// Records `voter`'s claim of a checkpoint too far ahead to keep claims for: only each
    /// validator's latest counts. Once f+1 validators claim one, the (f+1)-th highest claim is
    /// vouched for by at least one honest validator: fetch up to it.
    pub fn record_far(&mut self, height: u64, voter: PublicKey, weak_quorum: usize) -> Option<FetchUpTo> {
        self.far_claims.insert(voter, height);
        if self.far_claims.len() < weak_quorum {
            return None;
        }
        let mut heights: Vec<u64> = self.far_claims.values().copied().collect();
        heights.sort_unstable_by(|a, b| b.cmp(a));
        let height = heights[weak_quorum - 1];
        Some(FetchUpTo { height, sources: self.far_claims.keys().copied().collect() })
    }

    /// After a commit at `height`: the checkpoint a quorum of `validators` claimed there may
    /// become stable now. Returns the new stable height.
    pub fn stabilise_committed(&mut self, height: u64, validators: &ValidatorSet) -> Option<u64> {
        let quorum = validators.quorum();
        let hash = self.claims.get(&height).and_then(|by_hash| {
            by_hash.iter().find(|(_, voters)| voters.len() >= quorum).map(|(hash, _)| *hash)
        })?;
        self.try_stabilise(height, hash).then_some(height)
    }

    /// A quorum agrees on the block at `height`: once it is committed with that hash and durable
    /// here too, it becomes the stable checkpoint and what lies below it is forgotten.
    fn try_stabilise(&mut self, height: u64, hash: Hash) -> bool {
        if height <= self.stable || height > self.persisted_height {
            return false;
        }
        if self.recent_hashes.get(&height) != Some(&hash) {
            return false;
        }
        self.stable = height;
        self.claims = self.claims.split_off(&(height + 1));
        self.recent_hashes = self.recent_hashes.split_off(&height);
        true
    }
}

#[cfg(all(test, not(feature = "bug-quorum-2f")))]
mod tests {
    use kubechain_types::SigningKey;

    use super::*;

    const INTERVAL: u64 = 4;

    fn key(i: u8) -> PublicKey {
        SigningKey::from_seed([i; 32]).public_key()
    }

    /// Four validators: f+1 is 2, a quorum 3.
    fn validators() -> ValidatorSet {
        ValidatorSet::new((1..=4).map(key).collect())
    }

    fn hash(height: u64) -> Hash {
        Hash::digest(&height.to_le_bytes())
    }

    /// Committed and durable up to `height`, from genesis.
    fn committed_through(height: u64) -> Checkpoints {
        let mut checkpoints = Checkpoints::new(0, hash(0));
        for h in 1..=height {
            checkpoints.committed(h, hash(h));
            checkpoints.persisted(h, INTERVAL);
        }
        checkpoints
    }

    #[test]
    fn a_replica_claims_every_interval_once_durable() {
        let mut checkpoints = Checkpoints::new(0, hash(0));
        for h in 1..=3 {
            checkpoints.committed(h, hash(h));
            assert_eq!(checkpoints.persisted(h, INTERVAL), None);
        }
        checkpoints.committed(4, hash(4));
        assert_eq!(checkpoints.persisted(4, INTERVAL), Some(hash(4)));
        // Not at or below the stable checkpoint.
        let mut restarted = Checkpoints::new(4, hash(4));
        assert_eq!(restarted.persisted(4, INTERVAL), None);
    }

    #[test]
    fn a_quorum_of_matching_claims_on_a_durable_block_makes_it_stable() {
        let mut checkpoints = committed_through(5);
        let mut outcomes = Vec::new();
        for i in 1..=3 {
            outcomes.push(checkpoints.record(4, hash(4), key(i), &validators(), 5));
        }
        assert_eq!(outcomes[1], ClaimOutcome::default(), "f+1 claims at or below the tip fetch nothing");
        assert_eq!(outcomes[2], ClaimOutcome { fetch: None, stabilised: Some(4) });
        assert_eq!(checkpoints.stable(), 4);
        assert_eq!(checkpoints.recent_hashes.keys().copied().collect::<Vec<_>>(), vec![4, 5]);
        // Below the new stable checkpoint nothing becomes stable again.
        assert_eq!(checkpoints.record(4, hash(4), key(4), &validators(), 5).stabilised, None);
    }

    #[test]
    fn claims_for_another_block_or_a_second_claim_do_not_count() {
        let mut checkpoints = committed_through(4);
        let other = Hash::digest(b"another block");
        for i in 1..=3 {
            assert_eq!(checkpoints.record(4, other, key(i), &validators(), 4).stabilised, None);
        }
        assert_eq!(checkpoints.stable(), 0, "a quorum on a block this replica did not commit");
        // Validators 1 to 3 already claimed height 4: their claims for the real block are refused.
        for i in 1..=3 {
            assert_eq!(checkpoints.record(4, hash(4), key(i), &validators(), 4), ClaimOutcome::default());
        }
        assert_eq!(checkpoints.record(4, hash(4), key(4), &validators(), 4).stabilised, None);
    }

    #[test]
    fn a_quorum_waits_until_the_block_is_committed_and_durable() {
        let mut checkpoints = committed_through(3);
        let outcomes: Vec<ClaimOutcome> =
            (1..=3).map(|i| checkpoints.record(4, hash(4), key(i), &validators(), 3)).collect();
        // f+1 above the tip: fetch from them.
        let fetch = FetchUpTo {
            height: 4,
            sources: {
                let mut sources = vec![key(1), key(2)];
                sources.sort();
                sources
            },
        };
        assert_eq!(outcomes[1].fetch, Some(fetch));
        assert_eq!(outcomes[2].stabilised, None, "not committed here yet");
        checkpoints.committed(4, hash(4));
        assert_eq!(checkpoints.stabilise_committed(4, &validators()), None, "not durable yet");
        assert_eq!(checkpoints.persisted(4, INTERVAL), Some(hash(4)));
        assert_eq!(checkpoints.stabilise_committed(4, &validators()), Some(4));
        assert_eq!(checkpoints.stable(), 4);
    }

    #[test]
    fn far_ahead_claims_fetch_up_to_the_highest_height_f_plus_one_vouch_for() {
        let mut checkpoints = Checkpoints::new(0, hash(0));
        assert_eq!(checkpoints.record_far(1_000, key(1), 2), None, "one claim may be a lie");
        let fetch = checkpoints.record_far(400, key(2), 2).unwrap();
        assert_eq!(fetch.height, 400, "the second highest of two claims");
        assert_eq!(fetch.sources.len(), 2);
        // A validator's later claim replaces its earlier one.
        assert_eq!(checkpoints.record_far(800, key(2), 2).map(|fetch| fetch.height), Some(800));
        // Commits past a claim retire it.
        checkpoints.committed(900, hash(900));
        assert_eq!(checkpoints.far_claims.keys().copied().collect::<Vec<_>>(), vec![key(1)]);
    }
}

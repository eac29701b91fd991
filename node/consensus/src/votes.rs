//! The PREPAREs or the COMMITs of one height, by the target they back, and when they make a
//! quorum.

use std::collections::BTreeMap;

use kubechain_types::{CommitVote, PublicKey, Signature, ValidatorSet, VoteTarget};

/// Distinct targets kept per height and voter. An honest validator backs one target per view, so
/// this keeps its votes for the current and the next view whatever the others send.
const MAX_TARGETS_PER_VOTER: usize = 2;

/// A peer's vote would add a target beyond what honest voters back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many vote targets from one voter")]
pub(crate) struct TooManyTargets;

/// Votes of one kind at one height, by target, one signature per voter.
#[derive(Debug, Default)]
pub(crate) struct Votes {
    by_target: BTreeMap<VoteTarget, BTreeMap<PublicKey, Signature>>,
    /// The targets each voter backs here: the bound is per voter, so a faulty validator that
    /// floods targets uses up only its own share and never crowds out an honest vote.
    by_voter: BTreeMap<PublicKey, Vec<VoteTarget>>,
}

impl Votes {
    /// Keeps a verified vote (a voter's first signature for a target). A voter backs at most
    /// [`MAX_TARGETS_PER_VOTER`] targets here: a target of a later view replaces its earliest,
    /// and one of no later view is refused.
    pub fn add(
        &mut self,
        target: VoteTarget,
        voter: PublicKey,
        signature: Signature,
    ) -> Result<(), TooManyTargets> {
        let backed = self.by_voter.entry(voter).or_default();
        if backed.contains(&target) {
            return Ok(());
        }
        if backed.len() >= MAX_TARGETS_PER_VOTER {
            let (index, earliest) = backed
                .iter()
                .enumerate()
                .min_by_key(|(_, backed)| backed.view)
                .map(|(i, t)| (i, *t))
                .ok_or(TooManyTargets)?;
            if target.view <= earliest.view {
                return Err(TooManyTargets);
            }
            backed.swap_remove(index);
            if let Some(voters) = self.by_target.get_mut(&earliest) {
                voters.remove(&voter);
                if voters.is_empty() {
                    self.by_target.remove(&earliest);
                }
            }
        }
        backed.push(target);
        self.by_target.entry(target).or_default().insert(voter, signature);
        Ok(())
    }

    /// This replica's own vote: it backs one target per view, so it always fits.
    pub fn add_own(&mut self, target: VoteTarget, voter: PublicKey, signature: Signature) {
        // Own votes are of the current view, later than anything this replica backed before.
        let _ = self.add(target, voter, signature);
    }

    /// The votes for `target`, if they make a quorum of `validators`.
    pub fn quorum_for(&self, target: &VoteTarget, validators: &ValidatorSet) -> Option<Vec<CommitVote>> {
        self.by_target.get(target).and_then(|votes| quorum(votes, validators))
    }

    /// The first target (in target order) whose votes make a quorum of `validators`.
    pub fn first_quorum(&self, validators: &ValidatorSet) -> Option<(VoteTarget, Vec<CommitVote>)> {
        self.by_target.iter().find_map(|(target, votes)| Some((*target, quorum(votes, validators)?)))
    }
}

/// The votes in `votes` cast by `validators`, if they make a quorum of them. Votes are checked on
/// arrival, but the set for a height can change while they wait (reconfiguration), so they are
/// counted against the set as it is now. The quorum size is `ValidatorSet::quorum`.
fn quorum(votes: &BTreeMap<PublicKey, Signature>, validators: &ValidatorSet) -> Option<Vec<CommitVote>> {
    let counted: Vec<CommitVote> = votes
        .iter()
        .filter(|(voter, _)| validators.contains(voter))
        .map(|(voter, signature)| CommitVote { voter: *voter, signature: *signature })
        .collect();
    (counted.len() >= validators.quorum()).then_some(counted)
}

#[cfg(all(test, not(feature = "bug-quorum-2f")))]
mod tests {
    use kubechain_types::{Hash, SigningKey};

    use super::*;

    fn key(i: u8) -> PublicKey {
        SigningKey::from_seed([i; 32]).public_key()
    }

    /// Four validators: a quorum is 3.
    fn validators() -> ValidatorSet {
        ValidatorSet::new((1..=4).map(key).collect())
    }

    fn target(view: u64, tag: &[u8]) -> VoteTarget {
        VoteTarget { height: 7, view, block_hash: Hash::digest(tag) }
    }

    /// Signatures are not checked here (the replica verified them on arrival): one per voter.
    fn signature(i: u8) -> Signature {
        Signature([i; 64])
    }

    fn voters(votes: &[CommitVote]) -> Vec<PublicKey> {
        votes.iter().map(|vote| vote.voter).collect()
    }

    #[test]
    fn a_quorum_of_validators_backing_one_target_is_found() {
        let mut votes = Votes::default();
        let (a, b) = (target(0, b"a"), target(0, b"b"));
        for i in 1..=2 {
            votes.add(a, key(i), signature(i)).unwrap();
        }
        votes.add(b, key(3), signature(3)).unwrap();
        assert_eq!(votes.quorum_for(&a, &validators()), None, "two of four are no quorum");
        assert_eq!(votes.first_quorum(&validators()), None);

        votes.add(a, key(4), signature(4)).unwrap();
        let certificate = votes.quorum_for(&a, &validators()).unwrap();
        assert_eq!(voters(&certificate), {
            let mut expected = vec![key(1), key(2), key(4)];
            expected.sort();
            expected
        });
        assert_eq!(votes.first_quorum(&validators()).map(|(target, _)| target), Some(a));
        assert_eq!(votes.quorum_for(&b, &validators()), None);
    }

    #[test]
    fn only_validators_of_the_set_counted_now_make_the_quorum() {
        let mut votes = Votes::default();
        let a = target(0, b"a");
        for i in 1..=3 {
            votes.add(a, key(i), signature(i)).unwrap();
        }
        // Validator 3 left the set while the votes waited: two remain, no quorum of four.
        let shrunk_but_four = ValidatorSet::new(vec![key(1), key(2), key(4), key(5)]);
        assert_eq!(votes.quorum_for(&a, &shrunk_but_four), None);
        // Of three validators (f = 0), two make a quorum; validator 3's vote is not counted.
        let three = ValidatorSet::new(vec![key(1), key(2), key(4)]);
        let mut both = vec![key(1), key(2)];
        both.sort();
        assert_eq!(votes.quorum_for(&a, &three).map(|v| voters(&v)), Some(both));
        // With one validator, one vote of it is a quorum, and the others are not counted.
        let one = ValidatorSet::new(vec![key(2)]);
        assert_eq!(votes.quorum_for(&a, &one).map(|v| voters(&v)), Some(vec![key(2)]));
    }

    #[test]
    fn a_voter_counts_once_and_keeps_its_first_signature() {
        let mut votes = Votes::default();
        let a = target(0, b"a");
        votes.add(a, key(1), signature(1)).unwrap();
        votes.add(a, key(1), signature(9)).unwrap();
        votes.add(a, key(2), signature(2)).unwrap();
        assert_eq!(votes.quorum_for(&a, &validators()), None, "a repeated vote is no third voter");
        votes.add(a, key(3), signature(3)).unwrap();
        let certificate = votes.quorum_for(&a, &validators()).unwrap();
        let first = certificate.iter().find(|vote| vote.voter == key(1)).map(|vote| vote.signature);
        assert_eq!(first, Some(signature(1)));
    }

    #[test]
    fn a_flooding_voter_fills_only_its_own_share() {
        let mut votes = Votes::default();
        // Validator 1 floods made-up targets in views 0 and 1: it keeps two of them at most.
        for i in 0..50u8 {
            let _ = votes.add(target(u64::from(i % 2), &[i]), key(1), signature(1));
        }
        assert_eq!(votes.by_target.len(), MAX_TARGETS_PER_VOTER);
        assert_eq!(votes.add(target(0, b"late"), key(1), signature(1)), Err(TooManyTargets));
        // The honest three still get their votes in, for a target nobody else backs yet.
        let honest = target(1, b"honest");
        for i in 2..=4 {
            assert_eq!(votes.add(honest, key(i), signature(i)), Ok(()));
        }
        assert_eq!(votes.quorum_for(&honest, &validators()).map(|v| v.len()), Some(3));
        assert_eq!(votes.by_target.len(), 1 + MAX_TARGETS_PER_VOTER);
    }

    #[test]
    fn a_later_view_replaces_a_voters_earliest_target() {
        let mut votes = Votes::default();
        // An honest validator votes once per view through a run of view changes: its latest two
        // views are kept, so its vote in the current view always counts.
        for view in 0..6 {
            assert_eq!(votes.add(target(view, b"b"), key(1), signature(1)), Ok(()));
        }
        let kept: Vec<u64> = votes.by_target.keys().map(|target| target.view).collect();
        assert_eq!(kept, vec![4, 5]);
        // A repeated vote changes nothing, and this replica's own vote always fits.
        assert_eq!(votes.add(target(5, b"b"), key(1), signature(9)), Ok(()));
        votes.add_own(target(6, b"own"), key(2), signature(2));
        assert_eq!(votes.by_target.len(), 3);
    }
}

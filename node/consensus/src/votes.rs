//! The PREPAREs or the COMMITs of one height, by the target they back, and when they make a
//! quorum.

use std::collections::BTreeMap;

use kubechain_types::{CommitVote, PublicKey, Signature, ValidatorSet, VoteTarget};

/// Distinct vote targets kept per height, per validator (memory a faulty peer can claim).
const MAX_TARGETS_PER_VALIDATOR: usize = 2;

/// A peer's vote would add a target beyond what honest voters can back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many vote targets")]
pub(crate) struct TooManyTargets;

/// Votes of one kind at one height, by target, one signature per voter.
#[derive(Debug, Default)]
pub(crate) struct Votes {
    by_target: BTreeMap<VoteTarget, BTreeMap<PublicKey, Signature>>,
}

impl Votes {
    /// Keeps a peer's verified vote (its first signature for a target). Honest voters back few
    /// targets per height, so a new target beyond [`MAX_TARGETS_PER_VALIDATOR`] per validator of
    /// the height can only come from faulty peers and is refused.
    pub fn add(
        &mut self,
        target: VoteTarget,
        voter: PublicKey,
        signature: Signature,
        validators: &ValidatorSet,
    ) -> Result<(), TooManyTargets> {
        let cap = MAX_TARGETS_PER_VALIDATOR * validators.len();
        if !self.by_target.contains_key(&target) && self.by_target.len() >= cap {
            return Err(TooManyTargets);
        }
        self.by_target.entry(target).or_default().entry(voter).or_insert(signature);
        Ok(())
    }

    /// This replica's own vote: it backs one target per view, so no cap applies.
    pub fn add_own(&mut self, target: VoteTarget, voter: PublicKey, signature: Signature) {
        self.by_target.entry(target).or_default().insert(voter, signature);
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
            votes.add(a, key(i), signature(i), &validators()).unwrap();
        }
        votes.add(b, key(3), signature(3), &validators()).unwrap();
        assert_eq!(votes.quorum_for(&a, &validators()), None, "two of four are no quorum");
        assert_eq!(votes.first_quorum(&validators()), None);

        votes.add(a, key(4), signature(4), &validators()).unwrap();
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
            votes.add(a, key(i), signature(i), &validators()).unwrap();
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
        votes.add(a, key(1), signature(1), &validators()).unwrap();
        votes.add(a, key(1), signature(9), &validators()).unwrap();
        votes.add(a, key(2), signature(2), &validators()).unwrap();
        assert_eq!(votes.quorum_for(&a, &validators()), None, "a repeated vote is no third voter");
        votes.add(a, key(3), signature(3), &validators()).unwrap();
        let certificate = votes.quorum_for(&a, &validators()).unwrap();
        let first = certificate.iter().find(|vote| vote.voter == key(1)).map(|vote| vote.signature);
        assert_eq!(first, Some(signature(1)));
    }

    #[test]
    fn new_targets_beyond_two_per_validator_are_refused() {
        let set = ValidatorSet::new(vec![key(1), key(2)]);
        let mut votes = Votes::default();
        for view in 0..4 {
            assert_eq!(votes.add(target(view, b"x"), key(1), signature(1), &set), Ok(()));
        }
        assert_eq!(votes.add(target(4, b"x"), key(2), signature(2), &set), Err(TooManyTargets));
        // A known target still takes votes, and this replica's own vote is never capped.
        assert_eq!(votes.add(target(0, b"x"), key(2), signature(2), &set), Ok(()));
        votes.add_own(target(5, b"own"), key(2), signature(2));
        assert_eq!(votes.by_target.len(), 5);
    }
}

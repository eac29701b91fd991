//! The validator set and the quorum arithmetic every BFT argument rests on.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

use crate::crypto::PublicKey;

/// Byzantine validators tolerated among `n`: the largest `f` with `n >= 3f + 1`.
pub const fn fault_tolerance(n: usize) -> usize {
    n.saturating_sub(1) / 3
}

/// Votes that make a quorum among `n` validators: `ceil((n + f + 1) / 2)`.
///
/// Two quorums then overlap in at least `f + 1` validators, so at least one honest validator
/// is in both, and no two conflicting values can both gather a quorum. For `n = 3f + 1` this is
/// the familiar `2f + 1`; for other `n` (5, 6, 8, ...) plain `2f + 1` would let two quorums meet
/// only in Byzantine validators, so the larger value is required. A quorum also stays reachable
/// with `f` validators silent, because `n - f >= ceil((n + f + 1) / 2)` whenever `n >= 3f + 1`.
pub const fn quorum(n: usize) -> usize {
    let f = fault_tolerance(n);
    let q = (n + f + 1).div_ceil(2);
    #[cfg(feature = "bug-quorum-2f")]
    let q = if n > 1 { 2 * f } else { q };
    q
}

/// Votes that guarantee at least one honest voter: `f + 1`.
pub const fn weak_quorum(n: usize) -> usize {
    fault_tolerance(n) + 1
}

/// The ordered validator set at some height. Order matters: the primary of view `v` is the
/// validator at index `v mod n`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ValidatorSet {
    validators: Vec<PublicKey>,
}

impl ValidatorSet {
    pub fn new(validators: Vec<PublicKey>) -> ValidatorSet {
        ValidatorSet { validators }
    }

    pub fn len(&self) -> usize {
        self.validators.len()
    }

    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    pub fn keys(&self) -> &[PublicKey] {
        &self.validators
    }

    pub fn contains(&self, key: &PublicKey) -> bool {
        self.validators.contains(key)
    }

    pub fn index_of(&self, key: &PublicKey) -> Option<usize> {
        self.validators.iter().position(|k| k == key)
    }

    pub fn fault_tolerance(&self) -> usize {
        fault_tolerance(self.len())
    }

    pub fn quorum(&self) -> usize {
        quorum(self.len())
    }

    pub fn weak_quorum(&self) -> usize {
        weak_quorum(self.len())
    }

    /// The primary of `view`. Panics on an empty set, which genesis validation rules out.
    pub fn primary(&self, view: u64) -> PublicKey {
        let n = self.validators.len() as u64;
        self.validators[(view % n) as usize]
    }

    /// Adds a validator at the end (no-op if present).
    pub fn add(&mut self, key: PublicKey) {
        if !self.contains(&key) {
            self.validators.push(key);
        }
    }

    /// Removes a validator, refusing to empty the set.
    pub fn remove(&mut self, key: &PublicKey) -> bool {
        if self.validators.len() > 1 && self.contains(key) {
            self.validators.retain(|k| k != key);
            true
        } else {
            false
        }
    }
}

#[cfg(all(test, not(feature = "bug-quorum-2f")))]
mod tests {
    use super::*;

    #[test]
    fn quorum_arithmetic_for_common_sizes() {
        // (n, f, quorum, weak quorum)
        for (n, f, q, weak) in [(1, 0, 1, 1), (4, 1, 3, 2), (7, 2, 5, 3), (10, 3, 7, 4)] {
            assert_eq!(fault_tolerance(n), f, "f for n={n}");
            assert_eq!(quorum(n), q, "quorum for n={n}");
            assert_eq!(weak_quorum(n), weak, "weak quorum for n={n}");
        }
    }

    #[test]
    fn quorums_intersect_in_an_honest_validator_and_stay_live() {
        for n in 1..=40 {
            let f = fault_tolerance(n);
            let q = quorum(n);
            assert!(2 * q - n > f, "n={n}: two quorums (overlap 2q - n) must share f+1");
            assert!(q <= n - f, "n={n}: quorum must be reachable with f silent");
        }
    }

    #[test]
    fn primary_rotates_through_the_set() {
        let set = ValidatorSet::new((0..4).map(|i| PublicKey([i; 32])).collect());
        let primaries: Vec<_> = (0..5).map(|v| set.primary(v).0[0]).collect();
        assert_eq!(primaries, vec![0, 1, 2, 3, 0]);
    }
}

//! Votes and the commit certificate that makes a block final.

use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::crypto::{Domain, Hash, PublicKey, Signature, SigningKey};
use crate::encoding::encode;
use crate::validators::ValidatorSet;

/// What a PREPARE or COMMIT vote says: "in `view`, block `block_hash` is the one at `height`".
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
    JsonSchema,
)]
pub struct VoteTarget {
    pub height: u64,
    pub view: u64,
    pub block_hash: Hash,
}

/// A COMMIT vote, as carried inside certificates.
#[derive(
    Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema,
)]
pub struct CommitVote {
    pub voter: PublicKey,
    pub signature: Signature,
}

/// Proof that a block is final: a quorum of the validators at its height signed COMMIT for it in
/// one view.
#[derive(
    Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema,
)]
pub struct CommitCertificate {
    pub target: VoteTarget,
    pub votes: Vec<CommitVote>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("{voter:?} is not a validator at this height")]
    UnknownVoter { voter: PublicKey },
    #[error("{voter:?} voted twice")]
    DuplicateVoter { voter: PublicKey },
    #[error("{voter:?} is listed after {previous:?}: votes must be in ascending voter key order")]
    VotesOutOfOrder { voter: PublicKey, previous: PublicKey },
    #[error("signature of {voter:?} does not verify")]
    BadSignature { voter: PublicKey },
    #[error("{found} votes, a quorum is {needed}")]
    TooFewVotes { found: usize, needed: usize },
    #[error("certificate is for {found:?}, expected {expected:?}")]
    WrongTarget { expected: VoteTarget, found: VoteTarget },
}

/// Signs a vote of `domain` (Prepare or Commit) for `target`.
pub fn sign_vote(domain: Domain, chain_id: &str, target: &VoteTarget, key: &SigningKey) -> Signature {
    key.sign(domain, chain_id, &encode(target))
}

/// Checks that `votes` are validators of `validators` in strictly ascending voter key order
/// (so each appears once, and a list has one valid order: the one nodes write), that their
/// signatures of `domain` over `target` verify, and that there are at least a quorum of them.
pub fn verify_quorum<'a>(
    domain: Domain,
    chain_id: &str,
    target: &VoteTarget,
    votes: impl IntoIterator<Item = (&'a PublicKey, &'a Signature)>,
    validators: &ValidatorSet,
) -> Result<(), CertificateError> {
    let payload = encode(target);
    let mut previous: Option<&PublicKey> = None;
    let mut count = 0;
    for (voter, signature) in votes {
        if !validators.contains(voter) {
            return Err(CertificateError::UnknownVoter { voter: *voter });
        }
        match previous {
            Some(previous) if previous == voter => {
                return Err(CertificateError::DuplicateVoter { voter: *voter });
            }
            Some(previous) if previous > voter => {
                return Err(CertificateError::VotesOutOfOrder { voter: *voter, previous: *previous });
            }
            _ => {}
        }
        voter
            .verify(domain, chain_id, &payload, signature)
            .map_err(|_| CertificateError::BadSignature { voter: *voter })?;
        previous = Some(voter);
        count += 1;
    }
    if count < validators.quorum() {
        return Err(CertificateError::TooFewVotes { found: count, needed: validators.quorum() });
    }
    Ok(())
}

impl CommitCertificate {
    pub fn verify(&self, chain_id: &str, validators: &ValidatorSet) -> Result<(), CertificateError> {
        verify_quorum(
            Domain::Commit,
            chain_id,
            &self.target,
            self.votes.iter().map(|vote| (&vote.voter, &vote.signature)),
            validators,
        )
    }

    /// Verifies the certificate and that it is for exactly `expected`.
    pub fn verify_for(
        &self,
        expected: &VoteTarget,
        chain_id: &str,
        validators: &ValidatorSet,
    ) -> Result<(), CertificateError> {
        if self.target != *expected {
            return Err(CertificateError::WrongTarget { expected: *expected, found: self.target });
        }
        self.verify(chain_id, validators)
    }

    pub fn height(&self) -> u64 {
        self.target.height
    }

    pub fn block_hash(&self) -> Hash {
        self.target.block_hash
    }
}

impl fmt::Display for CommitCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "commit certificate for {} at height {} view {} ({} votes)",
            self.target.block_hash,
            self.target.height,
            self.target.view,
            self.votes.len()
        )
    }
}

#[cfg(all(test, not(feature = "bug-quorum-2f")))]
mod tests {
    use super::*;

    fn keys(n: u8) -> Vec<SigningKey> {
        (0..n).map(|i| SigningKey::from_seed([i + 10; 32])).collect()
    }

    /// Votes of `keys`, in ascending voter order as nodes write them.
    fn certificate(keys: &[SigningKey], target: VoteTarget) -> CommitCertificate {
        let mut votes: Vec<CommitVote> = keys
            .iter()
            .map(|key| CommitVote {
                voter: key.public_key(),
                signature: sign_vote(Domain::Commit, "c", &target, key),
            })
            .collect();
        votes.sort_by_key(|vote| vote.voter);
        CommitCertificate { target, votes }
    }

    #[test]
    fn quorum_certificate_verifies_and_forgeries_fail() {
        let keys = keys(4);
        let set = ValidatorSet::new(keys.iter().map(SigningKey::public_key).collect());
        let target = VoteTarget { height: 5, view: 1, block_hash: Hash::digest(b"b") };

        let good = certificate(&keys[..3], target);
        assert_eq!(good.verify("c", &set), Ok(()));
        assert!(good.verify("other", &set).is_err(), "other chain");

        let short = certificate(&keys[..2], target);
        assert_eq!(short.verify("c", &set), Err(CertificateError::TooFewVotes { found: 2, needed: 3 }));

        let mut duplicated = certificate(&keys[..2], target);
        duplicated.votes.push(duplicated.votes[1].clone());
        assert!(matches!(duplicated.verify("c", &set), Err(CertificateError::DuplicateVoter { .. })));

        // The same quorum listed in another order is refused: a certificate has one valid order.
        let mut reordered = good.clone();
        reordered.votes.reverse();
        assert!(matches!(reordered.verify("c", &set), Err(CertificateError::VotesOutOfOrder { .. })));

        let outsider = SigningKey::from_seed([99; 32]);
        let mut with_outsider = certificate(&keys[..2], target);
        with_outsider.votes.extend(certificate(&[outsider], target).votes);
        assert!(matches!(with_outsider.verify("c", &set), Err(CertificateError::UnknownVoter { .. })));

        let mut moved = good.clone();
        moved.target.height = 6;
        assert!(matches!(moved.verify("c", &set), Err(CertificateError::BadSignature { .. })));

        // A PREPARE signature is not a COMMIT signature.
        let mut prepares = good.clone();
        for vote in &mut prepares.votes {
            let key = keys.iter().find(|key| key.public_key() == vote.voter).expect("a voter's key");
            vote.signature = sign_vote(Domain::Prepare, "c", &target, key);
        }
        assert!(matches!(prepares.verify("c", &set), Err(CertificateError::BadSignature { .. })));

        let other = VoteTarget { height: 5, view: 1, block_hash: Hash::ZERO };
        assert!(matches!(good.verify_for(&other, "c", &set), Err(CertificateError::WrongTarget { .. })));
    }
}

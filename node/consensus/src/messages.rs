//! Consensus wire messages. Each signed message has a constructor that signs, `verify` against
//! the validator set, `digest()` and a readable `Display`.

use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};
use kubechain_types::certificate::{CertificateError, sign_vote, verify_quorum};
use kubechain_types::encoding::encode;
use kubechain_types::{
    Block, CommitCertificate, CommitVote, Domain, Hash, PublicKey, Signature, SigningKey, ValidatorSet,
    VoteTarget,
};

use crate::rejection::{RejectKind, Rejection};

/// The primary's proposal of `block` for its height in `view`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct PrePrepare {
    pub view: u64,
    pub block: Block,
    pub primary: PublicKey,
    /// Over `encode(VoteTarget { height, view, block_hash })` in the pre-prepare domain.
    pub signature: Signature,
}

impl PrePrepare {
    pub fn new(view: u64, block: Block, chain_id: &str, key: &SigningKey) -> PrePrepare {
        let target = VoteTarget { height: block.height(), view, block_hash: block.hash() };
        let signature = sign_vote(Domain::PrePrepare, chain_id, &target, key);
        PrePrepare { view, block, primary: key.public_key(), signature }
    }

    pub fn target(&self) -> VoteTarget {
        VoteTarget { height: self.block.height(), view: self.view, block_hash: self.block.hash() }
    }

    /// Checks the signature and that the signer is the primary of `view` in `validators`.
    pub fn verify(&self, chain_id: &str, validators: &ValidatorSet) -> Result<(), Rejection> {
        if self.primary != validators.primary(self.view) {
            return Err(Rejection::new(
                RejectKind::WrongPrimary,
                format!("{:?} is not the primary of view {}", self.primary, self.view),
            ));
        }
        self.primary
            .verify(Domain::PrePrepare, chain_id, &encode(&self.target()), &self.signature)
            .map_err(|e| Rejection::new(RejectKind::BadSignature, format!("pre-prepare: {e}")))
    }

    pub fn digest(&self) -> Hash {
        Hash::digest(&encode(self))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub enum VoteKind {
    Prepare,
    Commit,
}

impl VoteKind {
    pub fn domain(self) -> Domain {
        match self {
            VoteKind::Prepare => Domain::Prepare,
            VoteKind::Commit => Domain::Commit,
        }
    }
}

/// A PREPARE or COMMIT vote.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Vote {
    pub kind: VoteKind,
    pub target: VoteTarget,
    pub voter: PublicKey,
    pub signature: Signature,
}

impl Vote {
    pub fn new(kind: VoteKind, target: VoteTarget, chain_id: &str, key: &SigningKey) -> Vote {
        let signature = sign_vote(kind.domain(), chain_id, &target, key);
        Vote { kind, target, voter: key.public_key(), signature }
    }

    pub fn verify(&self, chain_id: &str, validators: &ValidatorSet) -> Result<(), Rejection> {
        verify_signer(&self.voter, validators)?;
        self.voter
            .verify(self.kind.domain(), chain_id, &encode(&self.target), &self.signature)
            .map_err(|e| Rejection::new(RejectKind::BadSignature, format!("{:?} vote: {e}", self.kind)))
    }

    pub fn digest(&self) -> Hash {
        Hash::digest(&encode(self))
    }
}

/// "My state after block `height` is `block_hash`": a quorum of these makes a stable checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Checkpoint {
    pub height: u64,
    pub block_hash: Hash,
    pub voter: PublicKey,
    /// Over `encode((height, block_hash))` in the checkpoint domain.
    pub signature: Signature,
}

impl Checkpoint {
    pub fn new(height: u64, block_hash: Hash, chain_id: &str, key: &SigningKey) -> Checkpoint {
        let signature = key.sign(Domain::Checkpoint, chain_id, &encode(&(height, block_hash)));
        Checkpoint { height, block_hash, voter: key.public_key(), signature }
    }

    pub fn verify(&self, chain_id: &str, validators: &ValidatorSet) -> Result<(), Rejection> {
        verify_signer(&self.voter, validators)?;
        self.voter
            .verify(Domain::Checkpoint, chain_id, &encode(&(self.height, self.block_hash)), &self.signature)
            .map_err(|e| Rejection::new(RejectKind::BadSignature, format!("checkpoint: {e}")))
    }

    pub fn digest(&self) -> Hash {
        Hash::digest(&encode(self))
    }
}

/// Proof that `block` was prepared in `view`: a quorum of PREPARE votes for it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct PreparedCertificate {
    pub view: u64,
    pub block: Block,
    pub prepares: Vec<CommitVote>,
}

impl PreparedCertificate {
    pub fn target(&self) -> VoteTarget {
        VoteTarget { height: self.block.height(), view: self.view, block_hash: self.block.hash() }
    }

    /// Checks the block's body against its header, then the quorum of PREPAREs. The votes cover
    /// only the header hash: without the first check, anyone relaying the certificate could swap
    /// the transactions behind a genuinely prepared header.
    pub fn verify(&self, chain_id: &str, validators: &ValidatorSet) -> Result<(), Rejection> {
        let height = self.block.height();
        let bad = |detail: String| Rejection::new(RejectKind::BadViewChange, detail);
        if !cfg!(feature = "bug-unchecked-body") {
            self.block.check_body().map_err(|e| bad(format!("prepared block at height {height}: {e}")))?;
        }
        verify_quorum(
            Domain::Prepare,
            chain_id,
            &self.target(),
            self.prepares.iter().map(|vote| (&vote.voter, &vote.signature)),
            validators,
        )
        .map_err(|e: CertificateError| bad(format!("prepared certificate at height {height}: {e}")))
    }
}

/// A replica's request to move to `new_view`, carrying what it has committed (proved by the
/// tip's commit certificate) and every block it prepared above that, so nothing prepared is lost.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ViewChange {
    pub new_view: u64,
    /// Certificate of the sender's highest committed block; `None` at genesis.
    pub committed: Option<CommitCertificate>,
    pub prepared: Vec<PreparedCertificate>,
    pub sender: PublicKey,
    /// Over `encode(self.summary())`: the view, the committed target and every prepared target.
    pub signature: Signature,
}

impl ViewChange {
    pub fn new(
        new_view: u64,
        committed: Option<CommitCertificate>,
        prepared: Vec<PreparedCertificate>,
        chain_id: &str,
        key: &SigningKey,
    ) -> ViewChange {
        let mut view_change = ViewChange {
            new_view,
            committed,
            prepared,
            sender: key.public_key(),
            signature: Signature([0; 64]),
        };
        view_change.signature = key.sign(Domain::ViewChange, chain_id, &encode(&view_change.summary()));
        view_change
    }

    /// What the signature covers. Blocks are bound through their hashes.
    pub fn summary(&self) -> (u64, Option<VoteTarget>, Vec<VoteTarget>) {
        (
            self.new_view,
            self.committed.as_ref().map(|certificate| certificate.target),
            self.prepared.iter().map(PreparedCertificate::target).collect(),
        )
    }

    pub fn committed_height(&self) -> u64 {
        self.committed.as_ref().map_or(0, CommitCertificate::height)
    }

    /// Checks the signature, the committed certificate and every prepared certificate, and that
    /// prepared blocks lie above the committed height and were prepared in earlier views, when
    /// one validator set governs every height involved.
    pub fn verify(&self, chain_id: &str, validators: &ValidatorSet) -> Result<(), Rejection> {
        self.verify_with(chain_id, validators, &|_| validators)
    }

    /// Like [`ViewChange::verify`], with the sender checked against `signers` and each
    /// certificate against the set `validators_at` its height (they differ across a
    /// validator-set change).
    pub fn verify_with<'a>(
        &self,
        chain_id: &str,
        signers: &ValidatorSet,
        validators_at: &dyn Fn(u64) -> &'a ValidatorSet,
    ) -> Result<(), Rejection> {
        verify_signer(&self.sender, signers)?;
        let bad = |detail: String| Rejection::new(RejectKind::BadViewChange, detail);
        self.sender
            .verify(Domain::ViewChange, chain_id, &encode(&self.summary()), &self.signature)
            .map_err(|e| Rejection::new(RejectKind::BadSignature, format!("view change: {e}")))?;
        if let Some(certificate) = &self.committed {
            certificate
                .verify(chain_id, validators_at(certificate.height()))
                .map_err(|e| bad(format!("committed certificate: {e}")))?;
        }
        let committed = self.committed_height();
        let mut heights = std::collections::HashSet::new();
        for prepared in &self.prepared {
            let height = prepared.block.height();
            if height <= committed || prepared.view >= self.new_view || !heights.insert(height) {
                return Err(bad(format!(
                    "prepared certificate for height {height} view {} does not fit",
                    prepared.view
                )));
            }
            prepared.verify(chain_id, validators_at(height))?;
        }
        Ok(())
    }

    pub fn digest(&self) -> Hash {
        Hash::digest(&encode(self))
    }
}

/// The new primary's announcement of `view`, justified by a quorum of view changes. Every replica
/// derives the blocks to re-propose from them (`view_change::select`), so the primary cannot
/// choose them.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct NewView {
    pub view: u64,
    pub view_changes: Vec<ViewChange>,
    pub primary: PublicKey,
    /// Over `encode((view, digests of view_changes))`.
    pub signature: Signature,
}

impl NewView {
    pub fn new(view: u64, view_changes: Vec<ViewChange>, chain_id: &str, key: &SigningKey) -> NewView {
        let payload = Self::payload(view, &view_changes);
        let signature = key.sign(Domain::NewView, chain_id, &payload);
        NewView { view, view_changes, primary: key.public_key(), signature }
    }

    fn payload(view: u64, view_changes: &[ViewChange]) -> Vec<u8> {
        let digests: Vec<Hash> = view_changes.iter().map(ViewChange::digest).collect();
        encode(&(view, digests))
    }

    pub fn verify(&self, chain_id: &str, validators: &ValidatorSet) -> Result<(), Rejection> {
        self.verify_with(chain_id, validators, &|_| validators)
    }

    /// Like [`NewView::verify`], with certificates inside the view changes checked against the
    /// set `validators_at` their height.
    pub fn verify_with<'a>(
        &self,
        chain_id: &str,
        validators: &ValidatorSet,
        validators_at: &dyn Fn(u64) -> &'a ValidatorSet,
    ) -> Result<(), Rejection> {
        let bad = |detail: String| Rejection::new(RejectKind::BadNewView, detail);
        if self.primary != validators.primary(self.view) {
            return Err(Rejection::new(
                RejectKind::WrongPrimary,
                format!("{:?} is not the primary of view {}", self.primary, self.view),
            ));
        }
        self.primary
            .verify(Domain::NewView, chain_id, &Self::payload(self.view, &self.view_changes), &self.signature)
            .map_err(|e| Rejection::new(RejectKind::BadSignature, format!("new view: {e}")))?;
        // The counting first, then the signatures and certificates inside.
        let mut senders = std::collections::HashSet::new();
        for view_change in &self.view_changes {
            if view_change.new_view != self.view {
                return Err(bad(format!("carries a view change for view {}", view_change.new_view)));
            }
            if !senders.insert(view_change.sender) {
                return Err(bad(format!("two view changes from {:?}", view_change.sender)));
            }
        }
        if senders.len() < validators.quorum() {
            return Err(bad(format!("{} view changes, a quorum is {}", senders.len(), validators.quorum())));
        }
        for view_change in &self.view_changes {
            view_change
                .verify_with(chain_id, validators, validators_at)
                .map_err(|e| bad(format!("view change: {e}")))?;
        }
        Ok(())
    }

    pub fn digest(&self) -> Hash {
        Hash::digest(&encode(self))
    }
}

/// A committed block with the certificate that makes it final, as sent in state transfer.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct CertifiedBlock {
    pub block: Block,
    pub certificate: CommitCertificate,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Message {
    PrePrepare(PrePrepare),
    Vote(Vote),
    Checkpoint(Checkpoint),
    ViewChange(ViewChange),
    NewView(NewView),
    /// "Send me committed blocks from this height on." Unsigned: peer links are authenticated.
    StateRequest {
        from_height: u64,
    },
    /// Committed blocks in height order, each proving itself with its certificate, possibly
    /// none; `tip` is the sender's committed height. Sent in answer to every request.
    StateResponse {
        blocks: Vec<CertifiedBlock>,
        tip: u64,
    },
}

impl Message {
    pub fn digest(&self) -> Hash {
        Hash::digest(&encode(self))
    }

    /// The view and the height a message speaks of (0 where it names none), to refuse values so
    /// far ahead that no honest validator could have reached them.
    pub fn claimed_view_and_height(&self) -> (u64, u64) {
        match self {
            Message::PrePrepare(pre_prepare) => (pre_prepare.view, pre_prepare.block.height()),
            Message::Vote(vote) => (vote.target.view, vote.target.height),
            Message::Checkpoint(checkpoint) => (0, checkpoint.height),
            Message::ViewChange(view_change) => (view_change.new_view, 0),
            Message::NewView(new_view) => (new_view.view, 0),
            Message::StateRequest { from_height } => (0, *from_height),
            Message::StateResponse { tip, .. } => (0, *tip),
        }
    }

    /// A short name, used as a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::PrePrepare(_) => "pre_prepare",
            Message::Vote(Vote { kind: VoteKind::Prepare, .. }) => "prepare",
            Message::Vote(Vote { kind: VoteKind::Commit, .. }) => "commit",
            Message::Checkpoint(_) => "checkpoint",
            Message::ViewChange(_) => "view_change",
            Message::NewView(_) => "new_view",
            Message::StateRequest { .. } => "state_request",
            Message::StateResponse { .. } => "state_response",
        }
    }
}

fn verify_signer(signer: &PublicKey, validators: &ValidatorSet) -> Result<(), Rejection> {
    if validators.contains(signer) {
        Ok(())
    } else {
        Err(Rejection::new(RejectKind::UnknownSigner, format!("{signer:?} is not a validator")))
    }
}

impl fmt::Display for PrePrepare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PRE-PREPARE view {} height {} block {:?} ({} txs) from {:?}",
            self.view,
            self.block.height(),
            self.block.hash(),
            self.block.transactions.len(),
            self.primary
        )
    }
}

impl fmt::Display for Vote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            VoteKind::Prepare => "PREPARE",
            VoteKind::Commit => "COMMIT",
        };
        let VoteTarget { view, height, block_hash } = self.target;
        write!(f, "{kind} view {view} height {height} block {block_hash:?} from {:?}", self.voter)
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CHECKPOINT height {} block {:?} from {:?}", self.height, self.block_hash, self.voter)
    }
}

impl fmt::Display for ViewChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prepared: Vec<(u64, u64)> = self.prepared.iter().map(|p| (p.block.height(), p.view)).collect();
        write!(
            f,
            "VIEW-CHANGE to view {} committed {} prepared (height, view) {prepared:?} from {:?}",
            self.new_view,
            self.committed_height(),
            self.sender
        )
    }
}

impl fmt::Display for NewView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NEW-VIEW {} with {} view changes from {:?}",
            self.view,
            self.view_changes.len(),
            self.primary
        )
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::PrePrepare(m) => m.fmt(f),
            Message::Vote(m) => m.fmt(f),
            Message::Checkpoint(m) => m.fmt(f),
            Message::ViewChange(m) => m.fmt(f),
            Message::NewView(m) => m.fmt(f),
            Message::StateRequest { from_height } => write!(f, "STATE-REQUEST from height {from_height}"),
            Message::StateResponse { blocks, tip } => match (blocks.first(), blocks.last()) {
                (Some(first), Some(last)) => write!(
                    f,
                    "STATE-RESPONSE heights {}..={} tip {tip}",
                    first.block.height(),
                    last.block.height()
                ),
                _ => write!(f, "STATE-RESPONSE (empty) tip {tip}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn votes_sign_verify_digest_and_display() {
        let keys: Vec<SigningKey> = (1..=4).map(|i| SigningKey::from_seed([i; 32])).collect();
        let validators = ValidatorSet::new(keys.iter().map(SigningKey::public_key).collect());
        let target = VoteTarget { height: 5, view: 2, block_hash: Hash::digest(b"block") };
        let prepare = Vote::new(VoteKind::Prepare, target, "c", &keys[0]);
        let commit = Vote::new(VoteKind::Commit, target, "c", &keys[0]);

        assert_eq!(prepare.verify("c", &validators), Ok(()));
        assert_eq!(prepare.verify("other", &validators).map_err(|r| r.kind), Err(RejectKind::BadSignature));
        let outsider = Vote::new(VoteKind::Prepare, target, "c", &SigningKey::from_seed([9; 32]));
        assert_eq!(outsider.verify("c", &validators).map_err(|r| r.kind), Err(RejectKind::UnknownSigner));
        // A PREPARE signature does not pass as a COMMIT.
        let relabelled = Vote { kind: VoteKind::Commit, ..prepare.clone() };
        assert_eq!(relabelled.verify("c", &validators).map_err(|r| r.kind), Err(RejectKind::BadSignature));

        assert_ne!(prepare.digest(), commit.digest());
        let shown = Message::Vote(prepare).to_string();
        assert!(shown.starts_with("PREPARE view 2 height 5 block "), "{shown}");
        assert_eq!(Message::Vote(commit).kind(), "commit");
    }

    /// A NEW-VIEW short of a quorum is refused by counting, before any view change inside it is
    /// verified (a broken one here would otherwise be what the refusal names).
    #[test]
    fn a_new_view_short_of_a_quorum_is_refused_before_its_view_changes_are_verified() {
        let keys: Vec<SigningKey> = (1..=4).map(|i| SigningKey::from_seed([i; 32])).collect();
        let validators = ValidatorSet::new(keys.iter().map(SigningKey::public_key).collect());
        let mut broken = ViewChange::new(1, None, Vec::new(), "c", &keys[2]);
        broken.signature.0[0] ^= 1;
        let view_changes = vec![ViewChange::new(1, None, Vec::new(), "c", &keys[1]), broken];
        let new_view = NewView::new(1, view_changes, "c", &keys[1]);
        let refused = new_view.verify("c", &validators).expect_err("two of four");
        assert_eq!(refused.kind, RejectKind::BadNewView);
        assert!(refused.detail.contains("2 view changes, a quorum is 3"), "{}", refused.detail);
    }
}

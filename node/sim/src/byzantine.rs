//! What a Byzantine replica does to the messages its (otherwise honest) core sends. It holds its
//! validator key, so it can sign anything; it cannot sign for anyone else.

use kubechain_consensus::{
    CertifiedBlock, Message, PrePrepare, PreparedCertificate, ViewChange, Vote, VoteKind,
};
use kubechain_types::{Block, CommitVote, Hash, Header, Signature, SigningKey, VoteTarget};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use crate::config::Misbehaviour;

/// A message on its way to one replica.
pub type Delivery = (usize, Message);

#[derive(Debug)]
pub struct Adversary {
    key: SigningKey,
    chain_id: String,
    misbehaviours: Vec<Misbehaviour>,
    /// Messages seen recently, for replays.
    seen: Vec<Message>,
    silent_until_ms: u64,
}

const REMEMBERED: usize = 256;

impl Adversary {
    pub fn new(key: SigningKey, chain_id: &str, misbehaviours: Vec<Misbehaviour>) -> Adversary {
        Adversary { key, chain_id: chain_id.to_string(), misbehaviours, seen: Vec::new(), silent_until_ms: 0 }
    }

    fn does(&self, misbehaviour: Misbehaviour) -> bool {
        self.misbehaviours.contains(&misbehaviour)
    }

    pub fn observe(&mut self, message: &Message) {
        if self.does(Misbehaviour::Replay) {
            if self.seen.len() >= REMEMBERED {
                self.seen.remove(0);
            }
            self.seen.push(message.clone());
        }
    }

    /// Rewrites what the honest core wanted to send. `peers` are all other replicas.
    pub fn corrupt(
        &mut self,
        rng: &mut ChaCha8Rng,
        now_ms: u64,
        peers: &[usize],
        deliveries: Vec<Delivery>,
    ) -> Vec<Delivery> {
        if self.does(Misbehaviour::Silence) {
            if now_ms < self.silent_until_ms {
                return Vec::new();
            }
            if rng.random_bool(0.01) {
                self.silent_until_ms = now_ms + rng.random_range(500..3_000);
                return Vec::new();
            }
        }
        let mut out = Vec::with_capacity(deliveries.len());
        for (to, message) in deliveries {
            out.extend(self.corrupt_one(rng, to, message));
        }
        if self.does(Misbehaviour::Replay)
            && !self.seen.is_empty()
            && !peers.is_empty()
            && rng.random_bool(0.3)
        {
            let old = self.seen[rng.random_range(0..self.seen.len())].clone();
            out.push((peers[rng.random_range(0..peers.len())], old));
        }
        out
    }

    fn corrupt_one(&mut self, rng: &mut ChaCha8Rng, to: usize, message: Message) -> Vec<Delivery> {
        let message = match message {
            Message::PrePrepare(pre_prepare) => {
                if self.does(Misbehaviour::Equivocate) && to % 2 == 1 {
                    // Some replicas get both blocks (in either order) and must notice.
                    let both = rng.random_bool(0.3);
                    let mut out = Vec::new();
                    if both && rng.random_bool(0.5) {
                        out.push((to, Message::PrePrepare(pre_prepare.clone())));
                    }
                    out.extend(self.equivocate(to, pre_prepare.clone()));
                    if both && out.len() == 3 {
                        out.push((to, Message::PrePrepare(pre_prepare)));
                    }
                    return out;
                }
                if self.does(Misbehaviour::BadSeal)
                    && pre_prepare.block.header.pow_difficulty > 0
                    && rng.random_bool(0.5)
                {
                    Message::PrePrepare(self.unseal(pre_prepare))
                } else {
                    Message::PrePrepare(pre_prepare)
                }
            }
            Message::StateResponse { blocks, tip } if self.does(Misbehaviour::ForgeCertificates) => {
                Message::StateResponse {
                    blocks: blocks.into_iter().map(|b| self.forge_certificate(b)).collect(),
                    tip: tip.saturating_add(1_000),
                }
            }
            Message::ViewChange(view_change) if self.does(Misbehaviour::ForgeCertificates) => {
                Message::ViewChange(self.forge_prepared(view_change))
            }
            other => other,
        };
        let message = if self.does(Misbehaviour::BadSignature) && rng.random_bool(0.2) {
            break_signature(message)
        } else {
            message
        };
        vec![(to, message)]
    }

    /// A second block for the same height and view (same transactions, another timestamp, so it
    /// executes to the same state and passes every check), with votes for it.
    fn equivocate(&self, to: usize, pre_prepare: PrePrepare) -> Vec<Delivery> {
        let mut header: Header = pre_prepare.block.header.clone();
        header.timestamp_ms += 1;
        let mut twin = Block { header, transactions: pre_prepare.block.transactions.clone() };
        twin.header.seal();
        let twin_pre_prepare = PrePrepare::new(pre_prepare.view, twin.clone(), &self.chain_id, &self.key);
        let target = VoteTarget { height: twin.height(), view: pre_prepare.view, block_hash: twin.hash() };
        vec![
            (to, Message::PrePrepare(twin_pre_prepare)),
            (to, Message::Vote(Vote::new(VoteKind::Prepare, target, &self.chain_id, &self.key))),
            (to, Message::Vote(Vote::new(VoteKind::Commit, target, &self.chain_id, &self.key))),
        ]
    }

    fn unseal(&self, pre_prepare: PrePrepare) -> PrePrepare {
        let mut block = pre_prepare.block;
        loop {
            block.header.pow_nonce = block.header.pow_nonce.wrapping_add(1);
            if !block.header.is_sealed() {
                break;
            }
        }
        PrePrepare::new(pre_prepare.view, block, &self.chain_id, &self.key)
    }

    /// Replaces a real certificate by one "signed" by this replica several times over.
    fn forge_certificate(&self, mut certified: CertifiedBlock) -> CertifiedBlock {
        let vote = CommitVote {
            voter: self.key.public_key(),
            signature: kubechain_types::certificate::sign_vote(
                kubechain_types::Domain::Commit,
                &self.chain_id,
                &certified.certificate.target,
                &self.key,
            ),
        };
        certified.certificate.votes = vec![vote; certified.certificate.votes.len().max(3)];
        certified
    }

    /// Adds a prepared certificate for a block nobody proposed, with made-up prepare votes.
    fn forge_prepared(&self, view_change: ViewChange) -> ViewChange {
        let height = view_change.committed_height() + 1 + view_change.prepared.len() as u64 + 1;
        let header = Header {
            chain_id: self.chain_id.clone(),
            height,
            view: view_change.new_view.saturating_sub(1),
            previous_hash: Hash::digest(b"nowhere"),
            tx_root: Hash::ZERO,
            state_root: Hash::ZERO,
            timestamp_ms: 0,
            proposer: self.key.public_key(),
            pow_difficulty: 0,
            pow_nonce: 0,
        };
        let fake = Block::new(header, Vec::new());
        let forged_vote = CommitVote { voter: self.key.public_key(), signature: Signature([7; 64]) };
        let mut prepared = view_change.prepared.clone();
        prepared.push(PreparedCertificate {
            view: view_change.new_view.saturating_sub(1),
            block: fake,
            prepares: vec![forged_vote; 3],
        });
        ViewChange::new(view_change.new_view, view_change.committed, prepared, &self.chain_id, &self.key)
    }
}

fn break_signature(message: Message) -> Message {
    let flip = |signature: &mut Signature| signature.0[0] ^= 0x40;
    match message {
        Message::PrePrepare(mut m) => {
            flip(&mut m.signature);
            Message::PrePrepare(m)
        }
        Message::Vote(mut m) => {
            flip(&mut m.signature);
            Message::Vote(m)
        }
        Message::Checkpoint(mut m) => {
            flip(&mut m.signature);
            Message::Checkpoint(m)
        }
        Message::ViewChange(mut m) => {
            flip(&mut m.signature);
            Message::ViewChange(m)
        }
        Message::NewView(mut m) => {
            flip(&mut m.signature);
            Message::NewView(m)
        }
        other => other,
    }
}

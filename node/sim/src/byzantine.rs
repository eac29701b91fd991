//! What a Byzantine replica does to the messages its (otherwise honest) core sends. It holds its
//! validator key, so it can sign anything; it cannot sign for anyone else.

use std::collections::BTreeMap;

use kubechain_consensus::{
    CertifiedBlock, Message, NewView, PrePrepare, PreparedCertificate, ViewChange, Vote, VoteKind,
};
use kubechain_types::{
    Block, CommitCertificate, CommitVote, Hash, Header, Signature, SigningKey, Transaction, VoteTarget,
};
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
    /// Transactions seen in blocks, to put behind other headers.
    transactions: Vec<Transaction>,
    /// The highest view and height seen, to aim floods at.
    view: u64,
    height: u64,
    silent_until_ms: u64,
    /// The `rules_hash` of the latest proposals seen or sent, by height: the value a block
    /// would carry without its own admin operations is its parent's.
    rules_hashes: BTreeMap<u64, Hash>,
    /// Messages sent altered by `Mutate`, and votes sent by `Flood`.
    pub mutated: u64,
    pub flooded: u64,
    /// Proposals sent whose header names other rules than the block leaves scheduled, and how
    /// many of them named the rules from before the block's own admin operations.
    pub rules_lies: u64,
    pub rules_omissions: u64,
}

const REMEMBERED: usize = 256;
const REMEMBERED_TRANSACTIONS: usize = 64;
/// Votes per flood, and how far above the highest height seen they aim.
const FLOOD_VOTES: usize = 24;
const FLOOD_HEIGHTS: u64 = 32;
/// Heights below the highest seen whose `rules_hash` the adversary remembers.
const REMEMBERED_RULES: u64 = 64;

impl Adversary {
    /// `genesis_rules_hash` is block 1's parent value of `rules_hash`.
    pub fn new(
        key: SigningKey,
        chain_id: &str,
        misbehaviours: Vec<Misbehaviour>,
        genesis_rules_hash: Hash,
    ) -> Adversary {
        Adversary {
            key,
            chain_id: chain_id.to_string(),
            misbehaviours,
            seen: Vec::new(),
            transactions: Vec::new(),
            view: 0,
            height: 0,
            silent_until_ms: 0,
            rules_hashes: BTreeMap::from([(0, genesis_rules_hash)]),
            mutated: 0,
            flooded: 0,
            rules_lies: 0,
            rules_omissions: 0,
        }
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
        let (view, height) = message.claimed_view_and_height();
        if let Message::PrePrepare(pre_prepare) = message {
            self.view = self.view.max(view);
            self.height = self.height.max(height);
            self.remember_rules(&pre_prepare.block);
            for tx in &pre_prepare.block.transactions {
                if self.transactions.len() >= REMEMBERED_TRANSACTIONS {
                    self.transactions.remove(0);
                }
                self.transactions.push(tx.clone());
            }
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
            for (to, message) in self.corrupt_one(rng, to, message) {
                let message = if self.does(Misbehaviour::Mutate) && rng.random_bool(0.5) {
                    self.mutate(rng, message)
                } else {
                    message
                };
                out.push((to, message));
            }
        }
        if self.does(Misbehaviour::Flood) && !peers.is_empty() && rng.random_bool(0.2) {
            let to = peers[rng.random_range(0..peers.len())];
            out.extend(self.flood(rng).into_iter().map(|vote| (to, Message::Vote(vote))));
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
                self.remember_rules(&pre_prepare.block);
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
                } else if self.does(Misbehaviour::LieAboutRules) && rng.random_bool(0.5) {
                    Message::PrePrepare(self.lie_about_rules(pre_prepare))
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

    fn remember_rules(&mut self, block: &Block) {
        self.rules_hashes.insert(block.height(), block.header.rules_hash);
        let oldest = self.height.saturating_sub(REMEMBERED_RULES);
        self.rules_hashes = self.rules_hashes.split_off(&oldest);
    }

    /// The same block, sealed and signed again, its header naming other rules than it leaves
    /// scheduled: its parent's when it has admin operations that change them (as if they were
    /// not there), a made-up value otherwise.
    fn lie_about_rules(&mut self, pre_prepare: PrePrepare) -> PrePrepare {
        let mut block = pre_prepare.block;
        let honest = block.header.rules_hash;
        let before = block.height().checked_sub(1).and_then(|parent| self.rules_hashes.get(&parent)).copied();
        block.header.rules_hash = match before {
            Some(before) if before != honest => {
                self.rules_omissions += 1;
                before
            }
            _ => Hash::digest_parts(&[b"made-up rules", honest.as_bytes()]),
        };
        block.header.seal();
        self.rules_lies += 1;
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
            rules_hash: Hash::ZERO,
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

impl Adversary {
    /// `message` with what no signature covers altered (counted when it differs). Its own
    /// messages it may re-sign; others' it relays with their signatures intact.
    fn mutate(&mut self, rng: &mut ChaCha8Rng, message: Message) -> Message {
        let original = message.clone();
        let mutated = match message {
            Message::PrePrepare(mut pre_prepare) => {
                // The signed header stays; the transactions behind it change.
                self.mutate_transactions(rng, &mut pre_prepare.block.transactions);
                Message::PrePrepare(pre_prepare)
            }
            Message::Vote(mut vote) => {
                // The kind picks the signing domain: a PREPARE relabelled COMMIT must not count.
                vote.kind = match vote.kind {
                    VoteKind::Prepare => VoteKind::Commit,
                    VoteKind::Commit => VoteKind::Prepare,
                };
                Message::Vote(vote)
            }
            Message::ViewChange(view_change) => {
                let ViewChange { new_view, mut committed, mut prepared, .. } = view_change;
                self.mutate_prepared(rng, &mut prepared);
                if let Some(certificate) = committed.as_mut() {
                    mutate_votes(rng, certificate);
                }
                Message::ViewChange(ViewChange::new(new_view, committed, prepared, &self.chain_id, &self.key))
            }
            Message::NewView(new_view) => {
                // Relays the others' view changes with their signatures, altering what those do
                // not cover, in another order; then signs the whole as the primary may.
                let mut view_changes = new_view.view_changes;
                for view_change in &mut view_changes {
                    self.mutate_prepared(rng, &mut view_change.prepared);
                    if let Some(certificate) = view_change.committed.as_mut()
                        && rng.random_bool(0.2)
                    {
                        mutate_votes(rng, certificate);
                    }
                }
                if view_changes.len() > 1 && rng.random_bool(0.5) {
                    let by = rng.random_range(1..view_changes.len());
                    view_changes.rotate_left(by);
                }
                Message::NewView(NewView::new(new_view.view, view_changes, &self.chain_id, &self.key))
            }
            Message::StateResponse { mut blocks, tip } => {
                if !blocks.is_empty() {
                    let index = rng.random_range(0..blocks.len());
                    match rng.random_range(0..3) {
                        0 => self.mutate_transactions(rng, &mut blocks[index].block.transactions),
                        1 => mutate_votes(rng, &mut blocks[index].certificate),
                        _ => blocks.swap(0, index),
                    }
                }
                let tip = match rng.random_range(0..3) {
                    0 => tip,
                    1 => tip.saturating_sub(rng.random_range(0..=tip)),
                    _ => tip.saturating_add(rng.random_range(1..1_000)),
                };
                Message::StateResponse { blocks, tip }
            }
            Message::StateRequest { from_height } => {
                Message::StateRequest { from_height: rng.random_range(0..=from_height.saturating_add(64)) }
            }
            other @ Message::Checkpoint(_) => other,
        };
        if mutated != original {
            self.mutated += 1;
        }
        mutated
    }

    /// Changes the transactions behind one prepared block's header, or the list's order.
    fn mutate_prepared(&self, rng: &mut ChaCha8Rng, prepared: &mut [PreparedCertificate]) {
        if prepared.is_empty() {
            return;
        }
        if prepared.len() > 1 && rng.random_bool(0.2) {
            prepared.reverse();
            return;
        }
        let index = rng.random_range(0..prepared.len());
        self.mutate_transactions(rng, &mut prepared[index].block.transactions);
    }

    /// Drops, repeats, reorders or swaps in transactions (the header, and so its tx_root and
    /// state root, stays as it was).
    fn mutate_transactions(&self, rng: &mut ChaCha8Rng, transactions: &mut Vec<Transaction>) {
        let seen = (!self.transactions.is_empty())
            .then(|| self.transactions[rng.random_range(0..self.transactions.len())].clone());
        match (rng.random_range(0..5), transactions.len(), seen) {
            (0, _, _) => transactions.clear(),
            (1, n, _) if n > 0 => {
                transactions.remove(rng.random_range(0..n));
            }
            (2, n, _) if n > 0 => {
                let again = transactions[rng.random_range(0..n)].clone();
                transactions.push(again);
            }
            (3, n, _) if n > 1 => transactions.reverse(),
            (_, n, Some(seen)) if n > 0 => {
                let index = rng.random_range(0..n);
                transactions[index] = seen;
            }
            (_, _, Some(seen)) => transactions.push(seen),
            _ => {}
        }
    }

    /// Votes signed by this replica for made-up blocks at heights and views it may vote on.
    fn flood(&mut self, rng: &mut ChaCha8Rng) -> Vec<Vote> {
        let votes: Vec<Vote> = (0..FLOOD_VOTES)
            .map(|_| {
                let mut block_hash = [0u8; 32];
                rng.fill(&mut block_hash);
                let target = VoteTarget {
                    height: self.height + rng.random_range(1..=FLOOD_HEIGHTS),
                    view: self.view + rng.random_range(0..=1),
                    block_hash: Hash(block_hash),
                };
                let kind = if rng.random_bool(0.5) { VoteKind::Prepare } else { VoteKind::Commit };
                Vote::new(kind, target, &self.chain_id, &self.key)
            })
            .collect();
        self.flooded += votes.len() as u64;
        votes
    }
}

/// Reorders, repeats or drops the votes of a certificate (the votes themselves stay genuine).
fn mutate_votes(rng: &mut ChaCha8Rng, certificate: &mut CommitCertificate) {
    let votes = &mut certificate.votes;
    if votes.is_empty() {
        return;
    }
    match rng.random_range(0..3) {
        0 => votes.reverse(),
        1 => {
            let again = votes[rng.random_range(0..votes.len())].clone();
            votes.push(again);
        }
        _ => {
            votes.remove(rng.random_range(0..votes.len()));
        }
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

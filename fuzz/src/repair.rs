//! Re-signing fuzzed values with the fixture's keys.
//!
//! A fuzzer cannot forge a signature, so on its own it never gets past the first signature check.
//! A target therefore checks each decoded value twice: as received, then "repaired": every block's
//! transaction root recomputed and its seal redone (when cheap), and every signature whose signer
//! is a fixture key made again over what the value now says. The repaired value still carries
//! whatever else the fuzzer chose (heights, views, vote lists, unknown signers), so the checks
//! behind the signatures (quorums, vote order, heights that must fit) see fuzzed input too.

use kubechain_consensus::Checkpoint;
use kubechain_consensus::{
    CertifiedBlock, Message, NewView, PrePrepare, PreparedCertificate, ViewChange, Vote,
};
use kubechain_types::block::tx_root;
use kubechain_types::certificate::sign_vote;
use kubechain_types::{
    Block, CommitCertificate, CommitVote, Domain, Header, ProvenTransaction, Receipt, RuleChange, Schedule,
    Transaction, VoteTarget,
};

use crate::{CHAIN_ID, fixture};

/// Highest difficulty a repair seals at: 2^8 hashes on average, cheap enough per input.
const MAX_SEAL_BITS: u8 = 8;

/// `transaction` signed again by its sender, when the sender is a fixture key.
pub fn transaction(transaction: &Transaction) -> Transaction {
    match fixture().key_of(&transaction.body.sender) {
        Some(key) => Transaction::new(transaction.body.clone(), key),
        None => transaction.clone(),
    }
}

/// `block` with the transaction root of its transactions and, at a low difficulty, a seal.
pub fn block(block: &Block) -> Block {
    let mut block = block.clone();
    block.header.tx_root = tx_root(&block.transactions);
    if block.header.pow_difficulty <= MAX_SEAL_BITS {
        block.header.seal();
    }
    block
}

/// The votes, those of fixture keys signed again for `target` in `domain`.
fn votes(votes: &[CommitVote], domain: Domain, target: &VoteTarget) -> Vec<CommitVote> {
    votes
        .iter()
        .map(|vote| match fixture().key_of(&vote.voter) {
            Some(key) => {
                CommitVote { voter: vote.voter, signature: sign_vote(domain, CHAIN_ID, target, key) }
            }
            None => vote.clone(),
        })
        .collect()
}

fn commit_certificate(certificate: &CommitCertificate, target: VoteTarget) -> CommitCertificate {
    CommitCertificate { target, votes: votes(&certificate.votes, Domain::Commit, &target) }
}

fn prepared_certificate(prepared: &PreparedCertificate) -> PreparedCertificate {
    let block = block(&prepared.block);
    let target = VoteTarget { height: block.height(), view: prepared.view, block_hash: block.hash() };
    PreparedCertificate {
        view: prepared.view,
        block,
        prepares: votes(&prepared.prepares, Domain::Prepare, &target),
    }
}

fn view_change(view_change: &ViewChange) -> ViewChange {
    let committed =
        view_change.committed.as_ref().map(|certificate| commit_certificate(certificate, certificate.target));
    let prepared: Vec<PreparedCertificate> = view_change.prepared.iter().map(prepared_certificate).collect();
    match fixture().key_of(&view_change.sender) {
        Some(key) => ViewChange::new(view_change.new_view, committed, prepared, CHAIN_ID, key),
        None => ViewChange { committed, prepared, ..view_change.clone() },
    }
}

fn certified_block(certified: &CertifiedBlock) -> CertifiedBlock {
    let block = block(&certified.block);
    let target = VoteTarget {
        height: block.height(),
        view: certified.certificate.target.view,
        block_hash: block.hash(),
    };
    CertifiedBlock { certificate: commit_certificate(&certified.certificate, target), block }
}

/// `message` with every block repaired and every fixture key's signature made again.
pub fn message(message: &Message) -> Message {
    let key_of = |public| fixture().key_of(public);
    match message {
        Message::PrePrepare(pre_prepare) => {
            let block = block(&pre_prepare.block);
            Message::PrePrepare(match key_of(&pre_prepare.primary) {
                Some(key) => PrePrepare::new(pre_prepare.view, block, CHAIN_ID, key),
                None => PrePrepare { block, ..pre_prepare.clone() },
            })
        }
        Message::Vote(vote) => match key_of(&vote.voter) {
            Some(key) => Message::Vote(Vote::new(vote.kind, vote.target, CHAIN_ID, key)),
            None => message.clone(),
        },
        Message::Checkpoint(checkpoint) => match key_of(&checkpoint.voter) {
            Some(key) => {
                Message::Checkpoint(Checkpoint::new(checkpoint.height, checkpoint.block_hash, CHAIN_ID, key))
            }
            None => message.clone(),
        },
        Message::ViewChange(change) => Message::ViewChange(view_change(change)),
        Message::NewView(new_view) => {
            let view_changes: Vec<ViewChange> = new_view.view_changes.iter().map(view_change).collect();
            Message::NewView(match key_of(&new_view.primary) {
                Some(key) => NewView::new(new_view.view, view_changes, CHAIN_ID, key),
                None => NewView { view_changes, ..new_view.clone() },
            })
        }
        Message::StateRequest { .. } => message.clone(),
        Message::StateResponse { blocks, tip } => {
            Message::StateResponse { blocks: blocks.iter().map(certified_block).collect(), tip: *tip }
        }
    }
}

/// `receipt` with its transaction signed again, its header sealed (when cheap) and its
/// certificate made for that header by the fixture keys among its voters; each rule change's
/// header also names the rules its transactions give, as the verifier derives them. The Merkle
/// path is left as it is: it is what the fuzzer is meant to vary.
pub fn receipt(receipt: &Receipt) -> Receipt {
    let (header, certificate) = certified_header(&receipt.header, &receipt.certificate);
    let mut schedule = Schedule::from_genesis(&fixture().genesis);
    let rule_changes = receipt
        .rule_changes
        .iter()
        .map(|change| {
            let transactions: Vec<ProvenTransaction> = change
                .transactions
                .iter()
                .map(|proven| ProvenTransaction {
                    transaction: transaction(&proven.transaction),
                    proof: proven.proof.clone(),
                })
                .collect();
            schedule.observe(change.header.height, transactions.iter().map(|proven| &proven.transaction));
            let header = Header { rules_hash: schedule.latest().hash(), ..change.header.clone() };
            let (header, certificate) = certified_header(&header, &change.certificate);
            RuleChange { header, certificate, transactions }
        })
        .collect();
    Receipt {
        transaction: transaction(&receipt.transaction),
        proof: receipt.proof.clone(),
        certificate,
        header,
        rule_changes,
    }
}

/// `header` sealed (when cheap), and `certificate` made for it by the fixture keys among its voters.
fn certified_header(header: &Header, certificate: &CommitCertificate) -> (Header, CommitCertificate) {
    let mut header = header.clone();
    if header.pow_difficulty <= MAX_SEAL_BITS {
        header.seal();
    }
    let target =
        VoteTarget { height: header.height, view: certificate.target.view, block_hash: header.hash() };
    let certificate = commit_certificate(certificate, target);
    (header, certificate)
}

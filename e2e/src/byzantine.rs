//! A Byzantine validator for the multi-process suites. It holds one validator's key and links to
//! every honest validator over the real wire protocol (TCP, Noise XX bound to its key, chunked
//! Borsh frames), from loopback addresses of its own. It never behaves: it collects what the
//! honest validators send it and answers with whatever its key lets it sign and whatever no
//! signature covers:
//!
//! - as primary, proposals whose transactions do not match their header, with a broken seal or
//!   on another parent, a different one to each validator;
//! - floods of validly signed votes for made-up blocks at the heights and views it may vote on
//!   (from [`Byzantine::flood`] on);
//! - view changes that carry genuine prepared certificates (the PREPAREs it collected) with other
//!   transactions behind the header, forged certificates or doctored commit certificates, for the
//!   next view, an old one and one far ahead; NEW-VIEWs made of them;
//! - state responses (asked for and unasked) with swapped bodies, dropped votes and tips it never
//!   reached;
//! - replays of what it saw; oversized and undecodable frames; garbage instead of a handshake,
//!   and handshakes left half-open.
//!
//! [`Byzantine::stop`] tells how many of each it sent.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kubechain_consensus::{
    CertifiedBlock, Message, NewView, PrePrepare, PreparedCertificate, ViewChange, Vote, VoteKind,
};
use kubechain_network::{Credentials, Frame, NetworkConfig, Role, SecureLink, handshake};
use kubechain_types::encoding::encode;
use kubechain_types::{
    Block, CommitCertificate, CommitVote, Genesis, Hash, Header, PublicKey, Signature, SigningKey,
    Transaction, ValidatorSet, VoteTarget,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;

/// The attacker's rhythm: everything below happens every so many ticks.
const TICK: Duration = Duration::from_millis(20);
const FLOOD_VOTES_PER_TICK: usize = 40;
const PROPOSALS_EVERY: u64 = 10;
const VIEW_CHANGES_EVERY: u64 = 25;
const STATE_EVERY: u64 = 15;
const REPLAYS_PER_TICK: usize = 4;
const BAD_FRAME_EVERY: u64 = 150;
/// Garbage connections and half-open handshakes per peer and round, a round a second.
const GARBAGE_CONNECTIONS: usize = 2;
const HALF_OPEN_HANDSHAKES: usize = 8;
/// How much it remembers (it is bounded too).
const REMEMBERED: usize = 256;
const REMEMBERED_TARGETS: usize = 512;
const REMEMBERED_BLOCKS: usize = 1024;
/// Frames waiting for one link; more are dropped.
const OUTBOX_FRAMES: usize = 512;

/// The source addresses: its links from one, its garbage from another (as two machines would).
const LINK_SOURCE: Ipv4Addr = Ipv4Addr::new(127, 66, 0, 1);
const GARBAGE_SOURCE: Ipv4Addr = Ipv4Addr::new(127, 66, 1, 1);

#[derive(Debug)]
pub struct ByzantineConfig {
    pub key: SigningKey,
    pub genesis: Genesis,
    /// The honest validators: key and p2p address.
    pub peers: Vec<(PublicKey, SocketAddr)>,
    pub seed: u64,
}

/// What it sent, by kind (queued for a link; what a full outbox dropped is not counted).
#[derive(Debug, Default)]
pub struct Tally {
    pub links: AtomicU64,
    pub tampered_proposals: AtomicU64,
    pub flooded_votes: AtomicU64,
    pub tampered_view_changes: AtomicU64,
    pub tampered_new_views: AtomicU64,
    pub tampered_state_responses: AtomicU64,
    pub replays: AtomicU64,
    pub oversized_frames: AtomicU64,
    pub undecodable_frames: AtomicU64,
    pub garbage_connections: AtomicU64,
    pub half_open_handshakes: AtomicU64,
}

impl Tally {
    /// Every counter by name.
    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        vec![
            ("links", get(&self.links)),
            ("tampered_proposals", get(&self.tampered_proposals)),
            ("flooded_votes", get(&self.flooded_votes)),
            ("tampered_view_changes", get(&self.tampered_view_changes)),
            ("tampered_new_views", get(&self.tampered_new_views)),
            ("tampered_state_responses", get(&self.tampered_state_responses)),
            ("replays", get(&self.replays)),
            ("oversized_frames", get(&self.oversized_frames)),
            ("undecodable_frames", get(&self.undecodable_frames)),
            ("garbage_connections", get(&self.garbage_connections)),
            ("half_open_handshakes", get(&self.half_open_handshakes)),
        ]
    }
}

/// The running adversary; [`Byzantine::stop`] ends it.
pub struct Byzantine {
    runtime: tokio::runtime::Runtime,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Byzantine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Byzantine").field("tally", &self.shared.tally).finish_non_exhaustive()
    }
}

impl Byzantine {
    pub fn start(config: ByzantineConfig) -> Byzantine {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let mut outboxes = Vec::new();
        let mut receivers = Vec::new();
        for _ in &config.peers {
            let (sender, receiver) = mpsc::channel(OUTBOX_FRAMES);
            outboxes.push(sender);
            receivers.push(receiver);
        }
        let shared = Arc::new(Shared {
            me: config.key.public_key(),
            key: config.key,
            validators: ValidatorSet::new(config.genesis.validators.clone()),
            genesis: config.genesis,
            addresses: config.peers.iter().map(|(_, address)| Mutex::new(*address)).collect(),
            peers: config.peers.iter().map(|(key, _)| *key).collect(),
            outboxes,
            flooding: AtomicBool::new(false),
            seen: Mutex::new(Seen::default()),
            tally: Tally::default(),
        });
        for (index, receiver) in receivers.into_iter().enumerate() {
            runtime.spawn(keep_linked(shared.clone(), index, receiver));
        }
        runtime.spawn(attack(shared.clone(), ChaCha8Rng::seed_from_u64(config.seed)));
        runtime.spawn(garbage(shared.clone(), ChaCha8Rng::seed_from_u64(config.seed ^ 0x9e37)));
        Byzantine { runtime, shared }
    }

    /// Where honest validator `index` (of the configured peers) listens after a restart.
    pub fn set_address(&self, index: usize, address: SocketAddr) {
        *self.shared.addresses[index].lock().unwrap() = address;
    }

    /// Whether to flood votes.
    pub fn flood(&self, flooding: bool) {
        self.shared.flooding.store(flooding, Ordering::SeqCst);
    }

    /// Stops every task and closes every connection; what it sent.
    pub fn stop(self) -> Vec<(&'static str, u64)> {
        let counts = self.shared.tally.counts();
        self.runtime.shutdown_timeout(Duration::from_secs(5));
        counts
    }
}

struct Shared {
    key: SigningKey,
    me: PublicKey,
    genesis: Genesis,
    validators: ValidatorSet,
    /// The honest validators' keys, and where each listens now.
    peers: Vec<PublicKey>,
    addresses: Vec<Mutex<SocketAddr>>,
    outboxes: Vec<mpsc::Sender<Vec<u8>>>,
    flooding: AtomicBool,
    seen: Mutex<Seen>,
    tally: Tally,
}

impl Shared {
    fn chain_id(&self) -> &str {
        &self.genesis.chain_id
    }

    fn address(&self, index: usize) -> SocketAddr {
        *self.addresses[index].lock().unwrap()
    }

    fn quorum(&self) -> usize {
        self.validators.quorum()
    }

    /// Queues encoded bytes for peer `index`, and counts them in `counter`; dropped (and not
    /// counted) when its outbox is full.
    fn send_bytes(&self, index: usize, bytes: Vec<u8>, counter: Option<&AtomicU64>) {
        if self.outboxes[index].try_send(bytes).is_ok()
            && let Some(counter) = counter
        {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn send(&self, index: usize, message: Message, counter: &AtomicU64) {
        self.send_bytes(index, encode(&Frame::Consensus(message)), Some(counter));
    }
}

/// What it learned from the honest validators, bounded.
#[derive(Default)]
struct Seen {
    view: u64,
    /// The highest height a quorum committed, and that block's hash.
    committed: (u64, Option<Hash>),
    blocks: HashMap<Hash, Block>,
    prepares: HashMap<VoteTarget, Vec<CommitVote>>,
    commits: HashMap<VoteTarget, Vec<CommitVote>>,
    /// Committed blocks honest validators sent it, by height, to tamper with.
    certified: BTreeMap<u64, CertifiedBlock>,
    recent: VecDeque<Message>,
    transactions: VecDeque<Transaction>,
}

fn remember<T>(queue: &mut VecDeque<T>, item: T) {
    if queue.len() >= REMEMBERED {
        queue.pop_front();
    }
    queue.push_back(item);
}

impl Seen {
    fn observe(&mut self, message: &Message, quorum: usize) {
        let (view, _) = message.claimed_view_and_height();
        self.view = self.view.max(view);
        match message {
            Message::PrePrepare(pre_prepare) => {
                if self.blocks.len() >= REMEMBERED {
                    self.blocks.clear();
                }
                self.blocks.insert(pre_prepare.block.hash(), pre_prepare.block.clone());
                for tx in &pre_prepare.block.transactions {
                    remember(&mut self.transactions, tx.clone());
                }
            }
            Message::Vote(vote) => {
                let votes = match vote.kind {
                    VoteKind::Prepare => &mut self.prepares,
                    VoteKind::Commit => &mut self.commits,
                };
                if votes.len() >= REMEMBERED_TARGETS {
                    votes.clear();
                }
                let voters = votes.entry(vote.target).or_default();
                if !voters.iter().any(|v| v.voter == vote.voter) {
                    voters.push(CommitVote { voter: vote.voter, signature: vote.signature });
                }
                if vote.kind == VoteKind::Commit
                    && voters.len() >= quorum
                    && vote.target.height > self.committed.0
                {
                    self.committed = (vote.target.height, Some(vote.target.block_hash));
                }
            }
            Message::StateResponse { blocks, .. } => {
                for certified in blocks {
                    self.certified.insert(certified.block.height(), certified.clone());
                    if self.certified.len() > REMEMBERED_BLOCKS {
                        self.certified.pop_first();
                    }
                }
            }
            _ => {}
        }
        remember(&mut self.recent, message.clone());
    }

    /// A genuine commit certificate for the highest block a quorum committed, if any.
    fn commit_certificate(&self, quorum: usize) -> Option<CommitCertificate> {
        self.commits
            .iter()
            .filter(|(_, votes)| votes.len() >= quorum)
            .max_by_key(|(target, _)| target.height)
            .map(|(target, votes)| CommitCertificate { target: *target, votes: canonical(votes) })
    }

    /// A genuine prepared certificate (a quorum of PREPAREs for a block it holds), if any.
    fn prepared_certificate(&self, quorum: usize) -> Option<PreparedCertificate> {
        self.prepares
            .iter()
            .filter(|(target, votes)| votes.len() >= quorum && self.blocks.contains_key(&target.block_hash))
            .max_by_key(|(target, _)| (target.height, target.view))
            .map(|(target, votes)| PreparedCertificate {
                view: target.view,
                block: self.blocks[&target.block_hash].clone(),
                prepares: canonical(votes),
            })
    }
}

/// Votes in the order a certificate lists them (by voter key).
fn canonical(votes: &[CommitVote]) -> Vec<CommitVote> {
    let mut votes = votes.to_vec();
    votes.sort_by_key(|vote| vote.voter);
    votes
}

/// Dials peer `index` until it links, moves frames both ways until the link breaks, again.
async fn keep_linked(shared: Arc<Shared>, index: usize, mut outbox: mpsc::Receiver<Vec<u8>>) {
    loop {
        let Some(link) = connect(&shared, index).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        shared.tally.links.fetch_add(1, Ordering::Relaxed);
        // A new link may be to a validator that is behind: lies are among the first it hears.
        let lies = tampered_state_response(&shared, &shared.seen.lock().unwrap(), 1);
        shared.send(index, lies, &shared.tally.tampered_state_responses);
        let (mut writer, mut reader) = link.split();
        let reading = async {
            while let Ok(bytes) = reader.receive().await {
                if let Ok(frame) = Frame::decode(&bytes) {
                    on_frame(&shared, index, frame);
                }
            }
        };
        let writing = async {
            while let Some(bytes) = outbox.recv().await {
                if writer.send(&bytes).await.is_err() {
                    break;
                }
            }
        };
        tokio::select! {
            () = reading => {}
            () = writing => {}
        }
    }
}

async fn connect(shared: &Shared, index: usize) -> Option<SecureLink> {
    let (key, address) = (shared.peers[index], shared.address(index));
    let stream = connect_from(LINK_SOURCE, address).await?;
    let accepts = |peer: &PublicKey| shared.validators.contains(peer);
    let credentials = Credentials {
        chain_id: shared.chain_id(),
        key: &shared.key,
        accepts: &accepts,
        max_frame_bytes: NetworkConfig::DEFAULT_MAX_FRAME_BYTES,
    };
    tokio::time::timeout(Duration::from_secs(5), handshake(stream, Role::Initiator, &credentials, Some(key)))
        .await
        .ok()?
        .ok()
}

async fn connect_from(source: Ipv4Addr, address: SocketAddr) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0)).ok()?;
    tokio::time::timeout(Duration::from_secs(2), socket.connect(address)).await.ok()?.ok()
}

fn on_frame(shared: &Shared, from: usize, frame: Frame) {
    let Frame::Consensus(message) = frame else {
        if let Frame::Transactions(transactions) = frame {
            let mut seen = shared.seen.lock().unwrap();
            for tx in transactions {
                remember(&mut seen.transactions, tx);
            }
        }
        return;
    };
    let asked_from = match &message {
        Message::StateRequest { from_height } => Some(*from_height),
        _ => None,
    };
    let answer = {
        let mut seen = shared.seen.lock().unwrap();
        seen.observe(&message, shared.quorum());
        asked_from.map(|from_height| tampered_state_response(shared, &seen, from_height))
    };
    if let Some(response) = answer {
        shared.send(from, response, &shared.tally.tampered_state_responses);
    }
}

/// The attacks that need no question: a tick at a time, each kind at its own rhythm.
async fn attack(shared: Arc<Shared>, mut rng: ChaCha8Rng) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for tick in 0u64.. {
        interval.tick().await;
        let peers = shared.peers.len();
        let (view, height) = {
            let seen = shared.seen.lock().unwrap();
            (seen.view, seen.committed.0)
        };
        let flooding = shared.flooding.load(Ordering::SeqCst);
        for index in (0..peers).filter(|_| flooding) {
            for vote in flood(&shared, &mut rng, view, height) {
                shared.send(index, Message::Vote(vote), &shared.tally.flooded_votes);
            }
        }
        if tick % PROPOSALS_EVERY == 0 && shared.validators.primary(view) == shared.me {
            for index in 0..peers {
                let proposal = tampered_proposal(&shared, &mut rng, view, index);
                shared.send(index, Message::PrePrepare(proposal), &shared.tally.tampered_proposals);
            }
        }
        if tick % VIEW_CHANGES_EVERY == 0 {
            send_view_changes(&shared, &mut rng, view);
        }
        if tick % STATE_EVERY == 0 {
            // Collects committed blocks (every one, from where its collection ends), and pushes
            // doctored copies of the latest on the others unasked.
            let asked = rng.random_range(0..peers);
            let recent = height.saturating_sub(8).max(1);
            let (from_height, unasked) = {
                let seen = shared.seen.lock().unwrap();
                let next = seen.certified.last_key_value().map_or(1, |(h, _)| h + 1);
                let from_height = if next + REMEMBERED_BLOCKS as u64 > height { next } else { recent };
                (from_height, tampered_state_response(&shared, &seen, recent))
            };
            let request = Message::StateRequest { from_height };
            shared.send_bytes(asked, encode(&Frame::Consensus(request)), None);
            for index in (0..peers).filter(|index| *index != asked) {
                shared.send(index, unasked.clone(), &shared.tally.tampered_state_responses);
            }
        }
        let replays: Vec<Message> = {
            let seen = shared.seen.lock().unwrap();
            (0..REPLAYS_PER_TICK.min(seen.recent.len()))
                .map(|_| seen.recent[rng.random_range(0..seen.recent.len())].clone())
                .collect()
        };
        for message in replays {
            shared.send(rng.random_range(0..peers), message, &shared.tally.replays);
        }
        if tick % BAD_FRAME_EVERY == BAD_FRAME_EVERY / 2 {
            send_bad_frames(&shared, &mut rng, (tick / BAD_FRAME_EVERY) as usize % peers);
        }
    }
}

/// Validly signed votes for made-up blocks, at heights and views a validator may vote on.
fn flood(shared: &Shared, rng: &mut ChaCha8Rng, view: u64, height: u64) -> Vec<Vote> {
    (0..FLOOD_VOTES_PER_TICK)
        .map(|_| {
            let mut block_hash = [0u8; 32];
            rng.fill(&mut block_hash);
            let target = VoteTarget {
                height: height + rng.random_range(1..=32),
                view: view + rng.random_range(0..=1),
                block_hash: Hash(block_hash),
            };
            let kind = if rng.random_bool(0.5) { VoteKind::Prepare } else { VoteKind::Commit };
            Vote::new(kind, target, shared.chain_id(), &shared.key)
        })
        .collect()
}

/// A proposal for the next height that must not be voted on: a different flaw per validator.
fn tampered_proposal(shared: &Shared, rng: &mut ChaCha8Rng, view: u64, index: usize) -> PrePrepare {
    let (height, parent, transactions) = {
        let seen = shared.seen.lock().unwrap();
        let transactions: Vec<Transaction> = seen.transactions.iter().rev().take(16).cloned().collect();
        (seen.committed.0, seen.committed.1, transactions)
    };
    let mut state_root = [0u8; 32];
    rng.fill(&mut state_root);
    let header = Header {
        chain_id: shared.chain_id().to_string(),
        height: height + 1,
        view,
        previous_hash: parent.unwrap_or_else(|| shared.genesis.hash()),
        tx_root: Hash::ZERO,
        state_root: Hash(state_root),
        rules_hash: Hash::ZERO,
        timestamp_ms: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |t| t.as_millis() as u64),
        proposer: shared.me,
        pow_difficulty: shared.genesis.params.pow_difficulty_bits,
        pow_nonce: 0,
    };
    let mut block = Block::new(header, transactions);
    match index % 3 {
        // The header's transaction root does not match the transactions behind it.
        0 => {
            block.header.seal();
            swap_transactions(&mut block.transactions, forged_transaction(shared));
        }
        // Another parent.
        1 => {
            block.header.previous_hash = Hash::digest(b"a parent nobody committed");
            block.header.seal();
        }
        // A seal that does not meet the difficulty.
        _ => loop {
            block.header.pow_nonce = block.header.pow_nonce.wrapping_add(1);
            if !block.header.is_sealed() {
                break;
            }
        },
    }
    PrePrepare::new(view, block, shared.chain_id(), &shared.key)
}

/// A transaction no member signed, to put behind a header that did not commit to it.
fn forged_transaction(shared: &Shared) -> Transaction {
    let body = kubechain_types::TxBody {
        chain_id: shared.chain_id().to_string(),
        sender: shared.me,
        nonce: 0,
        operations: Vec::new(),
    };
    Transaction { body, signature: Signature([7; 64]) }
}

/// View changes signed with its key whose contents lie, to every validator, and a NEW-VIEW made
/// of them for the next view it would lead.
fn send_view_changes(shared: &Shared, rng: &mut ChaCha8Rng, view: u64) {
    let quorum = shared.quorum();
    let (committed, prepared) = {
        let seen = shared.seen.lock().unwrap();
        (seen.commit_certificate(quorum), seen.prepared_certificate(quorum))
    };
    let mut view_changes = Vec::new();
    for new_view in [view + 1, view.saturating_sub(1), view + 1_000] {
        let mut committed = committed.clone();
        let mut prepared: Vec<PreparedCertificate> = prepared.clone().into_iter().collect();
        // Every one is doctored. (A valid request for a view far ahead would stand as this
        // validator's request until then: the pacemaker keeps one per validator, its highest.)
        match (rng.random_range(0..3), prepared.is_empty(), committed.as_mut()) {
            // The body swapped behind a genuinely prepared header.
            (0, false, _) => {
                for certificate in &mut prepared {
                    swap_transactions(&mut certificate.block.transactions, forged_transaction(shared));
                }
            }
            // A commit certificate short of a quorum.
            (2, _, Some(certificate)) => certificate.votes.truncate(quorum - 1),
            // A certificate of made-up PREPAREs for a block nobody proposed.
            _ => prepared.push(forged_prepared(shared, new_view, committed.as_ref())),
        }
        view_changes.push(ViewChange::new(new_view, committed, prepared, shared.chain_id(), &shared.key));
    }
    for index in 0..shared.peers.len() {
        for view_change in &view_changes {
            shared.send(index, Message::ViewChange(view_change.clone()), &shared.tally.tampered_view_changes);
        }
    }
    let led = (view + 1..view + 1 + shared.validators.len() as u64)
        .find(|v| shared.validators.primary(*v) == shared.me)
        .unwrap_or(view + 1);
    let new_view = NewView::new(led, view_changes, shared.chain_id(), &shared.key);
    for index in 0..shared.peers.len() {
        shared.send(index, Message::NewView(new_view.clone()), &shared.tally.tampered_new_views);
    }
}

fn forged_prepared(
    shared: &Shared,
    new_view: u64,
    committed: Option<&CommitCertificate>,
) -> PreparedCertificate {
    let height = committed.map_or(0, |c| c.target.height) + 1;
    let header = Header {
        chain_id: shared.chain_id().to_string(),
        height,
        view: new_view.saturating_sub(1),
        previous_hash: Hash::digest(b"nowhere"),
        tx_root: Hash::ZERO,
        state_root: Hash::ZERO,
        rules_hash: Hash::ZERO,
        timestamp_ms: 0,
        proposer: shared.me,
        pow_difficulty: 0,
        pow_nonce: 0,
    };
    let forged = CommitVote { voter: shared.me, signature: Signature([7; 64]) };
    PreparedCertificate {
        view: new_view.saturating_sub(1),
        block: Block::new(header, Vec::new()),
        prepares: vec![forged; 3],
    }
}

/// Drops the last transaction, or adds `spare` to an empty list (the header, and so its roots,
/// stays as it was).
fn swap_transactions(transactions: &mut Vec<Transaction>, spare: Transaction) {
    if transactions.pop().is_none() {
        transactions.push(spare);
    }
}

/// Committed blocks it learned, altered: a body swapped, votes dropped, and a tip it never saw.
fn tampered_state_response(shared: &Shared, seen: &Seen, from_height: u64) -> Message {
    let mut blocks: Vec<CertifiedBlock> =
        seen.certified.range(from_height..).take(8).map(|(_, certified)| certified.clone()).collect();
    for (i, certified) in blocks.iter_mut().enumerate() {
        if i % 2 == 0 {
            swap_transactions(&mut certified.block.transactions, forged_transaction(shared));
        } else {
            certified.certificate.votes.truncate(1);
        }
    }
    Message::StateResponse { blocks, tip: seen.committed.0 + 1_000 }
}

/// Frames over the size limit and frames that do not decode (each ends the link; it links again).
fn send_bad_frames(shared: &Shared, rng: &mut ChaCha8Rng, index: usize) {
    let oversized = vec![0u8; NetworkConfig::DEFAULT_MAX_FRAME_BYTES + 1];
    let mut undecodable = vec![0u8; rng.random_range(1..4096)];
    rng.fill(&mut undecodable[..]);
    undecodable[0] = 0xff; // no such frame kind
    if rng.random_bool(0.5) {
        shared.send_bytes(index, oversized, Some(&shared.tally.oversized_frames));
    } else {
        shared.send_bytes(index, undecodable, Some(&shared.tally.undecodable_frames));
    }
}

/// Once a second, to every validator: connections that send garbage instead of a handshake, and
/// handshakes opened and left hanging (held until the next round).
async fn garbage(shared: Arc<Shared>, mut rng: ChaCha8Rng) {
    let mut hanging: Vec<TcpStream> = Vec::new();
    loop {
        hanging.clear();
        for address in (0..shared.peers.len()).map(|index| shared.address(index)) {
            for _ in 0..GARBAGE_CONNECTIONS {
                if let Some(mut stream) = connect_from(GARBAGE_SOURCE, address).await {
                    // Framed as a handshake message of a size the node reads, so that it is the
                    // handshake, not the framing, that must refuse it.
                    let mut junk = vec![0u8; rng.random_range(3..1_000)];
                    rng.fill(&mut junk[..]);
                    let length = (junk.len() - 2) as u16;
                    junk[..2].copy_from_slice(&length.to_be_bytes());
                    let _ = stream.write_all(&junk).await;
                    shared.tally.garbage_connections.fetch_add(1, Ordering::Relaxed);
                }
            }
            for _ in 0..HALF_OPEN_HANDSHAKES {
                if let Some(stream) = connect_from(GARBAGE_SOURCE, address).await {
                    hanging.push(stream);
                    shared.tally.half_open_handshakes.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

//! The simulated world: replicas, their storage, clients, a faulty network and a clock, all
//! driven from one seeded random source so every run replays exactly.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::fmt;
use std::rc::Rc;

use kubechain_consensus::{
    Action, CertifiedBlock, Event, Message, Origin, Record, Recovered, RejectKind, Replica, Schedule, Timer,
    VoteKind,
};
use kubechain_types::edge_signatures::EdgeSigner;
use kubechain_types::encoding::encode;
use kubechain_types::{
    AdminOperation, CommitCertificate, ConsensusParams, Domain, Genesis, Hash, Member, Operation, PublicKey,
    Rules, SigningKey, Transaction, TxBody, ValidatorSet,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::app::{Nonces, SimApp, Verdicts};
use crate::byzantine::{Adversary, Delivery};
use crate::config::{Fault, SimConfig};

const CHAIN_ID: &str = "sim-chain";
/// Blocks per state-transfer response.
const BLOCKS_PER_RESPONSE: usize = 16;
/// How often clients resubmit what has not committed yet (as real clients do after a timeout).
const CLIENT_RETRY_MS: u64 = 1_000;

/// The work one run may do, so that a message storm ends the run at once as a liveness
/// violation instead of grinding on for hours and gigabytes until its simulated deadline (soak
/// seed 6478 of b1f835d queued 81k messages by 15.75 simulated seconds, and more each second).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Events (deliveries, timers, submissions, ...) carried out in all.
    pub max_events: u64,
    /// Events waiting in the queue at once: messages in flight, timers set.
    pub max_queued: usize,
}

impl Limits {
    /// Limits far above what a healthy run of `replicas` needs. A broadcast reaches every other
    /// replica, so work grows with the square of the replicas (16 at least, for small runs).
    /// Seeds 0-299 of 4 replicas and 0-99 of 7 needed at most 290 events and 21 queued per
    /// replica pair; these allow 50 000 and 1 000.
    pub fn for_replicas(replicas: usize) -> Limits {
        let pairs = replicas.saturating_mul(replicas).max(16);
        Limits { max_events: 50_000 * pairs as u64, max_queued: 1_000 * pairs }
    }
}

/// A broken safety or liveness property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Two honest replicas committed different blocks at one height.
    Agreement { height: u64, node: usize, block: Hash, other_block: Hash },
    /// An honest replica was shown a certified block on another chain.
    Fork { node: usize, detail: String },
    /// Honest replicas reached different verdicts on one transaction's signature, or committed a
    /// transaction whose signature is invalid.
    Validity { tx: Hash, detail: String },
    /// An honest replica committed a block that fails its own integrity checks (transaction root,
    /// seal) or does not re-execute, on that replica's committed state, to its state root.
    Integrity { node: usize, height: u64, detail: String },
    /// A commit certificate counted a vote from outside the validator set in force at its height.
    Reconfiguration { height: u64, voter: PublicKey },
    /// A committed transaction that no client submitted.
    Unsubmitted { node: usize, height: u64, tx: Hash },
    /// A transaction committed twice on one replica.
    Duplicate { node: usize, height: u64, tx: Hash },
    /// An honest replica sent a promise (proposal, vote, view change) it had not persisted.
    Unpersisted { node: usize, message: String },
    /// An honest replica signed a proposal, vote or checkpoint for a height whose validator set
    /// does not hold it (a learner, or a validator removed there).
    SignedOutsideSet { node: usize, height: u64, message: String },
    /// A replica's commits did not extend its stored chain.
    Storage { node: usize, detail: String },
    /// After healing, the honest replicas did not converge in time.
    Liveness { detail: String },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Agreement { height, node, block, other_block } => write!(
                f,
                "agreement: replica {node} committed {block:?} at height {height}, another honest replica {other_block:?}"
            ),
            Violation::Fork { node, detail } => write!(f, "agreement: replica {node} saw a fork: {detail}"),
            Violation::Validity { tx, detail } => write!(f, "validity: transaction {tx:?}: {detail}"),
            Violation::Integrity { node, height, detail } => {
                write!(f, "integrity: replica {node} committed height {height}: {detail}")
            }
            Violation::Reconfiguration { height, voter } => write!(
                f,
                "reconfiguration: the certificate at height {height} counts {voter:?}, not a validator there"
            ),
            Violation::Unsubmitted { node, height, tx } => {
                write!(f, "validity: replica {node} committed {tx:?} at height {height}, never submitted")
            }
            Violation::Duplicate { node, height, tx } => {
                write!(f, "validity: replica {node} committed {tx:?} a second time at height {height}")
            }
            Violation::Unpersisted { node, message } => {
                write!(f, "persistence: replica {node} sent {message} before persisting it")
            }
            Violation::SignedOutsideSet { node, height, message } => {
                write!(
                    f,
                    "reconfiguration: replica {node} signed {message} for height {height}, outside its set"
                )
            }
            Violation::Storage { node, detail } => write!(f, "storage: replica {node}: {detail}"),
            Violation::Liveness { detail } => write!(f, "liveness: {detail}"),
        }
    }
}

/// What a run that held every property did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub height: u64,
    pub transactions: u64,
    pub highest_view: u64,
    pub messages: u64,
    /// Messages the Byzantine replicas altered, and the votes they flooded.
    pub mutated: u64,
    pub flooded: u64,
    /// Proposals whose header named other rules than their block leaves scheduled, and how many
    /// of those named the rules from before the block's own admin operations.
    pub rules_lies: u64,
    pub rules_omissions: u64,
    pub rejections: BTreeMap<&'static str, u64>,
    pub simulated_ms: u64,
    /// Simulated time from healing until every honest replica had everything.
    pub converged_after_heal_ms: u64,
    /// Events the world carried out, and the most it ever had queued (see [`Limits`]).
    pub events: u64,
    pub peak_queued: usize,
}

#[derive(Debug)]
enum Item {
    Deliver {
        to: usize,
        from: usize,
        message: Message,
    },
    Timer {
        node: usize,
        incarnation: u64,
        timer: Timer,
    },
    Persisted {
        node: usize,
        incarnation: u64,
        height: u64,
    },
    Submit {
        client: usize,
        nonce: u64,
    },
    /// The admin changes the validator set (with other admin operations beside, which must not
    /// change the rules).
    Admin {
        operations: Vec<AdminOperation>,
        nonce: u64,
    },
    ClientRetry,
    Crash {
        node: usize,
        until_ms: u64,
    },
    Restart {
        node: usize,
    },
    Heal,
}

/// What survives a crash: the node's RocksDB, in the real thing.
#[derive(Debug, Default)]
struct Storage {
    blocks: Vec<CertifiedBlock>,
    schedule: Option<Schedule>,
    journal: Vec<Record>,
    nonces: Nonces,
}

#[derive(Debug)]
struct Node {
    key: SigningKey,
    replica: Option<Replica<SimApp>>,
    storage: Storage,
    incarnation: u64,
    adversary: Option<Adversary>,
    /// Set by a crash fault: the node dies part-way through the actions of its next event.
    crash_mid_event_until: Option<u64>,
    committed_txs: BTreeSet<Hash>,
}

pub struct World {
    config: SimConfig,
    rng: ChaCha8Rng,
    now_ms: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    items: HashMap<u64, Item>,
    genesis: Genesis,
    members: BTreeSet<PublicKey>,
    nodes: Vec<Node>,
    ids: HashMap<PublicKey, usize>,
    clients: Vec<SigningKey>,
    admin: SigningKey,
    admins: BTreeSet<PublicKey>,
    /// The validator set every height must be certified by, as the committed chain defines it.
    expected_validators: BTreeMap<u64, ValidatorSet>,
    /// The hash of the latest scheduled rules after each committed height, from the same
    /// definition: what every committed header must name.
    expected_rules_hashes: BTreeMap<u64, Hash>,
    submitted: BTreeMap<Hash, Transaction>,
    /// The hostile client's transactions with invalid signatures: never to be committed.
    forbidden: BTreeSet<Hash>,
    /// The honest replicas' signature verdicts.
    verdicts: Rc<RefCell<Verdicts>>,
    /// The first block each height committed with on an honest replica.
    canonical: BTreeMap<u64, Hash>,
    committed_txs: BTreeSet<Hash>,
    healed: bool,
    partitions: Vec<(Vec<usize>, u64, u64)>,
    report: Report,
    limits: Limits,
    /// 0: quiet; 1: faults, view changes and commits; 2: also every persist and rejection.
    verbosity: u8,
}

impl fmt::Debug for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("World").field("seed", &self.config.seed).field("now_ms", &self.now_ms).finish()
    }
}

fn key_from(rng: &mut ChaCha8Rng) -> SigningKey {
    let mut seed = [0u8; 32];
    rng.fill(&mut seed);
    SigningKey::from_seed(seed)
}

impl World {
    pub fn new(config: SimConfig, verbosity: u8) -> World {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let validator_keys: Vec<SigningKey> = (0..config.replicas).map(|_| key_from(&mut rng)).collect();
        let clients: Vec<SigningKey> = (0..config.clients).map(|_| key_from(&mut rng)).collect();
        let members: BTreeSet<PublicKey> = clients.iter().map(SigningKey::public_key).collect();
        let admin = key_from(&mut rng);
        let admins = BTreeSet::from([admin.public_key()]);
        // Drawn after the others, so runs without a joiner keep their keys.
        let joiner_key = config.joiner_added_at_ms.map(|_| key_from(&mut rng));
        let genesis = Genesis {
            chain_id: CHAIN_ID.into(),
            genesis_time_ms: 0,
            validators: validator_keys.iter().map(SigningKey::public_key).collect(),
            admins: vec![admin.public_key()],
            members: vec![Member { name: "clients".into(), public_keys: members.iter().copied().collect() }],
            params: ConsensusParams {
                block_interval_ms: config.block_interval_ms,
                max_block_txs: config.max_block_txs,
                checkpoint_interval: config.checkpoint_interval,
                view_change_timeout_ms: config.view_change_timeout_ms,
                pow_difficulty_bits: config.pow_difficulty_bits,
            },
        };
        let genesis_rules_hash = Rules::from_genesis(&genesis).hash();
        let nodes = validator_keys
            .into_iter()
            .chain(joiner_key)
            .enumerate()
            .map(|(index, key)| Node {
                adversary: config.is_byzantine(index).then(|| {
                    Adversary::new(key.clone(), CHAIN_ID, config.misbehaviours.clone(), genesis_rules_hash)
                }),
                key,
                replica: None,
                storage: Storage::default(),
                incarnation: 0,
                crash_mid_event_until: None,
                committed_txs: BTreeSet::new(),
            })
            .collect::<Vec<_>>();
        let ids = nodes.iter().enumerate().map(|(i, node)| (node.key.public_key(), i)).collect();
        let partitions = config
            .faults
            .iter()
            .filter_map(|fault| match fault {
                Fault::Partition { side, at_ms, until_ms } => Some((side.clone(), *at_ms, *until_ms)),
                Fault::Crash { .. } => None,
            })
            .collect();
        let genesis_validators = genesis.validator_set();
        let limits = Limits::for_replicas(config.nodes());
        let mut world = World {
            config,
            rng,
            now_ms: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            items: HashMap::new(),
            genesis,
            members,
            nodes,
            ids,
            clients,
            admin,
            admins,
            expected_validators: BTreeMap::new(),
            expected_rules_hashes: BTreeMap::new(),
            submitted: BTreeMap::new(),
            forbidden: BTreeSet::new(),
            verdicts: Rc::default(),
            canonical: BTreeMap::new(),
            committed_txs: BTreeSet::new(),
            healed: false,
            partitions,
            report: Report::default(),
            limits,
            verbosity,
        };
        world.expected_validators.insert(1, genesis_validators);
        world.schedule_everything();
        world
    }

    /// The same world with other bounds on its work than [`Limits::for_replicas`].
    pub fn with_limits(mut self, limits: Limits) -> World {
        self.limits = limits;
        self
    }

    fn push(&mut self, at_ms: u64, item: Item) {
        self.seq += 1;
        self.queue.push(Reverse((at_ms, self.seq)));
        self.items.insert(self.seq, item);
    }

    fn schedule_everything(&mut self) {
        for client in 0..self.config.clients {
            let mut times: Vec<u64> = (0..self.config.txs_per_client)
                .map(|_| self.rng.random_range(0..self.config.submit_until_ms))
                .collect();
            times.sort_unstable();
            for (i, at_ms) in times.into_iter().enumerate() {
                self.push(at_ms, Item::Submit { client, nonce: i as u64 + 1 });
            }
        }
        for fault in self.config.faults.clone() {
            if let Fault::Crash { node, at_ms, until_ms } = fault {
                self.push(at_ms, Item::Crash { node, until_ms });
                self.push(until_ms, Item::Restart { node });
            }
        }
        if let Some(change) = self.config.reconfiguration.clone() {
            let public_key = self.nodes[change.validator].key.public_key();
            // The removal travels with an admin added and taken away again: the rules (and every
            // header's rules_hash) change by the removal alone.
            let deputy = kubechain_types::SigningKey::from_seed([0xde; 32]).public_key();
            let remove = vec![
                AdminOperation::AddAdmin { public_key: deputy },
                AdminOperation::RemoveValidator { public_key },
                AdminOperation::RemoveAdmin { public_key: deputy },
            ];
            self.push(change.remove_at_ms, Item::Admin { operations: remove, nonce: 1 });
            self.push(
                change.add_at_ms,
                Item::Admin { operations: vec![AdminOperation::AddValidator { public_key }], nonce: 2 },
            );
        }
        if let Some(at_ms) = self.config.joiner_added_at_ms {
            let public_key = self.nodes[self.config.replicas].key.public_key();
            self.push(
                at_ms,
                Item::Admin { operations: vec![AdminOperation::AddValidator { public_key }], nonce: 1 },
            );
        }
        self.push(CLIENT_RETRY_MS, Item::ClientRetry);
        self.push(self.config.heal_at_ms, Item::Heal);
        for node in 0..self.nodes.len() {
            self.start(node);
        }
    }

    fn honest(&self, node: usize) -> bool {
        !self.config.is_byzantine(node)
    }

    /// Runs to the end: `Ok` once every honest replica holds every transaction after healing,
    /// `Err` on the first violated property.
    pub fn run(mut self) -> Result<Report, Violation> {
        let deadline = self.config.heal_at_ms + self.config.liveness_bound_ms;
        while let Some(Reverse((at_ms, seq))) = self.queue.pop() {
            let Some(item) = self.items.remove(&seq) else { continue };
            if at_ms > deadline {
                return Err(Violation::Liveness { detail: self.liveness_detail() });
            }
            self.now_ms = at_ms;
            self.report.events += 1;
            self.report.peak_queued = self.report.peak_queued.max(self.items.len() + 1);
            if self.report.events > self.limits.max_events || self.items.len() >= self.limits.max_queued {
                return Err(Violation::Liveness { detail: self.storm_detail() });
            }
            self.step(item)?;
            if self.healed && self.converged() {
                self.report.simulated_ms = self.now_ms;
                self.report.converged_after_heal_ms = self.now_ms - self.config.heal_at_ms;
                self.report.height = self.canonical.len() as u64;
                self.report.transactions = self.committed_txs.len() as u64;
                for adversary in self.nodes.iter().filter_map(|node| node.adversary.as_ref()) {
                    self.report.mutated += adversary.mutated;
                    self.report.flooded += adversary.flooded;
                    self.report.rules_lies += adversary.rules_lies;
                    self.report.rules_omissions += adversary.rules_omissions;
                }
                return Ok(self.report);
            }
        }
        Err(Violation::Liveness { detail: format!("the simulation ran dry: {}", self.liveness_detail()) })
    }

    fn converged(&self) -> bool {
        if self.committed_txs.len() != self.submitted.len()
            || self.submitted.len() as u64 != self.config.total_transactions()
        {
            return false;
        }
        let top = self.canonical.len() as u64;
        (0..self.nodes.len()).filter(|node| self.honest(*node)).all(|node| {
            // Caught up too: each would pass its readiness probe again.
            self.nodes[node].replica.as_ref().is_some_and(|r| r.height() == top && r.status().caught_up)
        })
    }

    /// What a run past its [`Limits`] was doing: the work done and what filled its queue.
    fn storm_detail(&self) -> String {
        let mut queued: BTreeMap<&'static str, usize> = BTreeMap::new();
        for item in self.items.values() {
            let kind = match item {
                Item::Deliver { message, .. } => message.kind(),
                Item::Timer { .. } => "timer",
                Item::Persisted { .. } => "persisted",
                Item::Submit { .. } | Item::Admin { .. } | Item::ClientRetry => "client",
                Item::Crash { .. } | Item::Restart { .. } | Item::Heal => "fault",
            };
            *queued.entry(kind).or_default() += 1;
        }
        let mut queued: Vec<(&'static str, usize)> = queued.into_iter().collect();
        queued.sort_by_key(|(kind, count)| (Reverse(*count), *kind));
        let queued: Vec<String> = queued.iter().map(|(kind, count)| format!("{kind} {count}")).collect();
        format!(
            "message storm: {} events carried out (limit {}), {} queued (limit {}) at {:.3} s: {}; {}",
            self.report.events,
            self.limits.max_events,
            self.items.len(),
            self.limits.max_queued,
            self.now_ms as f64 / 1000.0,
            queued.join(", "),
            self.liveness_detail()
        )
    }

    fn liveness_detail(&self) -> String {
        let heights: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| match &node.replica {
                Some(replica) => {
                    let status = replica.status();
                    format!(
                        "{i}{}: height {} view {}{}{}{}",
                        if self.honest(i) { "" } else { " (byzantine)" },
                        status.height,
                        status.view,
                        if status.in_view_change { " changing view" } else { "" },
                        if status.sync_target.is_some() { " syncing" } else { "" },
                        if status.caught_up { "" } else { " not caught up" },
                    )
                }
                None => format!("{i}: down"),
            })
            .collect();
        format!(
            "{} of {} transactions committed, chain height {}; replicas [{}]",
            self.committed_txs.len(),
            self.config.total_transactions(),
            self.canonical.len(),
            heights.join(", ")
        )
    }

    fn step(&mut self, item: Item) -> Result<(), Violation> {
        match item {
            Item::Deliver { to, from, message } => {
                if let Some(adversary) = self.nodes[to].adversary.as_mut() {
                    adversary.observe(&message);
                }
                let from = self.nodes[from].key.public_key();
                self.feed(to, Event::Message { from, message })?;
            }
            Item::Timer { node, incarnation, timer } => {
                if self.nodes[node].incarnation == incarnation {
                    self.feed(node, Event::Timer(timer))?;
                }
            }
            Item::Persisted { node, incarnation, height } => {
                if self.nodes[node].incarnation == incarnation {
                    self.feed(node, Event::BlockPersisted { height })?;
                }
            }
            Item::Submit { client, nonce } => {
                let key = &self.clients[client];
                let body = TxBody {
                    chain_id: CHAIN_ID.into(),
                    sender: key.public_key(),
                    nonce,
                    operations: vec![Operation::Put {
                        key: format!("k{nonce}"),
                        value: nonce.to_le_bytes().to_vec(),
                    }],
                };
                let tx = if client == 0 && self.config.hostile_client {
                    self.hostile_transaction(body)?
                } else {
                    Transaction::new(body, key)
                };
                self.submitted.insert(tx.hash(), tx.clone());
                self.submit_everywhere(std::slice::from_ref(&tx))?;
            }
            Item::Admin { operations, nonce } => {
                self.log(format_args!("the admin submits {operations:?}"));
                let body = TxBody {
                    chain_id: CHAIN_ID.into(),
                    sender: self.admin.public_key(),
                    nonce,
                    operations: operations.into_iter().map(Operation::Admin).collect(),
                };
                let tx = Transaction::new(body, &self.admin);
                self.submitted.insert(tx.hash(), tx.clone());
                self.submit_everywhere(std::slice::from_ref(&tx))?;
            }
            Item::ClientRetry => {
                // All that waits, as one submission: its signatures are checked in one batch.
                let waiting: Vec<Transaction> = self
                    .submitted
                    .iter()
                    .filter(|(hash, _)| !self.committed_txs.contains(*hash))
                    .map(|(_, tx)| tx.clone())
                    .collect();
                if !waiting.is_empty() {
                    self.submit_everywhere(&waiting)?;
                }
                self.push(self.now_ms + CLIENT_RETRY_MS, Item::ClientRetry);
            }
            Item::Crash { node, until_ms } => {
                self.log(format_args!("replica {node} is about to crash"));
                if self.rng.random_bool(0.5) {
                    self.crash(node);
                } else {
                    self.nodes[node].crash_mid_event_until = Some(until_ms);
                }
            }
            Item::Restart { node } => {
                self.nodes[node].crash_mid_event_until = None;
                if self.nodes[node].replica.is_none() {
                    self.start(node);
                }
            }
            Item::Heal => {
                self.healed = true;
                self.log(format_args!("faults end: the network is reliable from now on"));
                for node in 0..self.nodes.len() {
                    self.nodes[node].crash_mid_event_until = None;
                    if self.nodes[node].replica.is_none() {
                        self.start(node);
                    }
                }
            }
        }
        Ok(())
    }

    /// The hostile client's transaction for `body`: first a twin with an invalid signature (s
    /// not canonical), which every replica must refuse and none may ever commit; then `body`
    /// signed with a torsion point in R (or R of small order), valid under the signature rule.
    fn hostile_transaction(&mut self, body: TxBody) -> Result<Transaction, Violation> {
        let signer = EdgeSigner::new(self.clients[0].clone());
        let payload = encode(&body);
        let invalid = signer.non_canonical_s(Domain::Transaction, CHAIN_ID, &payload);
        let twin = Transaction { body: body.clone(), signature: invalid };
        self.forbidden.insert(twin.hash());
        self.submit_everywhere(std::slice::from_ref(&twin))?;
        let signature = if self.rng.random_bool(0.5) {
            signer.mixed_order_r(Domain::Transaction, CHAIN_ID, &payload)
        } else {
            signer.small_order_r(Domain::Transaction, CHAIN_ID, &payload)
        };
        Ok(Transaction { body, signature })
    }

    /// A client hands `transactions` to every running replica's mempool (the runtime's API and
    /// gossip).
    fn submit_everywhere(&mut self, transactions: &[Transaction]) -> Result<(), Violation> {
        for node in 0..self.nodes.len() {
            let accepted = match self.nodes[node].replica.as_mut() {
                Some(replica) => replica
                    .admit(self.now_ms, transactions.to_vec(), Origin::Client)
                    .iter()
                    .any(Result::is_ok),
                None => false,
            };
            if accepted {
                self.feed(node, Event::TransactionsArrived)?;
            }
        }
        Ok(())
    }

    fn crash(&mut self, node: usize) {
        if self.nodes[node].replica.take().is_some() {
            self.nodes[node].incarnation += 1;
            self.log(format_args!("replica {node} crashes"));
        }
    }

    fn start(&mut self, node: usize) {
        let storage = &self.nodes[node].storage;
        let last_committed = storage
            .blocks
            .last()
            .map(|certified| (certified.block.header.clone(), certified.certificate.clone()));
        let height = storage.blocks.len() as u64;
        let verdicts = self.honest(node).then(|| self.verdicts.clone());
        let committed_root = storage
            .blocks
            .last()
            .map_or_else(crate::app::genesis_root, |certified| certified.block.header.state_root);
        let app = SimApp::new(
            CHAIN_ID,
            self.members.clone(),
            self.admins.clone(),
            (storage.nonces.clone(), committed_root),
            height,
            verdicts,
        );
        let recovered = Recovered {
            last_committed,
            schedule: storage.schedule.clone(),
            journal: storage.journal.clone(),
        };
        let replica = Replica::new(&self.genesis, self.nodes[node].key.clone(), app, recovered);
        self.nodes[node].replica = Some(replica);
        self.nodes[node].incarnation += 1;
        if self.now_ms > 0 {
            self.log(format_args!("replica {node} restarts at height {height}"));
        }
        // Starting cannot violate anything: it only sends and persists.
        let _ = self.feed(node, Event::Started);
    }

    /// Hands `event` to `node` and carries out the actions, checking every commit.
    fn feed(&mut self, node: usize, event: Event) -> Result<(), Violation> {
        let Some(replica) = self.nodes[node].replica.as_mut() else { return Ok(()) };
        let view_before = replica.view();
        let actions = replica.handle(self.now_ms, event);
        let view_after = replica.view();
        if view_after > view_before && self.honest(node) {
            self.report.highest_view = self.report.highest_view.max(view_after);
            self.log(format_args!("replica {node} moves to view {view_after}"));
        }
        let crash_at = match self.nodes[node].crash_mid_event_until {
            Some(_) if !actions.is_empty() => Some(self.rng.random_range(0..actions.len())),
            _ => None,
        };
        if let Some((tx, verdict)) = self.verdicts.borrow().disagreement {
            let detail = format!(
                "an honest replica found its signature {}, another the opposite",
                if verdict { "valid" } else { "invalid" }
            );
            return Err(Violation::Validity { tx, detail });
        }
        for (index, action) in actions.into_iter().enumerate() {
            if crash_at == Some(index) {
                self.nodes[node].crash_mid_event_until = None;
                self.crash(node);
                return Ok(());
            }
            self.carry_out(node, action)?;
        }
        Ok(())
    }

    fn carry_out(&mut self, node: usize, action: Action) -> Result<(), Violation> {
        match action {
            Action::Persist(record) => {
                if self.honest(node) {
                    match &record {
                        Record::View { view, in_view_change } => self.trace(format_args!(
                            "replica {node} persists view {view} (changing: {in_view_change})"
                        )),
                        Record::PrePrepared { view, block } => self.trace(format_args!(
                            "replica {node} accepts the proposal for height {} in view {view}",
                            block.height()
                        )),
                        Record::Prepared(certificate) => self.trace(format_args!(
                            "replica {node} prepared height {} in view {}",
                            certificate.block.height(),
                            certificate.view
                        )),
                    }
                }
                self.nodes[node].storage.journal.push(record)
            }
            Action::Send { to, message } => {
                self.check_persisted(node, &message)?;
                self.check_signed_in_set(node, &message)?;
                if let Some(&to) = self.ids.get(&to) {
                    self.send(node, vec![(to, message)]);
                }
            }
            Action::Broadcast(message) => {
                self.check_persisted(node, &message)?;
                self.check_signed_in_set(node, &message)?;
                let deliveries =
                    (0..self.nodes.len()).filter(|to| *to != node).map(|to| (to, message.clone())).collect();
                self.send(node, deliveries);
            }
            Action::SetTimer { timer, at_ms } => {
                let incarnation = self.nodes[node].incarnation;
                self.push(at_ms.max(self.now_ms), Item::Timer { node, incarnation, timer });
            }
            Action::Commit { block, certificate, schedule } => {
                let height = block.height();
                let hash = block.hash();
                self.check_commit(node, &block, &certificate)?;
                let storage = &mut self.nodes[node].storage;
                if height != storage.blocks.len() as u64 + 1 {
                    return Err(Violation::Storage {
                        node,
                        detail: format!("committed height {height} on top of {}", storage.blocks.len()),
                    });
                }
                // The block's state changes go in the same atomic write as the block.
                for tx in &block.transactions {
                    storage.nonces.insert(tx.body.sender, tx.body.nonce);
                }
                storage.blocks.push(CertifiedBlock { block, certificate });
                if schedule.is_some() {
                    storage.schedule = schedule;
                }
                if node == self.first_honest() {
                    self.log(format_args!("replica {node} commits height {height} {hash:?}"));
                }
                let incarnation = self.nodes[node].incarnation;
                self.push(self.now_ms, Item::Persisted { node, incarnation, height });
            }
            Action::ServeBlocks { to, from_height } => {
                let storage = &self.nodes[node].storage;
                let start = (from_height.max(1) - 1) as usize;
                let blocks: Vec<CertifiedBlock> =
                    storage.blocks.iter().skip(start).take(BLOCKS_PER_RESPONSE).cloned().collect();
                let tip = storage.blocks.len() as u64;
                if let Some(&to) = self.ids.get(&to) {
                    self.send(node, vec![(to, Message::StateResponse { blocks, tip })]);
                }
            }
            Action::PruneJournal { through_height } => {
                let journal = &mut self.nodes[node].storage.journal;
                let latest_view = journal.iter().rev().find(|r| matches!(r, Record::View { .. })).cloned();
                journal.retain(|record| match record {
                    Record::View { .. } => false,
                    Record::PrePrepared { block, .. } => block.height() > through_height,
                    Record::Prepared(certificate) => certificate.block.height() > through_height,
                });
                if let Some(view) = latest_view {
                    journal.insert(0, view);
                }
            }
            Action::Rejected { rejection, from } => {
                if self.honest(node) && rejection.kind == RejectKind::Fork {
                    return Err(Violation::Fork { node, detail: rejection.detail });
                }
                if self.honest(node) {
                    let sender = self.ids.get(&from).copied().unwrap_or(usize::MAX);
                    self.trace(format_args!("replica {node} rejects from {sender}: {rejection}"));
                    *self.report.rejections.entry(rejection.kind.label()).or_default() += 1;
                }
            }
        }
        Ok(())
    }

    /// The rule every replica must follow: a change committed at height c governs heights from
    /// c + window + 1 on, and c's header names the latest scheduled rules after it.
    fn expect_validator_changes(&mut self, block: &kubechain_types::Block) {
        let Some(mut set) = self.expected_validators.values().next_back().cloned() else { return };
        let mut changed = false;
        for operation in block.transactions.iter().flat_map(|tx| &tx.body.operations) {
            match operation {
                Operation::Admin(AdminOperation::AddValidator { public_key }) => {
                    changed |= !set.contains(public_key);
                    set.add(*public_key);
                }
                Operation::Admin(AdminOperation::RemoveValidator { public_key }) => {
                    changed |= set.remove(public_key)
                }
                _ => {}
            }
        }
        // The simulation never changes the parameters.
        let rules = Rules { validators: set.clone(), params: self.genesis.params.clone() };
        self.expected_rules_hashes.insert(block.height(), rules.hash());
        if changed {
            let window = 2 * self.config.checkpoint_interval;
            self.expected_validators.insert(block.height() + window + 1, set);
            self.log(format_args!("validator set changes from height {}", block.height() + window + 1));
        }
    }

    /// An honest replica signs proposals, votes, checkpoints and view changes only for heights
    /// whose set holds it (its own, not forwarded ones: a NEW-VIEW carries others' signatures).
    fn check_signed_in_set(&self, node: usize, message: &Message) -> Result<(), Violation> {
        let me = self.nodes[node].key.public_key();
        let height = match message {
            Message::PrePrepare(pre_prepare) if pre_prepare.primary == me => pre_prepare.block.height(),
            Message::Vote(vote) if vote.voter == me => vote.target.height,
            Message::Checkpoint(checkpoint) if checkpoint.voter == me => checkpoint.height,
            Message::ViewChange(view_change) if view_change.sender == me => {
                view_change.committed_height() + 1
            }
            _ => return Ok(()),
        };
        let in_set =
            self.expected_validators.range(..=height).next_back().is_none_or(|(_, set)| set.contains(&me));
        if !self.honest(node) || in_set {
            return Ok(());
        }
        Err(Violation::SignedOutsideSet { node, height, message: message.to_string() })
    }

    /// Persistence before promise: what an honest replica signs and sends must already be in
    /// its durable journal, so a crash cannot make it contradict itself.
    fn check_persisted(&self, node: usize, message: &Message) -> Result<(), Violation> {
        let me = self.nodes[node].key.public_key();
        if !self.honest(node) {
            return Ok(());
        }
        let journal = &self.nodes[node].storage.journal;
        let pre_prepared = |view: u64, hash: Hash| {
            journal.iter().any(
                |r| matches!(r, Record::PrePrepared { view: v, block } if *v == view && block.hash() == hash),
            )
        };
        let in_view =
            |view: u64| journal.iter().any(|r| matches!(r, Record::View { view: v, .. } if *v >= view));
        let persisted = match message {
            Message::PrePrepare(m) if m.primary == me => pre_prepared(m.view, m.block.hash()),
            Message::Vote(m) if m.voter == me => match m.kind {
                VoteKind::Prepare => pre_prepared(m.target.view, m.target.block_hash),
                VoteKind::Commit => journal
                    .iter()
                    .any(|r| matches!(r, Record::Prepared(certificate) if certificate.target() == m.target)),
            },
            Message::ViewChange(m) if m.sender == me => in_view(m.new_view),
            Message::NewView(m) if m.primary == me => in_view(m.view),
            _ => true,
        };
        if persisted { Ok(()) } else { Err(Violation::Unpersisted { node, message: message.to_string() }) }
    }

    fn first_honest(&self) -> usize {
        (0..self.nodes.len()).find(|node| self.honest(*node)).unwrap_or(0)
    }

    fn check_commit(
        &mut self,
        node: usize,
        block: &kubechain_types::Block,
        certificate: &CommitCertificate,
    ) -> Result<(), Violation> {
        if !self.honest(node) {
            return Ok(());
        }
        let height = block.height();
        let hash = block.hash();
        match self.canonical.get(&height) {
            Some(other) if *other != hash => {
                return Err(Violation::Agreement { height, node, block: hash, other_block: *other });
            }
            Some(_) => {}
            None => {
                self.canonical.insert(height, hash);
                self.expect_validator_changes(block);
            }
        }
        self.check_reexecution(node, block)?;
        let expected_rules = self.expected_rules_hashes.get(&height);
        if expected_rules.is_some_and(|expected| *expected != block.header.rules_hash) {
            let detail = format!(
                "its header names rules {:?}, the committed chain leaves {expected_rules:?} scheduled",
                block.header.rules_hash
            );
            return Err(Violation::Integrity { node, height, detail });
        }
        let expected = self.expected_validators.range(..=height).next_back().map(|(_, set)| set);
        if let Some(voter) = certificate
            .votes
            .iter()
            .map(|vote| vote.voter)
            .find(|voter| expected.is_some_and(|set| !set.contains(voter)))
        {
            return Err(Violation::Reconfiguration { height, voter });
        }
        for tx in &block.transactions {
            let tx_hash = tx.hash();
            if self.forbidden.contains(&tx_hash) {
                let detail =
                    format!("replica {node} committed it at height {height}, its signature is invalid");
                return Err(Violation::Validity { tx: tx_hash, detail });
            }
            if !self.submitted.contains_key(&tx_hash) {
                return Err(Violation::Unsubmitted { node, height, tx: tx_hash });
            }
            if !self.nodes[node].committed_txs.insert(tx_hash) {
                return Err(Violation::Duplicate { node, height, tx: tx_hash });
            }
            self.committed_txs.insert(tx_hash);
        }
        Ok(())
    }

    /// The checker's own verdict on a block an honest replica commits: it passes its integrity
    /// checks, and its transactions, run on the replica's committed state by the application's
    /// rules (signature, sender, next nonce), lead to the state root its header claims.
    fn check_reexecution(&self, node: usize, block: &kubechain_types::Block) -> Result<(), Violation> {
        let height = block.height();
        let broken = |detail: String| Violation::Integrity { node, height, detail };
        block
            .check_integrity(CHAIN_ID, self.config.pow_difficulty_bits)
            .map_err(|e| broken(e.to_string()))?;
        let mut nonces = self.nodes[node].storage.nonces.clone();
        for tx in &block.transactions {
            let allowed = if tx.is_admin() { &self.admins } else { &self.members };
            let next = nonces.get(&tx.body.sender).copied().unwrap_or(0) + 1;
            if !allowed.contains(&tx.body.sender) || tx.body.nonce != next || tx.verify_signature().is_err() {
                return Err(broken(format!("{tx:?} cannot run there")));
            }
            nonces.insert(tx.body.sender, next);
        }
        let parent_root = self.nodes[node]
            .storage
            .blocks
            .last()
            .map_or_else(crate::app::genesis_root, |certified| certified.block.header.state_root);
        if crate::app::state_root(&parent_root, &nonces) != block.header.state_root {
            return Err(broken("its transactions do not lead to its state root".into()));
        }
        Ok(())
    }

    /// Puts messages on the wire: the Byzantine rewrite first, then loss, partitions,
    /// duplication and delay.
    fn send(&mut self, from: usize, deliveries: Vec<Delivery>) {
        let nodes = self.nodes.len();
        let deliveries = match self.nodes[from].adversary.as_mut() {
            Some(adversary) => {
                let peers: Vec<usize> = (0..nodes).filter(|p| *p != from).collect();
                adversary.corrupt(&mut self.rng, self.now_ms, &peers, deliveries)
            }
            None => deliveries,
        };
        for (to, message) in deliveries {
            self.report.messages += 1;
            if !self.healed {
                let cut = self.partitions.iter().any(|(side, at, until)| {
                    (*at..*until).contains(&self.now_ms) && (side.contains(&from) != side.contains(&to))
                });
                if cut || self.rng.random_bool(self.config.loss) {
                    continue;
                }
                if self.rng.random_bool(self.config.duplication) {
                    let delay = self.delay();
                    self.push(self.now_ms + delay, Item::Deliver { to, from, message: message.clone() });
                }
            }
            let delay = self.delay();
            self.push(self.now_ms + delay, Item::Deliver { to, from, message });
        }
    }

    fn delay(&mut self) -> u64 {
        self.rng.random_range(self.config.min_delay_ms..=self.config.max_delay_ms)
    }

    fn log(&self, line: fmt::Arguments<'_>) {
        self.log_at(1, line);
    }

    fn trace(&self, line: fmt::Arguments<'_>) {
        self.log_at(2, line);
    }

    fn log_at(&self, level: u8, line: fmt::Arguments<'_>) {
        if self.verbosity >= level {
            println!("[{:>7.3}s] {line}", self.now_ms as f64 / 1000.0);
        }
    }
}

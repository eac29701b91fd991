//! The replica state machine through its public API: a tiny deterministic application, and an
//! in-memory network that delivers every message synchronously in FIFO order and records every
//! action each replica returns.

use std::collections::{BTreeMap, HashMap, VecDeque};

use kubechain_consensus::{
    Action, Application, Built, CertifiedBlock, Event, ExecutionError, Message, NewView, Origin, PrePrepare,
    Record, Recovered, RejectKind, Replica, Timer, ViewChange, Vote, VoteKind,
};
use kubechain_types::encoding::encode;
use kubechain_types::{
    AdminOperation, Block, ConsensusParams, Genesis, Hash, HashedRules, Header, Operation, PublicKey, Rules,
    SigningKey, Transaction, TxBody, VoteTarget,
};

const CHAIN: &str = "replica-test";
const DIFFICULTY: u8 = 4;
const CHECKPOINT_INTERVAL: u64 = 2;
const TIMEOUT_MS: u64 = 1_000;
const START_MS: u64 = 1_000;

// ----- a tiny application: one nonce per sender -------------------------------------------------

type Nonces = BTreeMap<PublicKey, u64>;

fn state_root(nonces: &Nonces) -> Hash {
    Hash::digest(&encode(nonces))
}

#[derive(Debug)]
struct TestApp {
    committed: Nonces,
    /// Speculative states by root.
    states: HashMap<Hash, Nonces>,
    mempool: BTreeMap<(PublicKey, u64), Transaction>,
}

impl TestApp {
    fn new() -> TestApp {
        let genesis = Nonces::new();
        TestApp {
            states: HashMap::from([(state_root(&genesis), genesis.clone())]),
            committed: genesis,
            mempool: BTreeMap::new(),
        }
    }

    fn submit(&mut self, tx: Transaction) {
        self.mempool.insert((tx.body.sender, tx.body.nonce), tx);
    }

    fn state(&self, root: &Hash) -> Result<Nonces, ExecutionError> {
        self.states.get(root).cloned().ok_or(ExecutionError::UnknownParentState(*root))
    }
}

/// Applies `tx` if its nonce is the sender's next one.
fn apply(nonces: &mut Nonces, tx: &Transaction) -> bool {
    let next = nonces.get(&tx.body.sender).copied().unwrap_or(0) + 1;
    let runs = tx.body.nonce == next;
    if runs {
        nonces.insert(tx.body.sender, next);
    }
    runs
}

impl Application for TestApp {
    type Refusal = std::convert::Infallible;

    fn committed_state_root(&self) -> Hash {
        state_root(&self.committed)
    }

    fn build(&mut self, parent_state: &Hash, _height: u64, max: usize) -> Result<Built, ExecutionError> {
        let mut nonces = self.state(parent_state)?;
        let transactions: Vec<Transaction> =
            self.mempool.values().filter(|tx| apply(&mut nonces, tx)).take(max).cloned().collect();
        let state_root = state_root(&nonces);
        self.states.insert(state_root, nonces);
        Ok(Built { transactions, state_root })
    }

    fn execute(
        &mut self,
        parent_state: &Hash,
        _height: u64,
        transactions: &[Transaction],
    ) -> Result<Hash, ExecutionError> {
        let mut nonces = self.state(parent_state)?;
        if let Some(tx) = transactions.iter().find(|tx| !apply(&mut nonces, tx)) {
            return Err(ExecutionError::InvalidTransaction { tx: tx.hash(), reason: "wrong nonce".into() });
        }
        let root = state_root(&nonces);
        self.states.insert(root, nonces);
        Ok(root)
    }

    fn commit(&mut self, block: &Block) {
        if let Some(nonces) = self.states.get(&block.header.state_root) {
            self.committed = nonces.clone();
        }
        let committed = &self.committed;
        self.mempool.retain(|(sender, nonce), _| committed.get(sender).copied().unwrap_or(0) < *nonce);
    }

    fn pending(&self) -> usize {
        self.mempool.len()
    }

    fn admit(
        &mut self,
        _now_ms: u64,
        transactions: Vec<Transaction>,
        _origin: Origin,
    ) -> Vec<Result<Hash, Self::Refusal>> {
        transactions
            .into_iter()
            .map(|tx| {
                let hash = tx.hash();
                self.submit(tx);
                Ok(hash)
            })
            .collect()
    }
}

// ----- fixtures ------------------------------------------------------------------------------------

fn keys(n: usize) -> Vec<SigningKey> {
    (1..=n as u8).map(|i| SigningKey::from_seed([i; 32])).collect()
}

fn genesis(n: usize) -> Genesis {
    Genesis {
        chain_id: CHAIN.into(),
        genesis_time_ms: 0,
        validators: keys(n).iter().map(SigningKey::public_key).collect(),
        admins: Vec::new(),
        members: Vec::new(),
        params: ConsensusParams {
            checkpoint_interval: CHECKPOINT_INTERVAL,
            pow_difficulty_bits: DIFFICULTY,
            view_change_timeout_ms: TIMEOUT_MS,
            ..ConsensusParams::default()
        },
    }
}

fn client() -> SigningKey {
    SigningKey::from_seed([200; 32])
}

fn tx_with(nonce: u64, operation: Operation) -> Transaction {
    let body =
        TxBody { chain_id: CHAIN.into(), sender: client().public_key(), nonce, operations: vec![operation] };
    Transaction::new(body, &client())
}

fn tx(nonce: u64) -> Transaction {
    tx_with(nonce, Operation::Put { key: format!("k{nonce}"), value: vec![1] })
}

/// A sealed block at height 1 on top of genesis, proposed by `proposer` in `view`, whose state
/// root is what `TestApp` computes for `transactions` and whose rules are the genesis rules after
/// their admin operations.
fn first_block(genesis: &Genesis, proposer: &SigningKey, view: u64, transactions: Vec<Transaction>) -> Block {
    let rules_after = HashedRules::new(Rules::from_genesis(genesis)).after(&transactions);
    first_block_with_rules(genesis, proposer, view, transactions, rules_after.hash())
}

/// The same, its header naming `rules_hash` whatever the transactions do.
fn first_block_with_rules(
    genesis: &Genesis,
    proposer: &SigningKey,
    view: u64,
    transactions: Vec<Transaction>,
    rules_hash: Hash,
) -> Block {
    let mut nonces = Nonces::new();
    assert!(transactions.iter().all(|tx| apply(&mut nonces, tx)));
    let header = Header {
        chain_id: CHAIN.into(),
        height: 1,
        view,
        previous_hash: genesis.hash(),
        tx_root: Hash::ZERO,
        state_root: state_root(&nonces),
        rules_hash,
        timestamp_ms: START_MS,
        proposer: proposer.public_key(),
        pow_difficulty: DIFFICULTY,
        pow_nonce: 0,
    };
    let mut block = Block::new(header, transactions);
    block.header.seal();
    block
}

/// Validator `index` of `genesis`, started at genesis outside any network.
fn lone_replica(genesis: &Genesis, index: usize) -> Replica<TestApp> {
    let mut replica = Replica::new(
        genesis,
        keys(genesis.validators.len())[index].clone(),
        TestApp::new(),
        Recovered::default(),
    );
    replica.handle(START_MS, Event::Started);
    replica
}

fn pre_prepare(from: &SigningKey, pre_prepare: PrePrepare) -> Event {
    Event::Message { from: from.public_key(), message: Message::PrePrepare(pre_prepare) }
}

fn rejections(actions: &[Action]) -> Vec<RejectKind> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Rejected { rejection, .. } => Some(rejection.kind),
            _ => None,
        })
        .collect()
}

/// True if `actions` send this replica's PREPARE vote for `block_hash`.
fn prepares(actions: &[Action], block_hash: Hash) -> bool {
    actions.iter().any(|action| {
        matches!(action, Action::Broadcast(Message::Vote(vote)) | Action::Send { message: Message::Vote(vote), .. }
            if vote.kind == VoteKind::Prepare && vote.target.block_hash == block_hash)
    })
}

fn commits(actions: &[Action]) -> Vec<&Block> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Commit { block, .. } => Some(block),
            _ => None,
        })
        .collect()
}

// ----- the network -----------------------------------------------------------------------------

#[derive(Debug)]
struct Node {
    key: SigningKey,
    replica: Replica<TestApp>,
    /// An offline node receives nothing and sends nothing.
    online: bool,
    /// What it persisted, and the blocks it committed: its storage.
    journal: Vec<Record>,
    blocks: Vec<CertifiedBlock>,
    timers: BTreeMap<Timer, u64>,
}

#[derive(Debug)]
struct Net {
    genesis: Genesis,
    nodes: Vec<Node>,
    queue: VecDeque<(usize, Event)>,
    /// Every action list a replica returned, in the order they were returned.
    log: Vec<(usize, Vec<Action>)>,
    now_ms: u64,
    /// Messages the network loses.
    lost: fn(&Message) -> bool,
}

impl Net {
    /// `n` validators, started and settled.
    fn new(n: usize) -> Net {
        Net::with_nodes(n, n)
    }

    /// `validators` validators in genesis and `nodes - validators` more nodes outside it, all
    /// started and settled.
    fn with_nodes(validators: usize, nodes: usize) -> Net {
        let genesis = genesis(validators);
        let n = nodes;
        let nodes = keys(n)
            .into_iter()
            .map(|key| Node {
                replica: Replica::new(&genesis, key.clone(), TestApp::new(), Recovered::default()),
                key,
                online: true,
                journal: Vec::new(),
                blocks: Vec::new(),
                timers: BTreeMap::new(),
            })
            .collect();
        let mut net = Net {
            genesis,
            nodes,
            queue: VecDeque::new(),
            log: Vec::new(),
            now_ms: START_MS,
            lost: |_| false,
        };
        net.queue.extend((0..n).map(|node| (node, Event::Started)));
        net.deliver_all();
        net
    }

    fn id(&self, node: usize) -> PublicKey {
        self.nodes[node].key.public_key()
    }

    fn height(&self, node: usize) -> u64 {
        self.nodes[node].replica.height()
    }

    /// Hands `tx` to the mempool of every online replica.
    fn submit(&mut self, tx: Transaction) {
        for node in 0..self.nodes.len() {
            if self.nodes[node].online {
                self.nodes[node].replica.admit(self.now_ms, vec![tx.clone()], Origin::Client);
                self.queue.push_back((node, Event::TransactionsArrived));
            }
        }
    }

    /// Delivers queued events until the network is quiet.
    fn deliver_all(&mut self) {
        let mut steps = 0;
        while let Some((node, event)) = self.queue.pop_front() {
            steps += 1;
            assert!(steps < 100_000, "the network never quiets down");
            self.feed(node, event);
        }
    }

    /// Moves the clock to the latest deadline of `timer` among online replicas, fires it on each
    /// of them, and delivers what follows.
    fn fire(&mut self, timer: Timer) {
        let due: Vec<(usize, u64)> = self
            .nodes
            .iter_mut()
            .enumerate()
            .filter(|(_, node)| node.online)
            .filter_map(|(index, node)| node.timers.remove(&timer).map(|at_ms| (index, at_ms)))
            .collect();
        self.now_ms = due.iter().map(|(_, at_ms)| *at_ms).fold(self.now_ms, u64::max);
        self.queue.extend(due.into_iter().map(|(node, _)| (node, Event::Timer(timer))));
        self.deliver_all();
    }

    fn feed(&mut self, node: usize, event: Event) -> Vec<Action> {
        if !self.nodes[node].online {
            return Vec::new();
        }
        let actions = self.nodes[node].replica.handle(self.now_ms, event);
        for action in &actions {
            self.carry_out(node, action.clone());
        }
        self.log.push((node, actions.clone()));
        actions
    }

    fn carry_out(&mut self, node: usize, action: Action) {
        match action {
            Action::Persist(record) => self.nodes[node].journal.push(record),
            Action::Send { to, message } => self.send(node, to, message),
            Action::Broadcast(message) => {
                for to in 0..self.nodes.len() {
                    if to != node {
                        self.send(node, self.id(to), message.clone());
                    }
                }
            }
            Action::SetTimer { timer, at_ms } => {
                self.nodes[node].timers.insert(timer, at_ms);
            }
            Action::Commit { block, certificate, .. } => {
                let height = block.height();
                self.nodes[node].blocks.push(CertifiedBlock { block, certificate });
                self.queue.push_back((node, Event::BlockPersisted { height }));
            }
            Action::ServeBlocks { to, from_height } => {
                let skip = from_height.saturating_sub(1) as usize;
                let blocks = self.nodes[node].blocks.iter().skip(skip).cloned().collect();
                let tip = self.nodes[node].blocks.len() as u64;
                self.send(node, to, Message::StateResponse { blocks, tip });
            }
            Action::PruneJournal { .. } | Action::Rejected { .. } => {}
        }
    }

    fn send(&mut self, from: usize, to: PublicKey, message: Message) {
        let to = self.nodes.iter().position(|node| node.key.public_key() == to);
        if (self.lost)(&message) {
            return;
        }
        if let Some(to) = to.filter(|to| self.nodes[from].online && self.nodes[*to].online) {
            self.queue.push_back((to, Event::Message { from: self.id(from), message }));
        }
    }

    /// Every action `node` returned, in order.
    fn actions_of(&self, node: usize) -> impl Iterator<Item = &Action> {
        self.log.iter().filter(move |(n, _)| *n == node).flat_map(|(_, actions)| actions)
    }

    fn block_hashes(&self, node: usize) -> Vec<Hash> {
        self.nodes[node].blocks.iter().map(|certified| certified.block.hash()).collect()
    }
}

/// Four validators on a perfect network commit one block per submitted transaction.
fn perfect_run(blocks: u64) -> Net {
    let mut net = Net::new(4);
    for nonce in 1..=blocks {
        net.submit(tx(nonce));
        net.deliver_all();
        net.now_ms += 50;
    }
    net
}

/// Four validators whose primary is offline: the other three move to view 1 and commit there.
fn view_change_run() -> Net {
    let mut net = Net::new(4);
    net.nodes[0].online = false;
    net.submit(tx(1));
    net.deliver_all();
    net.fire(Timer::Progress);
    net
}

/// Four validators with block 1 prepared everywhere and committed nowhere (every COMMIT is lost).
fn prepared_not_committed() -> Net {
    let mut net = Net::new(4);
    net.lost = is_commit_vote;
    net.submit(tx(1));
    net.deliver_all();
    net.lost = |_| false;
    net
}

// ----- tests -----------------------------------------------------------------------------------

#[test]
fn a_replica_outside_the_set_follows_the_chain_and_signs_nothing() {
    let mut net = Net::with_nodes(4, 5);
    for nonce in 1..=6 {
        net.submit(tx(nonce));
        net.deliver_all();
        net.now_ms += 50;
    }
    // Its own clock runs out too: still no view change from it.
    net.fire(Timer::Progress);
    net.fire(Timer::StateTransfer);
    assert!(net.height(0) >= 6);
    assert_eq!(net.block_hashes(4), net.block_hashes(0), "the learner holds the same chain");
    let signed: Vec<&Message> = net
        .actions_of(4)
        .filter_map(|action| match action {
            Action::Broadcast(message) | Action::Send { message, .. } => Some(message),
            _ => None,
        })
        .filter(|message| {
            matches!(
                message,
                Message::PrePrepare(_) | Message::Vote(_) | Message::Checkpoint(_) | Message::ViewChange(_)
            )
        })
        .collect();
    assert!(signed.is_empty(), "a replica outside the set signed {signed:?}");
    let status = net.nodes[4].replica.status();
    assert!(!status.voting && net.nodes[0].replica.status().voting);
    assert!(!net.nodes[4].replica.votes_at(1));
}

#[test]
fn a_single_validator_commits_a_submitted_transaction() {
    let mut net = Net::new(1);
    net.submit(tx(1));
    net.deliver_all();

    assert_eq!(net.height(0), 1);
    let committed: Vec<(&Block, _)> = net
        .actions_of(0)
        .filter_map(|action| match action {
            Action::Commit { block, certificate, .. } => Some((block, certificate)),
            _ => None,
        })
        .collect();
    let [(block, certificate)] = committed.as_slice() else {
        panic!("expected one commit, got {committed:?}")
    };
    assert_eq!(block.transactions, vec![tx(1)]);
    assert_eq!(block.header.previous_hash, net.genesis.hash());
    assert_eq!(certificate.target, VoteTarget { height: 1, view: 0, block_hash: block.hash() });
    assert_eq!(certificate.verify(CHAIN, &net.genesis.validator_set()), Ok(()));
    assert_eq!(block.header.pow_difficulty, DIFFICULTY);
    assert!(block.hash().leading_zero_bits() >= u32::from(DIFFICULTY));
    assert_eq!(block.check_integrity(CHAIN, DIFFICULTY), Ok(()));
    assert_eq!(net.nodes[0].replica.app().committed.get(&client().public_key()), Some(&1));
}

#[test]
fn four_validators_agree_on_every_block_and_stabilise_checkpoints() {
    let net = perfect_run(5);

    let reference = net.block_hashes(0);
    assert_eq!(reference.len(), 5);
    for node in 0..4 {
        assert_eq!(net.height(node), 5, "replica {node}");
        assert_eq!(net.block_hashes(node), reference, "replica {node}");
        assert_eq!(net.nodes[node].replica.status().stable_checkpoint, 4, "replica {node}");
        assert!(
            net.actions_of(node).any(|action| matches!(action, Action::PruneJournal { through_height: 4 })),
            "replica {node} never pruned through the checkpoint at 4"
        );
    }
    let validators = net.genesis.validator_set();
    for (nonce, certified) in (1..).zip(&net.nodes[0].blocks) {
        assert_eq!(certified.block.transactions, vec![tx(nonce)]);
        assert_eq!(certified.certificate.block_hash(), certified.block.hash());
        assert_eq!(certified.certificate.verify(CHAIN, &validators), Ok(()));
    }
}

/// What a replica signs and sends must be in its journal first: after a crash it cannot then
/// contradict what it promised.
#[test]
fn every_promise_is_persisted_before_it_is_sent() {
    let mut checked: BTreeMap<&str, usize> = BTreeMap::new();
    for net in [perfect_run(5), view_change_run()] {
        for node in 0..net.nodes.len() {
            let mut persisted: Vec<&Record> = Vec::new();
            for action in net.actions_of(node) {
                let message = match action {
                    Action::Persist(record) => {
                        persisted.push(record);
                        continue;
                    }
                    Action::Broadcast(message) | Action::Send { message, .. } => message,
                    _ => continue,
                };
                let is_persisted =
                    |wanted: &dyn Fn(&Record) -> bool| persisted.iter().any(|record| wanted(record));
                let ok = match message {
                    Message::PrePrepare(m) => is_persisted(
                        &|r| matches!(r, Record::PrePrepared { view, block } if *view == m.view && *block == m.block),
                    ),
                    Message::Vote(Vote { kind: VoteKind::Prepare, target, voter, .. })
                        if *voter == net.id(node) =>
                    {
                        is_persisted(&|r| {
                            matches!(r, Record::PrePrepared { view, block }
                                if *view == target.view && block.height() == target.height && block.hash() == target.block_hash)
                        })
                    }
                    Message::Vote(Vote { kind: VoteKind::Commit, target, voter, .. })
                        if *voter == net.id(node) =>
                    {
                        is_persisted(
                            &|r| matches!(r, Record::Prepared(certificate) if certificate.target() == *target),
                        )
                    }
                    Message::ViewChange(m) if m.sender == net.id(node) => is_persisted(
                        &|r| matches!(r, Record::View { view, in_view_change: true } if *view == m.new_view),
                    ),
                    _ => continue,
                };
                assert!(ok, "replica {node} sent {message} before persisting it");
                *checked.entry(message.kind()).or_default() += 1;
            }
        }
    }
    // The check is not vacuous: every kind of promise was sent and checked.
    for kind in ["pre_prepare", "prepare", "commit", "view_change"] {
        assert!(checked.get(kind).is_some_and(|count| *count > 0), "no {kind} was checked: {checked:?}");
    }
}

#[test]
fn invalid_inputs_are_rejected_with_their_reason() {
    let genesis = genesis(4);
    let keys = keys(4);
    let (primary, other) = (&keys[0], &keys[2]);
    let mut replica = lone_replica(&genesis, 1);

    // Proposed by a validator that is not the primary of view 0.
    let block = first_block(&genesis, other, 0, vec![tx(1)]);
    let actions = replica.handle(START_MS, pre_prepare(other, PrePrepare::new(0, block, CHAIN, other)));
    assert_eq!(rejections(&actions), vec![RejectKind::WrongPrimary]);

    // A corrupted signature.
    let block = first_block(&genesis, primary, 0, vec![tx(1)]);
    let mut corrupted = PrePrepare::new(0, block.clone(), CHAIN, primary);
    corrupted.signature.0[0] ^= 1;
    let actions = replica.handle(START_MS, pre_prepare(primary, corrupted));
    assert_eq!(rejections(&actions), vec![RejectKind::BadSignature]);

    // A nonce whose hash misses the difficulty, properly signed by the primary.
    let mut unsealed = block.clone();
    while unsealed.header.is_sealed() {
        unsealed.header.pow_nonce += 1;
    }
    let actions =
        replica.handle(START_MS, pre_prepare(primary, PrePrepare::new(0, unsealed, CHAIN, primary)));
    assert_eq!(rejections(&actions), vec![RejectKind::BadBlock]);

    // None of the above was voted for; the valid proposal is.
    let actions =
        replica.handle(START_MS, pre_prepare(primary, PrePrepare::new(0, block.clone(), CHAIN, primary)));
    assert_eq!(rejections(&actions), vec![]);
    assert!(prepares(&actions, block.hash()));

    // A second, different proposal for the same view and height.
    let second = first_block(&genesis, primary, 0, Vec::new());
    assert_ne!(second.hash(), block.hash());
    let actions =
        replica.handle(START_MS, pre_prepare(primary, PrePrepare::new(0, second.clone(), CHAIN, primary)));
    assert_eq!(rejections(&actions), vec![RejectKind::Equivocation]);
    assert!(!prepares(&actions, second.hash()));

    // A vote from outside the validator set.
    let outsider = SigningKey::from_seed([99; 32]);
    let target = VoteTarget { height: 1, view: 0, block_hash: block.hash() };
    let vote = Vote::new(VoteKind::Prepare, target, CHAIN, &outsider);
    let actions = replica
        .handle(START_MS, Event::Message { from: outsider.public_key(), message: Message::Vote(vote) });
    assert_eq!(rejections(&actions), vec![RejectKind::UnknownSigner]);
}

#[test]
fn an_offline_primary_is_replaced_and_the_next_one_commits() {
    let mut net = Net::new(4);
    net.nodes[0].online = false;
    net.submit(tx(1));
    net.deliver_all();
    assert!((0..4).all(|node| net.height(node) == 0), "nothing commits without the primary");

    let deadline = net.nodes[1].timers.get(&Timer::Progress).copied().expect("a progress timer is set");
    assert!(deadline >= net.now_ms + TIMEOUT_MS);
    // Early: the timer is not due yet, nothing happens.
    net.queue.push_back((1, Event::Timer(Timer::Progress)));
    net.deliver_all();
    assert_eq!(net.nodes[1].replica.view(), 0);

    net.fire(Timer::Progress);
    assert!(net.now_ms >= deadline);
    for node in 1..4 {
        assert_eq!(net.nodes[node].replica.view(), 1, "replica {node}");
        assert_eq!(net.height(node), 1, "replica {node}");
        let block = &net.nodes[node].blocks[0].block;
        assert_eq!(block.transactions, vec![tx(1)]);
        assert_eq!(block.header.proposer, net.id(1), "validator 1 is the primary of view 1");
        assert_eq!(block.header.view, 1);
    }
    assert_eq!(net.block_hashes(1), net.block_hashes(2));
    assert_eq!(net.block_hashes(1), net.block_hashes(3));
}

#[test]
fn a_restarted_replica_does_not_vote_for_a_second_proposal() {
    let genesis = genesis(4);
    let keys = keys(4);
    let primary = &keys[0];
    let first = first_block(&genesis, primary, 0, vec![tx(1)]);
    let second = first_block(&genesis, primary, 0, Vec::new());

    let mut replica = Replica::new(&genesis, keys[1].clone(), TestApp::new(), Recovered::default());
    let mut emitted = replica.handle(START_MS, Event::Started);
    emitted.extend(
        replica.handle(START_MS, pre_prepare(primary, PrePrepare::new(0, first.clone(), CHAIN, primary))),
    );
    assert!(prepares(&emitted, first.hash()));
    let journal: Vec<Record> = emitted
        .into_iter()
        .filter_map(|action| match action {
            Action::Persist(record) => Some(record),
            _ => None,
        })
        .collect();

    // The crash: a new replica from the journal alone.
    let recovered = Recovered { last_committed: None, schedule: None, journal };
    let mut restarted = Replica::new(&genesis, keys[1].clone(), TestApp::new(), recovered);
    let actions = restarted.handle(START_MS + 10, Event::Started);
    assert!(prepares(&actions, first.hash()), "repeats its vote for the block it accepted");

    let actions = restarted
        .handle(START_MS + 10, pre_prepare(primary, PrePrepare::new(0, second.clone(), CHAIN, primary)));
    assert_eq!(rejections(&actions), vec![RejectKind::Equivocation]);
    assert!(!prepares(&actions, second.hash()));

    // Without its journal it would have voted for it: the journal is what holds it back.
    let mut amnesiac = lone_replica(&genesis, 1);
    let actions = amnesiac
        .handle(START_MS + 10, pre_prepare(primary, PrePrepare::new(0, second.clone(), CHAIN, primary)));
    assert!(prepares(&actions, second.hash()));
}

#[test]
fn a_lagging_replica_catches_up_by_state_transfer_and_refuses_forged_certificates() {
    let mut net = Net::new(4);
    net.nodes[3].online = false;
    for nonce in 1..=5 {
        net.submit(tx(nonce));
        net.deliver_all();
    }
    assert_eq!((net.height(0), net.height(3)), (5, 0));

    // One voter's COMMIT repeated to look like a quorum.
    net.nodes[3].online = true;
    let mut forged = net.nodes[0].blocks[0].clone();
    forged.certificate.votes = vec![forged.certificate.votes[0].clone(); forged.certificate.votes.len()];
    let from = net.id(0);
    let actions = net
        .feed(3, Event::Message { from, message: Message::StateResponse { blocks: vec![forged], tip: 1 } });
    assert_eq!(rejections(&actions), vec![RejectKind::BadCertificate]);
    assert!(commits(&actions).is_empty());
    assert_eq!(net.height(3), 0);

    // The votes and checkpoint of the next block show it the others moved on: it fetches the rest.
    net.submit(tx(6));
    net.deliver_all();
    assert_eq!(net.height(0), 6);
    assert_eq!(net.height(3), 6);
    assert_eq!(net.block_hashes(3), net.block_hashes(0));
    assert!(
        net.actions_of(3)
            .any(|action| matches!(action, Action::Send { message: Message::StateRequest { .. }, .. })),
        "replica 3 asked for blocks"
    );
    assert_eq!(net.nodes[3].replica.app().committed.get(&client().public_key()), Some(&6));
}

/// A replica catches up by state transfer past a schedule change, with the others' checkpoint
/// votes already in hand, then persists the blocks one by one. Stabilising the checkpoint at 2
/// must not forget the rules for heights 3 to 5, committed but not yet persisted (pruning the
/// schedule up to the tip used to make `Schedule::at` panic on the next `BlockPersisted`).
#[test]
fn an_idle_chain_carries_a_committed_change_to_its_height_with_empty_blocks_and_then_rests() {
    let mut net = Net::new(4);
    // Block 1 changes a parameter from height 1 + window + 1 = 6 on; nothing else is submitted.
    let params = ConsensusParams { view_change_timeout_ms: 2 * TIMEOUT_MS, ..net.genesis.params.clone() };
    net.submit(tx_with(1, Operation::Admin(AdminOperation::SetConsensusParams { params })));
    net.deliver_all();
    assert_eq!(net.height(0), 1);
    let interval = net.genesis.params.block_interval_ms;
    for _ in 0..10 {
        let before = net.now_ms;
        net.fire(Timer::Propose);
        assert!(net.now_ms <= before + interval, "an empty block waited longer than the block interval");
        net.now_ms += 1;
    }
    for node in 0..4 {
        assert_eq!(net.height(node), 5, "node {node}: up to the height before the change, no further");
        let status = net.nodes[node].replica.status();
        assert_eq!(status.consensus_params.view_change_timeout_ms, 2 * TIMEOUT_MS, "in force at 6");
        assert_eq!((status.rules_since, status.scheduled), (6, None));
    }
    let empty: Vec<usize> = net.nodes[0].blocks[1..].iter().map(|c| c.block.transactions.len()).collect();
    assert_eq!(empty, [0, 0, 0, 0]);
    // Timestamps follow the block interval: no empty block came sooner.
    for pair in net.nodes[0].blocks.windows(2) {
        let gap = pair[1].block.header.timestamp_ms - pair[0].block.header.timestamp_ms;
        assert!(
            gap >= interval,
            "{gap} ms between blocks {} and {}",
            pair[0].block.height(),
            pair[1].block.height()
        );
    }
}

#[test]
fn catching_up_across_a_schedule_change_keeps_the_rules_for_unpersisted_heights() {
    let mut net = Net::new(4);
    net.nodes[3].online = false;
    // Block 1 changes a parameter from height 1 + window + 1 = 6 on.
    let params = ConsensusParams { view_change_timeout_ms: 2 * TIMEOUT_MS, ..net.genesis.params.clone() };
    net.submit(tx_with(1, Operation::Admin(AdminOperation::SetConsensusParams { params })));
    net.deliver_all();
    for nonce in 2..=5 {
        net.submit(tx(nonce));
        net.deliver_all();
    }
    assert_eq!(net.height(0), 5);

    let mut lagging = lone_replica(&net.genesis, 3);
    let checkpoints: Vec<(PublicKey, Message)> = (0..3)
        .flat_map(|node| net.actions_of(node).map(move |action| (node, action)))
        .filter_map(|(node, action)| match action {
            Action::Broadcast(message @ Message::Checkpoint(checkpoint)) if checkpoint.height == 2 => {
                Some((net.id(node), message.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(checkpoints.len(), 3);
    for (from, message) in checkpoints {
        lagging.handle(net.now_ms, Event::Message { from, message });
    }
    let response = Message::StateResponse { blocks: net.nodes[0].blocks.clone(), tip: 5 };
    let actions = lagging.handle(net.now_ms, Event::Message { from: net.id(0), message: response });
    assert_eq!(commits(&actions).len(), 5);
    let changed = actions.iter().find_map(|action| match action {
        Action::Commit { schedule: Some(schedule), .. } => Some(schedule),
        _ => None,
    });
    let changed = changed.expect("block 1 changed the schedule");
    assert_eq!(changed.params_at(5).view_change_timeout_ms, TIMEOUT_MS);
    assert_eq!(changed.params_at(6).view_change_timeout_ms, 2 * TIMEOUT_MS);

    let mut pruned = false;
    for height in 1..=5 {
        let actions = lagging.handle(net.now_ms, Event::BlockPersisted { height });
        pruned |= actions.iter().any(|action| matches!(action, Action::PruneJournal { through_height: 2 }));
    }
    assert!(pruned, "the checkpoint at 2 became stable");
    assert_eq!(lagging.height(), 5);
    assert_eq!(lagging.status().stable_checkpoint, 2);
}

#[test]
fn a_validator_announcing_an_absurd_view_or_height_is_refused_without_harm() {
    let genesis = genesis(4);
    let validators = keys(4);
    let mut replica = lone_replica(&genesis, 0);
    let byzantine = &validators[3];
    let view_change = kubechain_consensus::ViewChange::new(u64::MAX, None, Vec::new(), CHAIN, byzantine);
    let actions = replica.handle(
        START_MS,
        Event::Message { from: byzantine.public_key(), message: Message::ViewChange(view_change) },
    );
    assert_eq!(rejections(&actions), vec![RejectKind::Implausible]);
    let target = VoteTarget { height: u64::MAX, view: 0, block_hash: Hash::ZERO };
    let vote = Vote::new(VoteKind::Commit, target, CHAIN, byzantine);
    let actions = replica
        .handle(START_MS, Event::Message { from: byzantine.public_key(), message: Message::Vote(vote) });
    assert_eq!(rejections(&actions), vec![RejectKind::Implausible]);
    assert_eq!(replica.view(), 0);
}

/// Readiness rests on `caught_up`. A replica that comes back after others moved on is not caught
/// up until a quorum, itself included, has nothing above its tip; catching up with one peer is
/// not enough, since that peer may be behind too.
#[test]
fn a_returning_replica_is_caught_up_only_when_a_quorum_has_nothing_newer() {
    let caught_up = |net: &Net, node: usize| net.nodes[node].replica.status().caught_up;
    let mut net = Net::new(4);
    assert!((0..4).all(|node| caught_up(&net, node)), "a new chain: everyone answered 'nothing newer'");

    net.nodes[3].online = false;
    for nonce in 1..=5 {
        net.submit(tx(nonce));
        net.deliver_all();
    }
    assert_eq!((net.height(0), net.height(3)), (5, 0));

    // Replica 3 restarts from its (empty) storage while only replica 0 is reachable.
    net.nodes[1].online = false;
    net.nodes[2].online = false;
    let genesis = net.genesis.clone();
    let node = &mut net.nodes[3];
    node.replica = Replica::new(&genesis, node.key.clone(), TestApp::new(), Recovered::default());
    node.timers.clear();
    node.online = true;
    assert!(!caught_up(&net, 3));
    net.queue.push_back((3, Event::Started));
    net.deliver_all();
    assert_eq!(net.height(3), 5, "it fetched the blocks from replica 0");
    assert!(!caught_up(&net, 3), "one peer's word is not a quorum's");

    // The next probe reaches replicas 0 and 1 as well: three of four have nothing above 5.
    net.nodes[1].online = true;
    let asked_before = state_requests(&net, 3);
    net.fire(Timer::StateTransfer);
    assert_eq!(state_requests(&net, 3) - asked_before, 3, "not caught up, it asks every peer");
    assert!(caught_up(&net, 3));

    // Caught up, it goes back to asking one peer in turn.
    let asked_before = state_requests(&net, 3);
    net.fire(Timer::StateTransfer);
    assert_eq!(state_requests(&net, 3) - asked_before, 1);
}

/// What a peer says of its tip is only a claim: a high one without blocks starts no sync (a
/// faulty validator could otherwise keep a replica unready), and low ones count only from
/// validators, and only a quorum of them latches.
#[test]
fn claimed_tips_neither_start_a_sync_nor_latch_alone() {
    let genesis = genesis(4);
    let validators = keys(4);
    let mut replica = lone_replica(&genesis, 0);
    let answer = |replica: &mut Replica<TestApp>, from: &SigningKey, tip: u64| {
        let message = Message::StateResponse { blocks: Vec::new(), tip };
        replica.handle(START_MS, Event::Message { from: from.public_key(), message })
    };

    let actions = answer(&mut replica, &validators[1], 100);
    assert!(!actions.iter().any(|a| matches!(a, Action::Send { message: Message::StateRequest { .. }, .. })));
    assert_eq!(replica.status().sync_target, None);
    assert!(!replica.status().caught_up);

    answer(&mut replica, &SigningKey::from_seed([99; 32]), 0);
    answer(&mut replica, &validators[2], 0);
    assert!(!replica.status().caught_up, "an outsider's answer does not count");
    answer(&mut replica, &validators[2], 0);
    assert!(!replica.status().caught_up, "nor does the same validator twice");
    answer(&mut replica, &validators[3], 0);
    assert!(replica.status().caught_up);
}

fn state_requests(net: &Net, node: usize) -> usize {
    net.actions_of(node)
        .filter(|action| matches!(action, Action::Send { message: Message::StateRequest { .. }, .. }))
        .count()
}

/// A replica that waits on its own catching up does not blame the primary: a lone view change
/// would shut it out of the view the others stay in. Once caught up, the same wait does.
#[test]
fn a_replica_that_is_not_caught_up_does_not_start_a_view_change() {
    let genesis = genesis(4);
    let validators = keys(4);
    let mut replica = lone_replica(&genesis, 1);
    replica.admit(START_MS, vec![tx(1)], Origin::Client);
    replica.handle(START_MS, Event::TransactionsArrived);
    let view_changes = |actions: &[Action]| {
        actions.iter().filter(|a| matches!(a, Action::Broadcast(Message::ViewChange(_)))).count()
    };

    let mut now = START_MS;
    for _ in 0..3 {
        now += TIMEOUT_MS;
        let actions = replica.handle(now, Event::Timer(Timer::Progress));
        assert_eq!(view_changes(&actions), 0);
    }
    assert!(!replica.status().in_view_change);

    for from in [&validators[2], &validators[3]] {
        let message = Message::StateResponse { blocks: Vec::new(), tip: 0 };
        replica.handle(now, Event::Message { from: from.public_key(), message });
    }
    assert!(replica.status().caught_up);
    now += TIMEOUT_MS;
    let actions = replica.handle(now, Event::Timer(Timer::Progress));
    assert_eq!(view_changes(&actions), 1, "caught up, a primary that never proposes is replaced");
}

fn is_commit_vote(message: &Message) -> bool {
    matches!(message, Message::Vote(Vote { kind: VoteKind::Commit, .. }))
}

/// The view changes `node` broadcast, newest last.
fn view_changes_of(net: &Net, node: usize) -> Vec<ViewChange> {
    net.actions_of(node)
        .filter_map(|action| match action {
            Action::Broadcast(Message::ViewChange(view_change)) => Some(view_change.clone()),
            _ => None,
        })
        .collect()
}

/// Defect found in review: the signatures in a prepared certificate cover only the block's header,
/// so a faulty primary of the next view could put other transactions behind a genuinely prepared
/// header in the view changes its NEW-VIEW relays. Replicas then committed a block whose body did
/// not match its own transaction root, with a state computed from the other body. Now the body is
/// checked with the certificate: the NEW-VIEW is refused, and the next view commits the real block.
#[test]
fn a_new_view_that_swaps_the_transactions_of_a_prepared_block_is_refused() {
    let mut net = prepared_not_committed();
    let keys = keys(4);
    for node in 0..4 {
        assert!(net.nodes[node].journal.iter().any(|record| matches!(record, Record::Prepared(_))));
        assert_eq!(net.height(node), 0);
    }

    // Validator 1, the primary of view 1, is faulty: it waits for the others' view changes ...
    net.nodes[1].online = false;
    net.fire(Timer::Progress);
    let honest = [0, 2, 3];
    let mut view_changes: Vec<ViewChange> =
        honest.iter().map(|node| view_changes_of(&net, *node).pop().expect("a view change")).collect();
    assert!(view_changes.iter().all(|vc| vc.new_view == 1 && vc.prepared.len() == 1));

    // ... and relays them with another transaction list behind the prepared header.
    let other = tx_with(1, Operation::Put { key: "swapped".into(), value: vec![2] });
    for view_change in &mut view_changes {
        view_change.prepared[0].block.transactions = vec![other.clone()];
    }
    let tampered = NewView::new(1, view_changes, CHAIN, &keys[1]);
    for node in honest {
        let message = Message::NewView(tampered.clone());
        let actions = net.feed(node, Event::Message { from: keys[1].public_key(), message });
        assert_eq!(rejections(&actions), vec![RejectKind::BadNewView], "replica {node}");
        assert!(commits(&actions).is_empty());
    }
    net.deliver_all();
    assert!(honest.iter().all(|node| net.height(*node) == 0));

    // The honest three give view 1 a second timeout (a resend first, in case its NEW-VIEW was
    // lost), move on to view 2 and commit the block that was prepared, body and all.
    net.fire(Timer::ViewChange);
    net.fire(Timer::ViewChange);
    for node in honest {
        assert_eq!(net.nodes[node].replica.view(), 2, "replica {node}");
        assert_eq!(net.height(node), 1, "replica {node}");
        let block = &net.nodes[node].blocks[0].block;
        assert_eq!(block.transactions, vec![tx(1)], "replica {node}");
        assert_eq!(block.check_integrity(CHAIN, DIFFICULTY), Ok(()));
    }
}

/// The same swap in a view change of a faulty validator behind an honest primary: the view change
/// is refused, so the primary's choice among same-header candidates can never pick it.
#[test]
fn a_view_change_that_swaps_the_transactions_of_a_prepared_block_is_refused() {
    let mut net = prepared_not_committed();
    let keys = keys(4);
    net.fire(Timer::Progress);
    assert_eq!(net.nodes[1].replica.view(), 1);
    let mut forged = view_changes_of(&net, 3).pop().expect("a view change");
    forged.prepared[0].block.transactions =
        vec![tx_with(1, Operation::Put { key: "x".into(), value: vec![] })];
    let forged = ViewChange::new(1, forged.committed, forged.prepared, CHAIN, &keys[3]);
    // The primary of view 1, as it was while it gathered the view changes.
    let mut primary = lone_replica(&net.genesis, 1);
    let message = Message::ViewChange(forged);
    let actions = primary.handle(net.now_ms, Event::Message { from: keys[3].public_key(), message });
    assert_eq!(rejections(&actions), vec![RejectKind::BadViewChange]);
}

/// Defect found in review: the cap on vote targets per height was shared by all voters, so one
/// faulty validator flooding PREPAREs for made-up blocks filled it, and honest PREPAREs that
/// arrived before the proposal were refused and never resent: the height could not prepare here.
/// Now each voter has its own share.
#[test]
fn a_validator_flooding_vote_targets_does_not_crowd_out_honest_votes() {
    let genesis = genesis(4);
    let keys = keys(4);
    let block = first_block(&genesis, &keys[0], 0, vec![tx(1)]);
    let mut replica = lone_replica(&genesis, 1);
    let vote = |kind, block_hash, key: &SigningKey| {
        let target = VoteTarget { height: 1, view: 0, block_hash };
        Event::Message { from: key.public_key(), message: Message::Vote(Vote::new(kind, target, CHAIN, key)) }
    };

    // Validator 3 floods PREPAREs for blocks nobody proposed, all validly signed.
    for i in 0..32u8 {
        replica.handle(START_MS, vote(VoteKind::Prepare, Hash::digest(&[i]), &keys[3]));
    }
    // The honest PREPAREs arrive before the proposal ...
    for key in [&keys[0], &keys[2]] {
        let actions = replica.handle(START_MS, vote(VoteKind::Prepare, block.hash(), key));
        assert_eq!(rejections(&actions), Vec::new(), "an honest vote is refused");
    }
    // ... so once the proposal comes, this replica is prepared at once and sends its COMMIT.
    let actions =
        replica.handle(START_MS, pre_prepare(&keys[0], PrePrepare::new(0, block.clone(), CHAIN, &keys[0])));
    let sends_commit = actions.iter().any(|action| {
        matches!(action, Action::Broadcast(Message::Vote(vote))
            if vote.kind == VoteKind::Commit && vote.target.block_hash == block.hash())
    });
    assert!(sends_commit, "not prepared: {actions:?}");
}

/// A sealed block at `height` on top of `parent` whose transactions are `tx(1)` to `tx(height)`
/// (one each), as `TestApp` executes them.
fn block_at(parent: &Block, proposer: &SigningKey, view: u64) -> Block {
    let height = parent.height() + 1;
    let mut nonces = Nonces::new();
    for nonce in 1..=height {
        assert!(apply(&mut nonces, &tx(nonce)));
    }
    let header = Header {
        height,
        view,
        previous_hash: parent.hash(),
        state_root: state_root(&nonces),
        proposer: proposer.public_key(),
        ..parent.header.clone()
    };
    let mut block = Block::new(header, vec![tx(height)]);
    block.header.seal();
    block
}

/// Defect found in review: one proposal was kept per height while it waited, whatever its view,
/// so the faulty primary of the next view could push out the current primary's proposal that
/// was waiting for its parent, and this replica never voted for it. Now each view keeps its own.
#[test]
fn a_next_view_proposal_does_not_push_out_a_waiting_one() {
    let genesis = genesis(4);
    let keys = keys(4);
    let first = first_block(&genesis, &keys[0], 0, vec![tx(1)]);
    let second = block_at(&first, &keys[0], 0);
    let intruder = block_at(&first, &keys[1], 1);
    let mut replica = lone_replica(&genesis, 2);

    // The second block overtakes the first: it waits for its parent.
    let actions =
        replica.handle(START_MS, pre_prepare(&keys[0], PrePrepare::new(0, second.clone(), CHAIN, &keys[0])));
    assert!(!prepares(&actions, second.hash()));
    // The primary of view 1 sends a proposal for the same height, for its own view.
    replica.handle(START_MS, pre_prepare(&keys[1], PrePrepare::new(1, intruder, CHAIN, &keys[1])));
    // The first block arrives: both it and the waiting second one are voted for.
    let actions =
        replica.handle(START_MS, pre_prepare(&keys[0], PrePrepare::new(0, first.clone(), CHAIN, &keys[0])));
    assert!(prepares(&actions, first.hash()));
    assert!(prepares(&actions, second.hash()), "the waiting proposal was lost: {actions:?}");
}

/// Defect found in review: every request for a view a replica had left was verified and answered
/// with the NEW-VIEW (a quorum of view changes, blocks included), so a validator replaying its
/// old request made the others verify it and send megabytes in a loop. Now a lagging peer is
/// helped once per half timeout, and replays in between are dropped unchecked.
#[test]
fn replayed_view_change_requests_are_answered_once_per_interval() {
    let mut net = view_change_run();
    let old_request = view_changes_of(&net, 2).pop().expect("validator 2 asked for view 1");
    let from = net.id(2);
    let new_views_sent = |actions: &[Action]| {
        actions
            .iter()
            .filter(|action| matches!(action, Action::Send { message: Message::NewView(_), .. }))
            .count()
    };
    let mut sent = 0;
    for _ in 0..10 {
        let message = Message::ViewChange(old_request.clone());
        sent += new_views_sent(&net.nodes[1].replica.handle(net.now_ms, Event::Message { from, message }));
    }
    assert_eq!(sent, 1, "the primary of view 1 helps once");
    // Half a timeout later, a peer that still lags is helped again.
    let later = net.now_ms + TIMEOUT_MS / 2;
    let message = Message::ViewChange(old_request);
    assert_eq!(new_views_sent(&net.nodes[1].replica.handle(later, Event::Message { from, message })), 1);
}

/// Soak defect (seed 6478 of b1f835d, 4 replicas): every STATE-RESPONSE a fetching replica got
/// made it send another STATE-REQUEST at once, whoever sent it and whatever it held: a duplicate,
/// a replay, a forged one, an answer with nothing new. The answer to that request did the same,
/// so each stray copy became a request/response loop that lasted as long as the fetch, and the
/// loops multiplied (about 10^5 messages per simulated second, gigabytes queued). Now only an
/// answer whose blocks moved the tip asks again at once; otherwise the fetch's timer moves it on.
#[test]
fn stray_state_responses_do_not_multiply_state_requests() {
    let mut net = Net::new(4);
    net.nodes[3].online = false;
    for nonce in 1..=2 {
        net.submit(tx(nonce));
        net.deliver_all();
    }
    assert_eq!((net.height(0), net.height(3)), (2, 0));
    let chain = net.nodes[0].blocks.clone();
    let mut forged = chain[0].clone();
    forged.certificate.votes = vec![forged.certificate.votes[0].clone(); forged.certificate.votes.len()];
    let validators = keys(4);
    let ids: Vec<PublicKey> = validators.iter().map(SigningKey::public_key).collect();
    let response = |blocks: Vec<CertifiedBlock>, tip| Message::StateResponse { blocks, tip };
    let requests = |actions: &[Action]| {
        actions
            .iter()
            .filter(|a| matches!(a, Action::Send { message: Message::StateRequest { .. }, .. }))
            .count()
    };

    // Replica 3 sees a quorum COMMIT height 2 (the others moved on): it fetches the blocks.
    let (now, replica) = (net.now_ms, &mut net.nodes[3].replica);
    let mut asked = 0;
    for key in &validators[..3] {
        let vote = Vote::new(VoteKind::Commit, chain[1].certificate.target, CHAIN, key);
        let actions =
            replica.handle(now, Event::Message { from: key.public_key(), message: Message::Vote(vote) });
        asked += requests(&actions);
    }
    assert_eq!(asked, 1, "the fetch asks one source");
    assert_eq!(replica.status().sync_target, Some(2));

    // Stray answers while that request is out: nothing new from each source (a duplicate, a
    // replay), forged blocks. None of them moves the tip, so none asks again.
    let mut strays = 0;
    for _ in 0..10 {
        for (from, message) in [
            (ids[0], response(Vec::new(), 0)),
            (ids[1], response(Vec::new(), 0)),
            (ids[2], response(vec![forged.clone()], 2)),
        ] {
            strays += requests(&replica.handle(now, Event::Message { from, message }));
        }
    }
    assert_eq!(strays, 0, "stray answers sent requests of their own");
    assert_eq!(replica.status().sync_target, Some(2));

    // The fetch's timer still moves it on, and a real answer ends it.
    let later = now + TIMEOUT_MS;
    assert_eq!(requests(&replica.handle(later, Event::Timer(Timer::StateTransfer))), 1);
    let actions = replica.handle(later, Event::Message { from: ids[1], message: response(chain, 2) });
    assert_eq!((replica.height(), requests(&actions)), (2, 0));
    assert_eq!(replica.status().sync_target, None);
}

/// Defect found by the Byzantine e2e suite: a view change carries its sender's highest commit
/// certificate, and a replica behind it fetched that block from the sender alone, while a primary
/// waits to catch up with every request it holds before it builds its NEW-VIEW. A faulty validator
/// that gathered the honest COMMITs for a prepared block, withheld its own and would not serve the
/// block stalled every view change, though the honest three were a quorum. Now the certificate's
/// COMMITs count as votes (the view change was verified): a replica holding the block commits it
/// at once; one that does not asks every validator, not only the sender.
#[test]
fn a_commit_certificate_in_a_view_change_completes_the_block_a_replica_holds() {
    let mut net = prepared_not_committed();
    let keys = keys(4);
    let target = net.nodes[0]
        .journal
        .iter()
        .find_map(|record| match record {
            Record::Prepared(prepared) => Some(prepared.target()),
            _ => None,
        })
        .expect("block 1 prepared");
    assert!((0..4).all(|node| net.height(node) == 0));

    // Validator 3 is faulty: it signs a certificate with the COMMITs of 0 and 2 and its own, sends
    // it in a view change, and never answers a request.
    let mut votes: Vec<kubechain_types::CommitVote> = [0, 2, 3]
        .iter()
        .map(|i| {
            let vote = Vote::new(VoteKind::Commit, target, CHAIN, &keys[*i]);
            kubechain_types::CommitVote { voter: vote.voter, signature: vote.signature }
        })
        .collect();
    votes.sort_by_key(|vote| vote.voter);
    let certificate = kubechain_types::CommitCertificate { target, votes };
    let lie = ViewChange::new(1, Some(certificate), Vec::new(), CHAIN, &keys[3]);
    for node in 0..3 {
        let message = Message::ViewChange(lie.clone());
        net.queue.push_back((node, Event::Message { from: keys[3].public_key(), message }));
    }
    net.deliver_all();

    // The honest three commit the block they hold, and go on without the faulty one.
    for node in 0..3 {
        assert_eq!(net.height(node), 1, "replica {node}");
        assert_eq!(net.nodes[node].blocks[0].block.hash(), target.block_hash, "replica {node}");
    }
    net.nodes[3].online = false;
    net.submit(tx(2));
    net.deliver_all();
    net.fire(Timer::Progress);
    assert!((0..3).all(|node| net.height(node) == 2));
}

/// Votes of `kind` on `target` by validators `signers`, in voter order as nodes write them.
fn quorum_votes(kind: VoteKind, target: VoteTarget, signers: &[usize]) -> Vec<kubechain_types::CommitVote> {
    let keys = keys(4);
    let mut votes: Vec<kubechain_types::CommitVote> = signers
        .iter()
        .map(|i| {
            let vote = Vote::new(kind, target, CHAIN, &keys[*i]);
            kubechain_types::CommitVote { voter: vote.voter, signature: vote.signature }
        })
        .collect();
    votes.sort_by_key(|vote| vote.voter);
    votes
}

/// Admits validator 9 (ordinary in `TestApp`: only the replica's schedule reads it).
fn adding_validator_9() -> Transaction {
    let public_key = SigningKey::from_seed([9; 32]).public_key();
    tx_with(1, Operation::Admin(AdminOperation::AddValidator { public_key }))
}

/// A primary's header must name the rules its block leaves scheduled: one that names a made-up
/// value, or the rules before its own admin operation, is refused and never voted for.
#[test]
fn a_proposal_whose_rules_hash_lies_is_refused() {
    let genesis = genesis(4);
    let keys = keys(4);
    let primary = &keys[0];
    let genesis_rules = Rules::from_genesis(&genesis).hash();
    let lies = [
        (
            "a made-up value",
            first_block_with_rules(&genesis, primary, 0, vec![tx(1)], Hash::digest(b"made up")),
        ),
        (
            "its own admin operation left out",
            first_block_with_rules(&genesis, primary, 0, vec![adding_validator_9()], genesis_rules),
        ),
    ];
    for (case, block) in lies {
        let mut replica = lone_replica(&genesis, 1);
        let actions =
            replica.handle(START_MS, pre_prepare(primary, PrePrepare::new(0, block.clone(), CHAIN, primary)));
        assert_eq!(rejections(&actions), vec![RejectKind::BadBlock], "{case}");
        let detail = actions.iter().find_map(|action| match action {
            Action::Rejected { rejection, .. } => Some(rejection.detail.clone()),
            _ => None,
        });
        assert!(detail.is_some_and(|detail| detail.contains("commits to rules")), "{case}");
        assert!(!prepares(&actions, block.hash()), "{case}");
    }

    // The same admin operation with the rules it gives is taken, and the replica builds on them.
    let honest = first_block(&genesis, primary, 0, vec![adding_validator_9()]);
    assert_ne!(honest.header.rules_hash, genesis_rules);
    let mut replica = lone_replica(&genesis, 1);
    let actions =
        replica.handle(START_MS, pre_prepare(primary, PrePrepare::new(0, honest.clone(), CHAIN, primary)));
    assert_eq!(rejections(&actions), vec![]);
    assert!(prepares(&actions, honest.hash()));
    let second = Block::new(
        Header {
            height: 2,
            previous_hash: honest.hash(),
            state_root: state_root(&Nonces::from([(client().public_key(), 2)])),
            ..honest.header.clone()
        },
        vec![tx(2)],
    );
    let mut second = second;
    second.header.seal();
    let actions =
        replica.handle(START_MS, pre_prepare(primary, PrePrepare::new(0, second.clone(), CHAIN, primary)));
    assert_eq!(rejections(&actions), vec![], "block 2 carries block 1's rules on, uncommitted as block 1 is");
    assert!(prepares(&actions, second.hash()));
}

/// Block 1 adding a validator, whose header still names the genesis rules (a lie), and its vote
/// target.
fn block_1_naming_the_genesis_rules(genesis: &Genesis, proposer: &SigningKey) -> (Block, VoteTarget) {
    let rules = Rules::from_genesis(genesis).hash();
    let lying = first_block_with_rules(genesis, proposer, 0, vec![adding_validator_9()], rules);
    let target = VoteTarget { height: 1, view: 0, block_hash: lying.hash() };
    (lying, target)
}

/// A NEW-VIEW whose view changes carry a prepared block naming other rules: the re-proposal is
/// refused, not voted for. (Only more than f faulty validators could prepare such a block.)
#[test]
fn a_re_proposal_whose_rules_hash_lies_is_refused() {
    let genesis = genesis(4);
    let keys = keys(4);
    let (lying, target) = block_1_naming_the_genesis_rules(&genesis, &keys[0]);
    let prepared = kubechain_consensus::PreparedCertificate {
        view: 0,
        block: lying.clone(),
        prepares: quorum_votes(VoteKind::Prepare, target, &[0, 2, 3]),
    };
    let view_changes: Vec<ViewChange> = [0, 2, 3]
        .iter()
        .map(|i| ViewChange::new(1, None, vec![prepared.clone()], CHAIN, &keys[*i]))
        .collect();
    let new_view = NewView::new(1, view_changes, CHAIN, &keys[1]);

    let mut replica = lone_replica(&genesis, 2);
    let actions = replica
        .handle(START_MS, Event::Message { from: keys[1].public_key(), message: Message::NewView(new_view) });
    assert_eq!(replica.view(), 1, "the view itself is installed");
    assert_eq!(rejections(&actions), vec![RejectKind::BadNewView]);
    assert!(!prepares(&actions, lying.hash()));
    assert!(!actions.iter().any(|action| matches!(action, Action::Persist(Record::PrePrepared { .. }))));
}

/// A block from state transfer certified by a quorum whose header names other rules than its
/// transactions give: the certifying quorum lied. It is refused as a fork, and the replica goes on.
#[test]
fn a_transferred_block_whose_rules_hash_lies_is_refused() {
    let genesis = genesis(4);
    let keys = keys(4);
    let (lying, target) = block_1_naming_the_genesis_rules(&genesis, &keys[0]);
    let certificate = kubechain_types::CommitCertificate {
        target,
        votes: quorum_votes(VoteKind::Commit, target, &[0, 1, 2]),
    };
    let mut replica = lone_replica(&genesis, 3);
    let response =
        Message::StateResponse { blocks: vec![CertifiedBlock { block: lying, certificate }], tip: 1 };
    let actions = replica.handle(START_MS, Event::Message { from: keys[0].public_key(), message: response });
    assert_eq!(rejections(&actions), vec![RejectKind::Fork]);
    assert!(commits(&actions).is_empty());
    assert_eq!(replica.height(), 0);

    // The genuine block is taken afterwards.
    let honest = first_block(&genesis, &keys[0], 0, vec![adding_validator_9()]);
    let target = VoteTarget { height: 1, view: 0, block_hash: honest.hash() };
    let certificate = kubechain_types::CommitCertificate {
        target,
        votes: quorum_votes(VoteKind::Commit, target, &[0, 1, 2]),
    };
    let response =
        Message::StateResponse { blocks: vec![CertifiedBlock { block: honest, certificate }], tip: 1 };
    let actions = replica.handle(START_MS, Event::Message { from: keys[0].public_key(), message: response });
    assert_eq!(rejections(&actions), vec![]);
    assert_eq!(commits(&actions).len(), 1);
    assert!(
        actions.iter().any(|action| matches!(action, Action::Commit { schedule: Some(_), .. })),
        "the block changed the schedule"
    );
}

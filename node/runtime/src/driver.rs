//! The consensus actor: owns the replica (with the ledger inside), carries out its actions against
//! RocksDB and the peer links, and answers the API's commands. It runs on its own thread so that
//! synced writes and signature checks never stall the API or the network tasks.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kubechain_api::{Role, ScheduledRules};
use kubechain_consensus::{Action, CertifiedBlock, Event, Message, Origin, Record, Replica, Timer};
use kubechain_ledger::{AdmitError, Ledger, StateView, TxStatus};
use kubechain_network::{Frame, Inbound, Network};
use kubechain_storage::{BlockWrite, StorageError, Store};
use kubechain_types::{ConsensusParams, Hash, PublicKey, Transaction};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Blocks sent to a catching-up peer in one response, at most (and at most this many bytes).
const SERVE_MAX_BLOCKS: usize = 64;
const SERVE_MAX_BYTES: usize = 16 * 1024 * 1024;
/// How often waiting transactions are checked for expiry.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(1);
/// One state-transfer response per peer per this interval: a peer cannot make us read the chain
/// from disk in a loop.
const SERVE_INTERVAL_MS: u64 = 50;

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_millis() as u64).unwrap_or(0)
}

/// The committed application state in RocksDB, as the ledger reads it.
#[derive(Debug)]
pub(crate) struct DurableState(pub Arc<Store>);

impl StateView for DurableState {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        // A failing read of our own database cannot be answered safely; the node stops and
        // restarts from its last synced write.
        self.0.state(key).unwrap_or_else(|error| panic!("reading state from RocksDB failed: {error}"))
    }
}

/// Where the verdicts on a submission go, one per transaction.
pub(crate) type VerdictsReply = oneshot::Sender<Vec<Result<Hash, AdmitError>>>;

/// Requests from the API.
#[derive(Debug)]
pub(crate) enum Command {
    Submit {
        transactions: Vec<Transaction>,
        reply: VerdictsReply,
    },
    /// What the mempool knows of a transaction (the API looks for committed ones in storage).
    TransactionStatus {
        hash: Hash,
        reply: oneshot::Sender<TxStatus>,
    },
}

/// What the API shows about consensus; published after every event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConsensusStatus {
    pub height: u64,
    pub last_block_hash: Hash,
    pub view: u64,
    pub primary: PublicKey,
    pub in_view_change: bool,
    /// See [`kubechain_consensus::ReplicaStatus::sync_target`].
    pub sync_target: Option<u64>,
    /// See [`kubechain_consensus::ReplicaStatus::caught_up`].
    pub caught_up: bool,
    pub stable_checkpoint: u64,
    pub validators: Vec<PublicKey>,
    pub consensus_params: ConsensusParams,
    pub rules_since: u64,
    pub scheduled: Option<ScheduledRules>,
    pub role: Role,
    pub mempool_size: usize,
}

/// A block as announced on the stream of new blocks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CommittedBlock {
    pub height: u64,
    pub hash: Hash,
    pub view: u64,
    pub proposer: PublicKey,
    pub timestamp_ms: u64,
    pub transactions: usize,
    /// Hashes of the block's transactions, in order (sent only to streams that ask for them).
    #[serde(skip)]
    pub transaction_hashes: Arc<Vec<Hash>>,
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("committed block {height} has no executed state here")]
    MissingState { height: u64 },
}

pub(crate) struct Driver {
    pub replica: Replica<Ledger<DurableState>>,
    pub store: Arc<Store>,
    pub network: Network,
    pub inbound: mpsc::UnboundedReceiver<Inbound>,
    pub commands: mpsc::Receiver<Command>,
    pub metrics: Arc<Metrics>,
    pub status: watch::Sender<ConsensusStatus>,
    pub blocks: broadcast::Sender<CommittedBlock>,
    pub shutdown: CancellationToken,
    pub timers: BTreeMap<Timer, u64>,
    pub served_at: HashMap<PublicKey, u64>,
    /// A request that came sooner than [`SERVE_INTERVAL_MS`] after the last answer to its peer,
    /// as (when it is due, from which height): answered when the interval is up (the latest
    /// request per peer), not dropped, so a peer catching up asks again at once without losing a
    /// round to its fetch timer.
    pub deferred_serves: HashMap<PublicKey, (u64, u64)>,
    /// When clients handed this node each transaction still pending, for the latency metric.
    pub submitted_at: HashMap<Hash, Instant>,
    /// This node has been in the validator set (at genesis, or added since): outside it now, it
    /// was removed rather than not yet added.
    pub was_validator: bool,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").field("replica", &self.replica.id()).finish_non_exhaustive()
    }
}

impl Driver {
    pub fn status_of(replica: &Replica<Ledger<DurableState>>, was_validator: bool) -> ConsensusStatus {
        let status = replica.status();
        let role = match (status.voting, was_validator) {
            (true, _) => Role::Validator,
            (false, true) => Role::Removed,
            (false, false) => Role::Learner,
        };
        ConsensusStatus {
            height: status.height,
            last_block_hash: status.last_block_hash,
            view: status.view,
            primary: status.primary,
            in_view_change: status.in_view_change,
            sync_target: status.sync_target,
            caught_up: status.caught_up,
            stable_checkpoint: status.stable_checkpoint,
            validators: status.validators,
            consensus_params: status.consensus_params,
            rules_since: status.rules_since,
            scheduled: status.scheduled.map(|(activation_height, rules)| ScheduledRules {
                activation_height,
                validators: rules.validators.keys().to_vec(),
                consensus_params: rules.params,
            }),
            role,
            mempool_size: replica.app().mempool().len(),
        }
    }

    pub async fn run(mut self) -> Result<(), DriverError> {
        self.step(Event::Started)?;
        let mut next_expiry_ms = now_ms() + EXPIRY_INTERVAL.as_millis() as u64;
        loop {
            // Deadlines before anything queued: however many frames wait (a peer may flood
            // validly signed junk), a silent primary is replaced on time and stale transactions
            // leave the mempool.
            self.fire_due_timers()?;
            self.serve_deferred()?;
            if now_ms() >= next_expiry_ms {
                next_expiry_ms = now_ms() + EXPIRY_INTERVAL.as_millis() as u64;
                self.expire()?;
            }
            let next_serve = self.deferred_serves.values().map(|(due_ms, _)| *due_ms);
            let next_deadline =
                self.timers.values().copied().chain(next_serve).min().unwrap_or(u64::MAX).min(next_expiry_ms);
            let sleep = tokio::time::sleep(Duration::from_millis(next_deadline.saturating_sub(now_ms())));
            tokio::select! {
                // Consensus traffic before clients: under client load the chain must keep committing.
                biased;
                () = self.shutdown.cancelled() => return Ok(()),
                Some(inbound) = self.inbound.recv() => self.on_frame(inbound)?,
                Some(command) = self.commands.recv() => self.on_command(command)?,
                () = sleep => {}
            }
        }
    }

    /// Answers the deferred state requests whose interval is up.
    fn serve_deferred(&mut self) -> Result<(), DriverError> {
        let now = now_ms();
        let due: Vec<(PublicKey, u64)> = self
            .deferred_serves
            .iter()
            .filter(|(_, (due_ms, _))| *due_ms <= now)
            .map(|(peer, (_, from_height))| (*peer, *from_height))
            .collect();
        for (peer, from_height) in due {
            self.serve_blocks(peer, from_height)?;
        }
        Ok(())
    }

    fn fire_due_timers(&mut self) -> Result<(), DriverError> {
        let now = now_ms();
        let due: Vec<Timer> =
            self.timers.iter().filter(|(_, at_ms)| **at_ms <= now).map(|(timer, _)| *timer).collect();
        for timer in due {
            self.timers.remove(&timer);
            self.step(Event::Timer(timer))?;
        }
        Ok(())
    }

    fn on_frame(&mut self, inbound: Inbound) -> Result<(), DriverError> {
        match inbound.frame {
            Frame::Consensus(message) => {
                self.metrics.messages.with_label_values(&["in", message.kind()]).inc();
                self.step(Event::Message { from: inbound.from, message })
            }
            Frame::Transactions(transactions) => {
                // A peer's clients' transactions: admitted like our own, but not passed on again.
                let verdicts = self.replica.admit(now_ms(), transactions, Origin::Peer);
                self.count_rejections(&verdicts);
                if verdicts.iter().any(Result::is_ok) {
                    self.step(Event::TransactionsArrived)?;
                }
                Ok(())
            }
        }
    }

    fn on_command(&mut self, command: Command) -> Result<(), DriverError> {
        match command {
            Command::Submit { transactions, reply } => {
                // Take every submission already waiting, so signatures are verified in one batch.
                let mut batches = vec![(transactions, reply)];
                let mut other = Vec::new();
                while let Ok(next) = self.commands.try_recv() {
                    match next {
                        Command::Submit { transactions, reply } => batches.push((transactions, reply)),
                        query => other.push(query),
                    }
                }
                self.submit(batches)?;
                for query in other {
                    self.on_command(query)?;
                }
                Ok(())
            }
            Command::TransactionStatus { hash, reply } => {
                let _ = reply.send(self.replica.app().mempool().status(&hash));
                Ok(())
            }
        }
    }

    fn submit(&mut self, batches: Vec<(Vec<Transaction>, VerdictsReply)>) -> Result<(), DriverError> {
        let mut all = Vec::new();
        let mut sizes = Vec::with_capacity(batches.len());
        let mut replies = Vec::with_capacity(batches.len());
        for (transactions, reply) in batches {
            sizes.push(transactions.len());
            all.extend(transactions);
            replies.push(reply);
        }
        // Admission consumes the transactions; the accepted ones are also passed on to the peers.
        let submitted = all.clone();
        let verdicts = self.replica.admit(now_ms(), all, Origin::Client);
        self.metrics.mempool_size.set(self.replica.app().mempool().len() as i64);
        self.count_rejections(&verdicts);
        let now = Instant::now();
        let to_gossip: Vec<Transaction> = submitted
            .into_iter()
            .zip(&verdicts)
            .filter_map(|(tx, verdict)| {
                self.submitted_at.insert(*verdict.as_ref().ok()?, now);
                Some(tx)
            })
            .collect();
        let mut verdicts = verdicts.into_iter();
        for (size, reply) in sizes.into_iter().zip(replies) {
            let _ = reply.send(verdicts.by_ref().take(size).collect());
        }
        if !to_gossip.is_empty() {
            self.network.broadcast(&Frame::Transactions(to_gossip));
            self.step(Event::TransactionsArrived)?;
        }
        Ok(())
    }

    fn expire(&mut self) -> Result<(), DriverError> {
        if self.replica.expire(now_ms()) == 0 {
            return Ok(());
        }
        // The count of ready transactions may have fallen to zero: let the replica re-arm its
        // timers (the step also records what was dropped).
        self.step(Event::TransactionsArrived)
    }

    /// Counts transactions that left the mempool uncommitted (the mempool remembers why).
    fn record_dropped(&mut self) {
        for (hash, reason) in self.replica.take_dropped() {
            self.metrics.rejected_transactions.with_label_values(&[reason.code()]).inc();
            self.submitted_at.remove(&hash);
        }
    }

    fn count_rejections(&self, verdicts: &[Result<Hash, AdmitError>]) {
        for error in verdicts.iter().filter_map(|verdict| verdict.as_ref().err()) {
            self.metrics.rejected_transactions.with_label_values(&[error.code()]).inc();
        }
    }

    /// Feeds `event` and carries out the resulting actions, in order; events the actions cause
    /// (a block made durable) are fed after the actions of the call that caused them.
    fn step(&mut self, event: Event) -> Result<(), DriverError> {
        let mut events = VecDeque::from([event]);
        while let Some(event) = events.pop_front() {
            let started = Instant::now();
            let actions = self.replica.handle(now_ms(), event);
            let proposals = actions
                .iter()
                .filter(|action| matches!(action, Action::Broadcast(Message::PrePrepare(_))))
                .count();
            if proposals > 0 {
                let per_proposal = started.elapsed().as_secs_f64() / proposals as f64;
                for _ in 0..proposals {
                    self.metrics.pow_seal_seconds.observe(per_proposal);
                }
            }
            self.carry_out(actions, &mut events)?;
        }
        self.record_dropped();
        self.publish_status();
        Ok(())
    }

    fn carry_out(&mut self, actions: Vec<Action>, events: &mut VecDeque<Event>) -> Result<(), DriverError> {
        // Consecutive promises go to disk in one synced write, still before anything that follows.
        let mut unsynced: Vec<Record> = Vec::new();
        for action in actions {
            if let Action::Persist(record) = action {
                unsynced.push(record);
                continue;
            }
            self.sync(&mut unsynced)?;
            match action {
                Action::Persist(_) => unreachable!("handled above"),
                Action::Send { to, message } => {
                    self.metrics.messages.with_label_values(&["out", message.kind()]).inc();
                    self.network.send(&to, &Frame::Consensus(message));
                }
                Action::Broadcast(message) => {
                    self.metrics.messages.with_label_values(&["out", message.kind()]).inc();
                    self.network.broadcast(&Frame::Consensus(message));
                }
                Action::SetTimer { timer, at_ms } => {
                    self.timers.insert(timer, at_ms);
                }
                Action::Commit { block, certificate, schedule } => {
                    let height = block.height();
                    let state_root = block.header.state_root;
                    let changes = self
                        .replica
                        .app()
                        .changes_of(&state_root)
                        .ok_or(DriverError::MissingState { height })?;
                    let write_started = Instant::now();
                    self.store.commit_block(BlockWrite {
                        block: &block,
                        certificate: &certificate,
                        schedule: schedule.as_ref(),
                        state_changes: changes,
                    })?;
                    self.metrics.storage_write_seconds.observe(write_started.elapsed().as_secs_f64());
                    self.replica.persisted(&state_root);
                    self.on_committed(&block);
                    events.push_back(Event::BlockPersisted { height });
                }
                Action::ServeBlocks { to, from_height } => self.serve_blocks(to, from_height)?,
                Action::PruneJournal { through_height } => self.store.prune_journal(through_height)?,
                Action::Rejected { from, rejection } => {
                    self.metrics.rejected_messages.with_label_values(&[rejection.kind.label()]).inc();
                    tracing::debug!(peer = %from, %rejection, "rejected a consensus message");
                }
            }
        }
        self.sync(&mut unsynced)
    }

    fn sync(&mut self, unsynced: &mut Vec<Record>) -> Result<(), DriverError> {
        if unsynced.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        self.store.persist_all(unsynced)?;
        self.metrics.storage_write_seconds.observe(started.elapsed().as_secs_f64());
        unsynced.clear();
        Ok(())
    }

    fn on_committed(&mut self, block: &kubechain_types::Block) {
        let now = Instant::now();
        let transactions = block.transactions.len();
        self.metrics.height.set(block.height() as i64);
        self.metrics.committed_transactions.inc_by(transactions as u64);
        let age_ms = now_ms().saturating_sub(block.header.timestamp_ms);
        self.metrics.block_commit_latency.observe(age_ms as f64 / 1000.0);
        let hashes: Vec<Hash> = block.transactions.iter().map(Transaction::hash).collect();
        for hash in &hashes {
            if let Some(submitted) = self.submitted_at.remove(hash) {
                self.metrics.transaction_commit_latency.observe((now - submitted).as_secs_f64());
            }
        }
        // Transactions that never commit (replaced or expired) must not accumulate here forever.
        if self.submitted_at.len() > 4 * self.replica.app().mempool().len() + 10_000 {
            self.submitted_at
                .retain(|_, submitted| now.duration_since(*submitted) < Duration::from_secs(600));
        }
        tracing::debug!(height = block.height(), hash = %block.hash(), transactions, "committed");
        let _ = self.blocks.send(CommittedBlock {
            height: block.height(),
            hash: block.hash(),
            view: block.header.view,
            proposer: block.header.proposer,
            timestamp_ms: block.header.timestamp_ms,
            transactions,
            transaction_hashes: Arc::new(hashes),
        });
    }

    fn serve_blocks(&mut self, to: PublicKey, from_height: u64) -> Result<(), DriverError> {
        let now = now_ms();
        if let Some(at) = self.served_at.get(&to).filter(|at| now < *at + SERVE_INTERVAL_MS) {
            self.deferred_serves.insert(to, (at + SERVE_INTERVAL_MS, from_height));
            return Ok(());
        }
        self.deferred_serves.remove(&to);
        self.served_at.insert(to, now);
        let mut blocks: Vec<CertifiedBlock> = Vec::new();
        let mut bytes = 0;
        for certified in self.store.blocks_from(from_height, SERVE_MAX_BLOCKS)? {
            bytes += kubechain_types::encoding::encode(&certified).len();
            if !blocks.is_empty() && bytes > SERVE_MAX_BYTES {
                break;
            }
            blocks.push(certified);
        }
        // Answered even when empty: "nothing above that" tells a restarted peer it has caught up.
        let tip = self.replica.height();
        self.metrics.messages.with_label_values(&["out", "state_response"]).inc();
        self.network.send(&to, &Frame::Consensus(Message::StateResponse { blocks, tip }));
        Ok(())
    }

    fn publish_status(&mut self) {
        let status = Self::status_of(&self.replica, self.was_validator);
        if status.role == Role::Validator {
            self.was_validator = true;
        }
        if status.role != self.status.borrow().role {
            log_role(&status);
        }
        self.metrics.voting.set(i64::from(status.role == Role::Validator));
        self.metrics.validators.set(status.validators.len() as i64);
        if status.view > self.status.borrow().view {
            self.metrics.view_changes.inc_by(status.view - self.status.borrow().view);
        }
        if status.caught_up && !self.status.borrow().caught_up {
            tracing::info!(height = status.height, "{}", crate::logs::CAUGHT_UP);
        }
        self.metrics.view.set(status.view as i64);
        self.metrics.mempool_size.set(status.mempool_size as i64);
        // The peers this node links to follow the set that governs the next height: a validator
        // removed on chain is no longer linked as a validator once its removal takes effect (it
        // stays linked as a learner while it is a configured peer), one added is accepted then.
        if status.validators != self.status.borrow().validators {
            tracing::info!(
                height = status.height,
                validators = status.validators.len(),
                "validator set changed"
            );
            self.network.set_validators(&status.validators);
        }
        self.status.send_if_modified(|current| {
            if *current == status {
                return false;
            }
            *current = status;
            true
        });
    }
}

/// Says in the log what part the node plays now (at start, and when it changes).
pub(crate) fn log_role(status: &ConsensusStatus) {
    let height = status.height;
    match status.role {
        Role::Validator => tracing::info!(height, "{}", crate::logs::VOTING),
        Role::Removed => tracing::warn!(height, "{}", crate::logs::REMOVED),
        Role::Learner => tracing::info!(height, "{}", crate::logs::LEARNING),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use kubechain_ledger::TxError;
    use kubechain_network::NetworkConfig;
    use kubechain_types::{ConsensusParams, Genesis, Member, Operation, SigningKey, TxBody};

    use super::*;

    const CHAIN: &str = "driver-test";

    fn tx(key: &SigningKey, nonce: u64) -> Transaction {
        let operations = vec![Operation::Put { key: "k".into(), value: b"v".to_vec() }];
        Transaction::new(TxBody { chain_id: CHAIN.into(), sender: key.public_key(), nonce, operations }, key)
    }

    fn validators() -> Vec<SigningKey> {
        (1..=4).map(|seed| SigningKey::from_seed([seed; 32])).collect()
    }

    /// Validator `index` of four with no peer connected: nothing commits, so what it admits stays
    /// pending. Returns the driver with its command and inbound-frame senders.
    async fn lone_driver(
        dir: &Path,
        member: &SigningKey,
        index: usize,
        params: ConsensusParams,
    ) -> (Driver, mpsc::Sender<Command>, mpsc::UnboundedSender<Inbound>) {
        let validators = validators();
        let genesis = Genesis {
            chain_id: CHAIN.into(),
            genesis_time_ms: 0,
            validators: validators.iter().map(SigningKey::public_key).collect(),
            admins: Vec::new(),
            members: vec![Member { name: "acme".into(), public_keys: vec![member.public_key()] }],
            params,
        };
        let store = Arc::new(Store::open(&dir.join("db")).unwrap());
        store.init_genesis(&genesis, &kubechain_ledger::state::genesis_changes(&genesis)).unwrap();
        let recovered = store.recover().unwrap();
        let ledger = Ledger::new(
            CHAIN,
            DurableState(store.clone()),
            kubechain_ledger::genesis_root(&genesis),
            100,
            60_000,
        );
        let key = validators[index].clone();
        let replica = Replica::new(&genesis, key.clone(), ledger, recovered);
        // A flood may be queued before the driver starts.
        let (inbound_tx, inbound) = mpsc::unbounded_channel();
        let network_config = NetworkConfig {
            chain_id: CHAIN.into(),
            key,
            listen: "127.0.0.1:0".parse().unwrap(),
            validators: Vec::new(),
            peers: Vec::new(),
            max_frame_bytes: NetworkConfig::DEFAULT_MAX_FRAME_BYTES,
            queue_frames: 16,
            queue_bytes: NetworkConfig::DEFAULT_QUEUE_BYTES,
            inbound_frames: NetworkConfig::DEFAULT_INBOUND_FRAMES,
            inbound_bytes: NetworkConfig::DEFAULT_INBOUND_BYTES,
        };
        let network = Network::start(network_config, inbound_tx.clone()).await.unwrap();
        let metrics = Arc::new(Metrics::new(network.stats().clone(), dir.to_path_buf(), 16).unwrap());
        let (commands_tx, commands) = mpsc::channel(16);
        let (status, _) = watch::channel(Driver::status_of(&replica, true));
        let driver = Driver {
            replica,
            store,
            network,
            inbound,
            commands,
            metrics,
            status,
            blocks: broadcast::channel(16).0,
            shutdown: CancellationToken::new(),
            timers: BTreeMap::new(),
            served_at: HashMap::new(),
            deferred_serves: HashMap::new(),
            submitted_at: HashMap::new(),
            was_validator: true,
        };
        (driver, commands_tx, inbound_tx)
    }

    async fn status_of(commands: &mpsc::Sender<Command>, hash: Hash) -> TxStatus {
        let (reply, answer) = oneshot::channel();
        commands.send(Command::TransactionStatus { hash, reply }).await.unwrap();
        answer.await.unwrap()
    }

    #[tokio::test]
    async fn the_driver_answers_pending_refused_or_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let member = SigningKey::from_seed([7; 32]);
        let stranger = SigningKey::from_seed([8; 32]);
        let (driver, commands, inbound) =
            lone_driver(dir.path(), &member, 0, ConsensusParams::default()).await;
        let shutdown = driver.shutdown.clone();
        let metrics = driver.metrics.clone();
        let client = async move {
            let accepted = tx(&member, 1);
            let replayed = tx(&member, 0);
            let refused_here = tx(&stranger, 1);
            let (reply, verdicts) = oneshot::channel();
            let transactions = vec![accepted.clone(), replayed.clone(), refused_here.clone()];
            commands.send(Command::Submit { transactions, reply }).await.unwrap();
            let codes: Vec<&str> = verdicts
                .await
                .unwrap()
                .iter()
                .map(|v| v.as_ref().map_or_else(AdmitError::code, |_| "ok"))
                .collect();
            assert_eq!(codes, ["ok", "bad_nonce", "unknown_sender"]);
            // The same refusal for a transaction a peer passed on is that peer's clients' business.
            let passed_on = tx(&stranger, 2);
            let frame = Frame::Transactions(vec![passed_on.clone()]);
            inbound.send(Inbound::new(SigningKey::from_seed([2; 32]).public_key(), frame)).unwrap();

            // Peer frames go first, so the frame was handled by the time this is answered.
            assert_eq!(status_of(&commands, accepted.hash()).await, TxStatus::Pending);
            assert_eq!(metrics.rejected_transactions.with_label_values(&["unknown_sender"]).get(), 2);
            assert_eq!(
                status_of(&commands, replayed.hash()).await,
                TxStatus::Refused(AdmitError::Invalid(TxError::Nonce { expected: 1, found: 0 }))
            );
            assert_eq!(
                status_of(&commands, refused_here.hash()).await,
                TxStatus::Refused(AdmitError::Invalid(TxError::UnknownSender(stranger.public_key())))
            );
            assert_eq!(status_of(&commands, passed_on.hash()).await, TxStatus::Unknown);
            assert_eq!(status_of(&commands, Hash::digest(b"never sent")).await, TxStatus::Unknown);
            shutdown.cancel();
        };
        let (run, ()) = tokio::join!(driver.run(), client);
        run.unwrap();
    }

    /// Defect found in review: the driver served queued frames before due timers, so a peer
    /// flooding validly signed votes kept a silent primary from ever being replaced.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn timers_fire_on_time_under_a_flood_of_frames() {
        const FLOOD: usize = 50_000;
        let dir = tempfile::tempdir().unwrap();
        let member = SigningKey::from_seed([7; 32]);
        let timeout_ms = 300;
        let params = ConsensusParams { view_change_timeout_ms: timeout_ms, ..ConsensusParams::default() };
        // Validator 1; the primary of view 0 (validator 0) never speaks.
        let (driver, _commands, inbound) = lone_driver(dir.path(), &member, 1, params).await;
        let shutdown = driver.shutdown.clone();
        let mut status = driver.status.subscribe();
        let peers = validators();
        let frame_from = |peer: &SigningKey, frame| Inbound::new(peer.public_key(), frame);
        // What is queued before the driver runs: a transaction a peer passes on (so progress is
        // expected), two peers saying they have nothing newer (so this replica knows it holds the
        // tip and blames the primary that keeps it waiting) ...
        let waiting = Frame::Transactions(vec![tx(&member, 1)]);
        inbound.send(frame_from(&peers[2], waiting)).unwrap();
        for peer in &peers[2..] {
            let nothing_newer = Frame::Consensus(Message::StateResponse { blocks: Vec::new(), tip: 0 });
            inbound.send(frame_from(peer, nothing_newer)).unwrap();
        }
        // ... and validator 2's flood of votes for made-up blocks: every one verifies, none helps,
        // and checking them all takes much longer than the view-change timeout.
        let votes: Vec<Frame> = (0..256u64)
            .map(|i| {
                let block_hash = Hash::digest(&i.to_le_bytes());
                let target = kubechain_types::VoteTarget { height: 1 + i % 8, view: 0, block_hash };
                let vote = kubechain_consensus::Vote::new(
                    kubechain_consensus::VoteKind::Prepare,
                    target,
                    CHAIN,
                    &peers[2],
                );
                Frame::Consensus(Message::Vote(vote))
            })
            .collect();
        for frame in votes.iter().cycle().take(FLOOD) {
            inbound.send(frame_from(&peers[2], frame.clone())).unwrap();
        }
        let metrics = driver.metrics.clone();
        let watcher = async move {
            status.wait_for(|s| s.view >= 1).await.unwrap();
            // Flood frames still queued when the view changed.
            let served = metrics.messages.with_label_values(&["in", "prepare"]).get() as usize;
            shutdown.cancel();
            drop(inbound);
            FLOOD.saturating_sub(served)
        };
        let (run, left) = tokio::join!(driver.run(), watcher);
        run.unwrap();
        assert!(left > 0, "the view changed only once the whole flood of {FLOOD} frames was served");
        println!("view change with {left} of {FLOOD} flood frames still queued (timeout {timeout_ms} ms)");
    }
}

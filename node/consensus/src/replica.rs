//! The PBFT replica state machine.
//!
//! Per height: the primary of the view proposes (PRE-PREPARE) a sealed block; every replica that
//! accepts it sends PREPARE; a quorum of PREPAREs makes the block *prepared* (persisted as a
//! prepared certificate) and the replica sends COMMIT; a quorum of COMMITs makes it final, and
//! blocks are committed in height order. Several heights are in flight at once (up to the
//! watermark window above the committed tip). One rule ties them together: a replica becomes
//! prepared at height h+1 in a view only once it is prepared at h in that view (or committed h).
//! That keeps the heights a view change must recover free of gaps (see `view_change::select`).

use std::collections::{BTreeMap, BTreeSet};

use kubechain_types::block::BlockError;
use kubechain_types::{
    Block, CommitCertificate, CommitVote, Genesis, Hash, Header, PublicKey, Signature, SigningKey, VoteTarget,
};

use crate::app::Application;
use crate::messages::{
    CertifiedBlock, Checkpoint, Message, NewView, PrePrepare, PreparedCertificate, ViewChange, Vote, VoteKind,
};
use crate::rejection::{RejectKind, Rejection};
use crate::schedule::{Rules, Schedule};
use crate::view_change;
use crate::{Action, Event, Record, Timer};

/// How far a proposal's timestamp may run ahead of this replica's clock.
const MAX_CLOCK_SKEW_MS: u64 = 10_000;
/// An idle replica asks a peer for newer blocks once per this many view-change timeouts.
const PROBE_EVERY_TIMEOUTS: u64 = 4;
/// Distinct vote targets kept per height, per validator (memory a faulty peer can claim).
const MAX_TARGETS_PER_VALIDATOR: usize = 2;
/// Blocks a primary seals within one event, so proof-of-work cannot starve everything else.
const MAX_PROPOSALS_PER_EVENT: u64 = 4;
/// How far ahead of this replica a view or height may be before a message is refused outright.
const MAX_AHEAD: u64 = 1 << 32;

/// Cap on the exponential back-off of view-change timeouts (2^6 times the base).
const MAX_BACKOFF_SHIFT: u32 = 6;

/// What a restarted replica reads back from its storage.
#[derive(Clone, Debug, Default)]
pub struct Recovered {
    /// The last committed block's header and certificate; `None` at genesis.
    pub last_committed: Option<(Header, CommitCertificate)>,
    /// The schedule stored with the last block that changed it; `None`: genesis rules.
    pub schedule: Option<Schedule>,
    /// Records persisted since (older ones are harmless and ignored).
    pub journal: Vec<Record>,
}

/// A snapshot for status pages and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaStatus {
    pub height: u64,
    pub last_block_hash: Hash,
    pub view: u64,
    pub primary: PublicKey,
    pub in_view_change: bool,
    pub stable_checkpoint: u64,
    pub syncing: bool,
    /// Since it started, this replica has seen that it holds the chain's tip: a quorum (itself
    /// included) answered its requests for blocks with nothing newer than what it then held.
    /// (Committing with votes proves nothing: a restarted replica can still finish the last
    /// height it voted on before it went down, far behind the others.)
    pub caught_up: bool,
    pub validators: Vec<PublicKey>,
}

/// The committed tip.
#[derive(Clone, Debug)]
struct Tip {
    height: u64,
    hash: Hash,
    state_root: Hash,
    timestamp_ms: u64,
    certificate: Option<CommitCertificate>,
}

#[derive(Clone, Debug)]
struct Proposal {
    view: u64,
    block: Block,
    hash: Hash,
    executed: bool,
}

/// Everything known about one uncommitted height.
#[derive(Debug, Default)]
struct Slot {
    /// The accepted proposal, in the view it was accepted in.
    proposal: Option<Proposal>,
    /// A proposal whose parent is not here yet; reconsidered when it arrives.
    waiting: Option<(PublicKey, PrePrepare)>,
    /// The prepared certificate of the highest view.
    prepared: Option<PreparedCertificate>,
    prepares: BTreeMap<VoteTarget, BTreeMap<PublicKey, Signature>>,
    commits: BTreeMap<VoteTarget, BTreeMap<PublicKey, Signature>>,
    sent_prepare_view: Option<u64>,
}

impl Slot {
    fn prepared_in(&self, view: u64) -> bool {
        self.prepared.as_ref().is_some_and(|prepared| prepared.view == view)
    }

    /// The block with `hash`, if this slot knows it.
    fn block(&self, hash: &Hash) -> Option<&Block> {
        let proposed = self.proposal.as_ref().filter(|p| p.hash == *hash).map(|p| &p.block);
        proposed.or_else(|| self.prepared.as_ref().map(|p| &p.block).filter(|block| block.hash() == *hash))
    }
}

#[derive(Debug)]
struct Sync {
    target: u64,
    sources: Vec<PublicKey>,
    attempts: usize,
}

pub struct Replica<A: Application> {
    chain_id: String,
    genesis_hash: Hash,
    key: SigningKey,
    id: PublicKey,
    app: A,
    schedule: Schedule,
    tip: Tip,
    persisted_height: u64,
    /// Hashes of committed blocks above the stable checkpoint, to match CHECKPOINT votes.
    recent_hashes: BTreeMap<u64, Hash>,
    view: u64,
    in_view_change: bool,
    failed_views: u32,
    /// Timeouts in the current view change.
    view_change_timeouts: u32,
    slots: BTreeMap<u64, Slot>,
    stable_checkpoint: u64,
    checkpoints: BTreeMap<u64, BTreeMap<Hash, BTreeSet<PublicKey>>>,
    /// The latest far-ahead checkpoint height each validator claimed.
    far_checkpoints: BTreeMap<PublicKey, u64>,
    /// Counts protocol steps taken, so `settle` knows when nothing more follows.
    steps: u64,
    view_changes: BTreeMap<u64, BTreeMap<PublicKey, ViewChange>>,
    /// The NEW-VIEW that installed the current view, resent to replicas still asking for it.
    last_new_view: Option<NewView>,
    sync: Option<Sync>,
    probe_round: usize,
    caught_up: bool,
    /// Peers that answered a probe with no block above this replica's tip, until `caught_up`.
    up_to_date_peers: BTreeSet<PublicKey>,
    now_ms: u64,
    last_progress_ms: u64,
    last_proposal_ms: u64,
    /// Nothing was pending at the end of the last event.
    idle: bool,
    timers: BTreeMap<Timer, u64>,
    out: Vec<Action>,
}

impl<A: Application> std::fmt::Debug for Replica<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("id", &self.id)
            .field("height", &self.tip.height)
            .field("view", &self.view)
            .field("in_view_change", &self.in_view_change)
            .finish_non_exhaustive()
    }
}

impl<A: Application> Replica<A> {
    /// A replica starting from genesis, or from what `recovered` read back after a restart.
    /// Call [`Replica::handle`] with [`Event::Started`] next.
    pub fn new(genesis: &Genesis, key: SigningKey, app: A, recovered: Recovered) -> Replica<A> {
        let genesis_hash = genesis.hash();
        let tip = match recovered.last_committed {
            Some((header, certificate)) => Tip {
                height: header.height,
                hash: header.hash(),
                state_root: header.state_root,
                timestamp_ms: header.timestamp_ms,
                certificate: Some(certificate),
            },
            None => Tip {
                height: 0,
                hash: genesis_hash,
                state_root: app.committed_state_root(),
                timestamp_ms: genesis.genesis_time_ms,
                certificate: None,
            },
        };
        let id = key.public_key();
        let mut replica = Replica {
            chain_id: genesis.chain_id.clone(),
            genesis_hash,
            key,
            id,
            app,
            schedule: recovered.schedule.unwrap_or_else(|| Schedule::from_genesis(genesis)),
            persisted_height: tip.height,
            recent_hashes: BTreeMap::from([(tip.height, tip.hash)]),
            stable_checkpoint: tip.height,
            tip,
            view: 0,
            in_view_change: false,
            failed_views: 0,
            view_change_timeouts: 0,
            slots: BTreeMap::new(),
            checkpoints: BTreeMap::new(),
            far_checkpoints: BTreeMap::new(),
            steps: 0,
            view_changes: BTreeMap::new(),
            last_new_view: None,
            sync: None,
            probe_round: 0,
            caught_up: false,
            up_to_date_peers: BTreeSet::new(),
            now_ms: 0,
            last_progress_ms: 0,
            last_proposal_ms: 0,
            idle: true,
            timers: BTreeMap::new(),
            out: Vec::new(),
        };
        for record in recovered.journal {
            replica.replay(record);
        }
        replica.check_caught_up();
        replica
    }

    fn replay(&mut self, record: Record) {
        match record {
            Record::View { view, in_view_change } => {
                if view >= self.view {
                    self.view = view;
                    self.in_view_change = in_view_change;
                }
            }
            Record::PrePrepared { view, block } => {
                let height = block.height();
                if height > self.tip.height {
                    let hash = block.hash();
                    let slot = self.slots.entry(height).or_default();
                    if slot.proposal.as_ref().is_none_or(|p| p.view <= view) {
                        slot.proposal = Some(Proposal { view, block, hash, executed: false });
                    }
                }
            }
            Record::Prepared(certificate) => {
                let height = certificate.block.height();
                if height > self.tip.height {
                    let slot = self.slots.entry(height).or_default();
                    if slot.prepared.as_ref().is_none_or(|p| p.view <= certificate.view) {
                        slot.prepared = Some(certificate);
                    }
                }
            }
        }
    }

    pub fn id(&self) -> PublicKey {
        self.id
    }

    pub fn app(&self) -> &A {
        &self.app
    }

    pub fn app_mut(&mut self) -> &mut A {
        &mut self.app
    }

    pub fn height(&self) -> u64 {
        self.tip.height
    }

    pub fn view(&self) -> u64 {
        self.view
    }

    pub fn status(&self) -> ReplicaStatus {
        let rules = self.current_rules();
        ReplicaStatus {
            height: self.tip.height,
            last_block_hash: self.tip.hash,
            view: self.view,
            primary: rules.validators.primary(self.view),
            in_view_change: self.in_view_change,
            stable_checkpoint: self.stable_checkpoint,
            syncing: self.sync.is_some(),
            caught_up: self.caught_up,
            validators: rules.validators.keys().to_vec(),
        }
    }

    /// Feeds one event at time `now_ms` and returns the actions to carry out, in order.
    pub fn handle(&mut self, now_ms: u64, event: Event) -> Vec<Action> {
        self.now_ms = self.now_ms.max(now_ms);
        match event {
            Event::Started => self.on_started(),
            Event::Message { from, message } => self.on_message(from, message),
            Event::Timer(timer) => self.on_timer(timer),
            Event::TransactionsArrived => {}
            Event::BlockPersisted { height } => self.on_block_persisted(height),
        }
        self.settle();
        self.maybe_propose();
        self.settle();
        self.arm_progress_timer();
        if !self.timers.contains_key(&Timer::StateTransfer) {
            let timeout = self.current_rules().params.view_change_timeout_ms;
            // Until it knows it holds the tip, a replica asks often: it is not ready before.
            let every = if self.caught_up { PROBE_EVERY_TIMEOUTS * timeout } else { timeout / 2 };
            self.set_timer(Timer::StateTransfer, self.now_ms + every);
        }
        std::mem::take(&mut self.out)
    }

    // ----- helpers -------------------------------------------------------------------------

    fn current_rules(&self) -> &Rules {
        self.schedule.at(self.tip.height + 1)
    }

    fn quorum_at(&self, height: u64) -> usize {
        self.schedule.validators_at(height).quorum()
    }

    fn reject(&mut self, from: PublicKey, rejection: Rejection) {
        self.out.push(Action::Rejected { from, rejection });
    }

    fn persist(&mut self, record: Record) {
        self.out.push(Action::Persist(record));
    }

    fn broadcast(&mut self, message: Message) {
        self.out.push(Action::Broadcast(message));
    }

    fn set_timer(&mut self, timer: Timer, at_ms: u64) {
        if self.timers.get(&timer) != Some(&at_ms) {
            self.timers.insert(timer, at_ms);
            self.out.push(Action::SetTimer { timer, at_ms });
        }
    }

    fn view_change_timeout(&self) -> u64 {
        let base = self.current_rules().params.view_change_timeout_ms;
        base << self.failed_views.min(MAX_BACKOFF_SHIFT)
    }

    /// Heights this replica proposes and votes on: the watermark window above its tip.
    fn in_window(&self, height: u64) -> bool {
        height > self.tip.height && height <= self.tip.height + self.schedule.window()
    }

    /// Heights whose messages are kept for later: a primary whose tip is ahead may already
    /// propose beyond this replica's window. Twice the window bounds the memory a peer can use.
    fn storable(&self, height: u64) -> bool {
        height > self.tip.height && height <= self.tip.height + 2 * self.schedule.window()
    }

    // ----- start, timers, persistence -------------------------------------------------------

    fn on_started(&mut self) {
        self.last_progress_ms = self.now_ms;
        if self.in_view_change {
            self.send_view_change();
        } else {
            // Repeat what may have been lost in the crash: our own proposals (ed25519 signatures
            // are deterministic, so these are the very messages sent before) and our votes.
            let view = self.view;
            let own_proposals: Vec<Block> = self
                .slots
                .values()
                .filter_map(|slot| slot.proposal.as_ref())
                .filter(|p| {
                    p.view == view && p.block.header.proposer == self.id && p.block.header.view == view
                })
                .map(|p| p.block.clone())
                .collect();
            for block in own_proposals {
                let pre_prepare = PrePrepare::new(view, block, &self.chain_id, &self.key);
                self.broadcast(Message::PrePrepare(pre_prepare));
            }
            let heights: Vec<u64> = self.slots.keys().copied().collect();
            for height in heights {
                self.try_send_prepare(height);
            }
        }
        // Find out whether the others moved on while this replica was down.
        self.probe();
    }

    fn on_timer(&mut self, timer: Timer) {
        match self.timers.get(&timer) {
            Some(deadline) if *deadline <= self.now_ms => {
                self.timers.remove(&timer);
            }
            _ => return, // stale or moved
        }
        match timer {
            Timer::Progress => {
                if self.in_view_change || !self.expects_progress() {
                    return;
                }
                if self.caught_up {
                    self.start_view_change(self.view + 1);
                } else {
                    // Still catching up after a start, progress waits on itself, not on the
                    // primary: a lone view change would shut it out of the view the others stay
                    // in. The clock starts again from here.
                    self.last_progress_ms = self.now_ms;
                }
            }
            Timer::ViewChange => {
                if !self.in_view_change {
                    return;
                }
                let supporters = self.view_changes.get(&self.view).map_or(0, BTreeMap::len);
                self.view_change_timeouts += 1;
                // With a quorum behind the view, its primary had its chance (and a resend of our
                // request, in case its NEW-VIEW to us was lost): it is faulty.
                if supporters >= self.current_rules().validators.quorum() && self.view_change_timeouts >= 2 {
                    // The view change itself stalled: its primary is faulty. Try the next one.
                    self.failed_views += 1;
                    self.start_view_change(self.view + 1);
                } else {
                    // Not enough others asked yet; repeat, but do not run ahead of them alone.
                    self.send_view_change();
                }
            }
            Timer::Propose => {}
            Timer::StateTransfer if self.sync.is_some() => self.request_blocks(),
            Timer::StateTransfer => self.probe(),
        }
    }

    fn expects_progress(&self) -> bool {
        self.app.pending() > 0 || self.slots.values().any(|slot| slot.proposal.is_some())
    }

    fn arm_progress_timer(&mut self) {
        let expecting = !self.in_view_change && self.expects_progress();
        if !expecting {
            self.idle = true;
            return;
        }
        if std::mem::take(&mut self.idle) {
            // Work after a quiet spell: the clock for progress starts now.
            self.last_progress_ms = self.now_ms;
        }
        let deadline = self.last_progress_ms + self.view_change_timeout();
        self.set_timer(Timer::Progress, deadline.max(self.now_ms));
    }

    fn on_block_persisted(&mut self, height: u64) {
        self.persisted_height = self.persisted_height.max(height);
        if height <= self.stable_checkpoint {
            return;
        }
        let interval = self.schedule.params_at(height).checkpoint_interval;
        if !height.is_multiple_of(interval) {
            return;
        }
        let Some(hash) = self.recent_hashes.get(&height).copied() else { return };
        let checkpoint = Checkpoint::new(height, hash, &self.chain_id, &self.key);
        self.broadcast(Message::Checkpoint(checkpoint));
        self.record_checkpoint(height, hash, self.id);
    }

    // ----- messages ----------------------------------------------------------------------

    fn on_message(&mut self, from: PublicKey, message: Message) {
        // Views grow by one per timeout and heights by one per block: a value this far ahead
        // comes from a faulty sender, and arithmetic on it could overflow.
        let (view, height) = match &message {
            Message::PrePrepare(pre_prepare) => (pre_prepare.view, pre_prepare.block.height()),
            Message::Vote(vote) => (vote.target.view, vote.target.height),
            Message::Checkpoint(checkpoint) => (0, checkpoint.height),
            Message::ViewChange(view_change) => (view_change.new_view, 0),
            Message::NewView(new_view) => (new_view.view, 0),
            Message::StateRequest { from_height } => (0, *from_height),
            Message::StateResponse { tip, .. } => (0, *tip),
        };
        if view > self.view.saturating_add(MAX_AHEAD) || height > self.tip.height.saturating_add(MAX_AHEAD) {
            let detail = format!("view {view} / height {height} is implausibly far ahead");
            self.out
                .push(Action::Rejected { from, rejection: Rejection::new(RejectKind::Implausible, detail) });
            return;
        }
        match message {
            Message::PrePrepare(pre_prepare) => self.on_pre_prepare(from, pre_prepare),
            Message::Vote(vote) => self.on_vote(from, vote),
            Message::Checkpoint(checkpoint) => self.on_checkpoint(from, checkpoint),
            Message::ViewChange(view_change) => self.on_view_change(from, view_change),
            Message::NewView(new_view) => self.on_new_view(from, new_view),
            Message::StateRequest { from_height } => {
                self.out.push(Action::ServeBlocks { to: from, from_height });
            }
            Message::StateResponse { blocks, tip } => self.on_state_response(from, blocks, tip),
        }
    }

    fn on_pre_prepare(&mut self, from: PublicKey, pre_prepare: PrePrepare) {
        let height = pre_prepare.block.height();
        if height <= self.tip.height {
            return; // already final: a late duplicate
        }
        if !self.storable(height) {
            return self.reject(
                from,
                Rejection::new(RejectKind::OutsideWindow, format!("pre-prepare for height {height}")),
            );
        }
        if let Err(rejection) = pre_prepare.verify(&self.chain_id, self.schedule.validators_at(height)) {
            return self.reject(from, rejection);
        }
        if pre_prepare.view < self.view {
            return self.reject(
                from,
                Rejection::new(RejectKind::StaleView, format!("pre-prepare for view {}", pre_prepare.view)),
            );
        }
        if pre_prepare.view > self.view + 1 {
            return;
        }
        if pre_prepare.view != self.view || self.in_view_change {
            // It overtook the NEW-VIEW that starts its view: keep it until that arrives.
            self.slots.entry(height).or_default().waiting = Some((from, pre_prepare));
            return;
        }
        let hash = pre_prepare.block.hash();
        if let Some(existing) = self.slots.get(&height).and_then(|s| s.proposal.as_ref())
            && existing.view == pre_prepare.view
        {
            if existing.hash != hash {
                self.reject(
                    from,
                    Rejection::new(
                        RejectKind::Equivocation,
                        format!("second proposal for view {} height {height}", pre_prepare.view),
                    ),
                );
            }
            return;
        }
        if !self.in_window(height) {
            self.slots.entry(height).or_default().waiting = Some((from, pre_prepare));
            return;
        }
        // The parent: the committed tip, or the proposal accepted below it in this view.
        let parent = if height == self.tip.height + 1 {
            Some((self.tip.hash, self.tip.state_root, self.tip.timestamp_ms))
        } else {
            self.slots
                .get(&(height - 1))
                .and_then(|slot| slot.proposal.as_ref())
                .filter(|p| p.view == self.view)
                .map(|p| (p.hash, p.block.header.state_root, p.block.header.timestamp_ms))
        };
        let Some((parent_hash, parent_state, parent_time)) = parent else {
            self.slots.entry(height).or_default().waiting = Some((from, pre_prepare));
            return;
        };
        if let Err(rejection) = self.check_proposed_block(&pre_prepare, parent_hash, parent_time) {
            return self.reject(from, rejection);
        }
        if !self.ensure_executed(height - 1) {
            self.slots.entry(height).or_default().waiting = Some((from, pre_prepare));
            return;
        }
        let block = pre_prepare.block;
        match self.app.execute(&parent_state, height, &block.transactions) {
            Ok(root) if root == block.header.state_root => {}
            Ok(root) => {
                return self.reject(
                    from,
                    Rejection::new(
                        RejectKind::BadExecution,
                        format!("state root {:?} differs from executed {root:?}", block.header.state_root),
                    ),
                );
            }
            Err(error) => {
                return self.reject(from, Rejection::new(RejectKind::BadExecution, error.to_string()));
            }
        }
        self.accept_proposal(self.view, block, true, None);
    }

    fn check_proposed_block(
        &self,
        pre_prepare: &PrePrepare,
        parent_hash: Hash,
        parent_time: u64,
    ) -> Result<(), Rejection> {
        let header = &pre_prepare.block.header;
        let bad = |detail: String| Rejection::new(RejectKind::BadBlock, detail);
        let difficulty = self.schedule.params_at(header.height).pow_difficulty_bits;
        pre_prepare
            .block
            .check_integrity(&self.chain_id, difficulty)
            .map_err(|error: BlockError| bad(error.to_string()))?;
        if header.view != pre_prepare.view || header.proposer != pre_prepare.primary {
            return Err(bad("header view or proposer differs from the pre-prepare".into()));
        }
        if header.previous_hash != parent_hash {
            return Err(bad(format!("previous hash {:?} is not {parent_hash:?}", header.previous_hash)));
        }
        if header.timestamp_ms < parent_time || header.timestamp_ms > self.now_ms + MAX_CLOCK_SKEW_MS {
            return Err(bad(format!("timestamp {} out of range", header.timestamp_ms)));
        }
        if pre_prepare.block.transactions.len()
            > self.schedule.params_at(header.height).max_block_txs as usize
        {
            return Err(bad("too many transactions".into()));
        }
        Ok(())
    }

    /// Makes sure the application has executed the blocks up to `height` (blocks re-proposed by
    /// a view change arrive unexecuted). False if one cannot be executed yet.
    fn ensure_executed(&mut self, height: u64) -> bool {
        let mut parent_state = self.tip.state_root;
        for h in self.tip.height + 1..=height {
            let Some(proposal) = self.slots.get_mut(&h).and_then(|s| s.proposal.as_mut()) else {
                return false;
            };
            if !proposal.executed {
                let block = &proposal.block;
                match self.app.execute(&parent_state, h, &block.transactions) {
                    Ok(root) if root == block.header.state_root => proposal.executed = true,
                    _ => return false,
                }
            }
            parent_state = proposal.block.header.state_root;
        }
        true
    }

    /// Records `block` as the proposal at its height in `view`, persists that, sends
    /// `announcement` (the primary's own PRE-PREPARE), and votes.
    fn accept_proposal(&mut self, view: u64, block: Block, executed: bool, announcement: Option<PrePrepare>) {
        let height = block.height();
        let hash = block.hash();
        self.persist(Record::PrePrepared { view, block: block.clone() });
        if let Some(pre_prepare) = announcement {
            self.broadcast(Message::PrePrepare(pre_prepare));
        }
        let slot = self.slots.entry(height).or_default();
        slot.proposal = Some(Proposal { view, block, hash, executed });
        slot.waiting = None;
        self.steps += 1;
        self.try_send_prepare(height);
    }

    fn try_send_prepare(&mut self, height: u64) {
        let view = self.view;
        if self.in_view_change {
            return;
        }
        let Some(slot) = self.slots.get_mut(&height) else { return };
        let Some(proposal) = slot.proposal.as_ref().filter(|p| p.view == view) else { return };
        if slot.sent_prepare_view != Some(view) {
            slot.sent_prepare_view = Some(view);
            let target = VoteTarget { height, view, block_hash: proposal.hash };
            let vote = Vote::new(VoteKind::Prepare, target, &self.chain_id, &self.key);
            slot.prepares.entry(target).or_default().insert(self.id, vote.signature);
            self.broadcast(Message::Vote(vote));
        } else if slot.prepared_in(view) {
            // After a restart: repeat the COMMIT too.
            let target = VoteTarget { height, view, block_hash: proposal.hash };
            let vote = Vote::new(VoteKind::Commit, target, &self.chain_id, &self.key);
            self.broadcast(Message::Vote(vote));
        }
    }

    fn on_vote(&mut self, from: PublicKey, vote: Vote) {
        let height = vote.target.height;
        if height <= self.tip.height {
            return;
        }
        if !self.storable(height) {
            return self.reject(
                from,
                Rejection::new(RejectKind::OutsideWindow, format!("vote for height {height}")),
            );
        }
        // Votes for views far ahead cannot be useful yet and would let a faulty peer fill memory.
        if vote.target.view > self.view + 1
            || (vote.kind == VoteKind::Prepare && vote.target.view < self.view)
        {
            return self.reject(
                from,
                Rejection::new(
                    RejectKind::StaleView,
                    format!("{:?} for view {}", vote.kind, vote.target.view),
                ),
            );
        }
        if let Err(rejection) = vote.verify(&self.chain_id, self.schedule.validators_at(height)) {
            return self.reject(from, rejection);
        }
        let cap = MAX_TARGETS_PER_VALIDATOR * self.schedule.validators_at(height).len();
        let slot = self.slots.entry(height).or_default();
        let votes = match vote.kind {
            VoteKind::Prepare => &mut slot.prepares,
            VoteKind::Commit => &mut slot.commits,
        };
        // Honest voters back few targets per height; more can only come from faulty peers.
        if !votes.contains_key(&vote.target) && votes.len() >= cap {
            return self.reject(
                from,
                Rejection::new(
                    RejectKind::OutsideWindow,
                    format!("too many vote targets at height {height}"),
                ),
            );
        }
        votes.entry(vote.target).or_default().entry(vote.voter).or_insert(vote.signature);
    }

    /// The votes in `votes` from validators of `height`, if they make a quorum. Votes are checked
    /// on arrival, but the set for a height can change while they wait (reconfiguration).
    fn quorum_of(&self, height: u64, votes: &BTreeMap<PublicKey, Signature>) -> Option<Vec<CommitVote>> {
        let validators = self.schedule.validators_at(height);
        let counted: Vec<CommitVote> = votes
            .iter()
            .filter(|(voter, _)| validators.contains(voter))
            .map(|(voter, signature)| CommitVote { voter: *voter, signature: *signature })
            .collect();
        (counted.len() >= validators.quorum()).then_some(counted)
    }

    /// Repeats the protocol steps that earlier ones unblocked (accepting waiting proposals,
    /// becoming prepared, committing) until none applies. A loop rather than recursion keeps the
    /// stack flat whatever the window.
    fn settle(&mut self) {
        loop {
            let before = self.steps;
            self.retry_waiting();
            let heights: Vec<u64> =
                self.slots.range(self.tip.height + 1..).map(|(height, _)| *height).collect();
            for height in heights {
                self.check_prepared(height);
            }
            self.check_committed();
            if self.steps == before {
                break;
            }
        }
    }

    /// Becomes prepared at `height` when a quorum prepared the proposal and `height - 1` is
    /// prepared in this view or committed; then persists the certificate and sends COMMIT.
    fn check_prepared(&mut self, height: u64) {
        let view = self.view;
        let previous_ready = height == self.tip.height + 1
            || self.slots.get(&(height - 1)).is_some_and(|slot| slot.prepared_in(view));
        let Some(slot) = self.slots.get(&height) else { return };
        let Some(proposal) = slot.proposal.as_ref().filter(|p| p.view == view) else { return };
        if !previous_ready || slot.prepared_in(view) || slot.sent_prepare_view != Some(view) {
            return;
        }
        let target = VoteTarget { height, view, block_hash: proposal.hash };
        let Some(prepares) = slot.prepares.get(&target).and_then(|votes| self.quorum_of(height, votes))
        else {
            return;
        };
        let certificate = PreparedCertificate { view, block: proposal.block.clone(), prepares };
        self.persist(Record::Prepared(certificate.clone()));
        let commit = Vote::new(VoteKind::Commit, target, &self.chain_id, &self.key);
        if let Some(slot) = self.slots.get_mut(&height) {
            slot.prepared = Some(certificate);
            slot.commits.entry(target).or_default().insert(self.id, commit.signature);
        }
        self.broadcast(Message::Vote(commit));
        self.steps += 1;
    }

    /// Commits, in height order, every next block that has a quorum of COMMITs.
    fn check_committed(&mut self) {
        loop {
            let height = self.tip.height + 1;
            let Some(slot) = self.slots.get(&height) else { break };
            let Some((target, votes)) = slot
                .commits
                .iter()
                .find_map(|(target, votes)| Some((*target, self.quorum_of(height, votes)?)))
            else {
                break;
            };
            let voters: Vec<PublicKey> = votes.iter().map(|vote| vote.voter).collect();
            let certificate = CommitCertificate { target, votes };
            let Some(block) = slot.block(&target.block_hash).cloned() else {
                // Final elsewhere, but this replica never saw the block: fetch it.
                self.start_sync(height, voters);
                break;
            };
            if block.header.previous_hash != self.tip.hash {
                // A quorum committed a block on another chain: more than f validators are faulty.
                // Never follow it; report it loudly.
                self.reject(self.id, fork(&block));
                break;
            }
            if !self.execute_for_commit(&block) {
                self.start_sync(height, voters);
                break;
            }
            self.commit(block, certificate);
        }
        // Quorums above the next height mean the others are ahead.
        let ahead = self.slots.range(self.tip.height + 2..).find_map(|(height, slot)| {
            slot.commits
                .values()
                .find_map(|votes| self.quorum_of(*height, votes))
                .map(|votes| (*height, votes.iter().map(|vote| vote.voter).collect::<Vec<_>>()))
        });
        if let Some((height, voters)) = ahead {
            self.start_sync(height, voters);
        }
    }

    /// Reconsiders proposals that waited for a parent, a NEW-VIEW, or the window to move.
    fn retry_waiting(&mut self) {
        let window_end = self.tip.height + self.schedule.window();
        let waiting: Vec<u64> = self
            .slots
            .range(self.tip.height + 1..=window_end)
            .filter(|(_, slot)| slot.waiting.is_some())
            .map(|(height, _)| *height)
            .collect();
        for height in waiting {
            if let Some((from, pre_prepare)) = self.slots.get_mut(&height).and_then(|s| s.waiting.take()) {
                self.on_pre_prepare(from, pre_prepare);
            }
        }
    }

    /// Executes `block` on the committed state unless its proposal was executed already.
    fn execute_for_commit(&mut self, block: &Block) -> bool {
        let height = block.height();
        let executed = self
            .slots
            .get(&height)
            .and_then(|slot| slot.proposal.as_ref())
            .is_some_and(|p| p.executed && p.hash == block.hash());
        executed
            || self
                .app
                .execute(&self.tip.state_root, height, &block.transactions)
                .is_ok_and(|root| root == block.header.state_root)
    }

    fn commit(&mut self, block: Block, certificate: CommitCertificate) {
        let height = block.height();
        self.app.commit(&block);
        let schedule_changed = self.schedule.observe_commit(&block);
        self.tip = Tip {
            height,
            hash: block.hash(),
            state_root: block.header.state_root,
            timestamp_ms: block.header.timestamp_ms,
            certificate: Some(certificate.clone()),
        };
        self.recent_hashes.insert(height, self.tip.hash);
        self.slots.remove(&height);
        self.far_checkpoints.retain(|_, claimed| *claimed > height);
        self.steps += 1;
        self.last_progress_ms = self.now_ms;
        if self.sync.as_ref().is_some_and(|sync| sync.target <= height) {
            self.sync = None;
            self.timers.remove(&Timer::StateTransfer);
        }
        let schedule = schedule_changed.then(|| self.schedule.clone());
        self.out.push(Action::Commit { block, certificate, schedule });
        // A checkpoint quorum may have been waiting for this height.
        if let Some(hash) = self.checkpoints.get(&height).and_then(|by_hash| {
            by_hash.iter().find(|(_, voters)| voters.len() >= self.quorum_at(height)).map(|(hash, _)| *hash)
        }) {
            self.try_stabilise(height, hash);
        }
    }

    // ----- checkpoints -------------------------------------------------------------------

    fn on_checkpoint(&mut self, from: PublicKey, checkpoint: Checkpoint) {
        if checkpoint.height <= self.stable_checkpoint {
            return;
        }
        if let Err(rejection) =
            checkpoint.verify(&self.chain_id, self.schedule.validators_at(checkpoint.height))
        {
            return self.reject(from, rejection);
        }
        if checkpoint.height > self.tip.height + 2 * self.schedule.window() {
            // Far ahead: keep only each validator's latest claim, and believe f+1 of them.
            self.far_checkpoints.insert(checkpoint.voter, checkpoint.height);
            let weak_quorum = self.current_rules().validators.weak_quorum();
            if self.far_checkpoints.len() >= weak_quorum {
                let mut heights: Vec<u64> = self.far_checkpoints.values().copied().collect();
                heights.sort_unstable_by(|a, b| b.cmp(a));
                // The (f+1)-th highest claim is vouched for by at least one honest validator.
                let target = heights[weak_quorum - 1];
                let sources = self.far_checkpoints.keys().copied().collect();
                self.start_sync(target, sources);
            }
            return;
        }
        self.record_checkpoint(checkpoint.height, checkpoint.block_hash, checkpoint.voter);
    }

    fn record_checkpoint(&mut self, height: u64, hash: Hash, voter: PublicKey) {
        let by_hash = self.checkpoints.entry(height).or_default();
        if by_hash.iter().any(|(other, voters)| *other != hash && voters.contains(&voter)) {
            return; // one checkpoint per validator and height
        }
        let voters = by_hash.entry(hash).or_default();
        voters.insert(voter);
        let count = voters.len();
        let sources: Vec<PublicKey> = voters.iter().copied().collect();
        let set = self.schedule.validators_at(height);
        let (weak_quorum, quorum) = (set.weak_quorum(), set.quorum());
        if height > self.tip.height && count >= weak_quorum {
            self.start_sync(height, sources);
        }
        if count >= quorum {
            self.try_stabilise(height, hash);
        }
    }

    /// A quorum agrees on the state at `height`: once it is durable here too, forget what lies
    /// below it.
    fn try_stabilise(&mut self, height: u64, hash: Hash) {
        if height <= self.stable_checkpoint || height > self.persisted_height {
            return;
        }
        if self.recent_hashes.get(&height) != Some(&hash) {
            return;
        }
        self.stable_checkpoint = height;
        self.checkpoints = self.checkpoints.split_off(&(height + 1));
        self.recent_hashes = self.recent_hashes.split_off(&height);
        // Not the tip: heights between the checkpoint and the tip may still be persisted and
        // checkpointed, and need their rules.
        self.schedule.prune(height);
        self.out.push(Action::PruneJournal { through_height: height });
    }

    // ----- view changes ------------------------------------------------------------------

    fn start_view_change(&mut self, new_view: u64) {
        if new_view <= self.view && self.in_view_change {
            return;
        }
        self.view = new_view;
        self.in_view_change = true;
        self.view_change_timeouts = 0;
        self.timers.remove(&Timer::Progress);
        self.persist(Record::View { view: new_view, in_view_change: true });
        self.send_view_change();
        self.check_new_view_quorum();
    }

    /// This replica's request for `view`: its committed tip and what it prepared before `view`.
    fn view_change_for(&self, view: u64) -> ViewChange {
        let prepared: Vec<PreparedCertificate> = self
            .slots
            .iter()
            .filter(|(height, _)| **height > self.tip.height)
            .filter_map(|(_, slot)| slot.prepared.clone())
            .filter(|prepared| prepared.view < view)
            .collect();
        ViewChange::new(view, self.tip.certificate.clone(), prepared, &self.chain_id, &self.key)
    }

    fn send_view_change(&mut self) {
        let view_change = self.view_change_for(self.view);
        self.view_changes.entry(self.view).or_default().insert(self.id, view_change.clone());
        self.broadcast(Message::ViewChange(view_change));
        let deadline = self.now_ms + self.view_change_timeout();
        self.set_timer(Timer::ViewChange, deadline);
    }

    fn on_view_change(&mut self, from: PublicKey, view_change: ViewChange) {
        let schedule = &self.schedule;
        let verdict = view_change.verify_with(&self.chain_id, &self.current_rules().validators, &|height| {
            schedule.validators_at(height)
        });
        if let Err(rejection) = verdict {
            return self.reject(from, rejection);
        }
        if view_change.committed_height() < self.tip.height {
            // The sender is behind, perhaps because it missed the last commits of a chain that
            // is now idle: hand it what it lacks.
            let from_height = view_change.committed_height() + 1;
            self.out.push(Action::ServeBlocks { to: view_change.sender, from_height });
        }
        let new_view = view_change.new_view;
        if new_view < self.view || (new_view == self.view && !self.in_view_change) {
            self.help_behind(view_change.sender, new_view);
            return;
        }
        if let Some(committed) = &view_change.committed
            && committed.height() > self.tip.height
        {
            self.start_sync(committed.height(), vec![view_change.sender]);
        }
        // Keep one pending request per validator above the current view, its latest.
        let sender = view_change.sender;
        for (view, requests) in self.view_changes.range_mut(self.view + 1..) {
            if *view < new_view {
                requests.remove(&sender);
            }
        }
        if new_view > self.view
            && self.view_changes.range(new_view + 1..).any(|(_, requests)| requests.contains_key(&sender))
        {
            return;
        }
        self.view_changes.entry(new_view).or_default().entry(sender).or_insert(view_change);

        // Join a view change that f+1 others want: at least one of them is honest.
        let mut latest_wanted: BTreeMap<PublicKey, u64> = BTreeMap::new();
        for (view, senders) in self.view_changes.range(self.view + 1..) {
            for sender in senders.keys() {
                latest_wanted.insert(*sender, *view);
            }
        }
        if latest_wanted.len() >= self.current_rules().validators.weak_quorum()
            && let Some(smallest) = latest_wanted.values().min().copied()
        {
            self.start_view_change(smallest);
        }
        self.check_new_view_quorum();
    }

    /// `peer` asks for `view`, which this replica has moved past: resend what it may have missed
    /// (lost messages are not retransmitted otherwise).
    fn help_behind(&mut self, peer: PublicKey, view: u64) {
        if let Some(new_view) = self.last_new_view.clone().filter(|nv| nv.view >= view) {
            self.out.push(Action::Send { to: peer, message: Message::NewView(new_view) });
            return;
        }
        // Our request for that view, so its primary can gather a quorum (made afresh if lost in a
        // restart: having moved past `view`, this replica already promised what it promises) ...
        let ours = self.view_changes.get(&view).and_then(|vcs| vcs.get(&self.id)).cloned();
        let ours = ours.unwrap_or_else(|| self.view_change_for(view));
        self.out.push(Action::Send { to: peer, message: Message::ViewChange(ours) });
        // ... and for the view we are in now, so the peer can join it.
        if self.in_view_change
            && let Some(current) =
                self.view_changes.get(&self.view).and_then(|vcs| vcs.get(&self.id)).cloned()
        {
            self.out.push(Action::Send { to: peer, message: Message::ViewChange(current) });
        }
    }

    fn check_new_view_quorum(&mut self) {
        let rules = self.current_rules();
        if !self.in_view_change || rules.validators.primary(self.view) != self.id {
            return;
        }
        let Some(view_changes) = self.view_changes.get(&self.view) else { return };
        if view_changes.len() < rules.validators.quorum() {
            return;
        }
        let new_view =
            NewView::new(self.view, view_changes.values().cloned().collect(), &self.chain_id, &self.key);
        self.install_new_view(new_view, true);
    }

    fn on_new_view(&mut self, from: PublicKey, new_view: NewView) {
        if new_view.view < self.view || (new_view.view == self.view && !self.in_view_change) {
            return;
        }
        let schedule = &self.schedule;
        let verdict = new_view.verify_with(&self.chain_id, &self.current_rules().validators, &|height| {
            schedule.validators_at(height)
        });
        if let Err(rejection) = verdict {
            return self.reject(from, rejection);
        }
        self.install_new_view(new_view, false);
    }

    /// Enters the view that `new_view` announces (broadcasting it if this replica is its primary)
    /// and re-proposes what its view changes prepared.
    fn install_new_view(&mut self, new_view: NewView, announce: bool) {
        let selection = view_change::select(&new_view.view_changes, self.genesis_hash);
        self.view = new_view.view;
        self.in_view_change = false;
        self.failed_views = 0;
        self.last_progress_ms = self.now_ms;
        self.timers.remove(&Timer::ViewChange);
        self.view_changes = self.view_changes.split_off(&(self.view + 1));
        self.persist(Record::View { view: self.view, in_view_change: false });
        if announce {
            self.broadcast(Message::NewView(new_view.clone()));
        }
        if selection.committed_height() > self.tip.height {
            let sources = new_view.view_changes.iter().map(|vc| vc.sender).collect();
            self.start_sync(selection.committed_height(), sources);
        }
        // Proposals of earlier views that were not carried over are void.
        let reproposed: BTreeMap<u64, Hash> =
            selection.blocks.iter().map(|b| (b.height(), b.hash())).collect();
        let view = self.view;
        for (height, slot) in self.slots.iter_mut() {
            if slot.proposal.as_ref().is_some_and(|p| reproposed.get(height) != Some(&p.hash)) {
                slot.proposal = None;
            }
            if slot.waiting.as_ref().is_some_and(|(_, pre_prepare)| pre_prepare.view != view) {
                slot.waiting = None;
            }
        }
        for block in selection.blocks {
            if block.height() <= self.tip.height {
                continue;
            }
            let executed = self
                .slots
                .get(&block.height())
                .and_then(|slot| slot.proposal.as_ref())
                .is_some_and(|p| p.executed);
            self.accept_proposal(view, block, executed, None);
        }
        self.last_new_view = Some(new_view);
    }

    // ----- proposing ---------------------------------------------------------------------

    fn maybe_propose(&mut self) {
        // Pipelining: keep proposing while batches are ready and the window has room.
        for _ in 0..self.schedule.window().min(MAX_PROPOSALS_PER_EVENT) {
            if !self.propose_one() {
                break;
            }
        }
    }

    fn propose_one(&mut self) -> bool {
        if self.in_view_change || self.sync.is_some() {
            return false;
        }
        let view = self.view;
        let last_proposed = self
            .slots
            .iter()
            .rev()
            .find(|(_, slot)| slot.proposal.as_ref().is_some_and(|p| p.view == view))
            .map_or(self.tip.height, |(height, _)| *height)
            .max(self.tip.height);
        let height = last_proposed + 1;
        let rules = self.schedule.at(height).clone();
        if rules.validators.primary(view) != self.id
            || !self.in_window(height)
            || self.schedule.changes_within(self.tip.height + 1, height)
        {
            return false;
        }
        // Batching: propose at once into an idle pipeline; otherwise wait for a full batch or
        // for the block interval to pass.
        let in_flight = height - 1 - self.tip.height;
        let max_txs = rules.params.max_block_txs as usize;
        let interval_due = self.last_proposal_ms + rules.params.block_interval_ms;
        if in_flight > 0 && self.app.pending() < max_txs && self.now_ms < interval_due {
            self.set_timer(Timer::Propose, interval_due);
            return false;
        }
        if !self.ensure_executed(height - 1) {
            return false;
        }
        let (parent_hash, parent_state, parent_time) = if height == self.tip.height + 1 {
            (self.tip.hash, self.tip.state_root, self.tip.timestamp_ms)
        } else {
            match self.slots.get(&(height - 1)).and_then(|s| s.proposal.as_ref()) {
                Some(p) => (p.hash, p.block.header.state_root, p.block.header.timestamp_ms),
                None => return false,
            }
        };
        let built = match self.app.build(&parent_state, height, max_txs) {
            Ok(built) if !built.transactions.is_empty() => built,
            _ => return false,
        };
        let header = Header {
            chain_id: self.chain_id.clone(),
            height,
            view,
            previous_hash: parent_hash,
            tx_root: Hash::ZERO,
            state_root: built.state_root,
            timestamp_ms: self.now_ms.max(parent_time),
            proposer: self.id,
            pow_difficulty: rules.params.pow_difficulty_bits,
            pow_nonce: 0,
        };
        let mut block = Block::new(header, built.transactions);
        block.header.seal();
        let pre_prepare = PrePrepare::new(view, block.clone(), &self.chain_id, &self.key);
        self.last_proposal_ms = self.now_ms;
        self.accept_proposal(view, block, true, Some(pre_prepare));
        true
    }

    // ----- state transfer ----------------------------------------------------------------

    /// Others have committed up to at least `target`: fetch the blocks from `sources`.
    fn start_sync(&mut self, target: u64, sources: Vec<PublicKey>) {
        if target <= self.tip.height {
            return;
        }
        let sources: Vec<PublicKey> = sources.into_iter().filter(|k| *k != self.id).collect();
        match &mut self.sync {
            Some(sync) => {
                sync.target = sync.target.max(target);
                for source in sources {
                    if !sync.sources.contains(&source) {
                        sync.sources.push(source);
                    }
                }
            }
            None if !sources.is_empty() => {
                self.sync = Some(Sync { target, sources, attempts: 0 });
                self.request_blocks();
            }
            None => {}
        }
    }

    /// Asks for blocks above the tip: every peer until this replica knows it is caught up, then
    /// the next peer in turn. A replica that missed the last commits of a chain that then went
    /// quiet learns of them this way; the answer is usually empty.
    fn probe(&mut self) {
        let peers: Vec<PublicKey> =
            self.current_rules().validators.keys().iter().copied().filter(|k| *k != self.id).collect();
        if peers.is_empty() {
            return;
        }
        let from_height = self.tip.height + 1;
        let asked = if self.caught_up {
            self.probe_round = self.probe_round.wrapping_add(1);
            vec![peers[self.probe_round % peers.len()]]
        } else {
            peers
        };
        for peer in asked {
            self.out.push(Action::Send { to: peer, message: Message::StateRequest { from_height } });
        }
    }

    /// Latches `caught_up` once a quorum, this replica included, has nothing above its tip.
    fn check_caught_up(&mut self) {
        if self.caught_up {
            return;
        }
        let validators = &self.current_rules().validators;
        let reports = self.up_to_date_peers.iter().filter(|k| validators.contains(k)).count()
            + usize::from(validators.contains(&self.id));
        if reports >= validators.quorum() {
            self.caught_up = true;
            self.up_to_date_peers.clear();
        }
    }

    fn request_blocks(&mut self) {
        let Some(sync) = self.sync.as_mut() else { return };
        if sync.attempts >= 2 * sync.sources.len() {
            // Nobody had the blocks: the evidence was stale. Normal operation will tell again.
            self.sync = None;
            self.timers.remove(&Timer::StateTransfer);
            return;
        }
        let source = sync.sources[sync.attempts % sync.sources.len()];
        sync.attempts += 1;
        let from_height = self.tip.height + 1;
        self.out.push(Action::Send { to: source, message: Message::StateRequest { from_height } });
        let deadline = self.now_ms + self.current_rules().params.view_change_timeout_ms / 2;
        self.set_timer(Timer::StateTransfer, deadline);
    }

    /// `tip` is the sender's committed height when it answered.
    fn on_state_response(&mut self, from: PublicKey, blocks: Vec<CertifiedBlock>, tip: u64) {
        let before = self.tip.height;
        for CertifiedBlock { block, certificate } in blocks {
            let height = block.height();
            if height <= self.tip.height {
                continue;
            }
            if let Err(rejection) = self.check_certified_block(&block, &certificate) {
                self.reject(from, rejection);
                // A peer that sends bad blocks is no witness of anything.
                return self.request_blocks();
            }
            self.commit(block, certificate);
        }
        if let Some(sync) = self.sync.as_mut() {
            // Ask again right away: for more from the same peer if it helped, else another peer.
            if self.tip.height > before {
                sync.attempts = 0;
                sync.sources.retain(|k| *k != from);
                sync.sources.insert(0, from);
            }
            self.request_blocks();
        } else if self.tip.height > before {
            // A probe found newer blocks: keep fetching from that peer. (A claimed tip without
            // blocks proves nothing, so it starts no sync.)
            self.start_sync(tip.max(self.tip.height + 1), vec![from]);
        }
        if self.tip.height >= tip {
            self.up_to_date_peers.insert(from);
            self.check_caught_up();
        }
    }

    /// Checks a block received by state transfer: its certificate, its place on the chain, its
    /// seal, and that executing it gives the state root it claims.
    fn check_certified_block(
        &mut self,
        block: &Block,
        certificate: &CommitCertificate,
    ) -> Result<(), Rejection> {
        let height = block.height();
        let bad = |detail: String| Rejection::new(RejectKind::BadStateResponse, detail);
        if height != self.tip.height + 1 {
            return Err(bad(format!("block {height} does not follow height {}", self.tip.height)));
        }
        if certificate.target.height != height || certificate.target.block_hash != block.hash() {
            return Err(bad("certificate is for another block".into()));
        }
        certificate
            .verify(&self.chain_id, self.schedule.validators_at(height))
            .map_err(|e| Rejection::new(RejectKind::BadCertificate, e.to_string()))?;
        block
            .check_integrity(&self.chain_id, self.schedule.params_at(height).pow_difficulty_bits)
            .map_err(|e| bad(e.to_string()))?;
        if block.header.previous_hash != self.tip.hash {
            return Err(fork(block));
        }
        match self.app.execute(&self.tip.state_root, height, &block.transactions) {
            Ok(root) if root == block.header.state_root => Ok(()),
            Ok(_) => Err(Rejection::new(
                RejectKind::BadExecution,
                "certified block executes to another state root",
            )),
            Err(error) => Err(Rejection::new(RejectKind::BadExecution, error.to_string())),
        }
    }
}

/// A certified block that does not extend this replica's committed chain.
fn fork(block: &Block) -> Rejection {
    Rejection::new(
        RejectKind::Fork,
        format!(
            "certified block {:?} at height {} extends {:?}, not this chain",
            block.hash(),
            block.height(),
            block.header.previous_hash
        ),
    )
}

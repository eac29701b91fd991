//! The PBFT replica state machine: the one orchestrator of the leaves that keep its books.
//!
//! Per height: the primary of the view proposes (PRE-PREPARE) a sealed block; every replica that
//! accepts it sends PREPARE; a quorum of PREPAREs makes the block *prepared* (persisted as a
//! prepared certificate) and the replica sends COMMIT; a quorum of COMMITs makes it final, and
//! blocks are committed in height order. Several heights are in flight at once (up to the
//! watermark window above the committed tip). One rule ties them together: a replica becomes
//! prepared at height h+1 in a view only once it is prepared at h in that view (or committed h).
//! That keeps the heights a view change must recover free of gaps (see `view_change::select`).

use std::collections::BTreeMap;

use kubechain_types::{
    Block, CommitCertificate, Genesis, Hash, HashedRules, Header, PublicKey, SigningKey, VoteTarget,
};

use crate::app::Application;
use crate::chain::{Parent, Proposal, Slot, Tip, parent_of};
use crate::checkpoints::{Checkpoints, ClaimOutcome};
use crate::contract::{Action, Event, Record, Recovered, ReplicaStatus, Timer};
use crate::execution::execute_block;
use crate::messages::{Checkpoint, Message, PrePrepare, PreparedCertificate, Vote, VoteKind};
use crate::pacemaker::Pacemaker;
use crate::parked::Parked;
use crate::proposal::{check_proposed_block, check_rules_hash};
use crate::rejection::{RejectKind, Rejection};
use crate::state_transfer::StateTransfer;
use kubechain_types::{Rules, Schedule};

mod handle_state_transfer;
mod handle_view_change;

/// An idle replica asks a peer for newer blocks once per this many view-change timeouts.
const PROBE_EVERY_TIMEOUTS: u64 = 4;
/// Blocks a primary seals within one event, so proof-of-work cannot starve everything else.
const MAX_PROPOSALS_PER_EVENT: u64 = 4;
/// How far ahead of this replica a view or height may be before a message is refused outright.
const MAX_AHEAD: u64 = 1 << 32;

pub struct Replica<A: Application> {
    chain_id: String,
    genesis_hash: Hash,
    key: SigningKey,
    id: PublicKey,
    app: A,
    schedule: Schedule,
    tip: Tip,
    view: u64,
    in_view_change: bool,
    slots: BTreeMap<u64, Slot>,
    /// Verified proposals that came before their NEW-VIEW or their parent.
    parked: Parked,
    checkpoints: Checkpoints,
    pacemaker: Pacemaker,
    state_transfer: StateTransfer,
    /// Counts protocol steps taken, so `settle` knows when nothing more follows.
    steps: u64,
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
        let schedule = recovered.schedule.unwrap_or_else(|| Schedule::from_genesis(genesis));
        // Hashed once here; after that only blocks that change the rules hash them again.
        let rules = HashedRules::new(schedule.latest().clone());
        let tip = match recovered.last_committed {
            Some((header, certificate)) => Tip::committed(&header, certificate, rules),
            None => Tip {
                height: 0,
                hash: genesis_hash,
                state_root: app.committed_state_root(),
                timestamp_ms: genesis.genesis_time_ms,
                certificate: None,
                rules,
            },
        };
        let id = key.public_key();
        let mut replica = Replica {
            chain_id: genesis.chain_id.clone(),
            genesis_hash,
            key,
            id,
            app,
            schedule,
            checkpoints: Checkpoints::new(tip.height, tip.hash),
            tip,
            view: 0,
            in_view_change: false,
            slots: BTreeMap::new(),
            parked: Parked::default(),
            pacemaker: Pacemaker::default(),
            state_transfer: StateTransfer::new(id),
            steps: 0,
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
        replica.state_transfer.check_caught_up(&replica.schedule.at(replica.tip.height + 1).validators);
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
            // A block read back passes the same body check as one from a peer: a damaged record
            // is dropped (the block is fetched again) rather than executed.
            Record::PrePrepared { view, block }
                if block.height() > self.tip.height && block.check_body().is_ok() =>
            {
                self.slots.entry(block.height()).or_default().restore_proposal(view, block);
            }
            Record::Prepared(certificate)
                if certificate.block.height() > self.tip.height && certificate.block.check_body().is_ok() =>
            {
                self.slots.entry(certificate.block.height()).or_default().restore_prepared(certificate);
            }
            // Committed since, or damaged: ignored.
            Record::PrePrepared { .. } | Record::Prepared(_) => {}
        }
    }

    pub fn id(&self) -> PublicKey {
        self.id
    }

    /// The application, for reads. The replica is its only owner: changes go through the
    /// forwarding methods below, never around the replica.
    pub fn app(&self) -> &A {
        &self.app
    }

    /// See [`Application::admit`]; feed [`Event::TransactionsArrived`] when any was admitted.
    pub fn admit(
        &mut self,
        now_ms: u64,
        transactions: Vec<kubechain_types::Transaction>,
        origin: crate::Origin,
    ) -> Vec<Result<Hash, A::Refusal>> {
        self.app.admit(now_ms, transactions, origin)
    }

    /// See [`Application::expire`]; feed [`Event::TransactionsArrived`] when any expired.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        self.app.expire(now_ms)
    }

    /// See [`Application::take_dropped`].
    pub fn take_dropped(&mut self) -> Vec<(Hash, A::Refusal)> {
        self.app.take_dropped()
    }

    /// See [`Application::persisted`].
    pub fn persisted(&mut self, state_root: &Hash) {
        self.app.persisted(state_root)
    }

    pub fn height(&self) -> u64 {
        self.tip.height
    }

    pub fn view(&self) -> u64 {
        self.view
    }

    /// True if this replica is in the set in force at `height`. Outside it (syncing before it
    /// is added, or removed) a replica follows the chain, commits with the others' certificates
    /// and serves blocks, but signs nothing: no proposal, vote, checkpoint or view change.
    pub fn votes_at(&self, height: u64) -> bool {
        self.schedule.validators_at(height).contains(&self.id)
    }

    pub fn status(&self) -> ReplicaStatus {
        let rules = self.current_rules();
        ReplicaStatus {
            height: self.tip.height,
            last_block_hash: self.tip.hash,
            view: self.view,
            primary: rules.validators.primary(self.view),
            in_view_change: self.in_view_change,
            stable_checkpoint: self.checkpoints.stable(),
            sync_target: self.state_transfer.target(),
            caught_up: self.state_transfer.is_caught_up(),
            validators: rules.validators.keys().to_vec(),
            voting: self.votes_at(self.tip.height + 1),
            consensus_params: rules.params.clone(),
            rules_since: self.schedule.in_force_since(self.tip.height + 1),
            scheduled: self
                .schedule
                .pending_after(self.tip.height + 1)
                .map(|(activation, rules)| (activation, rules.clone())),
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
        // A primary that was behind its view-change quorum may have caught up.
        self.check_new_view_quorum();
        self.maybe_propose();
        self.settle();
        self.arm_progress_timer();
        if !self.timers.contains_key(&Timer::StateTransfer) {
            let timeout = self.current_rules().params.view_change_timeout_ms;
            // Until it knows it holds the tip, a replica asks often: it is not ready before.
            let every =
                if self.state_transfer.is_caught_up() { PROBE_EVERY_TIMEOUTS * timeout } else { timeout / 2 };
            self.set_timer(Timer::StateTransfer, self.now_ms + every);
        }
        std::mem::take(&mut self.out)
    }

    // ----- helpers -------------------------------------------------------------------------

    fn current_rules(&self) -> &Rules {
        self.schedule.at(self.tip.height + 1)
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

    fn send(&mut self, to: PublicKey, message: Message) {
        self.out.push(Action::Send { to, message });
    }

    fn set_timer(&mut self, timer: Timer, at_ms: u64) {
        if self.timers.get(&timer) != Some(&at_ms) {
            self.timers.insert(timer, at_ms);
            self.out.push(Action::SetTimer { timer, at_ms });
        }
    }

    fn view_change_timeout(&self) -> u64 {
        self.pacemaker.timeout_ms(self.current_rules().params.view_change_timeout_ms)
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

    /// What a block at `height` proposed in the current view extends.
    fn parent_of(&self, height: u64) -> Option<Parent> {
        parent_of(&self.tip, &self.slots, height, self.view)
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
                .filter_map(|slot| slot.proposal_in(view))
                .filter(|p| p.block.header.proposer == self.id && p.block.header.view == view)
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
                if self.state_transfer.is_caught_up() && self.votes_at(self.tip.height + 1) {
                    self.start_view_change(self.view + 1);
                } else {
                    // Still catching up after a start, progress waits on itself, not on the
                    // primary: a lone view change would shut it out of the view the others stay
                    // in. Outside the set, it never asks for one. The clock starts again here.
                    self.last_progress_ms = self.now_ms;
                }
            }
            Timer::ViewChange => {
                if !self.in_view_change {
                    return;
                }
                let quorum = self.current_rules().validators.quorum();
                if self.pacemaker.timed_out(self.view, quorum) {
                    self.start_view_change(self.view + 1);
                } else {
                    // Not enough others asked yet; repeat, but do not run ahead of them alone.
                    self.send_view_change();
                }
            }
            Timer::Propose => {}
            Timer::StateTransfer if self.state_transfer.is_fetching() => self.request_blocks(),
            Timer::StateTransfer => self.probe(),
        }
    }

    fn expects_progress(&self) -> bool {
        self.app.pending() > 0
            || self.slots.values().any(|slot| slot.proposal.is_some())
            || self.change_ahead()
    }

    /// A committed change of the rules is not in force yet: the chain must reach its activation
    /// height, with empty blocks if nothing else comes (see [`Self::propose_one`]).
    fn change_ahead(&self) -> bool {
        self.schedule.pending_after(self.tip.height + 1).is_some()
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
        let interval = self.schedule.params_at(height).checkpoint_interval;
        let Some(hash) = self.checkpoints.persisted(height, interval) else { return };
        if !self.votes_at(height) {
            return;
        }
        let checkpoint = Checkpoint::new(height, hash, &self.chain_id, &self.key);
        self.broadcast(Message::Checkpoint(checkpoint));
        self.record_checkpoint(height, hash, self.id);
    }

    // ----- messages ----------------------------------------------------------------------

    fn on_message(&mut self, from: PublicKey, message: Message) {
        // Views grow by one per timeout and heights by one per block: a value this far ahead
        // comes from a faulty sender, and arithmetic on it could overflow.
        let (view, height) = message.claimed_view_and_height();
        if view > self.view.saturating_add(MAX_AHEAD) || height > self.tip.height.saturating_add(MAX_AHEAD) {
            let detail = format!("view {view} / height {height} is implausibly far ahead");
            return self.reject(from, Rejection::new(RejectKind::Implausible, detail));
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
        self.consider_proposal(from, pre_prepare);
    }

    /// Takes a verified proposal of this view or the next, or parks it until it can be taken.
    fn consider_proposal(&mut self, from: PublicKey, pre_prepare: PrePrepare) {
        let height = pre_prepare.block.height();
        if pre_prepare.view != self.view || self.in_view_change {
            // It overtook the NEW-VIEW that starts its view: keep it until that arrives.
            return self.park(from, pre_prepare);
        }
        let hash = pre_prepare.block.hash();
        if let Some(existing) = self.slots.get(&height).and_then(|s| s.proposal_in(pre_prepare.view)) {
            if existing.hash != hash {
                let detail = format!("second proposal for view {} height {height}", pre_prepare.view);
                self.reject(from, Rejection::new(RejectKind::Equivocation, detail));
            }
            return;
        }
        // Without its parent (or outside the window) it waits until that changes.
        let parent = if self.in_window(height) { self.parent_of(height) } else { None };
        let Some(parent) = parent else {
            return self.park(from, pre_prepare);
        };
        let params = self.schedule.params_at(height);
        if let Err(rejection) =
            check_proposed_block(&pre_prepare, &parent, &self.chain_id, params, self.now_ms)
        {
            return self.reject(from, rejection);
        }
        let Some(parent_rules) = self.ensure_checked(height - 1) else {
            return self.park(from, pre_prepare);
        };
        let rules_after = parent_rules.after(&pre_prepare.block.transactions);
        if let Err(detail) = check_rules_hash(&pre_prepare.block.header, &rules_after) {
            return self.reject(from, Rejection::new(RejectKind::BadBlock, detail));
        }
        if let Err(error) = execute_block(&mut self.app, &parent.state_root, &pre_prepare.block) {
            return self.reject(from, error.into());
        }
        self.accept_proposal(Proposal::new(self.view, pre_prepare.block, true, Some(rules_after)), None);
    }

    fn park(&mut self, from: PublicKey, pre_prepare: PrePrepare) {
        let (height, view) = (pre_prepare.block.height(), pre_prepare.view);
        if let Err(error) = self.parked.park(from, pre_prepare) {
            let detail = format!("proposal for height {height} view {view}: {error}");
            self.reject(from, Rejection::new(RejectKind::OverQuota, detail));
        }
    }

    /// Makes sure the proposals up to `height` are executed and their `rules_hash` checked
    /// (blocks re-proposed by a view change arrive unexecuted, some with rules not yet known), and
    /// returns the latest scheduled rules after `height`. `None` if one cannot be checked yet or
    /// fails: a block is never built on, nor voted on as a proposal, above such a one.
    fn ensure_checked(&mut self, height: u64) -> Option<HashedRules> {
        let (mut parent_hash, mut parent_state) = (self.tip.hash, self.tip.state_root);
        let mut rules = self.tip.rules.clone();
        for h in self.tip.height + 1..=height {
            let proposal = self.slots.get_mut(&h).and_then(|s| s.proposal.as_mut())?;
            rules = match &proposal.rules_after {
                Some(known) => known.clone(),
                // The rules after a block follow from its parent's: only on the chain it extends.
                None if proposal.block.header.previous_hash == parent_hash => {
                    let after = rules.after(&proposal.block.transactions);
                    check_rules_hash(&proposal.block.header, &after).ok()?;
                    proposal.rules_after = Some(after.clone());
                    after
                }
                None => return None,
            };
            if !proposal.executed {
                execute_block(&mut self.app, &parent_state, &proposal.block).ok()?;
                proposal.executed = true;
            }
            (parent_hash, parent_state) = (proposal.hash, proposal.block.header.state_root);
        }
        Some(rules)
    }

    /// Records `proposal` as the one at its height, persists that, sends `announcement` (the
    /// primary's own PRE-PREPARE), and votes.
    fn accept_proposal(&mut self, proposal: Proposal, announcement: Option<PrePrepare>) {
        let height = proposal.block.height();
        self.persist(Record::PrePrepared { view: proposal.view, block: proposal.block.clone() });
        if let Some(pre_prepare) = announcement {
            self.broadcast(Message::PrePrepare(pre_prepare));
        }
        self.slots.entry(height).or_default().proposal = Some(proposal);
        self.steps += 1;
        self.try_send_prepare(height);
    }

    fn try_send_prepare(&mut self, height: u64) {
        let view = self.view;
        if self.in_view_change || !self.votes_at(height) {
            return;
        }
        let Some(slot) = self.slots.get_mut(&height) else { return };
        let Some(proposal) = slot.proposal_in(view) else { return };
        let target = VoteTarget { height, view, block_hash: proposal.hash };
        if slot.sent_prepare_view != Some(view) {
            slot.sent_prepare_view = Some(view);
            let vote = Vote::new(VoteKind::Prepare, target, &self.chain_id, &self.key);
            slot.prepares.add_own(target, self.id, vote.signature);
            self.broadcast(Message::Vote(vote));
        } else if slot.prepared_in(view) {
            // After a restart: repeat the COMMIT too.
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
            let detail = format!("{:?} for view {}", vote.kind, vote.target.view);
            return self.reject(from, Rejection::new(RejectKind::StaleView, detail));
        }
        let validators = self.schedule.validators_at(height);
        if let Err(rejection) = vote.verify(&self.chain_id, validators) {
            return self.reject(from, rejection);
        }
        let votes = self.slots.entry(height).or_default().votes_mut(vote.kind);
        if votes.add(vote.target, vote.voter, vote.signature).is_err() {
            let detail = format!("too many vote targets from one voter at height {height}");
            self.reject(from, Rejection::new(RejectKind::OverQuota, detail));
        }
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
        let Some(proposal) = slot.proposal_in(view) else { return };
        if !previous_ready || slot.prepared_in(view) || slot.sent_prepare_view != Some(view) {
            return;
        }
        let target = VoteTarget { height, view, block_hash: proposal.hash };
        let Some(prepares) = slot.prepares.quorum_for(&target, self.schedule.validators_at(height)) else {
            return;
        };
        let certificate = PreparedCertificate { view, block: proposal.block.clone(), prepares };
        self.persist(Record::Prepared(certificate.clone()));
        let commit = Vote::new(VoteKind::Commit, target, &self.chain_id, &self.key);
        if let Some(slot) = self.slots.get_mut(&height) {
            slot.prepared = Some(certificate);
            slot.commits.add_own(target, self.id, commit.signature);
        }
        self.broadcast(Message::Vote(commit));
        self.steps += 1;
    }

    /// Commits, in height order, every next block that has a quorum of COMMITs.
    fn check_committed(&mut self) {
        loop {
            let height = self.tip.height + 1;
            let Some(slot) = self.slots.get(&height) else { break };
            let Some((target, votes)) = slot.commits.first_quorum(self.schedule.validators_at(height)) else {
                break;
            };
            let voters: Vec<PublicKey> = votes.iter().map(|vote| vote.voter).collect();
            let certificate = CommitCertificate { target, votes };
            let Some(block) = slot.block(&target.block_hash).cloned() else {
                // Final elsewhere, but this replica never saw the block: fetch it.
                self.fetch_up_to(height, voters);
                break;
            };
            if block.header.previous_hash != self.tip.hash {
                // A quorum committed a block on another chain: more than f validators are faulty.
                // Never follow it; report it loudly.
                self.reject(self.id, Rejection::fork(&block));
                break;
            }
            let own = slot.proposal.as_ref().filter(|p| p.hash == block.hash());
            // Executed and checked already as its proposal, or now on the committed tip.
            let (executed, checked) =
                (own.is_some_and(|p| p.executed), own.and_then(|p| p.rules_after.clone()));
            let rules_after = match checked {
                Some(checked) => checked,
                None => {
                    let rules_after = self.tip.rules.after(&block.transactions);
                    if let Err(detail) = check_rules_hash(&block.header, &rules_after) {
                        // Just as much a sign of more than f faulty validators as a fork.
                        self.reject(self.id, Rejection::certified_with_wrong_rules(&block, &detail));
                        break;
                    }
                    rules_after
                }
            };
            if !executed && execute_block(&mut self.app, &self.tip.state_root, &block).is_err() {
                self.fetch_up_to(height, voters);
                break;
            }
            self.commit(block, certificate, rules_after);
        }
        // Quorums above the next height mean the others are ahead.
        let ahead = self.slots.range(self.tip.height + 2..).find_map(|(height, slot)| {
            let (_, votes) = slot.commits.first_quorum(self.schedule.validators_at(*height))?;
            Some((*height, votes.iter().map(|vote| vote.voter).collect::<Vec<_>>()))
        });
        if let Some((height, voters)) = ahead {
            self.fetch_up_to(height, voters);
        }
    }

    /// Reconsiders proposals that waited for a parent, a NEW-VIEW, or the window to move. They
    /// were verified on arrival, against the validator set of their height that cannot change
    /// while they wait (a change takes effect a window after its commit).
    fn retry_waiting(&mut self) {
        if self.in_view_change {
            return;
        }
        let window_end = self.tip.height + self.schedule.window();
        let (tip, slots, view) = (&self.tip, &self.slots, self.view);
        let ready =
            |height, proposed_in| proposed_in == view && parent_of(tip, slots, height, view).is_some();
        for (from, pre_prepare) in self.parked.take(self.tip.height + 1..=window_end, ready) {
            self.consider_proposal(from, pre_prepare);
        }
    }

    /// Commits `block`, whose `rules_hash` was checked to name `rules_after`.
    fn commit(&mut self, block: Block, certificate: CommitCertificate, rules_after: HashedRules) {
        let height = block.height();
        self.app.commit(&block);
        let schedule_changed = self.schedule.observe_commit(&block);
        // Both follow the same rule (`Rules::after`) from the same start.
        debug_assert!(!schedule_changed || self.schedule.latest() == rules_after.rules());
        self.tip = Tip::committed(&block.header, certificate.clone(), rules_after);
        self.checkpoints.committed(height, self.tip.hash);
        self.slots.remove(&height);
        self.parked.forget(self.view, height);
        self.steps += 1;
        self.last_progress_ms = self.now_ms;
        if self.state_transfer.committed(height) {
            self.timers.remove(&Timer::StateTransfer);
        }
        let schedule = schedule_changed.then(|| self.schedule.clone());
        self.out.push(Action::Commit { block, certificate, schedule });
        // A checkpoint quorum may have been waiting for this height.
        let stabilised = self.checkpoints.stabilise_committed(height, self.schedule.validators_at(height));
        self.prune_below(stabilised);
    }

    // ----- checkpoints -------------------------------------------------------------------

    fn on_checkpoint(&mut self, from: PublicKey, checkpoint: Checkpoint) {
        if checkpoint.height <= self.checkpoints.stable() {
            return;
        }
        if let Err(rejection) =
            checkpoint.verify(&self.chain_id, self.schedule.validators_at(checkpoint.height))
        {
            return self.reject(from, rejection);
        }
        if checkpoint.height > self.tip.height + 2 * self.schedule.window() {
            // Far ahead: keep only each validator's latest claim, and believe f+1 of them.
            let weak_quorum = self.current_rules().validators.weak_quorum();
            if let Some(fetch) = self.checkpoints.record_far(checkpoint.height, checkpoint.voter, weak_quorum)
            {
                self.fetch_up_to(fetch.height, fetch.sources);
            }
            return;
        }
        self.record_checkpoint(checkpoint.height, checkpoint.block_hash, checkpoint.voter);
    }

    fn record_checkpoint(&mut self, height: u64, hash: Hash, voter: PublicKey) {
        let validators = self.schedule.validators_at(height);
        let ClaimOutcome { fetch, stabilised } =
            self.checkpoints.record(height, hash, voter, validators, self.tip.height);
        if let Some(fetch) = fetch {
            self.fetch_up_to(fetch.height, fetch.sources);
        }
        self.prune_below(stabilised);
    }

    /// A new stable checkpoint: forget the rules and journal records below it. (Not the tip's:
    /// heights between the checkpoint and the tip may still be persisted and checkpointed, and
    /// need their rules.)
    fn prune_below(&mut self, stable: Option<u64>) {
        if let Some(height) = stable {
            self.schedule.prune(height);
            self.out.push(Action::PruneJournal { through_height: height });
        }
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
        if self.in_view_change || self.state_transfer.is_fetching() {
            return false;
        }
        let view = self.view;
        let last_proposed = self
            .slots
            .iter()
            .rev()
            .find(|(_, slot)| slot.proposal_in(view).is_some())
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
        let Some(parent_rules) = self.ensure_checked(height - 1) else { return false };
        let Some(parent) = self.parent_of(height) else { return false };
        let built = match self.app.build(&parent.state_root, height, max_txs) {
            Ok(built) if !built.transactions.is_empty() => built,
            // Idle while a committed change waits for its height: one empty block per block
            // interval carries the chain there, so a change takes effect without traffic.
            Ok(built) if in_flight == 0 && self.change_ahead() => {
                if self.now_ms < interval_due {
                    self.set_timer(Timer::Propose, interval_due);
                    return false;
                }
                built
            }
            _ => return false,
        };
        let rules_after = parent_rules.after(&built.transactions);
        let header = Header {
            chain_id: self.chain_id.clone(),
            height,
            view,
            previous_hash: parent.hash,
            tx_root: Hash::ZERO,
            state_root: built.state_root,
            rules_hash: rules_after.hash(),
            timestamp_ms: self.now_ms.max(parent.timestamp_ms),
            proposer: self.id,
            pow_difficulty: rules.params.pow_difficulty_bits,
            pow_nonce: 0,
        };
        let mut block = Block::new(header, built.transactions);
        block.header.seal();
        let pre_prepare = PrePrepare::new(view, block.clone(), &self.chain_id, &self.key);
        self.last_proposal_ms = self.now_ms;
        self.accept_proposal(Proposal::new(view, block, true, Some(rules_after)), Some(pre_prepare));
        true
    }
}

//! The replica's view changes: asking for a new primary, answering and joining others' requests,
//! and entering a view with its NEW-VIEW. The bookkeeping is the pacemaker's; which blocks a new
//! view re-proposes is `view_change::select`.

use std::collections::BTreeMap;

use kubechain_types::{CommitCertificate, Hash, PublicKey};

use super::Replica;
use crate::app::Application;
use crate::chain::Proposal;
use crate::contract::{Action, Record, Timer};
use crate::messages::{Message, NewView, PreparedCertificate, ViewChange, VoteKind};
use crate::proposal::check_rules_hash;
use crate::rejection::{RejectKind, Rejection};
use crate::view_change;

impl<A: Application> Replica<A> {
    pub(super) fn start_view_change(&mut self, new_view: u64) {
        // Outside the set a replica learns views from NEW-VIEWs; it never asks for one.
        if (new_view <= self.view && self.in_view_change) || !self.votes_at(self.tip.height + 1) {
            return;
        }
        self.view = new_view;
        self.in_view_change = true;
        self.pacemaker.started();
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

    pub(super) fn send_view_change(&mut self) {
        // Removed while in a view change (or restarted in one): it signs nothing any more, and
        // follows the view the others install.
        if !self.votes_at(self.tip.height + 1) {
            return;
        }
        let view_change = self.view_change_for(self.view);
        self.pacemaker.add_own(view_change.clone());
        self.broadcast(Message::ViewChange(view_change));
        let deadline = self.now_ms + self.view_change_timeout();
        self.set_timer(Timer::ViewChange, deadline);
    }

    pub(super) fn on_view_change(&mut self, from: PublicKey, view_change: ViewChange) {
        let new_view = view_change.new_view;
        let stale = new_view < self.view || (new_view == self.view && !self.in_view_change);
        // A request for a view this replica has left only asks for help: answered once per half
        // timeout per peer, and otherwise dropped before its signatures are checked.
        let interval = self.current_rules().params.view_change_timeout_ms / 2;
        if stale && !self.pacemaker.may_help(from, self.now_ms, interval) {
            return;
        }
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
        if stale {
            return self.help_behind(view_change.sender, new_view);
        }
        if let Some(committed) = &view_change.committed
            && committed.height() > self.tip.height
        {
            self.catch_up_with(committed, view_change.sender);
        }
        if !self.pacemaker.add(self.view, view_change) {
            return;
        }
        let weak_quorum = self.current_rules().validators.weak_quorum();
        if let Some(view) = self.pacemaker.view_to_join(self.view, weak_quorum) {
            self.start_view_change(view);
        }
        self.check_new_view_quorum();
    }

    /// A verified view change shows that a quorum committed a block above this replica's tip.
    /// Its COMMITs are genuine votes: a replica that holds the block (prepared, short of the last
    /// COMMIT) commits it with them. Otherwise it fetches the blocks from every validator, not the
    /// sender alone: a sender that gathered the others' COMMITs and withheld its own may well
    /// refuse to serve the block, and the primary of the next view waits for it.
    fn catch_up_with(&mut self, committed: &CommitCertificate, sender: PublicKey) {
        let height = committed.height();
        if self.storable(height) {
            let votes = self.slots.entry(height).or_default().votes_mut(VoteKind::Commit);
            for vote in &committed.votes {
                // A vote over its voter's quota here is refused; if that leaves the certificate
                // short of a quorum in the slot, the fetch below is what catches up.
                let _ = votes.add(committed.target, vote.voter, vote.signature);
            }
            self.settle();
        }
        if height > self.tip.height {
            let others = self
                .current_rules()
                .validators
                .keys()
                .iter()
                .filter(|key| **key != sender && **key != self.id);
            let sources = std::iter::once(sender).chain(others.copied()).collect();
            self.fetch_up_to(height, sources);
        }
    }

    /// `peer` asks for `view`, which this replica has moved past: resend what it may have missed
    /// (lost messages are not retransmitted otherwise).
    fn help_behind(&mut self, peer: PublicKey, view: u64) {
        if let Some(new_view) = self.pacemaker.new_view_for(view).cloned() {
            return self.send(peer, Message::NewView(new_view));
        }
        if !self.votes_at(self.tip.height + 1) {
            return;
        }
        // Our request for that view, so its primary can gather a quorum (made afresh if lost in a
        // restart: having moved past `view`, this replica already promised what it promises) ...
        let ours = self.pacemaker.request(view, &self.id).cloned();
        let ours = ours.unwrap_or_else(|| self.view_change_for(view));
        self.send(peer, Message::ViewChange(ours));
        // ... and for the view we are in now, so the peer can join it.
        if self.in_view_change
            && let Some(current) = self.pacemaker.request(self.view, &self.id).cloned()
        {
            self.send(peer, Message::ViewChange(current));
        }
    }

    pub(super) fn check_new_view_quorum(&mut self) {
        if !self.in_view_change || self.current_rules().validators.primary(self.view) != self.id {
            return;
        }
        // A primary behind a request it holds catches up first: the rules in force (who may
        // sign, how many make a quorum) follow the tip, and replicas at the newer tip judge its
        // NEW-VIEW by theirs; its own request, made at the old tip, may even carry a certificate
        // they can no longer check. Once caught up, its request carries the new tip.
        if self.pacemaker.highest_committed(self.view) > self.tip.height {
            return;
        }
        if self
            .pacemaker
            .request(self.view, &self.id)
            .is_some_and(|own| own.committed_height() < self.tip.height)
        {
            let refreshed = self.view_change_for(self.view);
            self.pacemaker.add_own(refreshed);
        }
        let rules = self.current_rules();
        let Some(view_changes) = self.pacemaker.quorum_for(self.view, rules.validators.quorum()) else {
            return;
        };
        let new_view = NewView::new(self.view, view_changes, &self.chain_id, &self.key);
        self.install_new_view(new_view, true);
    }

    pub(super) fn on_new_view(&mut self, from: PublicKey, new_view: NewView) {
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
        self.last_progress_ms = self.now_ms;
        self.timers.remove(&Timer::ViewChange);
        self.persist(Record::View { view: self.view, in_view_change: false });
        if announce {
            self.broadcast(Message::NewView(new_view.clone()));
        }
        if selection.committed_height() > self.tip.height {
            let sources = new_view.view_changes.iter().map(|vc| vc.sender).collect();
            self.fetch_up_to(selection.committed_height(), sources);
        }
        // Proposals of earlier views that were not carried over are void.
        let reproposed: BTreeMap<u64, Hash> =
            selection.blocks.iter().map(|b| (b.height(), b.hash())).collect();
        let view = self.view;
        for (height, slot) in self.slots.iter_mut() {
            if slot.proposal.as_ref().is_some_and(|p| reproposed.get(height) != Some(&p.hash)) {
                slot.proposal = None;
            }
        }
        self.parked.forget(view, self.tip.height);
        // The rules after the block each re-proposal extends, from the tip up while the blocks
        // extend it here; above a gap (this replica is behind) they are checked once it catches up.
        let mut parent = Some((self.tip.hash, self.tip.rules.clone()));
        for block in selection.blocks {
            if block.height() <= self.tip.height {
                continue;
            }
            // A block this replica holds already keeps its own body and what was computed for
            // it: an execution result is never carried over to another body.
            let own = self
                .slots
                .get(&block.height())
                .and_then(|slot| slot.proposal.as_ref())
                .filter(|p| p.hash == block.hash());
            let (block, executed, checked) = match own {
                // (The planted bug carries the execution over; the rules are worked out afresh.)
                Some(p) if cfg!(feature = "bug-unchecked-body") => (block, p.executed, None),
                Some(p) => (p.block.clone(), p.executed, p.rules_after.clone()),
                None => (block, false, None),
            };
            let rules_after = match (checked, parent.take()) {
                (Some(checked), _) => Some(checked),
                (None, Some((parent_hash, parent_rules))) if block.header.previous_hash == parent_hash => {
                    let rules_after = parent_rules.after(&block.transactions);
                    if let Err(detail) = check_rules_hash(&block.header, &rules_after) {
                        // Prepared by a quorum, so checked by honest replicas before: a quorum of
                        // view changes cannot carry it unless more than f lied. Nothing above it
                        // is taken either.
                        let detail = format!("re-proposed {detail}");
                        self.reject(new_view.primary, Rejection::new(RejectKind::BadNewView, detail));
                        break;
                    }
                    Some(rules_after)
                }
                (None, _) => None,
            };
            parent = rules_after.clone().map(|rules| (block.hash(), rules));
            self.accept_proposal(Proposal::new(view, block, executed, rules_after), None);
        }
        self.pacemaker.installed(new_view);
    }
}

//! The replica's state transfer: fetching committed blocks it lacks, probing peers for newer ones,
//! and committing what they send once checked. The bookkeeping is `StateTransfer`'s.

use kubechain_types::PublicKey;

use super::Replica;
use crate::app::Application;
use crate::contract::Timer;
use crate::execution::execute_block;
use crate::messages::{CertifiedBlock, Message};
use crate::rejection::Rejection;
use crate::state_transfer::{NextRequest, check_certified_block};

impl<A: Application> Replica<A> {
    /// Others have committed up to at least `target`: fetch the blocks from `sources`.
    pub(super) fn fetch_up_to(&mut self, target: u64, sources: Vec<PublicKey>) {
        if self.state_transfer.start(target, sources, self.tip.height) {
            self.request_blocks();
        }
    }

    /// Asks peers whether there is anything above the tip (usually the answer is empty).
    pub(super) fn probe(&mut self) {
        let from_height = self.tip.height + 1;
        let asked = self.state_transfer.probe_targets(&self.schedule.at(from_height).validators);
        for peer in asked {
            self.send(peer, Message::StateRequest { from_height });
        }
    }

    pub(super) fn request_blocks(&mut self) {
        match self.state_transfer.next_request() {
            NextRequest::Idle => {}
            NextRequest::GaveUp => {
                // Nobody had the blocks: the evidence was stale. Normal operation will tell again.
                self.timers.remove(&Timer::StateTransfer);
            }
            NextRequest::Ask(source) => {
                self.send(source, Message::StateRequest { from_height: self.tip.height + 1 });
                let deadline = self.now_ms + self.current_rules().params.view_change_timeout_ms / 2;
                self.set_timer(Timer::StateTransfer, deadline);
            }
        }
    }

    /// `tip` is the sender's committed height when it answered.
    pub(super) fn on_state_response(&mut self, from: PublicKey, blocks: Vec<CertifiedBlock>, tip: u64) {
        let before = self.tip.height;
        for CertifiedBlock { block, certificate } in blocks {
            if block.height() <= self.tip.height {
                continue;
            }
            let checked =
                check_certified_block(&block, &certificate, &self.tip, &self.chain_id, &self.schedule)
                    .and_then(|rules_after| {
                        execute_block(&mut self.app, &self.tip.state_root, &block)
                            .map_err(Rejection::from)?;
                        Ok(rules_after)
                    });
            match checked {
                Ok(rules_after) => self.commit(block, certificate, rules_after),
                // A peer that sends bad blocks is no witness of anything. Nor does it get to
                // prompt a request: the fetch's timer moves on to the next source.
                Err(rejection) => return self.reject(from, rejection),
            }
        }
        let progressed = self.tip.height > before;
        // Only an answer that moved the tip asks again at once. Responses carry no request id,
        // so any other one (a duplicate, a replay, an answer with nothing new) cannot be told
        // from the answer to the request that is out; were each to ask again, every stray copy
        // would start a request/response loop lasting as long as the fetch, and the loops would
        // multiply. A height moves the tip once, so this bounds the requests answers prompt.
        if self.state_transfer.answered(from, progressed) {
            self.request_blocks();
        } else if progressed && tip > self.tip.height {
            // A probe found newer blocks, and the peer has more: keep fetching from it. (A
            // claimed tip without blocks proves nothing, so it starts no fetch. Nor is a peer
            // whose blocks this replica now all holds asked again: the next probe will tell.)
            self.fetch_up_to(tip, vec![from]);
        }
        if self.tip.height >= tip {
            self.state_transfer.up_to_date(from, &self.schedule.at(self.tip.height + 1).validators);
        }
    }
}

//! The pacemaker: view-change bookkeeping beside `view_change::select`. It keeps the requests for
//! each view (one pending per validator), applies the f+1 rule for joining a view change, decides
//! when a view change has failed, backs its timeouts off, and remembers the NEW-VIEW that
//! installed the current view for replicas still asking for it.

use std::collections::BTreeMap;

use kubechain_types::PublicKey;

use crate::messages::{NewView, ViewChange};

/// Cap on the exponential back-off of view-change timeouts (2^6 times the base).
const MAX_BACKOFF_SHIFT: u32 = 6;

#[derive(Debug, Default)]
pub(crate) struct Pacemaker {
    /// VIEW-CHANGE requests by the view they ask for and their sender.
    requests: BTreeMap<u64, BTreeMap<PublicKey, ViewChange>>,
    /// The NEW-VIEW that installed the current view, resent to replicas still asking for it.
    last_new_view: Option<NewView>,
    /// View changes in a row whose new primary never installed its view.
    failed_views: u32,
    /// Timeouts in the current view change.
    timeouts: u32,
    /// When each peer was last helped to a view it lags behind (NEW-VIEWs are large).
    helped_at_ms: BTreeMap<PublicKey, u64>,
}

impl Pacemaker {
    /// The timeout for progress and view changes: `base_ms`, doubled per failed view.
    pub fn timeout_ms(&self, base_ms: u64) -> u64 {
        base_ms << self.failed_views.min(MAX_BACKOFF_SHIFT)
    }

    /// This replica started a view change.
    pub fn started(&mut self) {
        self.timeouts = 0;
    }

    /// The view change to `view` timed out again. True if its primary had its chance and is
    /// faulty: a quorum of validators asked for the view, and a resend of this replica's request
    /// (in case the NEW-VIEW to it was lost) did not help either. That counts as a failed view.
    pub fn timed_out(&mut self, view: u64, quorum: usize) -> bool {
        let supporters = self.requests.get(&view).map_or(0, BTreeMap::len);
        self.timeouts += 1;
        let failed = supporters >= quorum && self.timeouts >= 2;
        if failed {
            self.failed_views += 1;
        }
        failed
    }

    /// True if `peer`, asking for a view this replica has left, may be helped at `now_ms`: once
    /// per `interval_ms`, so replayed requests cannot make this replica verify them and resend
    /// its NEW-VIEW in a loop. (Peers are validators: the map stays small.)
    pub fn may_help(&mut self, peer: PublicKey, now_ms: u64, interval_ms: u64) -> bool {
        match self.helped_at_ms.get(&peer) {
            Some(at_ms) if now_ms < at_ms.saturating_add(interval_ms) => false,
            _ => {
                self.helped_at_ms.insert(peer, now_ms);
                true
            }
        }
    }

    /// This replica's own request.
    pub fn add_own(&mut self, view_change: ViewChange) {
        self.requests.entry(view_change.new_view).or_default().insert(view_change.sender, view_change);
    }

    /// The request `sender` sent for `view`, if kept.
    pub fn request(&self, view: u64, sender: &PublicKey) -> Option<&ViewChange> {
        self.requests.get(&view).and_then(|requests| requests.get(sender))
    }

    /// Keeps a verified request from a peer, while this replica is in `current_view`: one
    /// pending request per validator above the current view, its latest. False if the sender
    /// already asked for a later view (the request is stale and changes nothing).
    pub fn add(&mut self, current_view: u64, view_change: ViewChange) -> bool {
        let (sender, new_view) = (view_change.sender, view_change.new_view);
        for (view, requests) in self.requests.range_mut(current_view + 1..) {
            if *view < new_view {
                requests.remove(&sender);
            }
        }
        if new_view > current_view
            && self.requests.range(new_view + 1..).any(|(_, requests)| requests.contains_key(&sender))
        {
            return false;
        }
        self.requests.entry(new_view).or_default().entry(sender).or_insert(view_change);
        true
    }

    /// The view to join: once `weak_quorum` (f+1) validators want views above `current_view`, at
    /// least one of them is honest, so the current primary is failing; join the smallest view
    /// among their latest requests.
    pub fn view_to_join(&self, current_view: u64, weak_quorum: usize) -> Option<u64> {
        let mut latest_wanted: BTreeMap<PublicKey, u64> = BTreeMap::new();
        for (view, senders) in self.requests.range(current_view + 1..) {
            for sender in senders.keys() {
                latest_wanted.insert(*sender, *view);
            }
        }
        if latest_wanted.len() < weak_quorum {
            return None;
        }
        latest_wanted.values().min().copied()
    }

    /// The highest committed height that the requests for `view` show.
    pub fn highest_committed(&self, view: u64) -> u64 {
        self.requests
            .get(&view)
            .into_iter()
            .flat_map(BTreeMap::values)
            .map(ViewChange::committed_height)
            .max()
            .unwrap_or(0)
    }

    /// The requests for `view`, once they make a quorum: what its primary's NEW-VIEW carries.
    pub fn quorum_for(&self, view: u64, quorum: usize) -> Option<Vec<ViewChange>> {
        let requests = self.requests.get(&view)?;
        (requests.len() >= quorum).then(|| requests.values().cloned().collect())
    }

    /// `new_view` installed its view: the view change succeeded, and requests up to it are done.
    pub fn installed(&mut self, new_view: NewView) {
        self.failed_views = 0;
        self.requests = self.requests.split_off(&(new_view.view + 1));
        self.last_new_view = Some(new_view);
    }

    /// The NEW-VIEW to send a replica still asking for `view`, if this one installed it or a
    /// later view.
    pub fn new_view_for(&self, view: u64) -> Option<&NewView> {
        self.last_new_view.as_ref().filter(|new_view| new_view.view >= view)
    }
}

#[cfg(test)]
mod tests {
    use kubechain_types::SigningKey;

    use super::*;

    const CHAIN: &str = "pacemaker-test";

    fn key(i: u8) -> SigningKey {
        SigningKey::from_seed([i; 32])
    }

    fn request(sender: u8, view: u64) -> ViewChange {
        ViewChange::new(view, None, Vec::new(), CHAIN, &key(sender))
    }

    fn senders(pacemaker: &Pacemaker, view: u64) -> Vec<PublicKey> {
        pacemaker.requests.get(&view).map(|requests| requests.keys().copied().collect()).unwrap_or_default()
    }

    #[test]
    fn timeouts_double_per_failed_view_up_to_a_cap() {
        let mut pacemaker = Pacemaker::default();
        assert_eq!(pacemaker.timeout_ms(1_000), 1_000);
        // A quorum asks for view 1, while this replica is in view 0, then for view 2 in view 1.
        for view in 1..=2 {
            pacemaker.add_own(request(1, view));
            pacemaker.add(view - 1, request(2, view));
            pacemaker.add(view - 1, request(3, view));
        }
        pacemaker.started();
        assert!(!pacemaker.timed_out(1, 3), "the first timeout resends the request");
        assert!(pacemaker.timed_out(1, 3));
        assert_eq!(pacemaker.timeout_ms(1_000), 2_000);
        pacemaker.started();
        assert!(!pacemaker.timed_out(2, 3));
        assert!(pacemaker.timed_out(2, 3));
        assert_eq!(pacemaker.timeout_ms(1_000), 4_000);
        pacemaker.failed_views = 40;
        assert_eq!(pacemaker.timeout_ms(1_000), 64_000);
        pacemaker.installed(NewView::new(3, Vec::new(), CHAIN, &key(4)));
        assert_eq!(pacemaker.timeout_ms(1_000), 1_000, "a view installed resets the back-off");
    }

    #[test]
    fn a_view_change_without_a_quorum_behind_it_never_fails_its_primary() {
        let mut pacemaker = Pacemaker::default();
        pacemaker.add_own(request(1, 1));
        pacemaker.add(0, request(2, 1));
        pacemaker.started();
        for _ in 0..5 {
            assert!(!pacemaker.timed_out(1, 3));
        }
        assert_eq!(pacemaker.timeout_ms(1_000), 1_000);
    }

    #[test]
    fn each_validator_keeps_one_pending_request_its_latest() {
        let mut pacemaker = Pacemaker::default();
        assert!(pacemaker.add(0, request(2, 1)));
        assert!(pacemaker.add(0, request(2, 3)));
        assert_eq!(senders(&pacemaker, 1), Vec::new(), "the request for view 1 is superseded");
        assert!(!pacemaker.add(0, request(2, 2)), "older than the one kept");
        assert_eq!(senders(&pacemaker, 2), Vec::new());
        assert_eq!(pacemaker.request(3, &key(2).public_key()).map(|r| r.new_view), Some(3));
        // A request for the current view is kept beside later ones (this replica may still be
        // gathering a quorum for it).
        assert!(pacemaker.add(3, request(2, 3)));
    }

    #[test]
    fn f_plus_one_requests_for_later_views_make_a_replica_join_the_smallest() {
        let mut pacemaker = Pacemaker::default();
        pacemaker.add(0, request(2, 5));
        assert_eq!(pacemaker.view_to_join(0, 2), None, "one validator may be faulty");
        pacemaker.add(0, request(3, 2));
        assert_eq!(pacemaker.view_to_join(0, 2), Some(2));
        assert_eq!(pacemaker.view_to_join(2, 2), None, "only views above the current one count");
    }

    #[test]
    fn a_quorum_of_requests_makes_a_new_view_and_installing_it_forgets_them() {
        let mut pacemaker = Pacemaker::default();
        pacemaker.add_own(request(1, 1));
        pacemaker.add(0, request(2, 1));
        assert_eq!(pacemaker.quorum_for(1, 3), None);
        pacemaker.add(0, request(3, 1));
        pacemaker.add(0, request(4, 2));
        let requests = pacemaker.quorum_for(1, 3).unwrap();
        assert_eq!(requests.len(), 3);
        assert_eq!(pacemaker.new_view_for(1), None);

        pacemaker.installed(NewView::new(1, requests, CHAIN, &key(2)));
        assert_eq!(senders(&pacemaker, 1), Vec::new());
        assert_eq!(senders(&pacemaker, 2), vec![key(4).public_key()]);
        assert_eq!(pacemaker.new_view_for(1).map(|nv| nv.view), Some(1));
        assert_eq!(pacemaker.new_view_for(0).map(|nv| nv.view), Some(1));
        assert_eq!(pacemaker.new_view_for(2), None);
    }

    #[test]
    fn a_lagging_peer_is_helped_once_per_interval() {
        let mut pacemaker = Pacemaker::default();
        let (a, b) = (key(1).public_key(), key(2).public_key());
        assert!(pacemaker.may_help(a, 1_000, 500));
        assert!(!pacemaker.may_help(a, 1_000, 500), "a replay at once");
        assert!(!pacemaker.may_help(a, 1_499, 500));
        assert!(pacemaker.may_help(b, 1_100, 500), "another peer has its own turn");
        assert!(pacemaker.may_help(a, 1_500, 500));
    }
}

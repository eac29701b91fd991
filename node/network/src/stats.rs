//! Counters for metrics.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Link counters. Rejections are by reason.
#[derive(Debug, Default)]
pub struct Stats {
    pub frames_in: AtomicU64,
    pub frames_out: AtomicU64,
    pub dropped_queue_full: AtomicU64,
    pub dropped_oversized: AtomicU64,
    pub dropped_malformed: AtomicU64,
    pub handshake_unknown_key: AtomicU64,
    pub handshake_bad_signature: AtomicU64,
    pub handshake_other: AtomicU64,
    pub connected: AtomicUsize,
}

impl Stats {
    pub(crate) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Peers with a live, authenticated link.
    pub fn connected_peers(&self) -> usize {
        self.connected.load(Ordering::Relaxed)
    }
}

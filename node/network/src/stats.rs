//! Counters for metrics.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Link counters. Rejections are by reason.
#[derive(Debug, Default)]
pub struct Stats {
    pub frames_in: AtomicU64,
    pub frames_out: AtomicU64,
    /// Frames not queued because the peer's outbox held `queue_frames` frames.
    pub dropped_queue_full: AtomicU64,
    /// Frames not queued because the peer's outbox held `queue_bytes` bytes.
    pub dropped_queue_bytes: AtomicU64,
    pub dropped_oversized: AtomicU64,
    pub dropped_malformed: AtomicU64,
    /// Links dropped because a message failed authentication: altered, replayed or reordered.
    pub dropped_undecryptable: AtomicU64,
    pub handshake_unknown_key: AtomicU64,
    pub handshake_bad_signature: AtomicU64,
    pub handshake_other: AtomicU64,
    /// Connections closed at once: every handshake slot (overall or for their address) taken.
    pub handshake_busy: AtomicU64,
    /// Peers unlinked because they are neither a validator nor a configured peer any more (a
    /// validator that left the set, a learner dropped from the peers file): links closed, frames
    /// dropped.
    pub removed_peers: AtomicU64,
    pub connected: AtomicUsize,
    /// Bytes waiting in all outboxes (including frames being written).
    pub outbox_bytes: AtomicUsize,
}

impl Stats {
    pub(crate) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Peers with a live, authenticated link.
    pub fn connected_peers(&self) -> usize {
        self.connected.load(Ordering::Relaxed)
    }

    /// Bytes queued for peers now.
    pub fn queued_bytes(&self) -> usize {
        self.outbox_bytes.load(Ordering::Relaxed)
    }
}

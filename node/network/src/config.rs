//! Who this node is, which validators it links to, and where to find them.

use std::net::SocketAddr;

use kubechain_types::{PublicKey, SigningKey};

/// Where a validator can be dialled.
#[derive(Clone, Debug)]
pub struct Peer {
    pub key: PublicKey,
    /// `host:port`, resolved at every dial (DNS names of Kubernetes Services change address).
    pub address: String,
}

#[derive(Clone, Debug)]
pub struct NetworkConfig {
    pub chain_id: String,
    pub key: SigningKey,
    pub listen: SocketAddr,
    /// The validator set in force at start (this node's own key may be in it); these keys and
    /// those of `peers` may link. [`crate::Network::set_validators`] replaces the set as the
    /// chain changes it.
    pub validators: Vec<PublicKey>,
    /// Addresses to dial. A key here that is not a validator is a learner: linked, but its votes
    /// count for nothing. A validator missing here can still dial us.
    pub peers: Vec<Peer>,
    /// Largest frame accepted or sent.
    pub max_frame_bytes: usize,
    /// Frames queued per peer before new ones are dropped (and counted).
    pub queue_frames: usize,
    /// Bytes queued per peer before new frames are dropped (and counted); a single frame larger
    /// than this is still queued when nothing else is.
    pub queue_bytes: usize,
    /// Frames from one peer delivered but not yet handled, at most; its link stops reading
    /// until the node handles some, so one peer cannot crowd the others out of the node's queue.
    pub inbound_frames: usize,
    /// Bytes from one peer delivered but not yet handled, at most (a larger single frame still
    /// goes through alone).
    pub inbound_bytes: usize,
}

impl NetworkConfig {
    pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;
    pub const DEFAULT_QUEUE_BYTES: usize = 32 * 1024 * 1024;
    pub const DEFAULT_INBOUND_FRAMES: usize = 256;
    pub const DEFAULT_INBOUND_BYTES: usize = 32 * 1024 * 1024;
}

//! Who this node is and which peers it links to.

use std::net::SocketAddr;

use kubechain_types::{PublicKey, SigningKey};

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
    pub peers: Vec<Peer>,
    /// Largest frame accepted or sent.
    pub max_frame_bytes: usize,
    /// Frames queued per peer before new ones are dropped (and counted).
    pub queue_frames: usize,
}

impl NetworkConfig {
    pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;
}

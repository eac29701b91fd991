//! Encrypted, authenticated links between validators.
//!
//! Each pair of validators keeps one TCP connection. At connect the two run a Noise XX handshake
//! (X25519, ChaCha20-Poly1305, SHA-256) with fresh keys, then each signs the Noise handshake hash
//! with its validator key, bound to the chain id and both keys: the session's keys belong to the
//! two validators, and a relay between them can neither read, alter, replay nor reorder anything
//! after the handshake. Frames are Borsh [`Frame`]s up to a maximum size, carried in chunks of at
//! most one Noise message each. A peer that sends something oversized, malformed or tampered
//! with is disconnected and counted; nothing it sends can crash the node. The validator with the
//! smaller key dials (with exponential back-off); both accept.
//!
//! Who may link follows the validator set in force ([`Network::set_validators`]) and the
//! configured peer addresses ([`Network::set_peers`], reloadable while running): a validator
//! that leaves is disconnected and refused unless it is also a configured peer, one that joins is
//! accepted (and dialled, if this node knows its address). A configured peer that is not a
//! validator is a learner: it receives what validators broadcast and may fetch blocks, so a
//! validator can sync before it is added and a removed one keeps following the chain; its votes
//! count for nothing, as consensus checks every signer against the set. Memory is bounded per peer both ways: its outbox in frames and bytes, and
//! the frames it has delivered that the node has not yet handled, so one peer that floods or
//! never reads cannot crowd out the others. The wire format is in `docs/encoding.md`.

mod config;
mod frame;
mod handshake;
mod link;
mod stats;
mod transport;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::RwLock;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use kubechain_types::PublicKey;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use config::{MAX_PEER_ADDRESS, MAX_PEERS, NetworkConfig, Peer, parse_peer_list};
pub use frame::{Frame, Inbound};
pub use handshake::{
    Credentials, HANDSHAKE_MAX_MESSAGE_BYTES, HANDSHAKE_TIMEOUT, HandshakeError, Hello, NOISE_PARAMS,
    NOISE_PROLOGUE, Role, binding, check_hello, handshake, handshake_codec,
};
pub use stats::Stats;
pub use transport::{
    LinkError, LinkReceiver, LinkSender, MAX_CHUNK_PLAINTEXT, MAX_NOISE_MESSAGE, SecureLink,
};

use link::{PeerHandle, Shared};

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("cannot listen on {address}: {source}")]
    Listen { address: SocketAddr, source: std::io::Error },
}

/// Handle to the running links; dropping it stops them.
#[derive(Debug)]
pub struct Network {
    shared: Arc<Shared>,
    local_address: SocketAddr,
}

impl Drop for Network {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

impl Network {
    /// Listens, dials, and delivers authenticated frames to `inbound`. The channel is unbounded
    /// because each peer's share of it is: see [`NetworkConfig::inbound_frames`].
    pub async fn start(
        config: NetworkConfig,
        inbound: mpsc::UnboundedSender<Inbound>,
    ) -> Result<Network, NetworkError> {
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| NetworkError::Listen { address: config.listen, source })?;
        let local_address = listener
            .local_addr()
            .map_err(|source| NetworkError::Listen { address: config.listen, source })?;
        let shared = Arc::new(Shared {
            chain_id: config.chain_id.clone(),
            key: config.key.clone(),
            max_frame_bytes: config.max_frame_bytes,
            queue_frames: config.queue_frames,
            queue_bytes: config.queue_bytes,
            inbound_frames: config.inbound_frames,
            inbound_bytes: config.inbound_bytes,
            addresses: RwLock::new(
                config.peers.iter().map(|peer| (peer.key, peer.address.clone())).collect(),
            ),
            validators: RwLock::new(HashSet::new()),
            peers: RwLock::new(HashMap::new()),
            stats: Arc::new(Stats::default()),
            inbound,
            runtime: tokio::runtime::Handle::current(),
            shutdown: CancellationToken::new(),
        });
        let network = Network { shared: shared.clone(), local_address };
        network.set_validators(&config.validators);
        tokio::spawn(link::accept(listener, shared));
        Ok(network)
    }

    pub fn local_address(&self) -> SocketAddr {
        self.local_address
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.shared.stats
    }

    /// Makes `validators` the set in force. Validators that left (and are no configured peer)
    /// are disconnected at once, and refused from then on; ones that joined are accepted, and
    /// dialled when this node has the smaller key and an address for them. Frames queued for a
    /// peer that stays are kept. Callable from any thread or runtime.
    pub fn set_validators(&self, validators: &[PublicKey]) {
        if let Ok(mut current) = self.shared.validators.write() {
            *current = validators.iter().copied().collect();
        }
        relink(&self.shared, &HashSet::new());
    }

    /// See [`PeerBook::set_peers`].
    pub fn set_peers(&self, peers: &[Peer]) {
        set_peers(&self.shared, peers);
    }

    /// A handle that changes the configured peers from any task while the network runs.
    pub fn peer_book(&self) -> PeerBook {
        PeerBook { shared: self.shared.clone() }
    }

    /// The peers this node links to now (validators and learners, without itself).
    pub fn peers(&self) -> Vec<PublicKey> {
        let mut keys: Vec<PublicKey> =
            self.shared.peers.read().map(|peers| peers.keys().copied().collect()).unwrap_or_default();
        keys.sort();
        keys
    }

    fn encode(&self, frame: &Frame) -> Option<Bytes> {
        let bytes = kubechain_types::encoding::encode(frame);
        if bytes.len() > self.shared.max_frame_bytes {
            Stats::count(&self.shared.stats.dropped_oversized);
            return None;
        }
        Some(Bytes::from(bytes))
    }

    fn enqueue(&self, peer: &PeerHandle, bytes: Bytes) {
        let stats = &self.shared.stats;
        let length = bytes.len();
        let before = peer.queued_bytes.fetch_add(length, Ordering::Relaxed);
        // A frame larger than the bound alone still goes when nothing else waits.
        if before > 0 && before + length > self.shared.queue_bytes {
            peer.queued_bytes.fetch_sub(length, Ordering::Relaxed);
            Stats::count(&stats.dropped_queue_bytes);
            return;
        }
        stats.outbox_bytes.fetch_add(length, Ordering::Relaxed);
        if peer.outbox.try_send(bytes).is_err() {
            // A slow or absent peer must not hold up consensus; it catches up by state transfer.
            peer.queued_bytes.fetch_sub(length, Ordering::Relaxed);
            stats.outbox_bytes.fetch_sub(length, Ordering::Relaxed);
            Stats::count(&stats.dropped_queue_full);
        }
    }

    /// Queues `frame` for `to`; never blocks. Frames for a key outside the set are dropped.
    pub fn send(&self, to: &PublicKey, frame: &Frame) {
        if let Some(bytes) = self.encode(frame)
            && let Ok(peers) = self.shared.peers.read()
            && let Some(peer) = peers.get(to)
        {
            self.enqueue(peer, bytes);
        }
    }

    /// Queues `frame` for every peer; encodes it once.
    pub fn broadcast(&self, frame: &Frame) {
        if let Some(bytes) = self.encode(frame)
            && let Ok(peers) = self.shared.peers.read()
        {
            for peer in peers.values() {
                self.enqueue(peer, bytes.clone());
            }
        }
    }
}

/// Changes the configured peer addresses of a running [`Network`] (a reloaded config file).
#[derive(Clone, Debug)]
pub struct PeerBook {
    shared: Arc<Shared>,
}

impl PeerBook {
    /// Replaces the configured peer addresses. A peer whose address changed is linked afresh
    /// (its queued frames are dropped); a key no longer configured and not a validator is
    /// disconnected; a new one is linked.
    pub fn set_peers(&self, peers: &[Peer]) {
        set_peers(&self.shared, peers);
    }
}

fn set_peers(shared: &Arc<Shared>, peers: &[Peer]) {
    let wanted: HashMap<PublicKey, String> =
        peers.iter().map(|peer| (peer.key, peer.address.clone())).collect();
    let Ok(mut addresses) = shared.addresses.write() else { return };
    // Changed, gained or lost an address: its task dials (or waits) by the address it had.
    let readdressed: HashSet<PublicKey> = wanted
        .keys()
        .chain(addresses.keys())
        .filter(|key| addresses.get(*key) != wanted.get(*key))
        .copied()
        .collect();
    *addresses = wanted;
    drop(addresses);
    relink(shared, &readdressed);
}

/// Links to every validator and configured peer but this node, and to no one else;
/// `readdressed` peers are linked afresh.
fn relink(shared: &Arc<Shared>, readdressed: &HashSet<PublicKey>) {
    let me = shared.key.public_key();
    // The set and the addresses are read under the peers lock: of two relinks racing (a set
    // change and a peers file reload), the later one sees both changes.
    let Ok(mut peers) = shared.peers.write() else { return };
    let mut wanted: HashSet<PublicKey> =
        shared.validators.read().map(|validators| validators.clone()).unwrap_or_default();
    if let Ok(addresses) = shared.addresses.read() {
        wanted.extend(addresses.keys().copied());
    }
    wanted.remove(&me);
    peers.retain(|key, peer| {
        let stays = wanted.contains(key) && !readdressed.contains(key);
        if !stays {
            if wanted.contains(key) {
                tracing::info!(peer = %key, "peer address changed: linking afresh");
            } else {
                tracing::info!(peer = %key, "neither a validator nor a configured peer now: disconnecting");
                Stats::count(&shared.stats.removed_peers);
            }
            peer.stop();
        }
        stays
    });
    for key in wanted {
        if let std::collections::hash_map::Entry::Vacant(entry) = peers.entry(key) {
            tracing::info!(peer = %key, "a validator or configured peer: linking");
            entry.insert(link::spawn_peer(shared, key));
        }
    }
}

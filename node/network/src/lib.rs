//! Authenticated links between validators.
//!
//! Each pair of validators keeps one TCP connection. At connect both sides prove their validator
//! key: each sends a fresh random challenge and signs the other's, bound to the chain id and both
//! keys, so a recorded handshake cannot be replayed to another node, chain or session. After
//! that, frames are length-prefixed Borsh [`Frame`]s up to a maximum size. A peer that sends
//! something oversized or malformed is disconnected and counted; nothing it sends can crash the
//! node. The validator with the smaller key dials (with exponential back-off); both accept.

mod config;
mod frame;
mod handshake;
mod link;
mod stats;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use kubechain_types::PublicKey;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use config::{NetworkConfig, Peer};
pub use frame::{Frame, Inbound};
pub use handshake::HandshakeError;
pub use stats::Stats;

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("cannot listen on {address}: {source}")]
    Listen { address: SocketAddr, source: std::io::Error },
}

/// Handle to the running links; dropping it stops them.
#[derive(Debug)]
pub struct Network {
    outboxes: HashMap<PublicKey, mpsc::Sender<Bytes>>,
    stats: Arc<Stats>,
    local_address: SocketAddr,
    max_frame_bytes: usize,
    shutdown: CancellationToken,
}

impl Drop for Network {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Network {
    /// Listens, dials, and delivers authenticated frames to `inbound`.
    pub async fn start(
        config: NetworkConfig,
        inbound: mpsc::Sender<Inbound>,
    ) -> Result<Network, NetworkError> {
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| NetworkError::Listen { address: config.listen, source })?;
        let local_address = listener
            .local_addr()
            .map_err(|source| NetworkError::Listen { address: config.listen, source })?;
        let stats = Arc::new(Stats::default());
        let shutdown = CancellationToken::new();
        let me = config.key.public_key();
        let settings = Arc::new(link::Settings {
            chain_id: config.chain_id.clone(),
            key: config.key.clone(),
            allowed: config.peers.iter().map(|peer| peer.key).filter(|key| *key != me).collect(),
            max_frame_bytes: config.max_frame_bytes,
        });

        let mut outboxes = HashMap::new();
        let mut handoffs = HashMap::new();
        for peer in config.peers.iter().filter(|peer| peer.key != me) {
            let (outbox, outbox_rx) = mpsc::channel(config.queue_frames.max(1));
            let (handoff, handoff_rx) = mpsc::channel(4);
            outboxes.insert(peer.key, outbox);
            handoffs.insert(peer.key, handoff);
            let dials = me < peer.key;
            tokio::spawn(link::run_peer(
                settings.clone(),
                peer.clone(),
                dials,
                outbox_rx,
                handoff_rx,
                inbound.clone(),
                stats.clone(),
                shutdown.clone(),
            ));
        }
        tokio::spawn(link::accept(listener, settings, handoffs, stats.clone(), shutdown.clone()));
        Ok(Network { outboxes, stats, local_address, max_frame_bytes: config.max_frame_bytes, shutdown })
    }

    pub fn local_address(&self) -> SocketAddr {
        self.local_address
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    fn encode(&self, frame: &Frame) -> Option<Bytes> {
        let bytes = kubechain_types::encoding::encode(frame);
        if bytes.len() > self.max_frame_bytes {
            Stats::count(&self.stats.dropped_oversized);
            return None;
        }
        Some(Bytes::from(bytes))
    }

    fn enqueue(&self, to: &PublicKey, bytes: Bytes) {
        if let Some(outbox) = self.outboxes.get(to)
            && outbox.try_send(bytes).is_err()
        {
            // A slow or absent peer must not hold up consensus; it catches up by state transfer.
            Stats::count(&self.stats.dropped_queue_full);
        }
    }

    /// Queues `frame` for `to`; never blocks.
    pub fn send(&self, to: &PublicKey, frame: &Frame) {
        if let Some(bytes) = self.encode(frame) {
            self.enqueue(to, bytes);
        }
    }

    /// Queues `frame` for every peer; encodes it once.
    pub fn broadcast(&self, frame: &Frame) {
        if let Some(bytes) = self.encode(frame) {
            for to in self.outboxes.keys() {
                self.enqueue(to, bytes.clone());
            }
        }
    }
}

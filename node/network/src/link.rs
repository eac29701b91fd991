//! One task per peer keeps its link up; one task accepts incoming connections.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Sink, Stream};
use kubechain_types::{PublicKey, SigningKey};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::frame::{Frame, Inbound, InboundPermit};
use crate::handshake::{Credentials, HandshakeError, Role, handshake};
use crate::stats::Stats;
use crate::transport::{FrameReader, FrameWriter, LinkError, SecureLink};

const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Incoming connections authenticating at once, at most, and at most this many from one source
/// address. A connection beyond either is closed at once (and counted): unauthenticated sockets
/// cannot pile up, one address cannot take every slot, and nothing already in progress is ever
/// evicted. A slot is held for at most `HANDSHAKE_TIMEOUT`; an honest handshake frees it within
/// a few round trips.
pub(crate) const HANDSHAKE_SLOTS: usize = 64;
pub(crate) const HANDSHAKE_SLOTS_PER_ADDRESS: usize = 4;
/// Links handed to a peer's task and not yet taken up.
const HANDOFF_QUEUE: usize = 4;

/// What every link task shares with the [`crate::Network`] handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub chain_id: String,
    pub key: SigningKey,
    pub max_frame_bytes: usize,
    pub queue_frames: usize,
    pub queue_bytes: usize,
    pub inbound_frames: usize,
    pub inbound_bytes: usize,
    /// Where to dial each peer we know an address for (validators, and learners: nodes that
    /// follow the chain without voting, e.g. a validator syncing before it is added).
    pub addresses: RwLock<HashMap<PublicKey, String>>,
    /// The validator set in force (this node's own key may be in it).
    pub validators: RwLock<HashSet<PublicKey>>,
    /// The peers we link to now (never this node), with their outboxes: the validators and
    /// every key with a configured address.
    pub peers: RwLock<HashMap<PublicKey, PeerHandle>>,
    pub stats: Arc<Stats>,
    pub inbound: mpsc::UnboundedSender<Inbound>,
    /// The runtime the network started on: peers added later run there too, not on the caller's
    /// (the consensus thread has a runtime of its own).
    pub runtime: tokio::runtime::Handle,
    pub shutdown: CancellationToken,
}

impl Shared {
    pub fn is_peer(&self, key: &PublicKey) -> bool {
        self.peers.read().is_ok_and(|peers| peers.contains_key(key))
    }

    fn handoff(&self, key: &PublicKey) -> Option<mpsc::Sender<SecureLink>> {
        self.peers.read().ok()?.get(key).map(|peer| peer.handoff.clone())
    }
}

/// The network's side of one peer's task.
#[derive(Debug)]
pub(crate) struct PeerHandle {
    pub outbox: mpsc::Sender<Bytes>,
    /// Bytes in `outbox` plus the frame being written.
    pub queued_bytes: Arc<AtomicUsize>,
    handoff: mpsc::Sender<SecureLink>,
    stop: CancellationToken,
}

impl PeerHandle {
    /// Ends the peer's task, and with it the link.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

/// Starts the task for peer `key`; it dials when this node has the smaller key and an
/// address for it, and otherwise waits for it to dial.
pub(crate) fn spawn_peer(shared: &Arc<Shared>, key: PublicKey) -> PeerHandle {
    let (outbox, outbox_rx) = mpsc::channel(shared.queue_frames.max(1));
    let (handoff, handoff_rx) = mpsc::channel(HANDOFF_QUEUE);
    let stop = shared.shutdown.child_token();
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    let task = PeerTask {
        shared: shared.clone(),
        key,
        address: shared
            .addresses
            .read()
            .ok()
            .and_then(|addresses| addresses.get(&key).cloned())
            .filter(|_| shared.key.public_key() < key),
        outbox: outbox_rx,
        handoff: handoff_rx,
        queued_bytes: queued_bytes.clone(),
        inbound_frames: Arc::new(Semaphore::new(shared.inbound_frames.max(1))),
        inbound_bytes: Arc::new(Semaphore::new(shared.inbound_bytes.max(1))),
        stop: stop.clone(),
    };
    shared.runtime.spawn(task.run());
    PeerHandle { outbox, queued_bytes, handoff, stop }
}

fn count_handshake_failure(stats: &Stats, error: &HandshakeError) {
    let counter = match error {
        HandshakeError::UnknownKey(_) | HandshakeError::UnexpectedKey { .. } => &stats.handshake_unknown_key,
        HandshakeError::BadSignature => &stats.handshake_bad_signature,
        HandshakeError::Io(error) if error.kind() == std::io::ErrorKind::InvalidData => {
            &stats.dropped_oversized
        }
        _ => &stats.handshake_other,
    };
    Stats::count(counter);
}

/// Handshakes in progress, overall and by source address.
#[derive(Debug, Default)]
struct Slots {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// A taken handshake slot; freed on drop.
struct Slot {
    slots: Arc<Mutex<Slots>>,
    address: IpAddr,
}

impl Slot {
    fn take(slots: &Arc<Mutex<Slots>>, address: IpAddr) -> Option<Slot> {
        let mut taken = slots.lock().ok()?;
        let from_address = taken.by_address.get(&address).copied().unwrap_or(0);
        if taken.total >= HANDSHAKE_SLOTS || from_address >= HANDSHAKE_SLOTS_PER_ADDRESS {
            return None;
        }
        taken.total += 1;
        taken.by_address.insert(address, from_address + 1);
        Some(Slot { slots: slots.clone(), address })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut taken) = self.slots.lock() {
            taken.total -= 1;
            if let Some(count) = taken.by_address.get_mut(&self.address) {
                *count -= 1;
                if *count == 0 {
                    taken.by_address.remove(&self.address);
                }
            }
        }
    }
}

fn credentials<'a>(shared: &'a Shared, accepts: &'a (dyn Fn(&PublicKey) -> bool + Sync)) -> Credentials<'a> {
    Credentials {
        chain_id: &shared.chain_id,
        key: &shared.key,
        accepts,
        max_frame_bytes: shared.max_frame_bytes,
    }
}

/// Accepts connections, authenticates them (each in its own task, so a slow peer holds up no
/// one), and hands each link to its peer's task.
pub(crate) async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(Mutex::new(Slots::default()));
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, address) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(%error, "accepting a peer connection failed");
                tokio::time::sleep(FIRST_RETRY).await;
                continue;
            }
        };
        let Some(slot) = Slot::take(&slots, address.ip()) else {
            tracing::debug!(%address, "every handshake slot for this address or overall is taken: closing");
            Stats::count(&shared.stats.handshake_busy);
            drop(stream);
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let accepts = |key: &PublicKey| shared.is_peer(key);
            let authenticated =
                handshake(stream, Role::Responder, &credentials(&shared, &accepts), None).await;
            drop(slot);
            match authenticated {
                Ok(link) => {
                    // The validator may have left the set since the handshake checked it.
                    if let Some(handoff) = shared.handoff(&link.peer()) {
                        let _ = handoff.send(link).await;
                    }
                }
                Err(error) => {
                    tracing::debug!(%address, %error, "refused an incoming peer");
                    count_handshake_failure(&shared.stats, &error);
                }
            }
        });
    }
}

struct PeerTask {
    shared: Arc<Shared>,
    key: PublicKey,
    /// Set when this node dials the peer.
    address: Option<String>,
    outbox: mpsc::Receiver<Bytes>,
    handoff: mpsc::Receiver<SecureLink>,
    queued_bytes: Arc<AtomicUsize>,
    inbound_frames: Arc<Semaphore>,
    inbound_bytes: Arc<Semaphore>,
    stop: CancellationToken,
}

enum Outcome {
    /// The peer connected again; carry on over the new link.
    Replaced(SecureLink),
    Broken,
    Stopped,
}

impl PeerTask {
    /// Keeps the link to the peer up and moves frames both ways, until stopped.
    async fn run(mut self) {
        let mut next: Option<SecureLink> = None;
        loop {
            let link = match next.take() {
                Some(link) => link,
                None => {
                    let (shared, key, address) = (&self.shared, self.key, &self.address);
                    let dialing = async move {
                        match address {
                            Some(address) => dial_until_connected(shared, key, address).await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        _ = self.stop.cancelled() => break,
                        Some(link) = self.handoff.recv() => link,
                        link = dialing => link,
                    }
                }
            };
            tracing::debug!(peer = ?self.key, "peer link up");
            self.shared.stats.connected.fetch_add(1, Ordering::Relaxed);
            let outcome = self.serve(link).await;
            self.shared.stats.connected.fetch_sub(1, Ordering::Relaxed);
            match outcome {
                Outcome::Replaced(link) => next = Some(link),
                Outcome::Broken => tokio::time::sleep(FIRST_RETRY).await,
                Outcome::Stopped => break,
            }
        }
        // Whatever is still queued goes with the task.
        let left = self.queued_bytes.swap(0, Ordering::Relaxed);
        self.shared.stats.outbox_bytes.fetch_sub(left, Ordering::Relaxed);
    }

    /// Moves frames both ways over `link` until it breaks, is replaced, or the peer is stopped.
    /// Reading and writing run side by side: a peer slow to read does not stop us reading it,
    /// and a full inbound budget does not stop us writing.
    async fn serve(&mut self, link: SecureLink) -> Outcome {
        let (writer, reader) = link.split();
        let reading = read_frames(
            reader,
            self.key,
            &self.shared,
            self.inbound_frames.clone(),
            self.inbound_bytes.clone(),
        );
        let writing = write_frames(writer, &mut self.outbox, &self.queued_bytes, &self.shared.stats);
        tokio::select! {
            _ = self.stop.cancelled() => Outcome::Stopped,
            Some(newer) = self.handoff.recv() => Outcome::Replaced(newer),
            outcome = reading => outcome,
            outcome = writing => outcome,
        }
    }
}

async fn dial(shared: &Shared, key: PublicKey, address: &str) -> Option<SecureLink> {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::debug!(%address, %error, "dialing a peer failed");
            return None;
        }
        Err(_) => return None,
    };
    let _ = stream.set_nodelay(true);
    let accepts = |key: &PublicKey| shared.is_peer(key);
    let credentials = credentials(shared, &accepts);
    match handshake(stream, Role::Initiator, &credentials, Some(key)).await {
        Ok(link) => Some(link),
        Err(error) => {
            tracing::warn!(%address, %error, "peer failed the handshake");
            count_handshake_failure(&shared.stats, &error);
            None
        }
    }
}

/// Dials until it works, waiting longer after each failure.
async fn dial_until_connected(shared: &Shared, key: PublicKey, address: &str) -> SecureLink {
    let mut wait = FIRST_RETRY;
    loop {
        if let Some(link) = dial(shared, key, address).await {
            return link;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(LAST_RETRY);
    }
}

/// Delivers frames from `peer` until the link fails. Each frame holds a share of the peer's
/// inbound budget until the node has handled it.
async fn read_frames<S>(
    mut reader: FrameReader<S>,
    peer: PublicKey,
    shared: &Shared,
    frames: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
) -> Outcome
where
    S: Stream<Item = std::io::Result<bytes::BytesMut>> + Unpin,
{
    let stats = &shared.stats;
    loop {
        let received = match reader.receive().await {
            Ok(received) => received,
            Err(error) => {
                let counter = match &error {
                    LinkError::Undecryptable => Some(&stats.dropped_undecryptable),
                    LinkError::Oversized { .. } => Some(&stats.dropped_oversized),
                    LinkError::Malformed(_) => Some(&stats.dropped_malformed),
                    LinkError::Io(error) if error.kind() == std::io::ErrorKind::InvalidData => {
                        Some(&stats.dropped_oversized)
                    }
                    _ => None,
                };
                if let Some(counter) = counter {
                    tracing::warn!(?peer, %error, "dropping the link");
                    Stats::count(counter);
                }
                return Outcome::Broken;
            }
        };
        let frame = match Frame::decode(&received) {
            Ok(frame) => frame,
            Err(error) => {
                tracing::warn!(?peer, %error, "malformed frame: dropping the link");
                Stats::count(&stats.dropped_malformed);
                return Outcome::Broken;
            }
        };
        let cost = u32::try_from(received.len().clamp(1, shared.inbound_bytes.max(1))).unwrap_or(u32::MAX);
        drop(received);
        let (Ok(frame_permit), Ok(byte_permits)) =
            (frames.clone().acquire_owned().await, bytes.clone().acquire_many_owned(cost).await)
        else {
            return Outcome::Stopped;
        };
        Stats::count(&stats.frames_in);
        let permit = InboundPermit::new(frame_permit, byte_permits);
        if shared.inbound.send(Inbound::with_permit(peer, frame, permit)).is_err() {
            return Outcome::Stopped;
        }
    }
}

/// Writes queued frames until the link fails.
async fn write_frames<S>(
    mut writer: FrameWriter<S>,
    outbox: &mut mpsc::Receiver<Bytes>,
    queued_bytes: &AtomicUsize,
    stats: &Stats,
) -> Outcome
where
    S: Sink<Bytes, Error = std::io::Error> + Unpin,
{
    while let Some(bytes) = outbox.recv().await {
        // Counted out whether or not the write completes: the frame is gone either way.
        let _written = Dequeued { bytes: bytes.len(), queued_bytes, stats };
        if writer.send(&bytes).await.is_err() {
            return Outcome::Broken;
        }
        Stats::count(&stats.frames_out);
    }
    Outcome::Stopped
}

/// Takes a frame's bytes off its peer's count (and the total) when dropped.
struct Dequeued<'a> {
    bytes: usize,
    queued_bytes: &'a AtomicUsize,
    stats: &'a Stats,
}

impl Drop for Dequeued<'_> {
    fn drop(&mut self) {
        self.queued_bytes.fetch_sub(self.bytes, Ordering::Relaxed);
        self.stats.outbox_bytes.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

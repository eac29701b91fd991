//! One task per peer keeps its link up; one task accepts incoming connections.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use kubechain_types::encoding::decode;
use kubechain_types::{PublicKey, SigningKey};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Peer;
use crate::frame::{Frame, Inbound};
use crate::handshake::{HandshakeError, Link, framed, handshake};
use crate::stats::Stats;

const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Incoming connections authenticating at once, at most. Beyond it the OLDEST is dropped (and
/// counted): unauthenticated sockets cannot pile up, and a stranger holding slots open cannot lock
/// validators out, since an honest handshake completes within a round trip.
const CONCURRENT_HANDSHAKES: usize = 32;

#[derive(Debug)]
pub(crate) struct Settings {
    pub chain_id: String,
    pub key: SigningKey,
    pub allowed: HashSet<PublicKey>,
    pub max_frame_bytes: usize,
}

fn count_handshake_failure(stats: &Stats, error: &HandshakeError) {
    let counter = match error {
        HandshakeError::UnknownKey(_) | HandshakeError::UnexpectedKey { .. } => &stats.handshake_unknown_key,
        HandshakeError::BadSignature => &stats.handshake_bad_signature,
        HandshakeError::Io(error) if error.kind() == ErrorKind::InvalidData => &stats.dropped_oversized,
        _ => &stats.handshake_other,
    };
    Stats::count(counter);
}

/// Accepts connections, authenticates them (each in its own task, so a slow peer holds up no
/// one), and hands each link to its peer's task.
pub(crate) async fn accept(
    listener: TcpListener,
    settings: Arc<Settings>,
    handoffs: HashMap<PublicKey, mpsc::Sender<Link>>,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
) {
    let handoffs = Arc::new(handoffs);
    let mut handshakes: VecDeque<JoinHandle<()>> = VecDeque::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
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
        handshakes.retain(|handshake| !handshake.is_finished());
        if handshakes.len() >= CONCURRENT_HANDSHAKES
            && let Some(oldest) = handshakes.pop_front()
        {
            tracing::debug!("too many handshakes in progress: dropping the oldest");
            oldest.abort();
            Stats::count(&stats.handshake_other);
        }
        let (settings, handoffs, stats) = (settings.clone(), handoffs.clone(), stats.clone());
        handshakes.push_back(tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let mut link = framed(stream);
            let authenticated = handshake(
                &mut link,
                &settings.chain_id,
                &settings.key,
                &settings.allowed,
                None,
                settings.max_frame_bytes,
            )
            .await;
            match authenticated {
                Ok(peer) => {
                    if let Some(handoff) = handoffs.get(&peer) {
                        let _ = handoff.send(link).await;
                    }
                }
                Err(error) => {
                    tracing::debug!(%address, %error, "refused an incoming peer");
                    count_handshake_failure(&stats, &error);
                }
            }
        }));
    }
}

async fn dial(settings: &Settings, peer: &Peer, stats: &Stats) -> Option<Link> {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&peer.address)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::debug!(address = %peer.address, %error, "dialing a peer failed");
            return None;
        }
        Err(_) => return None,
    };
    let _ = stream.set_nodelay(true);
    let mut link = framed(stream);
    let (chain_id, key, allowed) = (&settings.chain_id, &settings.key, &settings.allowed);
    match handshake(&mut link, chain_id, key, allowed, Some(peer.key), settings.max_frame_bytes).await {
        Ok(_) => Some(link),
        Err(error) => {
            tracing::warn!(address = %peer.address, %error, "peer failed the handshake");
            count_handshake_failure(stats, &error);
            None
        }
    }
}

/// Dials until it works, waiting longer after each failure.
async fn dial_until_connected(settings: &Settings, peer: &Peer, stats: &Stats) -> Link {
    let mut wait = FIRST_RETRY;
    loop {
        if let Some(link) = dial(settings, peer, stats).await {
            return link;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(LAST_RETRY);
    }
}

/// Keeps the link to `peer` up and moves frames both ways.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_peer(
    settings: Arc<Settings>,
    peer: Peer,
    dials: bool,
    mut outbox: mpsc::Receiver<Bytes>,
    mut handoff: mpsc::Receiver<Link>,
    inbound: mpsc::Sender<Inbound>,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
) {
    let mut next: Option<Link> = None;
    loop {
        let link = match next.take() {
            Some(link) => link,
            None => {
                let dialing = async {
                    if dials {
                        dial_until_connected(&settings, &peer, &stats).await
                    } else {
                        std::future::pending().await
                    }
                };
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    Some(link) = handoff.recv() => link,
                    link = dialing => link,
                }
            }
        };
        tracing::debug!(peer = ?peer.key, "peer link up");
        stats.connected.fetch_add(1, Ordering::Relaxed);
        let outcome = serve(link, &peer, &mut outbox, &mut handoff, &inbound, &stats, &shutdown).await;
        stats.connected.fetch_sub(1, Ordering::Relaxed);
        match outcome {
            Outcome::Replaced(link) => next = Some(link),
            Outcome::Broken => tokio::time::sleep(FIRST_RETRY).await,
            Outcome::Stopped => return,
        }
    }
}

enum Outcome {
    /// The peer connected again; carry on over the new link.
    Replaced(Link),
    Broken,
    Stopped,
}

async fn serve(
    link: Link,
    peer: &Peer,
    outbox: &mut mpsc::Receiver<Bytes>,
    handoff: &mut mpsc::Receiver<Link>,
    inbound: &mpsc::Sender<Inbound>,
    stats: &Stats,
    shutdown: &CancellationToken,
) -> Outcome {
    let (mut sink, mut stream) = link.split();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Outcome::Stopped,
            Some(newer) = handoff.recv() => return Outcome::Replaced(newer),
            received = stream.next() => match received {
                Some(Ok(bytes)) => match decode::<Frame>(&bytes) {
                    Ok(frame) => {
                        Stats::count(&stats.frames_in);
                        if inbound.send(Inbound { from: peer.key, frame }).await.is_err() {
                            return Outcome::Stopped;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(peer = ?peer.key, %error, "malformed frame: dropping the link");
                        Stats::count(&stats.dropped_malformed);
                        return Outcome::Broken;
                    }
                },
                Some(Err(error)) => {
                    if error.kind() == ErrorKind::InvalidData {
                        tracing::warn!(peer = ?peer.key, %error, "oversized frame: dropping the link");
                        Stats::count(&stats.dropped_oversized);
                    }
                    return Outcome::Broken;
                }
                None => return Outcome::Broken,
            },
            Some(bytes) = outbox.recv() => {
                if sink.send(bytes).await.is_err() {
                    return Outcome::Broken;
                }
                Stats::count(&stats.frames_out);
            }
        }
    }
}

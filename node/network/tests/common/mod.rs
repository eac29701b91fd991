//! Helpers for the link tests: nodes on loopback with ephemeral ports, waiting on counters, and an
//! on-path relay that can read and tamper with what it forwards.

#![allow(dead_code)] // each test binary uses its own part of this
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kubechain_consensus::Message;
use kubechain_network::{Credentials, Frame, Inbound, Network, NetworkConfig, Peer, Role, SecureLink};
use kubechain_types::{Operation, PublicKey, SigningKey, Transaction, TxBody};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

pub const CHAIN: &str = "net-test";
pub const WAIT: Duration = Duration::from_secs(10);

pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_seed([seed; 32])
}

/// Two keys, the first smaller (so it is the one that dials).
pub fn ordered_keys(first: u8, second: u8) -> (SigningKey, SigningKey) {
    let (a, b) = (key(first), key(second));
    if a.public_key() < b.public_key() { (a, b) } else { (b, a) }
}

/// A free loopback port, so nodes can know each other's address up front. Drawn below the
/// kernel's ephemeral range (32768 and up): a port handed out by `bind(0)` and released could be
/// taken as the source port of any test's outgoing connection before the node binds it.
pub fn free_port() -> SocketAddr {
    use std::hash::{BuildHasher, RandomState};
    loop {
        let draw = RandomState::new().hash_one(std::time::Instant::now());
        let port = 10_000 + (draw % 20_000) as u16;
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            return listener.local_addr().unwrap();
        }
    }
}

/// A config whose validators are exactly the keys of `peers` (with this node among them).
pub fn config(me: &SigningKey, listen: SocketAddr, peers: &[(PublicKey, SocketAddr)]) -> NetworkConfig {
    NetworkConfig {
        chain_id: CHAIN.into(),
        key: me.clone(),
        listen,
        validators: peers.iter().map(|(key, _)| *key).collect(),
        peers: peers.iter().map(|(key, address)| Peer { key: *key, address: address.to_string() }).collect(),
        max_frame_bytes: 64 * 1024,
        queue_frames: 64,
        queue_bytes: NetworkConfig::DEFAULT_QUEUE_BYTES,
        inbound_frames: 64,
        inbound_bytes: NetworkConfig::DEFAULT_INBOUND_BYTES,
    }
}

pub fn request(height: u64) -> Frame {
    Frame::Consensus(Message::StateRequest { from_height: height })
}

/// A transaction frame whose value is `value`.
pub fn transactions(value: Vec<u8>) -> Frame {
    let sender = key(200);
    let operations = vec![Operation::Put { key: "secret".into(), value }];
    let body = TxBody { chain_id: CHAIN.into(), sender: sender.public_key(), nonce: 1, operations };
    Frame::Transactions(vec![Transaction::new(body, &sender)])
}

pub struct Node {
    pub network: Network,
    pub inbound: mpsc::UnboundedReceiver<Inbound>,
    pub key: SigningKey,
}

impl Node {
    pub async fn start(config: NetworkConfig) -> Node {
        let key = config.key.clone();
        let (inbound_tx, inbound) = mpsc::unbounded_channel();
        let network = Network::start(config, inbound_tx).await.unwrap();
        Node { network, inbound, key }
    }

    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    pub fn address(&self) -> SocketAddr {
        self.network.local_address()
    }
}

pub async fn next(inbound: &mut mpsc::UnboundedReceiver<Inbound>) -> Inbound {
    tokio::time::timeout(WAIT, inbound.recv()).await.expect("a frame in time").expect("channel open")
}

/// Sends until the peer has it: the link may still be coming up.
pub async fn deliver(from: &Network, to: &mut Node, frame: Frame) -> Inbound {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        from.send(&to.public_key(), &frame);
        if let Ok(Some(received)) = tokio::time::timeout(Duration::from_millis(200), to.inbound.recv()).await
        {
            return received;
        }
        assert!(tokio::time::Instant::now() < deadline, "frame never arrived");
    }
}

/// Waits until `condition` holds (polling), failing after [`WAIT`].
pub async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until `counter` reaches `at_least`.
pub async fn counted(counter: &AtomicU64, at_least: u64, what: &str) {
    until(what, || counter.load(Ordering::Relaxed) >= at_least).await;
}

pub fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// Runs the client side of the handshake by hand, as `key`, accepting any peer key.
pub async fn handshake_as(
    key: &SigningKey,
    stream: TcpStream,
) -> Result<SecureLink, kubechain_network::HandshakeError> {
    let accepts = |_: &PublicKey| true;
    let credentials = Credentials { chain_id: CHAIN, key, accepts: &accepts, max_frame_bytes: 64 << 20 };
    kubechain_network::handshake(stream, Role::Initiator, &credentials, None).await
}

/// What an on-path relay does to the messages the dialling side sends, counted from 0 on each
/// connection (0: Noise `e`, 1: Noise `s, se`, 2: the signature, 3 on: frame chunks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tamper {
    Nothing,
    /// Flips one byte in the middle of message `n` (first connection only).
    FlipByte(usize),
    /// Sends message `n` twice (first connection only).
    Replay(usize),
    /// Sends message `n + 1` before message `n` (first connection only).
    Swap(usize),
}

/// A TCP proxy between a dialling node and the node it dials. It parses the `u16be` length
/// prefixes of the link so it can tamper with whole messages, and records every byte it relays.
pub struct Relay {
    pub address: SocketAddr,
    /// Everything relayed, both directions, all connections.
    pub seen: Arc<Mutex<Vec<u8>>>,
    pub connections: Arc<AtomicUsize>,
}

impl Relay {
    pub async fn start(target: SocketAddr, tamper: Tamper) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (seen_by_task, connections_by_task) = (seen.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let index = connections_by_task.fetch_add(1, Ordering::Relaxed);
                let tamper = if index == 0 { tamper } else { Tamper::Nothing };
                let Ok(server) = TcpStream::connect(target).await else { continue };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(forward(client_read, server_write, tamper, seen_by_task.clone()));
                tokio::spawn(forward(server_read, client_write, Tamper::Nothing, seen_by_task.clone()));
            }
        });
        Relay { address, seen, connections }
    }

    pub fn saw(&self, needle: &[u8]) -> bool {
        self.seen.lock().unwrap().windows(needle.len()).any(|window| window == needle)
    }
}

async fn read_message(from: &mut tokio::net::tcp::OwnedReadHalf) -> Option<Vec<u8>> {
    let mut length = [0u8; 2];
    from.read_exact(&mut length).await.ok()?;
    let mut message = vec![0u8; u16::from_be_bytes(length) as usize];
    from.read_exact(&mut message).await.ok()?;
    let mut whole = length.to_vec();
    whole.extend_from_slice(&message);
    Some(whole)
}

async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    tamper: Tamper,
    seen: Arc<Mutex<Vec<u8>>>,
) {
    let mut index = 0;
    let mut held: Option<Vec<u8>> = None;
    while let Some(mut message) = read_message(&mut from).await {
        seen.lock().unwrap().extend_from_slice(&message);
        let mut out = Vec::new();
        match tamper {
            Tamper::FlipByte(n) if n == index => {
                let middle = 2 + (message.len() - 2) / 2;
                message[middle] ^= 0x01;
                out.push(message);
            }
            Tamper::Replay(n) if n == index => {
                out.push(message.clone());
                out.push(message);
            }
            Tamper::Swap(n) if n == index => held = Some(message),
            Tamper::Swap(n) if n + 1 == index => {
                out.push(message);
                out.extend(held.take());
            }
            _ => out.push(message),
        }
        for message in out {
            if to.write_all(&message).await.is_err() {
                return;
            }
        }
        index += 1;
    }
}

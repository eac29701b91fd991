//! Real TCP links on loopback (ephemeral ports): handshake, delivery both ways, refusal of
//! strangers, oversized frames, reconnection.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use kubechain_consensus::Message;
use kubechain_network::{Frame, Inbound, Network, NetworkConfig, Peer};
use kubechain_types::encoding::encode;
use kubechain_types::{Domain, PublicKey, SigningKey};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

const CHAIN: &str = "net-test";
const WAIT: Duration = Duration::from_secs(10);

fn key(seed: u8) -> SigningKey {
    SigningKey::from_seed([seed; 32])
}

/// Reserves a free loopback port, so two nodes can know each other's address up front.
fn free_port() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

fn config(
    me: &SigningKey,
    listen: std::net::SocketAddr,
    peers: &[(PublicKey, std::net::SocketAddr)],
) -> NetworkConfig {
    NetworkConfig {
        chain_id: CHAIN.into(),
        key: me.clone(),
        listen,
        peers: peers.iter().map(|(key, address)| Peer { key: *key, address: address.to_string() }).collect(),
        max_frame_bytes: 64 * 1024,
        queue_frames: 64,
    }
}

fn request(height: u64) -> Frame {
    Frame::Consensus(Message::StateRequest { from_height: height })
}

async fn next(inbound: &mut mpsc::Receiver<Inbound>) -> Inbound {
    tokio::time::timeout(WAIT, inbound.recv()).await.expect("a frame in time").expect("channel open")
}

/// Sends until the peer has it: the link may still be coming up.
async fn deliver(
    from: &Network,
    to: &PublicKey,
    inbound: &mut mpsc::Receiver<Inbound>,
    frame: Frame,
) -> Inbound {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        from.send(to, &frame);
        if let Ok(Some(received)) = tokio::time::timeout(Duration::from_millis(200), inbound.recv()).await {
            return received;
        }
        assert!(tokio::time::Instant::now() < deadline, "frame never arrived");
    }
}

struct Pair {
    a: Network,
    b: Network,
    a_in: mpsc::Receiver<Inbound>,
    b_in: mpsc::Receiver<Inbound>,
    a_key: SigningKey,
    b_key: SigningKey,
    b_address: std::net::SocketAddr,
}

async fn pair() -> Pair {
    let (a_key, b_key) = (key(1), key(2));
    let (a_address, b_address) = (free_port(), free_port());
    let peers = [(a_key.public_key(), a_address), (b_key.public_key(), b_address)];
    let (a_tx, a_in) = mpsc::channel(64);
    let (b_tx, b_in) = mpsc::channel(64);
    let a = Network::start(config(&a_key, a_address, &peers), a_tx).await.unwrap();
    let b = Network::start(config(&b_key, b_address, &peers), b_tx).await.unwrap();
    Pair { a, b, a_in, b_in, a_key, b_key, b_address }
}

#[tokio::test]
async fn validators_authenticate_and_exchange_frames_both_ways() {
    let mut p = pair().await;
    let received = deliver(&p.a, &p.b_key.public_key(), &mut p.b_in, request(7)).await;
    assert_eq!(received.from, p.a_key.public_key());
    assert_eq!(received.frame, request(7));
    p.b.broadcast(&request(8));
    let back = next(&mut p.a_in).await;
    assert_eq!((back.from, back.frame), (p.b_key.public_key(), request(8)));
    assert_eq!(p.a.stats().connected_peers(), 1);
}

/// Performs the client side of the handshake by hand, as `key`.
async fn handshake_as(
    key: &SigningKey,
    address: std::net::SocketAddr,
    chain_id: &str,
) -> Framed<TcpStream, LengthDelimitedCodec> {
    let stream = TcpStream::connect(address).await.unwrap();
    let mut link = Framed::new(stream, LengthDelimitedCodec::new());
    let challenge = [9u8; 32];
    link.send(Bytes::from(encode(&(chain_id.to_string(), key.public_key(), challenge)))).await.unwrap();
    let theirs = link.next().await.unwrap().unwrap();
    let (_, their_key, their_challenge): (String, PublicKey, [u8; 32]) = borsh::from_slice(&theirs).unwrap();
    let proof =
        key.sign(Domain::PeerHandshake, chain_id, &encode(&(their_challenge, key.public_key(), their_key)));
    link.send(Bytes::from(encode(&proof))).await.unwrap();
    link
}

#[tokio::test]
async fn strangers_are_refused_and_counted() {
    let mut p = pair().await;
    let stranger = key(66);
    let mut link = handshake_as(&stranger, p.b_address, CHAIN).await;
    // The node closes the link instead of sending its proof.
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match link.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the node kept talking to a stranger");
    let deadline = tokio::time::Instant::now() + WAIT;
    while p.b.stats().handshake_unknown_key.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "refusal not counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The validators still talk.
    deliver(&p.a, &p.b_key.public_key(), &mut p.b_in, request(1)).await;
}

#[tokio::test]
async fn an_oversized_frame_drops_the_link_and_the_node_carries_on() {
    let mut p = pair().await;
    deliver(&p.a, &p.b_key.public_key(), &mut p.b_in, request(1)).await;
    // Pretend to be validator A on a second connection and send a frame over the limit.
    let mut link = handshake_as(&p.a_key, p.b_address, CHAIN).await;
    let _their_proof = link.next().await;
    link.send(Bytes::from(vec![0u8; 100 * 1024])).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while p.b.stats().dropped_oversized.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "oversized frame not counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The real A reconnects (A dials B, having the smaller key, or B waits for it) and delivers.
    let received = deliver(&p.a, &p.b_key.public_key(), &mut p.b_in, request(2)).await;
    assert_eq!(received.frame, request(2));
}

/// Waits until `counter` reaches `at_least`.
async fn counted(counter: &std::sync::atomic::AtomicU64, at_least: u64, what: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while counter.load(std::sync::atomic::Ordering::Relaxed) < at_least {
        assert!(tokio::time::Instant::now() < deadline, "{what} not counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn before_the_handshake_frames_are_tiny_and_sockets_few() {
    let mut p = pair().await;
    deliver(&p.a, &p.b_key.public_key(), &mut p.b_in, request(1)).await;
    // A stranger announces a 32 KiB frame, within the validators' own limit: refused at the
    // length prefix, before the handshake, without buffering it.
    let mut stranger = TcpStream::connect(p.b_address).await.unwrap();
    stranger.write_all(&(32u32 << 10).to_be_bytes()).await.unwrap();
    stranger.write_all(&[0; 2048]).await.unwrap();
    counted(&p.b.stats().dropped_oversized, 1, "an oversized first frame").await;
    // Silent connections hold handshake slots; beyond the limit the oldest are dropped.
    let mut silent = Vec::new();
    for _ in 0..48 {
        silent.push(TcpStream::connect(p.b_address).await.unwrap());
    }
    counted(&p.b.stats().handshake_other, 48 - 32, "dropped connections").await;
    // The validators' own link is untouched, and a validator connecting now still gets in
    // (its handshake is newer than every silent socket).
    deliver(&p.a, &p.b_key.public_key(), &mut p.b_in, request(2)).await;
    let mut fresh = handshake_as(&p.a_key, p.b_address, CHAIN).await;
    let proof = tokio::time::timeout(WAIT, fresh.next()).await.expect("the node answered");
    assert!(matches!(proof, Some(Ok(_))), "a validator was locked out by silent sockets");
}

#[tokio::test]
async fn a_restarted_peer_is_reconnected() {
    let mut p = pair().await;
    deliver(&p.a, &p.b_key.public_key(), &mut p.b_in, request(1)).await;
    let b_address = p.b_address;
    drop(p.b);
    drop(p.b_in);
    let peers = [(p.a_key.public_key(), p.a.local_address()), (p.b_key.public_key(), b_address)];
    let (b_tx, mut b_in) = mpsc::channel(64);
    // The old listener may take a moment to close: retry the bind.
    let deadline = tokio::time::Instant::now() + WAIT;
    let b = loop {
        match Network::start(config(&p.b_key, b_address, &peers), b_tx.clone()).await {
            Ok(network) => break network,
            Err(error) => {
                assert!(tokio::time::Instant::now() < deadline, "{error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let received = deliver(&p.a, &p.b_key.public_key(), &mut b_in, request(3)).await;
    assert_eq!(received.frame, request(3));
    b.broadcast(&request(4));
    assert_eq!(next(&mut p.a_in).await.frame, request(4));
}

//! Real TCP links on loopback (ephemeral ports): handshake, delivery both ways, refusal of
//! strangers, oversized frames, reconnection, and links that follow the validator set.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::net::SocketAddr;

use common::*;
use kubechain_network::{Network, Peer};
use kubechain_types::SigningKey;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

struct Pair {
    a: Node,
    b: Node,
    b_address: SocketAddr,
}

async fn pair() -> Pair {
    let (a_key, b_key) = ordered_keys(1, 2);
    let (a_address, b_address) = (free_port(), free_port());
    let peers = [(a_key.public_key(), a_address), (b_key.public_key(), b_address)];
    let a = Node::start(config(&a_key, a_address, &peers)).await;
    let b = Node::start(config(&b_key, b_address, &peers)).await;
    Pair { a, b, b_address }
}

#[tokio::test]
async fn validators_authenticate_and_exchange_frames_both_ways() {
    let mut p = pair().await;
    let received = deliver(&p.a.network, &mut p.b, request(7)).await;
    assert_eq!(received.from, p.a.public_key());
    assert_eq!(received.frame, request(7));
    p.b.network.broadcast(&request(8));
    let back = next(&mut p.a.inbound).await;
    assert_eq!((back.from, back.frame), (p.b.public_key(), request(8)));
    assert_eq!(p.a.network.stats().connected_peers(), 1);
}

#[tokio::test]
async fn strangers_are_refused_and_counted() {
    let mut p = pair().await;
    let stranger = key(66);
    let stream = TcpStream::connect(p.b_address).await.unwrap();
    // The node closes the link instead of sending its proof.
    let refused =
        tokio::time::timeout(WAIT, handshake_as(&stranger, stream)).await.expect("an answer in time");
    assert!(refused.is_err(), "the node completed a handshake with a stranger");
    counted(&p.b.network.stats().handshake_unknown_key, 1, "the refusal").await;
    // The validators still talk.
    deliver(&p.a.network, &mut p.b, request(1)).await;
}

#[tokio::test]
async fn an_oversized_frame_drops_the_link_and_the_node_carries_on() {
    let mut p = pair().await;
    deliver(&p.a.network, &mut p.b, request(1)).await;
    // Pretend to be validator A on a second connection and send a frame over the limit.
    let stream = TcpStream::connect(p.b_address).await.unwrap();
    let mut link = handshake_as(&p.a.key, stream).await.unwrap();
    link.send_frame(&vec![0u8; 100 * 1024]).await.unwrap();
    counted(&p.b.network.stats().dropped_oversized, 1, "the oversized frame").await;
    // The real A reconnects (A dials B, having the smaller key) and delivers.
    let received = deliver(&p.a.network, &mut p.b, request(2)).await;
    assert_eq!(received.frame, request(2));
}

#[tokio::test]
async fn before_the_handshake_messages_are_tiny() {
    let mut p = pair().await;
    deliver(&p.a.network, &mut p.b, request(1)).await;
    // A stranger announces a 32 KiB message, within the Noise limit: refused at the length
    // prefix, before the handshake, without buffering it.
    let mut stranger = TcpStream::connect(p.b_address).await.unwrap();
    stranger.write_all(&(32u16 << 10).to_be_bytes()).await.unwrap();
    stranger.write_all(&[0; 2048]).await.unwrap();
    counted(&p.b.network.stats().dropped_oversized, 1, "an oversized first message").await;
    deliver(&p.a.network, &mut p.b, request(2)).await;
}

#[tokio::test]
async fn a_restarted_peer_is_reconnected() {
    let mut p = pair().await;
    deliver(&p.a.network, &mut p.b, request(1)).await;
    let (b_key, b_address) = (p.b.key.clone(), p.b_address);
    drop(p.b);
    let peers = [(p.a.public_key(), p.a.address()), (b_key.public_key(), b_address)];
    // The old listener may take a moment to close: retry the bind.
    let deadline = tokio::time::Instant::now() + WAIT;
    let (b_tx, b_in) = tokio::sync::mpsc::unbounded_channel();
    let network = loop {
        match Network::start(config(&b_key, b_address, &peers), b_tx.clone()).await {
            Ok(network) => break network,
            Err(error) => {
                assert!(tokio::time::Instant::now() < deadline, "{error}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };
    let mut b = Node { network, inbound: b_in, key: b_key };
    let received = deliver(&p.a.network, &mut b, request(3)).await;
    assert_eq!(received.frame, request(3));
    b.network.broadcast(&request(4));
    assert_eq!(next(&mut p.a.inbound).await.frame, request(4));
}

/// Three validators A, B, C at start, each configured with the others' addresses; D knows all
/// four (and counts itself a validator) but is in no one else's config.
async fn four() -> (Node, Node, Node, Node) {
    let keys: Vec<SigningKey> = (11..=14).map(key).collect();
    let addresses: Vec<SocketAddr> = keys.iter().map(|_| free_port()).collect();
    let book: Vec<_> = keys.iter().map(SigningKey::public_key).zip(addresses.iter().copied()).collect();
    let mut nodes = Vec::new();
    for (index, key) in keys.iter().enumerate() {
        let known = if index < 3 { &book[..3] } else { &book[..] };
        nodes.push(Node::start(config(key, addresses[index], known)).await);
    }
    let mut nodes = nodes.into_iter();
    let mut take = || nodes.next().unwrap();
    (take(), take(), take(), take())
}

fn peers_of(nodes: &[&Node]) -> Vec<Peer> {
    nodes.iter().map(|node| Peer { key: node.public_key(), address: node.address().to_string() }).collect()
}

#[tokio::test]
async fn a_validator_removed_from_the_set_stays_linked_while_configured_then_is_refused() {
    let (mut a, mut b, mut c, _d) = four().await;
    deliver(&c.network, &mut a, request(1)).await;
    deliver(&a.network, &mut c, request(2)).await;
    deliver(&b.network, &mut c, request(3)).await;
    assert_eq!(a.network.stats().connected_peers(), 2);

    // C leaves the set on A and B (C itself has not noticed). Still configured, it stays linked
    // as a learner: it follows the chain, its votes count for nothing.
    let remaining = [a.public_key(), b.public_key()];
    a.network.set_validators(&remaining);
    b.network.set_validators(&remaining);
    let received = deliver(&a.network, &mut c, request(4)).await;
    assert_eq!(received.from, a.public_key());
    assert_eq!(load(&a.network.stats().removed_peers), 0);

    // Its address leaves the config too: disconnected.
    a.network.set_peers(&peers_of(&[&a, &b]));
    b.network.set_peers(&peers_of(&[&a, &b]));
    let mut linked = a.network.peers();
    linked.sort();
    assert_eq!(linked, [b.public_key()]);
    counted(&a.network.stats().removed_peers, 1, "A dropping C").await;
    until("A to hold one link", || a.network.stats().connected_peers() == 1).await;
    until("C to lose both links", || c.network.stats().connected_peers() == 0).await;

    // C dialling A again is refused at the handshake, and counted.
    let refused_before = load(&a.network.stats().handshake_unknown_key);
    let stream = TcpStream::connect(a.address()).await.unwrap();
    assert!(handshake_as(&c.key, stream).await.is_err(), "a removed validator was let in");
    counted(&a.network.stats().handshake_unknown_key, refused_before + 1, "the refusal").await;
    // A and B still talk.
    let received = deliver(&a.network, &mut b, request(5)).await;
    assert_eq!(received.from, a.public_key());
}

#[tokio::test]
async fn a_configured_learner_is_linked_and_a_validator_added_to_the_set_too() {
    let (mut a, b, c, mut d) = four().await;
    // Neither a validator nor configured: refused.
    let stream = TcpStream::connect(a.address()).await.unwrap();
    assert!(handshake_as(&d.key, stream).await.is_err(), "a stranger was let in");
    counted(&a.network.stats().handshake_unknown_key, 1, "the refusal").await;

    // Configured (a learner, not yet a validator): linked, whichever of the two dials.
    a.network.set_peers(&peers_of(&[&b, &c, &d]));
    let received = deliver(&a.network, &mut d, request(5)).await;
    assert_eq!(received.from, a.public_key());
    let received = deliver(&d.network, &mut a, request(6)).await;
    assert_eq!(received.from, d.public_key());

    // Added on chain and its address dropped from the config: still linked, as a validator.
    a.network.set_validators(&[a.public_key(), b.public_key(), c.public_key(), d.public_key()]);
    a.network.set_peers(&peers_of(&[&b, &c]));
    let received = deliver(&d.network, &mut a, request(7)).await;
    assert_eq!(received.from, d.public_key());
    assert_eq!(load(&a.network.stats().removed_peers), 0);
}

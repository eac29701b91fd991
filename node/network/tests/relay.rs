//! An on-path relay between two validators (a TCP proxy on loopback) sees only ciphertext, and
//! whatever it alters, replays or reorders after the handshake drops the link instead of
//! reaching the node. Also: a frame of several megabytes crosses in chunks intact.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use common::*;
use kubechain_network::{Frame, Inbound};
use kubechain_types::encoding::encode;

/// A dials B through a relay (A has the smaller key, so A dials; its config has the relay as
/// B's address).
async fn relayed(tamper: Tamper, max_frame_bytes: usize) -> (Node, Node, Relay) {
    let (a_key, b_key) = ordered_keys(1, 2);
    let (a_address, b_address) = (free_port(), free_port());
    let relay = Relay::start(b_address, tamper).await;
    let mut a_config =
        config(&a_key, a_address, &[(a_key.public_key(), a_address), (b_key.public_key(), relay.address)]);
    let mut b_config =
        config(&b_key, b_address, &[(a_key.public_key(), a_address), (b_key.public_key(), b_address)]);
    a_config.max_frame_bytes = max_frame_bytes;
    b_config.max_frame_bytes = max_frame_bytes;
    let a = Node::start(a_config).await;
    let b = Node::start(b_config).await;
    (a, b, relay)
}

/// Everything B has received so far, once B has counted `undecryptable` broken links.
async fn after_drops(b: &mut Node, undecryptable: u64) -> Vec<Inbound> {
    counted(&b.network.stats().dropped_undecryptable, undecryptable, "a link dropped on bad ciphertext")
        .await;
    let mut received = Vec::new();
    while let Ok(inbound) = b.inbound.try_recv() {
        received.push(inbound);
    }
    received
}

#[tokio::test]
async fn a_relay_sees_no_plaintext_nor_the_validators_keys() {
    let (a, mut b, relay) = relayed(Tamper::Nothing, 64 * 1024).await;
    let marker = b"plaintext a relay must never see".repeat(4);
    let frame = transactions(marker.clone());
    let received = deliver(&a.network, &mut b, frame.clone()).await;
    assert_eq!(received.frame, frame);
    b.network.broadcast(&request(9));
    let mut a = a;
    assert_eq!(next(&mut a.inbound).await.frame, request(9));

    assert!(!relay.seen.lock().unwrap().is_empty(), "the relay recorded nothing");
    assert!(!relay.saw(&marker), "the transaction's value crossed in the clear");
    assert!(!relay.saw(&encode(&frame)), "the frame crossed in the clear");
    assert!(!relay.saw(&encode(&request(9))), "a consensus message crossed in the clear");
    // The identities travel inside the encrypted handshake too.
    assert!(!relay.saw(a.public_key().as_bytes()), "A's key crossed in the clear");
    assert!(!relay.saw(b.public_key().as_bytes()), "B's key crossed in the clear");
    assert!(!relay.saw(CHAIN.as_bytes()), "the chain id crossed in the clear");
}

#[tokio::test]
async fn a_flipped_byte_after_the_handshake_drops_the_link() {
    // Message 3 from A is the first chunk of the first frame.
    let (a, mut b, relay) = relayed(Tamper::FlipByte(3), 64 * 1024).await;
    let frame = transactions(b"altered in flight".to_vec());
    let received = deliver(&a.network, &mut b, frame.clone()).await;
    // What arrives is the frame as sent, over a second connection.
    assert_eq!(received.frame, frame);
    assert!(relay.connections.load(std::sync::atomic::Ordering::Relaxed) >= 2, "the link was not dropped");
    let stragglers = after_drops(&mut b, 1).await;
    assert!(stragglers.iter().all(|inbound| inbound.frame == frame), "an altered frame was delivered");
}

#[tokio::test]
async fn a_replayed_chunk_drops_the_link() {
    let (a, mut b, _relay) = relayed(Tamper::Replay(3), 64 * 1024).await;
    let frame = transactions(b"sent once".to_vec());
    a.network.send(&b.public_key(), &frame);
    // The original arrives once; its replay fails to decrypt and ends the link.
    assert_eq!(next(&mut b.inbound).await.frame, frame);
    let stragglers = after_drops(&mut b, 1).await;
    assert!(stragglers.is_empty(), "the replayed chunk was delivered again");
}

#[tokio::test]
async fn reordered_chunks_drop_the_link() {
    // Messages 3 and 4 are the two chunks of one 100 KB frame; the relay swaps them.
    let (a, mut b, _relay) = relayed(Tamper::Swap(3), 1 << 20).await;
    let frame = transactions(vec![7u8; 100_000]);
    a.network.send(&b.public_key(), &frame);
    let stragglers = after_drops(&mut b, 1).await;
    assert!(stragglers.is_empty(), "a frame with reordered chunks was delivered");
    // The next connection carries frames as sent.
    let received = deliver(&a.network, &mut b, request(3)).await;
    assert_eq!(received.frame, request(3));
}

#[tokio::test]
async fn a_frame_of_several_megabytes_arrives_intact() {
    let (a, mut b, _relay) = relayed(Tamper::Nothing, 8 << 20).await;
    // Varying bytes, so a chunk out of place would show.
    let value: Vec<u8> = (0..5_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let frame = transactions(value);
    assert!(encode(&frame).len() > 70 * kubechain_network::MAX_CHUNK_PLAINTEXT);
    let received = deliver(&a.network, &mut b, frame.clone()).await;
    assert!(received.frame == frame, "the large frame arrived altered");
    let Frame::Transactions(transactions) = received.frame else { panic!("not a transaction frame") };
    assert_eq!(transactions.len(), 1);
}

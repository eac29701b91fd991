//! Bounded resources: handshake slots per source address, outbox bytes per peer, and each peer's
//! share of the node's inbound queue.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::net::SocketAddr;

use common::*;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

/// A connection from another loopback address (all of 127/8 reaches this host).
async fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

#[tokio::test]
async fn many_silent_connections_from_one_address_do_not_lock_a_validator_out() {
    let (a_key, b_key) = ordered_keys(1, 2);
    let (a_address, b_address) = (free_port(), free_port());
    let peers = [(a_key.public_key(), a_address), (b_key.public_key(), b_address)];
    let a = Node::start(config(&a_key, a_address, &peers)).await;
    let mut b = Node::start(config(&b_key, b_address, &peers)).await;
    deliver(&a.network, &mut b, request(1)).await;

    // A validator's connection is open, its handshake not yet begun, when one address opens
    // many connections that never say a word: beyond its few slots they are closed at once.
    let validator = TcpStream::connect(b_address).await.unwrap();
    let mut silent = Vec::new();
    for _ in 0..40 {
        silent.push(connect_from("127.0.0.2", b_address).await);
    }
    counted(&b.network.stats().handshake_busy, 40 - 4, "connections refused for want of a slot").await;
    let mut closed = [0u8; 1];
    let last = silent.last_mut().unwrap();
    let read = tokio::time::timeout(WAIT, last.read(&mut closed)).await.expect("closed at once");
    assert!(matches!(read, Ok(0) | Err(_)), "an excess connection was kept open");

    // The validator's handshake still goes through, and so do frames over the real link.
    let link = handshake_as(&a_key, validator).await.expect("a validator was locked out");
    assert_eq!(link.peer(), b_key.public_key());
    drop(link);
    let received = deliver(&a.network, &mut b, request(2)).await;
    assert_eq!(received.from, a_key.public_key());
}

#[tokio::test]
async fn a_peer_that_never_reads_costs_at_most_the_outbox_bound() {
    const BOUND: usize = 4 << 20;
    const FRAME_VALUE: usize = 256 << 10;
    let (a_key, b_key) = ordered_keys(1, 2);
    let (a_address, b_address) = (free_port(), free_port());
    let peers = [(a_key.public_key(), a_address), (b_key.public_key(), b_address)];
    let mut a_config = config(&a_key, a_address, &peers);
    a_config.max_frame_bytes = 1 << 20;
    a_config.queue_frames = 10_000;
    a_config.queue_bytes = BOUND;
    let mut b_config = config(&b_key, b_address, &peers);
    b_config.max_frame_bytes = 1 << 20;
    // B's node never handles what arrives: after a few frames its link stops reading.
    b_config.inbound_frames = 4;
    let a = Node::start(a_config).await;
    let mut b = Node::start(b_config).await;
    deliver(&a.network, &mut b, request(1)).await;

    let stats = a.network.stats();
    let mut most_queued = 0;
    for i in 0..400u32 {
        let mut value = vec![0u8; FRAME_VALUE];
        value[..4].copy_from_slice(&i.to_le_bytes());
        a.network.send(&b.public_key(), &transactions(value));
        most_queued = most_queued.max(stats.queued_bytes());
        // Let the link drain what it can, so the bound is met by a stalled reader, not a burst.
        tokio::task::yield_now().await;
    }
    // 100 MB offered; the socket buffers and B's four frames take some, the outbox the rest.
    let dropped = load(&stats.dropped_queue_bytes);
    println!("outbox at most {most_queued} bytes, {dropped} of 400 frames dropped");
    assert!(most_queued <= BOUND, "the outbox held {most_queued} bytes, over {BOUND}");
    assert!(dropped > 0, "nothing was dropped: the outbox is not bounded in bytes");
    assert!(load(&stats.dropped_queue_full) == 0, "the frame bound, not the byte bound, acted");
}

#[tokio::test]
async fn a_flooding_peer_does_not_starve_another() {
    const BUDGET: usize = 16;
    let keys = [key(31), key(32), key(33)];
    let addresses = [free_port(), free_port(), free_port()];
    let book: Vec<_> = keys.iter().map(|key| key.public_key()).zip(addresses).collect();
    let mut receiver_config = config(&keys[0], addresses[0], &book);
    receiver_config.inbound_frames = BUDGET;
    let mut receiver = Node::start(receiver_config).await;
    let mut flooder_config = config(&keys[1], addresses[1], &book);
    flooder_config.queue_frames = 20_000;
    let flooder = Node::start(flooder_config).await;
    let honest = Node::start(config(&keys[2], addresses[2], &book)).await;
    until("the receiver to link to both", || receiver.network.stats().connected_peers() == 2).await;
    until("the flooder to link", || flooder.network.stats().connected_peers() >= 1).await;
    until("the honest peer to link", || honest.network.stats().connected_peers() >= 1).await;

    // The flood fills the flooder's share of the receiver's queue, and stops there until the
    // receiver handles some.
    for height in 0..10_000 {
        flooder.network.send(&receiver.public_key(), &request(height));
    }
    let frames_in = &receiver.network.stats().frames_in;
    counted(frames_in, BUDGET as u64, "the flooder's share").await;
    // The honest peer's frame is queued behind at most that share, not behind the flood.
    let honest_frame = request(1_000_000);
    honest.network.send(&receiver.public_key(), &honest_frame);
    counted(frames_in, BUDGET as u64 + 1, "the honest frame").await;
    assert_eq!(load(frames_in), BUDGET as u64 + 1, "the flooder got past its share");
    let mut flood_before = 0;
    loop {
        let inbound = next(&mut receiver.inbound).await;
        if inbound.from == honest.public_key() {
            assert_eq!(inbound.frame, honest_frame);
            break;
        }
        flood_before += 1;
    }
    assert!(flood_before <= BUDGET, "{flood_before} flood frames came first");
    // And the flood goes on being delivered.
    for _ in 0..100 {
        assert_eq!(next(&mut receiver.inbound).await.from, flooder.public_key());
    }
}

//! What encryption costs: handshakes per second and link throughput on loopback. Measurements,
//! not checks; run with `cargo test --release -p kubechain-network --test throughput -- --ignored
//! --nocapture`.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::time::Instant;

use common::*;
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run by hand"]
async fn handshake_and_link_throughput() {
    let (a_key, b_key) = ordered_keys(1, 2);
    let (a_address, b_address) = (free_port(), free_port());
    let peers = [(a_key.public_key(), a_address), (b_key.public_key(), b_address)];
    let mut a_config = config(&a_key, a_address, &peers);
    let mut b_config = config(&b_key, b_address, &peers);
    for config in [&mut a_config, &mut b_config] {
        config.max_frame_bytes = 2 << 20;
        config.queue_frames = 100_000;
        config.queue_bytes = 1 << 30;
    }
    let a = Node::start(a_config).await;
    let mut b = Node::start(b_config).await;
    deliver(&a.network, &mut b, request(0)).await;

    const HANDSHAKES: u32 = 200;
    let started = Instant::now();
    for _ in 0..HANDSHAKES {
        let stream = TcpStream::connect(b.address()).await.unwrap();
        handshake_as(&a_key, stream).await.unwrap();
    }
    let per_handshake = started.elapsed() / HANDSHAKES;
    println!("handshake: {per_handshake:?} each ({HANDSHAKES} in a row, both ends on this host)");
    deliver(&a.network, &mut b, request(1)).await;

    let b_public = b.public_key();
    for (frame_bytes, count) in [(1 << 20, 256usize), (256, 100_000)] {
        let frame = transactions(vec![7u8; frame_bytes]);
        let started = Instant::now();
        let receiving = async {
            for _ in 0..count {
                next(&mut b.inbound).await;
            }
        };
        let sending = async {
            for _ in 0..count {
                a.network.send(&b_public, &frame);
                tokio::task::yield_now().await;
            }
        };
        tokio::join!(receiving, sending);
        let elapsed = started.elapsed().as_secs_f64();
        let megabytes = (frame_bytes * count) as f64 / 1e6;
        println!(
            "{count} frames of {frame_bytes} bytes: {:.0} frames/s, {:.0} MB/s",
            count as f64 / elapsed,
            megabytes / elapsed
        );
    }
}

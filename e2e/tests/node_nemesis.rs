//! A nemesis of crash faults over four real validator processes: SIGKILL and restart, SIGSTOP
//! and SIGCONT, the primary often among the victims, never more than one validator down at a time
//! (f = 1). The chain must keep going: the longest stretch without a block while transactions
//! wait stays within the view-change timeout plus one second. The suite prints that figure.
//!
//! `KUBECHAIN_NEMESIS_ROUNDS` sets the number of faults (default 10), `KUBECHAIN_NEMESIS_SEED`
//! the seed (printed, so a failure can be replayed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kubechain_api::BlockView;
use kubechain_e2e::{Cluster, Load, eventually, fault_suite_params};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const VIEW_CHANGE_TIMEOUT_MS: u64 = 2_000;
const TIMEOUT: Duration = Duration::from_secs(90);

#[test]
fn a_nemesis_of_kills_and_pauses_keeps_every_gap_within_the_view_change_timeout() {
    let rounds: usize =
        std::env::var("KUBECHAIN_NEMESIS_ROUNDS").ok().and_then(|n| n.parse().ok()).unwrap_or(10);
    let seed: u64 = std::env::var("KUBECHAIN_NEMESIS_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| std::process::id().into());
    println!("nemesis: {rounds} faults, seed {seed} (KUBECHAIN_NEMESIS_SEED={seed} replays the choices)");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut cluster = Cluster::create(4, 4, fault_suite_params(VIEW_CHANGE_TIMEOUT_MS));
    cluster.start_all();
    // Faults start on a working chain: every validator knows it holds the tip.
    for index in 0..4 {
        eventually(TIMEOUT, &format!("validator {index} ready"), || {
            cluster.status(index).filter(|status| status.ready)
        });
    }
    let cluster = Arc::new(Mutex::new(cluster));
    let load = Load::start(&cluster);
    // The window measured: from the first block under load to the last fault's recovery.
    let first_height = eventually(TIMEOUT, "a first block under load", || {
        let cluster = cluster.lock().unwrap();
        cluster.height(0).filter(|height| *height > 0)
    });

    for round in 0..rounds {
        let (victim, height) = {
            let cluster = cluster.lock().unwrap();
            let observer = cluster.running()[0];
            // The primary half the time: the fault that needs a view change.
            let victim = if rng.random_bool(0.5) {
                cluster.primary_seen_by(observer)
            } else {
                rng.random_range(0..cluster.validators.len())
            };
            (victim, cluster.running().iter().filter_map(|i| cluster.height(*i)).max().unwrap_or(0))
        };
        let down = Duration::from_millis(rng.random_range(500..4_000));
        let pause = rng.random_bool(0.5);
        println!(
            "nemesis round {round}: {} validator {victim} for {down:?}",
            if pause { "pause" } else { "kill" }
        );
        {
            let mut cluster = cluster.lock().unwrap();
            if pause {
                cluster.pause(victim, true);
            } else {
                cluster.kill(victim);
            }
        }
        // The fault lasts this long (the schedule of the nemesis, not a synchronisation).
        std::thread::sleep(down);
        {
            let mut cluster = cluster.lock().unwrap();
            if pause {
                cluster.pause(victim, false);
            } else {
                cluster.start(victim);
            }
        }
        eventually(TIMEOUT, &format!("progress after round {round}"), || {
            let cluster = cluster.lock().unwrap();
            cluster.running().iter().filter_map(|i| cluster.height(*i)).max().filter(|h| *h > height)
        });
    }
    let last_height = {
        let cluster = cluster.lock().unwrap();
        cluster.running().iter().filter_map(|i| cluster.height(*i)).max().unwrap()
    };
    let waits = load.waits.lock().unwrap().clone();
    drop(load);

    let cluster = Arc::try_unwrap(cluster).unwrap().into_inner().unwrap();
    let height = cluster.assert_converged(TIMEOUT);
    assert!(height >= last_height);
    // Proposal times of the blocks committed under the nemesis (re-proposals keep theirs, so a
    // view change shows as the gap before the next new block).
    let timestamps: Vec<u64> = (first_height..=last_height)
        .map(|h| {
            let (code, block) = cluster.get_as::<BlockView>(0, &format!("/v1/blocks/{h}")).expect("a block");
            assert_eq!(code, 200);
            block.block.header.timestamp_ms
        })
        .collect();
    // For each gap between blocks, the part of it during which a transaction was waiting: from
    // the later of the gap's start and the earliest acceptance of a transaction that committed
    // after the gap. (A gap while no transaction waits is no fault of consensus.)
    let (longest_ms, at) = timestamps
        .windows(2)
        .enumerate()
        .filter_map(|(i, pair)| {
            let next_height = first_height + i as u64 + 1;
            let waiting_since = waits
                .iter()
                .filter(|(accepted_ms, height)| *height >= next_height && *accepted_ms < pair[1])
                .map(|(accepted_ms, _)| *accepted_ms)
                .min()?;
            Some((pair[1].saturating_sub(pair[0].max(waiting_since)), next_height))
        })
        .max()
        .unwrap_or((0, first_height));
    println!(
        "nemesis: {rounds} faults, blocks {first_height}..={last_height}, {} transactions; longest \
         stretch without a block while transactions waited: {longest_ms} ms (before height {at}); bound {} ms",
        waits.len(),
        VIEW_CHANGE_TIMEOUT_MS + 1_000,
    );
    assert!(
        longest_ms <= VIEW_CHANGE_TIMEOUT_MS + 1_000,
        "{longest_ms} ms without a block before height {at}: more than the view-change timeout plus one second"
    );
}

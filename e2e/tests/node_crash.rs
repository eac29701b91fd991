//! SIGKILL validators at random moments under load, many times; every acknowledged transaction
//! must survive, identical, and all validators must end with identical chains.
//!
//! `KUBECHAIN_CRASHES` sets the number of kills (default 60), `KUBECHAIN_CRASH_SEED` the seed
//! (printed, so a failure can be replayed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kubechain_e2e::{Cluster, Load, eventually, fault_suite_params};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const TIMEOUT: Duration = Duration::from_secs(90);

#[test]
fn random_sigkills_under_load_lose_nothing() {
    let crashes: usize = std::env::var("KUBECHAIN_CRASHES").ok().and_then(|n| n.parse().ok()).unwrap_or(60);
    let seed: u64 = std::env::var("KUBECHAIN_CRASH_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| std::process::id().into());
    println!("crash test: {crashes} kills, seed {seed} (KUBECHAIN_CRASH_SEED={seed} replays the choices)");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut cluster = Cluster::create(4, 4, fault_suite_params(400));
    cluster.start_all();

    // Load: each client submits a stream of transactions to the validators that are up and keeps
    // those a validator acknowledges as committed.
    let cluster = Arc::new(Mutex::new(cluster));
    let load = Load::start(&cluster);
    let acknowledged = load.acknowledged.clone();

    for crash in 0..crashes {
        let (victim, height) = {
            let cluster = cluster.lock().unwrap();
            let victim = rng.random_range(0..cluster.validators.len());
            (victim, cluster.running().iter().filter_map(|i| cluster.height(*i)).max().unwrap_or(0))
        };
        // A random moment: somewhere in the next block or two.
        std::thread::sleep(Duration::from_millis(rng.random_range(0..40)));
        let mut guard = cluster.lock().unwrap();
        guard.kill(victim);
        guard.start(victim);
        drop(guard);
        // The chain goes on after every kill (one validator down at a time, f = 1).
        eventually(TIMEOUT, &format!("progress after kill {crash} of validator {victim}"), || {
            let cluster = cluster.lock().unwrap();
            cluster.running().iter().filter_map(|i| cluster.height(*i)).max().filter(|h| *h > height)
        });
    }
    drop(load);

    let mut cluster = Arc::try_unwrap(cluster).unwrap().into_inner().unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= crashes,
        "only {} transactions acknowledged under load",
        acknowledged.len()
    );
    let height = cluster.assert_converged(TIMEOUT);
    cluster.assert_all_present(&acknowledged);
    cluster.stop_all();
    cluster.start_all();
    assert_eq!(cluster.assert_converged(TIMEOUT), height);
    cluster.assert_all_present(&acknowledged);
    println!(
        "crash test: {crashes} kills, {height} blocks, {} acknowledged transactions",
        acknowledged.len()
    );
}

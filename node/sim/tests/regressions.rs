//! Runs that once went wrong, with their configuration written out (the random draws that made
//! them have changed since, so their seed numbers no longer map).

#![cfg(not(any(
    feature = "bug-quorum-2f",
    feature = "bug-newview-drops-prepared",
    feature = "bug-unchecked-body",
    feature = "bug-strict-single"
)))]

use kubechain_sim::{Fault, Misbehaviour, SimConfig, World};

/// Soak seed 6478 of commit b1f835d (4 replicas). There the honest replicas changed view every
/// half second for good, and the run's queue grew to gigabytes: a shared cap on vote targets per
/// height, full after eight views, refused the votes of every later view (since fixed by a quota
/// per voter), and each state-transfer answer, stray copies included, asked again at once, so
/// request loops multiplied while a stale fetch was restarted over and over.
fn soak_6478(hostile_client: bool) -> SimConfig {
    SimConfig {
        seed: 6478,
        replicas: 4,
        byzantine: vec![3],
        misbehaviours: vec![
            Misbehaviour::BadSignature,
            Misbehaviour::Replay,
            Misbehaviour::ForgeCertificates,
        ],
        clients: 3,
        txs_per_client: 15,
        submit_until_ms: 12_587,
        loss: 0.134_314_710_448_980_05,
        duplication: 0.038_846_128_216_125_72,
        min_delay_ms: 7,
        max_delay_ms: 51,
        faults: vec![Fault::Partition { side: vec![0, 1], at_ms: 11_581, until_ms: 12_530 }],
        heal_at_ms: 12_802,
        liveness_bound_ms: 60_000,
        checkpoint_interval: 8,
        pow_difficulty_bits: 2,
        block_interval_ms: 96,
        max_block_txs: 5,
        view_change_timeout_ms: 485,
        reconfiguration: None,
        hostile_client,
    }
}

/// It must converge, within the default `Limits`, so a storm fails in seconds.
#[test]
fn soak_seed_6478_of_b1f835d_converges() {
    for hostile_client in [false, true] {
        let outcome = World::new(soak_6478(hostile_client), 0).run();
        assert!(outcome.is_ok(), "hostile_client {hostile_client}: {outcome:?}");
    }
}

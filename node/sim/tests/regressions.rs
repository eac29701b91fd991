//! Runs that once went wrong, with their configuration written out (the random draws that made
//! them have changed since, so their seed numbers no longer map).

#![cfg(not(any(
    feature = "bug-quorum-2f",
    feature = "bug-newview-drops-prepared",
    feature = "bug-unchecked-body",
    feature = "bug-strict-single"
)))]

use kubechain_sim::{Fault, Misbehaviour, Reconfiguration, SimConfig, World};

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
        joiner_added_at_ms: None,
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

/// Seed 1871 of d45fe36 (4 replicas). Replica 1, cut off with the Byzantine replica 3 while
/// validator 3 was removed for heights 21..=32, fell behind at height 20 and asked for view 1.
/// When the partition healed it was the primary of view 1 and built the NEW-VIEW at once, still
/// at height 20: by the rules in force there (3 validators, a quorum of 2) from its own request
/// and one from a replica at height 32. The others, at height 32, judge by the rules from height
/// 33 (4 validators, a quorum of 3), and their pruned schedules no longer know that validator 3
/// signed height 20, so they refused that NEW-VIEW forever, and replica 1 kept resending it to
/// them instead of its request. No view was installed after 6.6 s.
fn soak_1871() -> SimConfig {
    SimConfig {
        seed: 1871,
        replicas: 4,
        byzantine: vec![3],
        misbehaviours: vec![
            Misbehaviour::Equivocate,
            Misbehaviour::BadSeal,
            Misbehaviour::ForgeCertificates,
            Misbehaviour::Silence,
            Misbehaviour::Mutate,
        ],
        clients: 3,
        txs_per_client: 24,
        submit_until_ms: 8_696,
        loss: 0.0,
        duplication: 0.024_098_243_137_667_855,
        min_delay_ms: 6,
        max_delay_ms: 107,
        faults: vec![
            Fault::Partition { side: vec![1, 2], at_ms: 9_964, until_ms: 10_245 },
            Fault::Partition { side: vec![1, 3], at_ms: 3_002, until_ms: 5_513 },
        ],
        heal_at_ms: 10_245,
        liveness_bound_ms: 60_000,
        checkpoint_interval: 7,
        pow_difficulty_bits: 6,
        block_interval_ms: 82,
        max_block_txs: 7,
        view_change_timeout_ms: 835,
        reconfiguration: Some(Reconfiguration { validator: 3, remove_at_ms: 916, add_at_ms: 2_035 }),
        hostile_client: true,
        joiner_added_at_ms: None,
    }
}

/// A primary behind a request it holds catches up before it builds its NEW-VIEW.
#[test]
fn soak_seed_1871_of_d45fe36_converges() {
    let outcome = World::new(soak_1871(), 0).run();
    assert!(outcome.is_ok(), "{outcome:?}");
}

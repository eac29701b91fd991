//! The checker has teeth: built with a deliberately wrong consensus rule (a test-only feature),
//! the simulation must find a violation. `make teeth` runs this file once per planted bug.

#![cfg(any(feature = "bug-quorum-2f", feature = "bug-newview-drops-prepared"))]

use kubechain_sim::{SimConfig, Violation, World, replay_command};

/// Runs seeds until one breaks agreement or validity; returns it.
fn first_safety_violation(
    replicas: usize,
    seeds: std::ops::Range<u64>,
    adjust: impl Fn(&mut SimConfig),
) -> Option<(u64, Violation)> {
    seeds.into_iter().find_map(|seed| {
        let mut config = SimConfig::from_seed(seed, replicas);
        adjust(&mut config);
        match World::new(config, 0).run() {
            Err(
                violation @ (Violation::Agreement { .. }
                | Violation::Duplicate { .. }
                | Violation::Storage { .. }),
            ) => Some((seed, violation)),
            _ => None,
        }
    })
}

#[cfg(feature = "bug-quorum-2f")]
#[test]
fn a_quorum_of_2f_is_caught() {
    // An equivocating primary is enough to split honest replicas when quorums do not intersect.
    let found = first_safety_violation(4, 0..500, |_| {});
    let (seed, violation) = found.expect("no seed found the planted quorum bug");
    println!("seed {seed} caught it: {violation}\n  replay: {}", replay_command(seed, 4));
}

#[cfg(feature = "bug-newview-drops-prepared")]
#[test]
fn a_new_view_that_drops_prepared_certificates_is_caught() {
    let found = first_safety_violation(4, 0..1000, |_| {});
    let (seed, violation) = found.expect("no seed found the planted NEW-VIEW bug");
    println!("seed {seed} caught it: {violation}\n  replay: {}", replay_command(seed, 4));
}

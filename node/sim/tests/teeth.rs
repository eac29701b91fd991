//! The checker has teeth: built with a deliberately wrong consensus rule (a test-only feature),
//! the simulation must find a violation. `make teeth` runs this file once per planted bug.

#![cfg(any(
    feature = "bug-quorum-2f",
    feature = "bug-newview-drops-prepared",
    feature = "bug-unchecked-body",
    feature = "bug-strict-single"
))]

use kubechain_sim::{Violation, replay_command, run_seed};

/// Runs seeds of 4 replicas until one breaks agreement or validity, and prints it.
fn first_safety_violation(seeds: std::ops::Range<u64>) -> (u64, Violation) {
    let found = seeds.clone().find_map(|seed| match run_seed(seed, 4) {
        Err(
            violation @ (Violation::Agreement { .. }
            | Violation::Fork { .. }
            | Violation::Duplicate { .. }
            | Violation::Integrity { .. }
            | Violation::Validity { .. }
            | Violation::Storage { .. }),
        ) => Some((seed, violation)),
        _ => None,
    });
    let (seed, violation) = found.unwrap_or_else(|| panic!("no seed in {seeds:?} found the planted bug"));
    println!("seed {seed} caught it: {violation}\n  replay: {}", replay_command(seed, 4));
    (seed, violation)
}

#[cfg(feature = "bug-quorum-2f")]
#[test]
fn a_quorum_of_2f_is_caught() {
    // An equivocating primary is enough to split honest replicas when quorums do not intersect.
    first_safety_violation(0..500);
}

#[cfg(feature = "bug-newview-drops-prepared")]
#[test]
fn a_new_view_that_drops_prepared_certificates_is_caught() {
    first_safety_violation(0..500);
}

#[cfg(feature = "bug-unchecked-body")]
#[test]
fn a_prepared_block_whose_transactions_were_swapped_is_caught() {
    // A faulty primary of the next view relays the view changes with other transactions behind a
    // prepared header; replicas that trust the body commit a block that is not what was prepared.
    first_safety_violation(0..500);
}

#[cfg(feature = "bug-strict-single")]
#[test]
fn a_signature_verdict_that_depends_on_the_batch_is_caught() {
    // The hostile client signs with a torsion point in R: admission (one by one, cofactorless)
    // refuses what block execution (in a batch, cofactored) accepts.
    first_safety_violation(0..500);
}

//! Hundreds of seeded runs: every one must keep agreement and validity throughout and converge
//! after the faults heal. A failure names the seed and the command that replays it.

#![cfg(not(any(
    feature = "bug-quorum-2f",
    feature = "bug-newview-drops-prepared",
    feature = "bug-unchecked-body",
    feature = "bug-strict-single"
)))]

use kubechain_sim::{Limits, Misbehaviour, SimConfig, Violation, World, replay_command, run_seed};

fn run_seeds(replicas: usize, seeds: std::ops::Range<u64>) {
    let mut failures = Vec::new();
    let (mut blocks, mut mutated, mut flooded, mut rules_lies) = (0, 0, 0, 0);
    for seed in seeds.clone() {
        match run_seed(seed, replicas) {
            Ok(report) => {
                blocks += report.height;
                mutated += report.mutated;
                flooded += report.flooded;
                rules_lies += report.rules_lies;
            }
            Err(violation) => failures
                .push(format!("seed {seed}: {violation}\n  replay: {}", replay_command(seed, replicas))),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} seeds failed:\n{}",
        failures.len(),
        seeds.count(),
        failures.join("\n")
    );
    // The runs must actually have done something.
    assert!(blocks > 0, "no blocks committed across seeds {seeds:?}");
    // ... and the adversary must actually have attacked.
    if replicas >= 4 {
        assert!(mutated > 0 && flooded > 0, "no mutated or flooded messages across seeds {seeds:?}");
        // Each was refused: the checker fails a run whose committed header names other rules.
        assert!(rules_lies > 0, "no proposal lied about its rules across seeds {seeds:?}");
    }
}

#[test]
fn four_replicas_seeds_0_to_99() {
    run_seeds(4, 0..100);
}

#[test]
fn four_replicas_seeds_100_to_199() {
    run_seeds(4, 100..200);
}

#[test]
fn four_replicas_seeds_200_to_299() {
    run_seeds(4, 200..300);
}

#[test]
fn seven_replicas_seeds_0_to_49() {
    run_seeds(7, 0..50);
}

#[test]
fn seven_replicas_seeds_50_to_99() {
    run_seeds(7, 50..100);
}

/// A lone validator (f = 0: no Byzantine replica, no partition) survives its own crashes.
#[test]
fn one_replica_seeds_0_to_49() {
    run_seeds(1, 0..50);
}

#[test]
fn a_seed_replays_exactly() {
    let first = run_seed(17, 4).expect("seed 17 passes");
    let second = run_seed(17, 4).expect("seed 17 passes");
    assert_eq!(
        (first.height, first.messages, first.highest_view, first.simulated_ms, &first.rejections),
        (second.height, second.messages, second.highest_view, second.simulated_ms, &second.rejections)
    );
}

/// A run that floods its queue or works on and on is a message storm: it ends at once as a
/// liveness violation that says what filled the queue, instead of grinding to its deadline.
#[test]
fn a_run_past_its_limits_ends_as_a_message_storm() {
    let config = SimConfig::from_seed(17, 4);
    let healthy = World::new(config.clone(), 0).run().expect("seed 17 passes");
    let limits = Limits::for_replicas(4);
    assert!(healthy.events <= limits.max_events / 10 && healthy.peak_queued <= limits.max_queued / 10);

    let storm = |limits: Limits| match World::new(config.clone(), 0).with_limits(limits).run() {
        Err(Violation::Liveness { detail }) => detail,
        other => panic!("expected a liveness violation, got {other:?}"),
    };
    let few_events = storm(Limits { max_events: healthy.events / 2, max_queued: usize::MAX });
    assert!(few_events.starts_with("message storm: "), "{few_events}");
    assert!(few_events.contains(&format!("(limit {})", healthy.events / 2)), "{few_events}");
    let short_queue = storm(Limits { max_events: u64::MAX, max_queued: healthy.peak_queued - 1 });
    assert!(short_queue.contains(&format!("queued (limit {})", healthy.peak_queued - 1)), "{short_queue}");
    assert!(short_queue.contains("timer "), "the queue is broken down by kind: {short_queue}");
}

/// A Byzantine primary (validator 0, the primary of view 0) that proposes the admin transaction
/// adding the joiner under a header naming the rules from before it, and other blocks under
/// made-up rules, to some replicas: they refuse those proposals, nothing it lied about commits
/// (the checker compares every committed header with the rules the chain defines), and the run
/// converges.
#[test]
fn a_primary_lying_about_the_rules_is_refused() {
    let config = SimConfig {
        byzantine: vec![0],
        misbehaviours: vec![Misbehaviour::LieAboutRules],
        faults: Vec::new(),
        reconfiguration: None,
        joiner_added_at_ms: Some(0),
        ..SimConfig::from_seed(3, 4)
    };
    let report = World::new(config, 0).run().expect("every property holds");
    assert!(report.rules_omissions > 0, "the admin operation was never left out of the rules: {report:?}");
    assert!(report.rules_lies > report.rules_omissions, "no made-up rules either: {report:?}");
    assert!(report.rejections.get("bad_block").is_some_and(|count| *count > 0), "{report:?}");
}

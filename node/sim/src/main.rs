//! `kubechain-sim`: runs seeds of the consensus simulation and reports violations with the
//! command that replays them.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use kubechain_sim::{Limits, SimConfig, World, replay_command};

#[derive(Parser, Debug)]
#[command(about = "Deterministic simulation of kubechain consensus under faults")]
struct Args {
    /// Replicas per run (n = 3f + 1 tolerates f Byzantine ones).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=31))]
    replicas: u64,
    /// Number of seeds to run, starting at --first-seed.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    /// Run this one seed (replay), printing its configuration.
    #[arg(long)]
    seed: Option<u64>,
    /// Print what happens: faults, view changes and commits; twice for every persist and
    /// rejection too.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let replicas = args.replicas as usize;
    let seeds: Vec<u64> = match args.seed {
        Some(seed) => vec![seed],
        None => (args.first_seed..args.first_seed + args.seeds).collect(),
    };
    let started = Instant::now();
    let (mut passed, mut failed, mut blocks, mut transactions) = (0u64, 0u64, 0u64, 0u64);
    let (mut mutated, mut flooded, mut rules_lies) = (0u64, 0u64, 0u64);
    let mut slowest_convergence_ms = 0;
    let (mut most_events, mut most_queued) = (0u64, 0usize);
    for (i, seed) in seeds.iter().copied().enumerate() {
        let config = SimConfig::from_seed(seed, replicas);
        if args.seed.is_some() || args.verbose > 0 {
            println!("seed {seed}: {config:?}");
        }
        match World::new(config, args.verbose).run() {
            Ok(report) => {
                passed += 1;
                blocks += report.height;
                transactions += report.transactions;
                mutated += report.mutated;
                flooded += report.flooded;
                rules_lies += report.rules_lies;
                slowest_convergence_ms = slowest_convergence_ms.max(report.converged_after_heal_ms);
                most_events = most_events.max(report.events);
                most_queued = most_queued.max(report.peak_queued);
                if args.seed.is_some() || args.verbose > 0 {
                    println!("seed {seed}: ok {report:?}");
                }
            }
            Err(violation) => {
                failed += 1;
                println!("seed {seed}: VIOLATION {violation}");
                println!("  replay: {}", replay_command(seed, replicas));
            }
        }
        if seeds.len() >= 100 && (i + 1) % (seeds.len() / 10) == 0 {
            eprintln!("  {}/{} seeds, {:.0} s", i + 1, seeds.len(), started.elapsed().as_secs_f64());
        }
    }
    let wall = started.elapsed().as_secs_f64();
    println!(
        "{} seeds of {replicas} replicas in {wall:.1} s: {blocks} blocks and {transactions} transactions committed ({:.0} simulated commits per wall second); slowest convergence after healing {:.1} s",
        seeds.len(),
        blocks as f64 / wall.max(1e-9),
        slowest_convergence_ms as f64 / 1000.0
    );
    println!(
        "the Byzantine replicas sent {mutated} mutated messages, flooded {flooded} votes and proposed {rules_lies} blocks naming rules they do not leave"
    );
    let limits = Limits::for_replicas(replicas);
    println!(
        "the busiest run carried out {most_events} events (limit {}), the longest queue held {most_queued} (limit {})",
        limits.max_events, limits.max_queued
    );
    println!("{passed} passed, {failed} failed");
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

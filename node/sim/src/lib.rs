//! Deterministic simulation of kubechain consensus replicas under faults.
//!
//! One seed fixes everything: keys, transactions, message loss, delay, duplication and order,
//! partitions, crashes (including mid-way through persisting), and what the Byzantine replicas
//! do. The world checks agreement and validity at every commit and liveness after healing;
//! `make sim SEED=S REPLICAS=N` replays a run exactly.

pub mod app;
pub mod byzantine;
pub mod config;
pub mod world;

pub use config::{Fault, Misbehaviour, Reconfiguration, SimConfig};
pub use world::{Limits, Report, Violation, World};

/// Runs the simulation for `seed` with `replicas` replicas.
pub fn run_seed(seed: u64, replicas: usize) -> Result<Report, Violation> {
    World::new(SimConfig::from_seed(seed, replicas), 0).run()
}

/// The command that replays one seed.
pub fn replay_command(seed: u64, replicas: usize) -> String {
    format!("make sim SEED={seed} REPLICAS={replicas}")
}

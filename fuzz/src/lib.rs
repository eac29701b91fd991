//! What the fuzz targets share: one fixed chain (its genesis, four validator keys and two client
//! keys), `repair` (re-signing an input with those keys, so the checks past a signature are
//! reached as well), `properties` every decoded value must have, and `seeds` (the deterministic
//! seed corpus of every target, written by [`init`]).

pub mod fixture;
pub mod properties;
pub mod repair;
pub mod seeds;

pub use fixture::{CHAIN_ID, Fixture, POW_DIFFICULTY_BITS, fixture};

/// Where a target writes its seeds: set, [`init`] writes them into this directory and exits.
pub const WRITE_SEEDS_ENV: &str = "KUBECHAIN_FUZZ_WRITE_SEEDS";

/// Every target's `init` (`fuzz_target!(init: kubechain_fuzz::init(env!("CARGO_BIN_NAME")), ...)`):
/// builds the fixture before the first input, and when [`WRITE_SEEDS_ENV`] names a directory,
/// writes the seeds of `target` there and exits (how scripts/fuzz.sh seeds each corpus: the
/// seeds come from the binary being fuzzed, so they always match the current encoding).
pub fn init(target: &str) {
    fixture();
    let Some(dir) = std::env::var_os(WRITE_SEEDS_ENV) else { return };
    let dir = std::path::PathBuf::from(dir);
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        let seeds = seeds::seeds(target);
        for (name, bytes) in &seeds {
            std::fs::write(dir.join(name), bytes)?;
        }
        Ok(seeds.len())
    });
    match written {
        Ok(count) => {
            eprintln!("{target}: {count} seed(s) written to {}", dir.display());
            std::process::exit(0)
        }
        Err(error) => {
            eprintln!("{target}: cannot write seeds to {}: {error}", dir.display());
            std::process::exit(1)
        }
    }
}

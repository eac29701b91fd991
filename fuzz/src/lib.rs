//! What the fuzz targets share: one fixed chain (its genesis, four validator keys and two client
//! keys), `repair` (re-signing an input with those keys, so the checks past a signature are
//! reached as well), `properties` every decoded value must have, and `seeds` (the deterministic
//! seed corpus of every target, written by [`init`]).

pub mod properties;
pub mod repair;
pub mod seeds;

use std::sync::OnceLock;

use kubechain_types::{ConsensusParams, Genesis, Hash, Member, PublicKey, SigningKey, ValidatorSet};

/// The chain every target checks against.
pub const CHAIN_ID: &str = "fuzz-chain";

/// Seals are cheap to fake at this difficulty, so seeds and repaired blocks can carry real ones.
pub const POW_DIFFICULTY_BITS: u8 = 4;

/// The fixed chain: genesis, its validators and the keys that sign for it.
#[derive(Debug)]
pub struct Fixture {
    /// The validators' keys, in genesis order (validator `i` is the primary of view `i`).
    pub validator_keys: Vec<SigningKey>,
    /// A member's client key.
    pub client: SigningKey,
    /// An admin key.
    pub admin: SigningKey,
    pub genesis: Genesis,
    pub validators: ValidatorSet,
    pub genesis_hash: Hash,
}

impl Fixture {
    /// The signing key of `public`, when it is one of the fixture's.
    pub fn key_of(&self, public: &PublicKey) -> Option<&SigningKey> {
        self.validator_keys.iter().chain([&self.client, &self.admin]).find(|key| key.public_key() == *public)
    }
}

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

/// The fixture, built once per process.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let validator_keys: Vec<SigningKey> =
            (1..=4u8).map(|seed| SigningKey::from_seed([seed; 32])).collect();
        let client = SigningKey::from_seed([9; 32]);
        let admin = SigningKey::from_seed([8; 32]);
        let genesis = Genesis {
            chain_id: CHAIN_ID.to_string(),
            genesis_time_ms: 1_767_225_600_000,
            validators: validator_keys.iter().map(SigningKey::public_key).collect(),
            admins: vec![admin.public_key()],
            members: vec![Member { name: "acme".to_string(), public_keys: vec![client.public_key()] }],
            params: ConsensusParams {
                pow_difficulty_bits: POW_DIFFICULTY_BITS,
                ..ConsensusParams::default()
            },
        };
        let validators = genesis.validator_set();
        let genesis_hash = genesis.hash();
        Fixture { validator_keys, client, admin, genesis, validators, genesis_hash }
    })
}

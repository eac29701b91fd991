//! The one fixed chain every target checks against: its genesis, four validator keys, a member's
//! client key and an admin key.

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

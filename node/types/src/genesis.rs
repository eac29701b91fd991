//! Genesis: the chain's identity and starting point, agreed by every member before block 1.

use borsh::{BorshDeserialize, BorshSerialize};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::crypto::{Hash, PublicKey};
use crate::encoding::encode;
use crate::validators::ValidatorSet;

/// Consensus parameters. All validators apply a change at the same height (see
/// `ValidatorSet` activation in the consensus crate); `checkpoint_interval` is fixed at genesis.
#[derive(
    Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema,
)]
pub struct ConsensusParams {
    /// Longest a primary waits for a fuller batch before proposing what it has.
    pub block_interval_ms: u64,
    pub max_block_txs: u32,
    /// Blocks between checkpoints; the pipeline window is twice this.
    pub checkpoint_interval: u64,
    /// Time without progress before a replica asks for a new primary (doubles per failed view).
    pub view_change_timeout_ms: u64,
    /// Leading zero bits the block hash must have; 0 disables the proof-of-work seal.
    pub pow_difficulty_bits: u8,
}

impl Default for ConsensusParams {
    fn default() -> Self {
        ConsensusParams {
            block_interval_ms: 200,
            max_block_txs: 5000,
            checkpoint_interval: 128,
            view_change_timeout_ms: 2000,
            pow_difficulty_bits: 12,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    #[error("{field} must be between {min} and {max}, got {value}")]
    OutOfRange { field: &'static str, min: u64, max: u64, value: u64 },
    #[error("checkpoint_interval is fixed at genesis")]
    CheckpointIntervalChanged,
}

impl ConsensusParams {
    pub fn validate(&self) -> Result<(), ParamsError> {
        let ranges: [(&'static str, u64, u64, u64); 5] = [
            ("block_interval_ms", 1, 60_000, self.block_interval_ms),
            ("max_block_txs", 1, 100_000, u64::from(self.max_block_txs)),
            ("checkpoint_interval", 1, 10_000, self.checkpoint_interval),
            ("view_change_timeout_ms", 10, 600_000, self.view_change_timeout_ms),
            ("pow_difficulty_bits", 0, 24, u64::from(self.pow_difficulty_bits)),
        ];
        for (field, min, max, value) in ranges {
            if !(min..=max).contains(&value) {
                return Err(ParamsError::OutOfRange { field, min, max, value });
            }
        }
        Ok(())
    }

    /// Checks that `next` may replace `self` on a running chain.
    pub fn validate_change(&self, next: &ConsensusParams) -> Result<(), ParamsError> {
        next.validate()?;
        if next.checkpoint_interval != self.checkpoint_interval {
            return Err(ParamsError::CheckpointIntervalChanged);
        }
        Ok(())
    }

    /// How far above its committed tip a replica proposes and votes (messages up to twice as
    /// far are kept for later).
    pub fn watermark_window(&self) -> u64 {
        2 * self.checkpoint_interval
    }
}

/// A consortium member: an organisation and the client keys that act for it.
#[derive(
    Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema,
)]
pub struct Member {
    pub name: String,
    pub public_keys: Vec<PublicKey>,
}

#[derive(
    Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema,
)]
pub struct Genesis {
    pub chain_id: String,
    pub genesis_time_ms: u64,
    pub validators: Vec<PublicKey>,
    pub admins: Vec<PublicKey>,
    pub members: Vec<Member>,
    pub params: ConsensusParams,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    #[error(
        "chain id {0:?} must be 1-63 characters of lowercase letters, digits and '-', starting and ending with a letter or digit"
    )]
    ChainId(String),
    #[error("genesis needs at least one validator")]
    NoValidators,
    #[error("validator {0} is listed twice")]
    DuplicateValidator(PublicKey),
    #[error("{0} is not a valid ed25519 public key")]
    InvalidKey(PublicKey),
    #[error("member name {0:?} is listed twice or is not a DNS label (1-63 of a-z, 0-9, '-')")]
    MemberName(String),
    #[error(transparent)]
    Params(#[from] ParamsError),
}

/// Chain ids follow Kubernetes DNS-label rules so they can name resources as they are.
pub fn validate_chain_id(chain_id: &str) -> Result<(), GenesisError> {
    let bytes = chain_id.as_bytes();
    let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
    let ok = (1..=63).contains(&bytes.len())
        && bytes.iter().all(allowed)
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-');
    if ok { Ok(()) } else { Err(GenesisError::ChainId(chain_id.to_string())) }
}

impl Genesis {
    pub fn validate(&self) -> Result<(), GenesisError> {
        validate_chain_id(&self.chain_id)?;
        if self.validators.is_empty() {
            return Err(GenesisError::NoValidators);
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(duplicate) = self.validators.iter().find(|key| !seen.insert(**key)) {
            return Err(GenesisError::DuplicateValidator(*duplicate));
        }
        let all_keys = self
            .validators
            .iter()
            .chain(&self.admins)
            .chain(self.members.iter().flat_map(|member| &member.public_keys));
        if let Some(invalid) = all_keys.into_iter().find(|key| !key.is_valid()) {
            return Err(GenesisError::InvalidKey(*invalid));
        }
        let mut names = std::collections::HashSet::new();
        // Names go into state keys (`data/<member>/<key>`): a `/` in one could reach into another
        // member's namespace, so they follow the same rule as chain ids and AddMember.
        if let Some(member) = self
            .members
            .iter()
            .find(|m| validate_chain_id(&m.name).is_err() || !names.insert(m.name.as_str()))
        {
            return Err(GenesisError::MemberName(member.name.clone()));
        }
        self.params.validate()?;
        Ok(())
    }

    /// SHA-256 of the canonical encoding; block 1's `previous_hash`, and what pins a chain.
    pub fn hash(&self) -> Hash {
        Hash::digest(&encode(self))
    }

    pub fn validator_set(&self) -> ValidatorSet {
        ValidatorSet::new(self.validators.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_dns_label_rules() {
        for good in ["a", "trade-ledger-1", "x9"] {
            assert_eq!(validate_chain_id(good), Ok(()), "{good}");
        }
        for bad in ["", "-a", "a-", "Upper", "dot.ted", &"a".repeat(64)] {
            assert!(validate_chain_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn params_ranges_are_enforced() {
        assert_eq!(ConsensusParams::default().validate(), Ok(()));
        let too_hard = ConsensusParams { pow_difficulty_bits: 40, ..Default::default() };
        assert!(matches!(
            too_hard.validate(),
            Err(ParamsError::OutOfRange { field: "pow_difficulty_bits", .. })
        ));
        let new_interval = ConsensusParams { checkpoint_interval: 64, ..Default::default() };
        assert_eq!(
            ConsensusParams::default().validate_change(&new_interval),
            Err(ParamsError::CheckpointIntervalChanged)
        );
    }

    #[test]
    fn weak_and_malformed_keys_are_rejected() {
        let good = crate::crypto::SigningKey::from_seed([5; 32]).public_key();
        let mut identity = [0u8; 32];
        identity[0] = 1; // the identity point: small order, so anyone could forge for it
        // Some y coordinate with no point on the curve (about half of them have none).
        let off_curve = (2u8..=255)
            .map(|y| {
                let mut bytes = [0u8; 32];
                bytes[0] = y;
                bytes
            })
            .find(|bytes| ed25519_dalek::VerifyingKey::from_bytes(bytes).is_err())
            .expect("an encoding off the curve");
        for bad in [PublicKey(identity), PublicKey(off_curve)] {
            let genesis = Genesis {
                chain_id: "c".into(),
                genesis_time_ms: 0,
                validators: vec![good],
                admins: vec![bad],
                members: vec![],
                params: ConsensusParams::default(),
            };
            assert_eq!(genesis.validate(), Err(GenesisError::InvalidKey(bad)));
        }
    }

    #[test]
    fn duplicate_validators_are_rejected() {
        let key = PublicKey([3; 32]);
        let genesis = Genesis {
            chain_id: "c".into(),
            genesis_time_ms: 0,
            validators: vec![key, key],
            admins: vec![],
            members: vec![],
            params: ConsensusParams::default(),
        };
        assert_eq!(genesis.validate(), Err(GenesisError::DuplicateValidator(key)));
    }

    /// A member named `x/y` would share key space with member `x`.
    #[test]
    fn member_names_are_dns_labels() {
        let validator = crate::crypto::SigningKey::from_seed([5; 32]).public_key();
        for (name, ok) in [("acme", true), ("x/y", false), ("", false), ("Acme", false), ("-a", false)] {
            let genesis = Genesis {
                chain_id: "c".into(),
                genesis_time_ms: 0,
                validators: vec![validator],
                admins: vec![],
                members: vec![Member { name: name.into(), public_keys: vec![] }],
                params: ConsensusParams::default(),
            };
            assert_eq!(genesis.validate().is_ok(), ok, "{name:?}");
        }
    }
}

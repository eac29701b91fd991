//! Genesis: built once from the spec and the generated keys, stored in the immutable ConfigMap
//! `{chain}-genesis` (`genesis.json`, exactly what the node's `read_genesis` parses) and pinned
//! by its hash. Later spec changes reach the chain through admin transactions, never through a
//! new genesis.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kubechain_crds::BlockchainSpec;
use kubechain_types::{ConsensusParams, Genesis, Hash, Member, PublicKey};

use super::meta::{Component, ObjectContext, annotations, names};

/// Data key of the genesis ConfigMap; also the file name in the pod.
pub const GENESIS_FILE: &str = "genesis.json";

/// The chain's genesis: validators in index order (validator `i` is `validators[i]`), the
/// operator's admin key first and then `spec.admins`, members and consensus parameters from the
/// spec. Every problem with a user-supplied key is reported with its path in the spec.
pub fn build_genesis(
    spec: &BlockchainSpec,
    validators: &[PublicKey],
    admin: PublicKey,
    genesis_time_ms: u64,
) -> Result<Genesis, String> {
    let mut problems = Vec::new();
    if validators.len() != spec.validators as usize {
        problems.push(format!(
            "{} validator keys given for spec.validators = {}",
            validators.len(),
            spec.validators
        ));
    }
    let mut admins = vec![admin];
    admins.extend(parse_keys("spec.admins", &spec.admins, &mut problems));
    let members = spec
        .members
        .iter()
        .enumerate()
        .map(|(index, member)| Member {
            name: member.name.clone(),
            public_keys: parse_keys(
                &format!("spec.members[{index}].publicKeys"),
                &member.public_keys,
                &mut problems,
            ),
        })
        .collect();
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let consensus = &spec.consensus;
    let genesis = Genesis {
        chain_id: spec.chain_id.clone(),
        genesis_time_ms,
        validators: validators.to_vec(),
        admins,
        members,
        params: ConsensusParams {
            block_interval_ms: consensus.block_interval_ms,
            max_block_txs: consensus.max_block_txs,
            checkpoint_interval: consensus.checkpoint_interval,
            view_change_timeout_ms: consensus.view_change_timeout_ms,
            pow_difficulty_bits: consensus.pow_difficulty_bits,
        },
    };
    // The node's own checks (chain id, duplicates, parameter ranges), so the operator never
    // writes a genesis the node would refuse.
    genesis.validate().map_err(|error| format!("invalid genesis: {error}"))?;
    Ok(genesis)
}

fn parse_keys(path: &str, keys: &[String], problems: &mut Vec<String>) -> Vec<PublicKey> {
    let mut parsed = Vec::with_capacity(keys.len());
    for (index, text) in keys.iter().enumerate() {
        match PublicKey::from_hex(text) {
            Ok(key) if key.is_valid() => parsed.push(key),
            Ok(_) => problems.push(format!(
                "{path}[{index}]: {text} is not a usable ed25519 public key (not a point on the curve, or a weak key)"
            )),
            Err(_) => problems.push(format!(
                "{path}[{index}]: {text:?} is not an ed25519 public key (64 hex characters)"
            )),
        }
    }
    parsed
}

/// A genesis and the exact `genesis.json` text stored for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenesisDocument {
    genesis: Genesis,
    json: String,
    hash: Hash,
}

impl GenesisDocument {
    /// A new document: pretty JSON with a final newline.
    pub fn new(genesis: Genesis) -> GenesisDocument {
        let mut json = serde_json::to_string_pretty(&genesis).expect("a genesis always serializes");
        json.push('\n');
        let hash = genesis.hash();
        GenesisDocument { genesis, json, hash }
    }

    /// The document stored in a genesis ConfigMap, keeping its text byte for byte (the
    /// ConfigMap is immutable, so it is re-applied exactly as it is). Checks it as the node
    /// would, and against the hash annotation when there is one.
    pub fn from_config_map(config_map: &ConfigMap) -> Result<GenesisDocument, String> {
        let name = config_map.metadata.name.as_deref().unwrap_or_default();
        let json = config_map
            .data
            .as_ref()
            .and_then(|data| data.get(GENESIS_FILE))
            .ok_or_else(|| format!("ConfigMap {name} has no {GENESIS_FILE}"))?;
        let genesis: Genesis = serde_json::from_str(json)
            .map_err(|error| format!("ConfigMap {name}: {GENESIS_FILE} is not a genesis: {error}"))?;
        genesis.validate().map_err(|error| format!("ConfigMap {name}: invalid genesis: {error}"))?;
        let hash = genesis.hash();
        let pinned = config_map.metadata.annotations.as_ref().and_then(|a| a.get(annotations::GENESIS_HASH));
        if let Some(pinned) = pinned
            && *pinned != hash.to_hex()
        {
            return Err(format!(
                "ConfigMap {name}: {GENESIS_FILE} hashes to {hash}, but {} says {pinned}",
                annotations::GENESIS_HASH
            ));
        }
        Ok(GenesisDocument { genesis, json: json.clone(), hash })
    }

    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// The `genesis.json` text.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// `Genesis::hash`, what pins the chain.
    pub fn hash(&self) -> Hash {
        self.hash
    }
}

/// The ConfigMap `{chain}-genesis`: immutable, so no one can swap a validator's genesis under
/// it; annotated with the genesis hash.
pub fn genesis_config_map(context: &ObjectContext, document: &GenesisDocument) -> ConfigMap {
    let mut metadata = context.metadata(names::genesis_config_map(context.name()), Component::Genesis);
    metadata.labels = metadata.labels.map(|labels| context.claimed(labels));
    metadata.annotations =
        Some(BTreeMap::from([(annotations::GENESIS_HASH.to_string(), document.hash().to_hex())]));
    ConfigMap {
        metadata,
        immutable: Some(true),
        data: Some(BTreeMap::from([(GENESIS_FILE.to_string(), document.json().to_string())])),
        ..ConfigMap::default()
    }
}

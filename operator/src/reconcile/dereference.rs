//! Reads what a Blockchain refers to: its genesis ConfigMap (in the hub) and its key Secrets
//! (each in the cluster that runs its validator). It only reads.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use kube::{Client, ResourceExt};
use kubechain_crds::Blockchain;
use kubechain_types::PublicKey;

use crate::build::keys::{ADMIN_KEY_FILE, VALIDATOR_KEY_FILE};
use crate::build::meta::{belongs_to, names};
use crate::build::{BuildError, GenesisDocument, KeySecretError, read_public_key};
use crate::error::Error;

/// Where the chain's genesis stands.
#[derive(Debug)]
pub enum StoredGenesis {
    /// Read back from its ConfigMap.
    Found(GenesisDocument),
    /// The status pins a genesis whose ConfigMap is gone.
    Lost { hash: String },
    /// A new chain: keys and genesis are still to be made.
    NotMadeYet,
    /// A new chain, but a ConfigMap under its genesis' name that was not made for it (someone
    /// who may create ConfigMaps must not choose a chain's validators).
    Foreign { name: String },
}

/// The chain's genesis, from its ConfigMap and the hash the status pinned.
pub async fn genesis(client: &Client, chain: &Blockchain) -> Result<StoredGenesis, Error> {
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &chain.namespace().unwrap_or_default());
    let stored = config_maps.get_opt(&names::genesis_config_map(&chain.name_any())).await?;
    let pinned = chain.status.as_ref().and_then(|status| status.genesis_hash.clone());
    let uid = chain.metadata.uid.as_deref().unwrap_or_default();
    Ok(match (stored, pinned) {
        // Before a genesis is pinned only this Blockchain's own is taken: the operator's, kept
        // from a pass that stopped before pinning it, or one a person labelled to resume a chain.
        (Some(config_map), None) if !belongs_to(&config_map.metadata, uid) => {
            StoredGenesis::Foreign { name: config_map.name_any() }
        }
        (Some(config_map), _) => {
            StoredGenesis::Found(GenesisDocument::from_config_map(&config_map).map_err(BuildError::Genesis)?)
        }
        (None, Some(hash)) => StoredGenesis::Lost { hash },
        (None, None) => StoredGenesis::NotMadeYet,
    })
}

/// What one key Secret holds. Only the public key leaves this step: the secret half is checked
/// and dropped.
#[derive(Clone, Debug, PartialEq)]
pub enum StoredKey {
    Holds(PublicKey),
    Unreadable(KeySecretError),
    Missing,
    /// In a cluster the operator cannot reach this pass.
    Unknown,
}

/// The key Secrets of a chain whose genesis names `validators` validators.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredKeys {
    /// Validator i's Secret at index i.
    pub validators: Vec<StoredKey>,
    pub admin: StoredKey,
}

/// The key Secrets of `indices`, in the cluster of `client` (each key lives only where its
/// validator runs).
pub async fn validator_keys(
    client: &Client,
    chain: &Blockchain,
    indices: &[u32],
) -> Result<Vec<(u32, StoredKey)>, kube::Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &chain.namespace().unwrap_or_default());
    let name = chain.name_any();
    let mut stored = Vec::with_capacity(indices.len());
    for &index in indices {
        stored.push((
            index,
            key(&secrets, &names::validator_key_secret(&name, index), VALIDATOR_KEY_FILE).await?,
        ));
    }
    Ok(stored)
}

/// Which of `indices` have a key Secret that was not made for this Blockchain. A key the genesis
/// does not name is trusted only when it was: someone who may create Secrets must not choose the
/// key of a validator about to be added.
pub async fn unclaimed_validator_keys(
    client: &Client,
    chain: &Blockchain,
    indices: &[u32],
) -> Result<Vec<u32>, kube::Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &chain.namespace().unwrap_or_default());
    let (name, uid) = (chain.name_any(), chain.metadata.uid.clone().unwrap_or_default());
    let mut unclaimed = Vec::new();
    for &index in indices {
        let found = secrets.get_metadata_opt(&names::validator_key_secret(&name, index)).await?;
        if found.is_some_and(|secret| !belongs_to(&secret.metadata, &uid)) {
            unclaimed.push(index);
        }
    }
    Ok(unclaimed)
}

/// The operator's admin key, kept in the hub.
pub async fn admin_key(hub: &Client, chain: &Blockchain) -> Result<StoredKey, Error> {
    let secrets: Api<Secret> = Api::namespaced(hub.clone(), &chain.namespace().unwrap_or_default());
    Ok(key(&secrets, &names::admin_key_secret(&chain.name_any()), ADMIN_KEY_FILE).await?)
}

async fn key(secrets: &Api<Secret>, secret_name: &str, data_key: &str) -> Result<StoredKey, kube::Error> {
    Ok(match secrets.get_opt(secret_name).await? {
        None => StoredKey::Missing,
        Some(secret) => match read_public_key(&secret, data_key) {
            Ok(key) => StoredKey::Holds(key),
            Err(error) => StoredKey::Unreadable(error),
        },
    })
}

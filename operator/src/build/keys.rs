//! Key Secrets: one per validator (`{chain}-validator-{i}-key`, mounted only by that validator's
//! pod) and the operator's admin key (`{chain}-admin-key`). The data is the node's key-file JSON
//! (`kubechain_types::keyfile`), so the pod reads the mounted Secret as it would a key file.
//!
//! Keys are generated once and never regenerated: the Secrets are immutable, and the apply layer
//! only creates them when missing. Nothing here formats a secret: [`KeySecret`]'s `Debug` shows the
//! public key, and errors name the Secret, never its content.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kubechain_types::keyfile::{self, KeyFileError};
use kubechain_types::{PublicKey, SigningKey};

use super::meta::{Component, ObjectContext, names};

/// Data key of a validator key Secret; also the file name in the pod.
pub const VALIDATOR_KEY_FILE: &str = "validator.key";
/// Data key of the admin key Secret.
pub const ADMIN_KEY_FILE: &str = "admin.key";

/// A Secret holding a key. Wrapped because a Secret's own `Debug` prints its data.
#[derive(Clone, PartialEq)]
pub struct KeySecret {
    secret: Secret,
    public_key: PublicKey,
}

impl KeySecret {
    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    /// The Secret to send to the API server. Do not log it.
    pub fn into_secret(self) -> Secret {
        self.secret
    }

    pub fn public_key(&self) -> PublicKey {
        self.public_key
    }
}

impl fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySecret")
            .field("name", &self.secret.metadata.name)
            .field("namespace", &self.secret.metadata.namespace)
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

/// The key Secret of validator `index`.
pub fn validator_key_secret(context: &ObjectContext, index: u32, key: &SigningKey) -> KeySecret {
    let name = names::validator_key_secret(context.name(), index);
    key_secret(context, name, Component::ValidatorKey, VALIDATOR_KEY_FILE, key)
}

/// The operator's admin key Secret: the key lists in genesis as an admin and signs validator-set
/// and consensus-parameter changes.
pub fn admin_key_secret(context: &ObjectContext, key: &SigningKey) -> KeySecret {
    let name = names::admin_key_secret(context.name());
    key_secret(context, name, Component::AdminKey, ADMIN_KEY_FILE, key)
}

fn key_secret(
    context: &ObjectContext,
    name: String,
    component: Component,
    data_key: &str,
    key: &SigningKey,
) -> KeySecret {
    let mut metadata = context.metadata(name, component);
    metadata.labels = Some(context.claimed(context.stable_labels(component)));
    let secret = Secret {
        metadata,
        type_: Some("Opaque".to_string()),
        immutable: Some(true),
        data: Some(BTreeMap::from([(data_key.to_string(), ByteString(keyfile::to_json(key)))])),
        ..Secret::default()
    };
    KeySecret { secret, public_key: key.public_key() }
}

/// Why a Secret does not hold a usable key. Names the Secret, never its content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySecretError {
    #[error("Secret {secret} has no {data_key} entry")]
    Missing { secret: String, data_key: String },
    #[error("Secret {secret}, entry {data_key}: not a kubechain key file ({reason})")]
    Malformed { secret: String, data_key: String, reason: KeyFileError },
}

/// The key in `secret`'s entry `data_key`, checked like the node checks a key file.
pub fn read_key(secret: &Secret, data_key: &str) -> Result<SigningKey, KeySecretError> {
    let secret_name = || secret.metadata.name.clone().unwrap_or_default();
    let bytes = secret
        .data
        .as_ref()
        .and_then(|data| data.get(data_key))
        .ok_or_else(|| KeySecretError::Missing { secret: secret_name(), data_key: data_key.to_string() })?;
    keyfile::from_json(&bytes.0).map_err(|reason| KeySecretError::Malformed {
        secret: secret_name(),
        data_key: data_key.to_string(),
        reason,
    })
}

/// The public key of the key in `secret`'s entry `data_key` (the secret half is checked and
/// dropped).
pub fn read_public_key(secret: &Secret, data_key: &str) -> Result<PublicKey, KeySecretError> {
    read_key(secret, data_key).map(|key| key.public_key())
}

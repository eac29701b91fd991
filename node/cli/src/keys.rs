//! Key files: JSON with the public key and the secret seed, written owner-only.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use kubechain_types::{PublicKey, SigningKey};
use serde::Serialize;

#[derive(Serialize)]
struct KeyFile {
    public_key: PublicKey,
    /// The 32-byte ed25519 seed, hex.
    secret_seed: String,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("no randomness: {0}")]
    Randomness(String),
}

pub fn generate() -> Result<SigningKey, KeyError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|error| KeyError::Randomness(error.to_string()))?;
    Ok(SigningKey::from_seed(seed))
}

/// Writes `key` to a new file readable only by its owner; refuses to overwrite.
pub fn write(path: &Path, key: &SigningKey) -> Result<(), KeyError> {
    let io = |source| KeyError::Io { path: path.display().to_string(), source };
    let file = KeyFile { public_key: key.public_key(), secret_seed: hex::encode(key.seed()) };
    let json = serde_json::to_vec_pretty(&file).map_err(|e| io(std::io::Error::other(e)))?;
    let mut out = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io)?;
    out.write_all(&json).map_err(io)?;
    out.sync_all().map_err(io)
}

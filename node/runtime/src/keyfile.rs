//! Key files on disk: written owner-only and never overwritten. The format itself (JSON with the
//! public key and the secret seed) is `kubechain_types::keyfile`, shared with the operator.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use kubechain_types::SigningKey;
use kubechain_types::keyfile::{self, KeyFileError};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("no randomness: {0}")]
    Randomness(String),
    // Never includes the file's content: it holds the secret.
    #[error("{path}: not a kubechain key file ({reason})")]
    Malformed { path: String, reason: KeyFileError },
}

pub fn generate() -> Result<SigningKey, KeyError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|error| KeyError::Randomness(error.to_string()))?;
    Ok(SigningKey::from_seed(seed))
}

/// Writes `key` to a new file readable only by its owner; refuses to overwrite.
pub fn write(path: &Path, key: &SigningKey) -> Result<(), KeyError> {
    let io = |source| KeyError::Io { path: path.display().to_string(), source };
    let mut out = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io)?;
    out.write_all(&keyfile::to_json(key)).map_err(io)?;
    out.sync_all().map_err(io)
}

/// Reads a key file; checks that the secret matches the public key written beside it.
pub fn read(path: &Path) -> Result<SigningKey, KeyError> {
    let bytes =
        std::fs::read(path).map_err(|source| KeyError::Io { path: path.display().to_string(), source })?;
    keyfile::from_json(&bytes)
        .map_err(|reason| KeyError::Malformed { path: path.display().to_string(), reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_key_reads_back_and_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.key");
        let key = generate().unwrap();
        write(&path, &key).unwrap();
        assert_eq!(read(&path).unwrap().public_key(), key.public_key());
        assert!(write(&path, &generate().unwrap()).is_err());
        let mode = std::fs::metadata(&path).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
    }

    #[test]
    fn a_damaged_key_file_is_refused_without_echoing_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.key");
        let other = generate().unwrap().public_key();
        let secret = "11".repeat(32);
        std::fs::write(&path, format!(r#"{{"public_key":"{other}","secret_seed":"{secret}"}}"#)).unwrap();
        let error = read(&path).unwrap_err().to_string();
        assert!(error.contains("does not belong") && !error.contains(&secret), "{error}");
    }
}

//! The key-file format: JSON with the public key and the 32-byte secret seed in hex, e.g.
//! `{"public_key": "…", "secret_seed": "…"}`. The node reads it from disk (`kubechain keygen`
//! writes it) and the operator stores the same bytes in a Secret, so both share this code.

use serde::{Deserialize, Serialize};

use crate::crypto::{PublicKey, SigningKey};

// No Debug: it holds the secret.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    public_key: PublicKey,
    /// The 32-byte ed25519 seed, hex.
    secret_seed: String,
}

/// Why bytes are not a key file. Never carries the bytes: they hold the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    #[error("expected JSON with public_key and secret_seed")]
    NotJson,
    #[error("secret_seed is not 32 bytes of hex")]
    BadSeed,
    #[error("public_key does not belong to secret_seed")]
    KeyMismatch,
}

/// The key file's bytes (pretty JSON, no final newline).
pub fn to_json(key: &SigningKey) -> Vec<u8> {
    let file = KeyFile { public_key: key.public_key(), secret_seed: hex::encode(key.seed()) };
    // A struct of two strings always serializes.
    serde_json::to_vec_pretty(&file).unwrap_or_default()
}

/// Parses a key file; the public key written beside the secret must belong to it, which catches
/// a file pieced together from two keys.
pub fn from_json(bytes: &[u8]) -> Result<SigningKey, KeyFileError> {
    // serde_json's error may quote the input, so it is dropped.
    let file: KeyFile = serde_json::from_slice(bytes).map_err(|_| KeyFileError::NotJson)?;
    let seed: [u8; 32] = hex::decode(&file.secret_seed)
        .ok()
        .and_then(|seed| seed.try_into().ok())
        .ok_or(KeyFileError::BadSeed)?;
    let key = SigningKey::from_seed(seed);
    if key.public_key() != file.public_key {
        return Err(KeyFileError::KeyMismatch);
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_round_trips_through_its_exact_bytes() {
        let key = SigningKey::from_seed([9; 32]);
        let json = to_json(&key);
        let expected = format!(
            "{{\n  \"public_key\": \"{}\",\n  \"secret_seed\": \"{}\"\n}}",
            key.public_key(),
            "09".repeat(32)
        );
        assert_eq!(String::from_utf8(json.clone()).unwrap(), expected);
        assert_eq!(from_json(&json).unwrap().public_key(), key.public_key());
    }

    #[test]
    fn bad_files_are_refused_without_echoing_the_secret() {
        let other = SigningKey::from_seed([1; 32]).public_key();
        let secret = "22".repeat(32);
        let mismatched = format!(r#"{{"public_key":"{other}","secret_seed":"{secret}"}}"#);
        let short = format!(r#"{{"public_key":"{other}","secret_seed":"{}"}}"#, "22".repeat(31));
        let extra = format!(r#"{{"public_key":"{other}","secret_seed":"{secret}","x":1}}"#);
        let cases = [
            (mismatched.as_bytes(), KeyFileError::KeyMismatch),
            (short.as_bytes(), KeyFileError::BadSeed),
            (extra.as_bytes(), KeyFileError::NotJson),
            (secret.as_bytes(), KeyFileError::NotJson),
        ];
        for (bytes, expected) in cases {
            let error = from_json(bytes).unwrap_err();
            assert_eq!(error, expected);
            assert!(!error.to_string().contains(&secret[..16]), "{error}");
        }
    }
}

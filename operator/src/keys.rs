//! Key generation, kept out of [`crate::build`] so the builders stay deterministic: they take
//! keys as input.

use kubechain_types::SigningKey;

/// A fresh ed25519 key from the operating system's randomness.
pub fn generate_key() -> Result<SigningKey, getrandom::Error> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)?;
    Ok(SigningKey::from_seed(seed))
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_keys_differ() {
        let first = super::generate_key().unwrap();
        let second = super::generate_key().unwrap();
        assert_ne!(first.public_key(), second.public_key());
    }
}

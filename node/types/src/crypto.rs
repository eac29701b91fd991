//! Hashes, ed25519 keys and domain-separated signatures.

use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::Signer;
use rand_chacha::rand_core::SeedableRng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// What a signature is for. The label and the chain id are part of every signed message, so a
/// transaction signature can never pass as a vote, nor a signature on one chain as one on another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Domain {
    Transaction,
    PrePrepare,
    Prepare,
    Commit,
    Checkpoint,
    ViewChange,
    NewView,
    PeerHandshake,
}

impl Domain {
    pub const ALL: [Domain; 8] = [
        Domain::Transaction,
        Domain::PrePrepare,
        Domain::Prepare,
        Domain::Commit,
        Domain::Checkpoint,
        Domain::ViewChange,
        Domain::NewView,
        Domain::PeerHandshake,
    ];

    pub const fn label(self) -> &'static str {
        match self {
            Domain::Transaction => "kubechain/v1/transaction",
            Domain::PrePrepare => "kubechain/v1/pre-prepare",
            Domain::Prepare => "kubechain/v1/prepare",
            Domain::Commit => "kubechain/v1/commit",
            Domain::Checkpoint => "kubechain/v1/checkpoint",
            Domain::ViewChange => "kubechain/v1/view-change",
            Domain::NewView => "kubechain/v1/new-view",
            Domain::PeerHandshake => "kubechain/v1/peer-handshake",
        }
    }
}

/// The exact bytes an ed25519 signature covers: `encode((label, chain_id))` followed by the
/// canonical encoding of the signed payload.
pub fn signing_bytes(domain: Domain, chain_id: &str, payload: &[u8]) -> Vec<u8> {
    let mut bytes = crate::encoding::encode(&(domain.label(), chain_id));
    bytes.extend_from_slice(payload);
    bytes
}

macro_rules! hex_bytes {
    ($name:ident, $len:expr, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            pub const LEN: usize = $len;

            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            pub fn from_hex(text: &str) -> Result<Self, hex::FromHexError> {
                let mut bytes = [0u8; $len];
                hex::decode_to_slice(text, &mut bytes)?;
                Ok(Self(bytes))
            }

            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = hex::FromHexError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::from_hex(text)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Short form: enough to tell values apart in logs and test failures.
                write!(f, "{}…", &self.to_hex()[..12])
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.to_hex())
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "pattern": format!("^[0-9a-f]{{{}}}$", 2 * $len),
                    "description": concat!($doc, " Lowercase hex."),
                })
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <String as Deserialize>::deserialize(deserializer)?;
                Self::from_hex(&text).map_err(|error| {
                    serde::de::Error::custom(format!("expected {} hex characters: {error}", 2 * $len))
                })
            }
        }
    };
}

hex_bytes!(Hash, 32, "A SHA-256 digest.");
hex_bytes!(PublicKey, 32, "An ed25519 public key: the identity of a validator or a client.");
hex_bytes!(Signature, 64, "An ed25519 signature.");

impl Hash {
    pub const ZERO: Hash = Hash([0; 32]);

    pub fn digest(bytes: &[u8]) -> Hash {
        Hash(Sha256::digest(bytes).into())
    }

    /// SHA-256 over the concatenation of `parts`, without copying them together first.
    pub fn digest_parts(parts: &[&[u8]]) -> Hash {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update(part);
        }
        Hash(hasher.finalize().into())
    }

    /// Number of leading zero bits, the measure of proof-of-work.
    pub fn leading_zero_bits(&self) -> u32 {
        let mut bits = 0;
        for byte in self.0 {
            if byte == 0 {
                bits += 8;
            } else {
                return bits + byte.leading_zeros();
            }
        }
        bits
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("public key is not a valid ed25519 point")]
    InvalidKey,
    #[error("signature does not verify")]
    Mismatch,
}

impl PublicKey {
    /// True if the bytes are a key a validator, admin or member may register: a point on the
    /// curve, not of small order. This is a registration check, not part of the signature rule:
    /// verification accepts any point, and for a small-order key anyone can make signatures that
    /// verify (`R` of small order and `s = 0` satisfy the equation for every message).
    pub fn is_valid(&self) -> bool {
        ed25519_dalek::VerifyingKey::from_bytes(&self.0).is_ok_and(|key| !key.is_weak())
    }

    /// Verifies `signature` over `payload` for `domain` on `chain_id` under the ZIP-215 rules
    /// (docs/encoding.md section 7.2): the verdict is a function of the bytes alone, the same on
    /// every node and the same as [`verify_batch`] gives for this signature in any batch.
    pub fn verify(
        &self,
        domain: Domain,
        chain_id: &str,
        payload: &[u8],
        signature: &Signature,
    ) -> Result<(), SignatureError> {
        if cfg!(feature = "bug-strict-single") {
            // Deliberately wrong: the old cofactorless single check, which disagrees with the
            // (cofactored) batch on a torsion component in R.
            let key =
                ed25519_dalek::VerifyingKey::from_bytes(&self.0).map_err(|_| SignatureError::InvalidKey)?;
            let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
            return key
                .verify_strict(&signing_bytes(domain, chain_id, payload), &signature)
                .map_err(|_| SignatureError::Mismatch);
        }
        let key = ed25519_zebra::VerificationKey::try_from(self.0).map_err(|_| SignatureError::InvalidKey)?;
        key.verify(
            &ed25519_zebra::Signature::from_bytes(&signature.0),
            &signing_bytes(domain, chain_id, payload),
        )
        .map_err(|_| SignatureError::Mismatch)
    }
}

/// One signature to check: `signature` by `key` over `payload` for `domain` on `chain_id`.
#[derive(Clone, Copy, Debug)]
pub struct SignedPayload<'a> {
    pub key: &'a PublicKey,
    pub domain: Domain,
    pub chain_id: &'a str,
    pub payload: &'a [u8],
    pub signature: &'a Signature,
}

impl SignedPayload<'_> {
    pub fn verify(&self) -> Result<(), SignatureError> {
        self.key.verify(self.domain, self.chain_id, self.payload, self.signature)
    }
}

/// Verifies `items` together, one verdict per item, each the verdict of [`PublicKey::verify`].
///
/// The ZIP-215 batch equation is the cofactored one, so a batch holds when every item verifies
/// alone and fails when one does not (but with probability about 2^-128 over the random
/// weights): a signature's verdict never depends on its companions. When the batch fails, each item is verified alone
/// to say which. The weights come from the operating system, not from the caller: an attacker
/// who could predict them could make a batch of bad signatures pass. (The verdicts do not depend
/// on them, so a deterministic simulation stays deterministic.)
pub fn verify_batch(items: &[SignedPayload<'_>]) -> Vec<bool> {
    let verify_each = || items.iter().map(|item| item.verify().is_ok()).collect();
    if items.len() < 2 {
        return verify_each();
    }
    let mut seed = [0u8; 32];
    if getrandom::fill(&mut seed).is_err() {
        // Without unpredictable weights a batch proves nothing; one by one needs none.
        return verify_each();
    }
    let mut batch = ed25519_zebra::batch::Verifier::new();
    for item in items {
        let message = signing_bytes(item.domain, item.chain_id, item.payload);
        let signature = ed25519_zebra::Signature::from_bytes(&item.signature.0);
        batch.queue((ed25519_zebra::VerificationKeyBytes::from(item.key.0), signature, message.as_slice()));
    }
    match batch.verify(rand_chacha::ChaCha20Rng::from_seed(seed)) {
        Ok(()) => vec![true; items.len()],
        Err(_) => verify_each(),
    }
}

/// An ed25519 private key. Its `Debug` shows only the public half, so it cannot leak into logs.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// The key whose 32-byte secret seed is `seed`.
    pub fn from_seed(seed: [u8; 32]) -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// The secret seed, for writing the key to its Secret or key file. Handle with care.
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    pub fn sign(&self, domain: Domain, chain_id: &str, payload: &[u8]) -> Signature {
        Signature(self.0.sign(&signing_bytes(domain, chain_id, payload)).to_bytes())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(public: {})", self.public_key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_bound_to_domain_and_chain() {
        let key = SigningKey::from_seed([7; 32]);
        let signature = key.sign(Domain::Transaction, "chain-a", b"payload");
        let public = key.public_key();
        assert_eq!(public.verify(Domain::Transaction, "chain-a", b"payload", &signature), Ok(()));
        assert_eq!(
            public.verify(Domain::Prepare, "chain-a", b"payload", &signature),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            public.verify(Domain::Transaction, "chain-b", b"payload", &signature),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            public.verify(Domain::Transaction, "chain-a", b"payloae", &signature),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn domain_labels_are_distinct() {
        use std::collections::HashSet;
        let all = Domain::ALL;
        let labels: HashSet<_> = all.iter().map(|domain| domain.label()).collect();
        assert_eq!(labels.len(), all.len());
    }

    #[test]
    fn debug_of_signing_key_hides_the_secret() {
        let key = SigningKey::from_seed([0xab; 32]);
        let shown = format!("{key:?}");
        assert!(!shown.contains(&hex::encode(key.seed())));
        assert!(shown.contains(&key.public_key().to_hex()));
    }

    #[test]
    fn hex_round_trip_and_errors() {
        let hash = Hash::digest(b"abc");
        assert_eq!(hash.to_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(Hash::from_hex(&hash.to_hex()), Ok(hash));
        assert!(Hash::from_hex("abcd").is_err());
        assert!(Hash::from_hex(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn leading_zero_bits_counts_across_bytes() {
        let mut bytes = [0xff; 32];
        assert_eq!(Hash(bytes).leading_zero_bits(), 0);
        bytes[0] = 0;
        bytes[1] = 0b0001_0000;
        assert_eq!(Hash(bytes).leading_zero_bits(), 11);
        assert_eq!(Hash::ZERO.leading_zero_bits(), 256);
    }
}

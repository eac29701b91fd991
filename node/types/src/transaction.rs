//! Signed client transactions.

use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::crypto::{Domain, Hash, PublicKey, Signature, SignatureError, SigningKey};
use crate::encoding::encode;
use crate::genesis::ConsensusParams;

/// A document kept off chain (an object in S3, Blob Storage or GCS) whose content is pinned on
/// chain by its SHA-256 and size.
#[derive(
    Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema,
)]
pub struct DocumentAnchor {
    pub uri: String,
    pub sha256: Hash,
    pub size: u64,
}

/// Changes to the consortium itself; only an admin key may sign them.
#[derive(
    Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum AdminOperation {
    AddMember {
        name: String,
        public_keys: Vec<PublicKey>,
    },
    RemoveMember {
        name: String,
    },
    AddValidator {
        public_key: PublicKey,
    },
    RemoveValidator {
        public_key: PublicKey,
    },
    SetConsensusParams {
        params: ConsensusParams,
    },
    /// Lets another key sign admin transactions.
    AddAdmin {
        public_key: PublicKey,
    },
    /// Takes admin rights from a key other than the signer's own, so the consortium always keeps
    /// the admin that signed the last removal.
    RemoveAdmin {
        public_key: PublicKey,
    },
}

/// One state change. Keys live in the sending member's namespace.
#[derive(
    Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum Operation {
    Put {
        key: String,
        /// The value's bytes, hex.
        #[serde(with = "hex_vec")]
        #[schemars(with = "String", regex(pattern = "^([0-9a-f]{2})*$"))]
        value: Vec<u8>,
    },
    Delete {
        key: String,
    },
    Anchor(DocumentAnchor),
    Admin(AdminOperation),
}

/// What the sender signs: the chain id stops cross-chain replay, the nonce stops replay on this
/// chain (it must be exactly one more than the account's last committed nonce).
#[derive(
    Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema,
)]
pub struct TxBody {
    pub chain_id: String,
    pub sender: PublicKey,
    pub nonce: u64,
    pub operations: Vec<Operation>,
}

#[derive(Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema)]
pub struct Transaction {
    pub body: TxBody,
    pub signature: Signature,
}

impl Transaction {
    /// Signs `body` with `key`; `body.sender` must be `key`'s public key for it to verify.
    pub fn new(body: TxBody, key: &SigningKey) -> Transaction {
        let signature = key.sign(Domain::Transaction, &body.chain_id, &encode(&body));
        Transaction { body, signature }
    }

    /// The transaction id: SHA-256 of the canonical encoding of body and signature.
    pub fn hash(&self) -> Hash {
        Hash::digest(&encode(self))
    }

    /// Checks the sender's signature over the body, for the body's own chain id.
    pub fn verify_signature(&self) -> Result<(), SignatureError> {
        self.body.sender.verify(
            Domain::Transaction,
            &self.body.chain_id,
            &encode(&self.body),
            &self.signature,
        )
    }

    /// Verifies the signatures of `transactions` together ([`crate::crypto::verify_batch`]: each
    /// verdict is the one the transaction gets alone, whatever else is in the batch). One verdict
    /// per transaction.
    pub fn verify_signatures(transactions: &[&Transaction]) -> Vec<bool> {
        let bodies: Vec<Vec<u8>> = transactions.iter().map(|tx| encode(&tx.body)).collect();
        let items: Vec<crate::crypto::SignedPayload<'_>> = transactions
            .iter()
            .zip(&bodies)
            .map(|(tx, body)| crate::crypto::SignedPayload {
                key: &tx.body.sender,
                domain: Domain::Transaction,
                chain_id: &tx.body.chain_id,
                payload: body,
                signature: &tx.signature,
            })
            .collect();
        crate::crypto::verify_batch(&items)
    }

    pub fn is_admin(&self) -> bool {
        self.body.operations.iter().any(|op| matches!(op, Operation::Admin(_)))
    }
}

impl fmt::Debug for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tx({:?} from {:?} #{})", self.hash(), self.body.sender, self.body.nonce)
    }
}

impl fmt::Display for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tx {} from {} nonce {} ({} operations)",
            self.hash(),
            self.body.sender,
            self.body.nonce,
            self.body.operations.len()
        )
    }
}

/// Byte strings as hex in JSON.
mod hex_vec {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::decode;

    fn sample() -> (Transaction, SigningKey) {
        let key = SigningKey::from_seed([1; 32]);
        let body = TxBody {
            chain_id: "trade-ledger-1".into(),
            sender: key.public_key(),
            nonce: 1,
            operations: vec![
                Operation::Put { key: "invoice/17".into(), value: b"paid".to_vec() },
                Operation::Anchor(DocumentAnchor {
                    uri: "s3://acme/invoices/17.pdf".into(),
                    sha256: Hash::digest(b"pdf"),
                    size: 3,
                }),
            ],
        };
        (Transaction::new(body, &key), key)
    }

    #[test]
    fn encoding_round_trips() {
        let (tx, _) = sample();
        let bytes = encode(&tx);
        let back: Transaction = decode(&bytes).unwrap();
        assert_eq!(back, tx);
        assert_eq!(back.hash(), tx.hash());
        let json = serde_json::to_string(&tx).unwrap();
        assert_eq!(serde_json::from_str::<Transaction>(&json).unwrap(), tx);
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let (tx, _) = sample();
        let mut bytes = encode(&tx);
        bytes.push(0);
        assert!(decode::<Transaction>(&bytes).is_err());
    }

    #[test]
    fn signature_covers_body_and_chain() {
        let (tx, _) = sample();
        assert_eq!(tx.verify_signature(), Ok(()));

        let mut other_nonce = tx.clone();
        other_nonce.body.nonce = 2;
        assert!(other_nonce.verify_signature().is_err());

        let mut other_chain = tx.clone();
        other_chain.body.chain_id = "other-chain".into();
        assert!(other_chain.verify_signature().is_err());
    }

    #[test]
    fn transaction_signature_is_not_a_vote() {
        let (tx, _) = sample();
        let payload = encode(&tx.body);
        let as_vote = tx.body.sender.verify(Domain::Commit, &tx.body.chain_id, &payload, &tx.signature);
        assert!(as_vote.is_err());
    }
}

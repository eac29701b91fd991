//! Transactions waiting for a block: bounded, ordered per account by nonce, each signature
//! verified once (in batches) on the way in.

use std::collections::{BTreeMap, HashMap, HashSet};

use kubechain_types::crypto::signing_bytes;
use kubechain_types::encoding::encode;
use kubechain_types::{Domain, Hash, PublicKey, Transaction};

use crate::state::TxError;

/// Why the mempool refused a transaction, beyond what execution checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    #[error("the mempool is full ({0} transactions): retry later")]
    Full(usize),
    #[error("a transaction from this account with nonce {0} is already waiting")]
    Duplicate(u64),
    #[error("nonce {found} is more than {limit} ahead of the account's {committed}")]
    TooFarAhead { found: u64, committed: u64, limit: u64 },
    #[error(transparent)]
    Invalid(#[from] TxError),
}

impl AdmitError {
    pub fn code(&self) -> &'static str {
        match self {
            AdmitError::Full(_) => "mempool_full",
            AdmitError::Duplicate(_) => "duplicate",
            AdmitError::TooFarAhead { .. } => "nonce_too_far_ahead",
            AdmitError::Invalid(error) => error.code(),
        }
    }
}

/// Verifies the signatures of `transactions` together (ed25519 batch verification); on failure
/// falls back to one by one to say which. Returns one verdict per transaction.
pub fn verify_signatures(transactions: &[&Transaction]) -> Vec<bool> {
    if transactions.is_empty() {
        return Vec::new();
    }
    let messages: Vec<Vec<u8>> = transactions
        .iter()
        .map(|tx| signing_bytes(Domain::Transaction, &tx.body.chain_id, &encode(&tx.body)))
        .collect();
    let keys: Option<Vec<ed25519_dalek::VerifyingKey>> = transactions
        .iter()
        .map(|tx| ed25519_dalek::VerifyingKey::from_bytes(tx.body.sender.as_bytes()).ok())
        .collect();
    if let Some(keys) = keys {
        let signatures: Vec<ed25519_dalek::Signature> =
            transactions.iter().map(|tx| ed25519_dalek::Signature::from_bytes(&tx.signature.0)).collect();
        let message_refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        if ed25519_dalek::verify_batch(&message_refs, &signatures, &keys).is_ok() {
            return vec![true; transactions.len()];
        }
    }
    transactions.iter().map(|tx| tx.verify_signature().is_ok()).collect()
}

#[derive(Debug)]
pub struct Mempool {
    capacity: usize,
    max_nonce_gap: u64,
    by_account: BTreeMap<PublicKey, BTreeMap<u64, Transaction>>,
    len: usize,
    /// Hashes whose signature verified here, so a proposal carrying them is not checked again.
    verified: HashSet<Hash>,
    /// Arrival order of accounts, so proposals serve accounts fairly.
    arrival: HashMap<PublicKey, u64>,
    next_arrival: u64,
}

impl Mempool {
    pub fn new(capacity: usize) -> Mempool {
        Mempool {
            capacity,
            max_nonce_gap: 10_000,
            by_account: BTreeMap::new(),
            len: 0,
            verified: HashSet::new(),
            arrival: HashMap::new(),
            next_arrival: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_verified(&self, hash: &Hash) -> bool {
        self.verified.contains(hash)
    }

    pub fn mark_verified(&mut self, hash: Hash) {
        self.verified.insert(hash);
    }

    pub fn contains(&self, tx: &Transaction) -> bool {
        self.by_account.get(&tx.body.sender).is_some_and(|txs| txs.contains_key(&tx.body.nonce))
    }

    /// Adds a transaction whose signature and stateless checks passed; `committed_nonce` is the
    /// account's last committed nonce.
    pub fn insert(&mut self, tx: Transaction, committed_nonce: u64) -> Result<Hash, AdmitError> {
        let nonce = tx.body.nonce;
        if nonce <= committed_nonce {
            return Err(TxError::Nonce { expected: committed_nonce + 1, found: nonce }.into());
        }
        if nonce > committed_nonce + self.max_nonce_gap {
            return Err(AdmitError::TooFarAhead {
                found: nonce,
                committed: committed_nonce,
                limit: self.max_nonce_gap,
            });
        }
        if self.contains(&tx) {
            return Err(AdmitError::Duplicate(nonce));
        }
        if self.len >= self.capacity {
            return Err(AdmitError::Full(self.capacity));
        }
        let hash = tx.hash();
        self.verified.insert(hash);
        let sender = tx.body.sender;
        if !self.arrival.contains_key(&sender) {
            self.arrival.insert(sender, self.next_arrival);
            self.next_arrival += 1;
        }
        self.by_account.entry(sender).or_default().insert(nonce, tx);
        self.len += 1;
        Ok(hash)
    }

    /// Candidates for a block, oldest account first, each account's transactions in nonce order.
    pub fn candidates(&self) -> impl Iterator<Item = &Transaction> {
        let mut accounts: Vec<(&PublicKey, &BTreeMap<u64, Transaction>)> = self.by_account.iter().collect();
        accounts.sort_by_key(|(account, _)| self.arrival.get(account).copied().unwrap_or(u64::MAX));
        accounts.into_iter().flat_map(|(_, txs)| txs.values())
    }

    /// Drops what can no longer run: transactions at or below each account's committed nonce.
    pub fn remove_committed(&mut self, committed_nonces: impl IntoIterator<Item = (PublicKey, u64)>) {
        for (account, committed) in committed_nonces {
            let Some(txs) = self.by_account.get_mut(&account) else { continue };
            let keep = txs.split_off(&(committed + 1));
            for tx in txs.values() {
                self.verified.remove(&tx.hash());
            }
            self.len -= txs.len();
            *txs = keep;
            if txs.is_empty() {
                self.by_account.remove(&account);
                self.arrival.remove(&account);
            }
        }
    }

    /// Forgets signatures verified for transactions now committed (bounded memory).
    pub fn forget_verified(&mut self, hashes: impl IntoIterator<Item = Hash>) {
        for hash in hashes {
            self.verified.remove(&hash);
        }
    }
}

//! kubechain's application: what transactions do to the state, the state root, speculative
//! execution of blocks in flight, and the mempool. [`Ledger`] is the consensus core's
//! [`Application`]; it reads committed state through [`StateView`] (RocksDB in the node) and keeps
//! uncommitted blocks' changes in memory, named by the state root they produce.

pub mod mempool;
pub mod state;

use std::collections::{HashMap, HashSet};

use kubechain_consensus::{Application, Built, ExecutionError, Origin};
use kubechain_types::{Block, Genesis, Hash, PublicKey, Transaction};

pub use mempool::{AdmitError, Mempool, Refusals, TxStatus};
pub use state::{Changes, StateView, TxError};

/// The state root genesis starts from.
pub fn genesis_root(genesis: &Genesis) -> Hash {
    state::next_root(&Hash::ZERO, &state::genesis_changes(genesis))
}

/// The changes one block made on top of its parent state.
#[derive(Debug)]
struct Overlay {
    parent: Hash,
    height: u64,
    changes: Changes,
}

#[derive(Debug)]
pub struct Ledger<S: StateView> {
    chain_id: String,
    durable: S,
    /// Root of the state in `durable`.
    durable_root: Hash,
    /// Root of the last committed block (durable, or about to be written).
    committed_root: Hash,
    /// Executed blocks not yet durable, by the root they produce. Each chains to `durable_root`.
    overlays: HashMap<Hash, Overlay>,
    mempool: Mempool,
    /// How long a transaction may wait for a block before it expires.
    mempool_ttl_ms: u64,
    /// Transactions that left the mempool uncommitted since the last `take_dropped`.
    dropped: Vec<(Hash, AdmitError)>,
}

/// The state as of some root: overlays down to the durable state.
pub struct StateAt<'a, S: StateView> {
    ledger: &'a Ledger<S>,
    root: Hash,
}

impl<S: StateView> std::fmt::Debug for StateAt<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StateAt({:?})", self.root)
    }
}

impl<S: StateView> StateView for StateAt<'_, S> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let mut root = self.root;
        while root != self.ledger.durable_root {
            let overlay = self.ledger.overlays.get(&root)?;
            if let Some(value) = overlay.changes.get(key) {
                return value.clone();
            }
            root = overlay.parent;
        }
        self.ledger.durable.get(key)
    }
}

impl<S: StateView> Ledger<S> {
    /// A ledger over `durable`, whose content has root `durable_root` (the genesis root, or the
    /// state root of the last committed block after a restart). Its mempool holds at most
    /// `mempool_capacity` transactions, each for at most `mempool_ttl_ms`.
    pub fn new(
        chain_id: &str,
        durable: S,
        durable_root: Hash,
        mempool_capacity: usize,
        mempool_ttl_ms: u64,
    ) -> Ledger<S> {
        Ledger {
            chain_id: chain_id.to_string(),
            durable,
            durable_root,
            committed_root: durable_root,
            overlays: HashMap::new(),
            mempool: Mempool::new(mempool_capacity),
            mempool_ttl_ms,
            dropped: Vec::new(),
        }
    }

    fn knows(&self, root: &Hash) -> bool {
        *root == self.durable_root || self.overlays.contains_key(root)
    }

    fn at(&self, root: Hash) -> StateAt<'_, S> {
        StateAt { ledger: self, root }
    }

    /// The committed state, for queries.
    pub fn committed(&self) -> StateAt<'_, S> {
        self.at(self.committed_root)
    }

    pub fn mempool(&self) -> &Mempool {
        &self.mempool
    }

    /// The changes of the block whose state root is `root`, for the runtime's atomic block write.
    pub fn changes_of(&self, root: &Hash) -> Option<&Changes> {
        self.overlays.get(root).map(|overlay| &overlay.changes)
    }

    /// `hashes` left the mempool uncommitted for `reason`: the runtime is told, and the mempool
    /// remembers why for status queries.
    fn dropped_for(&mut self, hashes: Vec<Hash>, reason: &AdmitError) {
        for hash in hashes {
            self.mempool.remember_refusal(hash, reason.clone());
            self.dropped.push((hash, reason.clone()));
        }
    }

    /// Keeps a block's changes as the speculative state they produce; returns its root.
    fn remember(&mut self, parent: &Hash, height: u64, changes: Changes) -> Hash {
        let root = state::next_root(parent, &changes);
        self.overlays.insert(root, Overlay { parent: *parent, height, changes });
        root
    }
}

impl<S: StateView> Application for Ledger<S> {
    type Refusal = AdmitError;

    fn committed_state_root(&self) -> Hash {
        self.committed_root
    }

    fn build(&mut self, parent_state: &Hash, height: u64, max: usize) -> Result<Built, ExecutionError> {
        if !self.knows(parent_state) {
            return Err(ExecutionError::UnknownParentState(*parent_state));
        }
        let mut changes = Changes::new();
        let mut transactions = Vec::new();
        let mut invalid = Vec::new();
        let parent = self.at(*parent_state);
        let mut bytes = 0;
        let mut skipped = HashSet::new();
        for tx in self.mempool.candidates(|sender| state::nonce(&parent, sender)) {
            let size = state::encoded_len(tx);
            if transactions.len() >= max || bytes + size > state::MAX_BLOCK_BYTES {
                break;
            }
            if skipped.contains(&tx.body.sender) {
                continue;
            }
            match state::apply(&parent, &mut changes, tx) {
                Ok(()) => {
                    bytes += size;
                    transactions.push(tx.clone());
                }
                // It can no longer run (a revoked member, a changed set): neither can the rest of
                // its account. The client learns why from the transaction's status.
                Err(error) => {
                    invalid.push((tx.body.sender, tx.body.nonce, error));
                    skipped.insert(tx.body.sender);
                }
            }
        }
        self.mempool.served(transactions.iter().map(|tx: &Transaction| &tx.body.sender));
        for (sender, nonce, error) in invalid {
            let hashes = self.mempool.evict_from(&sender, nonce);
            self.dropped_for(hashes, &AdmitError::Invalid(error));
        }
        let state_root = self.remember(parent_state, height, changes);
        Ok(Built { transactions, state_root })
    }

    fn execute(
        &mut self,
        parent_state: &Hash,
        height: u64,
        transactions: &[Transaction],
    ) -> Result<Hash, ExecutionError> {
        if !self.knows(parent_state) {
            return Err(ExecutionError::UnknownParentState(*parent_state));
        }
        let bytes: usize = transactions.iter().map(state::encoded_len).sum();
        if bytes > state::MAX_BLOCK_BYTES {
            return Err(ExecutionError::InvalidTransaction {
                tx: Hash::ZERO,
                reason: format!("block of {bytes} bytes exceeds {}", state::MAX_BLOCK_BYTES),
            });
        }
        // Each signature is verified once per node: those admitted through the mempool already were.
        let hashes: Vec<Hash> = transactions.iter().map(Transaction::hash).collect();
        let unverified: Vec<(&Transaction, Hash)> = transactions
            .iter()
            .zip(&hashes)
            .filter(|(_, hash)| !self.mempool.is_verified(hash))
            .map(|(tx, hash)| (tx, *hash))
            .collect();
        let to_check: Vec<&Transaction> = unverified.iter().map(|(tx, _)| *tx).collect();
        for ((_, hash), valid) in unverified.iter().zip(Transaction::verify_signatures(&to_check)) {
            if !valid {
                return Err(ExecutionError::InvalidTransaction {
                    tx: *hash,
                    reason: TxError::BadSignature.to_string(),
                });
            }
        }
        for (_, hash) in unverified {
            self.mempool.mark_verified(hash);
        }
        let mut changes = Changes::new();
        for (tx, hash) in transactions.iter().zip(&hashes) {
            let invalid =
                |error: TxError| ExecutionError::InvalidTransaction { tx: *hash, reason: error.to_string() };
            state::check_stateless(tx, &self.chain_id).map_err(invalid)?;
            state::apply(&self.at(*parent_state), &mut changes, tx).map_err(invalid)?;
        }
        Ok(self.remember(parent_state, height, changes))
    }

    fn commit(&mut self, block: &Block) {
        self.committed_root = block.header.state_root;
        let senders: Vec<PublicKey> = block.transactions.iter().map(|tx| tx.body.sender).collect();
        let committed = self.committed();
        let nonces: Vec<(PublicKey, u64)> =
            senders.into_iter().map(|sender| (sender, state::nonce(&committed, &sender))).collect();
        self.mempool.remove_committed(nonces);
        self.mempool.forget_verified(block.transactions.iter().map(Transaction::hash));
    }

    /// Only transactions a block could take: one behind a nonce gap must not make the replicas
    /// suspect the primary.
    fn pending(&self) -> usize {
        self.mempool.ready()
    }

    /// Admission: chain and shape, signatures (verified together), then execution and nonce
    /// against the committed state. Clients' refusals are remembered for status queries.
    fn admit(
        &mut self,
        now_ms: u64,
        transactions: Vec<Transaction>,
        origin: Origin,
    ) -> Vec<Result<Hash, AdmitError>> {
        // Cheap checks first (chain, shape and size, a known sender): only what passes them costs
        // a signature check.
        let committed = self.committed();
        let stateless: Vec<Result<(), TxError>> = transactions
            .iter()
            .map(|tx| {
                state::check_stateless(tx, &self.chain_id)?;
                state::check_sender(&committed, &tx.body.sender)
            })
            .collect();
        let to_verify: Vec<&Transaction> =
            transactions.iter().zip(&stateless).filter(|(_, ok)| ok.is_ok()).map(|(tx, _)| tx).collect();
        let mut signatures = Transaction::verify_signatures(&to_verify).into_iter();
        let mut verdicts = Vec::with_capacity(transactions.len());
        for (tx, stateless) in transactions.into_iter().zip(stateless) {
            let hash = tx.hash();
            let verdict = stateless.map_err(AdmitError::from).and_then(|()| {
                if !signatures.next().unwrap_or(false) {
                    return Err(TxError::BadSignature.into());
                }
                let committed = self.committed();
                let committed_nonce = state::nonce(&committed, &tx.body.sender);
                if tx.body.nonce <= committed_nonce {
                    return Err(TxError::Nonce { expected: committed_nonce + 1, found: tx.body.nonce }.into());
                }
                state::check_executable(&committed, &tx)?;
                self.mempool.insert_hashed(tx, hash, committed_nonce, now_ms)
            });
            match &verdict {
                // "Full" is no verdict on the transaction itself: a retry may succeed.
                Err(AdmitError::Full(_)) => {}
                Err(reason) if origin == Origin::Client => {
                    self.mempool.remember_refusal(hash, reason.clone())
                }
                _ => {}
            }
            verdicts.push(verdict);
        }
        verdicts
    }

    /// Drops transactions admitted more than the TTL ago that no block took.
    fn expire(&mut self, now_ms: u64) -> usize {
        let expired = self.mempool.expire(now_ms.saturating_sub(self.mempool_ttl_ms));
        let count = expired.len();
        self.dropped_for(expired, &AdmitError::Expired(self.mempool_ttl_ms / 1000));
        count
    }

    fn take_dropped(&mut self) -> Vec<(Hash, AdmitError)> {
        std::mem::take(&mut self.dropped)
    }

    /// Reads go through to the durable state from now on; speculative states that can no longer
    /// be reached are dropped.
    fn persisted(&mut self, root: &Hash) {
        let root = *root;
        let Some(height) = self.overlays.get(&root).map(|overlay| overlay.height) else { return };
        self.durable_root = root;
        self.overlays.retain(|_, overlay| overlay.height > height);
        // Keep only overlays that still chain down to the durable state.
        let reachable: Vec<Hash> = self
            .overlays
            .keys()
            .copied()
            .filter(|start| {
                let mut current = *start;
                loop {
                    if current == self.durable_root {
                        return true;
                    }
                    match self.overlays.get(&current) {
                        Some(overlay) => current = overlay.parent,
                        None => return false,
                    }
                }
            })
            .collect();
        self.overlays.retain(|root, _| reachable.contains(root));
    }
}

//! A small deterministic application for the simulation: per-account nonces, so a transaction
//! can run only once and only in order, with real signature and membership checks. Admin
//! transactions (validator changes) need an admin key; their effect on the validator set is the
//! consensus core's business.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

use kubechain_consensus::{Application, Built, ExecutionError, Origin};
use kubechain_types::encoding::encode;
use kubechain_types::{Block, Hash, PublicKey, Transaction};

/// Account nonces: the whole application state.
pub type Nonces = BTreeMap<PublicKey, u64>;

/// The state root after a block that leaves `nonces`, on top of `parent`: a hash chain like the
/// ledger's, so every block (an empty one too) has its own root.
pub fn state_root(parent: &Hash, nonces: &Nonces) -> Hash {
    Hash::digest_parts(&[b"sim/state", parent.as_bytes(), &encode(nonces)])
}

/// The root of the genesis state (no account has a nonce yet).
pub fn genesis_root() -> Hash {
    state_root(&Hash::ZERO, &Nonces::new())
}

/// Every signature verdict the honest replicas reached, shared by their applications: the first
/// verdict on each transaction, and the first time another replica reached the other one.
#[derive(Debug, Default)]
pub struct Verdicts {
    first: BTreeMap<Hash, bool>,
    pub disagreement: Option<(Hash, bool)>,
}

impl Verdicts {
    fn record(&mut self, tx: Hash, valid: bool) {
        let first = *self.first.entry(tx).or_insert(valid);
        if first != valid && self.disagreement.is_none() {
            self.disagreement = Some((tx, valid));
        }
    }
}

#[derive(Debug)]
pub struct SimApp {
    chain_id: String,
    members: BTreeSet<PublicKey>,
    admins: BTreeSet<PublicKey>,
    committed: Nonces,
    committed_root: Hash,
    /// Speculative states by root, with the height that produced them (for pruning).
    states: HashMap<Hash, (u64, Nonces)>,
    mempool: BTreeMap<(PublicKey, u64), Transaction>,
    /// Transactions whose signature this replica already checked: each is verified once.
    verified: BTreeSet<Hash>,
    /// Where an honest replica's verdicts go (none for a Byzantine one).
    verdicts: Option<Rc<RefCell<Verdicts>>>,
}

impl SimApp {
    /// The application with `committed` (whose root is `committed_root`) as its durable state
    /// (empty at genesis).
    pub fn new(
        chain_id: &str,
        members: BTreeSet<PublicKey>,
        admins: BTreeSet<PublicKey>,
        (committed, committed_root): (Nonces, Hash),
        height: u64,
        verdicts: Option<Rc<RefCell<Verdicts>>>,
    ) -> SimApp {
        let states = HashMap::from([(committed_root, (height, committed.clone()))]);
        SimApp {
            chain_id: chain_id.to_string(),
            members,
            admins,
            committed,
            committed_root,
            states,
            mempool: BTreeMap::new(),
            verified: BTreeSet::new(),
            verdicts,
        }
    }

    fn record(&self, tx: Hash, valid: bool) {
        if let Some(verdicts) = &self.verdicts {
            verdicts.borrow_mut().record(tx, valid);
        }
    }

    /// Checks the signatures of `transactions` not checked here yet, in one batch as the ledger
    /// does for a submission and for a block; returns the hashes found invalid. (A transaction
    /// checked alone, by `check`, must get the same verdict.)
    fn verify_batch_of(&mut self, transactions: &[Transaction]) -> Vec<Hash> {
        let unverified: Vec<&Transaction> =
            transactions.iter().filter(|tx| !self.verified.contains(&tx.hash())).collect();
        let mut invalid = Vec::new();
        for (tx, valid) in unverified.iter().zip(Transaction::verify_signatures(&unverified)) {
            let hash = tx.hash();
            self.record(hash, valid);
            if valid {
                self.verified.insert(hash);
            } else {
                invalid.push(hash);
            }
        }
        invalid
    }

    pub fn committed(&self) -> &Nonces {
        &self.committed
    }

    /// Mempool admission: what the runtime's API does before a transaction reaches consensus.
    pub fn submit(&mut self, tx: Transaction) -> bool {
        let key = (tx.body.sender, tx.body.nonce);
        let stale = self.committed.get(&tx.body.sender).copied().unwrap_or(0) >= tx.body.nonce;
        if stale || self.mempool.contains_key(&key) || self.check(&tx).is_err() {
            return false;
        }
        self.mempool.insert(key, tx);
        true
    }

    fn check(&mut self, tx: &Transaction) -> Result<(), String> {
        if tx.body.chain_id != self.chain_id {
            return Err("wrong chain".into());
        }
        let allowed = if tx.is_admin() { &self.admins } else { &self.members };
        if !allowed.contains(&tx.body.sender) {
            return Err("sender may not send this".into());
        }
        let hash = tx.hash();
        if !self.verified.contains(&hash) {
            let verdict = tx.verify_signature();
            self.record(hash, verdict.is_ok());
            verdict.map_err(|e| e.to_string())?;
            self.verified.insert(hash);
        }
        Ok(())
    }

    fn apply(&mut self, nonces: &mut Nonces, tx: &Transaction) -> Result<(), ExecutionError> {
        let invalid = |reason: String| ExecutionError::InvalidTransaction { tx: tx.hash(), reason };
        self.check(tx).map_err(invalid)?;
        let next = nonces.get(&tx.body.sender).copied().unwrap_or(0) + 1;
        if tx.body.nonce != next {
            return Err(invalid(format!("nonce {} but the account expects {next}", tx.body.nonce)));
        }
        nonces.insert(tx.body.sender, next);
        Ok(())
    }

    fn parent(&self, parent_state: &Hash) -> Result<Nonces, ExecutionError> {
        self.states
            .get(parent_state)
            .map(|(_, nonces)| nonces.clone())
            .ok_or(ExecutionError::UnknownParentState(*parent_state))
    }
}

/// The simulation's mempool says only that it did not take a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotAdmitted;

impl Application for SimApp {
    type Refusal = NotAdmitted;

    fn committed_state_root(&self) -> Hash {
        self.committed_root
    }

    fn build(&mut self, parent_state: &Hash, height: u64, max: usize) -> Result<Built, ExecutionError> {
        let mut nonces = self.parent(parent_state)?;
        let mut transactions = Vec::new();
        let candidates: Vec<Transaction> = self.mempool.values().cloned().collect();
        for tx in candidates {
            if transactions.len() >= max {
                break;
            }
            let mut trial = nonces.clone();
            if self.apply(&mut trial, &tx).is_ok() {
                nonces = trial;
                transactions.push(tx);
            }
        }
        let state_root = state_root(parent_state, &nonces);
        self.states.insert(state_root, (height, nonces));
        Ok(Built { transactions, state_root })
    }

    fn execute(
        &mut self,
        parent_state: &Hash,
        height: u64,
        transactions: &[Transaction],
    ) -> Result<Hash, ExecutionError> {
        let mut nonces = self.parent(parent_state)?;
        if let Some(tx) = self.verify_batch_of(transactions).first() {
            return Err(ExecutionError::InvalidTransaction { tx: *tx, reason: "bad signature".into() });
        }
        for tx in transactions {
            self.apply(&mut nonces, tx)?;
        }
        let root = state_root(parent_state, &nonces);
        self.states.insert(root, (height, nonces));
        Ok(root)
    }

    fn commit(&mut self, block: &Block) {
        let height = block.height();
        if let Some((_, nonces)) = self.states.get(&block.header.state_root) {
            self.committed = nonces.clone();
            self.committed_root = block.header.state_root;
        }
        self.states.retain(|_, (state_height, _)| *state_height >= height);
        let committed = &self.committed;
        self.mempool.retain(|(sender, nonce), _| committed.get(sender).copied().unwrap_or(0) < *nonce);
    }

    fn pending(&self) -> usize {
        self.mempool.len()
    }

    fn admit(
        &mut self,
        _now_ms: u64,
        transactions: Vec<Transaction>,
        _origin: Origin,
    ) -> Vec<Result<Hash, NotAdmitted>> {
        // Refused ones stay unverified: `submit` checks them again, alone, and must agree.
        self.verify_batch_of(&transactions);
        transactions
            .into_iter()
            .map(|tx| {
                let hash = tx.hash();
                if self.submit(tx) { Ok(hash) } else { Err(NotAdmitted) }
            })
            .collect()
    }
}

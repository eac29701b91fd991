//! Transactions waiting for a block: bounded, ordered per account by nonce, each signature
//! verified once (in batches) on the way in.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use kubechain_types::{Hash, PublicKey, Transaction};

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
    #[error(
        "{0} transactions of this account already wait behind a nonce gap: send the missing nonces first"
    )]
    GapFull(usize),
    #[error("waited {0} s without being included in a block")]
    Expired(u64),
    #[error(transparent)]
    Invalid(#[from] TxError),
}

impl AdmitError {
    pub fn code(&self) -> &'static str {
        match self {
            AdmitError::Full(_) => "mempool_full",
            AdmitError::Duplicate(_) => "duplicate",
            AdmitError::TooFarAhead { .. } => "nonce_too_far_ahead",
            AdmitError::GapFull(_) => "nonce_gap_full",
            AdmitError::Expired(_) => "expired",
            AdmitError::Invalid(error) => error.code(),
        }
    }

    /// Bytes this reason holds on the heap (text a sender chose can be quoted in it).
    pub fn heap_bytes(&self) -> usize {
        match self {
            AdmitError::Invalid(error) => error.heap_bytes(),
            _ => 0,
        }
    }
}

/// What this node's mempool can say about a transaction (committed ones are in storage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxStatus {
    /// Waiting here, or in a proposal this node executed, for a block to commit it.
    Pending,
    /// Refused when a client sent it here, or dropped from the mempool uncommitted.
    Refused(AdmitError),
    /// Never seen here, or forgotten.
    Unknown,
}

/// Refusals remembered, at most: status queries about older ones answer "unknown".
pub const REMEMBERED_REFUSALS: usize = 10_000;
/// Bytes of remembered refusals, at most: anyone who may submit can fill this memory, and a
/// reason can quote a sender's text (a chain id of a transaction's length).
pub const REMEMBERED_REFUSAL_BYTES: usize = 4 * 1024 * 1024;

/// Why recent transactions were refused or dropped, by hash; oldest forgotten first.
#[derive(Debug)]
pub struct Refusals {
    by_hash: HashMap<Hash, AdmitError>,
    order: VecDeque<Hash>,
    bytes: usize,
    max_count: usize,
    max_bytes: usize,
}

impl Refusals {
    pub fn new(max_count: usize, max_bytes: usize) -> Refusals {
        Refusals { by_hash: HashMap::new(), order: VecDeque::new(), bytes: 0, max_count, max_bytes }
    }

    /// What one entry costs: its hash twice (map and order), the reason and the reason's text.
    fn entry_bytes(reason: &AdmitError) -> usize {
        2 * std::mem::size_of::<Hash>() + std::mem::size_of::<AdmitError>() + reason.heap_bytes()
    }

    /// Remembers why `hash` was refused; a later reason for the same hash replaces the earlier
    /// one, which keeps its place in line.
    pub fn remember(&mut self, hash: Hash, reason: AdmitError) {
        let added = Self::entry_bytes(&reason);
        match self.by_hash.insert(hash, reason) {
            Some(replaced) => self.bytes -= Self::entry_bytes(&replaced),
            None => self.order.push_back(hash),
        }
        self.bytes += added;
        while self.order.len() > self.max_count || self.bytes > self.max_bytes {
            let Some(oldest) = self.order.pop_front() else { break };
            if let Some(reason) = self.by_hash.remove(&oldest) {
                self.bytes -= Self::entry_bytes(&reason);
            }
        }
    }

    pub fn get(&self, hash: &Hash) -> Option<&AdmitError> {
        self.by_hash.get(hash)
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Bytes held, as counted against the bound.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// One account's waiting transactions.
#[derive(Debug)]
struct Account {
    /// The account's last committed nonce, as last told.
    committed: u64,
    /// Waiting transactions by nonce, each with the time it was admitted.
    txs: BTreeMap<u64, (Transaction, u64)>,
    /// How many of `txs` run in sequence from `committed + 1`: the ones a block could take now.
    ready: usize,
    /// Arrival order, so proposals serve accounts fairly.
    arrival: u64,
}

impl Account {
    /// Recounts the run of consecutive nonces after `committed`, starting from `known` already
    /// counted; returns the old and new count, for the mempool's total.
    fn recount_ready(&mut self, known: usize) -> (usize, usize) {
        let mut ready = known;
        while self.txs.contains_key(&(self.committed + ready as u64 + 1)) {
            ready += 1;
        }
        (std::mem::replace(&mut self.ready, ready), ready)
    }
}

/// Transactions one account may have waiting behind a nonce gap: without a bound, a few member
/// keys could fill every node's mempool with transactions that cannot run.
pub const MAX_GAPPED_PER_ACCOUNT: usize = 1024;

#[derive(Debug)]
pub struct Mempool {
    capacity: usize,
    max_nonce_gap: u64,
    accounts: HashMap<PublicKey, Account>,
    len: usize,
    /// Sum of the accounts' `ready`: what the replica should expect to see in a block.
    ready: usize,
    /// Hashes whose signature verified here, so a proposal carrying them is not checked again.
    verified: HashSet<Hash>,
    next_arrival: u64,
    /// Why transactions were refused or dropped, for status queries.
    refusals: Refusals,
}

impl Mempool {
    pub fn new(capacity: usize) -> Mempool {
        Mempool {
            capacity,
            max_nonce_gap: 10_000,
            accounts: HashMap::new(),
            len: 0,
            ready: 0,
            verified: HashSet::new(),
            next_arrival: 0,
            refusals: Refusals::new(REMEMBERED_REFUSALS, REMEMBERED_REFUSAL_BYTES),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Transactions that could go into a block now (no nonce gap before them).
    pub fn ready(&self) -> usize {
        self.ready
    }

    pub fn is_verified(&self, hash: &Hash) -> bool {
        self.verified.contains(hash)
    }

    pub fn mark_verified(&mut self, hash: Hash) {
        self.verified.insert(hash);
    }

    /// Remembers that `hash` was refused, or left the mempool uncommitted, and why.
    pub fn remember_refusal(&mut self, hash: Hash, reason: AdmitError) {
        self.refusals.remember(hash, reason);
    }

    /// Pending while verified here and not yet committed; otherwise the reason it was refused or
    /// dropped, if still remembered.
    pub fn status(&self, hash: &Hash) -> TxStatus {
        if self.is_verified(hash) {
            return TxStatus::Pending;
        }
        match self.refusals.get(hash) {
            Some(reason) => TxStatus::Refused(reason.clone()),
            None => TxStatus::Unknown,
        }
    }

    pub fn contains(&self, tx: &Transaction) -> bool {
        self.accounts.get(&tx.body.sender).is_some_and(|account| account.txs.contains_key(&tx.body.nonce))
    }

    /// Adds a transaction whose signature and execution checks passed; `committed_nonce` is the
    /// account's last committed nonce, `now_ms` the admission time (for expiry).
    pub fn insert(&mut self, tx: Transaction, committed_nonce: u64, now_ms: u64) -> Result<Hash, AdmitError> {
        let hash = tx.hash();
        self.insert_hashed(tx, hash, committed_nonce, now_ms)
    }

    /// [`Mempool::insert`] for a caller that already hashed `tx` (`hash` must be `tx.hash()`).
    pub(crate) fn insert_hashed(
        &mut self,
        tx: Transaction,
        hash: Hash,
        committed_nonce: u64,
        now_ms: u64,
    ) -> Result<Hash, AdmitError> {
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
        if let Some(account) = self.accounts.get(&tx.body.sender) {
            let extends_ready = nonce == account.committed + account.ready as u64 + 1;
            if !extends_ready && account.txs.len() - account.ready >= MAX_GAPPED_PER_ACCOUNT {
                return Err(AdmitError::GapFull(MAX_GAPPED_PER_ACCOUNT));
            }
        }
        self.verified.insert(hash);
        let next_arrival = &mut self.next_arrival;
        let account = self.accounts.entry(tx.body.sender).or_insert_with(|| {
            *next_arrival += 1;
            Account { committed: committed_nonce, txs: BTreeMap::new(), ready: 0, arrival: *next_arrival }
        });
        account.txs.insert(nonce, (tx, now_ms));
        let (before, after) = account.recount_ready(account.ready);
        self.ready = self.ready - before + after;
        self.len += 1;
        Ok(hash)
    }

    /// Candidates for a block, fairly across accounts: round by round, the next ready
    /// transaction (in nonce order, from the one after `next_nonce(account)`: blocks in flight
    /// may have taken earlier ones) of each account, the account served longest ago first. A
    /// member that keeps its queue full gets one transaction per round like everyone else.
    pub fn candidates(&self, next_nonce: impl Fn(&PublicKey) -> u64) -> impl Iterator<Item = &Transaction> {
        let mut accounts: Vec<(&PublicKey, &Account)> = self.accounts.iter().collect();
        accounts.sort_by_key(|(_, account)| account.arrival);
        let mut runs: Vec<_> = accounts
            .into_iter()
            .filter_map(|(sender, account)| {
                let last_ready = account.committed + account.ready as u64;
                let from = next_nonce(sender).max(account.committed) + 1;
                // (None when blocks in flight took them all: `range` panics on start > end.)
                (from <= last_ready).then(|| account.txs.range(from..=last_ready).map(|(_, (tx, _))| tx))
            })
            .collect();
        let mut turn = 0;
        std::iter::from_fn(move || {
            while !runs.is_empty() {
                turn %= runs.len();
                match runs[turn].next() {
                    Some(tx) => {
                        turn += 1;
                        return Some(tx);
                    }
                    None => {
                        drop(runs.remove(turn));
                    }
                }
            }
            None
        })
    }

    /// `senders` had transactions taken into a block: they go to the back of the line, so the
    /// next block starts with the accounts it did not serve.
    pub fn served<'a>(&mut self, senders: impl IntoIterator<Item = &'a PublicKey>) {
        for sender in senders {
            if let Some(account) = self.accounts.get_mut(sender) {
                self.next_arrival += 1;
                account.arrival = self.next_arrival;
            }
        }
    }

    /// Drops what can no longer run: transactions at or below each account's committed nonce.
    pub fn remove_committed(&mut self, committed_nonces: impl IntoIterator<Item = (PublicKey, u64)>) {
        for (sender, committed) in committed_nonces {
            let Some(account) = self.accounts.get_mut(&sender) else { continue };
            if committed <= account.committed {
                continue;
            }
            let keep = account.txs.split_off(&(committed + 1));
            let gone = std::mem::replace(&mut account.txs, keep);
            for (tx, _) in gone.values() {
                self.verified.remove(&tx.hash());
            }
            self.len -= gone.len();
            // Committed nonces were the front of the ready run, unless the account moved past
            // transactions this node never had: then the run is counted again.
            let advanced = (committed - account.committed) as usize;
            let known = account.ready.saturating_sub(advanced);
            account.committed = committed;
            let (before, after) = account.recount_ready(known);
            self.ready = self.ready - before + after;
            if account.txs.is_empty() {
                self.accounts.remove(&sender);
            }
        }
    }

    /// Removes the transaction `sender` signed with `nonce` and every later one of the account
    /// (they could only run after it); returns their hashes.
    pub fn evict_from(&mut self, sender: &PublicKey, nonce: u64) -> Vec<Hash> {
        let Some(account) = self.accounts.get_mut(sender) else { return Vec::new() };
        let gone = account.txs.split_off(&nonce);
        let hashes: Vec<Hash> = gone.values().map(|(tx, _)| tx.hash()).collect();
        for hash in &hashes {
            self.verified.remove(hash);
        }
        self.len -= gone.len();
        self.ready -= account.ready;
        let kept_run = nonce.saturating_sub(account.committed + 1) as usize;
        account.ready = account.ready.min(kept_run);
        self.ready += account.ready;
        if account.txs.is_empty() {
            self.accounts.remove(sender);
        }
        hashes
    }

    /// Drops transactions admitted before `cutoff_ms` (with everything later of the same account)
    /// so that nothing waits forever behind a nonce gap or an overloaded chain.
    pub fn expire(&mut self, cutoff_ms: u64) -> Vec<Hash> {
        let stale: Vec<(PublicKey, u64)> = self
            .accounts
            .iter()
            .filter_map(|(sender, account)| {
                let oldest = account.txs.iter().find(|(_, (_, admitted_ms))| *admitted_ms < cutoff_ms)?;
                Some((*sender, *oldest.0))
            })
            .collect();
        stale.into_iter().flat_map(|(sender, nonce)| self.evict_from(&sender, nonce)).collect()
    }

    /// Forgets signatures verified for transactions now committed (bounded memory).
    pub fn forget_verified(&mut self, hashes: impl IntoIterator<Item = Hash>) {
        for hash in hashes {
            self.verified.remove(&hash);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubechain_types::{Operation, SigningKey, TxBody};

    fn recount_ready(mempool: &Mempool) -> usize {
        mempool
            .accounts
            .values()
            .map(|account| (1..).take_while(|i| account.txs.contains_key(&(account.committed + i))).count())
            .sum()
    }

    /// The incremental ready count always equals a recount, whatever happens in between.
    #[test]
    fn ready_count_survives_any_sequence_of_changes() {
        let keys: Vec<SigningKey> = (1..=3).map(|seed| SigningKey::from_seed([seed; 32])).collect();
        let mut committed = [0u64; 3];
        let mut mempool = Mempool::new(40);
        let mut state = 0x2545_f491_u64;
        let mut next = |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        for step in 0..5_000u64 {
            let who = next(3) as usize;
            let sender = keys[who].public_key();
            match next(10) {
                0..=5 => {
                    let nonce = committed[who] + 1 + next(6);
                    let body = TxBody {
                        chain_id: "c".into(),
                        sender,
                        nonce,
                        operations: vec![Operation::Delete { key: "k".into() }],
                    };
                    let _ = mempool.insert(Transaction::new(body, &keys[who]), committed[who], step);
                }
                6 | 7 => {
                    committed[who] += next(3);
                    mempool.remove_committed([(sender, committed[who])]);
                }
                8 => {
                    mempool.evict_from(&sender, committed[who] + 1 + next(6));
                }
                _ => {
                    mempool.expire(step.saturating_sub(50));
                }
            }
            assert_eq!(mempool.ready(), recount_ready(&mempool), "step {step}");
            let total: usize = mempool.accounts.values().map(|account| account.txs.len()).sum();
            assert_eq!(mempool.len(), total, "step {step}");
        }
    }
}

#[cfg(test)]
mod gap_tests {
    use super::*;
    use kubechain_types::{Operation, SigningKey, TxBody};

    #[test]
    fn an_account_can_park_only_so_much_behind_a_gap() {
        let key = SigningKey::from_seed([4; 32]);
        let tx = |nonce| {
            let operations = vec![Operation::Delete { key: "k".into() }];
            Transaction::new(
                TxBody { chain_id: "c".into(), sender: key.public_key(), nonce, operations },
                &key,
            )
        };
        let mut mempool = Mempool::new(10_000);
        for nonce in 2..2 + MAX_GAPPED_PER_ACCOUNT as u64 {
            assert!(mempool.insert(tx(nonce), 0, 0).is_ok());
        }
        let more = mempool.insert(tx(5_000), 0, 0);
        assert_eq!(more.map_err(|error| error.code()), Err("nonce_gap_full"));
        // The missing nonce is always welcome, and makes the rest ready.
        assert!(mempool.insert(tx(1), 0, 0).is_ok());
        assert_eq!(mempool.ready(), MAX_GAPPED_PER_ACCOUNT + 1);
    }
}

#[cfg(test)]
mod refusal_tests {
    use super::*;
    use kubechain_types::{Operation, SigningKey, TxBody};

    fn hash(n: u8) -> Hash {
        Hash::digest(&[n])
    }

    fn wrong_chain(found_bytes: usize) -> AdmitError {
        TxError::WrongChain { expected: "c".into(), found: "x".repeat(found_bytes) }.into()
    }

    #[test]
    fn a_transaction_is_pending_refused_or_unknown() {
        let key = SigningKey::from_seed([5; 32]);
        let body = TxBody {
            chain_id: "c".into(),
            sender: key.public_key(),
            nonce: 1,
            operations: vec![Operation::Delete { key: "k".into() }],
        };
        let mut mempool = Mempool::new(10);
        let waiting = mempool.insert(Transaction::new(body, &key), 0, 0).unwrap();
        mempool.remember_refusal(hash(1), TxError::BadSignature.into());
        assert_eq!(mempool.status(&waiting), TxStatus::Pending);
        assert_eq!(mempool.status(&hash(1)), TxStatus::Refused(TxError::BadSignature.into()));
        assert_eq!(mempool.status(&hash(2)), TxStatus::Unknown);
        // Dropped from the mempool, it is no longer pending; why is remembered beside.
        mempool.evict_from(&key.public_key(), 1);
        assert_eq!(mempool.status(&waiting), TxStatus::Unknown);
        mempool.remember_refusal(waiting, AdmitError::Expired(120));
        assert_eq!(mempool.status(&waiting), TxStatus::Refused(AdmitError::Expired(120)));
    }

    #[test]
    fn the_oldest_refusals_are_forgotten_beyond_the_count() {
        let mut refusals = Refusals::new(3, usize::MAX);
        for n in 0..5 {
            refusals.remember(hash(n), AdmitError::Duplicate(n.into()));
        }
        assert_eq!(refusals.len(), 3);
        assert_eq!(refusals.get(&hash(0)), None);
        assert_eq!(refusals.get(&hash(1)), None);
        assert_eq!(refusals.get(&hash(4)), Some(&AdmitError::Duplicate(4)));
    }

    #[test]
    fn the_oldest_refusals_are_forgotten_beyond_the_bytes() {
        let entry = Refusals::entry_bytes(&wrong_chain(1_000));
        let mut refusals = Refusals::new(100, 3 * entry);
        for n in 0..3 {
            refusals.remember(hash(n), wrong_chain(1_000));
        }
        assert_eq!((refusals.len(), refusals.bytes()), (3, 3 * entry));
        // A reason quoting twice the text pushes out the two oldest.
        refusals.remember(hash(3), wrong_chain(2_000));
        assert_eq!(refusals.len(), 2);
        assert!(refusals.bytes() <= 3 * entry, "{} bytes held", refusals.bytes());
        assert_eq!(refusals.get(&hash(1)), None);
        assert!(refusals.get(&hash(2)).is_some() && refusals.get(&hash(3)).is_some());
        // Small reasons cost little: many fit where one long one did.
        let small = Refusals::entry_bytes(&AdmitError::Expired(1));
        assert!(small * 5 < entry, "{small} bytes for a reason without text");
    }

    #[test]
    fn a_new_reason_replaces_the_old_one_in_its_place() {
        let mut refusals = Refusals::new(2, usize::MAX);
        refusals.remember(hash(0), wrong_chain(500));
        refusals.remember(hash(1), AdmitError::Duplicate(1));
        refusals.remember(hash(0), AdmitError::Expired(120));
        assert_eq!(refusals.get(&hash(0)), Some(&AdmitError::Expired(120)));
        let expected = Refusals::entry_bytes(&AdmitError::Expired(120))
            + Refusals::entry_bytes(&AdmitError::Duplicate(1));
        assert_eq!(refusals.bytes(), expected);
        // It kept its place: the next one pushes it out first.
        refusals.remember(hash(2), AdmitError::Duplicate(2));
        assert_eq!(refusals.get(&hash(0)), None);
        assert_eq!(refusals.len(), 2);
    }
}

#[cfg(test)]
mod signature_tests {
    use super::*;
    use kubechain_types::edge_signatures::EdgeSigner;
    use kubechain_types::encoding::encode;
    use kubechain_types::{Domain, Operation, SigningKey, TxBody};

    fn body(key: &SigningKey, nonce: u64) -> TxBody {
        let operations = vec![Operation::Delete { key: "k".into() }];
        TxBody { chain_id: "c".into(), sender: key.public_key(), nonce, operations }
    }

    /// A transaction signed by `key` with a torsion point of order 8 in R: the signature whose
    /// verdict used to depend on its batch companions (see node/types/tests/signatures.rs).
    fn signed_with_torsion_in_r(key: &SigningKey, nonce: u64) -> Transaction {
        let body = body(key, nonce);
        let signer = EdgeSigner::new(key.clone());
        let signature = signer.mixed_order_r(Domain::Transaction, &body.chain_id, &encode(&body));
        Transaction { body, signature }
    }

    /// Admission, block execution and state transfer check different batches: a transaction's
    /// verdict must be the same in all of them, or one node executes a block another refuses.
    #[test]
    fn a_transactions_verdict_does_not_depend_on_its_batch() {
        let keys: Vec<SigningKey> = (0x41..0x47).map(|seed| SigningKey::from_seed([seed; 32])).collect();
        let torsion = signed_with_torsion_in_r(&keys[0], 1);
        let honest: Vec<Transaction> =
            keys[1..].iter().map(|key| Transaction::new(body(key, 1), key)).collect();
        // A signature over another body: refused everywhere.
        let mut forged = honest[0].clone();
        forged.body.nonce = 2;

        assert_eq!(Transaction::verify_signatures(&[&torsion]), [true], "alone");
        assert_eq!(Transaction::verify_signatures(&[&forged]), [false], "alone");
        for repeat in 0..64 {
            let mut batch: Vec<(&Transaction, bool)> =
                honest.iter().take(1 + repeat % honest.len()).map(|tx| (tx, true)).collect();
            batch.insert(repeat % batch.len(), (&torsion, true));
            if repeat % 2 == 1 {
                batch.push((&forged, false));
            }
            let transactions: Vec<&Transaction> = batch.iter().map(|(tx, _)| *tx).collect();
            let expected: Vec<bool> = batch.iter().map(|(_, verdict)| *verdict).collect();
            let single: Vec<bool> = transactions.iter().map(|tx| tx.verify_signature().is_ok()).collect();
            assert_eq!(single, expected, "repeat {repeat}: one by one");
            assert_eq!(Transaction::verify_signatures(&transactions), expected, "repeat {repeat}: together");
        }
    }
}

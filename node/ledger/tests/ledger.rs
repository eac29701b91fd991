//! The ledger against an in-memory durable state: execution rules, state roots, speculation,
//! and mempool admission.

use std::collections::BTreeMap;

use kubechain_consensus::{Application, Origin};
use kubechain_ledger::state::{self, keys};
use kubechain_ledger::{AdmitError, Ledger, StateView, TxError, TxStatus, genesis_root};
use kubechain_types::{
    AdminOperation, Block, ConsensusParams, DocumentAnchor, Genesis, Hash, Header, Member, Operation,
    PublicKey, SigningKey, Transaction, TxBody,
};

#[derive(Default)]
struct Memory(BTreeMap<Vec<u8>, Vec<u8>>);

impl StateView for Memory {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.get(key).cloned()
    }
}

const CHAIN: &str = "ledger-test";
/// How long a transaction may wait in these tests' mempools.
const TTL_MS: u64 = 30_000;

struct Fixture {
    genesis: Genesis,
    admin: SigningKey,
    acme: SigningKey,
    globex: SigningKey,
}

fn fixture() -> Fixture {
    let admin = SigningKey::from_seed([1; 32]);
    let acme = SigningKey::from_seed([2; 32]);
    let globex = SigningKey::from_seed([3; 32]);
    let genesis = Genesis {
        chain_id: CHAIN.into(),
        genesis_time_ms: 0,
        validators: vec![SigningKey::from_seed([9; 32]).public_key()],
        admins: vec![admin.public_key()],
        members: vec![
            Member { name: "acme".into(), public_keys: vec![acme.public_key()] },
            Member { name: "globex".into(), public_keys: vec![globex.public_key()] },
        ],
        params: ConsensusParams::default(),
    };
    Fixture { genesis, admin, acme, globex }
}

fn ledger(genesis: &Genesis) -> Ledger<Memory> {
    let mut memory = Memory::default();
    for (key, value) in state::genesis_changes(genesis) {
        if let Some(value) = value {
            memory.0.insert(key, value);
        }
    }
    Ledger::new(CHAIN, memory, genesis_root(genesis), 1000, TTL_MS)
}

/// Transactions from this node's clients, at `now_ms`.
fn offer(
    ledger: &mut Ledger<Memory>,
    transactions: Vec<Transaction>,
    now_ms: u64,
) -> Vec<Result<Hash, AdmitError>> {
    ledger.admit(now_ms, transactions, Origin::Client)
}

fn tx(key: &SigningKey, nonce: u64, operations: Vec<Operation>) -> Transaction {
    Transaction::new(TxBody { chain_id: CHAIN.into(), sender: key.public_key(), nonce, operations }, key)
}

fn put(key: &str, value: &str) -> Operation {
    Operation::Put { key: key.into(), value: value.as_bytes().to_vec() }
}

fn reason(result: Result<Hash, kubechain_consensus::ExecutionError>) -> String {
    match result {
        Err(kubechain_consensus::ExecutionError::InvalidTransaction { reason, .. }) => reason,
        other => panic!("expected an invalid transaction, got {other:?}"),
    }
}

#[test]
fn members_write_in_their_own_namespace() {
    let f = fixture();
    let mut ledger = ledger(&f.genesis);
    let root = genesis_root(&f.genesis);
    let anchor = DocumentAnchor { uri: "s3://acme/a.pdf".into(), sha256: Hash::digest(b"pdf"), size: 3 };
    let txs = vec![
        tx(&f.acme, 1, vec![put("invoice", "paid"), Operation::Anchor(anchor.clone())]),
        tx(&f.globex, 1, vec![put("invoice", "open")]),
        tx(&f.acme, 2, vec![Operation::Delete { key: "invoice".into() }, put("order", "7")]),
    ];
    let after = ledger.execute(&root, 1, &txs).unwrap();
    assert_eq!(ledger.committed().get(&keys::data("globex", "invoice")), None, "nothing committed yet");
    let block = Block::new(header(1, after), txs);
    ledger.commit(&block);
    let view = ledger.committed();
    assert_eq!(view.get(&keys::data("acme", "invoice")), None);
    assert_eq!(view.get(&keys::data("acme", "order")), Some(b"7".to_vec()));
    assert_eq!(view.get(&keys::data("globex", "invoice")), Some(b"open".to_vec()));
    assert!(view.get(&keys::anchor("acme", &anchor.sha256)).is_some());
    assert_eq!(state::nonce(&view, &f.acme.public_key()), 2);
}

fn header(height: u64, state_root: Hash) -> Header {
    Header {
        chain_id: CHAIN.into(),
        height,
        view: 0,
        previous_hash: Hash::ZERO,
        tx_root: Hash::ZERO,
        state_root,
        rules_hash: Hash::ZERO,
        timestamp_ms: 0,
        proposer: PublicKey([0; 32]),
        pow_difficulty: 0,
        pow_nonce: 0,
    }
}

#[test]
fn bad_transactions_are_refused_with_a_reason() {
    let f = fixture();
    let mut ledger = ledger(&f.genesis);
    let root = genesis_root(&f.genesis);
    let stranger = SigningKey::from_seed([7; 32]);
    assert!(
        reason(ledger.execute(&root, 1, &[tx(&stranger, 1, vec![put("k", "v")])]))
            .contains("neither a member")
    );
    assert!(reason(ledger.execute(&root, 1, &[tx(&f.acme, 2, vec![put("k", "v")])])).contains("nonce 2"));
    let replay = tx(&f.acme, 1, vec![put("k", "v")]);
    assert!(reason(ledger.execute(&root, 1, &[replay.clone(), replay])).contains("nonce 1"));
    let admin_op = Operation::Admin(AdminOperation::RemoveMember { name: "globex".into() });
    assert!(reason(ledger.execute(&root, 1, &[tx(&f.acme, 1, vec![admin_op])])).contains("admin"));
    assert!(reason(ledger.execute(&root, 1, &[tx(&f.admin, 1, vec![put("k", "v")])])).contains("member"));
    let big = Operation::Put { key: "k".into(), value: vec![0; state::MAX_VALUE_BYTES + 1] };
    assert!(reason(ledger.execute(&root, 1, &[tx(&f.acme, 1, vec![big])])).contains("exceeds"));
    let mut forged = tx(&f.acme, 1, vec![put("k", "v")]);
    forged.body.operations = vec![put("k", "other")];
    assert!(reason(ledger.execute(&root, 1, &[forged])).contains("signature"));
}

#[test]
fn admins_change_the_consortium() {
    let f = fixture();
    let mut ledger = ledger(&f.genesis);
    let root = genesis_root(&f.genesis);
    let initech = SigningKey::from_seed([4; 32]);
    let add = Operation::Admin(AdminOperation::AddMember {
        name: "initech".into(),
        public_keys: vec![initech.public_key()],
    });
    let remove = Operation::Admin(AdminOperation::RemoveMember { name: "globex".into() });
    let after = ledger.execute(&root, 1, &[tx(&f.admin, 1, vec![add, remove])]).unwrap();
    // The new member can write on top of that state; the removed one cannot.
    assert!(ledger.execute(&after, 2, &[tx(&initech, 1, vec![put("k", "v")])]).is_ok());
    assert!(
        reason(ledger.execute(&after, 2, &[tx(&f.globex, 1, vec![put("k", "v")])]))
            .contains("neither a member")
    );
}

#[test]
fn admins_are_added_and_removed_but_never_the_last() {
    let f = fixture();
    let mut ledger = ledger(&f.genesis);
    let root = genesis_root(&f.genesis);
    let deputy = SigningKey::from_seed([5; 32]);
    let add = |key: &SigningKey| Operation::Admin(AdminOperation::AddAdmin { public_key: key.public_key() });
    let remove =
        |key: &SigningKey| Operation::Admin(AdminOperation::RemoveAdmin { public_key: key.public_key() });
    // A member cannot make itself an admin.
    assert!(reason(ledger.execute(&root, 1, &[tx(&f.acme, 1, vec![add(&f.acme)])])).contains("admin"));
    let after = ledger.execute(&root, 1, &[tx(&f.admin, 1, vec![add(&deputy)])]).unwrap();
    assert!(reason(ledger.execute(&after, 2, &[tx(&f.admin, 2, vec![add(&deputy)])])).contains("already"));
    // No admin can remove itself, alone or after removing the other one in the same
    // transaction: whoever signs the last removal stays.
    assert!(reason(ledger.execute(&after, 2, &[tx(&deputy, 1, vec![remove(&deputy)])])).contains("itself"));
    let both = tx(&deputy, 1, vec![remove(&f.admin), remove(&deputy)]);
    assert!(reason(ledger.execute(&after, 2, &[both])).contains("itself"));
    // Two admins removing each other in one block: the second transaction is no admin's any more.
    let crossed = [tx(&deputy, 1, vec![remove(&f.admin)]), tx(&f.admin, 2, vec![remove(&deputy)])];
    assert!(reason(ledger.execute(&after, 2, &crossed)).contains("admin"));
    let removed = ledger.execute(&after, 2, &[tx(&deputy, 1, vec![remove(&f.admin)])]).unwrap();
    let stranger = tx(&f.admin, 2, vec![add(&f.admin)]);
    assert!(reason(ledger.execute(&removed, 3, &[stranger])).contains("neither a member"));
}

#[test]
fn an_admin_that_removes_its_own_member_writes_nothing_for_it_afterwards() {
    let f = fixture();
    let mut ledger = ledger(&f.genesis);
    let root = genesis_root(&f.genesis);
    // The admin key joins as a member, then in one transaction removes that member and writes.
    let join = Operation::Admin(AdminOperation::AddMember {
        name: "initech".into(),
        public_keys: vec![f.admin.public_key()],
    });
    let joined = ledger.execute(&root, 1, &[tx(&f.admin, 1, vec![join])]).unwrap();
    assert!(ledger.execute(&joined, 2, &[tx(&f.admin, 2, vec![put("k", "v")])]).is_ok());
    let leave = Operation::Admin(AdminOperation::RemoveMember { name: "initech".into() });
    let stale = tx(&f.admin, 2, vec![leave, put("k", "v")]);
    assert!(reason(ledger.execute(&joined, 2, &[stale])).contains("member"));
}

#[test]
fn speculative_blocks_chain_and_roots_are_deterministic() {
    let f = fixture();
    let mut proposer = ledger(&f.genesis);
    let mut replica = ledger(&f.genesis);
    let root = genesis_root(&f.genesis);
    let first = vec![tx(&f.acme, 1, vec![put("a", "1")])];
    let second = vec![tx(&f.acme, 2, vec![put("a", "2")])];
    let r1 = proposer.execute(&root, 1, &first).unwrap();
    let r2 = proposer.execute(&r1, 2, &second).unwrap();
    assert_eq!(replica.execute(&root, 1, &first).unwrap(), r1);
    assert_eq!(replica.execute(&r1, 2, &second).unwrap(), r2);
    assert_ne!(r1, r2);
    // Executing on a state nobody produced is refused, not guessed.
    assert!(matches!(
        replica.execute(&Hash::digest(b"nowhere"), 1, &first),
        Err(kubechain_consensus::ExecutionError::UnknownParentState(_))
    ));
    // Once block 1 is durable, block 2's state still reads through to it.
    let changes = replica.changes_of(&r1).unwrap();
    assert!(changes.contains_key(&keys::data("acme", "a")));
    replica.persisted(&r1);
    assert!(replica.execute(&r2, 3, &[tx(&f.acme, 3, vec![put("a", "3")])]).is_ok());
}

#[test]
fn mempool_admission_checks_and_bounds() {
    let f = fixture();
    let genesis = f.genesis.clone();
    let mut memory = Memory::default();
    for (key, value) in state::genesis_changes(&genesis) {
        memory.0.insert(key, value.unwrap());
    }
    let mut ledger = Ledger::new(CHAIN, memory, genesis_root(&genesis), 3, TTL_MS);
    let mut bad = tx(&f.acme, 3, vec![put("k", "v")]);
    bad.signature.0[5] ^= 1;
    let verdicts = offer(
        &mut ledger,
        vec![
            tx(&f.acme, 1, vec![put("k", "v")]),
            tx(&f.acme, 1, vec![put("k", "w")]),
            bad,
            tx(&f.globex, 1, vec![put("k", "v")]),
            Transaction::new(
                TxBody {
                    chain_id: "other".into(),
                    sender: f.acme.public_key(),
                    nonce: 2,
                    operations: vec![put("k", "v")],
                },
                &f.acme,
            ),
            tx(&f.acme, 2, vec![put("k", "v")]),
            tx(&f.acme, 4, vec![put("k", "v")]),
        ],
        0,
    );
    let codes: Vec<&str> =
        verdicts.iter().map(|v| v.as_ref().map_or_else(AdmitError::code, |_| "ok")).collect();
    assert_eq!(codes, ["ok", "duplicate", "bad_signature", "ok", "wrong_chain", "ok", "mempool_full"]);
    assert_eq!(ledger.pending(), 3);
    // A proposal built from the mempool executes to the same root elsewhere.
    let root = genesis_root(&genesis);
    let built = ledger.build(&root, 1, 10).unwrap();
    assert_eq!(built.transactions.len(), 3);
    let mut replica = self::ledger(&genesis);
    assert_eq!(replica.execute(&root, 1, &built.transactions).unwrap(), built.state_root);
    ledger.commit(&Block::new(header(1, built.state_root), built.transactions));
    assert_eq!(ledger.pending(), 0);
    assert!(matches!(TxError::Empty.code(), "empty_transaction"));
}

fn codes(verdicts: &[Result<Hash, AdmitError>]) -> Vec<&'static str> {
    verdicts.iter().map(|v| v.as_ref().map_or_else(AdmitError::code, |_| "ok")).collect()
}

#[test]
fn admission_refuses_what_could_never_run() {
    let f = fixture();
    let mut ledger = ledger(&f.genesis);
    let remove = Operation::Admin(AdminOperation::RemoveMember { name: "globex".into() });
    let verdicts = offer(
        &mut ledger,
        vec![
            tx(&f.admin, 1, vec![put("k", "v")]),
            tx(&f.acme, 1, vec![remove.clone()]),
            tx(&f.acme, 1, vec![put("", "v")]),
            // Checked as if nonce 1 had run: a later nonce is judged on its own operations.
            tx(&f.globex, 2, vec![put("k", "v")]),
            tx(&f.admin, 1, vec![remove]),
        ],
        0,
    );
    assert_eq!(codes(&verdicts), ["not_member", "not_admin", "invalid_operation", "ok", "ok"]);
    assert_eq!(ledger.mempool().len(), 2);
}

#[test]
fn transactions_behind_a_nonce_gap_are_not_ready_and_expire() {
    let f = fixture();
    let mut ledger = ledger(&f.genesis);
    let root = genesis_root(&f.genesis);
    let verdicts = offer(
        &mut ledger,
        vec![tx(&f.acme, 2, vec![put("a", "2")]), tx(&f.acme, 3, vec![put("a", "3")])],
        1_000,
    );
    assert_eq!(codes(&verdicts), ["ok", "ok"]);
    // Waiting for nonce 1: no block can take them, so the replicas expect nothing.
    assert_eq!(ledger.pending(), 0);
    assert!(ledger.build(&root, 1, 10).unwrap().transactions.is_empty());
    // Filling the gap makes all three ready, in order.
    let verdicts = offer(&mut ledger, vec![tx(&f.acme, 1, vec![put("a", "1")])], 50_000);
    assert_eq!(codes(&verdicts), ["ok"]);
    assert_eq!(ledger.pending(), 3);
    let built = ledger.build(&root, 1, 10).unwrap();
    let nonces: Vec<u64> = built.transactions.iter().map(|tx| tx.body.nonce).collect();
    assert_eq!(nonces, [1, 2, 3]);
    // A block on top of that one starts after what it took.
    assert!(ledger.build(&built.state_root, 2, 10).unwrap().transactions.is_empty());
    // Expiry drops the old ones (nonces 2 and 3), not the fresh nonce 1.
    ledger.expire(40_000);
    let dropped = ledger.take_dropped();
    assert_eq!(dropped.len(), 2, "{dropped:?}");
    assert!(dropped.iter().all(|(_, error)| error.code() == "expired"));
    assert_eq!((ledger.mempool().len(), ledger.pending()), (1, 1));
    // Dropping an old transaction drops what could only run after it, however fresh.
    let verdicts = offer(&mut ledger, vec![tx(&f.acme, 2, vec![put("a", "2")])], 80_000);
    assert_eq!(codes(&verdicts), ["ok"]);
    ledger.expire(90_000);
    assert_eq!(ledger.take_dropped().len(), 2);
    assert!(ledger.mempool().is_empty() && ledger.pending() == 0);
    assert!(ledger.take_dropped().is_empty());
}

#[test]
fn a_block_drops_what_can_no_longer_run() {
    let f = fixture();
    let mut ledger = ledger(&f.genesis);
    let root = genesis_root(&f.genesis);
    let verdicts = offer(
        &mut ledger,
        vec![tx(&f.globex, 1, vec![put("k", "v")]), tx(&f.globex, 2, vec![put("k", "w")])],
        0,
    );
    assert_eq!(codes(&verdicts), ["ok", "ok"]);
    // Another node's block removes globex before its transactions are taken.
    let remove = Operation::Admin(AdminOperation::RemoveMember { name: "globex".into() });
    let removal = vec![tx(&f.admin, 1, vec![remove])];
    let after = ledger.execute(&root, 1, &removal).unwrap();
    ledger.commit(&Block::new(header(1, after), removal));
    assert_eq!(ledger.pending(), 2);
    assert!(ledger.build(&after, 2, 10).unwrap().transactions.is_empty());
    let dropped = ledger.take_dropped();
    assert_eq!(dropped.len(), 2);
    assert!(dropped.iter().all(|(_, error)| error.code() == "unknown_sender"), "{dropped:?}");
    assert_eq!(ledger.pending(), 0);
    assert!(ledger.mempool().is_empty());
}

#[test]
fn clients_refusals_are_remembered_but_not_a_full_mempool_nor_a_peers() {
    let f = fixture();
    let mut memory = Memory::default();
    for (key, value) in state::genesis_changes(&f.genesis) {
        memory.0.insert(key, value.unwrap());
    }
    let mut ledger = Ledger::new(CHAIN, memory, genesis_root(&f.genesis), 1, TTL_MS);
    let accepted = tx(&f.acme, 1, vec![put("k", "v")]);
    let replay = tx(&f.acme, 0, vec![put("k", "v")]);
    let full = tx(&f.globex, 1, vec![put("k", "v")]);
    let verdicts = offer(&mut ledger, vec![accepted.clone(), replay.clone(), full.clone()], 0);
    assert_eq!(codes(&verdicts), ["ok", "bad_nonce", "mempool_full"]);
    assert_eq!(ledger.mempool().status(&accepted.hash()), TxStatus::Pending);
    assert!(
        matches!(
            ledger.mempool().status(&replay.hash()),
            TxStatus::Refused(AdmitError::Invalid(TxError::Nonce { .. }))
        ),
        "{:?}",
        ledger.mempool().status(&replay.hash())
    );
    // "Full" says nothing about the transaction: a retry may succeed.
    assert_eq!(ledger.mempool().status(&full.hash()), TxStatus::Unknown);
    // A peer's clients were answered by that peer; this node may just be behind.
    let stranger = tx(&SigningKey::from_seed([7; 32]), 1, vec![put("k", "v")]);
    let verdicts = ledger.admit(0, vec![stranger.clone()], Origin::Peer);
    assert_eq!(codes(&verdicts), ["unknown_sender"]);
    assert_eq!(ledger.mempool().status(&stranger.hash()), TxStatus::Unknown);
}

#[test]
fn dropped_transactions_are_remembered_with_their_reason() {
    let f = fixture();
    let mut ledger = ledger(&f.genesis);
    let root = genesis_root(&f.genesis);
    // A gapped one that expires, and globex's that a block can no longer take.
    let gapped = tx(&f.acme, 2, vec![put("a", "2")]);
    let doomed = tx(&f.globex, 1, vec![put("k", "v")]);
    // Passed on by a peer: dropping is remembered whoever sent it.
    let verdicts = ledger.admit(0, vec![gapped.clone(), doomed.clone()], Origin::Peer);
    assert_eq!(codes(&verdicts), ["ok", "ok"]);
    ledger.expire(TTL_MS / 2);
    assert_eq!(ledger.mempool().status(&gapped.hash()), TxStatus::Pending);
    let remove = Operation::Admin(AdminOperation::RemoveMember { name: "globex".into() });
    let removal = vec![tx(&f.admin, 1, vec![remove])];
    let after = ledger.execute(&root, 1, &removal).unwrap();
    ledger.commit(&Block::new(header(1, after), removal));
    ledger.build(&after, 2, 10).unwrap();
    ledger.expire(TTL_MS + 1);
    assert_eq!(
        ledger.mempool().status(&doomed.hash()),
        TxStatus::Refused(AdmitError::Invalid(TxError::UnknownSender(f.globex.public_key())))
    );
    assert_eq!(
        ledger.mempool().status(&gapped.hash()),
        TxStatus::Refused(AdmitError::Expired(TTL_MS / 1000))
    );
    assert_eq!(ledger.take_dropped().len(), 2);
}

/// Defect found in review: blocks took the oldest account's whole queue first, so a member that
/// kept its queue full starved the others until their transactions expired. Now each block
/// serves the accounts round by round, and the next block starts with those it left out.
#[test]
fn block_building_is_fair_across_accounts() {
    let f = fixture();
    let mut fresh = ledger(&f.genesis);
    let root = genesis_root(&f.genesis);
    // Acme queues 500 transactions first; Globex one afterwards.
    let flood: Vec<Transaction> = (1..=500).map(|nonce| tx(&f.acme, nonce, vec![put("k", "v")])).collect();
    assert!(offer(&mut fresh, flood, 0).iter().all(Result::is_ok));
    let late = tx(&f.globex, 1, vec![put("k", "v")]);
    assert!(offer(&mut fresh, vec![late.clone()], 1)[0].is_ok());

    let senders = |built: &kubechain_consensus::Built| -> Vec<PublicKey> {
        built.transactions.iter().map(|tx| tx.body.sender).collect()
    };
    // A block of four has room for both: Globex's transaction is in it, between Acme's.
    let built = fresh.build(&root, 1, 4).unwrap();
    assert_eq!(
        senders(&built),
        [f.acme.public_key(), f.globex.public_key(), f.acme.public_key(), f.acme.public_key()]
    );
    // With room for one transaction a block, the accounts take turns.
    let mut turns = ledger(&f.genesis);
    let flood: Vec<Transaction> = (1..=500).map(|nonce| tx(&f.acme, nonce, vec![put("k", "v")])).collect();
    offer(&mut turns, flood, 0);
    offer(&mut turns, vec![late.clone()], 1);
    let first = turns.build(&root, 1, 1).unwrap();
    let second = turns.build(&first.state_root, 2, 1).unwrap();
    assert_eq!(senders(&first), [f.acme.public_key()]);
    assert_eq!(second.transactions, vec![late]);
}

/// Cheap checks come before the signature: a stranger's transaction is refused as unknown without
/// its signature being checked (shown by a signature that would not verify).
#[test]
fn a_strangers_transaction_is_refused_before_its_signature_is_checked() {
    let f = fixture();
    let mut ledger = ledger(&f.genesis);
    let stranger = SigningKey::from_seed([77; 32]);
    let mut forged = tx(&stranger, 1, vec![put("k", "v")]);
    forged.signature.0[0] ^= 1;
    assert_eq!(codes(&offer(&mut ledger, vec![forged], 0)), ["unknown_sender"]);
    // A member's forged transaction gets to the signature check, and fails it.
    let mut member_forged = tx(&f.acme, 1, vec![put("k", "v")]);
    member_forged.signature.0[0] ^= 1;
    assert_eq!(codes(&offer(&mut ledger, vec![member_forged], 0)), ["bad_signature"]);
}

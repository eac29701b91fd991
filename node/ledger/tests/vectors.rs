//! The test vectors of `docs/encoding.md`, kept in `docs/test-vectors.json`.
//!
//! Everything here is deterministic (fixed key seeds, fixed values, deterministic ed25519), so the
//! file is reproducible byte for byte. The test first checks the vectors mean what they claim,
//! partly against a second implementation written from `docs/encoding.md` alone (hand-written
//! encodings, the RFC 9162 proof walk, the receipt check), then compares the rendered JSON with
//! the checked-in file. `KUBECHAIN_BLESS_VECTORS=1` rewrites the file instead.

use std::path::PathBuf;

use kubechain_consensus::{Application, Schedule};
use kubechain_ledger::state::{Changes, StateView};
use kubechain_ledger::{Ledger, state};
use kubechain_types::block::{self, Block};
use kubechain_types::certificate::sign_vote;
use kubechain_types::crypto::signing_bytes;
use kubechain_types::edge_signatures::{EdgeCase, EdgeSigner, edge_cases};
use kubechain_types::encoding::{decode, encode};
use kubechain_types::{
    AdminOperation, CommitCertificate, CommitVote, ConsensusParams, DocumentAnchor, Domain, Genesis, Hash,
    Header, Member, MerkleProof, Operation, PublicKey, Receipt, ReceiptError, RuleChange, Rules, Signature,
    SigningKey, Transaction, TxBody, VoteTarget, merkle, quorum,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

const CHAIN_ID: &str = "vectors-1";
const BLESS_VARIABLE: &str = "KUBECHAIN_BLESS_VECTORS";
const BLESS_COMMAND: &str =
    "KUBECHAIN_BLESS_VECTORS=1 cargo test --release -p kubechain-ledger --test vectors";
const DIFFICULTY: u8 = 8;
const MERKLE_SIZES: [usize; 6] = [0, 1, 2, 3, 5, 8];
const EDGE_SIGNER_SEED: u8 = 0xe5;

fn vectors_path() -> PathBuf {
    // The manifest dir at run time (cargo sets it): a cached test binary may come from another checkout.
    let manifest_dir: PathBuf = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    manifest_dir.join("../../docs/test-vectors.json")
}

// ---------------------------------------------------------------------------------------------
// The inputs.

struct NamedKey {
    name: &'static str,
    seed_byte: u8,
    key: SigningKey,
}

fn named_key(name: &'static str, seed_byte: u8) -> NamedKey {
    NamedKey { name, seed_byte, key: SigningKey::from_seed([seed_byte; 32]) }
}

struct NamedTransaction {
    name: &'static str,
    description: &'static str,
    transaction: Transaction,
}

struct Fixture {
    keys: Vec<NamedKey>,
    genesis: Genesis,
    genesis_changes: Changes,
    genesis_state_root: Hash,
    transactions: Vec<NamedTransaction>,
    block_changes: Changes,
    unsealed_header: Header,
    block: Block,
    commit_target: VoteTarget,
    certificate: CommitCertificate,
    merkle_leaves: Vec<Hash>,
    /// Block 2, on block 1: two admin transactions, each removing a validator.
    second_block: Block,
    second_certificate: CommitCertificate,
}

fn key_named<'a>(keys: &'a [NamedKey], name: &str) -> &'a SigningKey {
    match keys.iter().find(|named| named.name == name) {
        Some(named) => &named.key,
        None => panic!("no key named {name}"),
    }
}

impl Fixture {
    fn key(&self, name: &str) -> &SigningKey {
        key_named(&self.keys, name)
    }
}

fn fixture() -> Fixture {
    let keys = vec![
        named_key("validator-0", 0x01),
        named_key("validator-1", 0x02),
        named_key("validator-2", 0x03),
        named_key("validator-3", 0x04),
        named_key("joining-validator", 0x05),
        named_key("admin", 0xad),
        named_key("deputy-admin", 0xae),
        named_key("client-acme", 0xc1),
        named_key("client-initech", 0xc2),
        named_key("edge-signer", EDGE_SIGNER_SEED),
    ];
    let public = |name: &str| key_named(&keys, name).public_key();
    let validators: Vec<PublicKey> = (0..4).map(|i| public(&format!("validator-{i}"))).collect();

    let genesis = Genesis {
        chain_id: CHAIN_ID.into(),
        genesis_time_ms: 1_767_225_600_000,
        validators: validators.clone(),
        admins: vec![public("admin")],
        members: vec![
            Member { name: "acme".into(), public_keys: vec![public("client-acme")] },
            Member { name: "globex".into(), public_keys: vec![] },
        ],
        params: ConsensusParams { pow_difficulty_bits: DIFFICULTY, ..ConsensusParams::default() },
    };

    let client = key_named(&keys, "client-acme");
    let admin = key_named(&keys, "admin");
    let client_tx = Transaction::new(
        TxBody {
            chain_id: CHAIN_ID.into(),
            sender: client.public_key(),
            nonce: 1,
            operations: vec![
                Operation::Put { key: "invoice/17".into(), value: b"paid".to_vec() },
                Operation::Delete { key: "draft/17".into() },
                Operation::Anchor(DocumentAnchor {
                    uri: "s3://acme-ledger/invoices/17.pdf".into(),
                    sha256: Hash::digest(b"%PDF-1.7 invoice 17"),
                    size: 19,
                }),
            ],
        },
        client,
    );
    let admin_tx = Transaction::new(
        TxBody {
            chain_id: CHAIN_ID.into(),
            sender: admin.public_key(),
            nonce: 1,
            operations: vec![
                Operation::Admin(AdminOperation::AddMember {
                    name: "initech".into(),
                    public_keys: vec![public("client-initech")],
                }),
                Operation::Admin(AdminOperation::RemoveMember { name: "globex".into() }),
                Operation::Admin(AdminOperation::AddValidator { public_key: public("joining-validator") }),
                Operation::Admin(AdminOperation::RemoveValidator { public_key: validators[3] }),
                Operation::Admin(AdminOperation::SetConsensusParams {
                    params: ConsensusParams {
                        block_interval_ms: 250,
                        max_block_txs: 4000,
                        checkpoint_interval: 128,
                        view_change_timeout_ms: 3000,
                        pow_difficulty_bits: 10,
                    },
                }),
                Operation::Admin(AdminOperation::AddAdmin { public_key: public("deputy-admin") }),
                Operation::Admin(AdminOperation::RemoveAdmin { public_key: public("deputy-admin") }),
            ],
        },
        admin,
    );
    let second_client_tx = Transaction::new(
        TxBody {
            chain_id: CHAIN_ID.into(),
            sender: client.public_key(),
            nonce: 2,
            operations: vec![Operation::Put { key: "invoice/18".into(), value: vec![0x00, 0xff] }],
        },
        client,
    );
    let transactions = vec![
        NamedTransaction {
            name: "client-put-delete-anchor",
            description: "A member's client writes a key, deletes one and anchors a document.",
            transaction: client_tx,
        },
        NamedTransaction {
            name: "admin-operations",
            description: "An admin key uses every admin operation, in tag order.",
            transaction: admin_tx,
        },
        NamedTransaction {
            name: "client-put-bytes",
            description: "The same client's next nonce; the value is raw bytes 00 ff.",
            transaction: second_client_tx,
        },
    ];

    let block_transactions: Vec<Transaction> =
        transactions.iter().map(|named| named.transaction.clone()).collect();
    let genesis_changes = state::genesis_changes(&genesis);
    let genesis_state_root = kubechain_ledger::genesis_root(&genesis);
    let second_transactions: Vec<Transaction> = [(2, validators[0]), (3, validators[1])]
        .into_iter()
        .map(|(nonce, public_key)| {
            let operations = vec![Operation::Admin(AdminOperation::RemoveValidator { public_key })];
            Transaction::new(
                TxBody { chain_id: CHAIN_ID.into(), sender: admin.public_key(), nonce, operations },
                admin,
            )
        })
        .collect();
    let [(state_root, block_changes), (second_state_root, _)] =
        execute(&genesis, &genesis_changes, [&block_transactions, &second_transactions]);
    // The rules each block leaves scheduled, as the consensus crate's schedule follows them.
    let mut schedule = Schedule::from_genesis(&genesis);
    schedule.observe(1, &block_transactions);
    let rules_hash = schedule.latest().hash();
    schedule.observe(2, &second_transactions);
    let second_rules_hash = schedule.latest().hash();

    let unsealed_header = Header {
        chain_id: CHAIN_ID.into(),
        height: 1,
        view: 0,
        previous_hash: genesis.hash(),
        tx_root: Hash::ZERO,
        state_root,
        rules_hash,
        timestamp_ms: genesis.genesis_time_ms + 200,
        proposer: validators[0],
        pow_difficulty: DIFFICULTY,
        pow_nonce: 0,
    };
    let mut block = Block::new(unsealed_header, block_transactions);
    let unsealed_header = block.header.clone();
    block.header.seal();

    let commit_target = VoteTarget { height: 1, view: 0, block_hash: block.hash() };
    let signers = ["validator-0", "validator-1", "validator-2"].map(|name| key_named(&keys, name));
    let certificate = commit_certificate(commit_target, &signers);

    let merkle_leaves = (0..8u64).map(|i| Hash::digest(&i.to_le_bytes())).collect();

    let mut second_block = Block::new(
        Header {
            height: 2,
            previous_hash: block.hash(),
            state_root: second_state_root,
            rules_hash: second_rules_hash,
            timestamp_ms: block.header.timestamp_ms + 200,
            pow_nonce: 0,
            ..block.header.clone()
        },
        second_transactions,
    );
    second_block.header.seal();
    // Block 1's changes are not in force at height 2: the genesis set certifies it.
    let second_target = VoteTarget { height: 2, view: 0, block_hash: second_block.hash() };
    let second_certificate = commit_certificate(second_target, &signers);

    Fixture {
        keys,
        genesis,
        genesis_changes,
        genesis_state_root,
        transactions,
        block_changes,
        unsealed_header,
        block,
        commit_target,
        certificate,
        merkle_leaves,
        second_block,
        second_certificate,
    }
}

/// COMMIT votes on `target` by `signers`, in voter order as nodes write them.
fn commit_certificate(target: VoteTarget, signers: &[&SigningKey]) -> CommitCertificate {
    let mut votes: Vec<CommitVote> = signers
        .iter()
        .map(|key| CommitVote {
            voter: key.public_key(),
            signature: sign_vote(Domain::Commit, CHAIN_ID, &target, key),
        })
        .collect();
    votes.sort_by_key(|vote| vote.voter);
    CommitCertificate { target, votes }
}

/// The state as one map, as after genesis.
struct MapState(Changes);

impl StateView for MapState {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.get(key).cloned().flatten()
    }
}

/// Executes blocks 1 and 2 on the genesis state as a node does; returns the state root and
/// changes of each.
fn execute<const N: usize>(
    genesis: &Genesis,
    genesis_changes: &Changes,
    blocks: [&[Transaction]; N],
) -> [(Hash, Changes); N] {
    let genesis_root = kubechain_ledger::genesis_root(genesis);
    let mut ledger = Ledger::new(CHAIN_ID, MapState(genesis_changes.clone()), genesis_root, 16, u64::MAX);
    let (mut parent, mut height) = (genesis_root, 0);
    blocks.each_ref().map(|transactions| {
        height += 1;
        let state_root = match ledger.execute(&parent, height, transactions) {
            Ok(root) => root,
            Err(error) => panic!("the vectors' block {height} does not execute: {error}"),
        };
        parent = state_root;
        (state_root, ledger.changes_of(&state_root).expect("an executed block's changes").clone())
    })
}

// ---------------------------------------------------------------------------------------------
// A second implementation, written from docs/encoding.md rather than from the crate's code.

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    Hash(hasher.finalize().into())
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, value: u8) -> &mut Self {
        self.0.push(value);
        self
    }
    fn u32(&mut self, value: u32) -> &mut Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }
    fn u64(&mut self, value: u64) -> &mut Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }
    fn length(&mut self, len: usize) -> &mut Self {
        self.u32(u32::try_from(len).expect("length fits u32"))
    }
    fn bytes(&mut self, value: &[u8]) -> &mut Self {
        self.length(value.len());
        self.0.extend_from_slice(value);
        self
    }
    fn string(&mut self, value: &str) -> &mut Self {
        self.bytes(value.as_bytes())
    }
    fn fixed(&mut self, value: &[u8]) -> &mut Self {
        self.0.extend_from_slice(value);
        self
    }
    fn keys(&mut self, keys: &[PublicKey]) -> &mut Self {
        self.length(keys.len());
        for key in keys {
            self.fixed(&key.0);
        }
        self
    }
    fn params(&mut self, params: &ConsensusParams) -> &mut Self {
        self.u64(params.block_interval_ms)
            .u32(params.max_block_txs)
            .u64(params.checkpoint_interval)
            .u64(params.view_change_timeout_ms)
            .u8(params.pow_difficulty_bits)
    }
}

fn spec_encode_operation(operation: &Operation) -> Vec<u8> {
    let mut out = Writer(Vec::new());
    match operation {
        Operation::Put { key, value } => out.u8(0).string(key).bytes(value),
        Operation::Delete { key } => out.u8(1).string(key),
        Operation::Anchor(anchor) => out.u8(2).string(&anchor.uri).fixed(&anchor.sha256.0).u64(anchor.size),
        Operation::Admin(admin) => match admin {
            AdminOperation::AddMember { name, public_keys } => out.u8(3).u8(0).string(name).keys(public_keys),
            AdminOperation::RemoveMember { name } => out.u8(3).u8(1).string(name),
            AdminOperation::AddValidator { public_key } => out.u8(3).u8(2).fixed(&public_key.0),
            AdminOperation::RemoveValidator { public_key } => out.u8(3).u8(3).fixed(&public_key.0),
            AdminOperation::SetConsensusParams { params } => out.u8(3).u8(4).params(params),
            AdminOperation::AddAdmin { public_key } => out.u8(3).u8(5).fixed(&public_key.0),
            AdminOperation::RemoveAdmin { public_key } => out.u8(3).u8(6).fixed(&public_key.0),
        },
    };
    out.0
}

fn spec_encode_body(body: &TxBody) -> Vec<u8> {
    let mut out = Writer(Vec::new());
    out.string(&body.chain_id).fixed(&body.sender.0).u64(body.nonce).length(body.operations.len());
    for operation in &body.operations {
        out.fixed(&spec_encode_operation(operation));
    }
    out.0
}

fn spec_encode_header(header: &Header) -> Vec<u8> {
    let mut out = Writer(Vec::new());
    out.string(&header.chain_id)
        .u64(header.height)
        .u64(header.view)
        .fixed(&header.previous_hash.0)
        .fixed(&header.tx_root.0)
        .fixed(&header.state_root.0)
        .fixed(&header.rules_hash.0)
        .u64(header.timestamp_ms)
        .fixed(&header.proposer.0)
        .u8(header.pow_difficulty)
        .u64(header.pow_nonce);
    out.0
}

fn spec_encode_target(target: &VoteTarget) -> Vec<u8> {
    let mut out = Writer(Vec::new());
    out.u64(target.height).u64(target.view).fixed(&target.block_hash.0);
    out.0
}

fn spec_encode_certificate(certificate: &CommitCertificate) -> Vec<u8> {
    let mut out = Writer(spec_encode_target(&certificate.target));
    out.length(certificate.votes.len());
    for vote in &certificate.votes {
        out.fixed(&vote.voter.0).fixed(&vote.signature.0);
    }
    out.0
}

fn spec_encode_genesis(genesis: &Genesis) -> Vec<u8> {
    let mut out = Writer(Vec::new());
    out.string(&genesis.chain_id)
        .u64(genesis.genesis_time_ms)
        .keys(&genesis.validators)
        .keys(&genesis.admins)
        .length(genesis.members.len());
    for member in &genesis.members {
        out.string(&member.name).keys(&member.public_keys);
    }
    out.params(&genesis.params);
    out.0
}

fn spec_encode_proof(proof: &MerkleProof) -> Vec<u8> {
    let mut out = Writer(Vec::new());
    out.u64(proof.index).u64(proof.leaf_count).length(proof.path.len());
    for sibling in &proof.path {
        out.fixed(&sibling.0);
    }
    out.0
}

fn spec_signing_bytes(domain_label: &str, chain_id: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Writer(Vec::new());
    out.string(domain_label).string(chain_id).fixed(payload);
    out.0
}

fn spec_tree_hash(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => sha256(&[]),
        [leaf] => sha256(&[&[0x00], &leaf.0]),
        _ => {
            let mut split = 1;
            while 2 * split < leaves.len() {
                split *= 2;
            }
            let (left, right) = (spec_tree_hash(&leaves[..split]), spec_tree_hash(&leaves[split..]));
            sha256(&[&[0x01], &left.0, &right.0])
        }
    }
}

fn spec_root(leaves: &[Hash]) -> Hash {
    let count = leaves.len() as u64;
    sha256(&[&[0x02], &count.to_le_bytes(), &spec_tree_hash(leaves).0])
}

/// The RFC 9162 section 2.1.3.2 walk, as docs/encoding.md states it.
fn spec_verify_proof(leaf: &Hash, proof: &MerkleProof, root: &Hash) -> bool {
    if proof.index >= proof.leaf_count {
        return false;
    }
    let (mut node, mut last) = (proof.index, proof.leaf_count - 1);
    let mut hash = sha256(&[&[0x00], &leaf.0]);
    for sibling in &proof.path {
        if last == 0 {
            return false;
        }
        if node & 1 == 1 || node == last {
            hash = sha256(&[&[0x01], &sibling.0, &hash.0]);
            while node & 1 == 0 && node != 0 {
                node >>= 1;
                last >>= 1;
            }
        } else {
            hash = sha256(&[&[0x01], &hash.0, &sibling.0]);
        }
        node >>= 1;
        last >>= 1;
    }
    last == 0 && sha256(&[&[0x02], &proof.leaf_count.to_le_bytes(), &hash.0]) == *root
}

/// The state-root rule of docs/encoding.md: a hash chain over each block's change map.
fn spec_encode_changes(changes: &[(Vec<u8>, Option<Vec<u8>>)]) -> Vec<u8> {
    let mut sorted = changes.to_vec();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Writer(Vec::new());
    out.length(sorted.len());
    for (key, value) in &sorted {
        out.bytes(key);
        match value {
            None => out.u8(0),
            Some(value) => out.u8(1).bytes(value),
        };
    }
    out.0
}

fn spec_state_root(parent: &Hash, changes: &[(Vec<u8>, Option<Vec<u8>>)]) -> Hash {
    sha256(&[b"kubechain/v1/state", &parent.0, &spec_encode_changes(changes)])
}

fn spec_key(prefix: &str, rest: &[u8]) -> Vec<u8> {
    [prefix.as_bytes(), rest].concat()
}

fn spec_keys_value(keys: &[PublicKey]) -> Vec<u8> {
    Writer(Vec::new()).keys(keys).0.clone()
}

/// The state genesis writes, from the key and value table of docs/encoding.md.
fn spec_genesis_changes(genesis: &Genesis) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let mut changes = Vec::new();
    for admin in &genesis.admins {
        changes.push((spec_key("admin/", &admin.0), Some(Vec::new())));
    }
    for member in &genesis.members {
        changes
            .push((spec_key("member/", member.name.as_bytes()), Some(spec_keys_value(&member.public_keys))));
        for key in &member.public_keys {
            changes.push((
                spec_key("member-key/", &key.0),
                Some(Writer(Vec::new()).string(&member.name).0.clone()),
            ));
        }
    }
    changes.push((b"validators".to_vec(), Some(spec_keys_value(&genesis.validators))));
    changes.push((b"params".to_vec(), Some(Writer(Vec::new()).params(&genesis.params).0.clone())));
    changes
}

/// What the vectors' block 1 changes, worked out by hand from the same table.
fn spec_block_1_changes(fixture: &Fixture) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let public = |name: &str| fixture.key(name).public_key();
    let data = |key: &str| spec_key("data/acme/", key.as_bytes());
    let Operation::Anchor(anchor) = &fixture.transactions[0].transaction.body.operations[2] else {
        panic!("the first transaction's third operation is the anchor")
    };
    let Operation::Admin(AdminOperation::SetConsensusParams { params }) =
        &fixture.transactions[1].transaction.body.operations[4]
    else {
        panic!("the admin transaction's fifth operation sets the parameters")
    };
    let anchor_value =
        Writer(Vec::new()).string(&anchor.uri).fixed(&anchor.sha256.0).u64(anchor.size).0.clone();
    let validators = new_validators(fixture);
    vec![
        // client-put-delete-anchor, then client-put-bytes: the later nonce wins.
        (data("invoice/17"), Some(b"paid".to_vec())),
        (data("draft/17"), None),
        (spec_key("anchor/acme/", &anchor.sha256.0), Some(anchor_value)),
        (data("invoice/18"), Some(vec![0x00, 0xff])),
        (spec_key("nonce/", &public("client-acme").0), Some(2u64.to_le_bytes().to_vec())),
        // admin-operations
        (spec_key("member/", b"initech"), Some(spec_keys_value(&[public("client-initech")]))),
        (
            spec_key("member-key/", &public("client-initech").0),
            Some(Writer(Vec::new()).string("initech").0.clone()),
        ),
        (spec_key("member/", b"globex"), None),
        (b"validators".to_vec(), Some(spec_keys_value(&validators))),
        (b"params".to_vec(), Some(Writer(Vec::new()).params(params).0.clone())),
        (spec_key("nonce/", &public("admin").0), Some(1u64.to_le_bytes().to_vec())),
        // Added, then removed in the same transaction: the delete is what the map keeps.
        (spec_key("admin/", &public("deputy-admin").0), None),
    ]
}

fn as_list(changes: &Changes) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    changes.iter().map(|(key, value)| (key.clone(), value.clone())).collect()
}

/// The "Verifying a receipt offline" procedure of docs/encoding.md.
fn spec_verify_receipt(
    transaction: &Transaction,
    proof: &MerkleProof,
    header: &Header,
    certificate: &CommitCertificate,
    chain_id: &str,
    validators: &[PublicKey],
) -> Result<(), String> {
    let mut tx_bytes = spec_encode_body(&transaction.body);
    tx_bytes.extend_from_slice(&transaction.signature.0);
    let tx_hash = sha256(&[&tx_bytes]);
    if !spec_verify_proof(&tx_hash, proof, &header.tx_root) {
        return Err("transaction is not under the header's tx_root".into());
    }
    if header.chain_id != chain_id {
        return Err("header is for another chain".into());
    }
    if sha256(&[&spec_encode_header(header)]) != certificate.target.block_hash {
        return Err("certificate is for another block".into());
    }
    if certificate.target.height != header.height {
        return Err("certificate is for another height".into());
    }
    let n = validators.len();
    let f = (n - 1) / 3;
    let quorum = (n + f + 1).div_ceil(2);
    let payload = spec_encode_target(&certificate.target);
    let mut previous: Option<[u8; 32]> = None;
    for vote in &certificate.votes {
        if !validators.contains(&vote.voter) {
            return Err("vote from an unknown validator".into());
        }
        if previous.is_some_and(|previous| previous >= vote.voter.0) {
            return Err("votes not in strictly ascending voter key order".into());
        }
        previous = Some(vote.voter.0);
        if vote.voter.verify(Domain::Commit, chain_id, &payload, &vote.signature).is_err() {
            return Err("bad commit signature".into());
        }
    }
    if certificate.votes.len() < quorum {
        return Err(format!("{} votes, quorum is {quorum}", certificate.votes.len()));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The checks.

/// The edge cases of section 7.2, signed by `edge-signer` over the payload "edge".
fn signature_edge_cases() -> Vec<EdgeCase> {
    let signer = EdgeSigner::new(SigningKey::from_seed([EDGE_SIGNER_SEED; 32]));
    edge_cases(&signer, Domain::Transaction, CHAIN_ID, b"edge")
}

fn check_semantics(fixture: &Fixture) {
    for case in signature_edge_cases() {
        let verdict = case.key.verify(Domain::Transaction, CHAIN_ID, &case.payload, &case.signature).is_ok();
        assert_eq!(verdict, case.accepted, "signature edge case {}", case.name);
    }
    let labels = [
        (Domain::Transaction, "kubechain/v1/transaction"),
        (Domain::PrePrepare, "kubechain/v1/pre-prepare"),
        (Domain::Prepare, "kubechain/v1/prepare"),
        (Domain::Commit, "kubechain/v1/commit"),
        (Domain::Checkpoint, "kubechain/v1/checkpoint"),
        (Domain::ViewChange, "kubechain/v1/view-change"),
        (Domain::NewView, "kubechain/v1/new-view"),
        (Domain::PeerHandshake, "kubechain/v1/peer-handshake"),
    ];
    for (domain, label) in labels {
        assert_eq!(domain.label(), label, "the label table in docs/encoding.md");
        assert_eq!(signing_bytes(domain, CHAIN_ID, b"xy"), spec_signing_bytes(label, CHAIN_ID, b"xy"));
    }

    for named in &fixture.transactions {
        let tx = &named.transaction;
        assert_eq!(tx.verify_signature(), Ok(()), "{}", named.name);
        assert_eq!(encode(&tx.body), spec_encode_body(&tx.body), "{}: TxBody layout", named.name);
        for operation in &tx.body.operations {
            assert_eq!(encode(operation), spec_encode_operation(operation), "{operation:?}");
        }
        let mut tx_bytes = spec_encode_body(&tx.body);
        tx_bytes.extend_from_slice(&tx.signature.0);
        assert_eq!(encode(tx), tx_bytes, "{}: Transaction layout", named.name);
        assert_eq!(tx.hash(), sha256(&[&tx_bytes]));
        assert_eq!(decode::<Transaction>(&tx_bytes).as_ref().ok(), Some(tx));
        let json = serde_json::to_string(tx).expect("transaction to JSON");
        assert_eq!(serde_json::from_str::<Transaction>(&json).ok().as_ref(), Some(tx), "JSON round trip");
        let mut forged = tx.clone();
        forged.body.nonce += 1;
        assert!(forged.verify_signature().is_err(), "{}: signature must cover the nonce", named.name);
    }

    let genesis = &fixture.genesis;
    assert_eq!(genesis.validate(), Ok(()));
    assert_eq!(encode(genesis), spec_encode_genesis(genesis), "Genesis layout");
    assert_eq!(genesis.hash(), sha256(&[&spec_encode_genesis(genesis)]));

    for header in [&fixture.unsealed_header, &fixture.block.header] {
        assert_eq!(encode(header), spec_encode_header(header), "Header layout");
        assert_eq!(header.hash(), sha256(&[&spec_encode_header(header)]));
        assert_eq!(decode::<Header>(&encode(header)).as_ref().ok(), Some(header));
    }
    let block = &fixture.block;
    assert_eq!(block.header.previous_hash, genesis.hash());
    assert_eq!(block.header.tx_root, spec_root(&block::tx_hashes(&block.transactions)));
    assert!(!fixture.unsealed_header.is_sealed(), "nonce 0 should not already be a seal");
    assert!(block.header.is_sealed());
    assert_eq!(block.hash().0[0], 0, "8 leading zero bits are a zero first byte");
    assert_eq!(block.check_integrity(CHAIN_ID, genesis.params.pow_difficulty_bits), Ok(()));

    // The state root in the header is the node's, and follows the documented layout and rule.
    let spec_genesis = spec_genesis_changes(genesis);
    assert_eq!(encode(&fixture.genesis_changes), spec_encode_changes(&spec_genesis), "genesis state");
    assert_eq!(fixture.genesis_state_root, spec_state_root(&Hash::ZERO, &spec_genesis));
    let spec_block = spec_block_1_changes(fixture);
    assert_eq!(as_list(&fixture.block_changes).len(), spec_block.len(), "block 1 changes");
    assert_eq!(encode(&fixture.block_changes), spec_encode_changes(&spec_block), "block 1 changes");
    assert_eq!(block.header.state_root, spec_state_root(&fixture.genesis_state_root, &spec_block));

    // Block 1's set and parameter changes govern heights from 1 + 2 x checkpoint_interval + 1 on.
    let activation = activation_height(genesis);
    let mut schedule = Schedule::from_genesis(genesis);
    assert!(schedule.observe_commit(block));
    assert_eq!(schedule.validators_at(activation - 1), &genesis.validator_set());
    assert_eq!(schedule.params_at(activation - 1), &genesis.params);
    assert_eq!(schedule.validators_at(activation).keys(), new_validators(fixture).as_slice());
    assert_eq!(schedule.params_at(activation).pow_difficulty_bits, 10);

    let target = &fixture.commit_target;
    assert_eq!(encode(target), spec_encode_target(target), "VoteTarget layout");
    let validators = genesis.validator_set();
    let certificate = &fixture.certificate;
    assert_eq!(encode(certificate), spec_encode_certificate(certificate), "CommitCertificate layout");
    assert_eq!(quorum(4), 3);
    assert_eq!(certificate.verify_for(target, CHAIN_ID, &validators), Ok(()));
    let mut short = certificate.clone();
    short.votes.pop();
    assert!(short.verify(CHAIN_ID, &validators).is_err(), "2 of 4 is not a quorum");
    let voter = fixture.key("validator-0");
    let prepare = sign_vote(Domain::Prepare, CHAIN_ID, target, voter);
    assert!(voter.public_key().verify(Domain::Commit, CHAIN_ID, &encode(target), &prepare).is_err());

    let leaves = &fixture.merkle_leaves;
    for n in 0..=leaves.len() {
        assert_eq!(merkle::root(&leaves[..n]), spec_root(&leaves[..n]), "root of {n} leaves");
    }
    // The documented walk agrees with the crate on every leaf of every small tree, and on tampering.
    let many: Vec<Hash> = (0..33u64).map(|i| Hash::digest(&i.to_be_bytes())).collect();
    for n in 1..=many.len() {
        let root = merkle::root(&many[..n]);
        for index in 0..n {
            let proof = MerkleProof::new(&many[..n], index).expect("index in range");
            assert_eq!(encode(&proof), spec_encode_proof(&proof));
            assert!(proof.verify(&many[index], &root) && spec_verify_proof(&many[index], &proof, &root));
            let mut longer = proof.clone();
            longer.leaf_count += 1;
            assert!(!longer.verify(&many[index], &root) && !spec_verify_proof(&many[index], &longer, &root));
            let other = &many[(index + 1) % n];
            if other != &many[index] {
                assert!(!proof.verify(other, &root) && !spec_verify_proof(other, &proof, &root));
            }
        }
    }

    let (tx, proof) = receipt(fixture);
    let chain_validators = &genesis.validators;
    assert_eq!(
        spec_verify_receipt(tx, &proof, &block.header, certificate, CHAIN_ID, chain_validators),
        Ok(())
    );
    let wrong_tx = &fixture.transactions[1].transaction;
    assert!(
        spec_verify_receipt(wrong_tx, &proof, &block.header, certificate, CHAIN_ID, chain_validators)
            .is_err()
    );
    assert!(
        spec_verify_receipt(tx, &proof, &fixture.unsealed_header, certificate, CHAIN_ID, chain_validators)
            .is_err()
    );
    assert!(spec_verify_receipt(tx, &proof, &block.header, &short, CHAIN_ID, chain_validators).is_err());
    let file_text = receipt_file(fixture).to_file_text();
    let read = Receipt::from_file_text(file_text.as_bytes()).expect("the receipt file reads back");
    assert_eq!(read.verify(&fixture.genesis).map(|_| ()), Ok(()));
    assert!(file_text.ends_with("}\n") && !file_text.contains("\r"), "pretty JSON, one final newline");

    let mut reordered = certificate.clone();
    reordered.votes.reverse();
    assert!(reordered.verify(CHAIN_ID, &validators).is_err(), "votes out of voter order");
    assert!(spec_verify_receipt(tx, &proof, &block.header, &reordered, CHAIN_ID, chain_validators).is_err());

    let after = receipt_after_rule_change(fixture);
    assert_eq!(after.verify(&fixture.genesis).map(|set| set.keys().to_vec()), Ok(new_validators(fixture)));
    assert_eq!(
        spec_verify_receipt_with_rule_changes(&fixture.genesis, &after, true),
        Ok(new_validators(fixture))
    );
    let mut bare = after.clone();
    bare.rule_changes.clear();
    assert!(bare.verify(&fixture.genesis).is_err(), "the joining validator is unknown to the genesis set");
    let read = Receipt::from_file_text(after.to_file_text().as_bytes()).expect("reads back");
    assert_eq!(read, after);

    check_rules_hashes(fixture);
}

/// Every header names the latest scheduled rules after it (section 8.1), and a receipt that
/// leaves out an admin transaction or a rule change is refused at the header it contradicts.
fn check_rules_hashes(fixture: &Fixture) {
    let genesis = &fixture.genesis;
    let genesis_rules = Rules::from_genesis(genesis);
    assert_eq!(encode(&genesis_rules), spec_rules_encoding(&genesis.validators, &genesis.params));
    assert_eq!(genesis_rules.hash(), spec_rules_hash(&genesis.validators, &genesis.params));
    let block_1_params = schedule_after_block_1(fixture).params_at(activation_height(genesis)).clone();
    assert_eq!(fixture.block.header.rules_hash, spec_rules_hash(&new_validators(fixture), &block_1_params));
    assert_eq!(
        fixture.second_block.header.rules_hash,
        spec_rules_hash(&validators_after_block_2(fixture), &block_1_params)
    );
    assert_eq!(fixture.second_block.header.previous_hash, fixture.block.hash());
    assert_eq!(fixture.second_block.check_integrity(CHAIN_ID, DIFFICULTY), Ok(()));

    let genuine = receipt_after_two_rule_changes(fixture);
    assert_eq!(genuine.verify(genesis).map(|set| set.keys().to_vec()), Ok(validators_after_block_2(fixture)));
    assert_eq!(
        spec_verify_receipt_with_rule_changes(genesis, &genuine, true),
        Ok(validators_after_block_2(fixture))
    );

    for omission in omissions(fixture) {
        let name = omission.name;
        let derived: Vec<PublicKey> =
            omission.derived_validators.iter().map(|name| fixture.key(name).public_key()).collect();
        let derived_hash = spec_rules_hash(&derived, &omission.derived_params);
        assert_eq!(
            omission.receipt.verify(genesis),
            Err(ReceiptError::RuleChangeRulesHash {
                height: 2,
                committed: fixture.second_block.header.rules_hash,
                derived: derived_hash
            }),
            "{name}"
        );
        let refused = spec_verify_receipt_with_rule_changes(genesis, &omission.receipt, true);
        assert!(refused.is_err_and(|error| error.contains("height 2")), "{name}");
        // Without the header's rules it would pass, with a set that never governed the chain.
        assert_eq!(
            spec_verify_receipt_with_rule_changes(genesis, &omission.receipt, false),
            Ok(derived),
            "{name}"
        );
    }
}

/// The schedule after block 1, as the consensus crate follows it.
fn schedule_after_block_1(fixture: &Fixture) -> Schedule {
    let mut schedule = Schedule::from_genesis(&fixture.genesis);
    schedule.observe_commit(&fixture.block);
    schedule
}

/// The first height whose validator set and parameters include block 1's admin operations.
fn activation_height(genesis: &Genesis) -> u64 {
    1 + 2 * genesis.params.checkpoint_interval + 1
}

/// The validator set after block 1: validator-3 removed, joining-validator added at the end.
fn new_validators(fixture: &Fixture) -> Vec<PublicKey> {
    ["validator-0", "validator-1", "validator-2", "joining-validator"]
        .map(|name| fixture.key(name).public_key())
        .to_vec()
}

fn receipt(fixture: &Fixture) -> (&Transaction, MerkleProof) {
    let proof = fixture.block.tx_proof(0).expect("block has a first transaction");
    (&fixture.block.transactions[0], proof)
}

fn receipt_file(fixture: &Fixture) -> Receipt {
    let (transaction, proof) = receipt(fixture);
    Receipt {
        transaction: transaction.clone(),
        proof,
        header: fixture.block.header.clone(),
        certificate: fixture.certificate.clone(),
        rule_changes: Vec::new(),
    }
}

/// A receipt at the first height governed by block 1's changes: a block there carrying
/// `client-acme`'s second transaction, certified by
/// validator-0, validator-1 and the joining validator (3 of the new set of 4), with block 1 as
/// its rule change.
fn receipt_after_rule_change(fixture: &Fixture) -> Receipt {
    let height = activation_height(&fixture.genesis);
    let client = fixture.key("client-acme");
    let body = TxBody {
        chain_id: CHAIN_ID.into(),
        sender: client.public_key(),
        nonce: 2,
        operations: vec![Operation::Put { key: "invoice/18".into(), value: b"sent".to_vec() }],
    };
    let transaction = Transaction::new(body, client);
    let header = Header {
        chain_id: CHAIN_ID.into(),
        height,
        view: 0,
        previous_hash: Hash::digest(b"the block below, not part of the receipt"),
        tx_root: Hash::ZERO,
        state_root: Hash::digest(b"state after it"),
        rules_hash: Hash::ZERO,
        timestamp_ms: fixture.genesis.genesis_time_ms + 60_000,
        proposer: new_validators(fixture)[0],
        pow_difficulty: DIFFICULTY,
        pow_nonce: 0,
    };
    let mut block = Block::new(header, vec![transaction]);
    block.header.seal();
    let target = VoteTarget { height, view: 0, block_hash: block.hash() };
    let signers = ["validator-0", "validator-1", "joining-validator"].map(|name| fixture.key(name));
    Receipt {
        transaction: block.transactions[0].clone(),
        proof: block.tx_proof(0).expect("one transaction"),
        header: block.header.clone(),
        certificate: commit_certificate(target, &signers),
        rule_changes: vec![RuleChange::from_block(&fixture.block, fixture.certificate.clone())],
    }
}

/// The rules a header's `rules_hash` names (section 8.1): SHA-256 of the key list (count, then
/// the keys) followed by the 29 parameter bytes.
fn spec_rules_encoding(validators: &[PublicKey], params: &ConsensusParams) -> Vec<u8> {
    Writer(Vec::new()).keys(validators).params(params).0.clone()
}

fn spec_rules_hash(validators: &[PublicKey], params: &ConsensusParams) -> Hash {
    sha256(&[&spec_rules_encoding(validators, params)])
}

/// Section 8.1's admin operations on the latest scheduled rules, in block and operation order.
fn spec_apply<'a>(
    validators: &mut Vec<PublicKey>,
    params: &mut ConsensusParams,
    transactions: impl Iterator<Item = &'a Transaction>,
) {
    for operation in transactions.flat_map(|tx| &tx.body.operations) {
        match operation {
            Operation::Admin(AdminOperation::AddValidator { public_key })
                if !validators.contains(public_key) =>
            {
                validators.push(*public_key)
            }
            Operation::Admin(AdminOperation::RemoveValidator { public_key }) if validators.len() > 1 => {
                validators.retain(|key| key != public_key)
            }
            Operation::Admin(AdminOperation::SetConsensusParams { params: next }) => *params = next.clone(),
            _ => {}
        }
    }
}

/// Section 9 from the document alone: follows the receipt's rule changes from genesis (each
/// certified by the set in force at its height, its transactions under its tx_root, and, when
/// `check_rules_hash`, its header naming the rules they give), then checks the receipt against
/// the set in force at its height. Returns that set.
fn spec_verify_receipt_with_rule_changes(
    genesis: &Genesis,
    receipt: &Receipt,
    check_rules_hash: bool,
) -> Result<Vec<PublicKey>, String> {
    let window = 2 * genesis.params.checkpoint_interval;
    // The first height each set governs, genesis first.
    let mut sets: Vec<(u64, Vec<PublicKey>)> = vec![(1, genesis.validators.clone())];
    let set_at = |sets: &[(u64, Vec<PublicKey>)], height: u64| {
        sets.iter().rev().find(|(from, _)| *from <= height).map(|(_, set)| set.clone()).unwrap_or_default()
    };
    let (mut validators, mut params) = (genesis.validators.clone(), genesis.params.clone());
    let mut previous = 0;
    for change in &receipt.rule_changes {
        let height = change.header.height;
        if height <= previous || height + window + 1 > receipt.header.height {
            return Err(format!("the rule change at height {height} is out of place"));
        }
        let first = change.transactions.first().ok_or("a rule change without transactions")?;
        let certifiers = set_at(&sets, height);
        spec_verify_receipt(
            &first.transaction,
            &first.proof,
            &change.header,
            &change.certificate,
            CHAIN_ID,
            &certifiers,
        )?;
        let mut last_index = None;
        for proven in &change.transactions {
            let mut bytes = spec_encode_body(&proven.transaction.body);
            bytes.extend_from_slice(&proven.transaction.signature.0);
            let is_admin =
                proven.transaction.body.operations.iter().any(|op| matches!(op, Operation::Admin(_)));
            if !is_admin || last_index.is_some_and(|last| proven.proof.index <= last) {
                return Err("a rule change's transactions are not admin transactions in block order".into());
            }
            if !spec_verify_proof(&sha256(&[&bytes]), &proven.proof, &change.header.tx_root) {
                return Err("a rule change's transaction is not under its tx_root".into());
            }
            last_index = Some(proven.proof.index);
        }
        spec_apply(
            &mut validators,
            &mut params,
            change.transactions.iter().map(|proven| &proven.transaction),
        );
        let derived = spec_rules_hash(&validators, &params);
        if check_rules_hash && derived != change.header.rules_hash {
            return Err(format!(
                "rule change at height {height}: its header commits to rules {:?}, the receipt's transactions give {derived:?}",
                change.header.rules_hash
            ));
        }
        sets.push((height + window + 1, validators.clone()));
        previous = height;
    }
    let set = set_at(&sets, receipt.header.height);
    spec_verify_receipt(
        &receipt.transaction,
        &receipt.proof,
        &receipt.header,
        &receipt.certificate,
        CHAIN_ID,
        &set,
    )?;
    Ok(set)
}

/// The first height governed by block 2's changes.
fn block_2_activation(genesis: &Genesis) -> u64 {
    activation_height(genesis) + 1
}

/// The validator set after block 2: validator-0 and validator-1 removed from block 1's set.
fn validators_after_block_2(fixture: &Fixture) -> Vec<PublicKey> {
    ["validator-2", "joining-validator"].map(|name| fixture.key(name).public_key()).to_vec()
}

/// A receipt at the first height block 2's changes govern, for `client-acme`'s third
/// transaction, certified by `signers`, with `rule_changes`.
fn receipt_after_block_2(fixture: &Fixture, signers: [&str; 2], rule_changes: Vec<RuleChange>) -> Receipt {
    let height = block_2_activation(&fixture.genesis);
    let client = fixture.key("client-acme");
    let body = TxBody {
        chain_id: CHAIN_ID.into(),
        sender: client.public_key(),
        nonce: 3,
        operations: vec![Operation::Put { key: "invoice/19".into(), value: b"filed".to_vec() }],
    };
    let header = Header {
        chain_id: CHAIN_ID.into(),
        height,
        view: 0,
        previous_hash: Hash::digest(b"the block below, not part of the receipt"),
        tx_root: Hash::ZERO,
        state_root: Hash::digest(b"state after it"),
        // No admin operation since block 2: its rules are still the latest.
        rules_hash: fixture.second_block.header.rules_hash,
        timestamp_ms: fixture.genesis.genesis_time_ms + 60_200,
        proposer: fixture.key("validator-2").public_key(),
        // Block 1's parameters are in force here.
        pow_difficulty: 10,
        pow_nonce: 0,
    };
    let mut block = Block::new(header, vec![Transaction::new(body, client)]);
    block.header.seal();
    let target = VoteTarget { height, view: 0, block_hash: block.hash() };
    let signers = signers.map(|name| fixture.key(name));
    Receipt {
        transaction: block.transactions[0].clone(),
        proof: block.tx_proof(0).expect("one transaction"),
        header: block.header.clone(),
        certificate: commit_certificate(target, &signers),
        rule_changes,
    }
}

fn rule_change(block: &Block, certificate: &CommitCertificate) -> RuleChange {
    RuleChange::from_block(block, certificate.clone())
}

/// The receipt after both rule changes, as a node writes it.
fn receipt_after_two_rule_changes(fixture: &Fixture) -> Receipt {
    let changes = vec![
        rule_change(&fixture.block, &fixture.certificate),
        rule_change(&fixture.second_block, &fixture.second_certificate),
    ];
    receipt_after_block_2(fixture, ["validator-2", "joining-validator"], changes)
}

/// A receipt that leaves out one thing, and what a verifier derives without it.
struct Omission {
    name: &'static str,
    description: &'static str,
    receipt: Receipt,
    derived_validators: Vec<&'static str>,
    derived_params: ConsensusParams,
}

fn omissions(fixture: &Fixture) -> Vec<Omission> {
    let mut without_second_removal = rule_change(&fixture.second_block, &fixture.second_certificate);
    without_second_removal.transactions.pop();
    let block_1_params = match &fixture.transactions[1].transaction.body.operations[4] {
        Operation::Admin(AdminOperation::SetConsensusParams { params }) => params.clone(),
        other => panic!("expected the parameter change, found {other:?}"),
    };
    vec![
        Omission {
            name: "admin-transaction-left-out",
            description: "Block 2 with only its first admin transaction: validator-1 seems to stay, and validator-2 \
                          with the joining validator (2 of 3) would be a quorum.",
            receipt: receipt_after_block_2(
                fixture,
                ["validator-2", "joining-validator"],
                vec![rule_change(&fixture.block, &fixture.certificate), without_second_removal],
            ),
            derived_validators: vec!["validator-1", "validator-2", "joining-validator"],
            derived_params: block_1_params,
        },
        Omission {
            name: "rule-change-left-out",
            description: "Block 1 left out: validator-3, which block 1 removed, seems to stay, and signs with \
                          validator-2 as a quorum of a set that never existed.",
            receipt: receipt_after_block_2(
                fixture,
                ["validator-2", "validator-3"],
                vec![rule_change(&fixture.second_block, &fixture.second_certificate)],
            ),
            derived_validators: vec!["validator-2", "validator-3"],
            derived_params: fixture.genesis.params.clone(),
        },
    ]
}

// ---------------------------------------------------------------------------------------------
// The file. Plain structs (not `serde_json::Value`) so the field order is the declaration order
// whatever serde_json features another crate turns on.

#[derive(Serialize)]
struct VectorFile {
    about: &'static str,
    chain_id: &'static str,
    keys: Vec<KeyVector>,
    domains: Vec<DomainVector>,
    transactions: Vec<TransactionVector>,
    genesis: GenesisVector,
    headers: Vec<HeaderVector>,
    state: StateVectors,
    commit_vote: CommitVoteVector,
    commit_certificate: CertificateVector,
    merkle: MerkleVectors,
    receipt: ReceiptVector,
    receipt_after_rule_change: ReceiptAfterRuleChangeVector,
    rule_change_omissions: RuleChangeOmissionsVector,
    signature_edge_cases: SignatureEdgeCases,
}

#[derive(Serialize)]
struct RuleChangeOmissionsVector {
    description: &'static str,
    block_2: HeaderVector,
    block_2_transactions: Vec<Transaction>,
    rules_after_block_2: RulesVector,
    receipt: ReceiptAfterRuleChangeVector,
    refused: Vec<RefusedReceiptVector>,
}

#[derive(Serialize)]
struct RulesVector {
    validators: Vec<PublicKey>,
    params: ConsensusParams,
    encoding: String,
    rules_hash: Hash,
}

#[derive(Serialize)]
struct RefusedReceiptVector {
    name: &'static str,
    description: &'static str,
    /// What the verifier derives from the receipt's transactions, and what block 2's header names.
    derived_validators: Vec<&'static str>,
    derived_rules_hash: Hash,
    committed_rules_hash: Hash,
    file_text: String,
}

#[derive(Serialize)]
struct SignatureEdgeCases {
    description: &'static str,
    signer: &'static str,
    domain: &'static str,
    cases: Vec<SignatureCaseVector>,
}

#[derive(Serialize)]
struct SignatureCaseVector {
    name: &'static str,
    public_key: PublicKey,
    payload: String,
    signing_bytes: String,
    signature: Signature,
    accepted: bool,
}

#[derive(Serialize)]
struct KeyVector {
    name: &'static str,
    seed: String,
    public_key: PublicKey,
}

#[derive(Serialize)]
struct DomainVector {
    label: &'static str,
    signing_prefix: String,
}

#[derive(Serialize)]
struct TransactionVector {
    name: &'static str,
    description: &'static str,
    signer: &'static str,
    transaction: Transaction,
    operation_encodings: Vec<String>,
    body_encoding: String,
    signing_bytes: String,
    signature: Signature,
    encoding: String,
    hash: Hash,
}

#[derive(Serialize)]
struct GenesisVector {
    description: &'static str,
    genesis: Genesis,
    encoding: String,
    hash: Hash,
    /// Its validators and parameters as a header's `rules_hash` encodes them (section 8.1).
    rules_encoding: String,
    rules_hash: Hash,
}

#[derive(Serialize)]
struct HeaderVector {
    name: &'static str,
    description: &'static str,
    header: Header,
    encoding: String,
    hash: Hash,
    leading_zero_bits: u32,
    sealed: bool,
}

#[derive(Serialize)]
struct StateVectors {
    description: &'static str,
    genesis: StateChangeVector,
    block_1: StateChangeVector,
    activation: ActivationVector,
}

#[derive(Serialize)]
struct StateChangeVector {
    description: &'static str,
    parent_state_root: Hash,
    changes: Vec<StateEntryVector>,
    changes_encoding: String,
    state_root: Hash,
}

#[derive(Serialize)]
struct StateEntryVector {
    key_layout: String,
    key: String,
    /// `None` (JSON null): the key is deleted.
    value: Option<String>,
}

#[derive(Serialize)]
struct ActivationVector {
    description: &'static str,
    committed_at: u64,
    checkpoint_interval: u64,
    takes_effect_at: u64,
    validators: Vec<PublicKey>,
    params: ConsensusParams,
    /// These rules as block 1's `rules_hash` encodes them: the latest scheduled after it.
    rules_encoding: String,
    rules_hash: Hash,
}

#[derive(Serialize)]
struct CommitVoteVector {
    description: &'static str,
    signer: &'static str,
    target: VoteTarget,
    target_encoding: String,
    signing_bytes: String,
    signature: Signature,
    prepare_signing_bytes: String,
    prepare_signature: Signature,
}

#[derive(Serialize)]
struct CertificateVector {
    description: &'static str,
    validators: Vec<PublicKey>,
    quorum: usize,
    certificate: CommitCertificate,
    encoding: String,
}

#[derive(Serialize)]
struct MerkleVectors {
    description: &'static str,
    leaves: Vec<Hash>,
    roots: Vec<MerkleRootVector>,
    proofs: Vec<MerkleProofVector>,
}

#[derive(Serialize)]
struct MerkleRootVector {
    leaf_count: usize,
    root: Hash,
}

#[derive(Serialize)]
struct MerkleProofVector {
    leaf: Hash,
    root: Hash,
    proof: MerkleProof,
    encoding: String,
}

#[derive(Serialize)]
struct ReceiptAfterRuleChangeVector {
    description: &'static str,
    height: u64,
    validators: Vec<&'static str>,
    /// The receipt file, byte for byte: its `rule_changes` holds block 1.
    file_text: String,
}

#[derive(Serialize)]
struct ReceiptVector {
    description: &'static str,
    transaction: &'static str,
    tx_hash: Hash,
    proof: MerkleProof,
    proof_encoding: String,
    header: &'static str,
    block_hash: Hash,
    certificate: &'static str,
    validators: &'static str,
    /// The receipt file `kubechain receipt` writes for it, byte for byte.
    file_text: String,
}

fn hex_of<T: borsh::BorshSerialize>(value: &T) -> String {
    hex::encode(encode(value))
}

fn header_vector(name: &'static str, description: &'static str, header: &Header) -> HeaderVector {
    HeaderVector {
        name,
        description,
        header: header.clone(),
        encoding: hex_of(header),
        hash: header.hash(),
        leading_zero_bits: header.hash().leading_zero_bits(),
        sealed: header.is_sealed(),
    }
}

/// A key as its layout in docs/encoding.md, with key names for the raw public keys.
fn key_layout(fixture: &Fixture, key: &[u8]) -> String {
    for prefix in ["nonce/", "admin/", "member-key/"] {
        if let Some(raw) = key.strip_prefix(prefix.as_bytes())
            && let Some(named) = fixture.keys.iter().find(|named| named.key.public_key().0 == raw)
        {
            return format!("{prefix}<{} public key>", named.name);
        }
    }
    if let Some(rest) = key.strip_prefix(b"anchor/")
        && let Some(slash) = rest.iter().position(|&byte| byte == b'/')
    {
        return format!("anchor/{}/<sha256>", String::from_utf8_lossy(&rest[..slash]));
    }
    match std::str::from_utf8(key) {
        Ok(text) => text.to_string(),
        Err(_) => panic!("key {} has no layout", hex::encode(key)),
    }
}

fn state_change_vector(
    fixture: &Fixture,
    description: &'static str,
    parent_state_root: Hash,
    changes: &Changes,
    state_root: Hash,
) -> StateChangeVector {
    StateChangeVector {
        description,
        parent_state_root,
        changes: changes
            .iter()
            .map(|(key, value)| StateEntryVector {
                key_layout: key_layout(fixture, key),
                key: hex::encode(key),
                value: value.as_ref().map(hex::encode),
            })
            .collect(),
        changes_encoding: hex_of(changes),
        state_root,
    }
}

fn rule_change_omissions_vector(fixture: &Fixture) -> RuleChangeOmissionsVector {
    let mut schedule = schedule_after_block_1(fixture);
    schedule.observe_commit(&fixture.second_block);
    let rules = schedule.latest();
    RuleChangeOmissionsVector {
        description: "Block 2, on block-1, removes validator-0 and validator-1 in two admin transactions (admin \
                      nonces 2 and 3), certified by validator-0, -1 and -2 (block-1's changes are not in force \
                      yet). Its rules_hash names the rules after both blocks. The receipt, at the first height \
                      block 2 governs, carries both rule changes and verifies; each refused receipt leaves \
                      something out, and would verify with the derived set were rules_hash not checked \
                      (section 9).",
        block_2: header_vector(
            "block-2",
            "Block 2 sealed at difficulty 8; its state_root is block 1's state with the two removals.",
            &fixture.second_block.header,
        ),
        block_2_transactions: fixture.second_block.transactions.clone(),
        rules_after_block_2: RulesVector {
            validators: rules.validators.keys().to_vec(),
            params: rules.params.clone(),
            encoding: hex_of(rules),
            rules_hash: rules.hash(),
        },
        receipt: ReceiptAfterRuleChangeVector {
            description: "A receipt at the first height block 2 governs, certified by validator-2 and the joining \
                          validator (the whole set then), with block-1 and block 2 as its rule changes.",
            height: block_2_activation(&fixture.genesis),
            validators: vec!["validator-2", "joining-validator"],
            file_text: receipt_after_two_rule_changes(fixture).to_file_text(),
        },
        refused: omissions(fixture)
            .into_iter()
            .map(|omission| {
                let derived: Vec<PublicKey> =
                    omission.derived_validators.iter().map(|name| fixture.key(name).public_key()).collect();
                RefusedReceiptVector {
                    name: omission.name,
                    description: omission.description,
                    derived_rules_hash: spec_rules_hash(&derived, &omission.derived_params),
                    derived_validators: omission.derived_validators,
                    committed_rules_hash: fixture.second_block.header.rules_hash,
                    file_text: omission.receipt.to_file_text(),
                }
            })
            .collect(),
    }
}

fn render(fixture: &Fixture) -> String {
    let signer_of =
        |tx: &Transaction| match fixture.keys.iter().find(|named| named.key.public_key() == tx.body.sender) {
            Some(named) => named.name,
            None => panic!("no key for sender {:?}", tx.body.sender),
        };
    let transactions = fixture
        .transactions
        .iter()
        .map(|named| {
            let tx = &named.transaction;
            TransactionVector {
                name: named.name,
                description: named.description,
                signer: signer_of(tx),
                transaction: tx.clone(),
                operation_encodings: tx.body.operations.iter().map(hex_of).collect(),
                body_encoding: hex_of(&tx.body),
                signing_bytes: hex::encode(signing_bytes(Domain::Transaction, CHAIN_ID, &encode(&tx.body))),
                signature: tx.signature,
                encoding: hex_of(tx),
                hash: tx.hash(),
            }
        })
        .collect();

    let target = &fixture.commit_target;
    let voter = fixture.key("validator-0");
    let target_bytes = encode(target);

    let leaves = &fixture.merkle_leaves;
    let proof_vector = |n: usize, index: usize| {
        let proof = MerkleProof::new(&leaves[..n], index).expect("index in range");
        MerkleProofVector {
            leaf: leaves[index],
            root: merkle::root(&leaves[..n]),
            encoding: hex_of(&proof),
            proof,
        }
    };

    let (receipt_tx, receipt_proof) = receipt(fixture);
    let file = VectorFile {
        about: "Test vectors for docs/encoding.md, written by node/ledger/tests/vectors.rs and checked by \
                `cargo test -p kubechain-ledger --test vectors`. Hex strings are lowercase, no 0x prefix. \
                Keys are ed25519 keys whose 32-byte secret seed is the seed shown.",
        chain_id: CHAIN_ID,
        keys: fixture
            .keys
            .iter()
            .map(|named| KeyVector {
                name: named.name,
                seed: hex::encode([named.seed_byte; 32]),
                public_key: named.key.public_key(),
            })
            .collect(),
        domains: Domain::ALL
            .iter()
            .map(|domain| DomainVector {
                label: domain.label(),
                signing_prefix: hex::encode(signing_bytes(*domain, CHAIN_ID, &[])),
            })
            .collect(),
        transactions,
        genesis: GenesisVector {
            description: "Four validators, one admin, two members; block 1's previous_hash is this hash.",
            genesis: fixture.genesis.clone(),
            encoding: hex_of(&fixture.genesis),
            hash: fixture.genesis.hash(),
            rules_encoding: hex_of(&Rules::from_genesis(&fixture.genesis)),
            rules_hash: Rules::from_genesis(&fixture.genesis).hash(),
        },
        headers: vec![
            header_vector(
                "block-1-unsealed",
                "Block 1 over the three transactions in order, before sealing (nonce 0 misses difficulty 8).",
                &fixture.unsealed_header,
            ),
            header_vector(
                "block-1",
                "The same header sealed at difficulty 8: the first nonce from 0 upward whose hash starts with a zero byte.",
                &fixture.block.header,
            ),
        ],
        state: StateVectors {
            description: "The state root: a hash chain over each block's change map (key -> new value, \
                          null = deleted), in ascending key byte order. Keys and values are hex; key_layout \
                          names the layout of docs/encoding.md.",
            genesis: state_change_vector(
                fixture,
                "What genesis writes, on top of 32 zero bytes.",
                Hash::ZERO,
                &fixture.genesis_changes,
                fixture.genesis_state_root,
            ),
            block_1: state_change_vector(
                fixture,
                "What block 1's three transactions change, in effect after all three; its state_root is block-1's.",
                fixture.genesis_state_root,
                &fixture.block_changes,
                fixture.block.header.state_root,
            ),
            activation: ActivationVector {
                description: "Block 1's admin operations change the validators and parameters in the state at once, \
                              but consensus applies them from height committed_at + 2 x checkpoint_interval + 1: \
                              heights up to takes_effect_at - 1 keep the genesis validators and parameters.",
                committed_at: 1,
                checkpoint_interval: fixture.genesis.params.checkpoint_interval,
                takes_effect_at: activation_height(&fixture.genesis),
                validators: new_validators(fixture),
                params: match &fixture.transactions[1].transaction.body.operations[4] {
                    Operation::Admin(AdminOperation::SetConsensusParams { params }) => params.clone(),
                    other => panic!("expected the parameter change, found {other:?}"),
                },
                rules_encoding: hex_of(schedule_after_block_1(fixture).latest()),
                rules_hash: fixture.block.header.rules_hash,
            },
        },
        commit_vote: CommitVoteVector {
            description: "validator-0's COMMIT for block-1, and its PREPARE for the same target (which must not verify as a COMMIT).",
            signer: "validator-0",
            target: *target,
            target_encoding: hex::encode(&target_bytes),
            signing_bytes: hex::encode(signing_bytes(Domain::Commit, CHAIN_ID, &target_bytes)),
            signature: sign_vote(Domain::Commit, CHAIN_ID, target, voter),
            prepare_signing_bytes: hex::encode(signing_bytes(Domain::Prepare, CHAIN_ID, &target_bytes)),
            prepare_signature: sign_vote(Domain::Prepare, CHAIN_ID, target, voter),
        },
        commit_certificate: CertificateVector {
            description: "COMMIT votes of validator-0, -1 and -2 for block-1, listed in ascending voter key order: 3 of 4, a quorum; validator-3 is silent.",
            validators: fixture.genesis.validators.clone(),
            quorum: quorum(fixture.genesis.validators.len()),
            certificate: fixture.certificate.clone(),
            encoding: hex_of(&fixture.certificate),
        },
        merkle: MerkleVectors {
            description: "Leaf i is SHA-256 of i as a u64 little-endian; the tree over n leaves uses leaves[0..n]. \
                          Proofs: leaf 2 and leaf 4 of the 5-leaf tree.",
            leaves: leaves.clone(),
            roots: MERKLE_SIZES
                .iter()
                .map(|&n| MerkleRootVector { leaf_count: n, root: merkle::root(&leaves[..n]) })
                .collect(),
            proofs: vec![proof_vector(5, 2), proof_vector(5, 4)],
        },
        receipt: ReceiptVector {
            description: "A receipt for transaction 0 of block-1: verify it with the steps of \
                          \"Verifying a receipt offline\" against the genesis validators.",
            transaction: "client-put-delete-anchor",
            tx_hash: receipt_tx.hash(),
            proof_encoding: hex_of(&receipt_proof),
            proof: receipt_proof,
            header: "block-1",
            block_hash: fixture.block.hash(),
            certificate: "commit_certificate",
            validators: "genesis.validators",
            file_text: receipt_file(fixture).to_file_text(),
        },
        receipt_after_rule_change: ReceiptAfterRuleChangeVector {
            description: "A receipt at the first height governed by block-1's changes, certified by 3 of the new \
                          set: verify it from the genesis file with the rule-change steps of \"Verifying a \
                          receipt offline\".",
            height: activation_height(&fixture.genesis),
            validators: vec!["validator-0", "validator-1", "validator-2", "joining-validator"],
            file_text: receipt_after_rule_change(fixture).to_file_text(),
        },
        rule_change_omissions: rule_change_omissions_vector(fixture),
        signature_edge_cases: SignatureEdgeCases {
            description: "Signatures no ordinary signer makes, with the verdict of the rule (ZIP-215, section 7.2), \
                          alone and in any batch: torsion points in R or the key, non-canonical encodings of R, \
                          the key and s, bytes that are no point. Keys that are small order (or their non-canonical \
                          encodings) pass the signature check but are refused at registration.",
            signer: "edge-signer",
            domain: Domain::Transaction.label(),
            cases: signature_edge_cases()
                .into_iter()
                .map(|case| SignatureCaseVector {
                    name: case.name,
                    public_key: case.key,
                    signing_bytes: hex::encode(signing_bytes(Domain::Transaction, CHAIN_ID, &case.payload)),
                    payload: hex::encode(&case.payload),
                    signature: case.signature,
                    accepted: case.accepted,
                })
                .collect(),
        },
    };
    let mut text = serde_json::to_string_pretty(&file).expect("vectors render as JSON");
    text.push('\n');
    text
}

#[test]
fn test_vectors_match_docs() {
    let fixture = fixture();
    check_semantics(&fixture);
    let rendered = render(&fixture);
    let path = vectors_path();

    if std::env::var(BLESS_VARIABLE).as_deref() == Ok("1") {
        std::fs::write(&path, &rendered)
            .unwrap_or_else(|error| panic!("writing {}: {error}", path.display()));
        eprintln!("{BLESS_VARIABLE}=1: rewrote {}", path.display());
        return;
    }

    let checked_in = std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!("reading {}: {error}; to create it run\n  {BLESS_COMMAND}", path.display())
    });
    if checked_in != rendered {
        let first_difference = checked_in
            .lines()
            .zip(rendered.lines())
            .enumerate()
            .find(|(_, (old, new))| old != new)
            .map(|(line, (old, new))| {
                format!("first difference at line {}:\n  file: {old}\n  code: {new}", line + 1)
            })
            .unwrap_or_else(|| "one is a prefix of the other".into());
        panic!(
            "{} does not match what the code produces; {first_difference}\n\n\
             A change here is a change of the canonical encoding, hashing or signing: a breaking change \
             (every hash, signature and receipt of an existing chain stops verifying). If it is intended, \
             update docs/encoding.md and regenerate the vectors with\n  {BLESS_COMMAND}",
            path.display()
        );
    }
}

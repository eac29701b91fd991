//! The seed corpus: a few valid inputs per target, built from the fixture, byte for byte the same
//! on every run (ed25519 signatures are deterministic). Each target writes its own at the start of
//! every fuzz run (`crate::init`), so they always match the current encoding and need no
//! committing.

use bytes::{Bytes, BytesMut};
use kubechain_consensus::{
    CertifiedBlock, Checkpoint, Message, NewView, PrePrepare, PreparedCertificate, ViewChange, Vote, VoteKind,
};
use kubechain_network::{Frame, Hello, binding, handshake_codec};
use kubechain_types::certificate::sign_vote;
use kubechain_types::encoding::encode;
use kubechain_types::{
    AdminOperation, Block, CommitCertificate, CommitVote, ConsensusParams, DocumentAnchor, Domain, Hash,
    HashedRules, Header, Operation, Receipt, RuleChange, Rules, SigningKey, Transaction, TxBody, VoteTarget,
};
use tokio_util::codec::Encoder;

use crate::{CHAIN_ID, POW_DIFFICULTY_BITS, fixture};

/// The Noise handshake hash the `handshake` target's peer signs (a real one is random).
pub const HANDSHAKE_HASH: [u8; 32] = [7; 32];

/// The seeds of `target` as (file name, bytes); none for a target this module does not know.
/// Panics if a seed no longer passes the checks it was built to pass (the encoding or a rule
/// changed): a seed that stops at the first check would quietly cost the fuzzer its depth.
pub fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    match target {
        "peer_frame" => peer_frames().into_iter().map(|(name, frame)| (name, encode(&frame))).collect(),
        "handshake" => vec![("hello-and-proof".to_string(), handshake_stream())],
        "transaction_json" => {
            let transactions = transactions();
            let mut seeds: Vec<(String, Vec<u8>)> = transactions
                .iter()
                .enumerate()
                .map(|(index, tx)| (format!("tx-{index}.json"), to_json(tx)))
                .collect();
            seeds.push(("list.json".to_string(), to_json(&transactions)));
            seeds
        }
        "node_answers" => {
            let consortium = kubechain_api::ConsortiumView {
                height: 3,
                members: vec![kubechain_types::Member {
                    name: "acme".to_string(),
                    public_keys: vec![SigningKey::from_seed([10; 32]).public_key()],
                }],
                admins: vec![SigningKey::from_seed([11; 32]).public_key()],
                truncated: false,
            };
            let account = kubechain_api::AccountView {
                public_key: SigningKey::from_seed([10; 32]).public_key(),
                nonce: 4,
                member: Some("acme".to_string()),
                admin: false,
            };
            // A validator fetching blocks: every optional field present, `sync_target` too.
            let key = SigningKey::from_seed([12; 32]).public_key();
            let status = kubechain_api::NodeStatus {
                chain_id: "fuzz-chain".to_string(),
                genesis_hash: kubechain_types::Hash([1; 32]),
                node: key,
                role: kubechain_api::Role::Validator,
                height: 41,
                last_block_hash: kubechain_types::Hash([2; 32]),
                view: 1,
                primary: key,
                in_view_change: false,
                syncing: true,
                sync_target: Some(44),
                caught_up: true,
                stable_checkpoint: 40,
                validators: vec![key],
                consensus_params: Some(kubechain_types::ConsensusParams::default()),
                rules_since: Some(1),
                scheduled: None,
                peers_connected: 3,
                mempool_size: 7,
                ready: true,
            };
            vec![
                ("consortium.json".to_string(), to_json(&consortium)),
                ("account.json".to_string(), to_json(&account)),
                ("status.json".to_string(), to_json(&status)),
            ]
        }
        "transaction_borsh" => {
            let transactions = transactions();
            let mut seeds: Vec<(String, Vec<u8>)> = transactions
                .iter()
                .enumerate()
                .map(|(index, tx)| (format!("tx-{index}.bin"), encode(tx)))
                .collect();
            seeds.push(("list.bin".to_string(), encode(&transactions)));
            seeds
        }
        "receipt" => vec![
            ("receipt.json".to_string(), receipt().to_file_text().into_bytes()),
            (
                "receipt-after-rule-change.json".to_string(),
                receipt_after_rule_change().to_file_text().into_bytes(),
            ),
        ],
        "genesis" => {
            let genesis = &fixture().genesis;
            assert_eq!(genesis.validate(), Ok(()), "the seed genesis is not valid");
            let pretty = serde_json::to_vec_pretty(genesis).unwrap_or_default();
            let compact = serde_json::to_vec(genesis).unwrap_or_default();
            vec![("genesis.json".to_string(), pretty), ("genesis-compact.json".to_string(), compact)]
        }
        "peer_list" => {
            // As the operator writes it: every validator at its Service.
            let peers: Vec<kubechain_network::Peer> = (0u32..)
                .zip(&fixture().genesis.validators)
                .map(|(index, key)| kubechain_network::Peer {
                    key: *key,
                    address: format!("chain-validator-{index}.ledger.svc:7000"),
                })
                .collect();
            let yaml = serde_yaml::to_string(&peers).unwrap_or_default();
            vec![("peers.yaml".to_string(), yaml.into_bytes())]
        }
        _ => Vec::new(),
    }
}

fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(value).unwrap_or_default()
}

/// Client transactions of every operation kind, signed by the member's and the admin's keys.
fn transactions() -> Vec<Transaction> {
    let fixture = fixture();
    let signed = |key: &SigningKey, nonce: u64, operations: Vec<Operation>| {
        let body = TxBody { chain_id: CHAIN_ID.to_string(), sender: key.public_key(), nonce, operations };
        Transaction::new(body, key)
    };
    vec![
        signed(
            &fixture.client,
            1,
            vec![
                Operation::Put { key: "invoice/17".to_string(), value: b"paid".to_vec() },
                Operation::Delete { key: "invoice/16".to_string() },
            ],
        ),
        signed(
            &fixture.client,
            2,
            vec![Operation::Anchor(DocumentAnchor {
                uri: "s3://acme/invoices/17.pdf".to_string(),
                sha256: Hash::digest(b"pdf"),
                size: 3,
            })],
        ),
        signed(
            &fixture.admin,
            1,
            vec![
                Operation::Admin(AdminOperation::AddMember {
                    name: "globex".to_string(),
                    public_keys: vec![SigningKey::from_seed([10; 32]).public_key()],
                }),
                Operation::Admin(AdminOperation::SetConsensusParams { params: ConsensusParams::default() }),
                Operation::Admin(AdminOperation::AddValidator {
                    public_key: SigningKey::from_seed([5; 32]).public_key(),
                }),
                Operation::Admin(AdminOperation::AddAdmin {
                    public_key: SigningKey::from_seed([11; 32]).public_key(),
                }),
                Operation::Admin(AdminOperation::RemoveAdmin {
                    public_key: SigningKey::from_seed([11; 32]).public_key(),
                }),
            ],
        ),
    ]
}

/// A sealed block at `height`, proposed in `view` by its primary, committing to `rules_hash`.
fn block(
    height: u64,
    view: u64,
    previous_hash: Hash,
    transactions: Vec<Transaction>,
    rules_hash: Hash,
) -> Block {
    let header = Header {
        chain_id: CHAIN_ID.to_string(),
        height,
        view,
        previous_hash,
        tx_root: Hash::ZERO,
        state_root: Hash::digest(&height.to_le_bytes()),
        rules_hash,
        timestamp_ms: fixture().genesis.genesis_time_ms + height * 200,
        proposer: fixture().validators.primary(view),
        pow_difficulty: POW_DIFFICULTY_BITS,
        pow_nonce: 0,
    };
    let mut block = Block::new(header, transactions);
    block.header.seal();
    block
}

/// Votes of the first three validators (a quorum of four), in voter order as nodes write them.
fn quorum_votes(domain: Domain, target: &VoteTarget) -> Vec<CommitVote> {
    let mut votes: Vec<CommitVote> = fixture().validator_keys[..3]
        .iter()
        .map(|key| CommitVote {
            voter: key.public_key(),
            signature: sign_vote(domain, CHAIN_ID, target, key),
        })
        .collect();
    votes.sort_by_key(|vote| vote.voter);
    votes
}

/// Block 1 with its commit certificate, and block 2 prepared on top of it in view 0 (its admin
/// transaction adds validator 5: a rule change).
fn chain() -> (CertifiedBlock, PreparedCertificate) {
    let fixture = fixture();
    let transactions = transactions();
    let genesis_rules = HashedRules::new(Rules::from_genesis(&fixture.genesis));
    let rules_after_first = genesis_rules.after(&transactions[..2]);
    let rules_after_second = rules_after_first.after(&transactions[2..]);
    let first = block(1, 0, fixture.genesis_hash, transactions[..2].to_vec(), rules_after_first.hash());
    let target = VoteTarget { height: 1, view: 0, block_hash: first.hash() };
    let certificate = CommitCertificate { target, votes: quorum_votes(Domain::Commit, &target) };
    let second = block(2, 0, first.hash(), transactions[2..].to_vec(), rules_after_second.hash());
    let target = VoteTarget { height: 2, view: 0, block_hash: second.hash() };
    let prepared =
        PreparedCertificate { view: 0, block: second, prepares: quorum_votes(Domain::Prepare, &target) };
    (CertifiedBlock { block: first, certificate }, prepared)
}

/// One frame of every kind, each valid for the fixture.
fn peer_frames() -> Vec<(String, Frame)> {
    let fixture = fixture();
    let keys = &fixture.validator_keys;
    let (committed, prepared) = chain();
    let view_changes: Vec<ViewChange> = keys[..3]
        .iter()
        .map(|key| {
            let committed = Some(committed.certificate.clone());
            ViewChange::new(1, committed, vec![prepared.clone()], CHAIN_ID, key)
        })
        .collect();
    let target = prepared.target();
    let messages = vec![
        ("pre-prepare", Message::PrePrepare(PrePrepare::new(0, prepared.block.clone(), CHAIN_ID, &keys[0]))),
        ("prepare", Message::Vote(Vote::new(VoteKind::Prepare, target, CHAIN_ID, &keys[2]))),
        ("commit", Message::Vote(Vote::new(VoteKind::Commit, target, CHAIN_ID, &keys[3]))),
        ("checkpoint", Message::Checkpoint(Checkpoint::new(1, committed.block.hash(), CHAIN_ID, &keys[1]))),
        ("view-change", Message::ViewChange(view_changes[0].clone())),
        ("new-view", Message::NewView(NewView::new(1, view_changes, CHAIN_ID, &keys[1]))),
        ("state-request", Message::StateRequest { from_height: 1 }),
        ("state-response", Message::StateResponse { blocks: vec![committed], tip: 1 }),
    ];
    let mut frames: Vec<(String, Frame)> =
        messages.into_iter().map(|(name, message)| (name.to_string(), Frame::Consensus(message))).collect();
    frames.push(("transactions".to_string(), Frame::Transactions(transactions())));
    for (name, frame) in &frames {
        assert!(verifies(frame), "seed {name} does not verify");
    }
    frames
}

/// Whether a replica would accept what `frame` carries, as far as checks without state go.
fn verifies(frame: &Frame) -> bool {
    let validators = &fixture().validators;
    let message = match frame {
        Frame::Consensus(message) => message,
        Frame::Transactions(transactions) => {
            return transactions.iter().all(|tx| tx.verify_signature().is_ok());
        }
    };
    match message {
        Message::PrePrepare(pre_prepare) => pre_prepare.verify(CHAIN_ID, validators).is_ok(),
        Message::Vote(vote) => vote.verify(CHAIN_ID, validators).is_ok(),
        Message::Checkpoint(checkpoint) => checkpoint.verify(CHAIN_ID, validators).is_ok(),
        Message::ViewChange(view_change) => view_change.verify(CHAIN_ID, validators).is_ok(),
        Message::NewView(new_view) => new_view.verify(CHAIN_ID, validators).is_ok(),
        Message::StateRequest { .. } => true,
        Message::StateResponse { blocks, .. } => blocks.iter().all(|certified| {
            certified.certificate.verify(CHAIN_ID, validators).is_ok()
                && certified.block.check_integrity(CHAIN_ID, POW_DIFFICULTY_BITS).is_ok()
        }),
    }
}

/// A receipt for the second transaction of block 1.
fn receipt() -> Receipt {
    let (committed, _) = chain();
    let receipt = Receipt {
        transaction: committed.block.transactions[1].clone(),
        proof: committed.block.tx_proof(1).unwrap_or_else(|| unreachable!("block 1 has two transactions")),
        header: committed.block.header.clone(),
        certificate: committed.certificate,
        rule_changes: Vec::new(),
    };
    assert_eq!(
        receipt.verify(&fixture().genesis),
        Ok(fixture().validators.clone()),
        "the seed receipt does not verify"
    );
    receipt
}

/// A receipt at the first height that block 2's changes govern, certified by four of the five
/// validators then (the joining one among them), with block 2 and its certificate as its rule
/// change.
fn receipt_after_rule_change() -> Receipt {
    let fixture = fixture();
    let (_, prepared) = chain();
    let change_block = prepared.block;
    let target = VoteTarget { height: 2, view: 0, block_hash: change_block.hash() };
    let change_certificate = CommitCertificate { target, votes: quorum_votes(Domain::Commit, &target) };
    let change = RuleChange::from_block(&change_block, change_certificate);

    let height = 2 + fixture.genesis.params.watermark_window() + 1;
    let previous_hash = Hash::digest(b"the block below, not part of the receipt");
    let client_tx = transactions()[1].clone();
    let receipt_block = block(height, 0, previous_hash, vec![client_tx], change_block.header.rules_hash);
    let target = VoteTarget { height, view: 0, block_hash: receipt_block.hash() };
    let joining = SigningKey::from_seed([5; 32]);
    let mut votes: Vec<CommitVote> = fixture.validator_keys[..3]
        .iter()
        .chain([&joining])
        .map(|key| CommitVote {
            voter: key.public_key(),
            signature: sign_vote(Domain::Commit, CHAIN_ID, &target, key),
        })
        .collect();
    votes.sort_by_key(|vote| vote.voter);
    let receipt = Receipt {
        transaction: receipt_block.transactions[0].clone(),
        proof: receipt_block.tx_proof(0).unwrap_or_else(|| unreachable!("the block has a transaction")),
        header: receipt_block.header.clone(),
        certificate: CommitCertificate { target, votes },
        rule_changes: vec![change],
    };
    assert_eq!(
        receipt.verify(&fixture.genesis).map(|set| set.len()),
        Ok(5),
        "the seed receipt with a rule change does not verify"
    );
    receipt
}

/// What validator 1 tells validator 0 inside the Noise handshake (its `Hello`) and then proves
/// (its signature over the handshake hash, here `HANDSHAKE_HASH`), each in a message of the
/// handshake's codec, as the decrypted payloads a node reads.
fn handshake_stream() -> Vec<u8> {
    let fixture = fixture();
    let (me, peer) = (fixture.validator_keys[0].public_key(), &fixture.validator_keys[1]);
    let hello = Hello { chain_id: CHAIN_ID.to_string(), key: peer.public_key() };
    let signed = binding(&HANDSHAKE_HASH, &peer.public_key(), &me);
    let proof = peer.sign(Domain::PeerHandshake, CHAIN_ID, &signed);
    assert!(peer.public_key().verify(Domain::PeerHandshake, CHAIN_ID, &signed, &proof).is_ok());
    let mut stream = BytesMut::new();
    let mut codec = handshake_codec();
    for frame in [encode(&hello), encode(&proof)] {
        // Writing into memory cannot fail; the frames are far below the codec's limit.
        let _ = codec.encode(Bytes::from(frame), &mut stream);
    }
    stream.to_vec()
}

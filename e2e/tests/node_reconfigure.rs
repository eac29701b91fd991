//! A living chain of real `kubechain` processes, changed with `kubechain admin` under continuous
//! load: 4 -> 5 -> 7 -> 4 validators, each new one started as a learner (not in genesis) that
//! syncs before it is added, three genesis validators removed, each change in force at its
//! height; a member added and removed; an admin added, refused its own removal and removed;
//! parameters changed. Afterwards every acknowledged transaction is on every remaining validator,
//! identical, and a receipt from after the changes verifies offline from genesis.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kubechain_api::{BlockView, ConsortiumView, ErrorCode, NodeStatus, Role};
use kubechain_e2e::{Account, Cluster, Load, error_code, eventually, kubechain_bin, log_fields};
use kubechain_node::keyfile;
use kubechain_types::{ConsensusParams, PublicKey, Receipt, SigningKey, fault_tolerance};

const TIMEOUT: Duration = Duration::from_secs(60);
const GENESIS_VALIDATORS: usize = 4;
const SPARES: usize = 3;

fn params() -> ConsensusParams {
    ConsensusParams {
        block_interval_ms: 20,
        max_block_txs: 2000,
        checkpoint_interval: 8,
        view_change_timeout_ms: 1000,
        pow_difficulty_bits: 4,
    }
}

/// `kubechain admin ARGS --wait` against the node API `node`, signed by the admin key.
fn run_admin(node: &str, admin_key: &Path, args: &[&str]) -> std::process::Output {
    Command::new(kubechain_bin())
        .arg("admin")
        .args(args)
        .arg("--key-file")
        .arg(admin_key)
        .args(["--node", node, "--wait", "--wait-seconds", "60"])
        .output()
        .unwrap()
}

/// [`run_admin`] that must succeed: its stdout. Panics with its stderr if it fails.
fn admin(node: &str, admin_key: &Path, args: &[&str]) -> String {
    let output = run_admin(node, admin_key, args);
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "kubechain admin {args:?}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// [`run_admin`] that must fail: its stderr.
fn admin_refused(node: &str, admin_key: &Path, args: &[&str]) -> String {
    let output = run_admin(node, admin_key, args);
    assert!(!output.status.success(), "kubechain admin {args:?} succeeded");
    String::from_utf8_lossy(&output.stderr).to_string()
}

/// The height a `--wait` admin command reported its transaction committed at.
fn committed_height(stdout: &str) -> u64 {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("committed at height ")?.split(',').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no commit height in {stdout:?}"))
}

/// The voters of the commit certificate of block `height` on node `index`.
fn voters(cluster: &Cluster, index: usize, height: u64) -> BTreeSet<PublicKey> {
    let (code, block) = cluster.get_as::<BlockView>(index, &format!("/v1/blocks/{height}")).unwrap();
    assert_eq!(code, 200, "block {height}");
    block.certificate.votes.iter().map(|vote| vote.voter).collect()
}

/// Validator 0's height every 200 ms, until stopped: the chain keeps committing throughout.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<(Instant, u64)>>>,
}

impl Sampler {
    fn start(api: String) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let http = kubechain_e2e::fresh_connections();
            let mut samples = Vec::new();
            while !stopped.load(Ordering::SeqCst) {
                if let Some((200, status)) =
                    kubechain_e2e::get_as::<kubechain_api::NodeStatus>(&http, &format!("{api}/v1/status"))
                {
                    samples.push((Instant::now(), status.height));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            samples
        });
        Sampler { stop, thread: Some(thread) }
    }

    /// The longest time the height stood still, and how many samples there were.
    fn finish(mut self) -> (Duration, usize) {
        self.stop.store(true, Ordering::SeqCst);
        let samples = self.thread.take().unwrap().join().unwrap();
        let mut longest = Duration::ZERO;
        let mut since = samples.first().map(|(at, _)| *at);
        for pair in samples.windows(2) {
            let ((_, before), (at, after)) = (pair[0], pair[1]);
            if after > before {
                since = Some(at);
            } else if let Some(since) = since {
                longest = longest.max(at - since);
            }
        }
        (longest, samples.len())
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Every node's peers file lists exactly the nodes `known`.
fn link_all(cluster: &Cluster, known: &[usize]) {
    for index in 0..cluster.validators.len() {
        cluster.write_peers(index, known);
    }
}

/// The messages only a validator in force sends, each signed with its key.
const SIGNED: [&str; 5] = ["pre_prepare", "prepare", "commit", "checkpoint", "view_change"];

fn messages_out(cluster: &Cluster, index: usize, kind: &str) -> f64 {
    cluster
        .metric(index, &format!("kubechain_messages_total{{direction=\"out\",type=\"{kind}\"}}"))
        .unwrap_or(0.0)
}

fn log_of(cluster: &Cluster, index: usize) -> String {
    std::fs::read_to_string(cluster.validators[index].dir.join("node.log")).unwrap()
}

fn logged(cluster: &Cluster, index: usize, message: &str) -> Vec<serde_json::Value> {
    log_fields(&log_of(cluster, index)).into_iter().filter(|fields| fields["message"] == message).collect()
}

/// Runs `f` on the cluster, holding its lock only for that long: the load threads read it too.
fn with<T>(cluster: &Mutex<Cluster>, f: impl FnOnce(&mut Cluster) -> T) -> T {
    f(&mut cluster.lock().unwrap())
}

/// Waits until every running node has committed `height`, locking the cluster per probe only.
fn wait_height(cluster: &Mutex<Cluster>, height: u64) {
    let running = with(cluster, |cluster| cluster.running());
    for index in running {
        eventually(TIMEOUT, &format!("node {index} to reach height {height}"), || {
            with(cluster, |cluster| cluster.height(index)).filter(|h| *h >= height)
        });
    }
}

/// Waits until `done` holds for node `index`'s status; on timeout fails with that status and the
/// end of its log, so a failure says what the node was doing.
fn wait_for_node(
    cluster: &Mutex<Cluster>,
    index: usize,
    what: &str,
    done: impl Fn(&Cluster, &NodeStatus) -> bool,
) {
    let started = Instant::now();
    loop {
        let status = with(cluster, |cluster| {
            let status = cluster.status(index);
            let met = status.as_ref().is_some_and(|status| done(cluster, status));
            (status, met)
        });
        if status.1 {
            return;
        }
        if started.elapsed() > TIMEOUT {
            let (log, metrics) = with(cluster, |cluster| (log_of(cluster, index), cluster.metrics(index)));
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            // What it sent, received and refused tells why it does not get on.
            let counts: Vec<&str> = metrics
                .as_deref()
                .unwrap_or_default()
                .lines()
                .filter(|line| {
                    line.starts_with("kubechain_messages_total") || line.starts_with("kubechain_rejected")
                })
                .filter(|line| !line.ends_with(" 0"))
                .collect();
            panic!(
                "node {index}: {what} within {TIMEOUT:?}: {:?}\n{}\n{}",
                status.0,
                counts.join("\n"),
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn keys_of(cluster: &Mutex<Cluster>, nodes: &[usize]) -> BTreeSet<PublicKey> {
    with(cluster, |cluster| nodes.iter().map(|i| cluster.validators[*i].key).collect())
}

#[test]
fn validators_members_and_parameters_change_on_chain_under_load() {
    let cluster = Cluster::with_spares(GENESIS_VALIDATORS, SPARES, 4, params());
    let admin_key: PathBuf = cluster.dir.path().join("admin.key");
    keyfile::write(&admin_key, &cluster.admin).unwrap();
    let window = 2 * params().checkpoint_interval;
    let cluster = Arc::new(Mutex::new(cluster));
    let node0 = with(&cluster, |cluster| {
        for index in 0..GENESIS_VALIDATORS {
            cluster.start(index);
        }
        cluster.validators[0].api()
    });
    // Paced: on a quiet machine an unpaced load makes a block per transaction, faster than a
    // learner 100s of blocks behind catches up by state transfer (one answer of up to 64 blocks
    // per peer per 50 ms, and a request sent sooner is dropped until the fetch timer moves on).
    let load = Load::paced(&cluster, Duration::from_millis(50));
    // Blocks are made while work waits: the load starts the chain.
    wait_height(&cluster, 3);
    let sampler = Sampler::start(node0.clone());
    let mut active: Vec<usize> = (0..GENESIS_VALIDATORS).collect();

    // 4 -> 5 -> 7: each spare is made known to every node (peers files, read while running),
    // started as a learner, synced, then added on chain.
    for spare in GENESIS_VALIDATORS..GENESIS_VALIDATORS + SPARES {
        let linked: Vec<usize> = active.iter().copied().chain([spare]).collect();
        let key = with(&cluster, |cluster| {
            link_all(cluster, &linked);
            cluster.start(spare);
            cluster.validators[spare].key
        });
        // Synced: within two blocks of validator 0 (under load the tip moves every ~20 ms).
        wait_for_node(&cluster, spare, "catch up as a learner", |cluster, status| {
            status.role == Role::Learner && cluster.height(0).is_some_and(|chain| status.height + 2 >= chain)
        });
        let synced_at = with(&cluster, |cluster| {
            let votes = messages_out(cluster, spare, "prepare") + messages_out(cluster, spare, "commit");
            assert_eq!(votes, 0.0, "a learner voted");
            assert_eq!(cluster.metric(spare, "kubechain_voting"), Some(0.0));
            cluster.height(spare).unwrap()
        });

        let before = keys_of(&cluster, &active);
        let output = admin(&node0, &admin_key, &["add-validator", "--key", &key.to_string()]);
        let committed = committed_height(&output);
        let activation = committed + window + 1;
        assert!(output.contains(&format!("in force from height {activation}")), "{output}");
        active.push(spare);
        let n = active.len();
        let expected = format!("in force: {n} validators (tolerating {} faulty)", fault_tolerance(n));
        assert!(output.contains(&expected), "{output}");
        let after = keys_of(&cluster, &active);

        wait_for_node(&cluster, spare, "vote", |cluster, status| {
            let voting = messages_out(cluster, spare, "commit") > 0.0;
            status.role == Role::Validator && status.validators.len() == n && voting
        });
        wait_height(&cluster, activation + 2);
        with(&cluster, |cluster| {
            // In force exactly at its height: certificates below are by the old set, from it on by
            // the new one.
            assert!(
                voters(cluster, 0, activation - 1).is_subset(&before),
                "block {} outside the old set",
                activation - 1
            );
            assert!(voters(cluster, 0, activation).is_subset(&after));
            assert_eq!(cluster.metric(spare, "kubechain_voting"), Some(1.0));
        });
        println!(
            "{n} validators from height {activation} (f = {}); spare {spare} synced at {synced_at}, added at {committed}",
            fault_tolerance(n)
        );
    }
    assert_eq!(fault_tolerance(active.len()), 2);

    // A member joins and leaves: its key transacts, then is refused.
    let newcomer = SigningKey::from_seed([77; 32]);
    admin(
        &node0,
        &admin_key,
        &["add-member", "--name", "newcomer", "--key", &newcomer.public_key().to_string()],
    );
    let mut account = Account::new(newcomer);
    let tx = account.put("hello", b"world");
    // Through validator 0, which the admin command saw commit the change (the others may be a
    // block behind).
    with(&cluster, |cluster| assert_eq!(cluster.submit(0, &tx).0, 202));
    eventually(TIMEOUT, "the newcomer's transaction to commit", || {
        with(&cluster, |c| c.committed(0, &tx.hash()))
    });

    // A second admin is added and signs the member's removal; it cannot remove itself, the first
    // admin can, and from then on its key is a stranger's.
    let deputy = SigningKey::from_seed([78; 32]);
    let deputy_key = with(&cluster, |cluster| cluster.dir.path().join("deputy.key"));
    keyfile::write(&deputy_key, &deputy).unwrap();
    let deputy_hex = deputy.public_key().to_string();
    admin(&node0, &admin_key, &["add-admin", "--key", &deputy_hex]);
    let consortium = with(&cluster, |c| c.get_as::<ConsortiumView>(0, "/v1/consortium")).unwrap().1;
    assert!(consortium.admins.contains(&deputy.public_key()), "{consortium:?}");
    assert!(consortium.members.iter().any(|member| member.name == "newcomer"), "{consortium:?}");
    admin(&node0, &deputy_key, &["remove-member", "--name", "newcomer"]);
    let refused = account.put("again", b"no");
    let (code, body) = with(&cluster, |cluster| cluster.submit(0, &refused));
    assert_eq!((code, error_code(&body)), (403, Some(ErrorCode::UnknownSender)), "{body}");
    let own_removal = admin_refused(&node0, &deputy_key, &["remove-admin", "--key", &deputy_hex]);
    assert!(own_removal.contains("cannot remove itself"), "{own_removal}");
    admin(&node0, &admin_key, &["remove-admin", "--key", &deputy_hex]);
    let consortium = with(&cluster, |c| c.get_as::<ConsortiumView>(0, "/v1/consortium")).unwrap().1;
    assert!(!consortium.admins.contains(&deputy.public_key()), "{consortium:?}");
    assert!(!consortium.members.iter().any(|member| member.name == "newcomer"), "{consortium:?}");

    // Parameters: one SetConsensusParams, in force at its height.
    let output = admin(&node0, &admin_key, &["set-params", "--block-interval-ms", "30"]);
    assert!(output.contains("in force:"), "{output}");
    let params = with(&cluster, |cluster| cluster.status(0).unwrap().consensus_params.unwrap());
    assert_eq!((params.block_interval_ms, params.checkpoint_interval), (30, 8));

    // 7 -> 4: three genesis validators are removed on chain, one at a time; each keeps following
    // and serving reads while still linked, says so in status and log; then it is unlinked and
    // stopped. The set left, {0, 4, 5, 6}, is not the genesis set.
    for removed in [3, 2, 1] {
        let key = with(&cluster, |cluster| cluster.validators[removed].key);
        let before = keys_of(&cluster, &active);
        let output = admin(&node0, &admin_key, &["remove-validator", "--key", &key.to_string()]);
        let activation = committed_height(&output) + window + 1;
        active.retain(|index| *index != removed);
        let n = active.len();
        let expected = format!("in force: {n} validators (tolerating {} faulty)", fault_tolerance(n));
        assert!(output.contains(&expected), "{output}");
        let after = keys_of(&cluster, &active);
        eventually(TIMEOUT, "the removed validator to say so, still following", || {
            with(&cluster, |cluster| {
                cluster
                    .status(removed)
                    .filter(|status| status.role == Role::Removed && status.height >= activation + 2)
            })
        });
        // From its removal on it signs nothing: what it had sent by then is all it ever sends.
        let signed = |cluster: &Cluster| SIGNED.map(|kind| messages_out(cluster, removed, kind));
        let signed_when_removed = with(&cluster, |cluster| signed(cluster));
        wait_height(&cluster, activation + 3);
        with(&cluster, |cluster| {
            assert_eq!(signed(cluster), signed_when_removed, "{SIGNED:?} sent by a removed validator");
            assert!(!cluster.status(removed).unwrap().validators.contains(&key));
            assert_eq!(logged(cluster, removed, kubechain_node::logs::REMOVED).len(), 1);
            // It still serves reads: a block after its removal, and an account.
            let block = cluster.get(removed, &format!("/v1/blocks/{}", activation + 1)).map(|(code, _)| code);
            assert_eq!(block, Some(200), "the removed validator stopped serving blocks");
            let account = format!("/v1/accounts/{}", cluster.clients[0].public_key());
            assert_eq!(cluster.get(removed, &account).map(|(code, _)| code), Some(200));
            assert!(voters(cluster, 0, activation - 1).is_subset(&before));
            for height in activation..activation + 3 {
                assert!(
                    voters(cluster, 0, height).is_subset(&after),
                    "block {height} certified by a removed validator"
                );
            }
            link_all(cluster, &active);
            cluster.stop(removed);
        });
    }
    assert_eq!(fault_tolerance(active.len()), 1);

    let acknowledged = load.acknowledged.clone();
    drop(load);
    let (stalled, samples) = sampler.finish();
    println!("height sampled {samples} times; longest stall {} ms", stalled.as_millis());
    assert!(samples >= 20, "too few samples: {samples}");
    assert!(stalled < Duration::from_secs(10), "the chain stood still for {} ms", stalled.as_millis());
    let acknowledged = acknowledged.lock().unwrap().clone();
    check_afterwards(&cluster.lock().unwrap(), &acknowledged);
}

/// Every acknowledged transaction is on every remaining validator, identical, and a receipt from
/// after the changes verifies offline from genesis (in process and with the CLI).
fn check_afterwards(cluster: &Cluster, acknowledged: &[kubechain_e2e::Acknowledged]) {
    cluster.assert_converged(TIMEOUT);
    assert!(acknowledged.len() > 100, "only {} transactions acknowledged", acknowledged.len());
    cluster.assert_all_present(acknowledged);
    println!(
        "{} acknowledged transactions on all {} remaining validators",
        acknowledged.len(),
        cluster.running().len()
    );

    // A transaction after every change.
    let mut account = Account::new(cluster.clients[0].clone());
    let (_, view) = cluster
        .get_as::<kubechain_api::AccountView>(0, &format!("/v1/accounts/{}", account.key.public_key()))
        .unwrap();
    account.next_nonce = view.nonce + 1;
    let tx = account.put("after", b"changes");
    assert_eq!(cluster.submit(0, &tx).0, 202);
    eventually(TIMEOUT, "the last transaction to commit", || cluster.committed(0, &tx.hash()));

    let path = cluster.dir.path().join("receipt.json");
    let fetched = Command::new(kubechain_bin())
        .args(["receipt", &tx.hash().to_string(), "--node", &cluster.validators[0].api(), "--out"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(fetched.success());
    let receipt = Receipt::from_file_text(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(receipt.rule_changes.len(), 2 * SPARES + 1, "each validator change and the parameters");
    let set = receipt.verify(&cluster.genesis).expect("the receipt verifies from genesis");
    let remaining: Vec<PublicKey> = [0, 4, 5, 6].map(|index| cluster.validators[index].key).to_vec();
    assert_eq!(set.keys(), remaining.as_slice());
    let verified = Command::new(kubechain_bin())
        .arg("verify-receipt")
        .arg(&path)
        .arg("--genesis")
        .arg(&cluster.genesis_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success() && stdout.contains("7 rule changes followed"), "{stdout}");
    let mut bare = receipt.clone();
    bare.rule_changes.clear();
    assert!(bare.verify(&cluster.genesis).is_err(), "without its rule changes it must not verify");
}

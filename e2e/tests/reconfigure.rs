//! The validator set follows `spec.validators`, and a new image rolls through the validators, on
//! a real node (scripts/cluster.sh --kubelet, the operator in a pod from its image, validators in
//! pods from the node image), under continuous client load: 4 -> 5 -> 7 -> 4, the first step
//! started while a validator is down, then an image change started while another is down, then
//! a member, an admin and the block interval added through the spec and taken away again. A
//! sampler watches the chain (through the client Service: any ready validator), the Blockchain's
//! status and, while the image rolls, the validators' pods; what it saw is checked at the end.
//! Needs root, like the kubelet suite.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kubechain_api::NodeStatus;
use kubechain_e2e::kube::{ControlPlane, condition, repo_dir, sibling_bin};
use kubechain_e2e::load::Apis;
use kubechain_e2e::poll::StopOnDrop;
use kubechain_e2e::{
    Account, Load, committed_at, eventually, fresh_connections, get_as, get_json, sampling_connections,
};
use kubechain_types::{PublicKey, SigningKey, keyfile};
use serde_json::Value;

const NS: &str = "consortium";
const CHAIN: &str = "grow";
const WAIT: Duration = Duration::from_secs(240);
/// Blocks between checkpoints: a change takes effect 2 x 4 + 1 blocks after it commits.
const CHECKPOINT_INTERVAL: u64 = 4;
/// Longest the chain may go without a new block while it is sampled. Runs measured 9 to 12 s at
/// worst (view changes while a held-down or restarting validator was the next primary); the
/// bound says the chain kept committing throughout, not how fast a view change is.
const LONGEST_STILL: Duration = Duration::from_secs(30);
const LOADERS: u8 = 3;

fn step(what: &str) {
    eprintln!("reconfigure e2e: {what}");
}

fn manifest() -> String {
    let keys: Vec<String> = (0..LOADERS).map(|i| format!("\"{}\"", loader_key(i).public_key())).collect();
    format!(
        r#"apiVersion: kubechain.dev/v1alpha1
kind: Blockchain
metadata:
  name: {CHAIN}
spec:
  chainId: grow-1
  validators: 4
  image: kubechain/node:0.1.0
  consensus:
    checkpointInterval: {CHECKPOINT_INTERVAL}
  members:
    - name: loaders
      publicKeys: [{}]
"#,
        keys.join(", ")
    )
}

fn loader_key(index: u8) -> SigningKey {
    SigningKey::from_seed([0x70 + index; 32])
}

/// What the sampler saw at one moment.
#[derive(Clone, Debug)]
struct Sample {
    at: Duration,
    /// The status of a ready validator, through the client Service (validator 0 restarts while
    /// the image rolls).
    node: Option<NodeStatus>,
    fault_tolerance: Option<u64>,
    on_chain: Option<u64>,
    /// The Reconfiguring condition: (status, reason, message).
    reconfiguring: Option<(String, String, String)>,
    /// While the image rolls: how many of the four validators are not ready.
    unavailable: Option<usize>,
}

fn chain(cp: &ControlPlane) -> Option<Value> {
    cp.get_json(&["bc", CHAIN, "-n", NS])
}

fn validator_pods(cp: &ControlPlane) -> Vec<String> {
    cp.names(NS, "pods", &format!("app.kubernetes.io/instance={CHAIN},app.kubernetes.io/component=validator"))
}

/// Every key Secret's uid and data, by name.
fn key_secrets(cp: &ControlPlane) -> Vec<(String, String, String)> {
    let list =
        cp.get_json(&["secrets", "-n", NS, "-l", "app.kubernetes.io/component=validator-key"]).unwrap();
    let mut secrets: Vec<(String, String, String)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|secret| {
            (
                secret["metadata"]["name"].as_str().unwrap().to_string(),
                secret["metadata"]["uid"].as_str().unwrap().to_string(),
                secret["data"]["validator.key"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    secrets.sort();
    secrets
}

fn validator_key(cp: &ControlPlane, index: u32) -> PublicKey {
    let file = cp.data(NS, "secret", &format!("{CHAIN}-validator-{index}-key"), "validator.key");
    keyfile::from_json(file.as_bytes()).unwrap().public_key()
}

/// Sets spec.validators and waits until the chain runs exactly that many, as the status shows.
fn scale(cp: &ControlPlane, validators: u64, fault_tolerance: u64) {
    let patch = format!(r#"{{"spec":{{"validators":{validators}}}}}"#);
    cp.run(&["patch", "bc", CHAIN, "-n", NS, "--type=merge", "-p", &patch]);
    cp.wait_json(&["bc", CHAIN, "-n", NS], WAIT, &format!("{validators} validators on chain"), |chain| {
        let status = &chain["status"];
        let settled = condition(chain, "Reconfiguring").is_some_and(|(status, _, _)| status == "False");
        (settled
            && status["validators"]["onChain"].as_u64() == Some(validators)
            && status["faultTolerance"].as_u64() == Some(fault_tolerance))
        .then_some(())
    });
    eventually(WAIT, "only the set's validator pods", || {
        (validator_pods(cp).len() as u64 == validators).then_some(())
    });
}

/// Holds validator `index` down: its StatefulSet's pods may only run on a node that does not
/// exist (the operator's server-side apply leaves a field it does not set alone), and its pod is
/// deleted (the StatefulSets are OnDelete). Returns once the new pod waits unscheduled.
fn hold_down(cp: &ControlPlane, index: u32) {
    let patch = r#"{"spec":{"template":{"spec":{"nodeSelector":{"kubechain.dev/e2e-hold":"down"}}}}}"#;
    cp.run(&[
        "patch",
        "statefulset",
        &format!("{CHAIN}-validator-{index}"),
        "-n",
        NS,
        "--type=merge",
        "-p",
        patch,
    ]);
    cp.run(&["delete", "pod", &pod_name(index), "-n", NS, "--ignore-not-found"]);
    eventually(WAIT, &format!("validator {index}'s pod to be held off the node"), || {
        let pod = cp.get_json(&["pod", &pod_name(index), "-n", NS])?;
        (pod["status"]["phase"] == "Pending" && pod["spec"]["nodeName"].is_null()).then_some(())
    });
}

fn release(cp: &ControlPlane, index: u32) {
    let patch = r#"[{"op":"remove","path":"/spec/template/spec/nodeSelector"}]"#;
    cp.run(&[
        "patch",
        "statefulset",
        &format!("{CHAIN}-validator-{index}"),
        "-n",
        NS,
        "--type=json",
        "-p",
        patch,
    ]);
    cp.run(&["delete", "pod", &pod_name(index), "-n", NS, "--ignore-not-found"]);
}

/// Validator `index`'s API, at its pod (the peer Services carry the peer port only).
fn validator_url(cp: &ControlPlane, index: u32) -> String {
    cp.pod_url(NS, &pod_name(index)).unwrap_or_else(|| panic!("validator {index}'s pod has no address"))
}

fn pod_name(index: u32) -> String {
    format!("{CHAIN}-validator-{index}-0")
}

/// Validators `0..count` whose pod is missing or not Ready.
fn unavailable(cp: &ControlPlane, count: u32) -> usize {
    let pods = cp.get_json(&["pods", "-n", NS, "-l", &format!("app.kubernetes.io/instance={CHAIN}")]);
    let items = pods.as_ref().and_then(|pods| pods["items"].as_array().cloned()).unwrap_or_default();
    (0..count)
        .filter(|index| {
            !items.iter().any(|pod| {
                pod["metadata"]["name"] == pod_name(*index).as_str()
                    && pod["metadata"]["deletionTimestamp"].is_null()
                    && pod["status"]["conditions"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
            })
        })
        .count()
}

/// One field (a JSON pointer) of each of the chain's pods.
fn pod_field(cp: &ControlPlane, pointer: &str) -> Vec<String> {
    let pods =
        cp.get_json(&["pods", "-n", NS, "-l", &format!("app.kubernetes.io/instance={CHAIN}")]).unwrap();
    let items = pods["items"].as_array().unwrap();
    items.iter().map(|pod| pod.pointer(pointer).and_then(Value::as_str).unwrap().to_string()).collect()
}

fn images(cp: &ControlPlane) -> Vec<String> {
    pod_field(cp, "/spec/containers/0/image")
}

fn pod_uids(cp: &ControlPlane) -> Vec<String> {
    pod_field(cp, "/metadata/uid")
}

/// Every admin operation on chain, read block by block from the node at `url`: (height,
/// operation). Read as plain JSON, as any client would.
fn admin_operations(http: &reqwest::blocking::Client, url: &str) -> Vec<(u64, Value)> {
    let tip = get_as::<NodeStatus>(http, &format!("{url}/v1/status")).unwrap().1.height;
    let mut found = Vec::new();
    for height in 1..=tip {
        let block_url = format!("{url}/v1/blocks/{height}");
        let (code, view) =
            eventually(Duration::from_secs(30), &format!("block {height}"), || get_json(http, &block_url));
        assert_eq!(code, 200, "block {height}: {view}");
        let transactions = view["transactions"].as_array().unwrap();
        let operations = transactions.iter().flat_map(|tx| tx["body"]["operations"].as_array().unwrap());
        found
            .extend(operations.filter(|operation| operation["op"] == "admin").map(|op| (height, op.clone())));
    }
    found
}

/// The validator-set changes among `operations`: (height, added (else removed), key).
fn set_changes(operations: &[(u64, Value)]) -> Vec<(u64, bool, PublicKey)> {
    let key = |operation: &Value| PublicKey::from_hex(operation["public_key"].as_str().unwrap()).unwrap();
    operations
        .iter()
        .filter_map(|(height, operation)| match operation["kind"].as_str()? {
            "add_validator" => Some((*height, true, key(operation))),
            "remove_validator" => Some((*height, false, key(operation))),
            _ => None,
        })
        .collect()
}

/// Waits until the operator has nothing left to change: Reconfiguring is False.
fn settled(cp: &ControlPlane) {
    cp.wait_json(&["bc", CHAIN, "-n", NS], WAIT, "Reconfiguring to settle", |chain| {
        condition(chain, "Reconfiguring").filter(|(status, _, _)| status == "False")
    });
}

/// The members and admins on chain, as the node at `url` lists them.
fn consortium(http: &reqwest::blocking::Client, url: &str) -> kubechain_api::ConsortiumView {
    get_as(http, &format!("{url}/v1/consortium")).unwrap().1
}

/// What the node at `url` answers to `tx`: HTTP code and error code.
fn submitted(
    http: &reqwest::blocking::Client,
    url: &str,
    tx: &kubechain_types::Transaction,
) -> (u16, String) {
    let response = http.post(format!("{url}/v1/transactions")).json(tx).send().unwrap();
    let code = response.status().as_u16();
    let body: Value = response.json().unwrap_or(Value::Null);
    (code, body["code"].as_str().unwrap_or_default().to_string())
}

const ROLLED_TAG: &str = "0.1.0-rolled";

/// A second tag of the node image, made by the repo's image script and imported into the node.
fn second_image(cp: &ControlPlane, dir: &std::path::Path) -> String {
    let scripts = repo_dir().join("scripts");
    let output = Command::new(scripts.join("image.sh"))
        .args(["node", "--no-build", "--tag", ROLLED_TAG, "--out"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let tarball = String::from_utf8(output.stdout).unwrap().trim().to_string();
    let output = Command::new(scripts.join("node.sh"))
        .args(["import", "--image", &tarball, "--dir"])
        .arg(cp.dir())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    format!("kubechain/node:{ROLLED_TAG}")
}

#[test]
fn the_validator_set_follows_the_spec_under_load() {
    let cp = ControlPlane::up_with_real_node();
    let http = fresh_connections();

    step("install the operator; a 4-validator chain with a member whose keys load it");
    cp.install_operator();
    cp.run(&["create", "namespace", NS]);
    assert!(cp.apply(NS, &manifest()).status.success());
    cp.run(&["wait", "--for=condition=Ready", &format!("bc/{CHAIN}"), "-n", NS, "--timeout=240s"]);
    let genesis_json = cp.data(NS, "configmap", &format!("{CHAIN}-genesis"), "genesis.json");
    let work = tempfile::tempdir().unwrap();
    let genesis_path = work.path().join("genesis.json");
    std::fs::write(&genesis_path, &genesis_json).unwrap();
    let chain_id =
        serde_json::from_str::<Value>(&genesis_json).unwrap()["chain_id"].as_str().unwrap().to_string();
    let api = cp.service_url(NS, &format!("{CHAIN}-api"));
    // Its pod's address, asked anew each time: the rolling upgrade gives it a new pod.
    let validator_0 = || validator_url(&cp, 0);
    let genesis_keys = key_secrets(&cp);
    assert_eq!(genesis_keys.len(), 4);

    step("continuous load through the client Service, and a sampler");
    let apis: Apis = Arc::new({
        let api = api.clone();
        move || vec![api.clone()]
    });
    let accounts = (0..LOADERS).map(|i| Account::on_chain(loader_key(i), &chain_id)).collect();
    let load = Load::over(apis, http.clone(), accounts, Duration::from_millis(50));
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let done = AtomicBool::new(false);
    let rolling = AtomicBool::new(false);
    let started = Instant::now();
    let mut params_activation = None;
    std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let http = sampling_connections();
            while !done.load(Relaxed) {
                let node = get_as::<NodeStatus>(&http, &format!("{api}/v1/status"))
                    .filter(|(code, _)| *code == 200)
                    .map(|(_, status)| status);
                let chain = chain(&cp).unwrap_or(Value::Null);
                let unavailable = rolling.load(Relaxed).then(|| unavailable(&cp, 4));
                samples.lock().unwrap().push(Sample {
                    at: started.elapsed(),
                    unavailable,
                    node,
                    fault_tolerance: chain["status"]["faultTolerance"].as_u64(),
                    on_chain: chain["status"]["validators"]["onChain"].as_u64(),
                    reconfiguring: condition(&chain, "Reconfiguring"),
                });
                // Pacing the sampler, not synchronisation: nothing waits on it.
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        // A failed step must end the sampler too, or the scope would wait for it forever.
        let _stop_sampling = StopOnDrop(&done);

        step("4 -> 5 started while validator 2 is down: waits, says why, goes on once it is back");
        hold_down(&cp, 2);
        cp.run(&["patch", "bc", CHAIN, "-n", NS, "--type=merge", "-p", r#"{"spec":{"validators":5}}"#]);
        let (_, _, why) =
            cp.wait_json(&["bc", CHAIN, "-n", NS], WAIT, "Reconfiguring to wait for quorum", |chain| {
                condition(chain, "Reconfiguring")
                    .filter(|(status, reason, _)| status == "True" && reason == "WaitingForQuorum")
            });
        assert!(why.contains("adding validator 4") && why.contains("not ready: validator 2"), "{why}");
        let chain_now = chain(&cp).unwrap();
        assert_eq!(
            chain_now["status"]["validators"]["onChain"], 4,
            "nothing changed on chain while it waits"
        );
        release(&cp, 2);
        scale(&cp, 5, 1);

        step("5 -> 7");
        scale(&cp, 7, 2);
        let grown = key_secrets(&cp);
        assert_eq!(grown.len(), 7);

        step("7 -> 4: removed on chain first, then their pods go");
        scale(&cp, 4, 1);

        step("a rolling image change started while validator 1 is down: paused until it is back");
        let rolled = second_image(&cp, work.path());
        hold_down(&cp, 1);
        let before = pod_uids(&cp);
        let patch = format!(r#"{{"spec":{{"image":"{rolled}"}}}}"#);
        cp.run(&["patch", "bc", CHAIN, "-n", NS, "--type=merge", "-p", &patch]);
        let (_, _, why) = cp.wait_json(&["bc", CHAIN, "-n", NS], WAIT, "the rollout to pause", |chain| {
            condition(chain, "Upgrading")
                .filter(|(status, reason, _)| status == "True" && reason == "WaitingForValidator")
        });
        assert!(why.contains("validator 1 is not ready"), "{why}");
        assert_eq!(pod_uids(&cp), before, "a pod restarted while validator 1 was down");

        step("once it is back, one validator at a time, never two away");
        rolling.store(true, Relaxed);
        release(&cp, 1);
        cp.wait_json(&["bc", CHAIN, "-n", NS], WAIT, "the rollout to finish", |chain| {
            let current = condition(chain, "Upgrading").is_some_and(|(status, _, _)| status == "False");
            let ready = condition(chain, "Ready").is_some_and(|(status, _, _)| status == "True");
            (current && ready).then_some(())
        });
        assert_eq!(images(&cp), vec![rolled.clone(); 4]);
        rolling.store(false, Relaxed);
        // The others restarted after validator 1 came back: each pod was made after its new one
        // (made when it was released; nothing restarted before, as checked above). The sampled
        // counts cannot show this order, since the restarts follow its return back to back.
        let created = |index: u32| {
            let pod = cp.get_json(&["pod", &pod_name(index), "-n", NS]).unwrap();
            pod["metadata"]["creationTimestamp"].as_str().unwrap().to_string()
        };
        let returned = created(1);
        for index in [0, 2, 3] {
            // RFC 3339 times in UTC, to the second: their text orders as they do.
            let restarted = created(index);
            assert!(
                restarted >= returned,
                "validator {index} restarted at {restarted}, before validator 1 came back at {returned}"
            );
        }

        step("members, admins and the block interval through the spec: one transaction each, in order");
        let newcomer = SigningKey::from_seed([91; 32]);
        let deputy = SigningKey::from_seed([92; 32]);
        let loaders: Vec<String> =
            (0..LOADERS).map(|i| format!("\"{}\"", loader_key(i).public_key())).collect();
        let loaders = loaders.join(",");
        let patch = format!(
            r#"{{"spec":{{"members":[{{"name":"loaders","publicKeys":[{loaders}]}},{{"name":"newcomer","publicKeys":["{}"]}}],"admins":["{}"],"consensus":{{"blockIntervalMs":50}}}}}}"#,
            newcomer.public_key(),
            deputy.public_key()
        );
        cp.run(&["patch", "bc", CHAIN, "-n", NS, "--type=merge", "-p", &patch]);
        let (activation, scheduled) =
            cp.wait_json(&["bc", CHAIN, "-n", NS], WAIT, "status to show the new block interval", |chain| {
                let consensus = &chain["status"]["consensus"];
                (consensus["blockIntervalMs"] == 50).then(|| {
                    (consensus["activationHeight"].as_u64().unwrap(), consensus["scheduled"] == true)
                })
            });
        settled(&cp);
        let on_chain = consortium(&http, &validator_0());
        assert!(
            on_chain.members.iter().any(|m| m.name == "newcomer" && m.public_keys == [newcomer.public_key()])
        );
        assert!(on_chain.admins.contains(&deputy.public_key()), "{on_chain:?}");
        let mut joined = Account::on_chain(newcomer.clone(), &chain_id);
        let first = joined.put("joined", b"yes");
        assert_eq!(submitted(&http, &validator_0(), &first).0, 202);
        eventually(WAIT, "the new member's transaction", || {
            committed_at(&http, &validator_0(), &first.hash())
        });
        let node = eventually(WAIT, "the block interval in force", || {
            get_as::<NodeStatus>(&http, &format!("{}/v1/status", validator_0()))
                .map(|(_, status)| status)
                .filter(|status| status.consensus_params.as_ref().is_some_and(|p| p.block_interval_ms == 50))
        });
        assert_eq!(node.rules_since, Some(activation), "status said {activation} (scheduled: {scheduled})");

        step("the newcomer and the deputy admin leave through the spec: the newcomer's key is refused");
        let patch = format!(
            r#"{{"spec":{{"members":[{{"name":"loaders","publicKeys":[{loaders}]}}],"admins":[]}}}}"#
        );
        cp.run(&["patch", "bc", CHAIN, "-n", NS, "--type=merge", "-p", &patch]);
        eventually(WAIT, "the newcomer and the deputy admin to leave", || {
            let on_chain = consortium(&http, &validator_0());
            (on_chain.members.len() == 1 && on_chain.admins.len() == 1).then_some(())
        });
        let on_chain = consortium(&http, &validator_0());
        assert_eq!(on_chain.members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["loaders"]);
        assert!(!on_chain.admins.contains(&deputy.public_key()), "{on_chain:?}");
        let refused = joined.put("left", b"no");
        assert_eq!(submitted(&http, &validator_0(), &refused), (403, "unknown_sender".to_string()));
        settled(&cp);
        params_activation = Some(activation);
        let notes: Vec<String> = cp
            .get_json(&["events", "-n", NS, "--field-selector", "reason=ConsortiumChange"])
            .unwrap()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|event| event["message"].as_str().unwrap_or_default().to_string())
            .collect();
        for said in [
            "adding member newcomer",
            "adding admin",
            "setting consensus parameters",
            "removing member newcomer",
            "removing admin",
        ] {
            assert!(
                notes.iter().any(|note| note.starts_with(said)),
                "no ConsortiumChange event {said:?}: {notes:?}"
            );
        }

        done.store(true, Relaxed);
        sampler.join().unwrap();

        step("no key was regenerated, and the removed validators' keys are kept");
        assert_eq!(key_secrets(&cp), grown, "key Secrets (names, uids, data) changed");
        assert!(genesis_keys.iter().all(|secret| grown.contains(secret)));
    });
    let acknowledged = load.acknowledged.clone();
    drop(load);
    let samples = samples.lock().unwrap().clone();
    step(&format!("{} samples over {:.0} s", samples.len(), started.elapsed().as_secs_f64()));

    step("the chain committed throughout");
    let heights: Vec<(Duration, u64)> =
        samples.iter().filter_map(|s| Some((s.at, s.node.as_ref()?.height))).collect();
    let mut still_since = heights[0];
    let mut longest_still = Duration::ZERO;
    for &(at, height) in &heights {
        if height > still_since.1 {
            still_since = (at, height);
        }
        longest_still = longest_still.max(at - still_since.0);
    }
    assert!(longest_still < LONGEST_STILL, "no new block for {longest_still:?}");
    eprintln!(
        "reconfigure e2e: heights {} -> {}, longest without a block {} ms",
        heights[0].1,
        heights.last().unwrap().1,
        longest_still.as_millis()
    );

    step("never more than one validator away while the image rolled");
    let rolling: Vec<&Sample> = samples.iter().filter(|s| s.unavailable.is_some()).collect();
    let away: Vec<usize> = rolling.iter().filter_map(|s| s.unavailable).collect();
    let rolled_for = rolling.last().unwrap().at - rolling[0].at;
    assert!(
        away.len() as f64 >= rolled_for.as_secs_f64(),
        "{} samples in {rolled_for:?} of rolling: fewer than one a second",
        away.len()
    );
    assert!(away.iter().all(|away| *away <= 1), "validators away, as sampled: {away:?}");
    // Validator 1 was away when sampling began; once it was back, restarts followed (one after
    // the other, so the moments with none away are mostly too short to sample; their order is
    // checked by the pods' times above).
    let after_return: Vec<usize> = away.iter().copied().skip_while(|away| *away == 1).collect();
    assert!(after_return.first() == Some(&0), "validator 1 never came back: {away:?}");

    step("fault tolerance went 1 -> 1 -> 2 -> 1");
    let mut tolerances: Vec<u64> = samples.iter().filter_map(|s| s.fault_tolerance).collect();
    tolerances.dedup();
    assert_eq!(tolerances, [1, 2, 1], "faultTolerance as sampled");

    step("six changes on chain, one at a time: validators 4, 5, 6 added, then 6, 5, 4 removed");
    let keys: Vec<PublicKey> = (0..7).map(|index| validator_key(&cp, index)).collect();
    let operations = admin_operations(&http, &validator_0());
    let changes = set_changes(&operations);
    let expected: Vec<(bool, PublicKey)> = [4, 5, 6]
        .iter()
        .map(|i| (true, keys[*i]))
        .chain([6, 5, 4].iter().map(|i| (false, keys[*i])))
        .collect();
    assert_eq!(changes.iter().map(|(_, add, key)| (*add, *key)).collect::<Vec<_>>(), expected);
    let window = 2 * CHECKPOINT_INTERVAL;
    for pair in changes.windows(2) {
        assert!(
            pair[1].0 > pair[0].0 + window,
            "a change committed before the one before it was in force: {pair:?}"
        );
    }

    step(
        "each change took effect at its height: the set in force, as sampled, is genesis' with every change whose height was reached",
    );
    let genesis_set: Vec<PublicKey> = keys[..4].to_vec();
    for node in samples.iter().filter_map(|s| s.node.as_ref()) {
        let mut set = genesis_set.clone();
        for (committed, add, key) in &changes {
            // In force from its activation height, committed + window + 1, on: the node's next
            // height has reached it.
            let activation = committed + window + 1;
            if node.height + 1 >= activation {
                if *add {
                    set.push(*key);
                } else {
                    set.retain(|k| k != key);
                }
            }
        }
        assert_eq!(node.validators, set, "in force at height {}", node.height + 1);
    }
    let mut on_chain: Vec<u64> = samples.iter().filter_map(|s| s.on_chain).collect();
    on_chain.dedup();
    assert_eq!(on_chain, [4, 5, 6, 7, 6, 5, 4], "status.validators.onChain as sampled");

    step(
        "members, then admins, then parameters: one transaction each, the parameters in force at the height shown",
    );
    let kinds: Vec<&str> = operations
        .iter()
        .filter_map(|(_, op)| op["kind"].as_str())
        .filter(|kind| !kind.ends_with("_validator"))
        .collect();
    assert_eq!(
        kinds,
        ["add_member", "add_admin", "set_consensus_params", "remove_member", "remove_admin"],
        "consortium changes on chain"
    );
    let (params_height, _) = operations.iter().find(|(_, op)| op["kind"] == "set_consensus_params").unwrap();
    assert_eq!(params_activation, Some(params_height + window + 1), "status.consensus.activationHeight");

    step("each new validator was started and waited for before its addition committed");
    // Validator 4's wait was seen above (WaitingForQuorum, which comes only after it answered
    // and caught up), however short; 5 and 6 start from nothing, seconds the sampler sees.
    for (index, (committed, _, _)) in (5..7).zip(&changes[1..]) {
        let before: Vec<&Sample> =
            samples.iter().take_while(|s| s.node.as_ref().is_none_or(|n| n.height < *committed)).collect();
        let waited = before.iter().any(|s| {
            s.reconfiguring.as_ref().is_some_and(|(_, reason, message)| {
                matches!(reason.as_str(), "ValidatorStarting" | "ValidatorCatchingUp" | "WaitingForQuorum")
                    && message.contains(&format!("validator {index}"))
            })
        });
        assert!(
            waited,
            "validator {index} was added at height {committed} without the operator waiting for it first"
        );
    }

    step("every acknowledged transaction is on every remaining validator, identically");
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() > 100, "only {} transactions committed under load", acknowledged.len());
    let remaining: Vec<String> = (0..4).map(|index| validator_url(&cp, index)).collect();
    for url in &remaining {
        for ack in &acknowledged {
            let found = eventually(WAIT, "the transaction on every validator", || {
                committed_at(&http, url, &ack.hash)
            });
            assert_eq!((found.height, found.index), (ack.height, ack.index), "{url}: {:?}", ack.hash);
        }
    }

    step("a receipt from after the changes verifies offline from genesis");
    let mut loader = Account::on_chain(loader_key(0), &chain_id);
    let nonce = get_as::<kubechain_api::AccountView>(
        &http,
        &format!("{api}/v1/accounts/{}", loader.key.public_key()),
    )
    .unwrap()
    .1
    .nonce;
    loader.next_nonce = nonce + 1;
    let last = loader.put("after-the-changes", b"verified");
    assert_eq!(kubechain_e2e::submit_to(&http, &validator_0(), &last), Some(202));
    eventually(WAIT, "the last transaction", || committed_at(&http, &validator_0(), &last.hash()));
    let receipt = work.path().join("receipt.json");
    let kubechain = sibling_bin("kubechain");
    let output = Command::new(&kubechain)
        .args(["receipt", &last.hash().to_string(), "--node", &validator_0(), "--out"])
        .arg(&receipt)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let output = Command::new(&kubechain)
        .args(["verify-receipt", "--genesis"])
        .arg(&genesis_path)
        .arg(&receipt)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{said}{}", String::from_utf8_lossy(&output.stderr));
    assert!(said.contains("7 rule changes followed"), "{said}");

    step("the removed validators' claims are kept");
    let claims = cp.names(NS, "pvc", &format!("app.kubernetes.io/instance={CHAIN}"));
    assert_eq!(claims.len(), 7, "{claims:?}");
    cp.down();
}

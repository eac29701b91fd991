//! One chain across three real clusters with WAN delay between them (`scripts/clouds.sh`:
//! "aws", "azure" and "gcp", each a whole one-node cluster in its own network namespace, round
//! trips of 85, 110 and 125 ms). The operator runs as a pod in aws, the hub, from its image;
//! azure and gcp are members it reaches through kubeconfig Secrets of service accounts with only
//! the rights `examples/multicloud-member-access.yaml` grants. `examples/multicloud-chain-local.yaml`
//! is applied as written. The test talks to each validator through its node port from the host,
//! which reaches every cloud without delay. Needs root.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use kubechain_api::NodeStatus;
use kubechain_e2e::kube::{
    Clouds, ControlPlane, annotate_every_placement, condition, edit_reached, join_member, repo_dir,
    sibling_bin,
};
use kubechain_e2e::{Account, Acknowledged, committed_at, eventually, fresh_connections, get_as, submit_to};
use kubechain_types::{AdminOperation, Operation, SigningKey, Transaction, keyfile};
use serde_json::{Value, json};

const NS: &str = "ledger";
const CHAIN: &str = "supply-chain";
const INSTANCE: &str = "app.kubernetes.io/instance=supply-chain";
const WAIT: Duration = Duration::from_secs(300);
/// Longest a transaction may take to commit while a cloud is away: a view change's worth.
const COMMIT_PATIENCE: Duration = Duration::from_secs(20);
/// Which cloud runs which validator, as the example places them.
const PLACED: [(&str, u32); 4] = [("aws", 0), ("aws", 1), ("azure", 2), ("gcp", 3)];

fn step(what: &str) {
    eprintln!("multicloud e2e: {what}");
}

/// `http://NODE:NODE_PORT` of validator `index`'s API. Its peer Service carries the peer port
/// only, so the test exposes the API itself, as a user who wants each validator's API from
/// outside would: a NodePort Service of its own.
fn validator_url(cp: &ControlPlane, index: u32) -> String {
    let name = format!("{CHAIN}-validator-{index}-api");
    let service = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {
            "type": "NodePort",
            "selector": {"app.kubernetes.io/instance": CHAIN, "kubechain.dev/validator": index.to_string()},
            "ports": [{"name": "api", "port": 8080, "targetPort": "api"}],
        },
    });
    assert!(cp.apply(NS, &service.to_string()).status.success());
    let service = cp.get_json(&["service", &name, "-n", NS]).unwrap();
    let port = service["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    let node = cp.get_json(&["nodes"]).unwrap();
    let addresses = node["items"][0]["status"]["addresses"].as_array().unwrap().clone();
    let ip = addresses.iter().find(|a| a["type"] == "InternalIP").unwrap()["address"]
        .as_str()
        .unwrap()
        .to_string();
    format!("http://{ip}:{port}")
}

fn height_at(client: &reqwest::blocking::Client, url: &str) -> Option<u64> {
    let (code, status) = get_as::<NodeStatus>(client, &format!("{url}/v1/status"))?;
    (code == 200).then_some(status.height)
}

fn chain(hub: &ControlPlane) -> Value {
    hub.get_json(&["bc", CHAIN, "-n", NS]).unwrap()
}

fn is(chain: &Value, type_: &str, status: &str) -> bool {
    condition(chain, type_).is_some_and(|(s, _, _)| s == status)
}

fn submit_and_commit(
    client: &reqwest::blocking::Client,
    url: &str,
    tx: &Transaction,
    patience: Duration,
) -> (Acknowledged, Duration) {
    let sent = Instant::now();
    eventually(patience, "the transaction to be accepted", || {
        matches!(submit_to(client, url, tx), Some(202 | 409)).then_some(())
    });
    let commit = eventually(patience, "the transaction to commit", || committed_at(client, url, &tx.hash()));
    (commit, sent.elapsed())
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("run a command");
    assert!(output.status.success(), "{command:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn one_chain_commits_across_three_clouds() {
    let started = Instant::now();
    let clouds = Clouds::up();
    let hub = clouds.cluster("aws");
    let client = fresh_connections();

    step("the WAN: measured round trips between the clouds");
    for (from, to, set) in [("aws", "azure", 85.0), ("aws", "gcp", 110.0), ("azure", "gcp", 125.0)] {
        let measured = clouds.round_trip_ms(from, to);
        eprintln!("multicloud e2e: round trip {from}-{to}: {measured:.1} ms (set {set} ms)");
        assert!((set..set + 50.0).contains(&measured), "{from}-{to}: {measured} ms, set {set} ms");
    }

    step("the operator runs as a pod in aws, the hub; azure and gcp join as members");
    hub.install_operator();
    hub.run(&["create", "namespace", NS]);
    let kubeconfigs: Vec<String> =
        ["azure", "gcp"].iter().map(|name| join_member(hub, clouds.cluster(name), name, NS)).collect();

    step("kubectl apply examples/multicloud-chain-local.yaml as written");
    let applied_at = Instant::now();
    let example = std::fs::read_to_string(repo_dir().join("examples/multicloud-chain-local.yaml")).unwrap();
    let applied = hub.apply(NS, &example);
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    hub.run(&["wait", "--for=condition=Ready", &format!("bc/{CHAIN}"), "-n", NS, "--timeout=300s"]);
    let ready_after = applied_at.elapsed();
    let columns = hub.run(&["get", "bc", CHAIN, "-n", NS]);
    assert!(columns.lines().nth(1).unwrap().contains("4/4"), "{columns}");

    step("each cloud runs its validators from its own volume; each key only where it runs");
    for (cloud, cp) in &clouds.clusters {
        let mine: BTreeSet<u32> = PLACED.iter().filter(|(c, _)| c == cloud).map(|(_, i)| *i).collect();
        let keys: BTreeSet<String> = mine.iter().map(|i| format!("{CHAIN}-validator-{i}-key")).collect();
        let found: BTreeSet<String> = cp
            .names(NS, "secrets", &format!("{INSTANCE},app.kubernetes.io/component=validator-key"))
            .into_iter()
            .collect();
        assert_eq!(found, keys, "key Secrets in {cloud}");
        let claims = cp.get_json(&["pvc", "-n", NS, "-l", INSTANCE]).unwrap();
        let bound =
            claims["items"].as_array().unwrap().iter().filter(|c| c["status"]["phase"] == "Bound").count();
        assert_eq!(bound, mine.len(), "bound volumes in {cloud}");
    }
    let urls: Vec<String> =
        PLACED.iter().map(|(cloud, index)| validator_url(clouds.cluster(cloud), *index)).collect();

    step("transactions sent to each cloud commit, and their receipts verify offline");
    let genesis_json = hub.data(NS, "configmap", &format!("{CHAIN}-genesis"), "genesis.json");
    let chain_id =
        serde_json::from_str::<Value>(&genesis_json).unwrap()["chain_id"].as_str().unwrap().to_string();
    let admin_key =
        keyfile::from_json(hub.data(NS, "secret", &format!("{CHAIN}-admin-key"), "admin.key").as_bytes())
            .unwrap();
    let mut admin = Account::on_chain(admin_key.clone(), &chain_id);
    let member_key = SigningKey::from_seed([42; 32]);
    let add = admin.sign(vec![Operation::Admin(AdminOperation::AddMember {
        name: "acme".into(),
        public_keys: vec![member_key.public_key()],
    })]);
    submit_and_commit(&client, &urls[0], &add, WAIT);
    let mut member = Account::on_chain(member_key, &chain_id);
    let mut acknowledged = Vec::new();
    for (url, (cloud, _)) in urls.iter().zip(PLACED) {
        let tx = member.put(&format!("shipment-{cloud}-{}", acknowledged.len()), b"received");
        let (commit, took) = submit_and_commit(&client, url, &tx, WAIT);
        eprintln!(
            "multicloud e2e: sent to {cloud}: committed at height {} in {} ms",
            commit.height,
            took.as_millis()
        );
        acknowledged.push(commit);
    }
    let work = tempfile::tempdir().unwrap();
    let genesis_path = work.path().join("genesis.json");
    std::fs::write(&genesis_path, &genesis_json).unwrap();
    let receipt = work.path().join("receipt.json");
    let kubechain = sibling_bin("kubechain");
    let last = acknowledged.last().unwrap();
    run(Command::new(&kubechain)
        .args(["receipt", &last.hash.to_string(), "--node", &urls[3], "--out"])
        .arg(&receipt));
    run(Command::new(&kubechain).args(["verify-receipt", "--genesis"]).arg(&genesis_path).arg(&receipt));
    hub.wait_json(&["bc", CHAIN, "-n", NS], WAIT, "the hub to show the new height", |chain| {
        (chain["status"]["height"].as_u64()? >= last.height).then_some(())
    });

    step("finality across the WAN: kubechain bench at a moderate load");
    let admin_file = work.path().join("admin.key");
    std::fs::write(&admin_file, keyfile::to_json(&admin_key)).unwrap();
    std::fs::set_permissions(&admin_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut bench = Command::new(&kubechain);
    bench.arg("bench");
    for url in &urls {
        bench.args(["--node", url]);
    }
    bench.arg("--admin-key").arg(&admin_file).arg("--genesis").arg(&genesis_path);
    bench.args(["--transactions", "4000", "--latency-seconds", "10"]);
    let summary = run(&mut bench).lines().last().unwrap_or_default().to_string();
    eprintln!("multicloud e2e: bench across the clouds: {summary}");
    let measured: Value = serde_json::from_str(&summary).unwrap();
    // Every commit needs a quorum, so at least one cross-cloud round trip: a p50 below the
    // smallest (85 ms) would mean the delay is not there.
    assert!(measured["p50_ms"].as_f64().is_some_and(|ms| ms >= 85.0), "{summary}");

    step("gcp (one validator) cut off: the chain commits on; the hub names gcp");
    let patch = r#"{"spec":{"chainStalledAfterSeconds":10}}"#;
    hub.run(&["patch", "bc", CHAIN, "-n", NS, "--type=merge", "-p", patch]);
    clouds.network("cut", "gcp");
    for round in 0..3 {
        let tx = member.put(&format!("while-gcp-away-{round}"), b"in transit");
        let (commit, took) = submit_and_commit(&client, &urls[0], &tx, COMMIT_PATIENCE);
        eprintln!("multicloud e2e: committed while gcp away in {} ms", took.as_millis());
        acknowledged.push(commit);
    }
    eventually(WAIT, "Degraded naming gcp", || {
        let chain = chain(hub);
        condition(&chain, "Degraded")
            .filter(|(s, reason, message)| {
                s == "True" && reason == "ClusterUnreachable" && message.contains("cluster gcp")
            })
            .map(|_| ())
    });
    assert!(is(&chain(hub), "QuorumAtRisk", "False"), "three of four validators are a quorum");
    clouds.network("heal", "gcp");
    let tip = acknowledged.iter().map(|a| a.height).max().unwrap();
    eventually(WAIT, "gcp's validator to catch up", || height_at(&client, &urls[3]).filter(|h| *h >= tip));
    eventually(WAIT, "Ready again", || is(&chain(hub), "Ready", "True").then_some(()));

    step("aws (two validators) cut off: QuorumAtRisk and ChainStalled; healed, they clear");
    clouds.network("cut", "aws");
    let stuck = member.put("while-aws-away", b"waits");
    assert_eq!(submit_to(&client, &urls[2], &stuck), Some(202));
    eventually(WAIT, "QuorumAtRisk and ChainStalled", || {
        let chain = chain(hub);
        (is(&chain, "QuorumAtRisk", "True") && is(&chain, "ChainStalled", "True")).then_some(())
    });
    assert!(committed_at(&client, &urls[2], &stuck.hash()).is_none(), "committed without a quorum");
    clouds.network("heal", "aws");
    let commit = eventually(WAIT, "the waiting transaction to commit", || {
        committed_at(&client, &urls[2], &stuck.hash())
    });
    acknowledged.push(commit);
    eventually(WAIT, "QuorumAtRisk and ChainStalled cleared", || {
        let chain = chain(hub);
        (is(&chain, "QuorumAtRisk", "False")
            && is(&chain, "ChainStalled", "False")
            && is(&chain, "Ready", "True"))
        .then_some(())
    });

    step("every acknowledged transaction is on every validator");
    for url in &urls {
        for ack in &acknowledged {
            let found = eventually(WAIT, "the transaction on every validator", || {
                committed_at(&client, url, &ack.hash)
            });
            assert_eq!(
                (found.height, found.index),
                (ack.height, ack.index),
                "{url} disagrees on {}",
                ack.hash
            );
        }
    }

    step("gcp's control plane hangs: ClusterUnreachable names it, an edit still reaches the others");
    clouds.cluster("gcp").freeze_api_server(true);
    eventually(WAIT, "ClusterUnreachable naming gcp", || {
        condition(&chain(hub), "Degraded")
            .filter(|(_, reason, message)| reason == "ClusterUnreachable" && message.contains("cluster gcp"))
            .map(|_| ())
    });
    annotate_every_placement(hub, NS, CHAIN, 3);
    let edited = |cp: &ControlPlane, index: u32| edit_reached(cp, NS, CHAIN, index);
    eventually(WAIT, "the edit in aws and azure", || {
        (edited(hub, 0) && edited(clouds.cluster("azure"), 2)).then_some(())
    });
    clouds.cluster("gcp").freeze_api_server(false);
    eventually(WAIT, "gcp reconciled again", || edited(clouds.cluster("gcp"), 3).then_some(()));
    eventually(WAIT, "Ready again", || is(&chain(hub), "Ready", "True").then_some(()));

    step("no key material in the operator's log, and no member token");
    let logs = hub.run(&["logs", "-n", "kubechain-system", "deploy/kubechain-operator"]);
    for kubeconfig in &kubeconfigs {
        let token = kubeconfig.lines().find_map(|l| l.trim().strip_prefix("token: ")).unwrap();
        assert!(!logs.contains(token), "a member's token is in the operator's log");
    }
    assert!(!logs.contains(&hex::encode(admin_key.seed())), "the admin key is in the operator's log");

    step("delete the Blockchain: its objects leave all three clouds, volume claims stay");
    hub.run(&["delete", "bc", CHAIN, "-n", NS, "--timeout=180s"]);
    for (cloud, cp) in &clouds.clusters {
        for kind in
            ["statefulsets", "services", "configmaps", "secrets", "poddisruptionbudgets", "networkpolicies"]
        {
            eventually(WAIT, &format!("{kind} gone from {cloud}"), || {
                cp.names(NS, kind, INSTANCE).is_empty().then_some(())
            });
        }
        let mine = PLACED.iter().filter(|(c, _)| c == cloud).count();
        assert_eq!(cp.names(NS, "pvc", INSTANCE).len(), mine, "{cloud}'s volume claims must be kept");
    }
    eprintln!(
        "multicloud e2e: measured: Ready {:.1} s after kubectl apply; the whole suite {:.0} s",
        ready_after.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

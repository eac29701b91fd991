//! The operator on a real control plane (etcd, kube-apiserver, controller manager, scheduler and
//! kwok nodes built from Go modules), driven with `kubectl` as a user would.
//!
//! kwok runs pods on paper, so the validators themselves run as real `kubechain node run`
//! processes on loopback, started from the key Secrets and genesis ConfigMap the operator wrote;
//! the operator reaches validator i at 127.77.i.R:8080 (R picked per run) through
//! `--node-url-template`. Everything else is what a cluster would see.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use kubechain_e2e::kube::{ControlPlane, condition, repo_dir, volumes};
use kubechain_e2e::{Account, Cluster, committed_at, eventually, submit_to};
use kubechain_types::{AdminOperation, Operation, SigningKey, keyfile};
use serde_json::Value;

const NS: &str = "ledger";
const CHAIN: &str = "trade-ledger";
const INSTANCE: &str = "app.kubernetes.io/instance=trade-ledger";
const WAIT: Duration = Duration::from_secs(90);
/// What the operator creates for the 4-validator example, by kind.
const OWNED: [(&str, usize); 6] = [
    ("secrets", 5),
    ("configmaps", 2),
    ("services", 6),
    ("statefulsets", 4),
    ("poddisruptionbudgets", 1),
    ("networkpolicies", 1),
];

fn step(what: &str) {
    eprintln!("operator e2e: {what}");
}

#[test]
fn the_operator_runs_a_chain_on_a_real_control_plane() {
    let cp = ControlPlane::up(2);
    step("install the CRD");
    let crd = repo_dir().join("crds/blockchain.kubechain.dev.yaml");
    cp.run(&["apply", "-f", crd.to_str().unwrap()]);
    cp.run(&["wait", "--for=condition=Established", "crd/blockchains.kubechain.dev", "--timeout=60s"]);
    cp.run(&["create", "namespace", NS]);

    the_api_server_rejects_bad_specs(&cp);

    // No volume provisioner runs here: volumes a cluster admin would have made, for the claims.
    assert!(cp.apply("default", &volumes(5)).status.success());

    // Distinct per process, so runs side by side use different addresses.
    let octet = (1 + std::process::id() % 254) as u8;
    let template = format!("http://127.77.{{index}}.{octet}:8080");
    let operator_args = ["--node-url-template", &template, "--lease-namespace", "default"];
    let log = cp.dir().join("operator.log");
    let mut operator = cp.start_operator(&operator_args, &log);

    step("kubectl apply the example");
    let example = std::fs::read_to_string(repo_dir().join("examples/chain.yaml")).unwrap();
    let applied = cp.apply(NS, &example);
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    for (kind, count) in OWNED {
        eventually(WAIT, &format!("{count} {kind}"), || {
            (cp.names(NS, kind, INSTANCE).len() == count).then_some(())
        });
    }
    pods_run_on_kwok_nodes(&cp, 4);
    let chain = cp.get_json(&["bc", CHAIN, "-n", NS]).unwrap();
    assert_eq!(chain["metadata"]["finalizers"][0], "kubechain.dev/cleanup");
    cp.run(&["wait", "--for=condition=QuorumAtRisk", &format!("bc/{CHAIN}"), "-n", NS, "--timeout=60s"]);
    let chain = cp.get_json(&["bc", CHAIN, "-n", NS]).unwrap();
    assert_eq!(chain["status"]["phase"], "Creating", "no validator answers yet: {chain}");
    assert_eq!(chain["status"]["ready"], "0/4");
    assert_eq!(chain["status"]["faultTolerance"], 1);

    step("start the validators from the operator's Secrets and genesis");
    let (mut devnet, admin, keys) = cp.validators_made_for(NS, CHAIN, 4, octet);
    devnet.start_all();
    cp.run(&["wait", "--for=condition=Ready", &format!("bc/{CHAIN}"), "-n", NS, "--timeout=90s"]);

    step("a committed transaction shows in the status");
    let genesis_hash = chain_status_after_a_commit(&cp, &devnet, admin);
    let columns = cp.run(&["get", "bc", CHAIN, "-n", NS]);
    let (header, row) = columns.split_once('\n').unwrap();
    for column in ["READY", "HEIGHT", "VIEW", "PHASE", "AGE"] {
        assert!(header.contains(column), "no {column} column: {columns}");
    }
    assert!(row.contains("4/4") && row.contains("Running"), "{columns}");

    step("restart the operator; delete a Service and a StatefulSet: they heal, keys unchanged");
    let keys_before = key_secrets(&cp);
    operator.stop();
    operator = cp.start_operator(&operator_args, &log);
    heals(&cp, "service", &format!("{CHAIN}-validator-1"));
    heals(&cp, "statefulset", &format!("{CHAIN}-validator-2"));
    pods_run_on_kwok_nodes(&cp, 4);
    cp.run(&["wait", "--for=condition=Ready", &format!("bc/{CHAIN}"), "-n", NS, "--timeout=90s"]);
    assert_eq!(key_secrets(&cp), keys_before, "a key Secret changed");
    let chain = cp.get_json(&["bc", CHAIN, "-n", NS]).unwrap();
    assert_eq!(chain["status"]["genesisHash"], genesis_hash.as_str(), "genesis changed");

    step("stop every validator: QuorumAtRisk, then ChainStalled");
    cp.run(&[
        "patch",
        "bc",
        CHAIN,
        "-n",
        NS,
        "--type=merge",
        "-p",
        r#"{"spec":{"chainStalledAfterSeconds":10}}"#,
    ]);
    devnet.stop_all();
    cp.run(&["wait", "--for=condition=QuorumAtRisk", &format!("bc/{CHAIN}"), "-n", NS, "--timeout=60s"]);
    cp.run(&["wait", "--for=condition=ChainStalled", &format!("bc/{CHAIN}"), "-n", NS, "--timeout=90s"]);
    // What alerts read: the conditions as metrics, per chain.
    for (condition, value) in [("QuorumAtRisk", 1.0), ("ChainStalled", 1.0), ("Ready", 0.0)] {
        let series = format!(
            r#"kubechain_operator_chain_condition{{chain="{CHAIN}",condition="{condition}",namespace="{NS}"}}"#
        );
        eventually(WAIT, &series, || operator.metric(&series).filter(|seen| *seen == value));
    }
    let chain = cp.get_json(&["bc", CHAIN, "-n", NS]).unwrap();
    let (_, reason, message) = condition(&chain, "ChainStalled").unwrap();
    assert_eq!(reason, "NoNewBlocks");
    assert!(message.contains("0 validators voting"), "{message}");
    assert_eq!(condition(&chain, "Ready").unwrap().0, "False");
    assert!(chain["status"]["height"].as_u64().unwrap() >= 1, "the last height stays: {chain}");

    step("delete a key Secret: the chain is blocked, the key is not regenerated");
    let lost = format!("{CHAIN}-validator-3-key");
    cp.run(&["delete", "secret", &lost, "-n", NS]);
    let message = cp.wait_json(&["bc", CHAIN, "-n", NS], WAIT, "Ready=False with KeyMissing", |chain| {
        condition(chain, "Ready").filter(|(status, reason, _)| status == "False" && reason == "KeyMissing")
    });
    assert!(message.2.contains(&lost), "{message:?}");
    let chain = cp.get_json(&["bc", CHAIN, "-n", NS]).unwrap();
    assert_eq!(chain["status"]["phase"], "Failed");
    assert!(cp.get_json(&["secret", &lost, "-n", NS]).is_none(), "the lost key was regenerated");
    let events = cp.get_json(&["events", "-n", NS, "--field-selector", "reason=KeyMissing"]).unwrap();
    assert!(!events["items"].as_array().unwrap().is_empty(), "no KeyMissing event");

    step("delete the genesis ConfigMap: the chain is blocked, genesis and keys are not rebuilt");
    let genesis_map = format!("{CHAIN}-genesis");
    cp.run(&["delete", "configmap", &genesis_map, "-n", NS]);
    let message = cp.wait_json(&["bc", CHAIN, "-n", NS], WAIT, "Ready=False with GenesisMissing", |chain| {
        condition(chain, "Ready")
            .filter(|(status, reason, _)| status == "False" && reason == "GenesisMissing")
    });
    assert!(message.2.contains(&genesis_map) && message.2.contains(&genesis_hash), "{message:?}");
    assert!(cp.get_json(&["configmap", &genesis_map, "-n", NS]).is_none(), "genesis was rebuilt");
    assert!(cp.get_json(&["secret", &lost, "-n", NS]).is_none(), "the lost key was regenerated");
    let mut unchanged = keys_before.clone();
    unchanged.remove(&lost);
    assert_eq!(key_secrets(&cp), unchanged, "a key Secret changed");
    let chain = cp.get_json(&["bc", CHAIN, "-n", NS]).unwrap();
    assert_eq!(chain["status"]["genesisHash"], genesis_hash.as_str());

    step("a chain the API server refuses to run fails visibly and does not hold up another");
    let broken = "apiVersion: kubechain.dev/v1alpha1\nkind: Blockchain\nmetadata:\n  name: broken\nspec:\n  \
                  chainId: broken-1\n  validators: 1\n  image: kubechain/node:0.1.0\n  resources:\n    \
                  requests: {cpu: '2'}\n    limits: {cpu: '1'}\n";
    assert!(cp.apply(NS, broken).status.success());
    let failure = cp.wait_json(&["bc", "broken", "-n", NS], WAIT, "broken's ReconcileFailed", |chain| {
        condition(chain, "Ready").filter(|(_, reason, _)| reason == "ReconcileFailed")
    });
    assert!(failure.2.contains("must be less than or equal to cpu limit"), "{failure:?}");
    // Its genesis was made before the failure and is pinned all the same.
    let broken_chain = cp.get_json(&["bc", "broken", "-n", NS]).unwrap();
    assert_eq!(broken_chain["status"]["genesisHash"].as_str().map(str::len), Some(64), "{broken_chain}");
    let events = cp.get_json(&["events", "-n", NS, "--field-selector", "reason=ReconcileFailed"]).unwrap();
    assert!(!events["items"].as_array().unwrap().is_empty(), "no ReconcileFailed event");
    let errors = eventually(WAIT, "the error metric", || {
        operator.metric(r#"kubechain_operator_reconcile_errors_total{kind="kube"}"#).filter(|n| *n >= 1.0)
    });
    assert!(errors >= 1.0);
    let scratch = "apiVersion: kubechain.dev/v1alpha1\nkind: Blockchain\nmetadata:\n  name: scratch\nspec:\n  \
                   chainId: scratch-1\n  validators: 1\n  image: kubechain/node:0.1.0\n  storage:\n    \
                   retainOnDelete: false\n";
    assert!(cp.apply(NS, scratch).status.success());
    let warnings = cp.wait_json(&["bc", "scratch", "-n", NS], WAIT, "scratch's status", |chain| {
        chain["status"]["warnings"].as_array().cloned()
    });
    assert!(warnings[0].as_str().unwrap().contains("tolerate no faulty validator"), "{warnings:?}");
    eventually(WAIT, "scratch's volume claim", || {
        (cp.names(NS, "pvc", "app.kubernetes.io/instance=scratch").len() == 1).then_some(())
    });

    no_key_material_leaks(&cp, &keys, &keys_before, &log);

    let scratch_ready = format!(
        r#"kubechain_operator_chain_condition{{chain="scratch",condition="Ready",namespace="{NS}"}}"#
    );
    eventually(WAIT, "scratch's series", || operator.metric(&scratch_ready));

    step("delete the chains: owned objects and their series go, volume claims only when asked");
    cp.run(&["delete", "bc", CHAIN, "scratch", "broken", "-n", NS, "--timeout=60s"]);
    for (kind, _) in OWNED {
        for instance in [INSTANCE, "app.kubernetes.io/instance=scratch", "app.kubernetes.io/instance=broken"]
        {
            eventually(WAIT, &format!("{kind} of {instance} to go"), || {
                cp.names(NS, kind, instance).is_empty().then_some(())
            });
        }
    }
    eventually(WAIT, "scratch's volume claim to go", || {
        cp.names(NS, "pvc", "app.kubernetes.io/instance=scratch").is_empty().then_some(())
    });
    assert_eq!(cp.names(NS, "pvc", INSTANCE).len(), 4, "trade-ledger's volume claims must be kept");
    assert_eq!(operator.metric(&scratch_ready), None, "a deleted chain's series stay");

    nothing_taken_that_was_not_made_for_the_chain(&cp, &example);
    assert!(operator.is_running(), "the operator died; log: {}", log.display());
    operator.stop();
    let flaps = cp.get_json(&["events", "-A", "--field-selector", "reason=NodeNotReady"]).unwrap();
    assert!(flaps["items"].as_array().unwrap().is_empty(), "a kwok node went not Ready: {flaps}");
}

/// A chain re-created over its predecessor's kept volume claims waits and says so; a genesis
/// ConfigMap or key Secret planted under a new chain's names is neither taken nor replaced.
fn nothing_taken_that_was_not_made_for_the_chain(cp: &ControlPlane, example: &str) {
    step("re-created over the kept volume claims: VolumesHoldAnotherChain, nothing made until they go");
    assert!(cp.apply(NS, example).status.success());
    let (_, _, why) = cp.wait_json(&["bc", CHAIN, "-n", NS], WAIT, "VolumesHoldAnotherChain", |chain| {
        condition(chain, "Ready").filter(|(_, reason, _)| reason == "VolumesHoldAnotherChain")
    });
    assert!(why.contains("data-trade-ledger-validator-0-0"), "{why}");
    assert!(cp.names(NS, "secrets", INSTANCE).is_empty(), "keys were made over the old chain's volumes");
    cp.run(&["delete", "pvc", "-n", NS, "-l", INSTANCE, "--wait=false"]);
    // Claims of pods gone since: deleted at once (no pod holds them), and then a new genesis.
    cp.wait_json(&["bc", CHAIN, "-n", NS], WAIT, "a new genesis once the claims are gone", |chain| {
        chain["status"]["genesisHash"].as_str().map(str::len).filter(|len| *len == 64)
    });

    step("a genesis ConfigMap planted under a new chain's name: ForeignObject, left as it was");
    let planted = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"planted-genesis"},"data":{"genesis.json":"{}"}}"#;
    assert!(cp.apply(NS, planted).status.success());
    let chain = |name: &str| {
        format!(
            "apiVersion: kubechain.dev/v1alpha1\nkind: Blockchain\nmetadata:\n  name: {name}\nspec:\n  chainId: {name}-1\n  validators: 1\n  image: kubechain/node:0.1.0\n"
        )
    };
    assert!(cp.apply(NS, &chain("planted")).status.success());
    let (_, _, why) = cp.wait_json(&["bc", "planted", "-n", NS], WAIT, "ForeignObject", |chain| {
        condition(chain, "Ready").filter(|(_, reason, _)| reason == "ForeignObject")
    });
    assert!(why.contains("ConfigMap planted-genesis") && why.contains("kubechain.dev/chain-uid"), "{why}");
    assert_eq!(data(cp, "configmap", "planted-genesis", "genesis.json"), "{}");

    step("an admin key Secret planted under a new chain's name: refused, no genesis made with it");
    let known = SigningKey::from_seed([66; 32]);
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sneaky-admin-key"},
        "stringData": {"admin.key": String::from_utf8(keyfile::to_json(&known)).unwrap()},
    });
    assert!(cp.apply(NS, &secret.to_string()).status.success());
    assert!(cp.apply(NS, &chain("sneaky")).status.success());
    let (_, _, why) = cp.wait_json(&["bc", "sneaky", "-n", NS], WAIT, "the planted key refused", |chain| {
        condition(chain, "Ready").filter(|(_, reason, _)| reason == "ReconcileFailed")
    });
    assert!(why.contains("sneaky-admin-key") && why.contains("not made for this Blockchain"), "{why}");
    assert!(cp.get_json(&["configmap", "sneaky-genesis", "-n", NS]).is_none(), "a genesis was made");
}

/// The API server itself refuses bad specs with the CRD's messages (no operator is running).
fn the_api_server_rejects_bad_specs(cp: &ControlPlane) {
    step("the API server rejects bad specs");
    let manifest = |name: &str, spec: &str| {
        format!(
            "apiVersion: kubechain.dev/v1alpha1\nkind: Blockchain\nmetadata:\n  name: {name}\nspec:\n{spec}"
        )
    };
    let refused = |manifest: String, expected: &str| {
        let output = cp.apply(NS, &manifest);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(expected),
            "expected {expected:?}, got: {stderr}"
        );
    };
    refused(
        manifest(
            "split",
            "  chainId: s-1\n  validators: 4\n  image: i:1\n  placement:\n  - cluster: here\n    local: true\n    validators: 3\n",
        ),
        "the validators of the placement entries must add up to spec.validators",
    );
    refused(
        manifest(
            "remote",
            "  chainId: r-1\n  validators: 4\n  image: i:1\n  placement:\n  - cluster: aws\n    validators: 4\n",
        ),
        "a remote cluster needs kubeconfigSecretRef",
    );
    refused(manifest("none", "  chainId: n-1\n  validators: 0\n  image: i:1\n"), "spec.validators");
    refused(manifest(&"x".repeat(40), "  chainId: x-1\n  validators: 4\n  image: i:1\n"), "at most 39");

    let good = manifest("fixed", "  chainId: fixed-1\n  validators: 4\n  image: i:1\n");
    assert!(cp.apply(NS, &good).status.success());
    let output = cp.kubectl(&[
        "patch",
        "bc",
        "fixed",
        "-n",
        NS,
        "--type=merge",
        "-p",
        r#"{"spec":{"chainId":"other"}}"#,
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("chainId is immutable"), "{stderr}");
    let checkpoints = r#"{"spec":{"consensus":{"checkpointInterval":64}}}"#;
    let output = cp.kubectl(&["patch", "bc", "fixed", "-n", NS, "--type=merge", "-p", checkpoints]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("checkpointInterval is fixed at genesis"),
        "{stderr}"
    );
    let output =
        cp.kubectl(&["patch", "bc", "fixed", "-n", NS, "--type=merge", "-p", r#"{"spec":{"validators":0}}"#]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("spec.validators"), "{stderr}");
    // No operator runs yet, so no finalizer holds it.
    cp.run(&["delete", "bc", "fixed", "-n", NS]);
}

/// The scheduler placed `count` validator pods on kwok nodes and kwok reports them Ready.
fn pods_run_on_kwok_nodes(cp: &ControlPlane, count: usize) {
    eventually(WAIT, &format!("{count} validator pods"), || {
        (cp.names(NS, "pods", INSTANCE).len() == count).then_some(())
    });
    cp.run(&["wait", "--for=condition=Ready", "pod", "-l", INSTANCE, "-n", NS, "--timeout=90s"]);
    let pods = cp.get_json(&["pods", "-n", NS, "-l", INSTANCE]).unwrap();
    for pod in pods["items"].as_array().unwrap() {
        let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
        assert!(node.starts_with("kwok-node-"), "pod on {node:?}");
        assert_eq!(pod["status"]["phase"], "Running");
        assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
        assert_eq!(pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"], true);
    }
}

fn data(cp: &ControlPlane, kind: &str, name: &str, key: &str) -> String {
    cp.data(NS, kind, name, key)
}

/// Commits an admin transaction, then waits for the status to show its height; the genesis hash.
fn chain_status_after_a_commit(cp: &ControlPlane, devnet: &Cluster, admin: SigningKey) -> String {
    let mut account = Account::on_chain(admin, &devnet.genesis.chain_id);
    let member = SigningKey::from_seed([7; 32]);
    let tx = account.sign(vec![Operation::Admin(AdminOperation::AddMember {
        name: "acme".into(),
        public_keys: vec![member.public_key()],
    })]);
    let api = devnet.validators[0].api();
    assert_eq!(submit_to(devnet.http(), &api, &tx), Some(202));
    let committed =
        eventually(WAIT, "the transaction to commit", || committed_at(devnet.http(), &api, &tx.hash()));
    let node_status = devnet.status(0).unwrap();
    cp.wait_json(&["bc", CHAIN, "-n", NS], WAIT, "the status to show the new height", |chain| {
        let status = &chain["status"];
        (status["height"].as_u64()? >= committed.height).then_some(())?;
        assert_eq!(status["phase"], "Running");
        assert_eq!(status["ready"], "4/4");
        assert_eq!(status["validators"]["onChain"], 4);
        assert!(status["view"].as_u64().is_some(), "{status}");
        assert_eq!(status["genesisHash"], node_status.genesis_hash.to_hex());
        assert_eq!(status["clusters"][0]["readyValidators"], 4);
        assert_eq!(condition(chain, "Degraded").unwrap().0, "False");
        Some(())
    });
    node_status.genesis_hash.to_hex()
}

/// uid and data of every key Secret of the chain.
fn key_secrets(cp: &ControlPlane) -> BTreeMap<String, (Value, Value)> {
    let list = cp.get_json(&["secrets", "-n", NS, "-l", INSTANCE]).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metadata"]["name"].as_str().unwrap().to_string(),
                (s["metadata"]["uid"].clone(), s["data"].clone()),
            )
        })
        .collect()
}

/// Deletes an owned object and waits for the operator to put it back.
fn heals(cp: &ControlPlane, kind: &str, name: &str) {
    let uid = |object: &Value| object["metadata"]["uid"].as_str().map(str::to_string);
    let before = uid(&cp.get_json(&[kind, name, "-n", NS]).unwrap()).unwrap();
    cp.run(&["delete", kind, name, "-n", NS, "--wait=true"]);
    cp.wait_json(&[kind, name, "-n", NS], WAIT, &format!("{kind} {name} to come back"), |object| {
        uid(object).filter(|after| *after != before)
    });
}

/// No private key, as hex seed or as the Secret's base64 data, shows in the operator's log, in
/// events, in ConfigMaps or in any Blockchain's status.
fn no_key_material_leaks(
    cp: &ControlPlane,
    keys: &[SigningKey],
    secrets: &BTreeMap<String, (Value, Value)>,
    log: &std::path::Path,
) {
    step("no key material in logs, events, ConfigMaps or status");
    let mut haystacks = vec![std::fs::read_to_string(log).unwrap()];
    for kind in ["events", "configmaps", "bc"] {
        haystacks.push(cp.get_json(&[kind, "-A"]).unwrap().to_string());
    }
    let seeds = keys.iter().map(|key| hex::encode(key.seed()));
    let encoded = secrets.values().flat_map(|(_, data)| data.as_object().unwrap().values());
    let needles: Vec<String> =
        seeds.chain(encoded.map(|value| value.as_str().unwrap().to_string())).collect();
    assert_eq!(needles.len(), 10, "5 seeds and 5 encoded key files");
    for needle in &needles {
        for haystack in &haystacks {
            assert!(!haystack.contains(needle.as_str()), "key material leaked");
        }
    }
}

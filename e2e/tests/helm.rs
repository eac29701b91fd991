//! The new user's path, as the README gives it: `helm install` of the operator chart on a real
//! node (the operator in a pod from its image), `kubectl apply` of the example chain with the
//! user's own member key, a transaction through the chain's API Service whose receipt verifies
//! offline, `helm test`, `helm upgrade` of values (to the namespaced mode: Roles in the watched
//! namespace only, with which the operator still changes the chain) and of the CRD, and
//! `helm uninstall`, which keeps the CRD, the chain and its volumes. Helm is built from its Go module
//! (scripts/helm-build.sh). Needs root, like the node itself.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use kubechain_e2e::kube::{ControlPlane, condition, repo_dir};
use kubechain_e2e::{eventually, fresh_connections, get_json, kubechain_bin};
use kubechain_types::SigningKey;
use serde::Deserialize;
use serde_json::Value;

const RELEASE: &str = "kubechain-operator";
const OPERATOR_NS: &str = "kubechain-system";
const CHAIN: &str = "trade-ledger";
const WAIT: Duration = Duration::from_secs(240);
/// The member key the example chain carries until the user puts theirs in its place.
const EXAMPLE_MEMBER_KEY: &str = "5e90881e7d877101c709584845eafeb93aecf176938d3f262d17852df9f12338";

fn step(what: &str) {
    eprintln!("helm e2e: {what}");
}

/// Helm against one control plane, with its own config, cache and data dirs.
struct Helm<'a> {
    bin: PathBuf,
    cp: &'a ControlPlane,
    home: tempfile::TempDir,
}

impl<'a> Helm<'a> {
    fn new(cp: &'a ControlPlane) -> Helm<'a> {
        let output =
            Command::new(repo_dir().join("scripts/helm-build.sh")).arg("--bin-dir").output().unwrap();
        let bin = PathBuf::from(String::from_utf8(output.stdout).unwrap().trim()).join("helm");
        assert!(bin.exists(), "{} is missing: make e2e-helm builds it", bin.display());
        Helm { bin, cp, home: tempfile::tempdir().unwrap() }
    }

    fn helm(&self, args: &[&str]) -> Output {
        let home = self.home.path();
        Command::new(&self.bin)
            .args(args)
            .env("KUBECONFIG", self.cp.kubeconfig())
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_DATA_HOME", home.join("data"))
            .output()
            .unwrap()
    }

    /// `helm ARGS`, which must succeed; its stdout.
    fn run(&self, args: &[&str]) -> String {
        let output = self.helm(args);
        assert!(
            output.status.success(),
            "helm {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }
}

/// `kubechain ARGS`, which must succeed; its stdout.
fn kubechain(args: &[&str]) -> String {
    let output = Command::new(kubechain_bin()).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "kubechain {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn chart() -> String {
    repo_dir().join("charts/kubechain-operator").to_str().unwrap().to_string()
}

/// The chart in `dir` with one more printer column in its CRD: a CRD change for `helm upgrade`.
fn chart_with_changed_crd(dir: &Path) -> String {
    let copy = dir.join("kubechain-operator");
    let status = Command::new("cp").arg("-r").arg(chart()).arg(&copy).status().unwrap();
    assert!(status.success());
    let file = copy.join("files/blockchain.kubechain.dev.yaml");
    let mut crd: Value = serde_yaml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let columns = crd["spec"]["versions"][0]["additionalPrinterColumns"].as_array_mut().unwrap();
    columns.push(serde_json::json!({"name": "Upgraded", "type": "string", "jsonPath": ".spec.chainId"}));
    std::fs::write(&file, serde_yaml::to_string(&crd).unwrap()).unwrap();
    copy.to_str().unwrap().to_string()
}

/// `helm install` of `chart` as the operator's release, with `more` arguments.
fn install<'a>(chart: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    [&["install", RELEASE, chart, "-n", OPERATOR_NS, "--create-namespace"][..], more].concat()
}

fn operator_pods(cp: &ControlPlane) -> Vec<Value> {
    let pods = cp.get_json(&["pods", "-n", OPERATOR_NS, "-l", "app.kubernetes.io/name=kubechain-operator"]);
    pods.and_then(|pods| pods["items"].as_array().cloned()).unwrap_or_default()
}

fn env_of(pod: &Value, name: &str) -> Option<String> {
    pod["spec"]["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|env| env["name"] == name)
        .and_then(|env| env["value"].as_str().map(str::to_string))
}

#[test]
fn a_new_user_installs_the_chart_runs_the_example_and_verifies_a_receipt() {
    let cp = ControlPlane::up_with_real_node();
    let helm = Helm::new(&cp);
    let work = tempfile::tempdir().unwrap();
    let chart = chart();

    step("least privilege, in both modes: no wildcard, nothing over pods/exec, Secrets never listed");
    for values in ["rbac.scope=cluster", "rbac.scope=namespaced,rbac.watchNamespaces={ledger}"] {
        let rendered = helm.run(&["template", RELEASE, &chart, "-n", OPERATOR_NS, "--set", values]);
        let rules: Vec<Value> = serde_yaml::Deserializer::from_str(&rendered)
            .filter_map(|document| Value::deserialize(document).ok())
            .filter(|object| object["kind"].as_str().is_some_and(|kind| kind.ends_with("Role")))
            .flat_map(|role| role["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        assert!(rules.len() > 5, "{values}: {rules:?}");
        for rule in &rules {
            let listed = |field: &str| -> Vec<String> {
                rule[field].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
            };
            let (resources, verbs) = (listed("resources"), listed("verbs"));
            for word in listed("apiGroups").iter().chain(&resources).chain(&verbs) {
                assert!(!word.contains('*'), "{values}: a wildcard in {rule}");
            }
            assert!(
                resources
                    .iter()
                    .all(|r| !["pods/exec", "pods/attach", "pods/portforward"].contains(&r.as_str())),
                "{rule}"
            );
            if resources.contains(&"secrets".to_string()) {
                assert!(!verbs.iter().any(|verb| verb == "list" || verb == "watch"), "{values}: {rule}");
            }
        }
    }

    step("a bad value fails the install with its name, and installs nothing");
    let refused = helm.helm(&install(&chart, &["--set", "rbac.scope=everywhere"]));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && said.contains("rbac") && said.contains("scope"), "{said}");
    assert!(helm.run(&["list", "-A", "-q"]).trim().is_empty(), "a release was left behind");

    step("helm install: the operator runs in a pod from its image, with the CRD");
    helm.run(&install(&chart, &["--wait", "--timeout", "4m"]));
    let pods = operator_pods(&cp);
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0]["spec"]["containers"][0]["image"], "kubechain/operator:0.1.0");
    assert_eq!(pods[0]["spec"]["securityContext"]["runAsNonRoot"], true);
    cp.run(&["wait", "--for=condition=Established", "crd/blockchains.kubechain.dev", "--timeout=60s"]);

    step("the README's path: a member key, the example chain with it, Ready");
    let key_file = work.path().join("alice.key");
    let alice = kubechain(&["keygen", "--out", key_file.to_str().unwrap()]).trim().to_string();
    let example = std::fs::read_to_string(repo_dir().join("examples/chain.yaml")).unwrap();
    assert!(example.contains(EXAMPLE_MEMBER_KEY), "the example chain no longer carries a member to replace");
    let applied = cp.apply("default", &example.replace(EXAMPLE_MEMBER_KEY, &alice));
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    cp.run(&["wait", "--for=condition=Ready", &format!("bc/{CHAIN}"), "--timeout=300s"]);

    step("a transaction through the API Service commits; its receipt verifies offline");
    let api = cp.service_url("default", &format!("{CHAIN}-api"));
    let http = fresh_connections();
    let genesis = work.path().join("genesis.json");
    std::fs::write(&genesis, cp.data("default", "configmap", &format!("{CHAIN}-genesis"), "genesis.json"))
        .unwrap();
    let key_file = key_file.to_str().unwrap();
    // The Service was just made: kube-proxy may not route it for a moment, so retry as a user would.
    let submitted = eventually(WAIT, "the first transaction to commit", || {
        let output = Command::new(kubechain_bin())
            .args(["tx", "put", "--key", "shipment-1", "--value", "received"])
            .args(["--key-file", key_file, "--node", &api, "--wait"])
            .output()
            .unwrap();
        output.status.success().then(|| String::from_utf8(output.stdout).unwrap())
    });
    let hash = submitted.split_whitespace().find(|word| word.len() == 64).expect("a transaction hash");
    let receipt = work.path().join("receipt.json");
    // Through the Service, the validator asked may be a block behind the one that committed it.
    kubechain(&["receipt", hash, "--node", &api, "--wait", "30", "--out", receipt.to_str().unwrap()]);
    let verified =
        kubechain(&["verify-receipt", receipt.to_str().unwrap(), "--genesis", genesis.to_str().unwrap()]);
    eprintln!("helm e2e: {}", verified.trim());

    step("helm test");
    helm.run(&["test", RELEASE, "-n", OPERATOR_NS, "--timeout", "3m"]);

    step(
        "helm upgrade with changed values: the operator restarts watching `default` only, with a Role there",
    );
    helm.run(&[
        "upgrade",
        RELEASE,
        &chart,
        "-n",
        OPERATOR_NS,
        "--reuse-values",
        "--set",
        "operator.logLevel=debug,rbac.scope=namespaced,rbac.watchNamespaces={default}",
        "--wait",
        "--timeout",
        "4m",
    ]);
    eventually(WAIT, "one operator pod, with the new values", || {
        let pods = operator_pods(&cp);
        (pods.len() == 1
            && env_of(&pods[0], "KUBECHAIN_OPERATOR_LOG").as_deref() == Some("debug")
            && env_of(&pods[0], "KUBECHAIN_OPERATOR_WATCH_NAMESPACES").as_deref() == Some("default"))
        .then_some(())
    });
    let cluster_roles = cp.run(&["get", "clusterrole", "-o", "name"]);
    assert!(
        !cluster_roles.lines().any(|role| role == "clusterrole.rbac.authorization.k8s.io/kubechain-operator")
    );
    assert!(cp.get_json(&["role", "kubechain-operator", "-n", "default"]).is_some(), "no Role in default");
    // Only the operator can put a spec's member on chain: it still does, with the Role's rights.
    let bob = SigningKey::from_seed([7; 32]).public_key().to_string();
    let patch = format!(
        r#"{{"spec":{{"members":[{{"name":"alice","publicKeys":["{alice}"]}},{{"name":"bob","publicKeys":["{bob}"]}}]}}}}"#
    );
    cp.run(&["patch", "bc", CHAIN, "--type=merge", "-p", &patch]);
    eventually(WAIT, "bob on chain", || {
        let (_, listing) = get_json(&http, &format!("{api}/v1/consortium"))?;
        let members = listing["members"].as_array()?;
        members.iter().any(|member| member["name"] == "bob").then_some(())
    });

    step("helm upgrade with a changed CRD: the cluster's CRD changes too");
    let changed = chart_with_changed_crd(work.path());
    helm.run(&[
        "upgrade",
        RELEASE,
        &changed,
        "-n",
        OPERATOR_NS,
        "--reuse-values",
        "--wait",
        "--timeout",
        "4m",
    ]);
    let crd = cp.get_json(&["crd", "blockchains.kubechain.dev"]).unwrap();
    let columns = crd["spec"]["versions"][0]["additionalPrinterColumns"].as_array().unwrap();
    assert!(columns.iter().any(|column| column["name"] == "Upgraded"), "{columns:?}");
    // The API server serves a changed CRD's table a moment after storing it.
    eventually(WAIT, "the new column in kubectl get", || {
        cp.run(&["get", "bc", CHAIN]).contains("UPGRADED").then_some(())
    });
    // The operator is still in charge of the chain after the upgrades.
    cp.run(&["wait", "--for=condition=Ready", &format!("bc/{CHAIN}"), "--timeout=120s"]);

    step("helm uninstall: the operator goes; the CRD, the chain and its volumes stay");
    helm.run(&["uninstall", RELEASE, "-n", OPERATOR_NS, "--wait", "--timeout", "3m"]);
    eventually(WAIT, "the operator's pods to go", || operator_pods(&cp).is_empty().then_some(()));
    assert!(cp.get_json(&["deploy", "-n", OPERATOR_NS]).unwrap()["items"].as_array().unwrap().is_empty());
    assert!(cp.get_json(&["crd", "blockchains.kubechain.dev"]).is_some(), "the CRD was deleted");
    let chain = cp.get_json(&["bc", CHAIN]).expect("the chain was deleted");
    assert_eq!(condition(&chain, "Ready").map(|(status, _, _)| status).as_deref(), Some("True"));
    let claims = cp.get_json(&["pvc", "-l", &format!("app.kubernetes.io/instance={CHAIN}")]).unwrap();
    assert_eq!(claims["items"].as_array().unwrap().len(), 4, "the chain's volume claims");
    for role in [
        &["clusterrole"][..],
        &["clusterrolebinding"],
        &["role", "-n", "default"],
        &["role", "-n", OPERATOR_NS],
    ] {
        let left = cp.run(&[&["get"], role, &["-o", "name"]].concat());
        assert!(!left.contains("kubechain-operator"), "{role:?} left behind: {left}");
    }
}

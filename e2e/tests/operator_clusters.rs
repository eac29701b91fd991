//! The operator across three real control planes (etcd, kube-apiserver, controller manager,
//! scheduler and a kwok node each, built from Go modules): a hub ("aws", where the operator
//! runs and which holds validators 0 and 1) and two members ("azure", "gcp") reached through
//! kubeconfig Secrets of service accounts with only the permissions
//! `examples/multicloud-member-access.yaml` grants.
//!
//! kwok runs pods on paper, so no validator answers here: this suite checks what the operator
//! does in each cluster (keys, genesis, peer addresses, status, a cluster that hangs, a broken
//! kubeconfig, deletion). `make e2e-multicloud` runs the same example with real validators.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use kubechain_e2e::eventually;
use kubechain_e2e::kube::{
    ControlPlane, annotate_every_placement, edit_reached, join_member, put_kubeconfig_secret, repo_dir,
    volumes,
};
use serde_json::Value;

const NS: &str = "ledger";
const CHAIN: &str = "supply-chain";
const INSTANCE: &str = "app.kubernetes.io/instance=supply-chain";
const WAIT: Duration = Duration::from_secs(120);
const MEMBERS: [&str; 2] = ["azure", "gcp"];

fn step(what: &str) {
    eprintln!("operator clusters e2e: {what}");
}

/// Secret names in the chain's namespace of a cluster.
fn key_secrets(cp: &ControlPlane) -> BTreeSet<String> {
    cp.names(NS, "secrets", &format!("{INSTANCE},app.kubernetes.io/component=validator-key"))
        .into_iter()
        .collect()
}

fn chain(hub: &ControlPlane) -> Value {
    hub.get_json(&["bc", CHAIN, "-n", NS]).unwrap()
}

fn cluster_status<'a>(chain: &'a Value, name: &str) -> &'a Value {
    chain["status"]["clusters"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["name"] == name))
        .unwrap_or(&Value::Null)
}

fn degraded(chain: &Value) -> (String, String) {
    let found =
        chain["status"]["conditions"].as_array().and_then(|all| all.iter().find(|c| c["type"] == "Degraded"));
    found.map_or((String::new(), String::new()), |c| {
        (c["reason"].as_str().unwrap_or_default().into(), c["message"].as_str().unwrap_or_default().into())
    })
}

#[test]
fn one_operator_places_a_chain_across_three_control_planes() {
    step("three control planes, one kwok node each");
    let (hub, members) = std::thread::scope(|scope| {
        let hub = scope.spawn(|| ControlPlane::up(1));
        let members: Vec<_> = MEMBERS.iter().map(|_| scope.spawn(|| ControlPlane::up(1))).collect();
        (hub.join().unwrap(), members.into_iter().map(|m| m.join().unwrap()).collect::<Vec<_>>())
    });
    let crd = repo_dir().join("crds/blockchain.kubechain.dev.yaml");
    hub.run(&["apply", "-f", crd.to_str().unwrap()]);
    hub.run(&["wait", "--for=condition=Established", "crd/blockchains.kubechain.dev", "--timeout=60s"]);
    hub.run(&["create", "namespace", NS]);
    // kwok nodes report no address; a real node reports its own. TEST-NET-1, one per cluster.
    for (octet, cp) in (1..).zip(std::iter::once(&hub).chain(&members)) {
        assert!(cp.apply("default", &volumes(2)).status.success());
        let address =
            format!(r#"{{"status":{{"addresses":[{{"type":"InternalIP","address":"192.0.2.{octet}"}}]}}}}"#);
        cp.run(&["patch", "node", "kwok-node-0", "--subresource=status", "--type=merge", "-p", &address]);
    }

    step("each member grants the hub a service account; its kubeconfig goes into a hub Secret");
    let kubeconfigs: Vec<String> =
        MEMBERS.iter().zip(&members).map(|(name, member)| join_member(&hub, member, name, NS)).collect();
    let log = hub.dir().join("operator.log");
    let mut operator = hub.start_operator(&["--lease-namespace", "default"], &log);

    step("kubectl apply examples/multicloud-chain-local.yaml as written");
    let example = std::fs::read_to_string(repo_dir().join("examples/multicloud-chain-local.yaml")).unwrap();
    let applied = hub.apply(NS, &example);
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));

    step("each key exists only in the cluster that runs its validator");
    let by_cluster = [(&hub, vec![0, 1]), (&members[0], vec![2]), (&members[1], vec![3])];
    for (cp, indices) in &by_cluster {
        let expected: BTreeSet<String> =
            indices.iter().map(|i| format!("{CHAIN}-validator-{i}-key")).collect();
        eventually(WAIT, &format!("key Secrets {expected:?}"), || {
            (key_secrets(cp) == expected).then_some(())
        });
        let stateful_sets: BTreeSet<String> =
            indices.iter().map(|i| format!("{CHAIN}-validator-{i}")).collect();
        eventually(WAIT, &format!("StatefulSets {stateful_sets:?}"), || {
            (cp.names(NS, "statefulsets", INSTANCE).into_iter().collect::<BTreeSet<_>>() == stateful_sets)
                .then_some(())
        });
    }
    for member in &members {
        assert!(
            member
                .names(NS, "secrets", &format!("{INSTANCE},app.kubernetes.io/component=admin-key"))
                .is_empty()
        );
    }

    step("genesis and the peer list are the same in every cluster, and list node addresses");
    let genesis_hash = eventually(WAIT, "the genesis hash in the status", || {
        chain(&hub)["status"]["genesisHash"].as_str().map(str::to_string)
    });
    let peers = |cp: &ControlPlane| {
        cp.get_json(&["configmap", &format!("{CHAIN}-peers"), "-n", NS])
            .map(|c| c["data"]["peers.yaml"].clone())
    };
    let peers_yaml = eventually(WAIT, "the peers ConfigMap in the hub", || peers(&hub));
    for cp in &members {
        let genesis = eventually(WAIT, "a genesis copy", || {
            cp.get_json(&["configmap", &format!("{CHAIN}-genesis"), "-n", NS])
        });
        assert_eq!(genesis["metadata"]["annotations"]["kubechain.dev/genesis-hash"], genesis_hash.as_str());
        let copy = eventually(WAIT, "the peers ConfigMap in a member", || peers(cp));
        assert_eq!(copy, peers_yaml, "the peer lists differ");
    }
    let peers_yaml = peers_yaml.as_str().unwrap();
    let chain_now = eventually(WAIT, "every cluster's endpoints in the status", || {
        let chain = chain(&hub);
        let complete = ["aws", "azure", "gcp"].iter().all(|name| {
            let cluster = cluster_status(&chain, name);
            cluster["reachable"] == true
                && cluster["endpoints"].as_array().is_some_and(|e| !e.is_empty() && e.iter().all(|a| a != ""))
        });
        complete.then_some(chain)
    });
    for name in ["aws", "azure", "gcp"] {
        for endpoint in cluster_status(&chain_now, name)["endpoints"].as_array().unwrap() {
            let endpoint = endpoint.as_str().unwrap();
            assert!(peers_yaml.contains(endpoint), "{endpoint} of {name} not in the peer list: {peers_yaml}");
            let port: u16 = endpoint.rsplit_once(':').unwrap().1.parse().unwrap();
            assert!((30000..=32767).contains(&port), "{endpoint} is not a node port");
        }
    }
    assert_eq!(cluster_status(&chain_now, "aws")["validators"], serde_json::json!([0, 1]));
    for (name, octet) in [("aws", 1), ("azure", 2), ("gcp", 3)] {
        let endpoints = cluster_status(&chain_now, name)["endpoints"].to_string();
        assert!(endpoints.contains(&format!("\"192.0.2.{octet}:")), "{name} advertises {endpoints}");
    }
    let policy = hub.get_json(&["networkpolicy", &format!("{CHAIN}-validators"), "-n", NS]).unwrap();
    assert!(
        policy["spec"]["ingress"][0]["from"].as_array().unwrap().len() >= 2,
        "peers admitted by address: {policy}"
    );

    step("a member's API server hangs: ClusterUnreachable names it, the others still get edits");
    members[1].freeze_api_server(true);
    let unreachable = eventually(WAIT, "ClusterUnreachable naming gcp", || {
        let chain = chain(&hub);
        let (reason, message) = degraded(&chain);
        (reason == "ClusterUnreachable" && message.contains("cluster gcp")).then_some(chain)
    });
    assert_eq!(cluster_status(&unreachable, "gcp")["reachable"], false);
    assert_eq!(cluster_status(&unreachable, "azure")["reachable"], true);
    annotate_every_placement(&hub, NS, CHAIN, 3);
    let edited = |cp: &ControlPlane, index: u32| edit_reached(cp, NS, CHAIN, index);
    eventually(WAIT, "the edit in aws and azure while gcp hangs", || {
        (edited(&hub, 0) && edited(&members[0], 2)).then_some(())
    });
    members[1].freeze_api_server(false);
    eventually(WAIT, "gcp back: reachable, the edit applied there", || {
        let chain = chain(&hub);
        (cluster_status(&chain, "gcp")["reachable"] == true && edited(&members[1], 3)).then_some(())
    });
    eventually(WAIT, "Degraded no longer about an unreachable cluster", || {
        (degraded(&chain(&hub)).0 != "ClusterUnreachable").then_some(())
    });

    step("a changed kubeconfig Secret rebuilds the member's client");
    let broken = kubeconfigs[0].replace("token: ", "token: x");
    put_kubeconfig_secret(&hub, "azure", NS, &broken);
    eventually(WAIT, "azure unreachable with the broken token", || {
        let chain = chain(&hub);
        (cluster_status(&chain, "azure")["reachable"] == false).then_some(())
    });
    put_kubeconfig_secret(&hub, "azure", NS, &kubeconfigs[0]);
    eventually(WAIT, "azure reachable again", || {
        (cluster_status(&chain(&hub), "azure")["reachable"] == true).then_some(())
    });

    step("delete the chain while gcp hangs: retried until gcp is clean, claims kept");
    members[1].freeze_api_server(true);
    hub.run(&["delete", "bc", CHAIN, "-n", NS, "--wait=false"]);
    eventually(WAIT, "a CleanupPending event naming gcp", || {
        let events = hub.get_json(&["events", "-n", NS, "--field-selector", "reason=CleanupPending"])?;
        events["items"]
            .as_array()?
            .iter()
            .any(|e| {
                e["note"].as_str().unwrap_or_default().contains("cluster gcp")
                    || e["message"].as_str().unwrap_or_default().contains("cluster gcp")
            })
            .then_some(())
    });
    assert!(hub.get_json(&["bc", CHAIN, "-n", NS]).is_some(), "the finalizer let go while gcp held objects");
    eventually(WAIT, "azure cleaned up", || {
        members[0].names(NS, "statefulsets", INSTANCE).is_empty().then_some(())
    });
    members[1].freeze_api_server(false);
    eventually(WAIT, "the Blockchain gone", || {
        hub.get_json(&["bc", CHAIN, "-n", NS]).is_none().then_some(())
    });
    for (cp, name) in members.iter().zip(MEMBERS) {
        for kind in
            ["statefulsets", "services", "configmaps", "secrets", "poddisruptionbudgets", "networkpolicies"]
        {
            assert!(cp.names(NS, kind, INSTANCE).is_empty(), "{kind} of the chain left in {name}");
        }
        assert_eq!(cp.names(NS, "pvc", INSTANCE).len(), 1, "{name}'s volume claim must be kept");
    }
    assert!(operator.is_running(), "the operator died; log: {}", log.display());
    operator.stop();
    let log_text = std::fs::read_to_string(&log).unwrap();
    for kubeconfig in &kubeconfigs {
        let token = kubeconfig.lines().find_map(|l| l.trim().strip_prefix("token: ")).unwrap();
        assert!(!log_text.contains(token), "a member's token is in the operator's log");
    }
}

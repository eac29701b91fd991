//! The product on a real node: a real control plane plus kubelet, containerd, kube-proxy, CoreDNS
//! and local-path volumes (scripts/cluster.sh --kubelet), the operator running in a pod from its
//! image, and the example chain's validators running in pods from the node image, finding each
//! other through the Services and DNS names the operator made. Driven with kubectl, the kubechain
//! CLI and plain HTTP through the Services, as a user would. Needs root, like the node itself.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use kubechain_api::{NodeStatus, Readiness};
use kubechain_e2e::kube::{ControlPlane, condition, repo_dir, sibling_bin};
use kubechain_e2e::{
    Account, CAUGHT_UP, STARTING_NODE, committed_at, eventually, fresh_connections, get_as, get_json,
    log_fields, submit_to,
};
use kubechain_types::{AdminOperation, Operation, SigningKey, keyfile};
use serde_json::Value;

const NS: &str = "ledger";
const CHAIN: &str = "trade-ledger";
const INSTANCE: &str = "app.kubernetes.io/instance=trade-ledger";
const WAIT: Duration = Duration::from_secs(180);
/// Longest a transaction may take to commit while one validator is away: room for a view change
/// (the one away may have been the primary), well inside the stall window.
const COMMIT_PATIENCE: Duration = Duration::from_secs(8);
const NODE: &str = "kc-node";

fn step(what: &str) {
    eprintln!("kubelet e2e: {what}");
}

fn pod_url(cp: &ControlPlane, index: usize) -> Option<String> {
    cp.pod_url(NS, &pod_name(index))
}

fn height_at(client: &reqwest::blocking::Client, url: &str) -> Option<u64> {
    let (code, status) = get_as::<NodeStatus>(client, &format!("{url}/v1/status"))?;
    (code == 200).then_some(status.height)
}

fn chain(cp: &ControlPlane) -> Value {
    cp.get_json(&["bc", CHAIN, "-n", NS]).unwrap()
}

fn wait_condition(cp: &ControlPlane, type_: &str, status: &str) {
    cp.wait_json(&["bc", CHAIN, "-n", NS], WAIT, &format!("{type_}={status}"), |chain| {
        condition(chain, type_).filter(|(s, _, _)| s == status)
    });
}

#[test]
fn the_example_chain_runs_in_real_pods() {
    let cp = ControlPlane::up_with_real_node();
    let client = fresh_connections();

    step("install the CRD and the operator (in a pod, from its image)");
    cp.install_operator();

    step("kubectl apply the example: validators in pods, volumes bound, chain Ready");
    cp.run(&["create", "namespace", NS]);
    let applied_at = Instant::now();
    let example = std::fs::read_to_string(repo_dir().join("examples/chain.yaml")).unwrap();
    assert!(cp.apply(NS, &example).status.success());
    cp.run(&["wait", "--for=condition=Ready", &format!("bc/{CHAIN}"), "-n", NS, "--timeout=240s"]);
    let ready_after = applied_at.elapsed();
    let pods = cp.get_json(&["pods", "-n", NS, "-l", INSTANCE]).unwrap();
    let pods = pods["items"].as_array().unwrap();
    assert_eq!(pods.len(), 4);
    for pod in pods {
        assert_eq!(pod["status"]["phase"], "Running");
        assert_eq!(pod["spec"]["containers"][0]["image"], "kubechain/node:0.1.0");
    }
    let claims = cp.get_json(&["pvc", "-n", NS, "-l", INSTANCE]).unwrap();
    let phases: Vec<&str> =
        claims["items"].as_array().unwrap().iter().map(|c| c["status"]["phase"].as_str().unwrap()).collect();
    assert_eq!(phases, vec!["Bound"; 4]);
    let columns = cp.run(&["get", "bc", CHAIN, "-n", NS]);
    assert!(columns.lines().nth(1).unwrap().contains("4/4"), "{columns}");

    step("transactions through the Services commit, and their receipts verify offline");
    let genesis_json = cp.data(NS, "configmap", &format!("{CHAIN}-genesis"), "genesis.json");
    let work = tempfile::tempdir().unwrap();
    let genesis_path = work.path().join("genesis.json");
    std::fs::write(&genesis_path, &genesis_json).unwrap();
    let chain_id =
        serde_json::from_str::<Value>(&genesis_json).unwrap()["chain_id"].as_str().unwrap().to_string();
    let admin_key =
        keyfile::from_json(cp.data(NS, "secret", &format!("{CHAIN}-admin-key"), "admin.key").as_bytes())
            .unwrap();
    let api = cp.service_url(NS, &format!("{CHAIN}-api"));
    let mut admin = Account::on_chain(admin_key.clone(), &chain_id);
    let member_key = SigningKey::from_seed([42; 32]);
    let add = admin.sign(vec![Operation::Admin(AdminOperation::AddMember {
        name: "acme".into(),
        public_keys: vec![member_key.public_key()],
    })]);
    // The Service was just made: kube-proxy may not route it for a moment, so retry as a client would.
    submit_retrying(&client, &api, &add);
    let first =
        eventually(WAIT, "the first transaction to commit", || committed_at(&client, &api, &add.hash()));
    let first_block_after = applied_at.elapsed();
    let mut member = Account::on_chain(member_key, &chain_id);
    let put = member.put("shipment-1", b"received");
    let validator_2 = pod_url(&cp, 2).unwrap();
    submit_retrying(&client, &validator_2, &put);
    let committed =
        eventually(WAIT, "the member's transaction", || committed_at(&client, &validator_2, &put.hash()));
    assert!(committed.height > first.height);
    // From the validator that reported the commit: behind the client Service, another may be a
    // block behind for a moment.
    let receipt = work.path().join("receipt.json");
    let kubechain = sibling_bin("kubechain");
    run(Command::new(&kubechain)
        .args(["receipt", &put.hash().to_string(), "--node", &validator_2, "--out"])
        .arg(&receipt));
    run(Command::new(&kubechain).args(["verify-receipt", "--genesis"]).arg(&genesis_path).arg(&receipt));
    cp.wait_json(&["bc", CHAIN, "-n", NS], WAIT, "the operator to show the new height", |chain| {
        (chain["status"]["height"].as_u64()? >= committed.height).then_some(())
    });

    step("pods run as non-root with a read-only root filesystem");
    let processes = validator_processes();
    assert_eq!(processes.len(), 4, "validator processes on the host: {processes:?}");
    for pid in &processes {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid =
            status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap().split_whitespace().next().unwrap();
        assert_eq!(uid, "10001", "validator pid {pid} runs as uid {uid}");
        assert!(root_is_read_only(*pid), "validator pid {pid} has a writable root filesystem");
    }

    step("delete one validator pod: it comes back from its volume and catches up; commits go on");
    shorten_stall_window(&cp);
    let before = pod_uid(&cp, 1);
    // Validator-1 may be a block behind the one that reported the commit: wait until it holds
    // the member's block, so the restart has something of its own to recover.
    let restarted_from = eventually(WAIT, "validator-1 to hold the member's block", || {
        height_at(&client, &pod_url(&cp, 1)?).filter(|h| *h >= committed.height)
    });
    cp.run(&["delete", "pod", &pod_name(1), "-n", NS, "--wait=false"]);
    // The chain never stops committing: transaction after transaction commits, each within the
    // time of a view change (the one away may have been the primary), until the new pod is
    // Ready. They go to a survivor's own pod: the client Service may still route to the leaving
    // pod for a moment, and a client waiting on it would measure that, not the chain.
    let validator_0 = pod_url(&cp, 0).unwrap();
    let started = Instant::now();
    let mut commits_while_away: Vec<(u64, Duration)> = Vec::new();
    loop {
        let tx = member.put(&format!("while-away-{}", commits_while_away.len()), b"in transit");
        let sent = Instant::now();
        submit_retrying(&client, &validator_0, &tx);
        let commit = eventually(COMMIT_PATIENCE, "a commit while a validator is away", || {
            committed_at(&client, &validator_0, &tx.hash())
        });
        commits_while_away.push((commit.height, sent.elapsed()));
        if pod_ready(&cp, 1).is_some_and(|uid| uid != before) {
            break;
        }
        if started.elapsed() > WAIT {
            let readyz = pod_url(&cp, 1).and_then(|url| get_json(&client, &format!("{url}/v1/status")));
            panic!("validator-1's pod did not come back Ready; its status: {readyz:?}");
        }
    }
    let slowest = commits_while_away.iter().map(|(_, took)| *took).max().unwrap();
    let during_commit = commits_while_away.last().unwrap().0;
    assert!(commits_while_away.len() >= 2, "{commits_while_away:?}");
    eprintln!(
        "kubelet e2e: {} commits while validator-1 was away, the slowest in {} ms",
        commits_while_away.len(),
        slowest.as_millis()
    );
    let logs = cp.run(&["logs", &pod_name(1), "-n", NS]);
    let started_at = log_fields(&logs)
        .iter()
        .find_map(|fields| (fields["message"] == STARTING_NODE).then(|| fields["height"].as_u64()).flatten());
    assert!(
        started_at.is_some_and(|height| height >= restarted_from),
        "restarted from height {started_at:?}, but held {restarted_from} before the pod was deleted"
    );
    eventually(WAIT, "the restarted validator to catch up", || {
        height_at(&client, &pod_url(&cp, 1)?).filter(|h| *h >= during_commit)
    });

    step("a validator that is behind stays out of the client Service until it has caught up");
    let admin_file = work.path().join("admin.key");
    std::fs::write(&admin_file, keyfile::to_json(&admin_key)).unwrap();
    std::fs::set_permissions(&admin_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    cp.run(&["cordon", NODE]);
    cp.run(&["delete", "pod", &pod_name(3), "-n", NS, "--wait=true"]);
    let survivor = pod_url(&cp, 0).unwrap();
    let left_at = height_at(&client, &survivor).unwrap();
    // Load the other three, so the returning validator has blocks to fetch and replay.
    let load = bench(&kubechain, &cp, &[0, 1, 2], &admin_file, &genesis_path, (30_000, 1));
    assert!(load.status.success(), "{}", String::from_utf8_lossy(&load.stderr));
    let tip = height_at(&client, &survivor).unwrap();
    assert!(tip > left_at, "the chain moved on without validator-3");
    cp.run(&["uncordon", NODE]);
    let returning = eventually(WAIT, "validator-3's new pod to get an address", || pod_url(&cp, 3));
    // Its /readyz as fast as HTTP goes, and the client Service as fast as kubectl goes, until the
    // Service holds it. /readyz reports the height its answer was based on.
    let done = AtomicBool::new(false);
    let (samples, listed_at) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut samples: Vec<(u16, u64)> = Vec::new();
            while !done.load(Relaxed) {
                if let Some((code, readyz)) = get_as::<Readiness>(&client, &format!("{returning}/readyz")) {
                    samples.push((code, readyz.height));
                }
            }
            samples
        });
        // A failed wait must end the sampler too, or the scope would wait for it forever.
        let _stop_sampling = kubechain_e2e::poll::StopOnDrop(&done);
        eventually(WAIT, "validator-3 in the client Service", || {
            ready_api_endpoints(&cp).contains(&pod_name(3)).then_some(())
        });
        let listed_at = height_at(&client, &returning);
        done.store(true, Relaxed);
        (sampler.join().unwrap(), listed_at)
    });
    let held_back = samples.iter().filter(|(code, height)| *code == 503 && *height < tip).count();
    let ready_behind: Vec<_> =
        samples.iter().filter(|(code, height)| *code == 200 && *height < tip).collect();
    eprintln!(
        "kubelet e2e: validator-3 returned {} blocks behind; {} of {} /readyz answers said 503 while behind",
        tip - left_at,
        held_back,
        samples.len()
    );
    assert!(held_back > 0, "never saw validator-3 held back while behind: {samples:?}");
    assert!(ready_behind.is_empty(), "ready while behind tip {tip}: {ready_behind:?}");
    assert!(listed_at.is_some_and(|height| height >= tip), "listed at height {listed_at:?}, tip {tip}");
    let logs = cp.run(&["logs", &pod_name(3), "-n", NS]);
    let caught_up_at = log_fields(&logs)
        .iter()
        .find_map(|fields| (fields["message"] == CAUGHT_UP).then(|| fields["height"].as_u64()).flatten());
    assert!(caught_up_at.is_some_and(|height| height >= tip), "caught up at {caught_up_at:?}, tip {tip}");

    step("two of four validators down: QuorumAtRisk and ChainStalled, cleared when they return");
    cp.run(&["cordon", NODE]);
    for index in [2, 3] {
        cp.run(&["delete", "pod", &pod_name(index), "-n", NS, "--wait=true"]);
    }
    wait_condition(&cp, "QuorumAtRisk", "True");
    // Two validators cannot reach a quorum: their readiness probes fail, and the client Service
    // holds none of them (the peer Services still do, so they can find each other again).
    eventually(WAIT, "the client Service to hold no ready validator", || {
        ready_api_endpoints(&cp).is_empty().then_some(())
    });
    let (code, readyz) = get_as::<Readiness>(&client, &format!("{survivor}/readyz")).unwrap();
    assert_eq!((code, readyz.ready), (503, false), "{readyz:?}");
    let stuck = member.put("shipment-3", b"delayed");
    assert_eq!(submit_to(&client, &survivor, &stuck), Some(202));
    wait_condition(&cp, "ChainStalled", "True");
    assert!(committed_at(&client, &survivor, &stuck.hash()).is_none(), "committed without a quorum");
    cp.run(&["uncordon", NODE]);
    wait_condition(&cp, "Ready", "True");
    let chain = chain(&cp);
    for type_ in ["QuorumAtRisk", "ChainStalled"] {
        assert_eq!(condition(&chain, type_).unwrap().0, "False", "{type_}: {chain}");
    }
    eventually(WAIT, "the delayed transaction to commit", || committed_at(&client, &api, &stuck.hash()));
    eventually(WAIT, "all four validators back in the client Service", || {
        (ready_api_endpoints(&cp).len() == 4).then_some(())
    });

    step("no key material in the pods' logs");
    let mut logs = cp.run(&["logs", "-n", "kubechain-system", "deploy/kubechain-operator"]);
    for index in 0..4 {
        logs.push_str(&cp.run(&["logs", &pod_name(index), "-n", NS]));
    }
    let mut secrets = vec![admin_key];
    let mut encoded = Vec::new();
    for index in 0..4 {
        let name = format!("{CHAIN}-validator-{index}-key");
        let file = cp.data(NS, "secret", &name, "validator.key");
        secrets.push(keyfile::from_json(file.as_bytes()).unwrap());
        // The Secret's own base64 of the key file.
        encoded.push(cp.run(&["get", "secret", &name, "-n", NS, "-o", "jsonpath={.data.validator\\.key}"]));
    }
    for key in &secrets {
        let seed = hex::encode(key.seed());
        for needle in [seed.clone(), seed.to_uppercase()] {
            assert!(!logs.contains(&needle), "a private key is in the logs");
        }
    }
    for needle in &encoded {
        assert!(needle.len() > 40 && !logs.contains(needle.as_str()), "a key Secret's data is in the logs");
    }

    step("measure: committed tx/s through the validators' Services");
    // A figure to watch, not a target: printed for the notes.
    let bench = bench(&kubechain, &cp, &[0, 1, 2, 3], &admin_file, &genesis_path, (20_000, 5));
    // The numbers are not asserted; that every transaction commits is.
    assert!(bench.status.success(), "bench failed: {}", String::from_utf8_lossy(&bench.stderr).trim());
    let summary = String::from_utf8_lossy(&bench.stdout).lines().last().unwrap_or_default().to_string();
    eprintln!(
        "kubelet e2e: measured: Ready {:.1} s and first block {:.1} s after kubectl apply; bench {summary}",
        ready_after.as_secs_f64(),
        first_block_after.as_secs_f64(),
    );

    step("tear down: no processes, mounts, links or iptables chains left");
    let dir = cp.down();
    let dir = dir.to_str().unwrap();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(dir), "mounts left under {dir}");
    let links = run(Command::new("ip").args(["-o", "link", "show"]));
    assert!(!links.contains("kc-node0") && !links.contains("kc-cni0"), "links left: {links}");
    for save in ["iptables-save", "ip6tables-save"] {
        let rules = run(&mut Command::new(save));
        assert!(!rules.contains("KUBE-") && !rules.contains("CNI-"), "{save}: chains left");
    }
    let left = processes_running(dir);
    assert!(left.is_empty(), "processes left: {left:?}");
    let cgroups: Vec<_> = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .filter_map(|hierarchy| Some(hierarchy.ok()?.path().join("kubechain")))
        .chain([Path::new("/sys/fs/cgroup/kubechain").to_path_buf()]) // cgroup v2 alone
        .filter(|root| root.exists())
        .collect();
    assert!(cgroups.is_empty(), "pod cgroups left: {cgroups:?}");
    assert!(validator_processes().is_empty(), "validator containers left");
}

/// Submits as a client would: a Service may not be routed yet, or still route to a validator
/// that is leaving (503 while it shuts down), so retry; 409 means an earlier try got through.
fn submit_retrying(client: &reqwest::blocking::Client, url: &str, tx: &kubechain_types::Transaction) {
    eventually(WAIT, "the transaction to be accepted", || {
        matches!(submit_to(client, url, tx), Some(202 | 409)).then_some(())
    });
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("run a command");
    assert!(output.status.success(), "{command:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// `kubechain bench` through the Services of the validators `indices`: `transactions` as fast as
/// they go, then `seconds` at half that rate.
fn bench(
    kubechain: &Path,
    cp: &ControlPlane,
    indices: &[usize],
    admin_key: &Path,
    genesis: &Path,
    (transactions, seconds): (usize, u64),
) -> std::process::Output {
    let mut bench = Command::new(kubechain);
    bench.arg("bench");
    for index in indices {
        bench.args(["--node", &pod_url(cp, *index).expect("a validator's address")]);
    }
    bench.arg("--admin-key").arg(admin_key).arg("--genesis").arg(genesis);
    bench.args(["--transactions", &transactions.to_string(), "--latency-seconds", &seconds.to_string()]);
    bench.output().unwrap()
}

/// Pods listed as ready behind the client Service `{chain}-api`.
fn ready_api_endpoints(cp: &ControlPlane) -> Vec<String> {
    let selector = format!("kubernetes.io/service-name={CHAIN}-api");
    let slices = cp.get_json(&["endpointslices", "-n", NS, "-l", &selector]).unwrap();
    slices["items"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|slice| slice["endpoints"].as_array().cloned().unwrap_or_default())
        .filter(|endpoint| endpoint["conditions"]["ready"] == true)
        .filter_map(|endpoint| endpoint["targetRef"]["name"].as_str().map(str::to_string))
        .collect()
}

fn pod_name(index: usize) -> String {
    format!("{CHAIN}-validator-{index}-0")
}

fn pod_uid(cp: &ControlPlane, index: usize) -> String {
    let pod = cp.get_json(&["pod", &pod_name(index), "-n", NS]).unwrap();
    pod["metadata"]["uid"].as_str().unwrap().to_string()
}

/// The uid of validator `index`'s pod if it is Ready.
fn pod_ready(cp: &ControlPlane, index: usize) -> Option<String> {
    let pod = cp.get_json(&["pod", &pod_name(index), "-n", NS])?;
    let ready =
        pod["status"]["conditions"].as_array()?.iter().any(|c| c["type"] == "Ready" && c["status"] == "True");
    ready.then(|| pod["metadata"]["uid"].as_str().map(str::to_string)).flatten()
}

/// Host PIDs of the containers' `kubechain node run` processes.
fn validator_processes() -> Vec<u32> {
    processes_running("node run --config /etc/kubechain/config/node.yaml")
}

/// Host PIDs whose command line (arguments joined by spaces) contains `text`.
fn processes_running(text: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " ").contains(text))
        })
        .collect()
}

/// The process's `/` is mounted read-only (seen from its own mount namespace).
fn root_is_read_only(pid: u32) -> bool {
    let mounts = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("mounts")).unwrap();
    let roots: Vec<&str> =
        mounts.lines().filter(|line| line.split_whitespace().nth(1) == Some("/")).collect();
    !roots.is_empty()
        && roots.iter().all(|line| {
            line.split_whitespace().nth(3).is_some_and(|options| options.split(',').any(|o| o == "ro"))
        })
}

/// The smallest stall window, so a stall shows within the test's patience.
fn shorten_stall_window(cp: &ControlPlane) {
    let patch = r#"{"spec":{"chainStalledAfterSeconds":10}}"#;
    cp.run(&["patch", "bc", CHAIN, "-n", NS, "--type=merge", "-p", patch]);
}

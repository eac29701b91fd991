//! The monitoring mixin (monitoring/) against a real Prometheus, Debian's package, installed by
//! `make setup`. The operator runs the example chain on a real control plane (kwok nodes, so its
//! validators run as processes from the operator's keys and genesis, as in the operator suite),
//! under load. Prometheus scrapes the operator and the validators, these with the target labels
//! the chart's PodMonitor gives (`chain`, `pod`, `namespace`). Then:
//! - Prometheus loads the mixin's rule file and evaluates every rule without error;
//! - every expression of every dashboard panel and variable, every recording rule and every
//!   alert's signal returns series, and every alert expression runs;
//! - a healthy chain fires nothing, and a validator stopped makes QuorumAtRisk and
//!   ValidatorDown pending for it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kubechain_e2e::kube::{ControlPlane, repo_dir, volumes};
use kubechain_e2e::load::Apis;
use kubechain_e2e::{Account, Load, committed_at, eventually, submit_to};
use kubechain_types::{AdminOperation, Operation, SigningKey, keyfile};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(120);
const NS: &str = "ledger";
/// The example chain (examples/chain.yaml), and the `chain` label its scrape gets (the
/// Blockchain's name, as the chart's PodMonitor sets it).
const CHAIN: &str = "trade-ledger";

fn step(what: &str) {
    eprintln!("monitoring e2e: {what}");
}

struct Prometheus {
    child: Child,
    url: String,
    http: reqwest::blocking::Client,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Prometheus on a free loopback port with `config`, and waits until it is ready.
    fn start(dir: &std::path::Path, config: &Value) -> Prometheus {
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, serde_yaml::to_string(config).unwrap()).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus (installed by `make setup`)");
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        let prometheus = Prometheus { child, url: format!("http://127.0.0.1:{port}"), http };
        eventually(Duration::from_secs(60), "Prometheus ready", || {
            let ready = prometheus.http.get(format!("{}/-/ready", prometheus.url)).send().ok()?;
            ready.status().is_success().then_some(())
        });
        prometheus
    }

    /// `GET /api/v1/PATH` with `query`: the `data` of a successful answer, else the error.
    fn api(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, String> {
        let response = self
            .http
            .get(format!("{}/api/v1/{path}", self.url))
            .query(query)
            .send()
            .map_err(|error| error.to_string())?;
        let body: Value = response.json().map_err(|error| error.to_string())?;
        match body["status"].as_str() {
            Some("success") => Ok(body["data"].clone()),
            _ => Err(format!("{}: {}", body["errorType"], body["error"])),
        }
    }

    /// The series an instant query returns.
    fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let data = self.api("query", &[("query", expr)])?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// Alerts pending or firing, as (name, chain label, state).
    fn alerts(&self) -> Vec<(String, String, String)> {
        let data = self.api("alerts", &[]).unwrap();
        data["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|alert| {
                let label = |name: &str| alert["labels"][name].as_str().unwrap_or_default().to_string();
                (label("alertname"), label("chain"), alert["state"].as_str().unwrap().to_string())
            })
            .collect()
    }
}

/// A free loopback port below the ephemeral range (a released ephemeral port may be taken as
/// another connection's source port before Prometheus binds it).
fn free_port() -> u16 {
    (0..1000u32)
        .map(|attempt| 20_000 + ((std::process::id() * 7 + attempt * 13) % 10_000) as u16)
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port")
}

/// Grafana's variables as a dashboard would fill them in.
fn as_grafana_runs_it(expr: &str) -> String {
    expr.replace("$chain", CHAIN).replace("$pod", ".*").replace("$__rate_interval", "1m")
}

#[test]
fn every_query_of_the_mixin_runs_on_a_real_prometheus() {
    step("the operator on a real control plane: the example chain, and one it refuses (a planted key)");
    let cp = ControlPlane::up(2);
    let crd = repo_dir().join("crds/blockchain.kubechain.dev.yaml");
    cp.run(&["apply", "-f", crd.to_str().unwrap()]);
    cp.run(&["wait", "--for=condition=Established", "crd/blockchains.kubechain.dev", "--timeout=60s"]);
    cp.run(&["create", "namespace", NS]);
    assert!(cp.apply("default", &volumes(4)).status.success());
    // Distinct per process, so runs side by side use different addresses.
    let octet = (1 + std::process::id() % 254) as u8;
    let template = format!("http://127.77.{{index}}.{octet}:8080");
    let operator_args = ["--node-url-template", &template, "--lease-namespace", "default"];
    let operator = cp.start_operator(&operator_args, &cp.dir().join("operator.log"));
    let example = std::fs::read_to_string(repo_dir().join("examples/chain.yaml")).unwrap();
    assert!(cp.apply(NS, &example).status.success());
    let planted = json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sneaky-admin-key"},
        "stringData": {"admin.key": String::from_utf8(keyfile::to_json(&SigningKey::from_seed([66; 32]))).unwrap()},
    });
    assert!(cp.apply(NS, &planted.to_string()).status.success());
    let sneaky = "apiVersion: kubechain.dev/v1alpha1\nkind: Blockchain\nmetadata:\n  name: sneaky\nspec:\n  chainId: sneaky-1\n  validators: 1\n  image: kubechain/node:0.1.0\n";
    assert!(cp.apply(NS, sneaky).status.success());
    let operator_address = eventually(WAIT, "the operator serves metrics", || operator.metrics_address());

    step("its validators as processes (kwok runs pods on paper), under load from a member the admin adds");
    cp.wait_json(&["configmap", &format!("{CHAIN}-genesis"), "-n", NS], WAIT, "the genesis", |_| Some(()));
    let (devnet, admin, _) = cp.validators_made_for(NS, CHAIN, 4, octet);
    let cluster = Arc::new(Mutex::new(devnet));
    cluster.lock().unwrap().start_all();
    let chain_id = cluster.lock().unwrap().genesis.chain_id.clone();
    let member = SigningKey::from_seed([7; 32]);
    let mut admin = Account::on_chain(admin, &chain_id);
    let add = admin.sign(vec![Operation::Admin(AdminOperation::AddMember {
        name: "loader".into(),
        public_keys: vec![member.public_key()],
    })]);
    let (http, api) = {
        let cluster = cluster.lock().unwrap();
        (cluster.http().clone(), cluster.validators[0].api())
    };
    eventually(WAIT, "the admin transaction accepted", || {
        (submit_to(&http, &api, &add) == Some(202)).then_some(())
    });
    eventually(WAIT, "the member added", || committed_at(&http, &api, &add.hash()));
    let running = cluster.clone();
    let apis: Apis = Arc::new(move || running.lock().unwrap().running_apis());
    let load =
        Load::over(apis, http.clone(), vec![Account::on_chain(member, &chain_id)], Duration::from_millis(20));
    let stranger = Account::on_chain(SigningKey::from_seed([9; 32]), &chain_id).put("k", b"v");
    assert_eq!(submit_to(&http, &api, &stranger), Some(403), "a key that is no member's is refused");

    step("Prometheus scrapes both, with the mixin's rules");
    let validators: Vec<Value> = {
        let cluster = cluster.lock().unwrap();
        cluster
            .validators
            .iter()
            .map(|validator| {
                json!({
                    "targets": [validator.listening.unwrap().api.to_string()],
                    "labels": {"chain": CHAIN, "pod": format!("{CHAIN}-validator-{}-0", validator.index), "namespace": NS},
                })
            })
            .collect()
    };
    let rules = repo_dir().join("monitoring/prometheus/kubechain-rules.yaml");
    let config = json!({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [rules.to_str().unwrap()],
        "scrape_configs": [
            {"job_name": "kubechain", "static_configs": validators},
            {"job_name": "kubechain-operator", "static_configs": [{"targets": [operator_address]}]},
        ],
    });
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::start(dir.path(), &config);

    step("every rule loads and evaluates without error");
    let groups = eventually(WAIT, "both rule groups evaluated", || {
        let groups = prometheus.api("rules", &[]).ok()?["groups"].as_array().cloned()?;
        let evaluated = groups.iter().flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default());
        (groups.len() == 2 && evaluated.clone().all(|rule| rule["lastEvaluation"] != "0001-01-01T00:00:00Z"))
            .then_some(groups)
    });
    let rules: Vec<Value> = groups.iter().flat_map(|g| g["rules"].as_array().cloned().unwrap()).collect();
    assert_eq!(
        rules.len(),
        kubechain_monitoring::rules::RECORDINGS.len() + kubechain_monitoring::rules::ALERTS.len()
    );
    for rule in &rules {
        assert_eq!(rule["health"], "ok", "{rule}");
    }

    step("every query runs; every one but whole alert expressions returns series");
    let queries = kubechain_monitoring::queries();
    for query in &queries {
        let expr = as_grafana_runs_it(&query.expr);
        if query.has_series {
            eventually(WAIT, &format!("series for {} ({expr})", query.origin), || {
                prometheus.query(&expr).ok().filter(|series| !series.is_empty())
            });
        } else {
            prometheus.query(&expr).unwrap_or_else(|error| panic!("{}: {expr}: {error}", query.origin));
        }
    }
    eprintln!("monitoring e2e: {} queries checked", queries.len());

    step("a healthy chain fires nothing");
    // The disk alert reads the file system under the test's temporary directory: this machine's,
    // not the chain's; how full it is says nothing here.
    let of_chain = |alerts: Vec<(String, String, String)>| -> Vec<(String, String)> {
        alerts
            .into_iter()
            .filter(|(name, chain, _)| chain == CHAIN && name != "DiskFillingUp")
            .map(|(name, _, state)| (name, state))
            .collect()
    };
    // The operator's conditions follow its last look at the validators: silent once it looked.
    eventually(WAIT, "no alert for the healthy chain", || {
        of_chain(prometheus.alerts()).is_empty().then_some(())
    });

    step("a validator stopped: QuorumAtRisk and ValidatorDown pending for its chain");
    cluster.lock().unwrap().stop(3);
    eventually(WAIT, "QuorumAtRisk and ValidatorDown pending", || {
        let names: Vec<String> = of_chain(prometheus.alerts()).into_iter().map(|(name, _)| name).collect();
        (names.contains(&"QuorumAtRisk".to_string()) && names.contains(&"ValidatorDown".to_string()))
            .then_some(())
    });
    let operator_chain = prometheus
        .query("kubechain_operator_chain_condition{condition=\"QuorumAtRisk\", chain=\"trade-ledger\"}")
        .unwrap();
    assert_eq!(operator_chain.len(), 1, "the operator's condition series for its chain: {operator_chain:?}");
    drop(load);
}

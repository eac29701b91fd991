//! Harness for the end-to-end suites: real `kubechain node run` processes on loopback, each in its
//! own temp dir, with every peer link going through a fault-injecting TCP proxy the test owns.
//!
//! Node i reaches node j through its own proxy (i -> j), so the harness can cut any node off from
//! the others (and heal it) without touching the nodes. Nodes bind port 0; the proxies are told
//! where each node listens after every (re)start, from the node's `listening.json`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod kube;
pub mod proxy;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kubechain_node::{Listening, NodeConfig, PeerAddress, keyfile};
use kubechain_types::{
    ConsensusParams, Genesis, Hash, Member, Operation, PublicKey, SigningKey, Transaction, TxBody,
};
use serde_json::Value;

pub use proxy::Proxy;

pub const CHAIN_ID: &str = "e2e-chain";

/// The `kubechain` binary: `KUBECHAIN_BIN`, or the one built beside the test executable.
pub fn kubechain_bin() -> PathBuf {
    if let Ok(path) = std::env::var("KUBECHAIN_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/kubechain
    let path = exe.parent().and_then(Path::parent).expect("target dir").join("kubechain");
    assert!(
        path.exists(),
        "{} is missing: build it first (cargo build --release -p kubechain-cli)",
        path.display()
    );
    path
}

/// Polls `probe` until it returns `Some`, or panics after `timeout` with `what`.
pub fn eventually<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(started.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[derive(Debug)]
pub struct Validator {
    pub index: usize,
    pub key: PublicKey,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    child: Option<Child>,
    pub listening: Option<Listening>,
    /// Where this node's peers' proxies forward to (its current p2p address).
    target: Arc<Mutex<Option<SocketAddr>>>,
}

impl Validator {
    pub fn api(&self) -> String {
        format!("http://{}", self.listening.expect("node is running").api)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

/// A chain of real validator processes.
#[derive(Debug)]
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub genesis: Genesis,
    pub genesis_path: PathBuf,
    pub validators: Vec<Validator>,
    /// `proxies[i][j]`: node i's link to node j (none for i == j).
    pub proxies: Vec<Vec<Option<Proxy>>>,
    pub admin: SigningKey,
    /// One client key per member `client-K`.
    pub clients: Vec<SigningKey>,
    http: reqwest::blocking::Client,
}

impl Cluster {
    /// Writes keys, a genesis with `validators` validators and `clients` members, node configs
    /// and proxies; starts nothing yet.
    pub fn create(validators: usize, clients: usize, params: ConsensusParams) -> Cluster {
        let keys: Vec<SigningKey> = (0..validators).map(|_| keyfile::generate().unwrap()).collect();
        let admin = keyfile::generate().unwrap();
        let client_keys: Vec<SigningKey> = (0..clients).map(|_| keyfile::generate().unwrap()).collect();
        let genesis = Genesis {
            chain_id: CHAIN_ID.to_string(),
            genesis_time_ms: 0,
            validators: keys.iter().map(SigningKey::public_key).collect(),
            admins: vec![admin.public_key()],
            members: client_keys
                .iter()
                .enumerate()
                .map(|(k, key)| Member { name: format!("client-{k}"), public_keys: vec![key.public_key()] })
                .collect(),
            params,
        };
        let api_listen = vec!["127.0.0.1:0".parse().unwrap(); validators];
        Cluster::from_genesis(genesis, keys, admin, client_keys, &api_listen)
    }

    /// A chain of an existing genesis (e.g. one an operator made), the validators' keys in
    /// genesis order, and where each validator's API listens (port 0: any).
    pub fn from_genesis(
        genesis: Genesis,
        keys: Vec<SigningKey>,
        admin: SigningKey,
        client_keys: Vec<SigningKey>,
        api_listen: &[SocketAddr],
    ) -> Cluster {
        let validators = keys.len();
        assert_eq!(api_listen.len(), validators, "one API address per validator");
        let dir = tempfile::tempdir().expect("temp dir");
        genesis.validate().expect("valid genesis");
        let genesis_path = dir.path().join("genesis.json");
        std::fs::write(&genesis_path, serde_json::to_vec_pretty(&genesis).unwrap()).unwrap();

        let targets: Vec<Arc<Mutex<Option<SocketAddr>>>> =
            (0..validators).map(|_| Arc::new(Mutex::new(None))).collect();
        let proxies: Vec<Vec<Option<Proxy>>> = (0..validators)
            .map(|from| {
                (0..validators).map(|to| (from != to).then(|| Proxy::start(targets[to].clone()))).collect()
            })
            .collect();
        let mut nodes = Vec::new();
        for (index, key) in keys.iter().enumerate() {
            let node_dir = dir.path().join(format!("validator-{index}"));
            std::fs::create_dir_all(&node_dir).unwrap();
            keyfile::write(&node_dir.join("validator.key"), key).unwrap();
            let config = NodeConfig {
                genesis: genesis_path.clone(),
                key_file: node_dir.join("validator.key"),
                data_dir: node_dir.join("data"),
                p2p_listen: "127.0.0.1:0".parse().unwrap(),
                api_listen: api_listen[index],
                peers: (0..validators)
                    .filter(|other| *other != index)
                    .map(|other| PeerAddress {
                        key: keys[other].public_key(),
                        address: proxies[index][other].as_ref().unwrap().address().to_string(),
                    })
                    .collect(),
                mempool_capacity: 50_000,
                // Short, so the suites see expiry; far above any commit latency here.
                mempool_ttl_secs: 5,
                max_body_bytes: 1024 * 1024,
                max_frame_bytes: 64 * 1024 * 1024,
            };
            let config_path = node_dir.join("node.yaml");
            std::fs::write(&config_path, serde_yaml::to_string(&config).unwrap()).unwrap();
            nodes.push(Validator {
                index,
                key: key.public_key(),
                dir: node_dir,
                config_path,
                child: None,
                listening: None,
                target: targets[index].clone(),
            });
        }
        Cluster {
            dir,
            genesis,
            genesis_path,
            validators: nodes,
            proxies,
            admin,
            clients: client_keys,
            // No pooled connections: a node that was killed, or that closed a connection after
            // refusing a body, must not turn the next request into a spurious failure.
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
        }
    }

    pub fn start_all(&mut self) {
        for index in 0..self.validators.len() {
            self.start(index);
        }
    }

    /// Starts validator `index` and waits until its API answers.
    pub fn start(&mut self, index: usize) {
        let validator = &mut self.validators[index];
        assert!(validator.child.is_none(), "validator {index} is already running");
        let listening_path = validator.dir.join("data").join("listening.json");
        let _ = std::fs::remove_file(&listening_path);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(validator.dir.join("node.log"))
            .unwrap();
        let child = Command::new(kubechain_bin())
            .args(["node", "run", "--config"])
            .arg(&validator.config_path)
            .args(["--log-format", "json", "--log-level", "info"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn kubechain");
        validator.child = Some(child);
        let child = validator.child.as_mut().unwrap();
        let listening: Listening = eventually(Duration::from_secs(30), "the node to listen", || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("validator {index} exited at start with {status}; see {}", listening_path.display());
            }
            std::fs::read(&listening_path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok())
        });
        *validator.target.lock().unwrap() = Some(listening.p2p);
        validator.listening = Some(listening);
        let api = validator.api();
        eventually(Duration::from_secs(10), "the API to answer", || {
            self.http.get(format!("{api}/healthz")).send().ok().filter(|r| r.status().is_success())
        });
    }

    /// SIGKILL: no chance to flush or say goodbye.
    pub fn kill(&mut self, index: usize) {
        let validator = &mut self.validators[index];
        if let Some(mut child) = validator.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        *validator.target.lock().unwrap() = None;
        validator.listening = None;
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self, index: usize) {
        let validator = &mut self.validators[index];
        if let Some(mut child) = validator.child.take() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let status = child.wait().unwrap();
            assert!(status.success(), "validator {index} exited with {status} on SIGTERM");
        }
        *validator.target.lock().unwrap() = None;
        validator.listening = None;
    }

    pub fn stop_all(&mut self) {
        for index in 0..self.validators.len() {
            self.stop(index);
        }
    }

    /// Cuts validator `index` off from every other validator (both directions).
    pub fn isolate(&self, index: usize, isolated: bool) {
        for other in 0..self.validators.len() {
            if other == index {
                continue;
            }
            for (from, to) in [(index, other), (other, index)] {
                self.proxies[from][to].as_ref().unwrap().set_blocked(isolated);
            }
        }
    }

    pub fn running(&self) -> Vec<usize> {
        self.validators.iter().filter(|v| v.is_running()).map(|v| v.index).collect()
    }

    /// API base URLs of the running validators, to talk to them without holding the cluster.
    pub fn running_apis(&self) -> Vec<String> {
        self.validators.iter().filter(|v| v.is_running()).map(Validator::api).collect()
    }

    pub fn http(&self) -> &reqwest::blocking::Client {
        &self.http
    }

    pub fn get(&self, index: usize, path: &str) -> Option<(u16, Value)> {
        get_json(&self.http, &format!("{}{path}", self.validators[index].api()))
    }

    /// The value of one series of validator `index`'s /metrics, e.g.
    /// `kubechain_height` or `kubechain_messages_total{direction="in",type="state_response"}`.
    pub fn metric(&self, index: usize, series: &str) -> Option<f64> {
        let url = format!("{}/metrics", self.validators[index].api());
        let text = self.http.get(url).send().ok()?.text().ok()?;
        text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
    }

    pub fn status(&self, index: usize) -> Option<Value> {
        self.get(index, "/v1/status").filter(|(code, _)| *code == 200).map(|(_, body)| body)
    }

    pub fn height(&self, index: usize) -> Option<u64> {
        self.status(index).and_then(|status| status["height"].as_u64())
    }

    /// Index of the validator the given node considers primary.
    pub fn primary_seen_by(&self, index: usize) -> usize {
        let status = self.status(index).expect("status");
        let primary = status["primary"].as_str().unwrap().to_string();
        self.validators.iter().position(|v| v.key.to_hex() == primary).unwrap()
    }

    /// Waits until every running validator has committed at least `height`.
    pub fn wait_height(&self, height: u64, timeout: Duration) {
        for index in self.running() {
            eventually(timeout, &format!("validator {index} to reach height {height}"), || {
                self.height(index).filter(|h| *h >= height)
            });
        }
    }

    pub fn post_raw(&self, index: usize, body: Vec<u8>, content_type: &str) -> (u16, Value) {
        let url = format!("{}/v1/transactions", self.validators[index].api());
        let response = self.http.post(url).header("content-type", content_type).body(body).send().unwrap();
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }

    pub fn submit(&self, index: usize, tx: &Transaction) -> (u16, Value) {
        self.post_raw(index, serde_json::to_vec(tx).unwrap(), "application/json")
    }

    /// The block hash at each height 1..=`height` on validator `index`.
    pub fn block_hashes(&self, index: usize, height: u64) -> Vec<Hash> {
        (1..=height)
            .map(|h| {
                let (code, block) = self.get(index, &format!("/v1/blocks/{h}")).expect("block");
                assert_eq!(code, 200, "validator {index} has no block {h}: {block}");
                serde_json::from_value(block["hash"].clone()).unwrap()
            })
            .collect()
    }

    /// Waits for every running validator to reach the same height, then checks that all of
    /// them hold identical block hashes at every height. Returns that height.
    pub fn assert_converged(&self, timeout: Duration) -> u64 {
        let running = self.running();
        let height = eventually(timeout, "all running validators at one height", || {
            let heights: Vec<u64> = running.iter().map(|i| self.height(*i)).collect::<Option<_>>()?;
            let first = heights[0];
            heights.iter().all(|h| *h == first).then_some(first)
        });
        let reference = self.block_hashes(running[0], height);
        for index in &running[1..] {
            assert_eq!(
                self.block_hashes(*index, height),
                reference,
                "validator {index} differs from {}",
                running[0]
            );
        }
        height
    }
}

impl Drop for Cluster {
    /// No validator outlives its test, passed or failed.
    fn drop(&mut self) {
        for index in 0..self.validators.len() {
            self.kill(index);
        }
    }
}

/// A client account that signs transactions with increasing nonces.
#[derive(Debug)]
pub struct Account {
    pub key: SigningKey,
    pub chain_id: String,
    pub next_nonce: u64,
}

impl Account {
    /// An account on the harness's own chain ([`CHAIN_ID`]).
    pub fn new(key: SigningKey) -> Account {
        Account::on_chain(key, CHAIN_ID)
    }

    pub fn on_chain(key: SigningKey, chain_id: &str) -> Account {
        Account { key, chain_id: chain_id.to_string(), next_nonce: 1 }
    }

    pub fn put(&mut self, key: &str, value: &[u8]) -> Transaction {
        self.sign(vec![Operation::Put { key: key.to_string(), value: value.to_vec() }])
    }

    pub fn sign(&mut self, operations: Vec<Operation>) -> Transaction {
        let body = TxBody {
            chain_id: self.chain_id.clone(),
            sender: self.key.public_key(),
            nonce: self.next_nonce,
            operations,
        };
        self.next_nonce += 1;
        Transaction::new(body, &self.key)
    }
}

/// A transaction a node acknowledged as committed, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledged {
    pub hash: Hash,
    pub height: u64,
    pub index: u64,
    pub transaction: Value,
}

impl Cluster {
    /// Asks validator `index` about `hash`; `Some` once it reports it committed.
    pub fn committed(&self, index: usize, hash: &Hash) -> Option<Acknowledged> {
        committed_at(&self.http, &self.validators[index].api(), hash)
    }

    /// Checks that every acknowledged transaction is on every running validator, identical.
    pub fn assert_all_present(&self, acknowledged: &[Acknowledged]) {
        for index in self.running() {
            for ack in acknowledged {
                let found = self.committed(index, &ack.hash);
                assert_eq!(
                    found.as_ref(),
                    Some(ack),
                    "validator {index} lost or changed transaction {}",
                    ack.hash
                );
            }
        }
    }
}

/// What a node logs, with the height, once it knows it holds the chain's tip.
pub const CAUGHT_UP: &str = "caught up: a quorum of validators has no newer block";

/// The `fields` (message and values) of each JSON log line in `log`, in order.
pub fn log_fields(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .map(|mut line| line["fields"].take())
        .collect()
}

/// GET `url`: status and JSON body, or `None` if the node did not answer (it may be dead).
pub fn get_json(http: &reqwest::blocking::Client, url: &str) -> Option<(u16, Value)> {
    let response = http.get(url).send().ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().ok()?))
}

/// Submits `tx` to the node at `api`; the HTTP status, or `None` if the node did not answer.
pub fn submit_to(http: &reqwest::blocking::Client, api: &str, tx: &Transaction) -> Option<u16> {
    let url = format!("{api}/v1/transactions");
    let response = http.post(url).json(tx).send().ok()?;
    Some(response.status().as_u16())
}

/// Asks the node at `api` about `hash`; `Some` once it reports it committed.
pub fn committed_at(http: &reqwest::blocking::Client, api: &str, hash: &Hash) -> Option<Acknowledged> {
    let (code, body) = get_json(http, &format!("{api}/v1/transactions/{hash}"))?;
    (code == 200 && body["status"] == "committed").then(|| Acknowledged {
        hash: *hash,
        height: body["height"].as_u64().unwrap(),
        index: body["index"].as_u64().unwrap(),
        transaction: body["receipt"]["transaction"].clone(),
    })
}

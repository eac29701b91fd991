//! The validators as processes: keys, genesis, configs and proxies written to a temp dir, each
//! node started, killed (SIGKILL), stopped (SIGTERM) and cut off from its peers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kubechain_node::{Listening, NodeConfig, PeerAddress, keyfile};
use kubechain_types::{ConsensusParams, Genesis, Member, PublicKey, SigningKey};

use crate::poll::eventually;
use crate::proxy::Proxy;

/// The chain id of every chain the harness starts.
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

#[derive(Debug)]
pub struct Validator {
    pub index: usize,
    pub key: PublicKey,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    child: Option<Child>,
    pub listening: Option<Listening>,
    /// Stopped by SIGSTOP (see `Cluster::pause`).
    pub paused: bool,
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

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// The consensus parameters of the fault suites: a block every 10 ms, a light seal, a checkpoint
/// every 8 blocks, and the given view-change timeout.
pub fn fault_suite_params(view_change_timeout_ms: u64) -> ConsensusParams {
    ConsensusParams {
        block_interval_ms: 10,
        max_block_txs: 500,
        checkpoint_interval: 8,
        view_change_timeout_ms,
        pow_difficulty_bits: 4,
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
    pub(crate) http: reqwest::blocking::Client,
}

impl Cluster {
    /// Writes keys, a genesis with `validators` validators and `clients` members, node configs
    /// and proxies; starts nothing yet.
    pub fn create(validators: usize, clients: usize, params: ConsensusParams) -> Cluster {
        Cluster::with_spares(validators, 0, clients, params)
    }

    /// [`Cluster::create`] with `spares` more nodes after the validators, not in genesis (to be
    /// added on chain). The genesis validators' peers files list only each other; a spare's lists
    /// every node. [`Cluster::link`] makes a spare known to the others.
    pub fn with_spares(validators: usize, spares: usize, clients: usize, params: ConsensusParams) -> Cluster {
        let keys: Vec<SigningKey> = (0..validators + spares).map(|_| keyfile::generate().unwrap()).collect();
        let admin = keyfile::generate().unwrap();
        let client_keys: Vec<SigningKey> = (0..clients).map(|_| keyfile::generate().unwrap()).collect();
        let genesis = Genesis {
            chain_id: CHAIN_ID.to_string(),
            genesis_time_ms: 0,
            validators: keys[..validators].iter().map(SigningKey::public_key).collect(),
            admins: vec![admin.public_key()],
            members: client_keys
                .iter()
                .enumerate()
                .map(|(k, key)| Member { name: format!("client-{k}"), public_keys: vec![key.public_key()] })
                .collect(),
            params,
        };
        let api_listen = vec!["127.0.0.1:0".parse().unwrap(); validators + spares];
        Cluster::from_genesis(genesis, keys, admin, client_keys, &api_listen)
    }

    /// A chain of an existing genesis (e.g. one an operator made), the nodes' keys (the
    /// validators in genesis order, then any spares), and where each node's API listens (port 0:
    /// any).
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
                p2p_listen: "127.0.0.1:0".parse().unwrap(),
                api_listen: api_listen[index],
                peers_file: Some(node_dir.join("peers.yaml")),
                mempool_capacity: 50_000,
                // Short, so the suites see expiry; far above any commit latency here.
                mempool_ttl_secs: 5,
                max_body_bytes: 1024 * 1024,
                ..NodeConfig::new(genesis_path.clone(), node_dir.join("validator.key"), node_dir.join("data"))
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
                paused: false,
                target: targets[index].clone(),
            });
        }
        let genesis_validators = genesis.validators.len();
        let cluster = Cluster {
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
        };
        for index in 0..validators {
            let known: Vec<usize> = if index < genesis_validators {
                (0..genesis_validators).collect()
            } else {
                (0..validators).collect()
            };
            cluster.write_peers(index, &known);
        }
        cluster
    }

    /// Writes node `index`'s peers file: the nodes `known` (itself skipped), each through the
    /// proxy from `index` to it. A running node reads it again within seconds.
    pub fn write_peers(&self, index: usize, known: &[usize]) {
        let peers: Vec<PeerAddress> = known
            .iter()
            .filter(|other| **other != index)
            .map(|other| PeerAddress {
                key: self.validators[*other].key,
                address: self.proxies[index][*other].as_ref().unwrap().address().to_string(),
            })
            .collect();
        let path = self.validators[index].dir.join("peers.yaml");
        let temporary = path.with_extension("yaml.tmp");
        std::fs::write(&temporary, serde_yaml::to_string(&peers).unwrap()).unwrap();
        std::fs::rename(&temporary, &path).unwrap();
    }

    /// Changes validator `index`'s config file before it starts.
    pub fn configure(&self, index: usize, change: impl FnOnce(&mut NodeConfig)) {
        let path = &self.validators[index].config_path;
        let mut config: NodeConfig = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        change(&mut config);
        std::fs::write(path, serde_yaml::to_string(&config).unwrap()).unwrap();
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
        validator.paused = false;
    }

    /// SIGSTOP (`paused`) or SIGCONT: the process stays, silent, its connections open (a hung
    /// machine, a long GC pause, a VM migration).
    pub fn pause(&mut self, index: usize, paused: bool) {
        let validator = &mut self.validators[index];
        if let Some(child) = &validator.child {
            let signal = if paused { "-STOP" } else { "-CONT" };
            let status = Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
            assert!(status.success(), "kill {signal} validator {index}");
            validator.paused = paused;
        }
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

    /// API base URLs of the running validators (paused ones excluded), to talk to them without
    /// holding the cluster.
    pub fn running_apis(&self) -> Vec<String> {
        self.validators.iter().filter(|v| v.is_running() && !v.paused).map(Validator::api).collect()
    }
    pub fn http(&self) -> &reqwest::blocking::Client {
        &self.http
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

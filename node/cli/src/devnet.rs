//! `kubechain devnet`: a local chain of N validators in one process, created on first run and
//! resumed from disk afterwards.
//!
//! ```text
//! DIR/genesis.json      the chain (validators, one admin, member "demo")
//! DIR/admin.key         admin key (consortium changes)
//! DIR/client.key        the "demo" member's client key
//! DIR/validator-I/      node.yaml, validator.key and data/ of validator I
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kubechain_api::NodeStatus;
use kubechain_node::{NodeConfig, PeerAddress, RunningNode, keyfile};
use kubechain_types::{ConsensusParams, Genesis, Member};

use crate::client::{Client, ClientSettings};

pub const CHAIN_ID: &str = "devnet";
pub const MEMBER: &str = "demo";

#[derive(Debug, Clone)]
pub struct DevnetOptions {
    pub validators: usize,
    pub base_port: u16,
    pub params: ConsensusParams,
}

pub fn genesis_path(dir: &Path) -> PathBuf {
    dir.join("genesis.json")
}

pub fn validator_dir(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("validator-{index}"))
}

/// The node configs of an existing devnet, in validator order.
pub fn configs(dir: &Path) -> Result<Vec<NodeConfig>, String> {
    let mut configs = Vec::new();
    for index in 0.. {
        let path = validator_dir(dir, index).join("node.yaml");
        if !path.exists() {
            break;
        }
        configs.push(NodeConfig::load(&path).map_err(|error| error.to_string())?);
    }
    if configs.is_empty() {
        return Err(format!("{} holds no devnet (no validator-0/node.yaml)", dir.display()));
    }
    Ok(configs)
}

/// Writes keys, genesis and node configs for a new devnet into the empty or absent `dir`.
pub fn create(dir: &Path, options: &DevnetOptions) -> Result<Genesis, String> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |error: std::io::Error| format!("{path}: {error}")
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut keys = Vec::new();
    for index in 0..options.validators {
        let validator_dir = validator_dir(dir, index);
        std::fs::create_dir_all(&validator_dir).map_err(io(&validator_dir))?;
        let key = keyfile::generate().map_err(|error| error.to_string())?;
        keyfile::write(&validator_dir.join("validator.key"), &key).map_err(|error| error.to_string())?;
        keys.push(key.public_key());
    }
    let admin = keyfile::generate().map_err(|error| error.to_string())?;
    keyfile::write(&dir.join("admin.key"), &admin).map_err(|error| error.to_string())?;
    let client = keyfile::generate().map_err(|error| error.to_string())?;
    keyfile::write(&dir.join("client.key"), &client).map_err(|error| error.to_string())?;
    let genesis_time_ms =
        SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_millis() as u64).unwrap_or(0);
    let genesis = Genesis {
        chain_id: CHAIN_ID.to_string(),
        genesis_time_ms,
        validators: keys.clone(),
        admins: vec![admin.public_key()],
        members: vec![Member { name: MEMBER.to_string(), public_keys: vec![client.public_key()] }],
        params: options.params.clone(),
    };
    genesis.validate().map_err(|error| format!("invalid devnet genesis: {error}"))?;
    let genesis_json = serde_json::to_vec_pretty(&genesis).map_err(|error| error.to_string())?;
    std::fs::write(genesis_path(dir), genesis_json).map_err(io(&genesis_path(dir)))?;

    let address = |port: u16| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let p2p_port = |index: usize| options.base_port + 100 + index as u16;
    for (index, _) in keys.iter().enumerate() {
        let config = NodeConfig {
            p2p_listen: address(p2p_port(index)),
            api_listen: address(options.base_port + index as u16),
            peers: keys
                .iter()
                .enumerate()
                .filter(|(other, _)| *other != index)
                .map(|(other, key)| PeerAddress { key: *key, address: address(p2p_port(other)).to_string() })
                .collect(),
            ..NodeConfig::new("../genesis.json".into(), "validator.key".into(), "data".into())
        };
        let path = validator_dir(dir, index).join("node.yaml");
        let yaml = serde_yaml::to_string(&config).map_err(|error| error.to_string())?;
        std::fs::write(&path, yaml).map_err(io(&path))?;
    }
    Ok(genesis)
}

/// Starts every validator of the devnet in `dir`.
async fn start_nodes(dir: &Path) -> Result<Vec<RunningNode>, String> {
    let mut nodes = Vec::new();
    for config in &configs(dir)? {
        let node = RunningNode::start(config).await.map_err(|error| error.to_string())?;
        nodes.push(node);
    }
    Ok(nodes)
}

/// `path` as a shell word: quoted only when it has characters a shell would interpret.
fn shell_word(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+,:=@".contains(c);
    if text.chars().all(plain) { text } else { format!("'{}'", text.replace('\'', r"'\''")) }
}

/// Runs every validator of the devnet in `dir` until Ctrl-C, printing new blocks.
pub async fn run(dir: &Path, options: &DevnetOptions, quiet: bool) -> Result<(), String> {
    let created = !genesis_path(dir).exists();
    if created {
        create(dir, options)?;
    }
    let genesis = kubechain_node::read_genesis(&genesis_path(dir)).map_err(|error| error.to_string())?;
    let nodes = start_nodes(dir).await?;
    let verb = if created { "created" } else { "resumed" };
    out!(
        "kubechain devnet: {verb} chain {:?} (genesis {}) with {} validators in {}",
        genesis.chain_id,
        genesis.hash(),
        nodes.len(),
        dir.display()
    );
    for (index, node) in nodes.iter().enumerate() {
        out!("  validator {index}  api http://{}  p2p {}", node.listening.api, node.listening.p2p);
    }
    // Full paths, so the hint pastes as it is into any shell, wherever it runs (the binary need
    // not be on PATH, nor the shell in this directory).
    let first_api = nodes.first().map(|node| node.listening.api.to_string()).unwrap_or_default();
    let binary = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("kubechain"));
    let client_key = dir.join("client.key");
    let client_key = std::path::absolute(&client_key).unwrap_or(client_key);
    out!(
        "try:\n  {} tx put --node http://{first_api} --key-file {} --key greeting --value hello --wait",
        shell_word(&binary),
        shell_word(&client_key)
    );
    out!("Ctrl-C stops the devnet; running it again resumes the same chain.");

    let mut blocks = nodes.first().map(RunningNode::subscribe_blocks);
    let shutdowns: Vec<_> = nodes.iter().map(RunningNode::shutdown_token).collect();
    let mut waits: futures_util::stream::FuturesUnordered<_> =
        nodes.into_iter().map(RunningNode::wait).collect();
    use futures_util::StreamExt;
    let outcome = loop {
        tokio::select! {
            signal = tokio::signal::ctrl_c() => {
                if let Err(error) = signal {
                    break Err(format!("cannot listen for Ctrl-C: {error}"));
                }
                out!("stopping...");
                break Ok(());
            }
            finished = waits.next() => {
                // A node stopped on its own: that is a failure of the devnet.
                break Err(match finished {
                    Some(Err(error)) => format!("a validator stopped: {error}"),
                    _ => "a validator stopped".to_string(),
                });
            }
            block = async { match blocks.as_mut() { Some(blocks) => blocks.recv().await.ok(), None => None } },
                if blocks.is_some() => {
                if let Some(block) = block && !quiet {
                    out!(
                        "block {:>6}  {}  view {}  {} txs",
                        block.height, block.hash, block.view, block.transactions
                    );
                }
            }
        }
    };
    for shutdown in &shutdowns {
        shutdown.cancel();
    }
    while let Some(result) = waits.next().await {
        if let Err(error) = result {
            eprintln!("warning: {error}");
        }
    }
    outcome
}

/// A throwaway devnet for `kubechain bench --fresh-devnet`: created in a temporary dir and run on
/// its own runtime, so the load generator's work never holds up the validators' tasks; stopped
/// and deleted by [`FreshDevnet::stop`].
#[derive(Debug)]
pub struct FreshDevnet {
    dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
    nodes: Vec<RunningNode>,
}

/// How long a fresh devnet may take until every validator is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

impl FreshDevnet {
    /// Creates and starts the devnet; returns once every validator reports ready (connected to a
    /// quorum and caught up).
    pub fn start(options: &DevnetOptions) -> Result<FreshDevnet, String> {
        let dir = tempfile::Builder::new()
            .prefix("kubechain-bench.")
            .tempdir()
            .map_err(|error| format!("cannot create a temporary dir: {error}"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("devnet")
            .enable_all()
            .build()
            .map_err(|error| error.to_string())?;
        create(dir.path(), options)?;
        let nodes = runtime.block_on(start_nodes(dir.path()))?;
        let devnet = FreshDevnet { dir, runtime, nodes };
        if let Err(error) = devnet.wait_ready() {
            let _ = devnet.stop();
            return Err(error);
        }
        Ok(devnet)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        for node in &self.nodes {
            let client = Client::new(&format!("http://{}", node.listening.api), ClientSettings::default())
                .map_err(|error| error.to_string())?;
            loop {
                let status = client.get::<NodeStatus>("/v1/status");
                if status.as_ref().is_ok_and(|status| status.ready) {
                    break;
                }
                if Instant::now() >= deadline {
                    let detail =
                        status.map_or_else(|error| error.to_string(), |status| format!("{status:?}"));
                    return Err(format!(
                        "validator at {} not ready within {} s: {detail}",
                        node.listening.api,
                        READY_TIMEOUT.as_secs()
                    ));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    /// Stops every validator and deletes the directory.
    pub fn stop(self) -> Result<(), String> {
        let FreshDevnet { dir, runtime, nodes } = self;
        let stopped: Vec<_> =
            runtime.block_on(futures_util::future::join_all(nodes.into_iter().map(RunningNode::stop)));
        drop(runtime);
        dir.close().map_err(|error| format!("cannot delete the devnet's dir: {error}"))?;
        stopped.into_iter().collect::<Result<Vec<()>, _>>().map(drop).map_err(|error| error.to_string())
    }
}

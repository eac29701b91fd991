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
use std::time::{SystemTime, UNIX_EPOCH};

use kubechain_node::{NodeConfig, PeerAddress, RunningNode, keyfile};
use kubechain_types::{ConsensusParams, Genesis, Member};

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
            genesis: PathBuf::from("../genesis.json"),
            key_file: PathBuf::from("validator.key"),
            data_dir: PathBuf::from("data"),
            p2p_listen: address(p2p_port(index)),
            api_listen: address(options.base_port + index as u16),
            peers: keys
                .iter()
                .enumerate()
                .filter(|(other, _)| *other != index)
                .map(|(other, key)| PeerAddress { key: *key, address: address(p2p_port(other)).to_string() })
                .collect(),
            mempool_capacity: 200_000,
            mempool_ttl_secs: 120,
            max_body_bytes: 8 * 1024 * 1024,
            max_frame_bytes: 64 * 1024 * 1024,
        };
        let path = validator_dir(dir, index).join("node.yaml");
        let yaml = serde_yaml::to_string(&config).map_err(|error| error.to_string())?;
        std::fs::write(&path, yaml).map_err(io(&path))?;
    }
    Ok(genesis)
}

/// Runs every validator of the devnet in `dir` until Ctrl-C, printing new blocks.
pub async fn run(dir: &Path, options: &DevnetOptions, quiet: bool) -> Result<(), String> {
    let created = !genesis_path(dir).exists();
    if created {
        create(dir, options)?;
    }
    let configs = configs(dir)?;
    let genesis = kubechain_node::read_genesis(&genesis_path(dir)).map_err(|error| error.to_string())?;
    let mut nodes = Vec::new();
    for config in &configs {
        let node = RunningNode::start(config).await.map_err(|error| error.to_string())?;
        nodes.push(node);
    }
    let verb = if created { "created" } else { "resumed" };
    println!(
        "kubechain devnet: {verb} chain {:?} (genesis {}) with {} validators in {}",
        genesis.chain_id,
        genesis.hash(),
        nodes.len(),
        dir.display()
    );
    for (index, node) in nodes.iter().enumerate() {
        println!("  validator {index}  api http://{}  p2p {}", node.listening.api, node.listening.p2p);
    }
    let first_api = nodes.first().map(|node| node.listening.api.to_string()).unwrap_or_default();
    println!(
        "try:\n  kubechain tx put --node http://{first_api} --key-file {} --key greeting --value hello --wait",
        dir.join("client.key").display()
    );
    println!("Ctrl-C stops the devnet; running it again resumes the same chain.");

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
                println!("stopping...");
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
                    println!(
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

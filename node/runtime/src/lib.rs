//! `kubechain-node`: a running validator. It wires the consensus core and the ledger to RocksDB,
//! the authenticated peer links and the HTTP API.
//!
//! ```text
//!  clients ── HTTP API ──(commands)──▶ consensus actor ◀──(frames)── peer links ◀── validators
//!                │                      (replica + ledger,                 ▲
//!                └── reads ──▶ RocksDB ◀── one synced write per block)     └── sends, broadcasts
//! ```

pub mod api;
pub mod config;
mod driver;
pub mod keyfile;
pub mod logs;
pub mod metrics;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kubechain_consensus::Replica;
use kubechain_ledger::Ledger;
use kubechain_network::{Network, NetworkConfig};
use kubechain_storage::Store;
use kubechain_types::{Genesis, PublicKey, SigningKey};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

pub use config::{NodeConfig, PeerAddress};
pub use driver::{CommittedBlock, ConsensusStatus};

/// API commands waiting for the consensus actor; when full, submitters wait (back-pressure).
const COMMAND_QUEUE: usize = 1024;
/// Frames queued per peer link before new ones are dropped.
const PEER_QUEUE_FRAMES: usize = 4096;
/// Frames from one peer waiting for the consensus actor, at most: the queue to the actor is
/// shared, and a flooding peer holds no more than this much of it.
const PEER_INBOUND_FRAMES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("genesis {path}: {message}")]
    Genesis { path: PathBuf, message: String },
    #[error("key: {0}")]
    Key(#[from] keyfile::KeyError),
    #[error("config: {0}")]
    Config(#[from] config::ConfigError),
    #[error("storage in {path}: {source}")]
    Storage { path: PathBuf, source: kubechain_storage::StorageError },
    #[error("network: {0}")]
    Network(#[from] kubechain_network::NetworkError),
    #[error("cannot serve the API on {address}: {source}")]
    Api { address: SocketAddr, source: std::io::Error },
    #[error("API token file {path}: {message}")]
    ApiToken { path: PathBuf, message: String },
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("consensus stopped: {0}")]
    Driver(#[from] driver::DriverError),
    #[error("the consensus thread panicked (see the log above)")]
    DriverPanicked,
}

pub fn read_genesis(path: &Path) -> Result<Genesis, NodeError> {
    let fail = |message: String| NodeError::Genesis { path: path.into(), message };
    let bytes = std::fs::read(path).map_err(|error| fail(error.to_string()))?;
    let genesis: Genesis = serde_json::from_slice(&bytes).map_err(|error| fail(error.to_string()))?;
    genesis.validate().map_err(|error| fail(error.to_string()))?;
    Ok(genesis)
}

/// The digest of the API bearer token in `path` (surrounding whitespace ignored; the token itself
/// is kept nowhere).
fn read_api_token(path: &Path) -> Result<kubechain_types::Hash, NodeError> {
    let fail = |message: String| NodeError::ApiToken { path: path.into(), message };
    let text = std::fs::read_to_string(path).map_err(|error| fail(error.to_string()))?;
    let token = text.trim();
    if token.len() < 16 || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(fail("the token must be at least 16 characters, without spaces".into()));
    }
    Ok(kubechain_types::Hash::digest(token.as_bytes()))
}

/// The addresses a started node actually listens on (ports chosen by the OS when 0 was asked),
/// also written to `<data_dir>/listening.json` for scripts and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Listening {
    pub api: SocketAddr,
    pub p2p: SocketAddr,
}

/// A running node. Dropping it does not stop it; call [`RunningNode::stop`].
#[derive(Debug)]
pub struct RunningNode {
    pub public_key: PublicKey,
    pub chain_id: String,
    pub listening: Listening,
    blocks: broadcast::Sender<CommittedBlock>,
    shutdown: CancellationToken,
    driver_done: oneshot::Receiver<Result<(), driver::DriverError>>,
    api_task: tokio::task::JoinHandle<()>,
}

impl RunningNode {
    /// Starts a validator from `config`; returns once its sockets listen.
    pub async fn start(config: &NodeConfig) -> Result<RunningNode, NodeError> {
        let genesis = read_genesis(&config.genesis)?;
        let key = keyfile::read(&config.key_file)?;
        let public_key = key.public_key();
        let peers = config.all_peers()?;
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|source| NodeError::Io { path: config.data_dir.clone(), source })?;
        let storage_error = |source| NodeError::Storage { path: config.data_dir.clone(), source };
        let store = Arc::new(Store::open(&config.data_dir.join("db")).map_err(storage_error)?);
        store
            .init_genesis(&genesis, &kubechain_ledger::state::genesis_changes(&genesis))
            .map_err(storage_error)?;
        let recovered = store.recover().map_err(storage_error)?;
        let durable_root = match &recovered.last_committed {
            Some((header, _)) => header.state_root,
            None => kubechain_ledger::genesis_root(&genesis),
        };
        tracing::info!(
            chain_id = %genesis.chain_id,
            genesis_hash = %genesis.hash(),
            validator = %public_key,
            height = recovered.last_committed.as_ref().map_or(0, |(header, _)| header.height),
            journal_records = recovered.journal.len(),
            "{}",
            logs::STARTING_NODE
        );
        let ledger = Ledger::new(
            &genesis.chain_id,
            driver::DurableState(store.clone()),
            durable_root,
            config.mempool_capacity,
            config.mempool_ttl_secs * 1000,
        );
        let replica = Replica::new(&genesis, key.clone(), ledger, recovered);
        // Outside the set now, a node that was in it (at genesis, or added since) was removed;
        // one that never was is a learner until its addition takes effect.
        let window = genesis.params.watermark_window();
        let was_validator = genesis.validators.contains(&public_key)
            || replica.votes_at(replica.height() + 1)
            || was_added(&store, &public_key, replica.height() + 1, window).map_err(storage_error)?;
        let initial_status = driver::Driver::status_of(&replica, was_validator);
        driver::log_role(&initial_status);

        // Unbounded here, bounded per peer by the network (frames and bytes each peer may have
        // waiting), so one flooding peer cannot fill it for the others.
        let (inbound_tx, inbound) = mpsc::unbounded_channel();
        // The set that governs the next height, from the recovered chain, not genesis; the
        // driver keeps it current.
        let validators = initial_status.validators.clone();
        let network =
            Network::start(network_config(config, &peers, &genesis, key, validators), inbound_tx).await?;
        let network_stats = network.stats().clone();
        let metrics = Arc::new(metrics::Metrics::new(
            network_stats.clone(),
            config.data_dir.clone(),
            config.mempool_capacity,
        )?);
        // A restarted node reports its recovered tip before the next commit.
        metrics.height.set(initial_status.height as i64);
        let (commands_tx, commands) = mpsc::channel(COMMAND_QUEUE);
        let (status_tx, status) = watch::channel(initial_status);
        let (blocks, _) = broadcast::channel(1024);
        let shutdown = CancellationToken::new();

        let api_listener = tokio::net::TcpListener::bind(config.api_listen)
            .await
            .map_err(|source| NodeError::Api { address: config.api_listen, source })?;
        let api_address = api_listener
            .local_addr()
            .map_err(|source| NodeError::Api { address: config.api_listen, source })?;
        let listening = Listening { api: api_address, p2p: network.local_address() };

        let api_state = api::ApiState {
            chain_id: genesis.chain_id.clone().into(),
            genesis_hash: genesis.hash(),
            rule_window: window,
            node: public_key,
            store: store.clone(),
            commands: commands_tx,
            status,
            blocks: blocks.clone(),
            metrics: metrics.clone(),
            network: network_stats,
            shutdown: shutdown.clone(),
            streams: Arc::new(tokio::sync::Semaphore::new(config.api_max_streams)),
        };
        let limits = api::Limits {
            max_connections: config.api_max_connections,
            header_timeout: Duration::from_millis(config.api_header_timeout_ms),
            request_timeout: Duration::from_millis(config.api_request_timeout_ms),
            token_digest: config.api_token_file.as_deref().map(read_api_token).transpose()?,
        };
        let guard = api::Guard::new(limits.clone(), config.api_max_concurrent_requests);
        let router = api::router(api_state, config.max_body_bytes, guard);
        let api_task = tokio::spawn(api::serve(api_listener, router, limits, shutdown.clone()));

        let driver = driver::Driver {
            replica,
            store,
            network,
            inbound,
            commands,
            metrics,
            status: status_tx,
            blocks: blocks.clone(),
            shutdown: shutdown.clone(),
            timers: BTreeMap::new(),
            served_at: HashMap::new(),
            deferred_serves: HashMap::new(),
            submitted_at: HashMap::new(),
            was_validator,
        };
        if config.peers_file.is_some() {
            tokio::spawn(reload_peers(config.clone(), peers, driver.network.peer_book(), shutdown.clone()));
        }
        let driver_done = spawn_driver(driver, shutdown.clone())?;

        write_listening(&config.data_dir, &listening)?;
        tracing::info!(api = %listening.api, p2p = %listening.p2p, "listening");
        Ok(RunningNode {
            public_key,
            chain_id: genesis.chain_id,
            listening,
            blocks,
            shutdown,
            driver_done,
            api_task,
        })
    }

    /// New committed blocks, as they are made durable here.
    pub fn subscribe_blocks(&self) -> broadcast::Receiver<CommittedBlock> {
        self.blocks.subscribe()
    }

    /// A token that stops the node when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Runs until the node is stopped (through its token) or fails.
    pub async fn wait(self) -> Result<(), NodeError> {
        let result = match self.driver_done.await {
            Ok(result) => result.map_err(NodeError::from),
            Err(_) => Err(NodeError::DriverPanicked),
        };
        // The API goes down with consensus, so a failed node is never half up.
        self.shutdown.cancel();
        let _ = self.api_task.await;
        result
    }

    /// Stops the node and waits until it has.
    pub async fn stop(self) -> Result<(), NodeError> {
        self.shutdown.cancel();
        self.wait().await
    }
}

/// True if a committed rule change added `key` to the validator set in force by `height` (an
/// addition not yet in force leaves the node a learner).
fn was_added(
    store: &Store,
    key: &PublicKey,
    height: u64,
    window: u64,
) -> Result<bool, kubechain_storage::StorageError> {
    use kubechain_types::{AdminOperation, Operation};
    let changes = store.rule_changes(height, window)?;
    let mut operations = changes
        .iter()
        .flat_map(|change| &change.transactions)
        .flat_map(|proven| &proven.transaction.body.operations);
    Ok(operations.any(|operation| {
        matches!(operation, Operation::Admin(AdminOperation::AddValidator { public_key }) if public_key == key)
    }))
}

/// How often the peers file is read again.
const PEERS_RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// Reads the peers file again every [`PEERS_RELOAD_INTERVAL`] and hands changes to the network
/// (kubelet updates a mounted ConfigMap in place; an operator adds a validator's address before
/// it syncs, and removes it after the validator leaves). A bad file keeps the peers as they were.
async fn reload_peers(
    config: NodeConfig,
    mut current: Vec<PeerAddress>,
    book: kubechain_network::PeerBook,
    shutdown: CancellationToken,
) {
    let mut last_error = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(PEERS_RELOAD_INTERVAL) => {}
        }
        let read = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || config.all_peers()).await
        };
        match read {
            Ok(Ok(peers)) => {
                last_error = None;
                if peers != current {
                    tracing::info!(peers = peers.len(), "peers file changed: relinking");
                    book.set_peers(&peers);
                    current = peers;
                }
            }
            Ok(Err(error)) => {
                let error = error.to_string();
                if last_error.as_ref() != Some(&error) {
                    tracing::warn!(%error, "cannot reload the peers file; keeping the peers as they were");
                    last_error = Some(error);
                }
            }
            Err(_) => return, // the runtime is shutting down
        }
    }
}

fn network_config(
    config: &NodeConfig,
    peers: &[PeerAddress],
    genesis: &Genesis,
    key: SigningKey,
    validators: Vec<PublicKey>,
) -> NetworkConfig {
    let me = key.public_key();
    for validator in validators.iter().filter(|validator| **validator != me) {
        if !peers.iter().any(|peer| peer.key == *validator) {
            tracing::warn!(%validator, "no address configured for this validator; it can still dial us");
        }
    }
    NetworkConfig {
        chain_id: genesis.chain_id.clone(),
        key,
        listen: config.p2p_listen,
        validators,
        // Every configured address: learners are linked now, validators added later too.
        peers: peers.to_vec(),
        max_frame_bytes: config.max_frame_bytes,
        queue_frames: PEER_QUEUE_FRAMES,
        queue_bytes: NetworkConfig::DEFAULT_QUEUE_BYTES,
        inbound_frames: PEER_INBOUND_FRAMES,
        inbound_bytes: NetworkConfig::DEFAULT_INBOUND_BYTES,
    }
}

/// The consensus actor gets an OS thread of its own with a single-threaded runtime: its synced
/// writes and signature checks block only itself.
fn spawn_driver(
    driver: driver::Driver,
    shutdown: CancellationToken,
) -> Result<oneshot::Receiver<Result<(), driver::DriverError>>, NodeError> {
    let (done_tx, done) = oneshot::channel();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|source| NodeError::Io { path: "tokio runtime".into(), source })?;
    std::thread::Builder::new()
        .name("consensus".into())
        .spawn(move || {
            let result = runtime.block_on(driver.run());
            if let Err(error) = &result {
                tracing::error!(%error, "consensus stopped");
            }
            shutdown.cancel();
            let _ = done_tx.send(result);
        })
        .map_err(|source| NodeError::Io { path: "consensus thread".into(), source })?;
    Ok(done)
}

fn write_listening(data_dir: &Path, listening: &Listening) -> Result<(), NodeError> {
    let path = data_dir.join("listening.json");
    let temporary = data_dir.join("listening.json.tmp");
    let io = |source| NodeError::Io { path: path.clone(), source };
    let json = serde_json::to_vec(listening).map_err(|error| io(std::io::Error::other(error)))?;
    std::fs::write(&temporary, json).map_err(io)?;
    std::fs::rename(&temporary, &path).map_err(io)
}

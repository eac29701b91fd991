//! The node's configuration file (YAML), read once at start, and its peers file, read again
//! while the node runs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use kubechain_types::PublicKey;

/// Where another validator listens for peer links (`key`, `address` as `host:port`; DNS names
/// are resolved at every dial).
pub use kubechain_network::Peer as PeerAddress;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The chain's genesis file (JSON, as written by `kubechain genesis`).
    pub genesis: PathBuf,
    /// This validator's key file (as written by `kubechain keygen`).
    pub key_file: PathBuf,
    /// RocksDB lives here; created on first start.
    pub data_dir: PathBuf,
    /// Peer links; port 0 picks a free port (reported in `<data_dir>/listening.json`).
    #[serde(default = "defaults::p2p_listen")]
    pub p2p_listen: SocketAddr,
    /// HTTP API; port 0 picks a free port.
    #[serde(default = "defaults::api_listen")]
    pub api_listen: SocketAddr,
    /// The other validators' addresses (this node's own entry, if listed, is ignored). A key here
    /// that is not a validator is a learner: linked, following the chain, not voting.
    #[serde(default)]
    pub peers: Vec<PeerAddress>,
    /// A YAML list of further peers (`- key: ...\n  address: ...`), read at start and again every
    /// few seconds while the node runs, so peers can come and go without a restart (an entry
    /// here wins over `peers` for the same key). At start the file must read and parse (the node
    /// refuses to start otherwise); later, a file that cannot be read or parsed leaves the peers as
    /// they were, and says so in the log.
    #[serde(default)]
    pub peers_file: Option<PathBuf>,
    /// Transactions waiting for a block, at most; beyond it submissions get 429.
    #[serde(default = "defaults::mempool_capacity")]
    pub mempool_capacity: usize,
    /// A transaction no block took within this many seconds leaves the mempool (status
    /// `rejected`, code `expired`): nothing waits forever behind a nonce gap.
    #[serde(default = "defaults::mempool_ttl_secs")]
    pub mempool_ttl_secs: u64,
    /// Largest HTTP request body accepted.
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: usize,
    /// Largest peer frame accepted or sent.
    #[serde(default = "defaults::max_frame_bytes")]
    pub max_frame_bytes: usize,
    /// A file holding a bearer token: when set, every API request but `/healthz` and `/readyz`
    /// must carry `Authorization: Bearer <token>` (reads are open to anyone on the network
    /// otherwise). The token is read at start and never logged.
    #[serde(default)]
    pub api_token_file: Option<PathBuf>,
    /// Open API connections at most; more are closed at once.
    #[serde(default = "defaults::api_max_connections")]
    pub api_max_connections: usize,
    /// API requests served at once at most; more get 503 `overloaded`.
    #[serde(default = "defaults::api_max_concurrent_requests")]
    pub api_max_concurrent_requests: usize,
    /// Open block streams (`/v1/stream/blocks`) at most; more get 503 `too_many_streams`.
    #[serde(default = "defaults::api_max_streams")]
    pub api_max_streams: usize,
    /// A connection whose next request's headers take longer than this is closed (slow or idle
    /// clients cannot hold connections).
    #[serde(default = "defaults::api_header_timeout_ms")]
    pub api_header_timeout_ms: u64,
    /// A request (its body included) must be answered within this; else 408 `request_timeout`.
    #[serde(default = "defaults::api_request_timeout_ms")]
    pub api_request_timeout_ms: u64,
}

mod defaults {
    use std::net::SocketAddr;

    pub fn p2p_listen() -> SocketAddr {
        SocketAddr::from(([0, 0, 0, 0], 7000))
    }
    pub fn api_listen() -> SocketAddr {
        SocketAddr::from(([0, 0, 0, 0], 8080))
    }
    pub fn mempool_capacity() -> usize {
        200_000
    }
    pub fn mempool_ttl_secs() -> u64 {
        120
    }
    pub fn max_body_bytes() -> usize {
        8 * 1024 * 1024
    }
    pub fn max_frame_bytes() -> usize {
        kubechain_network::NetworkConfig::DEFAULT_MAX_FRAME_BYTES
    }
    pub fn api_max_connections() -> usize {
        1024
    }
    pub fn api_max_concurrent_requests() -> usize {
        256
    }
    pub fn api_max_streams() -> usize {
        64
    }
    pub fn api_header_timeout_ms() -> u64 {
        10_000
    }
    pub fn api_request_timeout_ms() -> u64 {
        30_000
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse { path: PathBuf, source: serde_yaml::Error },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl NodeConfig {
    /// A config with every optional setting at its default.
    pub fn new(genesis: PathBuf, key_file: PathBuf, data_dir: PathBuf) -> NodeConfig {
        NodeConfig {
            genesis,
            key_file,
            data_dir,
            p2p_listen: defaults::p2p_listen(),
            api_listen: defaults::api_listen(),
            peers: Vec::new(),
            peers_file: None,
            mempool_capacity: defaults::mempool_capacity(),
            mempool_ttl_secs: defaults::mempool_ttl_secs(),
            max_body_bytes: defaults::max_body_bytes(),
            max_frame_bytes: defaults::max_frame_bytes(),
            api_token_file: None,
            api_max_connections: defaults::api_max_connections(),
            api_max_concurrent_requests: defaults::api_max_concurrent_requests(),
            api_max_streams: defaults::api_max_streams(),
            api_header_timeout_ms: defaults::api_header_timeout_ms(),
            api_request_timeout_ms: defaults::api_request_timeout_ms(),
        }
    }

    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let mut config: NodeConfig =
            serde_yaml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.into(), source })?;
        config.resolve_relative_to(path.parent().unwrap_or(Path::new(".")));
        config.check().map_err(|message| ConfigError::Invalid { path: path.into(), message })?;
        Ok(config)
    }

    /// Paths in a config file are relative to the file, so a directory of configs can move.
    fn resolve_relative_to(&mut self, base: &Path) {
        let optional = self.api_token_file.as_mut().into_iter().chain(self.peers_file.as_mut());
        for path in [&mut self.genesis, &mut self.key_file, &mut self.data_dir].into_iter().chain(optional) {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }

    /// `peers` and the peers file's entries (the file's win for the same key), by key.
    pub fn all_peers(&self) -> Result<Vec<PeerAddress>, ConfigError> {
        let mut by_key: std::collections::BTreeMap<PublicKey, String> =
            self.peers.iter().map(|peer| (peer.key, peer.address.clone())).collect();
        if let Some(path) = &self.peers_file {
            by_key.extend(read_peers_file(path)?.into_iter().map(|peer| (peer.key, peer.address)));
        }
        Ok(by_key.into_iter().map(|(key, address)| PeerAddress { key, address }).collect())
    }

    pub fn check(&self) -> Result<(), String> {
        if self.mempool_capacity == 0 {
            return Err("mempool_capacity must be at least 1".into());
        }
        if !(1..=86_400).contains(&self.mempool_ttl_secs) {
            return Err("mempool_ttl_secs must be between 1 and 86400".into());
        }
        if self.max_body_bytes < 1024 {
            return Err("max_body_bytes must be at least 1024".into());
        }
        if self.max_frame_bytes < 64 * 1024 {
            return Err("max_frame_bytes must be at least 65536".into());
        }
        let at_least_one = [
            ("api_max_connections", self.api_max_connections as u64),
            ("api_max_concurrent_requests", self.api_max_concurrent_requests as u64),
            ("api_max_streams", self.api_max_streams as u64),
            ("api_header_timeout_ms", self.api_header_timeout_ms),
            ("api_request_timeout_ms", self.api_request_timeout_ms),
        ];
        if let Some((name, _)) = at_least_one.iter().find(|(_, value)| *value == 0) {
            return Err(format!("{name} must be at least 1"));
        }
        Ok(())
    }
}

/// A peers file: see [`kubechain_network::parse_peer_list`].
pub fn read_peers_file(path: &Path) -> Result<Vec<PeerAddress>, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
    kubechain_network::parse_peer_list(&text)
        .map_err(|message| ConfigError::Invalid { path: path.into(), message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_gets_defaults_and_paths_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.yaml");
        std::fs::write(&path, "genesis: genesis.json\nkey_file: /keys/v0.key\ndata_dir: data\n").unwrap();
        let config = NodeConfig::load(&path).unwrap();
        assert_eq!(config.genesis, dir.path().join("genesis.json"));
        assert_eq!(config.key_file, PathBuf::from("/keys/v0.key"));
        assert_eq!(config.api_listen.port(), 8080);
        assert!(config.peers.is_empty());
    }

    #[test]
    fn the_peers_file_adds_to_and_overrides_the_configured_peers() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            kubechain_types::SigningKey::from_seed([1; 32]).public_key(),
            kubechain_types::SigningKey::from_seed([2; 32]).public_key(),
        );
        let path = dir.path().join("node.yaml");
        let node = format!(
            "genesis: g\nkey_file: k\ndata_dir: d\npeers_file: peers.yaml\npeers:\n- key: {a}\n  address: a:1\n"
        );
        std::fs::write(&path, node).unwrap();
        let config = NodeConfig::load(&path).unwrap();
        assert_eq!(config.peers_file, Some(dir.path().join("peers.yaml")));
        // A missing file is an error, never an empty list that would cut every learner off.
        assert!(matches!(config.all_peers(), Err(ConfigError::Read { .. })));
        std::fs::write(dir.path().join("peers.yaml"), "").unwrap();
        assert_eq!(config.all_peers().unwrap(), config.peers);
        std::fs::write(
            dir.path().join("peers.yaml"),
            format!("- key: {a}\n  address: a:2\n- key: {b}\n  address: b:1\n"),
        )
        .unwrap();
        let mut expected = vec![
            PeerAddress { key: a, address: "a:2".into() },
            PeerAddress { key: b, address: "b:1".into() },
        ];
        expected.sort_by_key(|peer| peer.key);
        assert_eq!(config.all_peers().unwrap(), expected);
        std::fs::write(dir.path().join("peers.yaml"), format!("- key: {a}\n  adress: a:2\n")).unwrap();
        assert!(config.all_peers().unwrap_err().to_string().contains("peers.yaml"));
        std::fs::write(dir.path().join("peers.yaml"), format!("- key: {a}\n  address: a\n")).unwrap();
        assert!(config.all_peers().unwrap_err().to_string().contains("host:port"));
        std::fs::write(dir.path().join("peers.yaml"), format!("- key: {a}\n  address: ''\n")).unwrap();
        assert!(matches!(config.all_peers(), Err(ConfigError::Invalid { .. })));
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused_with_the_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.yaml");
        std::fs::write(&path, "genesis: g\nkey_file: k\ndata_dir: d\nmempool_size: 3\n").unwrap();
        let error = NodeConfig::load(&path).unwrap_err().to_string();
        assert!(error.contains("node.yaml") && error.contains("mempool_size"), "{error}");
        std::fs::write(&path, "genesis: g\nkey_file: k\ndata_dir: d\nmempool_capacity: 0\n").unwrap();
        assert!(NodeConfig::load(&path).unwrap_err().to_string().contains("mempool_capacity"));
    }
}

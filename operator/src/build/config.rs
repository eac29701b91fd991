//! The node's configuration: `node.yaml` and `peers.yaml` in the ConfigMap `{chain}-peers`,
//! shared by every validator in a cluster (the node ignores its own entry among the peers, and its
//! key comes from its own Secret), so adding a validator changes one object instead of n.
//! `node.yaml` names `peers.yaml` as its `peers_file`, which the node reads again while it runs:
//! a peer address that changes (a validator added, removed, or reachable elsewhere) reaches the
//! running validators without restarting them; only `node.yaml`'s hash is in the pod template.
//!
//! [`NodeConfigFile`] mirrors the fields of the node's `NodeConfig` that the operator sets,
//! without depending on the node crate (it pulls RocksDB). `tests/fixtures/node.yaml` is written
//! by this crate's tests and parsed by the node's, so the two cannot drift apart unnoticed.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kubechain_types::{Hash, PublicKey};
use serde::{Deserialize, Serialize};

use super::genesis::GENESIS_FILE;
use super::keys::VALIDATOR_KEY_FILE;
use super::meta::{Component, ObjectContext, names};

/// Where the pod mounts the peers ConfigMap, the genesis ConfigMap, the key Secret and the volume.
pub const CONFIG_DIR: &str = "/etc/kubechain/config";
pub const GENESIS_DIR: &str = "/etc/kubechain/genesis";
pub const KEY_DIR: &str = "/etc/kubechain/key";
pub const DATA_DIR: &str = "/var/lib/kubechain";
/// Data keys of the peers ConfigMap; also the file names in the pod.
pub const NODE_CONFIG_FILE: &str = "node.yaml";
pub const PEERS_FILE: &str = "peers.yaml";

pub const P2P_PORT: u16 = 7000;
pub const API_PORT: u16 = 8080;

/// Where a validator listens for peer links, as the node's config lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerAddress {
    pub key: PublicKey,
    /// `host:port`; the node resolves DNS names at every dial.
    pub address: String,
}

impl PeerAddress {
    /// True when `address` ends in `:port` with a non-zero port after a non-empty host.
    pub fn is_well_formed(&self) -> bool {
        self.address
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|port| port > 0))
    }
}

/// The peer address of validator `index` of Blockchain `chain` through its Service in the
/// operator's own cluster. Addresses in other clusters (load balancers, node ports) come from
/// the Services' status.
pub fn service_peer_address(chain: &str, namespace: &str, index: u32) -> String {
    format!("{}.{namespace}.svc:{P2P_PORT}", names::validator(chain, index))
}

/// Every validator's peer address through its Service in the operator's own cluster, in the
/// order of `validators` (genesis order: index i is validator i).
pub fn service_peer_addresses(chain: &str, namespace: &str, validators: &[PublicKey]) -> Vec<PeerAddress> {
    (0u32..)
        .zip(validators)
        .map(|(index, key)| PeerAddress { key: *key, address: service_peer_address(chain, namespace, index) })
        .collect()
}

/// The subset of the node's `NodeConfig` the operator writes; the node's defaults cover the rest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfigFile {
    pub genesis: String,
    pub key_file: String,
    pub data_dir: String,
    pub p2p_listen: String,
    pub api_listen: String,
    pub peers_file: String,
}

impl NodeConfigFile {
    /// The config of a validator pod built by [`super::statefulset`]; its peers are in
    /// [`PEERS_FILE`] beside it.
    pub fn for_pod() -> NodeConfigFile {
        NodeConfigFile {
            genesis: format!("{GENESIS_DIR}/{GENESIS_FILE}"),
            key_file: format!("{KEY_DIR}/{VALIDATOR_KEY_FILE}"),
            data_dir: DATA_DIR.to_string(),
            p2p_listen: format!("0.0.0.0:{P2P_PORT}"),
            api_listen: format!("0.0.0.0:{API_PORT}"),
            peers_file: format!("{CONFIG_DIR}/{PEERS_FILE}"),
        }
    }

    pub fn to_yaml(&self) -> String {
        let body = serde_yaml::to_string(self).expect("a node config always serializes");
        format!("# Written by kubechain-operator from the Blockchain; edits are overwritten.\n{body}")
    }
}

/// `node.yaml` and its hash (a pod-template annotation, so a change restarts validators), and
/// `peers.yaml` (read live by the nodes, so not hashed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfigText {
    pub yaml: String,
    pub hash: Hash,
    pub peers_yaml: String,
}

impl NodeConfigText {
    pub fn new(config: &NodeConfigFile, peers: &[PeerAddress]) -> NodeConfigText {
        let yaml = config.to_yaml();
        let hash = Hash::digest(yaml.as_bytes());
        let body = serde_yaml::to_string(peers).expect("peer addresses always serialize");
        let peers_yaml =
            format!("# Written by kubechain-operator from the Blockchain; edits are overwritten.\n{body}");
        NodeConfigText { yaml, hash, peers_yaml }
    }
}

/// The ConfigMap `{chain}-peers` with `node.yaml` and `peers.yaml`.
pub fn peers_config_map(context: &ObjectContext, config: &NodeConfigText) -> ConfigMap {
    ConfigMap {
        metadata: context.metadata(names::peers_config_map(context.name()), Component::Peers),
        data: Some(BTreeMap::from([
            (NODE_CONFIG_FILE.to_string(), config.yaml.clone()),
            (PEERS_FILE.to_string(), config.peers_yaml.clone()),
        ])),
        ..ConfigMap::default()
    }
}

//! The node reads the config, peers and genesis the operator writes. The operator writes node.yaml,
//! peers.yaml and genesis.json without depending on this crate; its build tests keep operator/tests/fixtures
//! equal to what it writes, and this test keeps them readable here.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use kubechain_node::config::read_peers_file;
use kubechain_node::{NodeConfig, read_genesis};
use kubechain_types::PublicKey;

#[test]
fn the_operators_node_config_and_genesis_are_accepted() {
    // At run time (cargo sets it): a cached test binary may come from another checkout.
    let manifest_dir: PathBuf = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    let fixtures = manifest_dir.join("../../operator/tests/fixtures");
    let config = NodeConfig::load(&fixtures.join("node.yaml")).unwrap();
    assert_eq!(config.genesis, PathBuf::from("/etc/kubechain/genesis/genesis.json"));
    assert_eq!(config.key_file, PathBuf::from("/etc/kubechain/key/validator.key"));
    assert_eq!(config.data_dir, PathBuf::from("/var/lib/kubechain"));
    assert_eq!((config.p2p_listen.port(), config.api_listen.port()), (7000, 8080));
    let genesis = read_genesis(&fixtures.join("genesis.json")).unwrap();
    assert_eq!(config.peers_file, Some(PathBuf::from("/etc/kubechain/config/peers.yaml")));
    let peers = read_peers_file(&fixtures.join("peers.yaml")).unwrap();
    let peer_keys: Vec<PublicKey> = peers.iter().map(|peer| peer.key).collect();
    assert_eq!(peer_keys, genesis.validators);
    assert_eq!(genesis.members.len(), 1);
}

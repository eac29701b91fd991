//! Tests of the builders: pure, no cluster.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{PodSpec, Secret, Service};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kubechain_crds::limits;
use kubechain_crds::{MemberSpec, PlacementSpec, Provider, ServiceSpec, ServiceType};
use kubechain_types::{PublicKey, SigningKey};

use super::meta::{annotations, check_name, image_tag, labels, names};
use super::*;

const NAME: &str = "trade";
const NAMESPACE: &str = "ledger";
const UID: &str = "6c1f2a52-5a7e-4c57-9d3b-0a1e3f1b2c3d";
const GENESIS_TIME_MS: u64 = 1_700_000_000_000;

/// Test fixtures as builders: `Blockchain::test().with_validators(7)`.
trait TestBlockchain: Sized {
    fn test() -> Self;
    fn with_validators(self, validators: u32) -> Self;
    fn with_spec(self, change: impl FnOnce(&mut kubechain_crds::BlockchainSpec)) -> Self;
}

impl TestBlockchain for Blockchain {
    fn test() -> Blockchain {
        let mut blockchain = Blockchain::new(
            NAME,
            kubechain_crds::BlockchainSpec::new("trade-ledger-1", 4, "kubechain/node:0.1.0"),
        );
        blockchain.metadata.namespace = Some(NAMESPACE.to_string());
        blockchain.metadata.uid = Some(UID.to_string());
        blockchain
    }

    fn with_validators(mut self, validators: u32) -> Blockchain {
        self.spec.validators = validators;
        self
    }

    fn with_spec(mut self, change: impl FnOnce(&mut kubechain_crds::BlockchainSpec)) -> Blockchain {
        change(&mut self.spec);
        self
    }
}

/// Validator `i`'s key; deterministic so fixtures are stable.
fn validator_key(index: u32) -> SigningKey {
    SigningKey::from_seed([index as u8 + 1; 32])
}

fn admin_key() -> SigningKey {
    SigningKey::from_seed([0xad; 32])
}

fn genesis_of(blockchain: &Blockchain) -> GenesisDocument {
    let validators: Vec<PublicKey> =
        (0..blockchain.spec.validators).map(|index| validator_key(index).public_key()).collect();
    let genesis = build_genesis(&blockchain.spec, &validators, admin_key().public_key(), GENESIS_TIME_MS)
        .expect("a valid genesis");
    GenesisDocument::new(genesis)
}

fn local_peers(blockchain: &Blockchain) -> Vec<PeerAddress> {
    (0..blockchain.spec.validators)
        .map(|index| PeerAddress {
            key: validator_key(index).public_key(),
            address: service_peer_address(NAME, NAMESPACE, index),
        })
        .collect()
}

fn build_with(blockchain: &Blockchain, ownership: Ownership) -> Result<Desired, BuildError> {
    let genesis = genesis_of(blockchain);
    let peers = local_peers(blockchain);
    let validators: Vec<u32> = (0..blockchain.spec.validators).collect();
    desired(&ClusterInput {
        blockchain,
        genesis: &genesis,
        placement: None,
        validators: &validators,
        peers: &peers,
        fault_tolerance: blockchain.spec.fault_tolerance(),
        peer_sources: &[],
        api_clients: &ApiClients::default(),
        ownership,
    })
}

fn build(blockchain: &Blockchain) -> Desired {
    build_with(blockchain, Ownership::Owned).expect("objects build")
}

/// (kind, metadata) of every object in `desired`.
fn all_metadata(desired: &Desired) -> Vec<(&'static str, ObjectMeta)> {
    let mut all = vec![
        ("ConfigMap", desired.genesis.metadata.clone()),
        ("ConfigMap", desired.peers.metadata.clone()),
        ("Service", desired.headless_service.metadata.clone()),
        ("Service", desired.api_service.metadata.clone()),
        ("PodDisruptionBudget", desired.pod_disruption_budget.metadata.clone()),
        ("NetworkPolicy", desired.network_policy.metadata.clone()),
    ];
    all.extend(desired.validator_services.iter().map(|service| ("Service", service.metadata.clone())));
    all.extend(desired.stateful_sets.iter().map(|set| ("StatefulSet", set.metadata.clone())));
    all.extend(desired.service_monitor.iter().map(|monitor| ("ServiceMonitor", monitor.metadata.clone())));
    all
}

fn pod_spec(desired: &Desired, position: usize) -> &PodSpec {
    let set = &desired.stateful_sets[position];
    set.spec.as_ref().and_then(|spec| spec.template.spec.as_ref()).expect("a pod spec")
}

fn label(metadata: &ObjectMeta, key: &str) -> Option<String> {
    metadata.labels.as_ref().and_then(|labels| labels.get(key)).cloned()
}

fn node_config(desired: &Desired) -> NodeConfigFile {
    let yaml = &desired.peers.data.as_ref().expect("data")[config::NODE_CONFIG_FILE];
    serde_yaml::from_str(yaml).expect("node.yaml parses with deny_unknown_fields")
}

fn peers_file(desired: &Desired) -> Vec<PeerAddress> {
    let yaml = &desired.peers.data.as_ref().expect("data")[config::PEERS_FILE];
    serde_yaml::from_str(yaml).expect("peers.yaml parses with deny_unknown_fields")
}

#[test]
fn every_object_has_its_name_labels_and_owner_reference() {
    let blockchain = Blockchain::test().with_spec(|spec| spec.monitoring.service_monitor = true);
    let desired = build(&blockchain);
    let context = ObjectContext::new(&blockchain, Ownership::Owned).unwrap();
    let keys = [
        validator_key_secret(&context, 0, &validator_key(0)).into_secret().metadata,
        admin_key_secret(&context, &admin_key()).into_secret().metadata,
    ];
    let everything = all_metadata(&desired).into_iter().chain(keys.into_iter().map(|meta| ("Secret", meta)));

    let mut names_seen = Vec::new();
    for (kind, metadata) in everything {
        let name = metadata.name.clone().unwrap();
        assert!(name.starts_with("trade-"), "{kind} {name}");
        assert_eq!(metadata.namespace.as_deref(), Some(NAMESPACE), "{kind} {name}");
        for (key, value) in [
            (labels::NAME, "kubechain"),
            (labels::INSTANCE, NAME),
            (labels::MANAGED_BY, "kubechain-operator"),
            (labels::PART_OF, "kubechain"),
        ] {
            assert_eq!(label(&metadata, key).as_deref(), Some(value), "{kind} {name} label {key}");
        }
        assert!(label(&metadata, labels::COMPONENT).is_some(), "{kind} {name}");
        let owners = metadata.owner_references.clone().unwrap_or_default();
        assert_eq!(owners.len(), 1, "{kind} {name}");
        let owner = &owners[0];
        assert_eq!(
            (owner.api_version.as_str(), owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("kubechain.dev/v1alpha1", "Blockchain", NAME, UID),
            "{kind} {name}"
        );
        assert_eq!((owner.controller, owner.block_owner_deletion), (Some(true), Some(true)), "{kind} {name}");
        names_seen.push(format!("{kind}/{name}"));
    }
    for expected in [
        "ConfigMap/trade-genesis",
        "ConfigMap/trade-peers",
        "Service/trade-validators",
        "Service/trade-validator-3",
        "StatefulSet/trade-validator-0",
        "PodDisruptionBudget/trade-validators",
        "NetworkPolicy/trade-validators",
        "ServiceMonitor/trade-validators",
        "Secret/trade-validator-0-key",
        "Secret/trade-admin-key",
    ] {
        assert!(names_seen.iter().any(|seen| seen == expected), "{expected} missing from {names_seen:?}");
    }

    let component = |metadata: &ObjectMeta| label(metadata, labels::COMPONENT).unwrap();
    assert_eq!(component(&desired.genesis.metadata), "genesis");
    assert_eq!(component(&desired.peers.metadata), "peers");
    assert_eq!(component(&desired.stateful_sets[0].metadata), "validator");
    assert_eq!(label(&desired.stateful_sets[0].metadata, labels::VERSION).as_deref(), Some("0.1.0"));
}

#[test]
fn remote_clusters_get_no_owner_references_and_owned_objects_need_a_uid() {
    let blockchain = Blockchain::test();
    let desired = build_with(&blockchain, Ownership::Unowned).unwrap();
    for (kind, metadata) in all_metadata(&desired) {
        assert_eq!(metadata.owner_references, None, "{kind} {:?}", metadata.name);
    }
    let mut unsaved = Blockchain::test();
    unsaved.metadata.uid = None;
    assert_eq!(build_with(&unsaved, Ownership::Owned), Err(BuildError::Missing("metadata.uid")));
    assert!(build_with(&unsaved, Ownership::Unowned).is_ok());
}

#[test]
fn four_validators_give_four_stateful_sets_each_mounting_only_its_own_key() {
    let desired = build(&Blockchain::test().with_validators(4));
    assert_eq!(desired.stateful_sets.len(), 4);
    assert_eq!(desired.validator_services.len(), 4);
    for (index, set) in desired.stateful_sets.iter().enumerate() {
        let spec = set.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(spec.service_name.as_deref(), Some("trade-validators"));
        let selector = spec.selector.match_labels.as_ref().unwrap();
        assert_eq!(selector.get(labels::VALIDATOR), Some(&index.to_string()));
        let template_labels = spec.template.metadata.as_ref().unwrap().labels.as_ref().unwrap();
        assert!(selector.iter().all(|(key, value)| template_labels.get(key) == Some(value)));

        let secrets: Vec<_> = pod_spec(&desired, index)
            .volumes
            .iter()
            .flatten()
            .filter_map(|volume| volume.secret.as_ref())
            .map(|secret| secret.secret_name.clone().unwrap())
            .collect();
        assert_eq!(secrets, vec![format!("trade-validator-{index}-key")]);
    }
    for (index, service) in desired.validator_services.iter().enumerate() {
        let selector = service.spec.as_ref().unwrap().selector.clone().unwrap();
        assert_eq!(selector.get(labels::VALIDATOR), Some(&index.to_string()));
        assert_eq!(selector.get(labels::INSTANCE).map(String::as_str), Some(NAME));
    }
}

#[test]
fn clients_reach_only_ready_validators_and_only_their_api() {
    let desired = build(&Blockchain::test().with_validators(4));
    let service = &desired.api_service;
    assert_eq!(service.metadata.name.as_deref(), Some("trade-api"));
    let spec = service.spec.as_ref().unwrap();
    // Not-ready (catching-up) validators stay out; peers use their own Services.
    assert_ne!(spec.publish_not_ready_addresses, Some(true));
    let selector = spec.selector.clone().unwrap();
    assert_eq!(selector.get(labels::VALIDATOR), None, "every validator, not one");
    assert_eq!(selector.get(labels::INSTANCE).map(String::as_str), Some(NAME));
    let ports: Vec<i32> = spec.ports.iter().flatten().map(|port| port.port).collect();
    assert_eq!(ports, vec![8080]);
    let labels = service.metadata.labels.as_ref().unwrap();
    assert!(
        !labels.contains_key(labels::SCRAPE),
        "the ServiceMonitor must not scrape it: twice, and only ready ones"
    );
}

#[test]
fn node_yaml_parses_and_peers_yaml_lists_every_validator_at_its_service() {
    let blockchain = Blockchain::test().with_validators(4);
    let desired = build(&blockchain);
    let config = node_config(&desired);
    assert_eq!(config.genesis, "/etc/kubechain/genesis/genesis.json");
    assert_eq!(config.key_file, "/etc/kubechain/key/validator.key");
    assert_eq!(config.data_dir, "/var/lib/kubechain");
    assert_eq!((config.p2p_listen.as_str(), config.api_listen.as_str()), ("0.0.0.0:7000", "0.0.0.0:8080"));
    assert_eq!(config.peers_file, "/etc/kubechain/config/peers.yaml");
    // One file for all: every validator finds the other three (it skips its own entry).
    let peers = peers_file(&desired);
    for index in 0..4 {
        let others: Vec<_> =
            peers.iter().filter(|peer| peer.key != validator_key(index).public_key()).collect();
        assert_eq!(others.len(), 3, "validator {index}");
    }
    assert_eq!(peers[2].address, "trade-validator-2.ledger.svc:7000");
    assert_eq!(
        peers.iter().map(|peer| peer.key).collect::<Vec<_>>(),
        genesis_of(&blockchain).genesis().validators
    );
}

#[test]
fn a_change_of_genesis_changes_the_pod_template_and_a_change_of_peers_does_not() {
    let blockchain = Blockchain::test();
    let template_annotations = |desired: &Desired| {
        desired.stateful_sets[0]
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .clone()
            .unwrap()
    };
    let before = template_annotations(&build(&blockchain));
    assert_eq!(before[annotations::GENESIS_HASH], genesis_of(&blockchain).hash().to_hex());

    let genesis = genesis_of(&blockchain);
    let mut peers = local_peers(&blockchain);
    peers[1].address = "203.0.113.7:31000".to_string();
    let moved = desired_with_peers(&blockchain, &genesis, &peers).unwrap();
    // The nodes read peers.yaml again while they run: no restart for a moved peer.
    let after = template_annotations(&moved);
    assert_eq!(after, before);
    assert_eq!(peers_file(&moved)[1].address, "203.0.113.7:31000");
}

/// Validator 0's objects in the operator's own cluster, with the given peer list.
fn desired_with_peers(
    blockchain: &Blockchain,
    genesis: &GenesisDocument,
    peers: &[PeerAddress],
) -> Result<Desired, BuildError> {
    desired(&ClusterInput {
        blockchain,
        genesis,
        placement: None,
        validators: &[0],
        peers,
        fault_tolerance: 1,
        peer_sources: &[],
        api_clients: &ApiClients::default(),
        ownership: Ownership::Owned,
    })
}

#[test]
fn malformed_peer_addresses_are_refused() {
    let blockchain = Blockchain::test();
    let genesis = genesis_of(&blockchain);
    for address in ["no-port", ":7000", "host:0", "host:http"] {
        let mut peers = local_peers(&blockchain);
        peers[3].address = address.to_string();
        let result = desired_with_peers(&blockchain, &genesis, &peers);
        assert!(matches!(result, Err(BuildError::PeerAddress { .. })), "{address}: {result:?}");
    }
}

#[test]
fn genesis_config_map_is_immutable_and_pinned_by_its_hash() {
    let blockchain = Blockchain::test();
    let document = genesis_of(&blockchain);
    let config_map = build(&blockchain).genesis;
    assert_eq!(config_map.immutable, Some(true));
    let annotations = config_map.metadata.annotations.clone().unwrap();
    assert_eq!(annotations[annotations::GENESIS_HASH], document.genesis().hash().to_hex());

    // What the node's read_genesis parses: the serde JSON of kubechain_types::Genesis.
    let json = &config_map.data.as_ref().unwrap()[genesis::GENESIS_FILE];
    let parsed: kubechain_types::Genesis = serde_json::from_str(json).unwrap();
    assert_eq!(&parsed, document.genesis());
    assert_eq!(parsed.admins[0], admin_key().public_key());

    assert_eq!(GenesisDocument::from_config_map(&config_map).unwrap(), document);
    let mut tampered = config_map.clone();
    tampered.metadata.annotations.as_mut().unwrap().insert(annotations::GENESIS_HASH.into(), "00".repeat(32));
    let error = GenesisDocument::from_config_map(&tampered).unwrap_err();
    assert!(error.contains("hashes to") && error.contains(&document.hash().to_hex()), "{error}");
}

#[test]
fn genesis_follows_the_spec_and_reports_bad_keys_by_path() {
    let good = validator_key(50).public_key().to_hex();
    let off_curve = (2u8..=255)
        .map(|y| {
            let mut bytes = [0u8; 32];
            bytes[0] = y;
            PublicKey(bytes)
        })
        .find(|key| !key.is_valid())
        .expect("an encoding that is not a usable key")
        .to_hex();
    let blockchain = Blockchain::test().with_spec(|spec| {
        spec.consensus.pow_difficulty_bits = 3;
        spec.members =
            vec![MemberSpec { name: "acme".into(), public_keys: vec![good.clone(), off_curve.clone()] }];
        spec.admins = vec!["zz".repeat(32)];
    });
    let validators: Vec<PublicKey> = (0..4).map(|index| validator_key(index).public_key()).collect();
    let error = build_genesis(&blockchain.spec, &validators, admin_key().public_key(), 0).unwrap_err();
    assert!(
        error.contains(&format!(
            "spec.members[0].publicKeys[1]: {off_curve} is not a usable ed25519 public key"
        )),
        "{error}"
    );
    assert!(error.contains("spec.admins[0]") && error.contains("64 hex characters"), "{error}");

    let fixed = blockchain.with_spec(|spec| {
        spec.members[0].public_keys.pop();
        spec.admins = vec![validator_key(60).public_key().to_hex()];
    });
    let genesis = build_genesis(&fixed.spec, &validators, admin_key().public_key(), 7).unwrap();
    assert_eq!(genesis.chain_id, "trade-ledger-1");
    assert_eq!(genesis.genesis_time_ms, 7);
    assert_eq!(genesis.validators, validators);
    assert_eq!(genesis.admins, vec![admin_key().public_key(), validator_key(60).public_key()]);
    assert_eq!(genesis.members[0].public_keys, vec![validator_key(50).public_key()]);
    assert_eq!(genesis.params.pow_difficulty_bits, 3);

    let error = build_genesis(&fixed.spec, &validators[..3], admin_key().public_key(), 0).unwrap_err();
    assert!(error.contains("3 validator keys given for spec.validators = 4"), "{error}");
}

#[test]
fn the_largest_genesis_the_crd_allows_fits_in_a_config_map() {
    let key_count = limits::MAX_MEMBERS * limits::MAX_MEMBER_KEYS;
    let mut next_seed = 0u32;
    let mut fresh_key = || {
        next_seed += 1;
        let mut seed = [0u8; 32];
        seed[..4].copy_from_slice(&next_seed.to_le_bytes());
        SigningKey::from_seed(seed).public_key()
    };
    let members: Vec<MemberSpec> = (0..limits::MAX_MEMBERS)
        .map(|member| MemberSpec {
            // The longest name genesis accepts: a DNS label.
            name: format!("m{member:0>62}"),
            public_keys: (0..limits::MAX_MEMBER_KEYS).map(|_| fresh_key().to_hex()).collect(),
        })
        .collect();
    let admins = (0..limits::MAX_ADMINS).map(|_| fresh_key().to_hex()).collect();
    let validators: Vec<PublicKey> = (0..limits::MAX_VALIDATORS).map(|_| fresh_key()).collect();
    let blockchain = Blockchain::test().with_validators(limits::MAX_VALIDATORS).with_spec(|spec| {
        spec.members = members;
        spec.admins = admins;
    });
    let genesis = build_genesis(&blockchain.spec, &validators, fresh_key(), u64::MAX).unwrap();
    assert_eq!(
        genesis.members.iter().map(|member| member.public_keys.len()).sum::<usize>(),
        key_count as usize
    );
    let bytes = GenesisDocument::new(genesis).json().len();
    // A ConfigMap holds at most 1 MiB of data; keep room for metadata.
    assert!(bytes < 900 * 1024, "genesis.json of {bytes} bytes");
}

#[test]
fn pod_disruption_budget_allows_f_validators_down() {
    for (validators, f) in [(1, 0), (3, 0), (4, 1), (7, 2)] {
        let desired = build(&Blockchain::test().with_validators(validators));
        let spec = desired.pod_disruption_budget.spec.unwrap();
        assert_eq!(spec.max_unavailable, Some(IntOrString::Int(f)), "{validators} validators");
        assert_eq!(spec.min_available, None);
        let selector = spec.selector.unwrap().match_labels.unwrap();
        assert_eq!(selector.get(labels::COMPONENT).map(String::as_str), Some("validator"));
        assert_eq!(selector.get(labels::INSTANCE).map(String::as_str), Some(NAME));
    }
}

#[test]
fn validators_run_unprivileged_with_a_read_only_root() {
    let desired = build(&Blockchain::test());
    let pod = pod_spec(&desired, 0);
    let security = pod.security_context.as_ref().unwrap();
    assert_eq!(security.run_as_non_root, Some(true));
    assert_eq!(
        (security.run_as_user, security.run_as_group, security.fs_group),
        (Some(10001), Some(10001), Some(10001))
    );
    assert_eq!(security.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
    assert_eq!(pod.automount_service_account_token, Some(false));
    let container = &pod.containers[0];
    let security = container.security_context.as_ref().unwrap();
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.capabilities.as_ref().unwrap().drop, Some(vec!["ALL".to_string()]));
    let key_volume = pod.volumes.iter().flatten().find_map(|volume| volume.secret.as_ref()).unwrap();
    assert_eq!(key_volume.default_mode, Some(0o400));
}

#[test]
fn the_validator_container_runs_the_node_with_probes_volumes_and_storage() {
    let blockchain = Blockchain::test().with_spec(|spec| {
        spec.storage.size = "20Gi".into();
        spec.storage.storage_class_name = Some("gp3".into());
        spec.image_pull_policy = kubechain_crds::ImagePullPolicy::Never;
        spec.resources = Some(k8s_openapi::api::core::v1::ResourceRequirements {
            limits: Some(BTreeMap::from([("memory".to_string(), Quantity("1Gi".to_string()))])),
            ..Default::default()
        });
    });
    let desired = build(&blockchain);
    let set = desired.stateful_sets[1].spec.as_ref().unwrap();
    assert_eq!(set.pod_management_policy.as_deref(), Some("Parallel"));
    assert_eq!(set.update_strategy.as_ref().unwrap().type_.as_deref(), Some("OnDelete"));
    let retention = set.persistent_volume_claim_retention_policy.as_ref().unwrap();
    assert_eq!(retention.when_deleted.as_deref(), Some("Retain"));

    let pod = pod_spec(&desired, 1);
    assert_eq!(pod.termination_grace_period_seconds, Some(30));
    let container = &pod.containers[0];
    assert_eq!(container.name, "node");
    assert_eq!(container.image.as_deref(), Some("kubechain/node:0.1.0"));
    assert_eq!(container.image_pull_policy.as_deref(), Some("Never"));
    assert_eq!(container.resources, blockchain.spec.resources);
    assert_eq!(container.command, Some(vec!["kubechain".to_string()]));
    assert_eq!(
        container.args.clone().unwrap(),
        ["node", "run", "--config", "/etc/kubechain/config/node.yaml"].map(String::from)
    );
    let env = &container.env.as_ref().unwrap()[0];
    assert_eq!((env.name.as_str(), env.value.as_deref()), ("KUBECHAIN_LOG_FORMAT", Some("json")));
    let ports: Vec<_> = container
        .ports
        .iter()
        .flatten()
        .map(|port| (port.name.clone().unwrap(), port.container_port))
        .collect();
    assert_eq!(ports, vec![("api".to_string(), 8080), ("p2p".to_string(), 7000)]);
    let probe_path = |probe: &Option<k8s_openapi::api::core::v1::Probe>| {
        let http = probe.as_ref().unwrap().http_get.clone().unwrap();
        (http.path.unwrap(), http.port)
    };
    assert_eq!(probe_path(&container.readiness_probe), ("/readyz".into(), IntOrString::String("api".into())));
    assert_eq!(probe_path(&container.liveness_probe).0, "/healthz");
    assert!(container.liveness_probe.as_ref().unwrap().failure_threshold.unwrap() >= 6);

    let mounts: BTreeMap<_, _> = container
        .volume_mounts
        .iter()
        .flatten()
        .map(|mount| (mount.mount_path.clone(), (mount.name.clone(), mount.read_only)))
        .collect();
    assert_eq!(mounts["/etc/kubechain/config"], ("config".into(), Some(true)));
    assert_eq!(mounts["/etc/kubechain/genesis"], ("genesis".into(), Some(true)));
    assert_eq!(mounts["/etc/kubechain/key"], ("key".into(), Some(true)));
    assert_eq!(mounts["/var/lib/kubechain"], ("data".into(), Some(false)));
    let config_maps: Vec<_> = pod
        .volumes
        .iter()
        .flatten()
        .filter_map(|volume| volume.config_map.as_ref())
        .map(|cm| cm.name.clone())
        .collect();
    assert_eq!(config_maps, vec!["trade-peers", "trade-genesis"]);

    let claim = &set.volume_claim_templates.as_ref().unwrap()[0];
    assert_eq!(claim.metadata.name.as_deref(), Some("data"));
    assert_eq!(label(&claim.metadata, labels::VERSION), None, "claim templates cannot change later");
    let claim = claim.spec.as_ref().unwrap();
    assert_eq!(claim.access_modes, Some(vec!["ReadWriteOnce".to_string()]));
    assert_eq!(claim.storage_class_name.as_deref(), Some("gp3"));
    assert_eq!(claim.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0, "20Gi");

    let deleting = build(&blockchain.with_spec(|spec| spec.storage.retain_on_delete = false));
    let policy =
        deleting.stateful_sets[0].spec.as_ref().unwrap().persistent_volume_claim_retention_policy.clone();
    assert_eq!(policy.unwrap().when_deleted.as_deref(), Some("Delete"));
}

#[test]
fn services_publish_unready_validators_with_the_placement_type_and_annotations() {
    let local = build(&Blockchain::test());
    let headless = local.headless_service.spec.as_ref().unwrap();
    assert_eq!(headless.cluster_ip.as_deref(), Some("None"));
    assert_eq!(headless.publish_not_ready_addresses, Some(true));
    let port_names: Vec<_> =
        headless.ports.iter().flatten().map(|port| (port.name.clone().unwrap(), port.port)).collect();
    assert_eq!(port_names, vec![("api".to_string(), 8080), ("p2p".to_string(), 7000)]);
    let single = local.validator_services[0].spec.as_ref().unwrap();
    assert_eq!(single.type_.as_deref(), Some("ClusterIP"));
    // A peer Service carries the peer port only: across clouds it faces the internet.
    let peer_ports: Vec<_> =
        single.ports.iter().flatten().map(|port| (port.name.clone().unwrap(), port.port)).collect();
    assert_eq!(peer_ports, vec![("p2p".to_string(), 7000)]);
    let api_ports: Vec<_> =
        local.api_service.spec.as_ref().unwrap().ports.iter().flatten().map(|port| port.port).collect();
    assert_eq!(api_ports, vec![8080]);
    assert_eq!(single.publish_not_ready_addresses, Some(true));

    let mut aws = PlacementSpec::remote("aws", Provider::Aws, 2, "aws-kubeconfig");
    let clouds = Blockchain::test().with_spec(|spec| {
        spec.placement = vec![
            aws.clone(),
            PlacementSpec::remote("azure", Provider::Azure, 1, "azure-kubeconfig"),
            PlacementSpec::remote("gcp", Provider::Gcp, 1, "gcp-kubeconfig"),
        ]
    });
    assert_eq!(services::peer_service_type(&clouds.spec, Some(&aws)), ServiceType::LoadBalancer);
    // A load balancer gets the provider's defaults, under the placement's own annotations.
    let over = "service.beta.kubernetes.io/aws-load-balancer-scheme";
    aws.service = Some(ServiceSpec {
        annotations: BTreeMap::from([(over.to_string(), "internal".to_string())]),
        ..ServiceSpec::default()
    });
    let unowned = ObjectContext::new(&clouds, Ownership::Unowned).unwrap();
    let balanced = validator_services(&unowned, &clouds.spec, Some(&aws), &[0]);
    let annotations = balanced[0].metadata.annotations.clone().unwrap();
    assert_eq!(annotations["service.beta.kubernetes.io/aws-load-balancer-type"], "nlb");
    assert_eq!(annotations[over], "internal");
    assert_eq!(balanced[0].spec.as_ref().unwrap().type_.as_deref(), Some("LoadBalancer"));
    aws.service = Some(ServiceSpec {
        type_: Some(ServiceType::NodePort),
        annotations: BTreeMap::from([("cloud.example/lb".to_string(), "internal".to_string())]),
        advertised_host: None,
    });
    let genesis = genesis_of(&clouds);
    let peers = local_peers(&clouds);
    let in_aws = desired(&ClusterInput {
        blockchain: &clouds,
        genesis: &genesis,
        placement: Some(&aws),
        validators: &[0, 1],
        peers: &peers,
        fault_tolerance: 1,
        peer_sources: &["10.251.0.2/32".to_string()],
        api_clients: &ApiClients { namespaces: Vec::new(), cidrs: vec!["172.20.0.0/16".into()] },
        ownership: Ownership::Unowned,
    })
    .unwrap();
    assert_eq!(in_aws.stateful_sets.len(), 2);
    let service = &in_aws.validator_services[1];
    assert_eq!(service.spec.as_ref().unwrap().type_.as_deref(), Some("NodePort"));
    let annotations = service.metadata.annotations.as_ref().unwrap();
    assert_eq!(annotations["cloud.example/lb"], "internal");
    assert!(
        !annotations.keys().any(|key| key.contains("aws-load-balancer")),
        "no load balancer, no defaults"
    );
    assert_eq!(label(&service.metadata, labels::VALIDATOR).as_deref(), Some("1"));
    assert_eq!(service.spec.as_ref().unwrap().external_traffic_policy.as_deref(), Some("Local"));
    let rules = in_aws.network_policy.spec.unwrap().ingress.unwrap();
    let blocks: Vec<_> = rules[0]
        .from
        .iter()
        .flatten()
        .filter_map(|peer| peer.ip_block.as_ref().map(|b| b.cidr.as_str()))
        .collect();
    assert_eq!(blocks, ["10.251.0.2/32"]);
    // The API: this namespace's pods, and the member API server's range (its pod proxy).
    let api_blocks: Vec<_> = rules[1]
        .from
        .iter()
        .flatten()
        .filter_map(|peer| peer.ip_block.as_ref().map(|b| b.cidr.as_str()))
        .collect();
    assert_eq!(api_blocks, ["172.20.0.0/16"]);
}

#[test]
fn network_policy_admits_peers_only_from_validators_and_clients_only_to_the_api() {
    let blockchain = Blockchain::test();
    let (genesis, peers) = (genesis_of(&blockchain), local_peers(&blockchain));
    let api_clients =
        ApiClients { namespaces: vec!["kubechain-system".into(), "monitoring".into()], cidrs: Vec::new() };
    let policy = desired(&ClusterInput {
        blockchain: &blockchain,
        genesis: &genesis,
        placement: None,
        validators: &[0, 1, 2, 3],
        peers: &peers,
        fault_tolerance: 1,
        peer_sources: &[],
        api_clients: &api_clients,
        ownership: Ownership::Owned,
    })
    .unwrap()
    .network_policy
    .spec
    .unwrap();
    assert_eq!(policy.policy_types, Some(vec!["Ingress".to_string()]));
    let rules = policy.ingress.unwrap();
    let ports = |rule: &k8s_openapi::api::networking::v1::NetworkPolicyIngressRule| -> Vec<_> {
        rule.ports
            .iter()
            .flatten()
            .map(|port| (port.protocol.clone().unwrap(), port.port.clone().unwrap()))
            .collect()
    };
    assert_eq!(rules.len(), 2);
    assert_eq!(ports(&rules[0]), [("TCP".to_string(), IntOrString::Int(7000))]);
    let from = rules[0].from.as_ref().expect("peers only from validators");
    assert_eq!(from.len(), 1, "one cluster: this chain's validator pods and nobody else");
    let peers = from[0].pod_selector.as_ref().unwrap().match_labels.as_ref().unwrap();
    assert_eq!(peers.get(labels::COMPONENT).map(String::as_str), Some("validator"));
    assert_eq!(peers.get(labels::INSTANCE).map(String::as_str), Some(NAME));
    assert_eq!(ports(&rules[1]), [("TCP".to_string(), IntOrString::Int(8080))]);
    // The API from this namespace's pods and the named namespaces' (the operator's, monitoring's)
    // only: nobody else's, and not through the peer Services.
    let api_from = rules[1].from.as_ref().expect("the API is not open to all");
    assert_eq!(api_from[0].pod_selector, Some(Default::default()), "every pod of this namespace");
    assert_eq!(api_from[0].namespace_selector, None);
    let namespaces: Vec<_> = api_from[1..]
        .iter()
        .map(|peer| peer.namespace_selector.as_ref().unwrap().match_labels.as_ref().unwrap()["kubernetes.io/metadata.name"].clone())
        .collect();
    assert_eq!(namespaces, ["kubechain-system", "monitoring"]);

    // In the operator's own cluster its namespace joins, once; in a member cluster it does not.
    let configured = ApiClients { namespaces: vec!["monitoring".into()], cidrs: Vec::new() };
    assert_eq!(
        configured.with_operator(Some("kubechain-system")).namespaces,
        ["kubechain-system", "monitoring"]
    );
    assert_eq!(configured.with_operator(Some("monitoring")).namespaces, ["monitoring"]);
    assert_eq!(configured.with_operator(None), configured);
    let selector = policy.pod_selector.unwrap().match_labels.unwrap();
    assert_eq!(selector.get(labels::COMPONENT).map(String::as_str), Some("validator"));
}

#[test]
fn service_monitor_only_when_asked_and_only_for_per_validator_services() {
    assert_eq!(build(&Blockchain::test()).service_monitor, None);
    let monitor = build(&Blockchain::test().with_spec(|spec| spec.monitoring.service_monitor = true))
        .service_monitor
        .unwrap();
    let types = monitor.types.as_ref().unwrap();
    assert_eq!(
        (types.api_version.as_str(), types.kind.as_str()),
        ("monitoring.coreos.com/v1", "ServiceMonitor")
    );
    let value = serde_json::to_value(&monitor).unwrap();
    assert_eq!(value["metadata"]["name"], "trade-validators");
    assert_eq!(value["spec"]["endpoints"][0]["port"], "api");
    assert_eq!(value["spec"]["endpoints"][0]["path"], "/metrics");
    let relabel = &value["spec"]["endpoints"][0]["relabelings"][0];
    assert_eq!(relabel["sourceLabels"][0], "__meta_kubernetes_pod_label_app_kubernetes_io_instance");
    assert_eq!(relabel["targetLabel"], "chain");
    // It selects the headless Service alone: each validator scraped once, with its API port.
    let selected = |service: &Service| {
        let labels = service.metadata.labels.clone().unwrap_or_default();
        value["spec"]["selector"]["matchLabels"]
            .as_object()
            .unwrap()
            .iter()
            .all(|(key, wanted)| labels.get(key).map(String::as_str) == wanted.as_str())
    };
    let built = build(&Blockchain::test());
    assert!(selected(&built.headless_service));
    assert!(!selected(&built.api_service));
    assert!(built.validator_services.iter().all(|service| !selected(service)));
}

#[test]
fn key_secrets_hold_the_node_key_file_and_read_back() {
    let context = ObjectContext::new(&Blockchain::test(), Ownership::Owned).unwrap();
    let key = validator_key(2);
    let built = validator_key_secret(&context, 2, &key);
    assert_eq!(built.public_key(), key.public_key());
    let secret = built.into_secret();
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    assert_eq!(secret.immutable, Some(true));
    assert_eq!(label(&secret.metadata, labels::COMPONENT).as_deref(), Some("validator-key"));
    let data = &secret.data.as_ref().unwrap()[keys::VALIDATOR_KEY_FILE];
    assert_eq!(data.0, kubechain_types::keyfile::to_json(&key), "the bytes the node reads as a key file");
    assert_eq!(read_public_key(&secret, keys::VALIDATOR_KEY_FILE), Ok(key.public_key()));

    let admin = admin_key_secret(&context, &admin_key()).into_secret();
    assert_eq!(admin.metadata.name.as_deref(), Some("trade-admin-key"));
    assert_eq!(read_key(&admin, keys::ADMIN_KEY_FILE).unwrap().public_key(), admin_key().public_key());
    assert_eq!(
        read_key(&admin, keys::VALIDATOR_KEY_FILE).unwrap_err(),
        KeySecretError::Missing { secret: "trade-admin-key".into(), data_key: "validator.key".into() }
    );
}

#[test]
fn nothing_prints_a_secret() {
    let blockchain = Blockchain::test().with_spec(|spec| spec.monitoring.service_monitor = true);
    let context = ObjectContext::new(&blockchain, Ownership::Owned).unwrap();
    let key = validator_key(0);
    let seed_hex = "01".repeat(32);
    assert_eq!(hex_of(&key), seed_hex);
    // A Secret's Debug prints its data bytes as numbers.
    let seed_as_numbers = format!("{:?}", seed_hex.as_bytes());
    let seed_as_numbers = seed_as_numbers.trim_matches(['[', ']']);

    let built = validator_key_secret(&context, 0, &key);
    let mut damaged: Secret = built.secret().clone();
    let mut json =
        String::from_utf8(damaged.data.as_ref().unwrap()[keys::VALIDATOR_KEY_FILE].0.clone()).unwrap();
    json = json.replace(&key.public_key().to_hex(), &validator_key(1).public_key().to_hex());
    damaged
        .data
        .as_mut()
        .unwrap()
        .insert(keys::VALIDATOR_KEY_FILE.into(), k8s_openapi::ByteString(json.into_bytes()));
    let error = read_key(&damaged, keys::VALIDATOR_KEY_FILE).unwrap_err();
    assert!(matches!(
        error,
        KeySecretError::Malformed { reason: kubechain_types::KeyFileError::KeyMismatch, .. }
    ));

    let shown = [
        format!("{built:?}"),
        format!("{:?}", admin_key_secret(&context, &key)),
        format!("{error:?}"),
        error.to_string(),
        format!("{:?}", build(&blockchain)),
        format!("{context:?}"),
    ];
    for text in &shown {
        assert!(!text.contains(&seed_hex) && !text.contains(seed_as_numbers), "secret in {text}");
    }
    assert!(
        shown[0].contains("trade-validator-0-key") && shown[0].contains(&key.public_key().to_hex()[..12])
    );
    // The check above would catch a leak: the raw Secret's Debug does show the data.
    assert!(format!("{:?}", built.secret()).contains(seed_as_numbers));
}

fn hex_of(key: &SigningKey) -> String {
    key.seed().iter().map(|byte| format!("{byte:02x}")).collect()
}

#[test]
fn blockchain_names_must_fit_every_derived_name() {
    assert_eq!(check_name("trade"), Ok(()));
    // The CRD refuses longer names itself, with the same limit.
    let longest_ok = "a".repeat(limits::MAX_NAME_LEN);
    assert_eq!(check_name(&longest_ok), Ok(()));
    assert!(
        names::validator(&longest_ok, limits::MAX_VALIDATORS - 1).len() <= meta::MAX_STATEFUL_SET_NAME_LEN
    );
    let error = check_name(&"a".repeat(limits::MAX_NAME_LEN + 1)).unwrap_err().to_string();
    assert!(error.contains("at most 39 characters"), "{error}");
    for bad in ["1trade", "Trade", "trade-", "tra.de", ""] {
        let error = check_name(bad).unwrap_err().to_string();
        assert!(error.contains("must start with a lowercase letter"), "{bad}: {error}");
    }
    let mut digit_first = Blockchain::test();
    digit_first.metadata.name = Some("1trade".into());
    assert!(matches!(build_with(&digit_first, Ownership::Owned), Err(BuildError::Name { .. })));
}

#[test]
fn version_label_comes_from_the_image_tag() {
    for (image, tag) in [
        ("kubechain/node:0.1.0", Some("0.1.0")),
        ("registry.example:5000/kubechain/node:v1.2.3-rc.1", Some("v1.2.3-rc.1")),
        ("registry.example:5000/kubechain/node", None),
        ("kubechain/node", None),
        ("kubechain/node@sha256:abcd", None),
        ("kubechain/node:0.1.0@sha256:abcd", Some("0.1.0")),
        ("kubechain/node:_bad", None),
    ] {
        assert_eq!(image_tag(image), tag, "{image}");
    }
    let untagged = build(&Blockchain::test().with_spec(|spec| spec.image = "kubechain/node".into()));
    assert_eq!(label(&untagged.stateful_sets[0].metadata, labels::VERSION), None);
}

/// `tests/fixtures/{node.yaml,peers.yaml,genesis.json}` are what this crate writes for a 4-validator chain;
/// the node's own tests parse them with its real `NodeConfig` and `read_genesis`. Regenerate
/// after a deliberate change with `KUBECHAIN_UPDATE_FIXTURES=1 cargo test -p kubechain-operator`.
#[test]
fn committed_fixtures_match_what_the_operator_writes() {
    let blockchain = Blockchain::test().with_validators(4).with_spec(|spec| {
        spec.members = vec![MemberSpec {
            name: "acme".into(),
            public_keys: vec![validator_key(40).public_key().to_hex()],
        }]
    });
    let desired = build(&blockchain);
    let fixtures = [
        ("node.yaml", desired.peers.data.as_ref().unwrap()[config::NODE_CONFIG_FILE].clone()),
        ("peers.yaml", desired.peers.data.as_ref().unwrap()[config::PEERS_FILE].clone()),
        ("genesis.json", desired.genesis.data.as_ref().unwrap()[genesis::GENESIS_FILE].clone()),
    ];
    // At run time (cargo sets it): a cached test binary may come from another checkout.
    let manifest_dir: PathBuf = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    let directory = manifest_dir.join("tests/fixtures");
    let update = std::env::var_os("KUBECHAIN_UPDATE_FIXTURES").is_some();
    for (file, generated) in fixtures {
        let path = directory.join(file);
        if update {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{} is out of date; regenerate it with KUBECHAIN_UPDATE_FIXTURES=1 cargo test --release -p kubechain-operator, and check that the node's tests still pass",
            path.display()
        );
    }
}

#[test]
fn what_is_made_once_carries_the_chains_uid_and_only_its_own_counts_as_the_chains() {
    let blockchain = Blockchain::test();
    let owned = ObjectContext::new(&blockchain, Ownership::Owned).unwrap();
    let unowned = ObjectContext::new(&blockchain, Ownership::Unowned).unwrap();
    let made = [
        admin_key_secret(&owned, &admin_key()).into_secret().metadata,
        validator_key_secret(&unowned, 2, &admin_key()).into_secret().metadata,
        build(&blockchain).genesis.metadata,
        genesis::genesis_config_map(&unowned, &genesis_of(&blockchain)).metadata,
    ];
    for metadata in &made {
        assert_eq!(metadata.labels.as_ref().unwrap()[labels::CHAIN_UID], UID, "{:?}", metadata.name);
        assert!(meta::belongs_to(metadata, UID), "{:?}", metadata.name);
        assert!(!meta::belongs_to(metadata, "another-uid"), "{:?}", metadata.name);
    }
    // The owner reference alone will do (what operators before the label made in their cluster).
    let mut by_owner = made[0].clone();
    by_owner.labels = None;
    assert!(meta::belongs_to(&by_owner, UID));
    // Someone else's: the same name and the recommended labels, but no uid.
    let mut planted = made[1].clone();
    planted.labels.as_mut().unwrap().remove(labels::CHAIN_UID);
    assert!(!meta::belongs_to(&planted, UID));
    assert!(!meta::belongs_to(&ObjectMeta::default(), ""), "no uid matches an object without one");
    // Volume claim templates cannot change once made: the uid stays off them (and everything
    // applied each pass keeps the labels it had).
    let stateful_set = &build(&blockchain).stateful_sets[0];
    let claim = &stateful_set.spec.as_ref().unwrap().volume_claim_templates.as_ref().unwrap()[0];
    assert!(!claim.metadata.labels.as_ref().unwrap().contains_key(labels::CHAIN_UID));
    assert!(!stateful_set.metadata.labels.as_ref().unwrap().contains_key(labels::CHAIN_UID));
}

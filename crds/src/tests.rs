//! Tests of the CRD as a whole: drift of the committed YAML, defaults, the Rust rules and the
//! CEL rules (evaluated here with kube's client-side CEL engine; a real API server runs them in
//! the operator's e2e suite).

use std::path::PathBuf;

use kube::core::cel::{ValidationErrors, Validator, compile_schema};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::validate::quantity_value;
use crate::*;
use crate::{limits, messages};

const KEY_A: &str = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";
const KEY_B: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

fn workspace_file(path: &str) -> PathBuf {
    // At run time (cargo sets it): a cached test binary may come from another checkout.
    let crate_dir: PathBuf = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    crate_dir.parent().unwrap_or(&crate_dir).join(path)
}

fn minimal() -> BlockchainSpec {
    BlockchainSpec::new("trade-ledger-1", 4, "kubechain/node:0.1.0")
}

fn three_clouds() -> BlockchainSpec {
    minimal().with_placement(vec![
        PlacementSpec::remote("aws-us-east-1", Provider::Aws, 2, "aws-kubeconfig"),
        PlacementSpec::remote("azure-westeurope", Provider::Azure, 1, "azure-kubeconfig"),
        PlacementSpec::remote("gcp-europe-west1", Provider::Gcp, 1, "gcp-kubeconfig"),
    ])
}

fn member(name: &str, keys: &[&str]) -> MemberSpec {
    MemberSpec { name: name.into(), public_keys: keys.iter().map(|key| key.to_string()).collect() }
}

fn open_api_schema() -> Value {
    let crd = Blockchain::crd();
    let schema = crd.spec.versions[0].schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref());
    serde_json::to_value(schema.expect("the CRD has a schema")).expect("schema to JSON")
}

fn object(spec: &BlockchainSpec) -> Value {
    serde_json::to_value(Blockchain::new("chain", spec.clone())).expect("object to JSON")
}

/// Messages of the CEL rules that reject `spec` (as an update of `old` when given).
fn cel_messages(spec: &BlockchainSpec, old: Option<&BlockchainSpec>) -> Vec<String> {
    let old = old.map(object);
    match Validator::new().validate(&open_api_schema(), &object(spec), old.as_ref()) {
        Ok(()) => Vec::new(),
        Err(errors) => messages(errors),
    }
}

fn messages(errors: ValidationErrors) -> Vec<String> {
    errors.into_vec().into_iter().map(|error| error.message).collect()
}

fn assert_rejected(errors: &[String], expected: &str, case: &str) {
    assert!(
        errors.iter().any(|error| error.contains(expected)),
        "{case}: expected an error containing {expected:?}, got {errors:?}"
    );
}

#[test]
fn committed_crds_match_the_types() {
    for file in [
        "crds/blockchain.kubechain.dev.yaml",
        "charts/kubechain-operator/files/blockchain.kubechain.dev.yaml",
    ] {
        let path = workspace_file(file);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == crd_yaml(),
            "{} is out of date with the Rust types; regenerate it from the workspace root with:\n  {}",
            path.display(),
            REGENERATE_COMMAND
        );
    }
}

#[test]
fn crd_names_columns_and_subresources() {
    let crd = Blockchain::crd();
    assert_eq!(crd.metadata.name.as_deref(), Some("blockchains.kubechain.dev"));
    assert_eq!(crd.spec.group, "kubechain.dev");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.kind, "Blockchain");
    assert_eq!(crd.spec.names.short_names, Some(vec!["bc".to_string()]));
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(version.subresources.as_ref().is_some_and(|s| s.status.is_some()), "status subresource");
    let columns: Vec<(&str, &str)> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .filter(|column| column.priority.unwrap_or(0) == 0)
        .map(|column| (column.name.as_str(), column.json_path.as_str()))
        .collect();
    assert_eq!(
        columns,
        [
            ("Ready", ".status.ready"),
            ("Height", ".status.height"),
            ("View", ".status.view"),
            ("Phase", ".status.phase"),
            ("Age", ".metadata.creationTimestamp"),
        ]
    );
}

#[test]
fn lists_merge_by_their_keys() {
    let schema = open_api_schema();
    let cases = [
        ("/properties/status/properties/conditions", "map", Some("type")),
        ("/properties/status/properties/clusters", "map", Some("name")),
        ("/properties/spec/properties/members", "map", Some("name")),
        ("/properties/spec/properties/placement", "map", Some("cluster")),
        ("/properties/spec/properties/admins", "set", None),
        ("/properties/spec/properties/members/items/properties/publicKeys", "set", None),
    ];
    for (pointer, list_type, key) in cases {
        let list = schema.pointer(pointer).unwrap_or_else(|| panic!("{pointer} in schema"));
        assert_eq!(list["x-kubernetes-list-type"], list_type, "{pointer}");
        if let Some(key) = key {
            assert_eq!(list["x-kubernetes-list-map-keys"], json!([key]), "{pointer}");
        }
    }
}

#[test]
fn every_cel_rule_compiles_and_every_message_is_used() {
    let schema = open_api_schema();
    let text = schema.to_string();
    let messages = [
        messages::CHAIN_ID_IMMUTABLE,
        messages::CHECKPOINT_INTERVAL_IMMUTABLE,
        messages::NAME,
        messages::PLACEMENT_SUM,
        messages::PLACEMENT_UNIQUE,
        messages::PLACEMENT_ONE_LOCAL,
        messages::PLACEMENT_CLUSTER_IP,
        messages::PLACEMENT_IMMUTABLE,
        messages::PLACEMENT_ADDED_OR_REMOVED,
        messages::EGRESS_CIDR,
        messages::REMOTE_NEEDS_KUBECONFIG,
        messages::LOCAL_WITH_KUBECONFIG,
        messages::STORAGE_SIZE,
        messages::STORAGE_CLASS_IMMUTABLE,
        messages::STORAGE_SIZE_IMMUTABLE,
    ];
    for message in messages {
        let quoted = serde_json::to_string(message).expect("a string");
        assert!(text.contains(&quoted), "no CEL rule uses the message {message:?}");
    }
    assert_eq!(text.matches("\"rule\":").count(), messages.len(), "one rule per message");

    fn compilation_errors(node: &kube::core::cel::CompiledSchema, found: &mut Vec<String>) {
        found.extend(node.compilation_errors().iter().map(|error| error.to_string()));
        node.properties.values().for_each(|child| compilation_errors(child, found));
        if let Some(items) = &node.items {
            compilation_errors(items, found);
        }
    }
    let mut errors = Vec::new();
    compilation_errors(&compile_schema(&schema), &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn every_list_and_string_a_rule_reads_is_bounded() {
    // The API server refuses a CRD whose rules could cost too much; bounds keep the estimate low.
    let schema = open_api_schema();
    let spec = &schema["properties"]["spec"]["properties"];
    assert_eq!(spec["placement"]["maxItems"], limits::MAX_PLACEMENTS);
    assert_eq!(spec["admins"]["maxItems"], limits::MAX_ADMINS);
    assert_eq!(spec["admins"]["items"]["maxLength"], limits::PUBLIC_KEY_HEX_LEN);
    assert_eq!(spec["placement"]["items"]["properties"]["cluster"]["maxLength"], 63);
    assert_eq!(spec["storage"]["properties"]["size"]["maxLength"], limits::QUANTITY_MAX_LEN);
    assert_eq!(spec["storage"]["properties"]["storageClassName"]["maxLength"], 253);
}

#[test]
fn a_minimal_manifest_gets_every_default() {
    let manifest = "apiVersion: kubechain.dev/v1alpha1\nkind: Blockchain\nmetadata: {name: x}\n\
                    spec: {chainId: trade-ledger-1, validators: 4, image: 'kubechain/node:0.1.0'}\n";
    let chain: Blockchain = serde_yaml::from_str(manifest).expect("a minimal manifest parses");
    assert_eq!(chain.spec, minimal());
    assert_eq!(chain.spec.image_pull_policy, ImagePullPolicy::IfNotPresent);
    assert_eq!(chain.spec.storage.size, "10Gi");
    assert!(chain.spec.storage.retain_on_delete, "volumes are kept unless asked");
    assert!(!chain.spec.monitoring.service_monitor);
    assert_eq!(chain.spec.chain_stalled_after_seconds, 120);
    assert_eq!(chain.spec.fault_tolerance(), 1);
    assert_eq!(validate(&chain.spec), Ok(()));

    // The API server fills in the schema's defaults; they must be the ones serde fills in, or
    // the operator would see a different spec from what `kubectl get -o yaml` shows.
    let bare =
        json!({"spec": {"chainId": "trade-ledger-1", "validators": 4, "image": "kubechain/node:0.1.0"}});
    let defaulted = kube::core::cel::apply_defaults(&open_api_schema(), &bare);
    assert_eq!(defaulted["spec"], serde_json::to_value(minimal()).expect("spec to JSON"));
}

#[test]
fn consensus_defaults_and_ranges_are_the_nodes() {
    use kubechain_types::ConsensusParams;
    let to_node = |spec: &ConsensusSpec| ConsensusParams {
        block_interval_ms: spec.block_interval_ms,
        max_block_txs: spec.max_block_txs,
        checkpoint_interval: spec.checkpoint_interval,
        view_change_timeout_ms: spec.view_change_timeout_ms,
        pow_difficulty_bits: spec.pow_difficulty_bits,
    };
    assert_eq!(to_node(&ConsensusSpec::default()), ConsensusParams::default());

    // Each bound is accepted by both, and one step past it rejected by both.
    type Field = fn(&mut ConsensusSpec, u64);
    let fields: [(&str, (u64, u64), Field); 5] = [
        ("blockIntervalMs", limits::BLOCK_INTERVAL_MS, |c, v| c.block_interval_ms = v),
        ("maxBlockTxs", (limits::MAX_BLOCK_TXS.0.into(), limits::MAX_BLOCK_TXS.1.into()), |c, v| {
            c.max_block_txs = v as u32
        }),
        ("checkpointInterval", limits::CHECKPOINT_INTERVAL, |c, v| c.checkpoint_interval = v),
        ("viewChangeTimeoutMs", limits::VIEW_CHANGE_TIMEOUT_MS, |c, v| c.view_change_timeout_ms = v),
        (
            "powDifficultyBits",
            (limits::POW_DIFFICULTY_BITS.0.into(), limits::POW_DIFFICULTY_BITS.1.into()),
            |c, v| c.pow_difficulty_bits = v as u8,
        ),
    ];
    for (name, (min, max), set) in fields {
        let mut candidates = vec![(min, true), (max, true), (max + 1, false)];
        if min > 0 {
            candidates.push((min - 1, false));
        }
        for (value, valid) in candidates {
            let mut spec = minimal();
            set(&mut spec.consensus, value);
            assert_eq!(to_node(&spec.consensus).validate().is_ok(), valid, "node: {name} = {value}");
            assert_eq!(validate(&spec).is_ok(), valid, "crd: {name} = {value}");
        }
    }

    let schema = open_api_schema();
    let consensus = &schema["properties"]["spec"]["properties"]["consensus"]["properties"];
    assert_eq!(consensus["powDifficultyBits"]["maximum"], 24.0);
    assert_eq!(consensus["viewChangeTimeoutMs"]["minimum"], 10.0);
}

#[test]
fn chain_ids_follow_the_nodes_rule() {
    let long = "a".repeat(63);
    let too_long = "a".repeat(64);
    for id in
        ["a", "trade-ledger-1", "9", &long, "", "-a", "a-", "Upper", "dot.ted", "under_score", &too_long]
    {
        let node = kubechain_types::genesis::validate_chain_id(id).is_ok();
        assert_eq!(validate::is_dns_label(id), node, "{id:?}");
        let mut spec = minimal();
        spec.chain_id = id.to_string();
        assert_eq!(validate(&spec).is_ok(), node, "{id:?}");
    }
}

#[test]
fn the_examples_are_valid() {
    let dir = workspace_file("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/ exists") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_none_or(|ext| ext != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable example");
        // Every Blockchain in every document (examples/operator.yaml holds other kinds).
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(document)
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            if value.get("kind").and_then(serde_yaml::Value::as_str) != Some("Blockchain") {
                continue;
            }
            let chain: Blockchain =
                serde_yaml::from_value(value).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            assert_eq!(validate(&chain.spec), Ok(()), "{}", path.display());
            assert_eq!(cel_messages(&chain.spec, None), Vec::<String>::new(), "{}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 2, "fewer Blockchain examples than expected in {}", dir.display());

    let text = std::fs::read_to_string(dir.join("chain.yaml")).expect("examples/chain.yaml");
    let chain: Blockchain = serde_yaml::from_str(&text).expect("examples/chain.yaml parses");
    assert_eq!(chain.spec.validators, 4);
    assert_eq!(chain.spec.image, "kubechain/node:0.1.0");
}

#[test]
fn good_specs_pass_both_rule_sets() {
    let mut drained = three_clouds();
    drained.placement[2].validators = 0;
    drained.placement[1].validators = 2;
    let mut full = three_clouds().with_members(vec![member("acme", &[KEY_A]), member("globex", &[KEY_B])]);
    full.admins = vec![KEY_A.to_string()];
    full.storage.storage_class_name = Some("gp3".into());
    full.placement[0].service = Some(ServiceSpec {
        type_: Some(ServiceType::LoadBalancer),
        annotations: [("service.beta.kubernetes.io/aws-load-balancer-type".to_string(), "nlb".to_string())]
            .into(),
        advertised_host: Some("validators.aws.example.com".into()),
    });
    full.placement[1].egress_cidrs = vec!["203.0.113.0/24".into(), "2001:db8::/32".into()];
    let local_and_remote = BlockchainSpec::new("hybrid", 4, "kubechain/node:0.1.0").with_placement(vec![
        PlacementSpec::local("hub", 3),
        PlacementSpec::remote("gcp-europe-west1", Provider::Gcp, 1, "gcp-kubeconfig"),
    ]);
    let single_validator = BlockchainSpec::new("solo", 1, "kubechain/node:0.1.0");
    for (case, spec) in [
        ("minimal", minimal()),
        ("three clouds", three_clouds()),
        ("drained cluster", drained),
        ("everything set", full),
        ("local and remote", local_and_remote),
        ("one validator", single_validator),
    ] {
        assert_eq!(validate(&spec), Ok(()), "{case}");
        assert_eq!(cel_messages(&spec, None), Vec::<String>::new(), "{case}");
    }
}

/// A spec breaking one rule, the message expected, and whether a CEL rule (rather than the
/// structural schema) is the API server's check.
fn bad_specs() -> Vec<(&'static str, BlockchainSpec, &'static str, bool)> {
    let mut cases = Vec::new();
    let mut add = |case, edit: &dyn Fn(&mut BlockchainSpec), message, cel| {
        let mut spec = three_clouds();
        edit(&mut spec);
        cases.push((case, spec, message, cel));
    };
    add("placement short of validators", &|s| s.validators = 5, messages::PLACEMENT_SUM, true);
    add("placement over validators", &|s| s.placement[0].validators = 3, messages::PLACEMENT_SUM, true);
    add(
        "duplicate cluster",
        &|s| s.placement[1].cluster = "aws-us-east-1".into(),
        messages::PLACEMENT_UNIQUE,
        true,
    );
    add(
        "remote without kubeconfig",
        &|s| s.placement[1].kubeconfig_secret_ref = None,
        messages::REMOTE_NEEDS_KUBECONFIG,
        true,
    );
    add("local with kubeconfig", &|s| s.placement[1].local = true, messages::LOCAL_WITH_KUBECONFIG, true);
    add(
        "two local entries",
        &|s| {
            s.placement[1] = PlacementSpec::local("hub", 1);
            s.placement[2] = PlacementSpec::local("hub-2", 1);
        },
        messages::PLACEMENT_ONE_LOCAL,
        true,
    );
    add(
        "ClusterIP across clusters",
        &|s| {
            s.placement[2].service =
                Some(ServiceSpec { type_: Some(ServiceType::ClusterIp), ..Default::default() })
        },
        messages::PLACEMENT_CLUSTER_IP,
        true,
    );
    add(
        "bad egress CIDR",
        &|s| s.placement[1].egress_cidrs = vec!["203.0.113.7".into()],
        messages::EGRESS_CIDR,
        true,
    );
    add(
        "advertised host with a port",
        &|s| {
            s.placement[2].service = Some(ServiceSpec {
                advertised_host: Some("gcp.example.com:7000".into()),
                ..Default::default()
            })
        },
        "spec.placement[2].service.advertisedHost: must be a DNS name or an IPv4 address",
        false,
    );
    add("size not a quantity", &|s| s.storage.size = "lots".into(), messages::STORAGE_SIZE, true);
    add("zero size", &|s| s.storage.size = "0Gi".into(), messages::STORAGE_SIZE, true);
    add("no validators", &|s| s.validators = 0, "spec.validators: must be between 1 and 64", false);
    add("bad chain id", &|s| s.chain_id = "Trade_Ledger".into(), "spec.chainId: must be 1-63", false);
    add("no image", &|s| s.image.clear(), "spec.image: must be", false);
    add(
        "difficulty too high",
        &|s| s.consensus.pow_difficulty_bits = 25,
        "spec.consensus.powDifficultyBits: must be between 0 and 24, got 25",
        false,
    );
    add(
        "view change too fast",
        &|s| s.consensus.view_change_timeout_ms = 5,
        "spec.consensus.viewChangeTimeoutMs: must be between 10 and 600000, got 5",
        false,
    );
    add(
        "uppercase key",
        &|s| s.members = vec![member("acme", &[&KEY_A.to_uppercase()])],
        "spec.members[0].publicKeys[0]: must be 64 lowercase hex",
        false,
    );
    add("member without keys", &|s| s.members = vec![member("acme", &[])], "at least one key", false);
    add(
        "duplicate member",
        &|s| s.members = vec![member("acme", &[KEY_A]), member("acme", &[KEY_B])],
        "duplicate member name",
        false,
    );
    add(
        "stall threshold too short",
        &|s| s.chain_stalled_after_seconds = 1,
        "spec.chainStalledAfterSeconds: must be between 10 and 86400",
        false,
    );
    cases
}

#[test]
fn bad_specs_are_rejected_with_clear_messages() {
    for (case, spec, message, cel) in bad_specs() {
        let errors = validate(&spec).expect_err(case);
        assert_rejected(&errors, message, case);
        if cel {
            assert_rejected(&cel_messages(&spec, None), message, &format!("{case} (CEL)"));
        }
    }
}

#[test]
fn every_problem_is_reported_once() {
    let mut spec = three_clouds();
    spec.chain_id = "-".into();
    spec.placement[1].cluster = "aws-us-east-1".into();
    spec.placement[2].cluster = "aws-us-east-1".into();
    let errors = validate(&spec).expect_err("two problems");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[1], format!("spec.placement: {}", messages::PLACEMENT_UNIQUE));
}

#[test]
fn what_genesis_fixes_is_immutable_and_the_rest_may_change() {
    let mut old = three_clouds().with_members(vec![member("acme", &[KEY_A])]);
    old.admins = vec![KEY_A.into(), KEY_B.into()];
    type Edit = fn(&mut BlockchainSpec);
    let rejected: [(&str, Edit, &str); 11] = [
        ("placement removed", |s| s.placement.clear(), messages::PLACEMENT_ADDED_OR_REMOVED),
        (
            "validator moved between clusters",
            |s| {
                s.placement[0].validators = 1;
                s.placement[1].validators = 2;
            },
            messages::PLACEMENT_IMMUTABLE,
        ),
        ("clusters reordered", |s| s.placement.swap(1, 2), messages::PLACEMENT_IMMUTABLE),
        ("cluster renamed", |s| s.placement[2].cluster = "gcp-us".into(), messages::PLACEMENT_IMMUTABLE),
        ("chain id", |s| s.chain_id = "other-chain".into(), messages::CHAIN_ID_IMMUTABLE),
        (
            "scale out",
            |s| {
                s.validators = 7;
                s.placement[1].validators = 4;
            },
            messages::PLACEMENT_IMMUTABLE,
        ),
        (
            "checkpoint interval",
            |s| s.consensus.checkpoint_interval = 64,
            messages::CHECKPOINT_INTERVAL_IMMUTABLE,
        ),
        (
            "storage class set",
            |s| s.storage.storage_class_name = Some("gp3".into()),
            messages::STORAGE_CLASS_IMMUTABLE,
        ),
        ("storage shrinks", |s| s.storage.size = "5Gi".into(), messages::STORAGE_SIZE_IMMUTABLE),
        (
            "storage shrinks across units",
            |s| s.storage.size = "9000M".into(),
            messages::STORAGE_SIZE_IMMUTABLE,
        ),
        ("storage grows", |s| s.storage.size = "1Ti".into(), messages::STORAGE_SIZE_IMMUTABLE),
    ];
    for (case, edit, message) in rejected {
        let mut new = old.clone();
        edit(&mut new);
        assert_rejected(&validate_update(&old, &new).expect_err(case), message, case);
        assert_rejected(&cel_messages(&new, Some(&old)), message, &format!("{case} (CEL)"));
    }

    // What the operator rolls out may change.
    let allowed: [(&str, Edit); 11] = [
        ("admins reordered", |s| s.admins.reverse()),
        ("admin removed", |s| s.admins = vec![KEY_B.into()]),
        ("block interval", |s| s.consensus.block_interval_ms = 500),
        ("difficulty", |s| s.consensus.pow_difficulty_bits = 0),
        ("member added", |s| s.members.push(member("globex", &[KEY_B]))),
        ("members removed", |s| s.members.clear()),
        ("member key changed", |s| s.members[0].public_keys = vec![KEY_B.into()]),
        ("a cluster's Service and kubeconfig", |s| {
            s.placement[1].service =
                Some(ServiceSpec { type_: Some(ServiceType::NodePort), ..Default::default() });
            s.placement[1].kubeconfig_secret_ref.as_mut().unwrap().name = "azure-kubeconfig-2".into();
        }),
        ("egress CIDRs", |s| s.placement[0].egress_cidrs = vec!["198.51.100.0/24".into()]),
        ("image", |s| s.image = "kubechain/node:0.2.0".into()),
        ("storage in other units", |s| s.storage.size = "10240Mi".into()),
    ];
    for (case, edit) in allowed {
        let mut new = old.clone();
        edit(&mut new);
        assert_eq!(validate_update(&old, &new), Ok(()), "{case}");
        assert_eq!(cel_messages(&new, Some(&old)), Vec::<String>::new(), "{case} (CEL)");
    }
}

#[test]
fn quantities_parse_like_kubernetes() {
    let gi = 1024.0 * 1024.0 * 1024.0;
    for (text, value) in [
        ("10Gi", Some(10.0 * gi)),
        ("0.5Gi", Some(0.5 * gi)),
        ("20G", Some(20e9)),
        ("1e9", Some(1e9)),
        ("1E3", Some(1e3)),
        ("2E", Some(2e18)),
        ("1Ei", Some(1024f64.powi(6))),
        ("100m", Some(0.1)),
        ("-1Gi", Some(-gi)),
        ("Gi", None),
        ("10 Gi", None),
        ("10gi", None),
        ("1.2.3", None),
        ("", None),
    ] {
        assert_eq!(quantity_value(text), value, "{text:?}");
    }
}

#[test]
fn status_round_trips_and_names_its_conditions() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    let status = BlockchainStatus {
        phase: Some(Phase::Running),
        observed_generation: Some(3),
        ready: Some(ValidatorCounts { desired: 4, ready: 3, on_chain: Some(4) }.ready_text()),
        genesis_hash: Some("ab".repeat(32)),
        fault_tolerance: Some(1),
        height: Some(42),
        view: Some(0),
        validators: Some(ValidatorCounts { desired: 4, ready: 3, on_chain: Some(4) }),
        consensus: Some(ConsensusStatus {
            block_interval_ms: 50,
            max_block_txs: 100,
            checkpoint_interval: 8,
            view_change_timeout_ms: 1000,
            pow_difficulty_bits: 4,
            activation_height: Some(17),
            scheduled: true,
        }),
        clusters: vec![ClusterStatus {
            name: "local".into(),
            reachable: Some(true),
            validators: vec![0, 1, 2, 3],
            ready_validators: 3,
            endpoints: vec!["10.0.0.1:7000".into()],
            ..ClusterStatus::default()
        }],
        conditions: vec![Condition {
            type_: condition::READY.into(),
            status: "False".into(),
            reason: "ValidatorsNotReady".into(),
            message: "3 of 4 validators are ready".into(),
            observed_generation: Some(3),
            last_transition_time: Time(Default::default()),
        }],
        warnings: Vec::new(),
    };
    let value = serde_json::to_value(&status).expect("status to JSON");
    assert_eq!(value["ready"], "3/4");
    assert_eq!(value["validators"]["onChain"], 4);
    assert_eq!(value["conditions"][0]["type"], "Ready");
    let back: BlockchainStatus = serde_json::from_value(value).expect("status from JSON");
    assert_eq!(back, status);
    assert_eq!(back.condition(condition::READY).map(|c| c.status.as_str()), Some("False"));
    assert_eq!(
        condition::ALL,
        ["Ready", "Progressing", "Degraded", "QuorumAtRisk", "ChainStalled", "Reconfiguring", "Upgrading"]
    );

    let schema = open_api_schema();
    let phases = &schema["properties"]["status"]["properties"]["phase"]["enum"];
    for phase in ["Pending", "Creating", "Running", "Degraded", "Failed", "Deleting"] {
        assert!(phases.as_array().is_some_and(|all| all.contains(&json!(phase))), "{phase}");
    }
}

#[test]
fn names_must_fit_the_objects_named_after_them() {
    let named = |name: &str| serde_json::to_value(Blockchain::new(name, three_clouds())).unwrap();
    let errors = |name: &str| match Validator::new().validate(&open_api_schema(), &named(name), None) {
        Ok(()) => Vec::new(),
        Err(errors) => messages(errors),
    };
    let longest = "a".repeat(limits::MAX_NAME_LEN);
    for good in [longest.as_str(), "ledger", "trade-ledger-2"] {
        assert_eq!(errors(good), Vec::<String>::new(), "{good}");
    }
    for bad in [format!("{longest}a"), "a.b".into(), "2ledger".into(), "ledger-".into()] {
        assert_rejected(&errors(&bad), messages::NAME, &bad);
    }
}

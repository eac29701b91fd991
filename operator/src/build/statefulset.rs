//! One StatefulSet per validator (`{chain}-validator-{i}`, one replica), rather than one
//! StatefulSet of n pods:
//! - each pod mounts only its own key Secret (one pod template would mount every key in every
//!   pod);
//! - validators are added and removed one by one, by index, as on-chain reconfiguration adds and
//!   removes them (a StatefulSet can only grow or shrink at its end);
//! - upgrades roll one validator at a time under the operator's control, only while the chain is
//!   healthy: the StatefulSets use `OnDelete`, so a template change (image, resources, node.yaml
//!   or genesis hash annotations) waits until the operator deletes the pod ([`crate::upgrade`]).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, HTTPGetAction,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    SeccompProfile, SecretVolumeSource, SecurityContext, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kubechain_crds::BlockchainSpec;
use kubechain_types::Hash;

use super::config::{API_PORT, CONFIG_DIR, DATA_DIR, GENESIS_DIR, KEY_DIR, NODE_CONFIG_FILE, P2P_PORT};
use super::meta::{Component, ObjectContext, annotations, labels, names};
use super::services::{API_PORT_NAME, P2P_PORT_NAME};

pub const CONTAINER_NAME: &str = "node";
/// The node image's binary (`/usr/local/bin/kubechain`).
pub const COMMAND: &str = "kubechain";
/// The unprivileged user and group of the node image.
pub const NODE_UID: i64 = 10001;
pub const DATA_VOLUME: &str = "data";

/// The volume claim validator `index`'s StatefulSet makes for its one pod.
pub fn data_claim_name(chain: &str, index: u32) -> String {
    format!("{DATA_VOLUME}-{}", names::validator_pod(chain, index))
}
const CONFIG_VOLUME: &str = "config";
const GENESIS_VOLUME: &str = "genesis";
const KEY_VOLUME: &str = "key";

/// The StatefulSet of validator `index`. `genesis_hash` and `config_hash` (of node.yaml) go into
/// pod-template annotations so that a change of either restarts the pod: the node reads both
/// files only at start.
pub fn validator_stateful_set(
    context: &ObjectContext,
    spec: &BlockchainSpec,
    index: u32,
    genesis_hash: Hash,
    config_hash: Hash,
) -> StatefulSet {
    let chain = context.name();
    let mut pod_labels = context.labels(Component::Validator);
    pod_labels.insert(labels::VALIDATOR.to_string(), index.to_string());
    let mut metadata = context.metadata(names::validator(chain, index), Component::Validator);
    metadata.labels = Some(pod_labels.clone());

    StatefulSet {
        metadata,
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(names::validators(chain)),
            // Immutable after creation: only labels that never change.
            selector: LabelSelector {
                match_labels: Some(context.validator_selector(index)),
                ..LabelSelector::default()
            },
            // One pod each: the policy only matters for a restore with several at once, and
            // Parallel never waits on an earlier ordinal.
            pod_management_policy: Some("Parallel".to_string()),
            // A changed template restarts nothing by itself: the operator restarts one validator
            // of the whole chain at a time, while the others keep a quorum (crate::upgrade).
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".to_string()),
                ..StatefulSetUpdateStrategy::default()
            }),
            persistent_volume_claim_retention_policy: Some(StatefulSetPersistentVolumeClaimRetentionPolicy {
                when_deleted: Some(
                    if spec.storage.retain_on_delete { "Retain" } else { "Delete" }.to_string(),
                ),
                when_scaled: Some("Retain".to_string()),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(BTreeMap::from([
                        (annotations::GENESIS_HASH.to_string(), genesis_hash.to_hex()),
                        (annotations::CONFIG_HASH.to_string(), config_hash.to_hex()),
                        ("kubectl.kubernetes.io/default-container".to_string(), CONTAINER_NAME.to_string()),
                    ])),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec(context, spec, index)),
            },
            volume_claim_templates: Some(vec![data_claim(context, spec, index)]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

fn pod_spec(context: &ObjectContext, spec: &BlockchainSpec, index: u32) -> PodSpec {
    let chain = context.name();
    PodSpec {
        containers: vec![container(spec)],
        volumes: Some(vec![
            Volume {
                name: CONFIG_VOLUME.to_string(),
                config_map: Some(ConfigMapVolumeSource {
                    name: names::peers_config_map(chain),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            },
            Volume {
                name: GENESIS_VOLUME.to_string(),
                config_map: Some(ConfigMapVolumeSource {
                    name: names::genesis_config_map(chain),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            },
            Volume {
                name: KEY_VOLUME.to_string(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(names::validator_key_secret(chain, index)),
                    // Owner-only as written; fsGroup adds group read (0440), and the group is
                    // the node's own.
                    default_mode: Some(0o400),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            },
        ]),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(NODE_UID),
            run_as_group: Some(NODE_UID),
            fs_group: Some(NODE_UID),
            // Volumes of a long-lived chain hold many files; re-chown only a fresh one.
            fs_group_change_policy: Some("OnRootMismatch".to_string()),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_string(),
                ..SeccompProfile::default()
            }),
            ..PodSecurityContext::default()
        }),
        // The node never calls the API server, and a chain's many Services would otherwise
        // become environment variables.
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        // Long enough for the node's clean stop (the last block is one synced write).
        termination_grace_period_seconds: Some(30),
        ..PodSpec::default()
    }
}

fn container(spec: &BlockchainSpec) -> Container {
    let http_get = |path: &str| HTTPGetAction {
        path: Some(path.to_string()),
        port: IntOrString::String(API_PORT_NAME.to_string()),
        ..HTTPGetAction::default()
    };
    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    };
    Container {
        name: CONTAINER_NAME.to_string(),
        image: Some(spec.image.clone()),
        image_pull_policy: Some(spec.image_pull_policy.as_str().to_string()),
        command: Some(vec![COMMAND.to_string()]),
        args: Some(
            ["node", "run", "--config", &format!("{CONFIG_DIR}/{NODE_CONFIG_FILE}")]
                .map(str::to_string)
                .to_vec(),
        ),
        env: Some(vec![EnvVar {
            name: "KUBECHAIN_LOG_FORMAT".to_string(),
            value: Some("json".to_string()),
            ..EnvVar::default()
        }]),
        ports: Some(vec![
            ContainerPort {
                name: Some(API_PORT_NAME.to_string()),
                container_port: API_PORT.into(),
                protocol: Some("TCP".to_string()),
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some(P2P_PORT_NAME.to_string()),
                container_port: P2P_PORT.into(),
                protocol: Some("TCP".to_string()),
                ..ContainerPort::default()
            },
        ]),
        // Ready = caught up and connected to a quorum (the node's /readyz). A validator that falls
        // behind leaves the client Service within about 4 s; one failed probe is not enough.
        readiness_probe: Some(Probe {
            http_get: Some(http_get("/readyz")),
            period_seconds: Some(2),
            timeout_seconds: Some(2),
            failure_threshold: Some(2),
            ..Probe::default()
        }),
        // Only a stopped consensus loop fails /healthz; a long recovery or catch-up must not
        // get the pod killed, hence two minutes of failures before a restart.
        liveness_probe: Some(Probe {
            http_get: Some(http_get("/healthz")),
            initial_delay_seconds: Some(10),
            period_seconds: Some(10),
            timeout_seconds: Some(5),
            failure_threshold: Some(12),
            ..Probe::default()
        }),
        resources: spec.resources.clone(),
        security_context: Some(SecurityContext {
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_string()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            mount(CONFIG_VOLUME, CONFIG_DIR, true),
            mount(GENESIS_VOLUME, GENESIS_DIR, true),
            mount(KEY_VOLUME, KEY_DIR, true),
            mount(DATA_VOLUME, DATA_DIR, false),
        ]),
        ..Container::default()
    }
}

/// The volume claim template. A StatefulSet's claim templates cannot change after creation, so
/// it carries only labels that never change (no version); growing `spec.storage.size` later
/// means resizing the claims themselves.
fn data_claim(context: &ObjectContext, spec: &BlockchainSpec, index: u32) -> PersistentVolumeClaim {
    let mut claim_labels = context.stable_labels(Component::Validator);
    claim_labels.insert(labels::VALIDATOR.to_string(), index.to_string());
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(DATA_VOLUME.to_string()),
            labels: Some(claim_labels),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_string()]),
            storage_class_name: spec.storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(spec.storage.size.clone()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

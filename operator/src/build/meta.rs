//! Names, labels and owner references: set in one place for every object the operator builds.
//!
//! Objects are named after the Blockchain (`metadata.name`, which is also the
//! `app.kubernetes.io/instance` label), not after `spec.chainId`: names must be unique per
//! namespace, chain ids need not be.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use kubechain_crds::Blockchain;

use super::error::BuildError;

/// Label keys.
pub mod labels {
    pub const NAME: &str = "app.kubernetes.io/name";
    pub const INSTANCE: &str = "app.kubernetes.io/instance";
    pub const COMPONENT: &str = "app.kubernetes.io/component";
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    pub const PART_OF: &str = "app.kubernetes.io/part-of";
    pub const VERSION: &str = "app.kubernetes.io/version";
    /// The validator's index, on its pod, StatefulSet and Service.
    pub const VALIDATOR: &str = "kubechain.dev/validator";
    /// "true" on the one Service whose endpoints are every validator's pod with its API port
    /// (the headless one): what a ServiceMonitor selects to scrape each validator once.
    pub const SCRAPE: &str = "kubechain.dev/scrape";
    /// The Blockchain's uid, on what is made once and read back (key Secrets, the genesis
    /// ConfigMap): one found under the same name without it (or an owner reference to the
    /// Blockchain) was made by someone else, and is not taken as the chain's.
    pub const CHAIN_UID: &str = "kubechain.dev/chain-uid";
}

/// Annotation keys.
pub mod annotations {
    /// Hex SHA-256 of the genesis (`Genesis::hash`), on the genesis ConfigMap and pod templates.
    pub const GENESIS_HASH: &str = "kubechain.dev/genesis-hash";
    /// Hex SHA-256 of node.yaml on pod templates, so a config change restarts the validator.
    pub const CONFIG_HASH: &str = "kubechain.dev/config-hash";
}

pub const APP_NAME: &str = "kubechain";
pub const MANAGER: &str = "kubechain-operator";

/// `app.kubernetes.io/component` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    Validator,
    Genesis,
    Peers,
    AdminKey,
    ValidatorKey,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Validator => "validator",
            Component::Genesis => "genesis",
            Component::Peers => "peers",
            Component::AdminKey => "admin-key",
            Component::ValidatorKey => "validator-key",
        }
    }
}

/// Object names, from the Blockchain's name (`chain`).
pub mod names {
    /// StatefulSet and per-validator Service of validator `index`.
    pub fn validator(chain: &str, index: u32) -> String {
        format!("{chain}-validator-{index}")
    }
    /// The pod of validator `index`'s StatefulSet (of one replica).
    pub fn validator_pod(chain: &str, index: u32) -> String {
        format!("{}-0", validator(chain, index))
    }
    pub fn validator_key_secret(chain: &str, index: u32) -> String {
        format!("{chain}-validator-{index}-key")
    }
    pub fn admin_key_secret(chain: &str) -> String {
        format!("{chain}-admin-key")
    }
    /// The clients' Service: every ready validator's API.
    pub fn api(chain: &str) -> String {
        format!("{chain}-api")
    }
    pub fn genesis_config_map(chain: &str) -> String {
        format!("{chain}-genesis")
    }
    pub fn peers_config_map(chain: &str) -> String {
        format!("{chain}-peers")
    }
    /// The headless Service, PodDisruptionBudget, NetworkPolicy and ServiceMonitor, which cover
    /// all validators in a cluster.
    pub fn validators(chain: &str) -> String {
        format!("{chain}-validators")
    }
}

/// Longest StatefulSet name: its pods carry `controller-revision-hash: <name>-<10 chars>`, and a
/// label value has at most 63 characters.
pub const MAX_STATEFUL_SET_NAME_LEN: usize = 52;

/// Whether objects get an owner reference to the Blockchain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// The Blockchain's own cluster: a controller owner reference, so deleting the Blockchain
    /// garbage-collects what the finalizer missed.
    Owned,
    /// Another cluster: owner references cannot point across clusters; the finalizer deletes
    /// these objects by their labels.
    Unowned,
}

/// Who owns the objects built for one cluster, and the labels they share.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectContext {
    name: String,
    namespace: String,
    owner: Option<OwnerReference>,
    uid: Option<String>,
    version: Option<String>,
}

impl ObjectContext {
    /// Objects go to the Blockchain's namespace, in every cluster.
    pub fn new(blockchain: &Blockchain, ownership: Ownership) -> Result<ObjectContext, BuildError> {
        let name = blockchain.metadata.name.clone().ok_or(BuildError::Missing("metadata.name"))?;
        check_name(&name)?;
        let namespace =
            blockchain.metadata.namespace.clone().ok_or(BuildError::Missing("metadata.namespace"))?;
        let owner = match ownership {
            Ownership::Owned => Some(OwnerReference {
                block_owner_deletion: Some(true),
                ..blockchain.controller_owner_ref(&()).ok_or(BuildError::Missing("metadata.uid"))?
            }),
            Ownership::Unowned => None,
        };
        let version = image_tag(&blockchain.spec.image).map(str::to_string);
        let uid = blockchain.metadata.uid.clone();
        Ok(ObjectContext { name, namespace, owner, uid, version })
    }

    /// The Blockchain's name, which prefixes every object's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn owner(&self) -> Option<&OwnerReference> {
        self.owner.as_ref()
    }

    /// The labels that select `component`'s objects of this Blockchain. Never changes for an
    /// object's lifetime, so it is safe in immutable selectors.
    pub fn selector(&self, component: Component) -> BTreeMap<String, String> {
        BTreeMap::from([
            (labels::NAME.to_string(), APP_NAME.to_string()),
            (labels::INSTANCE.to_string(), self.name.clone()),
            (labels::COMPONENT.to_string(), component.as_str().to_string()),
        ])
    }

    /// The selector of validator `index`'s pod.
    /// [`Self::selector`] as a label selector string (`k=v,k=v`), for list calls.
    pub fn selector_text(&self, component: Component) -> String {
        self.selector(component)
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn validator_selector(&self, index: u32) -> BTreeMap<String, String> {
        let mut selector = self.selector(Component::Validator);
        selector.insert(labels::VALIDATOR.to_string(), index.to_string());
        selector
    }

    /// The recommended labels: the selector plus managed-by, part-of and the image's version.
    pub fn labels(&self, component: Component) -> BTreeMap<String, String> {
        let mut labels = self.stable_labels(component);
        if let Some(version) = &self.version {
            labels.insert(labels::VERSION.to_string(), version.clone());
        }
        labels
    }

    /// [`Self::labels`] without the version, for objects never updated after creation (key
    /// Secrets, volume claim templates), where it would go stale or cannot change.
    pub fn stable_labels(&self, component: Component) -> BTreeMap<String, String> {
        let mut labels = self.selector(component);
        labels.insert(labels::MANAGED_BY.to_string(), MANAGER.to_string());
        labels.insert(labels::PART_OF.to_string(), APP_NAME.to_string());
        labels
    }

    /// `labels` with the Blockchain's uid: for objects made once and only read back after.
    pub fn claimed(&self, mut labels: BTreeMap<String, String>) -> BTreeMap<String, String> {
        if let Some(uid) = &self.uid {
            labels.insert(labels::CHAIN_UID.to_string(), uid.clone());
        }
        labels
    }

    /// Metadata of an object named `name` in the Blockchain's namespace, with the recommended
    /// labels and the owner reference when owned.
    pub fn metadata(&self, name: String, component: Component) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels(component)),
            owner_references: self.owner.clone().map(|owner| vec![owner]),
            ..ObjectMeta::default()
        }
    }
}

/// Whether the object of `metadata` was made for the Blockchain with `uid`: it names it as an
/// owner (the operator's own cluster) or carries its uid label (every cluster).
pub fn belongs_to(metadata: &ObjectMeta, uid: &str) -> bool {
    let owned = metadata.owner_references.iter().flatten().any(|owner| owner.uid == uid);
    let labelled =
        metadata.labels.as_ref().and_then(|labels| labels.get(labels::CHAIN_UID)).is_some_and(|l| l == uid);
    owned || labelled
}

/// A reference to an object of kind `K`, for an event's `related` field.
pub fn object_reference<K: Resource<DynamicType = ()>>(namespace: &str, name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        namespace: Some(namespace.to_string()),
        name: Some(name.to_string()),
        ..ObjectReference::default()
    }
}

/// Checks that the Blockchain's name can prefix every object name: Services need a DNS-1035
/// label (starting with a letter), and StatefulSet names are shorter still.
pub fn check_name(name: &str) -> Result<(), BuildError> {
    let invalid = |reason: String| BuildError::Name { name: name.to_string(), reason };
    let bytes = name.as_bytes();
    let dns_1035 = bytes.first().is_some_and(u8::is_ascii_lowercase)
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.last() != Some(&b'-');
    if !dns_1035 {
        return Err(invalid(
            "must start with a lowercase letter and hold only lowercase letters, digits and '-' (it names Services)"
                .to_string(),
        ));
    }
    let longest = names::validator(name, kubechain_crds::limits::MAX_VALIDATORS - 1);
    if longest.len() > MAX_STATEFUL_SET_NAME_LEN {
        let max = MAX_STATEFUL_SET_NAME_LEN - (longest.len() - name.len());
        return Err(invalid(format!(
            "must be at most {max} characters, so that StatefulSet names such as {longest} stay within {MAX_STATEFUL_SET_NAME_LEN}"
        )));
    }
    Ok(())
}

/// The tag of an image reference (`kubechain/node:0.1.0` gives `0.1.0`), when it is a valid
/// label value; none for a digest-only or untagged reference.
pub fn image_tag(image: &str) -> Option<&str> {
    let name = image.split('@').next().unwrap_or(image);
    // A ':' before the last '/' is a registry port, not a tag.
    let last_part = &name[name.rfind('/').map_or(0, |slash| slash + 1)..];
    let (_, tag) = last_part.split_once(':')?;
    is_label_value(tag).then_some(tag)
}

fn is_label_value(text: &str) -> bool {
    let bytes = text.as_bytes();
    let inner = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.iter().all(inner)
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

//! What every reconcile shares: the API client, the event recorder, metrics, the client for the
//! validators' APIs, and what the operator remembers about each chain between passes.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};

use crate::build::ApiClients;
use crate::consortium::Declared;
use crate::health::Progress;
use crate::members::MemberClients;
use crate::metrics::Metrics;
use crate::observe::NodeUrls;

/// The operator's field manager for server-side apply and creates.
pub const FIELD_MANAGER: &str = "kubechain-operator";
/// The operator's finalizer on every Blockchain it reconciles.
pub const FINALIZER: &str = "kubechain.dev/cleanup";

pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub http: reqwest::Client,
    pub node_urls: NodeUrls,
    /// Who may reach validators' API port, as configured (`--api-client-namespaces`, `--api-client-cidrs`).
    pub api_clients: ApiClients,
    /// The namespace the operator runs in, when it runs in a pod: its pods reach the API of the
    /// validators in its own cluster.
    pub own_namespace: Option<String>,
    /// Clients for member clusters, by kubeconfig Secret.
    pub members: MemberClients,
    /// Per chain (`namespace/name`): when its height last moved, and consecutive failures.
    progress: Mutex<HashMap<String, Progress>>,
    failures: Mutex<HashMap<String, u32>>,
    /// Per chain: the members and admins its specs named since this operator started.
    declared: Mutex<HashMap<String, Declared>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("node_urls", &self.node_urls).finish_non_exhaustive()
    }
}

impl Context {
    pub fn new(
        client: Client,
        recorder: Recorder,
        metrics: Metrics,
        http: reqwest::Client,
        node_urls: NodeUrls,
        api_clients: ApiClients,
        own_namespace: Option<String>,
    ) -> Self {
        Context {
            client,
            recorder,
            metrics,
            http,
            node_urls,
            api_clients,
            own_namespace,
            members: MemberClients::default(),
            progress: Mutex::default(),
            failures: Mutex::default(),
            declared: Mutex::default(),
        }
    }

    /// Who may reach the API of validators in a cluster: see [`ApiClients::with_operator`].
    pub fn api_clients_in(&self, hub: bool) -> ApiClients {
        self.api_clients.with_operator(self.own_namespace.as_deref().filter(|_| hub))
    }

    /// The chain's progress record, if this operator has kept one.
    pub fn progress(&self, key: &str) -> Option<Progress> {
        self.progress.lock().ok().and_then(|progress| progress.get(key).copied())
    }

    pub fn keep_progress(&self, key: String, progress: Progress) {
        if let Ok(mut all) = self.progress.lock() {
            all.insert(key, progress);
        }
    }

    /// The members and admins the chain's specs named, as last kept.
    pub fn declared(&self, key: &str) -> Option<Declared> {
        self.declared.lock().ok().and_then(|declared| declared.get(key).cloned())
    }

    pub fn keep_declared(&self, key: String, declared: Declared) {
        if let Ok(mut all) = self.declared.lock() {
            all.insert(key, declared);
        }
    }

    /// One more failure in a row for the chain; how many there are now.
    pub fn count_failure(&self, key: &str) -> u32 {
        self.failures
            .lock()
            .map(|mut failures| {
                let count = failures.entry(key.to_string()).or_insert(0);
                *count = count.saturating_add(1);
                *count
            })
            .unwrap_or(1)
    }

    pub fn clear_failures(&self, key: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(key);
        }
    }

    /// Forgets a chain that is going away.
    pub fn forget(&self, key: &str) {
        if let Ok(mut progress) = self.progress.lock() {
            progress.remove(key);
        }
        if let Ok(mut declared) = self.declared.lock() {
            declared.remove(key);
        }
        self.clear_failures(key);
    }

    /// An Event on `object`. Events with the same reason fold into one series unless they name
    /// different `related` objects, so per-object events (a created key) name their object.
    pub async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        type_: EventType,
        reason: &str,
        note: String,
        related: Option<ObjectReference>,
    ) {
        self.publish_action(object, type_, reason, "Reconcile", note, related).await;
    }

    /// [`Self::publish`] with its own action: events with the same reason and action about the
    /// same object are one event series (its first note and a count), so changes that must each
    /// be seen name what they do as the action.
    pub async fn publish_action<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
        related: Option<ObjectReference>,
    ) {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: related,
        };
        if let Err(error) = self.recorder.publish(&event, &object.object_ref(&())).await {
            tracing::warn!(object = %chain_key(object), %error, "could not publish an event");
        }
    }
}

/// A chain's key in the operator's records and logs: `namespace/name`.
pub fn chain_key<K: Resource>(object: &K) -> String {
    format!("{}/{}", object.namespace().unwrap_or_default(), object.name_any())
}

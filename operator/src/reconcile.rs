//! The reconciler: validate -> build -> apply -> status, for the validators placed in the
//! operator's own cluster. Keys and genesis are created once and then only read back; everything
//! else is applied with server-side apply under one field manager on every pass.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{self, Event as Finalizer, finalizer};
use kube::{Client, Resource, ResourceExt};
use kubechain_crds::{Blockchain, BlockchainStatus};
use kubechain_types::PublicKey;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::build::meta::names;
use crate::build::{
    self, BuildError, ClusterInput, GenesisDocument, ObjectContext, Ownership, PeerAddress, read_public_key,
};
use crate::health::{self, Blocker, Observation, Progress};
use crate::metrics::Metrics;
use crate::observe::{self, NodeUrls};

pub const FIELD_MANAGER: &str = "kubechain-operator";
pub const FINALIZER: &str = "kubechain.dev/cleanup";
/// The one cluster name used in status while placement lists no clusters.
pub const LOCAL_CLUSTER: &str = "local";
const VALIDATOR_KEY: &str = "validator.key";
const ADMIN_KEY: &str = "admin.key";

/// How often a chain's health is polled: often while it settles, calmly once it runs.
const POLL_SETTLING: Duration = Duration::from_secs(3);
const POLL_STEADY: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("no randomness for a key: {0}")]
    Randomness(String),
    #[error("Secret {secret}: {reason}")]
    KeySecret { secret: String, reason: String },
    #[error("finalizer: {0}")]
    Finalizer(String),
}

impl Error {
    /// A fixed label for the error metric.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Build(error) => error.metric_label(),
            Error::Randomness(_) => "randomness",
            Error::KeySecret { .. } => "key_secret",
            Error::Finalizer(_) => "finalizer",
        }
    }

    /// What a person reads in an event or the status: the API server's own message rather than
    /// the whole error, within an event note's 1 KiB.
    pub fn summary(&self) -> String {
        let mut text = match self {
            Error::Kube(kube::Error::Api(status)) => status.message.clone(),
            other => other.to_string(),
        };
        if text.len() > 1000 {
            let mut end = 1000;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push('…');
        }
        text
    }

    /// Errors that retrying will not fix (a spec the API server refuses, a broken key Secret):
    /// they go into the status and an event, not only the log.
    fn needs_a_person(&self) -> bool {
        match self {
            Error::Kube(kube::Error::Api(status)) => matches!(status.code, 400 | 403 | 422),
            Error::Kube(_) | Error::Finalizer(_) => false,
            Error::Build(_) | Error::Randomness(_) | Error::KeySecret { .. } => true,
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub http: reqwest::Client,
    pub node_urls: NodeUrls,
    /// Per chain (`namespace/name`): when its height last moved, and consecutive failures.
    progress: Mutex<HashMap<String, Progress>>,
    failures: Mutex<HashMap<String, u32>>,
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
    ) -> Self {
        Context {
            client,
            recorder,
            metrics,
            http,
            node_urls,
            progress: Mutex::default(),
            failures: Mutex::default(),
        }
    }
}

fn key_of(chain: &Blockchain) -> String {
    format!("{}/{}", chain.namespace().unwrap_or_default(), chain.name_any())
}

/// Entry point for the controller.
pub async fn reconcile(chain: Arc<Blockchain>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let key = key_of(&chain);
    let api: Api<Blockchain> = Api::namespaced(ctx.client.clone(), &chain.namespace().unwrap_or_default());
    let result = finalizer(&api, FINALIZER, chain, |event| async {
        match event {
            Finalizer::Apply(chain) => {
                let result = apply(&chain, &ctx).await;
                if let Err(error) = &result
                    && error.needs_a_person()
                {
                    report_failure(&chain, &ctx, error).await;
                }
                result
            }
            Finalizer::Cleanup(chain) => cleanup(&chain, &ctx).await,
        }
    })
    .await
    .map_err(|error| match error {
        finalizer::Error::ApplyFailed(error) | finalizer::Error::CleanupFailed(error) => error,
        other => Error::Finalizer(other.to_string()),
    });
    let outcome = if result.is_ok() { "ok" } else { "error" };
    ctx.metrics.reconciles.with_label_values(&[outcome]).inc();
    ctx.metrics.duration.with_label_values(&[outcome]).observe(started.elapsed().as_secs_f64());
    if result.is_ok()
        && let Ok(mut failures) = ctx.failures.lock()
    {
        failures.remove(&key);
    }
    result
}

/// Retries a failed chain later, backing off exponentially (5 s to 5 min); other chains are not
/// held up.
pub fn error_policy(chain: Arc<Blockchain>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.errors.with_label_values(&[error.kind()]).inc();
    let failures = ctx
        .failures
        .lock()
        .map(|mut failures| {
            let count = failures.entry(key_of(&chain)).or_insert(0);
            *count = count.saturating_add(1);
            *count
        })
        .unwrap_or(1);
    let delay = Duration::from_secs(5).saturating_mul(1 << failures.min(6)).min(Duration::from_secs(300));
    tracing::warn!(chain = %key_of(&chain), %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

async fn apply(chain: &Blockchain, ctx: &Context) -> Result<Action, Error> {
    let namespace = chain.namespace().unwrap_or_default();
    let name = chain.name_any();
    let spec = &chain.spec;
    let mut blockers = Vec::new();
    if let Err(problems) = kubechain_crds::validate(spec) {
        blockers.push(Blocker::new("InvalidSpec", problems.join("; ")));
    }
    if spec.placement.iter().any(|entry| !entry.local) {
        // Not yet: validators in member clusters. Say so instead of half-building the chain.
        blockers.push(Blocker::new(
            "PlacementNotSupported",
            "validators in other clusters are not supported by this operator version yet",
        ));
    }
    if !blockers.is_empty() {
        write_blocked(chain, ctx, &blockers).await?;
        return Ok(Action::requeue(POLL_STEADY));
    }

    let context = ObjectContext::new(chain, Ownership::Owned)?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
    let existing_genesis = config_maps.get_opt(&names::genesis_config_map(&name)).await?;
    let made_before = chain.status.as_ref().and_then(|status| status.genesis_hash.clone());
    let genesis = match (existing_genesis, made_before) {
        (Some(config_map), _) => {
            GenesisDocument::from_config_map(&config_map).map_err(BuildError::Genesis)?
        }
        // A new genesis would be another chain, with new keys for any missing Secret.
        (None, Some(hash)) => {
            let config_map = names::genesis_config_map(&name);
            let blocker = Blocker::new(
                "GenesisMissing",
                format!(
                    "ConfigMap {config_map} with genesis {hash} is missing: restore it from a backup; it is never rebuilt"
                ),
            );
            let related = Some(reference::<ConfigMap>(&namespace, &config_map));
            publish(ctx, chain, EventType::Warning, blocker.reason, blocker.message.clone(), related).await;
            write_blocked(chain, ctx, &[blocker]).await?;
            return Ok(Action::requeue(POLL_STEADY));
        }
        (None, None) => {
            // First pass: keys, then the genesis that names them. Never again after this.
            let admin = ensure_key(ctx, &secrets, chain, &names::admin_key_secret(&name), ADMIN_KEY, || {
                Ok(build::admin_key_secret(&context, &generate()?).into_secret())
            })
            .await?;
            let mut validators = Vec::new();
            for index in 0..spec.validators {
                let secret_name = names::validator_key_secret(&name, index);
                validators.push(
                    ensure_key(ctx, &secrets, chain, &secret_name, VALIDATOR_KEY, || {
                        Ok(build::validator_key_secret(&context, index, &generate()?).into_secret())
                    })
                    .await?,
                );
            }
            let now_ms = Timestamp::now().as_millisecond().max(0) as u64;
            let genesis =
                build::build_genesis(spec, &validators, admin, now_ms).map_err(BuildError::Genesis)?;
            let document = GenesisDocument::new(genesis);
            let config_map = build::genesis::genesis_config_map(&context, &document);
            match config_maps
                .create(
                    &PostParams { field_manager: Some(FIELD_MANAGER.into()), ..PostParams::default() },
                    &config_map,
                )
                .await
            {
                Ok(_) => {}
                // Another pass won the race: use what it stored.
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    return Ok(Action::requeue(Duration::from_secs(1)));
                }
                Err(error) => return Err(error.into()),
            }
            // Recorded at once: from now on a missing ConfigMap means a lost genesis, not a new chain.
            merge_status(chain, ctx, serde_json::json!({ "genesisHash": document.hash().to_string() }))
                .await?;
            publish(
                ctx,
                chain,
                EventType::Normal,
                "GenesisCreated",
                format!("genesis {} for {} validators", document.hash(), spec.validators),
                Some(reference::<ConfigMap>(&namespace, &names::genesis_config_map(&name))),
            )
            .await;
            document
        }
    };

    let on_genesis = genesis.genesis().validators.clone();
    let keyless = check_validator_keys(&secrets, &namespace, &name, &on_genesis, &mut blockers).await?;
    // The CRD refuses such an edit; this catches objects an older CRD let through.
    if spec.validators as usize != on_genesis.len() {
        blockers.push(Blocker::new(
            "ScalingNotSupported",
            format!(
                "spec.validators is {} but the chain has {} validators; on-chain scaling is not supported by this operator version yet",
                spec.validators,
                on_genesis.len()
            ),
        ));
    }
    for blocker in &blockers {
        let related = blocker.related.clone();
        publish(ctx, chain, EventType::Warning, blocker.reason, blocker.message.clone(), related).await;
    }
    let warnings = check_admin_key(&secrets, &name, &genesis.genesis().admins).await?;

    let indices: Vec<u32> = (0..on_genesis.len() as u32).collect();
    let peers: Vec<PeerAddress> = on_genesis
        .iter()
        .zip(&indices)
        .map(|(key, index)| PeerAddress {
            key: *key,
            address: build::service_peer_address(&name, &namespace, *index),
        })
        .collect();
    let desired = build::desired(&ClusterInput {
        blockchain: chain,
        genesis: &genesis,
        placement: spec.placement.first(),
        validators: &indices,
        peers: &peers,
        ownership: Ownership::Owned,
    })?;
    let mut changed = false;
    changed |= server_side_apply(ctx, &namespace, &desired.peers).await?;
    changed |= server_side_apply(ctx, &namespace, &desired.headless_service).await?;
    changed |= server_side_apply(ctx, &namespace, &desired.api_service).await?;
    for service in &desired.validator_services {
        changed |= server_side_apply(ctx, &namespace, service).await?;
    }
    for (index, stateful_set) in indices.iter().zip(&desired.stateful_sets) {
        // A validator without its key cannot start: leave its StatefulSet as it is.
        if !keyless.contains(index) {
            changed |= server_side_apply(ctx, &namespace, stateful_set).await?;
        }
    }
    changed |= server_side_apply(ctx, &namespace, &desired.pod_disruption_budget).await?;
    changed |= server_side_apply(ctx, &namespace, &desired.network_policy).await?;
    match &desired.service_monitor {
        Some(monitor) => apply_service_monitor(ctx, chain, &namespace, monitor).await?,
        None => remove_service_monitor(ctx, chain, &namespace, &names::validators(&name)).await,
    }

    let observations = observe_validators(ctx, chain, &genesis, &on_genesis).await;
    let running =
        write_status(chain, ctx, &genesis, &observations, &peers, &blockers, &warnings, changed).await?;
    Ok(Action::requeue(if running { POLL_STEADY } else { POLL_SETTLING }))
}

/// Every validator named in genesis needs its key; a lost key is never replaced, since the chain
/// knows that validator by it. Adds a blocker per problem; returns the validators without a key.
async fn check_validator_keys(
    secrets: &Api<Secret>,
    namespace: &str,
    name: &str,
    on_genesis: &[PublicKey],
    blockers: &mut Vec<Blocker>,
) -> Result<Vec<u32>, Error> {
    let mut keyless = Vec::new();
    for (index, expected) in (0u32..).zip(on_genesis) {
        let secret_name = names::validator_key_secret(name, index);
        let found = secrets.get_opt(&secret_name).await?;
        let problem = match found.as_ref().map(|secret| read_public_key(secret, VALIDATOR_KEY)) {
            Some(Ok(key)) if key == *expected => continue,
            Some(Ok(_)) => Blocker::new(
                "KeyMismatch",
                format!("Secret {secret_name} holds another key than validator {index} in genesis"),
            ),
            Some(Err(error)) => Blocker::new("KeyUnreadable", format!("Secret {secret_name}: {error}")),
            None => Blocker::new(
                "KeyMissing",
                format!(
                    "Secret {secret_name} with validator {index}'s key is missing: restore it from a backup; it is never regenerated"
                ),
            ),
        };
        keyless.push(index);
        blockers.push(Blocker { related: Some(reference::<Secret>(namespace, &secret_name)), ..problem });
    }
    Ok(keyless)
}

/// The operator's admin key signs nothing yet, but it is the consortium's way to govern the chain:
/// a lost one is a warning in the status (it is never regenerated either).
async fn check_admin_key(
    secrets: &Api<Secret>,
    name: &str,
    admins: &[PublicKey],
) -> Result<Vec<String>, Error> {
    let secret_name = names::admin_key_secret(name);
    let problem = match secrets.get_opt(&secret_name).await? {
        None => "is missing",
        Some(secret) => match read_public_key(&secret, ADMIN_KEY) {
            Ok(key) if admins.contains(&key) => return Ok(Vec::new()),
            Ok(_) => "holds a key that is not an admin in genesis",
            Err(_) => "cannot be read",
        },
    };
    Ok(vec![format!(
        "Secret {secret_name} with the operator's admin key {problem}: restore it from a backup"
    )])
}

/// A reference to an object of kind `K` for an event's `related` field.
fn reference<K: Resource<DynamicType = ()>>(namespace: &str, name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        namespace: Some(namespace.to_string()),
        name: Some(name.to_string()),
        ..ObjectReference::default()
    }
}

/// A validator's or the admin's key: read back when its Secret exists, else created once.
async fn ensure_key(
    ctx: &Context,
    secrets: &Api<Secret>,
    chain: &Blockchain,
    secret_name: &str,
    data_key: &str,
    make: impl FnOnce() -> Result<Secret, Error>,
) -> Result<PublicKey, Error> {
    let unreadable = |error: build::KeySecretError| Error::KeySecret {
        secret: secret_name.into(),
        reason: error.to_string(),
    };
    if let Some(secret) = secrets.get_opt(secret_name).await? {
        return read_public_key(&secret, data_key).map_err(unreadable);
    }
    let secret = make()?;
    let public_key = read_public_key(&secret, data_key).map_err(unreadable)?;
    secrets
        .create(&PostParams { field_manager: Some(FIELD_MANAGER.into()), ..PostParams::default() }, &secret)
        .await?;
    publish(
        ctx,
        chain,
        EventType::Normal,
        "KeyCreated",
        format!("created key Secret {secret_name} (public key {public_key})"),
        Some(reference::<Secret>(&chain.namespace().unwrap_or_default(), secret_name)),
    )
    .await;
    Ok(public_key)
}

fn generate() -> Result<kubechain_types::SigningKey, Error> {
    crate::keys::generate_key().map_err(|error| Error::Randomness(error.to_string()))
}

/// Server-side apply of one object; whether the server's copy changed.
async fn server_side_apply<K>(ctx: &Context, namespace: &str, object: &K) -> Result<bool, Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let name = object.meta().name.clone().unwrap_or_default();
    let before = api.get_opt(&name).await?.and_then(|existing| existing.meta().resource_version.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let after = api.patch(&name, &params, &Patch::Apply(object)).await?;
    Ok(before != after.meta().resource_version)
}

/// ServiceMonitors need the Prometheus operator's CRD; without it the chain still runs, and an
/// event says why there is no monitor.
async fn apply_service_monitor(
    ctx: &Context,
    chain: &Blockchain,
    namespace: &str,
    monitor: &DynamicObject,
) -> Result<(), Error> {
    let gvk = GroupVersionKind::gvk("monitoring.coreos.com", "v1", "ServiceMonitor");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "servicemonitors");
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), namespace, &resource);
    let name = monitor.metadata.name.clone().unwrap_or_default();
    match api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(monitor)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => {
            let why = "spec.monitoring.serviceMonitor is set but the ServiceMonitor CRD (monitoring.coreos.com/v1) is not installed";
            publish(ctx, chain, EventType::Warning, "ServiceMonitorUnavailable", why.into(), None).await;
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

/// Monitoring turned off: the chain's ServiceMonitor goes. Best effort, and only one this chain
/// owns: no CRD, or no permission to read monitors, means there is nothing of ours to remove.
async fn remove_service_monitor(ctx: &Context, chain: &Blockchain, namespace: &str, name: &str) {
    let gvk = GroupVersionKind::gvk("monitoring.coreos.com", "v1", "ServiceMonitor");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "servicemonitors");
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), namespace, &resource);
    let ours = match api.get_opt(name).await {
        Ok(found) => found.is_some_and(|monitor| {
            monitor.owner_references().iter().any(|owner| chain.uid().as_deref() == Some(owner.uid.as_str()))
        }),
        Err(kube::Error::Api(status)) if matches!(status.code, 403 | 404) => false,
        Err(error) => {
            tracing::warn!(chain = %key_of(chain), %error, "could not look for a ServiceMonitor to remove");
            false
        }
    };
    if ours && let Err(error) = api.delete(name, &DeleteParams::default()).await {
        tracing::warn!(chain = %key_of(chain), %error, "could not remove the ServiceMonitor");
    }
}

async fn observe_validators(
    ctx: &Context,
    chain: &Blockchain,
    genesis: &GenesisDocument,
    keys: &[PublicKey],
) -> Vec<Observation> {
    let namespace = chain.namespace().unwrap_or_default();
    let name = chain.name_any();
    let genesis_hash = genesis.hash().to_string();
    let chain_id = &genesis.genesis().chain_id;
    let asks = (0..keys.len() as u32).map(|index| {
        let url = ctx.node_urls.url(&name, &namespace, index);
        let (http, genesis_hash) = (&ctx.http, &genesis_hash);
        async move {
            let status = observe::node_status(http, &url, chain_id, genesis_hash).await;
            Observation { index, cluster: LOCAL_CLUSTER.into(), status }
        }
    });
    futures_util::future::join_all(asks).await
}

/// Computes and writes the status; whether the chain is Running.
#[allow(clippy::too_many_arguments)]
async fn write_status(
    chain: &Blockchain,
    ctx: &Context,
    genesis: &GenesisDocument,
    observations: &[Observation],
    peers: &[PeerAddress],
    blockers: &[Blocker],
    warnings: &[String],
    changed: bool,
) -> Result<bool, Error> {
    let key = key_of(chain);
    let now = Timestamp::now();
    let progress = ctx
        .progress
        .lock()
        .ok()
        .and_then(|progress| progress.get(&key).copied())
        .unwrap_or_else(|| Progress::resume(chain.status.as_ref(), now));
    let endpoints =
        vec![(LOCAL_CLUSTER.to_string(), peers.iter().map(|peer| peer.address.clone()).collect())];
    let (status, progress) = health::status(&health::Inputs {
        spec: &chain.spec,
        generation: chain.metadata.generation,
        genesis_hash: Some(genesis.hash().to_string()),
        observations,
        endpoints: &endpoints,
        blockers,
        warnings,
        changed,
        progress,
        previous: chain.status.as_ref(),
        now,
    });
    if let Ok(mut all) = ctx.progress.lock() {
        all.insert(key, progress);
    }
    announce_changes(ctx, chain, chain.status.as_ref(), &status).await;
    patch_status(chain, ctx, &status).await?;
    Ok(status.phase == Some(kubechain_crds::Phase::Running))
}

/// The status of a pass that stopped early: see [`health::blocked`].
async fn write_blocked(chain: &Blockchain, ctx: &Context, blockers: &[Blocker]) -> Result<(), Error> {
    let status =
        health::blocked(chain.status.as_ref(), blockers, chain.metadata.generation, Timestamp::now());
    patch_status(chain, ctx, &status).await
}

/// Sets a few status fields, leaving the rest as they are (unlike [`patch_status`]).
async fn merge_status(chain: &Blockchain, ctx: &Context, fields: serde_json::Value) -> Result<(), Error> {
    let api: Api<Blockchain> = Api::namespaced(ctx.client.clone(), &chain.namespace().unwrap_or_default());
    let patch = serde_json::json!({ "status": fields });
    api.patch_status(&chain.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

async fn patch_status(chain: &Blockchain, ctx: &Context, status: &BlockchainStatus) -> Result<(), Error> {
    let api: Api<Blockchain> = Api::namespaced(ctx.client.clone(), &chain.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": Blockchain::api_version(&()),
        "kind": Blockchain::kind(&()),
        "status": status,
    });
    api.patch_status(&chain.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await?;
    Ok(())
}

/// Events for conditions that changed: what a person reading `kubectl describe` wants to see.
async fn announce_changes(
    ctx: &Context,
    chain: &Blockchain,
    before: Option<&BlockchainStatus>,
    after: &BlockchainStatus,
) {
    for condition in &after.conditions {
        let previous = before.and_then(|before| before.condition(&condition.type_));
        if previous.is_some_and(|previous| previous.status == condition.status) {
            continue;
        }
        let bad = matches!(
            (condition.type_.as_str(), condition.status.as_str()),
            ("Ready", "False") | ("Degraded" | "QuorumAtRisk" | "ChainStalled", "True")
        );
        if previous.is_none() && !bad {
            continue;
        }
        let type_ = if bad { EventType::Warning } else { EventType::Normal };
        let note = format!("{} is {}: {}", condition.type_, condition.status, condition.message);
        publish(ctx, chain, type_, &condition.reason, note, None).await;
    }
}

/// An Event on the Blockchain. Events with the same reason fold into one series unless they name
/// different `related` objects, so per-object events (a created key) name their object.
async fn publish(
    ctx: &Context,
    chain: &Blockchain,
    type_: EventType,
    reason: &str,
    note: String,
    related: Option<ObjectReference>,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: related,
    };
    if let Err(error) = ctx.recorder.publish(&event, &chain.object_ref(&())).await {
        tracing::warn!(%error, "could not publish an event");
    }
}

/// A failure retrying will not fix: Ready=False with its message, and a Warning event.
async fn report_failure(chain: &Blockchain, ctx: &Context, error: &Error) {
    let blocker = Blocker::new("ReconcileFailed", error.summary());
    publish(ctx, chain, EventType::Warning, blocker.reason, blocker.message.clone(), None).await;
    if let Err(error) = write_blocked(chain, ctx, &[blocker]).await {
        tracing::warn!(chain = %key_of(chain), %error, "could not write the status");
    }
}

/// Deletion: owned objects go with the Blockchain (owner references); volume claims follow the
/// StatefulSets' retention policy (kept unless spec.storage.retainOnDelete is false).
async fn cleanup(chain: &Blockchain, ctx: &Context) -> Result<Action, Error> {
    if let Ok(mut progress) = ctx.progress.lock() {
        progress.remove(&key_of(chain));
    }
    if let Ok(mut failures) = ctx.failures.lock() {
        failures.remove(&key_of(chain));
    }
    // Cosmetic: an object already gone (or a refusal) must not hold up the finalizer.
    match merge_status(chain, ctx, serde_json::json!({ "phase": kubechain_crds::Phase::Deleting })).await {
        Ok(()) | Err(Error::Kube(kube::Error::Api(_))) => {}
        Err(error) => return Err(error),
    }
    let kept = if chain.spec.storage.retain_on_delete { "kept" } else { "deleted" };
    publish(
        ctx,
        chain,
        EventType::Normal,
        "Deleting",
        format!("removing validators; their volume claims are {kept}"),
        None,
    )
    .await;
    Ok(Action::await_change())
}

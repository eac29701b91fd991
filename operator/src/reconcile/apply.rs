//! Writes the built objects with server-side apply under the operator's field manager, on every
//! pass and in every cluster, so a deleted or edited object is put back.

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::events::EventType;
use kube::{Client, Resource, ResourceExt};
use kubechain_crds::Blockchain;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::build::Desired;
use crate::build::meta::names;
use crate::context::{Context, FIELD_MANAGER, chain_key};

/// Applies everything but the genesis ConfigMap (created once by bootstrap or copied by expose),
/// the StatefulSets of validators without their key (they cannot start: left as they are), and
/// the peers ConfigMap while `peers_complete` is false (a validator must not start with a
/// partial peer list; its pod waits for the ConfigMap). Whether any object changed.
pub async fn objects(
    client: &Client,
    namespace: &str,
    desired: &Desired,
    keyless: &[u32],
    validators: &[u32],
    peers_complete: bool,
) -> Result<bool, kube::Error> {
    let mut changed = false;
    if peers_complete {
        changed |= server_side_apply(client, namespace, &desired.peers).await?.0;
    }
    changed |= server_side_apply(client, namespace, &desired.headless_service).await?.0;
    changed |= server_side_apply(client, namespace, &desired.api_service).await?.0;
    for service in &desired.validator_services {
        changed |= server_side_apply(client, namespace, service).await?.0;
    }
    for (index, stateful_set) in validators.iter().zip(&desired.stateful_sets) {
        if !keyless.contains(index) {
            changed |= server_side_apply(client, namespace, stateful_set).await?.0;
        }
    }
    changed |= server_side_apply(client, namespace, &desired.pod_disruption_budget).await?.0;
    changed |= server_side_apply(client, namespace, &desired.network_policy).await?.0;
    Ok(changed)
}

/// The chain's ServiceMonitor when it asks for one, else the removal of one it owns.
pub async fn service_monitor(
    ctx: &Context,
    client: &Client,
    chain: &Blockchain,
    monitor: Option<&DynamicObject>,
) -> Result<(), kube::Error> {
    let namespace = chain.namespace().unwrap_or_default();
    match monitor {
        Some(monitor) => apply_service_monitor(ctx, client, chain, &namespace, monitor).await,
        None => {
            remove_service_monitor(client, chain, &namespace, &names::validators(&chain.name_any())).await;
            Ok(())
        }
    }
}

/// Server-side apply of one object: whether the server's copy changed, and that copy.
pub async fn server_side_apply<K>(
    client: &Client,
    namespace: &str,
    object: &K,
) -> Result<(bool, K), kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let name = object.meta().name.clone().unwrap_or_default();
    let before = api.get_opt(&name).await?.and_then(|existing| existing.meta().resource_version.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let after = api.patch(&name, &params, &Patch::Apply(object)).await?;
    Ok((before != after.meta().resource_version, after))
}

pub fn service_monitors(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("monitoring.coreos.com", "v1", "ServiceMonitor");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "servicemonitors");
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// ServiceMonitors need the Prometheus operator's CRD; without it the chain still runs, and an
/// event says why there is no monitor.
async fn apply_service_monitor(
    ctx: &Context,
    client: &Client,
    chain: &Blockchain,
    namespace: &str,
    monitor: &DynamicObject,
) -> Result<(), kube::Error> {
    let api = service_monitors(client, namespace);
    let name = monitor.metadata.name.clone().unwrap_or_default();
    match api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(monitor)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => {
            let why = "spec.monitoring.serviceMonitor is set but the ServiceMonitor CRD (monitoring.coreos.com/v1) is not installed";
            ctx.publish(chain, EventType::Warning, "ServiceMonitorUnavailable", why.into(), None).await;
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// Monitoring turned off: the chain's ServiceMonitor goes. Best effort, and only one this chain
/// owns: no CRD, or no permission to read monitors, means there is nothing of ours to remove.
async fn remove_service_monitor(client: &Client, chain: &Blockchain, namespace: &str, name: &str) {
    let api = service_monitors(client, namespace);
    let ours = match api.get_opt(name).await {
        Ok(found) => found.is_some_and(|monitor| {
            monitor.owner_references().iter().any(|owner| chain.uid().as_deref() == Some(owner.uid.as_str()))
        }),
        Err(kube::Error::Api(status)) if matches!(status.code, 403 | 404) => false,
        Err(error) => {
            tracing::warn!(chain = %chain_key(chain), %error, "could not look for a ServiceMonitor to remove");
            false
        }
    };
    if ours && let Err(error) = api.delete(name, &DeleteParams::default()).await {
        tracing::warn!(chain = %chain_key(chain), %error, "could not remove the ServiceMonitor");
    }
}

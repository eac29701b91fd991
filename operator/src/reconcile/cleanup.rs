//! A deleted chain leaves every member cluster: owner references cannot cross clusters, so the
//! finalizer removes each member's objects by their labels (StatefulSets, Services, ConfigMaps,
//! the budget, the NetworkPolicy, the key Secrets, a ServiceMonitor). Volume claims follow the
//! StatefulSets' retention policy. A cluster that cannot be cleaned now is reported and retried.

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, ListParams};
use kube::{Client, Resource, ResourceExt};
use kubechain_crds::Blockchain;
use serde::de::DeserializeOwned;

use super::apply::service_monitors;
use super::connect::{Cluster, unreachable, within_step};
use crate::build::meta::{MANAGER, labels};

/// Removes the chain from every member cluster; the clusters still holding some of it, with why.
pub async fn members(chain: &Blockchain, clusters: &[Cluster]) -> Vec<(String, String)> {
    let removals = clusters.iter().filter(|cluster| !cluster.plan.is_hub()).map(|cluster| async move {
        let result = match &cluster.client {
            Err(error) => Err(error.to_string()),
            Ok(client) => match within_step(remove(client, chain)).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(unreachable(error).to_string()),
                Err(timed_out) => Err(timed_out.to_string()),
            },
        };
        result.err().map(|why| (cluster.name().to_string(), why))
    });
    futures_util::future::join_all(removals).await.into_iter().flatten().collect()
}

async fn remove(client: &Client, chain: &Blockchain) -> Result<(), kube::Error> {
    let namespace = chain.namespace().unwrap_or_default();
    let selector = format!("{}={},{}={MANAGER}", labels::INSTANCE, chain.name_any(), labels::MANAGED_BY);
    delete_labelled::<StatefulSet>(client, &namespace, &selector).await?;
    delete_labelled::<Service>(client, &namespace, &selector).await?;
    delete_labelled::<ConfigMap>(client, &namespace, &selector).await?;
    delete_labelled::<PodDisruptionBudget>(client, &namespace, &selector).await?;
    delete_labelled::<NetworkPolicy>(client, &namespace, &selector).await?;
    delete_labelled::<Secret>(client, &namespace, &selector).await?;
    // Only where the ServiceMonitor CRD is installed.
    let monitors = service_monitors(client, &namespace);
    match monitors.list_metadata(&ListParams::default().labels(&selector)).await {
        Ok(list) => {
            for monitor in list {
                delete(&monitors, &monitor.name_any()).await?;
            }
        }
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(error) => return Err(error),
    }
    Ok(())
}

/// Deletes each object of kind `K` with the chain's labels, one by one (not every kind serves a
/// collection delete).
async fn delete_labelled<K>(client: &Client, namespace: &str, selector: &str) -> Result<(), kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    for object in api.list_metadata(&ListParams::default().labels(selector)).await? {
        delete(&api, &object.name_any()).await?;
    }
    Ok(())
}

async fn delete<K: Clone + DeserializeOwned + std::fmt::Debug>(
    api: &Api<K>,
    name: &str,
) -> Result<(), kube::Error> {
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error),
    }
}

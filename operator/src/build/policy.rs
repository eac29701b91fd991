//! The PodDisruptionBudget and the NetworkPolicy of a cluster's validators.

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::config::{API_PORT, P2P_PORT};
use super::meta::{Component, ObjectContext, names};

/// The label Kubernetes puts on every namespace, its name.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

fn validator_pods(context: &ObjectContext) -> LabelSelector {
    LabelSelector { match_labels: Some(context.selector(Component::Validator)), ..LabelSelector::default() }
}

/// At most `fault_tolerance` (f) validators down by voluntary disruption (drains, evictions): the
/// chain commits with any f validators missing. With fewer than 4 validators f is 0, so drains
/// wait for a person: any missing validator would stop the chain. The budget only sees this
/// cluster's pods; across clusters the operator's one-at-a-time upgrades keep the quorum.
pub fn pod_disruption_budget(context: &ObjectContext, fault_tolerance: u32) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: context.metadata(names::validators(context.name()), Component::Validator),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(i32::try_from(fault_tolerance).unwrap_or(i32::MAX))),
            selector: Some(validator_pods(context)),
            // A pod that is not ready already counts as down; evicting it costs nothing and must
            // not block a drain.
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".to_string()),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

/// Who may reach the validators' API port besides the pods of the chain's own namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiClients {
    /// Namespaces whose pods may: the operator's own (in its cluster), monitoring's, clients'.
    pub namespaces: Vec<String>,
    /// Address ranges that may: clients outside the cluster, a member cluster's API server
    /// (the hub operator asks member validators through its pod proxy).
    pub cidrs: Vec<String>,
}

impl ApiClients {
    /// These, and in the cluster the operator runs in (`operator_namespace` given) its own
    /// namespace first. In a member cluster the hub's questions arrive through the member's API
    /// server instead, which `cidrs` must name where NetworkPolicies are enforced.
    pub fn with_operator(&self, operator_namespace: Option<&str>) -> ApiClients {
        let mut clients = self.clone();
        if let Some(own) = operator_namespace.filter(|own| !clients.namespaces.iter().any(|n| n == own)) {
            clients.namespaces.insert(0, own.to_string());
        }
        clients
    }
}

/// Ingress to validator pods: the peer port from this chain's validators only (its pods in this
/// cluster, and `peer_sources`: the CIDRs other validators' traffic comes from, node addresses
/// or the placement's egressCidrs), and the API port from this namespace's pods and
/// `api_clients` (clients, probes, the operator, monitoring). Everything else is denied. Egress
/// stays open: validators dial peers wherever they are.
pub fn network_policy(
    context: &ObjectContext,
    peer_sources: &[String],
    api_clients: &ApiClients,
) -> NetworkPolicy {
    let tcp = |port: u16| NetworkPolicyPort {
        protocol: Some("TCP".to_string()),
        port: Some(IntOrString::Int(port.into())),
        ..NetworkPolicyPort::default()
    };
    let mut peers =
        vec![NetworkPolicyPeer { pod_selector: Some(validator_pods(context)), ..Default::default() }];
    let ip_block = |cidr: &String| NetworkPolicyPeer {
        ip_block: Some(IPBlock { cidr: cidr.clone(), except: None }),
        ..Default::default()
    };
    peers.extend(peer_sources.iter().map(ip_block));
    // The API: this namespace's pods, the named namespaces' pods, the named ranges.
    let mut api_peers =
        vec![NetworkPolicyPeer { pod_selector: Some(LabelSelector::default()), ..Default::default() }];
    api_peers.extend(api_clients.namespaces.iter().map(|namespace| NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some([(NAMESPACE_NAME_LABEL.to_string(), namespace.clone())].into()),
            ..LabelSelector::default()
        }),
        ..Default::default()
    }));
    api_peers.extend(api_clients.cidrs.iter().map(ip_block));
    NetworkPolicy {
        metadata: context.metadata(names::validators(context.name()), Component::Validator),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(validator_pods(context)),
            policy_types: Some(vec!["Ingress".to_string()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule { from: Some(peers), ports: Some(vec![tcp(P2P_PORT)]) },
                NetworkPolicyIngressRule { from: Some(api_peers), ports: Some(vec![tcp(API_PORT)]) },
            ]),
            ..NetworkPolicySpec::default()
        }),
    }
}

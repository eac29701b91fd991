//! Services: a headless `{chain}-validators` that gives the StatefulSets' pods their DNS names
//! (through which the operator asks each validator how it is, and Prometheus scrapes them), one
//! `{chain}-validator-{i}` per validator, the stable peer address other validators dial (a
//! ClusterIP in one cluster, a NodePort or load balancer across clusters) with the peer port
//! only, and `{chain}-api` for clients, a ClusterIP.
//!
//! The peer Services publish not-ready addresses: a validator is ready only once connected to a
//! quorum, so hiding unready pods from their peers would keep a new chain from ever starting.
//! The client Service does not: a validator still catching up gets no client traffic. A peer
//! Service may face the internet (across clouds); the API never does through it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kubechain_crds::{BlockchainSpec, PlacementSpec, Provider, ServiceType};

use super::config::{API_PORT, P2P_PORT};
use super::meta::{Component, ObjectContext, labels, names};

/// Port names, shared by the container, the Services and the ServiceMonitor.
pub const API_PORT_NAME: &str = "api";
pub const P2P_PORT_NAME: &str = "p2p";

fn ports(names: &[&str]) -> Vec<ServicePort> {
    [(API_PORT_NAME, API_PORT), (P2P_PORT_NAME, P2P_PORT)]
        .into_iter()
        .filter(|(name, _)| names.contains(name))
        .map(|(name, port)| ServicePort {
            name: Some(name.to_string()),
            port: port.into(),
            target_port: Some(IntOrString::String(name.to_string())),
            protocol: Some("TCP".to_string()),
            ..ServicePort::default()
        })
        .collect()
}

/// The headless Service named in every validator StatefulSet's `serviceName`.
pub fn headless_service(context: &ObjectContext) -> Service {
    let mut metadata = context.metadata(names::validators(context.name()), Component::Validator);
    metadata.labels.get_or_insert_default().insert(labels::SCRAPE.to_string(), "true".to_string());
    Service {
        metadata,
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_string()),
            publish_not_ready_addresses: Some(true),
            selector: Some(context.selector(Component::Validator)),
            ports: Some(ports(&[API_PORT_NAME, P2P_PORT_NAME])),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// `{chain}-api`: the API of every ready validator, where clients submit transactions and read.
pub fn api_service(context: &ObjectContext) -> Service {
    Service {
        metadata: context.metadata(names::api(context.name()), Component::Validator),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_string()),
            selector: Some(context.selector(Component::Validator)),
            ports: Some(ports(&[API_PORT_NAME])),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The type of the per-validator Services in the cluster of `placement` (none: no placement,
/// all validators in the operator's cluster): as the placement says, else ClusterIP when every
/// validator shares one cluster and LoadBalancer when peers are in other clusters (the CRD's
/// documented default).
pub fn peer_service_type(spec: &BlockchainSpec, placement: Option<&PlacementSpec>) -> ServiceType {
    let chosen = placement.and_then(|entry| entry.service.as_ref()).and_then(|service| service.type_);
    chosen.unwrap_or(if spec.placement.len() >= 2 {
        ServiceType::LoadBalancer
    } else {
        ServiceType::ClusterIp
    })
}

/// Load-balancer annotations each cloud needs for long-lived peer links from other clouds:
/// AWS a public Network Load Balancer (a classic ELB cuts idle TCP after 60 s), Azure a TCP
/// idle timeout longer than its 4-minute default, GCP a backend-service-based passthrough
/// load balancer. A placement's own `service.annotations` override these.
pub fn provider_annotations(provider: Provider) -> BTreeMap<String, String> {
    let pairs: &[(&str, &str)] = match provider {
        Provider::Aws => &[
            ("service.beta.kubernetes.io/aws-load-balancer-type", "nlb"),
            ("service.beta.kubernetes.io/aws-load-balancer-scheme", "internet-facing"),
        ],
        Provider::Azure => &[("service.beta.kubernetes.io/azure-load-balancer-tcp-idle-timeout", "30")],
        Provider::Gcp => &[("cloud.google.com/l4-rbs", "enabled")],
    };
    pairs.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect()
}

fn service_type_name(service_type: ServiceType) -> &'static str {
    match service_type {
        ServiceType::ClusterIp => "ClusterIP",
        ServiceType::NodePort => "NodePort",
        ServiceType::LoadBalancer => "LoadBalancer",
    }
}

/// The Service of validator `index`, selecting only its pod. Labelled with the index, which is
/// how the ServiceMonitor tells these Services from the headless one.
pub fn validator_service(
    context: &ObjectContext,
    index: u32,
    service_type: ServiceType,
    annotations: &BTreeMap<String, String>,
) -> Service {
    let mut metadata = context.metadata(names::validator(context.name(), index), Component::Validator);
    metadata.labels.get_or_insert_default().insert(labels::VALIDATOR.to_string(), index.to_string());
    if !annotations.is_empty() {
        metadata.annotations = Some(annotations.clone());
    }
    // Beyond the cluster, keep the caller's address: NetworkPolicies admit peers by it, and a
    // node port answers on the validator's own node without a second hop.
    let external_traffic_policy = (service_type != ServiceType::ClusterIp).then(|| "Local".to_string());
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(service_type_name(service_type).to_string()),
            external_traffic_policy,
            publish_not_ready_addresses: Some(true),
            selector: Some(context.validator_selector(index)),
            ports: Some(ports(&[P2P_PORT_NAME])),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

//! Where validators in other clusters dial a validator, and where its traffic comes from, read
//! off its peer Service and the node that runs its pod. Pure: the reconciler reads the objects.
//!
//! The advertised address is, first found: the placement's `service.advertisedHost` (with the
//! node port, or the peer port behind a load balancer), the load balancer's address, or the
//! address of the node that runs the validator plus the node port. Peer Services outside a
//! single cluster keep the client's address (`externalTrafficPolicy: Local`), so a node port
//! answers only on the validator's own node, and NetworkPolicies see who is calling.

use k8s_openapi::api::core::v1::{Node, Service};

use super::config::P2P_PORT;
use super::services::P2P_PORT_NAME;

/// Why a validator has no advertised address yet; shown in the status while the operator waits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Pending {
    #[error("its peer Service does not exist yet")]
    NoService,
    #[error("its load balancer has no address yet")]
    NoLoadBalancer,
    #[error("its peer Service has no node port yet")]
    NoNodePort,
    #[error("its pod is not on a node yet")]
    NotScheduled,
    #[error("node {0} reports no address")]
    NodeWithoutAddress(String),
}

/// The `host:port` other validators dial for the validator behind `service`, whose pod runs
/// on `node` (if scheduled).
pub fn advertised_address(
    service: Option<&Service>,
    node: Option<&Node>,
    advertised_host: Option<&str>,
) -> Result<String, Pending> {
    let spec = service.and_then(|service| service.spec.as_ref()).ok_or(Pending::NoService)?;
    let node_port = spec
        .ports
        .iter()
        .flatten()
        .find(|port| port.name.as_deref() == Some(P2P_PORT_NAME))
        .and_then(|port| port.node_port);
    match spec.type_.as_deref() {
        Some("LoadBalancer") => {
            let host = match advertised_host {
                Some(host) => host.to_string(),
                None => load_balancer_host(service.expect("a service with a spec"))
                    .ok_or(Pending::NoLoadBalancer)?,
            };
            Ok(format!("{host}:{P2P_PORT}"))
        }
        _ => {
            let port = node_port.ok_or(Pending::NoNodePort)?;
            let host = match advertised_host {
                Some(host) => host.to_string(),
                None => {
                    let node = node.ok_or(Pending::NotScheduled)?;
                    node_address(node).ok_or_else(|| {
                        Pending::NodeWithoutAddress(node.metadata.name.clone().unwrap_or_default())
                    })?
                }
            };
            Ok(format!("{host}:{port}"))
        }
    }
}

/// The first ingress of the load balancer: its IP, else its hostname (AWS gives names).
fn load_balancer_host(service: &Service) -> Option<String> {
    let ingress = service.status.as_ref()?.load_balancer.as_ref()?.ingress.as_ref()?.first()?;
    ingress.ip.clone().or_else(|| ingress.hostname.clone()).filter(|host| !host.is_empty())
}

/// The node's address as other clusters see it: its ExternalIP, else its InternalIP.
pub fn node_address(node: &Node) -> Option<String> {
    let addresses = node.status.as_ref()?.addresses.as_ref()?;
    ["ExternalIP", "InternalIP"].iter().find_map(|wanted| {
        addresses.iter().find(|address| address.type_ == *wanted).map(|address| address.address.clone())
    })
}

/// The CIDR of one address (`/32` or `/128`), for a NetworkPolicy's ipBlock; none for a name.
pub fn host_cidr(host: &str) -> Option<String> {
    match host.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(ip) => Some(format!("{ip}/32")),
        std::net::IpAddr::V6(ip) => Some(format!("{ip}/128")),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, NodeAddress, NodeStatus, ServicePort, ServiceSpec,
        ServiceStatus,
    };

    use super::*;

    fn service(type_: &str, node_port: Option<i32>) -> Service {
        Service {
            spec: Some(ServiceSpec {
                type_: Some(type_.to_string()),
                ports: Some(vec![
                    ServicePort {
                        name: Some("api".into()),
                        port: 8080,
                        node_port: Some(31000),
                        ..Default::default()
                    },
                    ServicePort {
                        name: Some(P2P_PORT_NAME.into()),
                        port: 7000,
                        node_port,
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn node(addresses: &[(&str, &str)]) -> Node {
        let mut node = Node::default();
        node.metadata.name = Some("node-a".into());
        node.status = Some(NodeStatus {
            addresses: Some(
                addresses
                    .iter()
                    .map(|(type_, address)| NodeAddress {
                        type_: type_.to_string(),
                        address: address.to_string(),
                    })
                    .collect(),
            ),
            ..Default::default()
        });
        node
    }

    fn with_ingress(mut service: Service, ip: Option<&str>, hostname: Option<&str>) -> Service {
        service.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![LoadBalancerIngress {
                    ip: ip.map(str::to_string),
                    hostname: hostname.map(str::to_string),
                    ..Default::default()
                }]),
            }),
            ..Default::default()
        });
        service
    }

    #[test]
    fn a_node_port_is_dialled_on_the_validators_node() {
        let service = service("NodePort", Some(30123));
        let internal = node(&[("Hostname", "node-a"), ("InternalIP", "10.251.0.1")]);
        assert_eq!(advertised_address(Some(&service), Some(&internal), None), Ok("10.251.0.1:30123".into()));
        let public = node(&[("InternalIP", "10.0.0.5"), ("ExternalIP", "203.0.113.9")]);
        assert_eq!(advertised_address(Some(&service), Some(&public), None), Ok("203.0.113.9:30123".into()));
        assert_eq!(
            advertised_address(Some(&service), Some(&public), Some("edge.example.com")),
            Ok("edge.example.com:30123".into())
        );
    }

    #[test]
    fn a_node_port_address_waits_for_what_it_needs() {
        let service_ = service("NodePort", Some(30123));
        assert_eq!(advertised_address(None, None, None), Err(Pending::NoService));
        assert_eq!(
            advertised_address(Some(&service("NodePort", None)), None, None),
            Err(Pending::NoNodePort)
        );
        assert_eq!(advertised_address(Some(&service_), None, None), Err(Pending::NotScheduled));
        assert_eq!(
            advertised_address(Some(&service_), Some(&node(&[("Hostname", "node-a")])), None),
            Err(Pending::NodeWithoutAddress("node-a".into()))
        );
    }

    #[test]
    fn a_load_balancer_is_dialled_on_its_address_and_the_peer_port() {
        let pending = service("LoadBalancer", Some(30123));
        assert_eq!(advertised_address(Some(&pending), None, None), Err(Pending::NoLoadBalancer));
        let by_ip = with_ingress(pending.clone(), Some("198.51.100.4"), None);
        assert_eq!(advertised_address(Some(&by_ip), None, None), Ok("198.51.100.4:7000".into()));
        let by_name = with_ingress(pending.clone(), None, Some("abc.elb.amazonaws.com"));
        assert_eq!(advertised_address(Some(&by_name), None, None), Ok("abc.elb.amazonaws.com:7000".into()));
        assert_eq!(
            advertised_address(Some(&pending), None, Some("ledger.example.com")),
            Ok("ledger.example.com:7000".into())
        );
    }

    #[test]
    fn only_addresses_make_cidrs() {
        assert_eq!(host_cidr("10.251.0.2").as_deref(), Some("10.251.0.2/32"));
        assert_eq!(host_cidr("2001:db8::1").as_deref(), Some("2001:db8::1/128"));
        assert_eq!(host_cidr("abc.elb.amazonaws.com"), None);
    }
}

//! The ServiceMonitor (prometheus-operator), built as a dynamic object so the operator needs
//! neither prometheus-operator's types nor its CRD to compile or run.

use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

use super::meta::{Component, ObjectContext, labels, names};
use super::services::API_PORT_NAME;

/// `monitoring.coreos.com/v1` `ServiceMonitor`.
pub fn service_monitor_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("monitoring.coreos.com", "v1", "ServiceMonitor"),
        "servicemonitors",
    )
}

/// Scrapes `/metrics` on the API port of every validator, once, through the headless Service
/// (the peer Services carry no API port, and the client Service only ready validators). Each
/// series gets `chain`, the Blockchain's name, as the monitoring mixin's dashboards and alerts
/// expect (docs/monitoring.md).
pub fn service_monitor(context: &ObjectContext) -> DynamicObject {
    let mut object = DynamicObject::new(&names::validators(context.name()), &service_monitor_resource());
    object.metadata = context.metadata(names::validators(context.name()), Component::Validator);
    let mut selector = context.selector(Component::Validator);
    selector.insert(labels::SCRAPE.to_string(), "true".to_string());
    object.data = json!({
        "spec": {
            "selector": { "matchLabels": selector },
            "endpoints": [{
                "port": API_PORT_NAME,
                "path": "/metrics",
                "interval": "15s",
                "relabelings": [{
                    "sourceLabels": [format!("__meta_kubernetes_pod_label_{}", prometheus_label(labels::INSTANCE))],
                    "targetLabel": "chain",
                }],
            }],
        }
    });
    object
}

/// A Kubernetes label key as Prometheus' service discovery names it: every character that is not
/// a letter, digit or underscore becomes an underscore.
fn prometheus_label(key: &str) -> String {
    key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

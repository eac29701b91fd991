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

/// Scrapes `/metrics` on the API port of every validator through the per-validator Services
/// (those with the validator label; the headless Service would scrape every pod twice).
pub fn service_monitor(context: &ObjectContext) -> DynamicObject {
    let mut object = DynamicObject::new(&names::validators(context.name()), &service_monitor_resource());
    object.metadata = context.metadata(names::validators(context.name()), Component::Validator);
    object.data = json!({
        "spec": {
            "selector": {
                "matchLabels": context.selector(Component::Validator),
                "matchExpressions": [{"key": labels::VALIDATOR, "operator": "Exists"}],
            },
            "endpoints": [{"port": API_PORT_NAME, "path": "/metrics", "interval": "15s"}],
        }
    });
    object
}

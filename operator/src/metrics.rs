//! The operator's own metrics (prefix `kubechain_operator_`) and its health endpoints.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};

#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    /// Reconciles by outcome (`ok`, `error`).
    pub reconciles: IntCounterVec,
    /// Failed reconciles by error kind.
    pub errors: IntCounterVec,
    pub duration: HistogramVec,
}

impl Metrics {
    pub fn new() -> prometheus::Result<Metrics> {
        let registry = Registry::new_custom(Some("kubechain_operator".into()), None)?;
        let reconciles = IntCounterVec::new(
            Opts::new("reconciles_total", "Reconciles of Blockchain objects by outcome"),
            &["result"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new("reconcile_errors_total", "Failed reconciles by error kind"),
            &["kind"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new("reconcile_duration_seconds", "Time one reconcile took")
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["result"],
        )?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        Ok(Metrics { registry, reconciles, errors, duration })
    }

    pub fn render(&self) -> String {
        let mut text = Vec::new();
        // Encoding into memory only fails on a malformed metric family, which we never build.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut text);
        String::from_utf8(text).unwrap_or_default()
    }
}

/// What `/readyz` reports: the operator is ready once it leads and its controller runs.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }

    fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listen` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Metrics,
    readiness: Readiness,
) -> std::io::Result<()> {
    let router = Router::new()
        .route(
            "/metrics",
            get(|State((metrics, _)): State<(Metrics, Readiness)>| async move { metrics.render() }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State((_, readiness)): State<(Metrics, Readiness)>| async move {
                match readiness.get() {
                    true => (StatusCode::OK, "ready").into_response(),
                    false => (StatusCode::SERVICE_UNAVAILABLE, "not leading").into_response(),
                }
            }),
        )
        .with_state((metrics, readiness));
    axum::serve(listener, router).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_the_prefix() {
        let metrics = Metrics::new().expect("metrics");
        metrics.reconciles.with_label_values(&["ok"]).inc();
        metrics.errors.with_label_values(&["kube"]).inc_by(2);
        let text = metrics.render();
        assert!(text.contains("kubechain_operator_reconciles_total{result=\"ok\"} 1"), "{text}");
        assert!(text.contains("kubechain_operator_reconcile_errors_total{kind=\"kube\"} 2"), "{text}");
    }
}

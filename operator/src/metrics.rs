//! The operator's own metrics (prefix `kubechain_operator_`) and its health endpoints.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use kubechain_crds::{BlockchainStatus, condition};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    /// Reconciles by outcome (`ok`, `error`).
    pub reconciles: IntCounterVec,
    /// Failed reconciles by error kind.
    pub errors: IntCounterVec,
    pub duration: HistogramVec,
    /// Per chain, each condition of its status: 1 while True, 0 while False (for alerts).
    chain_conditions: IntGaugeVec,
    /// Per chain: validators desired, ready and in the set on chain.
    chain_validators: IntGaugeVec,
    /// Per chain: the highest height a validator answered.
    chain_height: IntGaugeVec,
}

/// The `result` label of `reconciles_total`.
pub const RECONCILE_OUTCOMES: [&str; 2] = ["ok", "error"];

/// The labels that name one chain's series.
const CHAIN_LABELS: [&str; 2] = ["namespace", "chain"];
/// The `state` label of `chain_validators`.
const VALIDATOR_STATES: [&str; 3] = ["desired", "ready", "on_chain"];

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
        let chain_conditions = IntGaugeVec::new(
            Opts::new("chain_condition", "A Blockchain's status condition: 1 while True, 0 while False"),
            &[CHAIN_LABELS[0], CHAIN_LABELS[1], "condition"],
        )?;
        let chain_validators = IntGaugeVec::new(
            Opts::new(
                "chain_validators",
                "A Blockchain's validators: desired (spec), ready, on_chain (the set in force)",
            ),
            &[CHAIN_LABELS[0], CHAIN_LABELS[1], "state"],
        )?;
        let chain_height = IntGaugeVec::new(
            Opts::new("chain_height", "The highest height a Blockchain's validators answered"),
            &CHAIN_LABELS,
        )?;
        for collector in [&reconciles, &errors] {
            registry.register(Box::new(collector.clone()))?;
        }
        // Both outcomes from the start: an error ratio (the OperatorReconcileErrors alert) needs
        // the error series before the first error.
        for outcome in RECONCILE_OUTCOMES {
            reconciles.with_label_values(&[outcome]);
        }
        registry.register(Box::new(duration.clone()))?;
        for collector in [&chain_conditions, &chain_validators, &chain_height] {
            registry.register(Box::new(collector.clone()))?;
        }
        Ok(Metrics {
            registry,
            reconciles,
            errors,
            duration,
            chain_conditions,
            chain_validators,
            chain_height,
        })
    }

    /// The series of chain `name` in `namespace`, from the status just written.
    pub fn record_chain(&self, namespace: &str, name: &str, status: &BlockchainStatus) {
        for condition in &status.conditions {
            let value = i64::from(condition.status == "True");
            self.chain_conditions.with_label_values(&[namespace, name, &condition.type_]).set(value);
        }
        if let Some(counts) = &status.validators {
            let counts = [Some(counts.desired), Some(counts.ready), counts.on_chain];
            for (state, count) in VALIDATOR_STATES.into_iter().zip(counts) {
                // Nothing on chain known yet (no validator answered) counts as none.
                let count = i64::from(count.unwrap_or(0));
                self.chain_validators.with_label_values(&[namespace, name, state]).set(count);
            }
        }
        if let Some(height) = status.height {
            self.chain_height
                .with_label_values(&[namespace, name])
                .set(i64::try_from(height).unwrap_or(i64::MAX));
        }
    }

    /// Drops every series of a deleted chain, so none outlives it (one never recorded is no error).
    pub fn forget_chain(&self, namespace: &str, name: &str) {
        for condition in condition::ALL {
            let _ = self.chain_conditions.remove_label_values(&[namespace, name, condition]);
        }
        for state in VALIDATOR_STATES {
            let _ = self.chain_validators.remove_label_values(&[namespace, name, state]);
        }
        let _ = self.chain_height.remove_label_values(&[namespace, name]);
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
        assert!(text.contains("kubechain_operator_reconciles_total{result=\"error\"} 0"), "{text}");
        assert!(text.contains("kubechain_operator_reconcile_errors_total{kind=\"kube\"} 2"), "{text}");
    }

    fn condition_of(type_: &str, status: &str) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
            type_: type_.into(),
            status: status.into(),
            reason: "Because".into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ),
        }
    }

    #[test]
    fn each_chain_has_its_conditions_counts_and_height_until_it_is_deleted() {
        let metrics = Metrics::new().expect("metrics");
        let status = BlockchainStatus {
            conditions: vec![
                condition_of(condition::READY, "False"),
                condition_of(condition::QUORUM_AT_RISK, "True"),
            ],
            validators: Some(kubechain_crds::ValidatorCounts { desired: 4, ready: 2, on_chain: None }),
            height: Some(17),
            ..BlockchainStatus::default()
        };
        metrics.record_chain("ledger", "trade", &status);
        metrics.record_chain(
            "other",
            "trade",
            &BlockchainStatus { height: Some(3), ..BlockchainStatus::default() },
        );
        let text = metrics.render();
        for series in [
            r#"kubechain_operator_chain_condition{chain="trade",condition="QuorumAtRisk",namespace="ledger"} 1"#,
            r#"kubechain_operator_chain_condition{chain="trade",condition="Ready",namespace="ledger"} 0"#,
            r#"kubechain_operator_chain_validators{chain="trade",namespace="ledger",state="ready"} 2"#,
            r#"kubechain_operator_chain_validators{chain="trade",namespace="ledger",state="on_chain"} 0"#,
            r#"kubechain_operator_chain_height{chain="trade",namespace="ledger"} 17"#,
            r#"kubechain_operator_chain_height{chain="trade",namespace="other"} 3"#,
        ] {
            assert!(text.contains(series), "{series} in {text}");
        }

        metrics.forget_chain("ledger", "trade");
        let text = metrics.render();
        assert!(!text.contains(r#"namespace="ledger""#), "{text}");
        assert!(
            text.contains(r#"kubechain_operator_chain_height{chain="trade",namespace="other"} 3"#),
            "{text}"
        );
    }
}

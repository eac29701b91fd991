//! Prometheus recording rules and alerts, per chain (by `namespace` and `chain`). Node series
//! carry the target labels their scrape adds: `chain` (in Kubernetes the Blockchain's name, from
//! the pod's `app.kubernetes.io/instance`), `pod`, `namespace`. The operator's per-chain series
//! carry `namespace` and `chain` (the Blockchain's name) themselves.

use serde_json::{Value, json};

/// A recorded series: `level:metric:operation`, per chain.
#[derive(Debug)]
pub struct Recording {
    pub record: &'static str,
    pub expr: &'static str,
}

pub const RECORDINGS: &[Recording] = &[
    Recording { record: "chain:kubechain_height:max", expr: "max by (namespace, chain) (kubechain_height)" },
    // Height is a gauge that only grows while a node runs; deriv, not rate, reads its slope.
    Recording {
        record: "chain:kubechain_blocks:rate5m",
        expr: "max by (namespace, chain) (deriv(kubechain_height[5m]))",
    },
    // Every node counts every committed transaction: the chain's rate is one node's, not a sum.
    Recording {
        record: "chain:kubechain_committed_transactions:rate5m",
        expr: "max by (namespace, chain) (rate(kubechain_committed_transactions_total[5m]))",
    },
    Recording {
        record: "chain:kubechain_block_commit_latency_seconds:p50",
        expr: "histogram_quantile(0.5, sum by (namespace, chain, le) (rate(kubechain_block_commit_latency_seconds_bucket[5m])))",
    },
    Recording {
        record: "chain:kubechain_block_commit_latency_seconds:p99",
        expr: "histogram_quantile(0.99, sum by (namespace, chain, le) (rate(kubechain_block_commit_latency_seconds_bucket[5m])))",
    },
    // A validator that cannot be scraped has no series (they go stale at the failed scrape). Each
    // counts once by its address, should two monitors scrape it (the chart's PodMonitor and a
    // chain's ServiceMonitor).
    Recording {
        record: "chain:kubechain_validators_voting:count",
        expr: "count by (namespace, chain) (max by (namespace, chain, instance) (kubechain_voting) == 1)",
    },
    Recording {
        record: "chain:kubechain_validators:max",
        expr: "max by (namespace, chain) (kubechain_validators)",
    },
    // n = 3f + 1 validators need 2f + 1 votes: floor(2n / 3) + 1.
    Recording {
        record: "chain:kubechain_quorum:value",
        expr: "floor(2 * chain:kubechain_validators:max / 3) + 1",
    },
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Severity {
    Critical,
    Warning,
}

impl Severity {
    fn label(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
        }
    }
}

#[derive(Debug)]
pub struct Alert {
    pub name: &'static str,
    pub expr: &'static str,
    /// The parts of `expr` before any threshold: each returns series on a healthy chain and
    /// operator (`make e2e-monitoring` checks it), while `expr` itself is then empty.
    pub signals: &'static [&'static str],
    /// How long the expression must hold before the alert fires (a Prometheus duration).
    pub hold: &'static str,
    pub severity: Severity,
    pub summary: &'static str,
}

impl Alert {
    /// The section of docs/runbooks.md that says what to do (a Markdown heading's anchor).
    pub fn runbook_anchor(&self) -> String {
        self.name.to_lowercase()
    }
}

pub const ALERTS: &[Alert] = &[
    Alert {
        name: "ChainStalled",
        // An idle chain makes no blocks; a stalled one has transactions waiting and no new block.
        expr: "(max by (namespace, chain) (kubechain_mempool_size) > 0 and on (namespace, chain) max by (namespace, chain) (changes(kubechain_height[2m])) == 0) \
               or max by (namespace, chain) (kubechain_operator_chain_condition{condition=\"ChainStalled\"}) == 1",
        signals: &[
            "max by (namespace, chain) (kubechain_mempool_size)",
            "max by (namespace, chain) (changes(kubechain_height[2m]))",
            "max by (namespace, chain) (kubechain_operator_chain_condition{condition=\"ChainStalled\"})",
        ],
        hold: "1m",
        severity: Severity::Critical,
        summary: "Chain {{ $labels.chain }} commits no block while transactions wait.",
    },
    Alert {
        name: "QuorumAtRisk",
        // No fault tolerance left: one more validator lost and the chain stops.
        expr: "chain:kubechain_validators_voting:count <= chain:kubechain_quorum:value \
               or max by (namespace, chain) (kubechain_operator_chain_condition{condition=\"QuorumAtRisk\"}) == 1",
        signals: &[
            "chain:kubechain_validators_voting:count",
            "chain:kubechain_quorum:value",
            "max by (namespace, chain) (kubechain_operator_chain_condition{condition=\"QuorumAtRisk\"})",
        ],
        hold: "2m",
        severity: Severity::Critical,
        summary: "Chain {{ $labels.chain }} has no validator to spare: one more lost and it stops.",
    },
    Alert {
        name: "ValidatorDown",
        expr: "chain:kubechain_validators:max > chain:kubechain_validators_voting:count \
               or max by (namespace, chain) (kubechain_operator_chain_validators{state=\"desired\"}) \
               > max by (namespace, chain) (kubechain_operator_chain_validators{state=\"ready\"})",
        signals: &[
            "chain:kubechain_validators:max",
            "chain:kubechain_validators_voting:count",
            "max by (namespace, chain) (kubechain_operator_chain_validators{state=\"desired\"})",
            "max by (namespace, chain) (kubechain_operator_chain_validators{state=\"ready\"})",
        ],
        hold: "5m",
        severity: Severity::Warning,
        summary: "Chain {{ $labels.chain }} has fewer validators voting (or ready) than in its set.",
    },
    Alert {
        name: "ViewChangeStorm",
        expr: "max by (namespace, chain) (increase(kubechain_view_changes_total[10m])) > 5",
        signals: &["max by (namespace, chain) (increase(kubechain_view_changes_total[10m]))"],
        hold: "1m",
        severity: Severity::Warning,
        summary: "Chain {{ $labels.chain }} changed views more than 5 times in 10 minutes.",
    },
    Alert {
        name: "HighCommitLatency",
        expr: "chain:kubechain_block_commit_latency_seconds:p99 > 2",
        signals: &["chain:kubechain_block_commit_latency_seconds:p99"],
        hold: "10m",
        severity: Severity::Warning,
        summary: "Chain {{ $labels.chain }} takes over 2 s to commit a block (p99).",
    },
    Alert {
        name: "PeerDisconnected",
        expr: "(kubechain_connected_peers < on (namespace, chain) group_left () (chain:kubechain_validators:max - 1)) \
               and kubechain_voting == 1",
        signals: &["kubechain_connected_peers", "chain:kubechain_validators:max - 1", "kubechain_voting"],
        hold: "5m",
        severity: Severity::Warning,
        summary: "Validator {{ $labels.pod }} of chain {{ $labels.chain }} is not linked to every other validator.",
    },
    Alert {
        name: "MempoolFull",
        expr: "kubechain_mempool_size / kubechain_mempool_capacity > 0.9",
        signals: &["kubechain_mempool_size / kubechain_mempool_capacity"],
        hold: "5m",
        severity: Severity::Warning,
        summary: "Validator {{ $labels.pod }} of chain {{ $labels.chain }}: mempool over 90% full.",
    },
    Alert {
        name: "OperatorReconcileErrors",
        // Both outcomes are counted from the operator's start, so a healthy one has the series.
        expr: "sum without (result) (rate(kubechain_operator_reconciles_total{result=\"error\"}[15m])) \
               / sum without (result) (rate(kubechain_operator_reconciles_total[15m])) > 0.1",
        signals: &[
            "sum without (result) (rate(kubechain_operator_reconciles_total{result=\"error\"}[15m]))",
            "sum without (result) (rate(kubechain_operator_reconciles_total[15m]))",
        ],
        hold: "15m",
        severity: Severity::Warning,
        summary: "The operator {{ $labels.instance }} fails more than 10% of its reconciles.",
    },
    Alert {
        name: "DiskFillingUp",
        expr: "kubechain_storage_available_bytes / kubechain_storage_capacity_bytes < 0.15 \
               and predict_linear(kubechain_storage_available_bytes[6h], 24 * 3600) < 0",
        signals: &[
            "kubechain_storage_available_bytes / kubechain_storage_capacity_bytes",
            "predict_linear(kubechain_storage_available_bytes[6h], 24 * 3600)",
        ],
        hold: "30m",
        severity: Severity::Warning,
        summary: "Validator {{ $labels.pod }} of chain {{ $labels.chain }} fills its volume within a day.",
    },
];

/// The Prometheus rule file (also the `spec` of the chart's PrometheusRule).
pub fn rule_file() -> Value {
    let recordings: Vec<Value> =
        RECORDINGS.iter().map(|r| json!({ "record": r.record, "expr": r.expr })).collect();
    let alerts: Vec<Value> = ALERTS
        .iter()
        .map(|alert| {
            json!({
                "alert": alert.name,
                "expr": alert.expr,
                "for": alert.hold,
                "labels": { "severity": alert.severity.label() },
                "annotations": {
                    "summary": alert.summary,
                    "runbook": format!("docs/runbooks.md#{}", alert.runbook_anchor()),
                },
            })
        })
        .collect();
    json!({
        "groups": [
            { "name": "kubechain.rules", "rules": recordings },
            { "name": "kubechain.alerts", "rules": alerts },
        ]
    })
}

//! Grafana dashboards (JSON model, schema version 39): chain overview, validator detail and the
//! operator. Panels query a data source chosen by the `datasource` variable.

use serde_json::{Value, json};

#[derive(Debug)]
pub struct Dashboard {
    /// File name stem and Grafana uid.
    pub uid: &'static str,
    pub title: &'static str,
    pub variables: Vec<Variable>,
    pub panels: Vec<Panel>,
}

/// A query variable: the values of `label` on the series `series` selects.
#[derive(Debug)]
pub struct Variable {
    pub name: &'static str,
    pub label: &'static str,
    pub series: &'static str,
    /// Many values at once, and "All".
    pub multi: bool,
}

impl Variable {
    /// Grafana's query for the variable's values.
    pub fn definition(&self) -> String {
        format!("label_values({}, {})", self.series, self.label)
    }
}

#[derive(Debug)]
pub struct Panel {
    pub title: &'static str,
    pub unit: &'static str,
    /// (PromQL, legend)
    pub targets: Vec<(&'static str, &'static str)>,
}

fn panel(title: &'static str, unit: &'static str, targets: &[(&'static str, &'static str)]) -> Panel {
    Panel { title, unit, targets: targets.to_vec() }
}

fn chain_variable(series: &'static str, label: &'static str) -> Variable {
    Variable { name: "chain", label, series, multi: false }
}

pub fn dashboards() -> Vec<Dashboard> {
    vec![overview(), validator(), operator()]
}

fn overview() -> Dashboard {
    Dashboard {
        uid: "kubechain-overview",
        title: "kubechain / Chain overview",
        variables: vec![chain_variable("kubechain_height", "chain")],
        panels: vec![
            panel("Height per validator", "none", &[("kubechain_height{chain=\"$chain\"}", "{{pod}}")]),
            panel(
                "Blocks and transactions per second",
                "ops",
                &[
                    ("chain:kubechain_blocks:rate5m{chain=\"$chain\"}", "blocks/s"),
                    ("chain:kubechain_committed_transactions:rate5m{chain=\"$chain\"}", "tx/s"),
                ],
            ),
            panel(
                "Block commit latency",
                "s",
                &[
                    ("chain:kubechain_block_commit_latency_seconds:p50{chain=\"$chain\"}", "p50"),
                    ("chain:kubechain_block_commit_latency_seconds:p99{chain=\"$chain\"}", "p99"),
                ],
            ),
            panel(
                "Validators voting and quorum",
                "none",
                &[
                    ("chain:kubechain_validators_voting:count{chain=\"$chain\"}", "voting"),
                    ("chain:kubechain_validators:max{chain=\"$chain\"}", "in the set"),
                    ("chain:kubechain_quorum:value{chain=\"$chain\"}", "quorum"),
                ],
            ),
            panel(
                "View and view changes",
                "none",
                &[
                    ("max by (chain) (kubechain_view{chain=\"$chain\"})", "view"),
                    // Every validator counts each view change: one's count is the chain's.
                    (
                        "max by (chain) (increase(kubechain_view_changes_total{chain=\"$chain\"}[$__rate_interval]))",
                        "view changes",
                    ),
                ],
            ),
            panel(
                "Mempool",
                "none",
                &[
                    ("kubechain_mempool_size{chain=\"$chain\"}", "{{pod}}"),
                    ("max by (chain) (kubechain_mempool_capacity{chain=\"$chain\"})", "capacity"),
                ],
            ),
            panel(
                "PoW seal time (p50, p99)",
                "s",
                &[
                    (
                        "histogram_quantile(0.5, sum by (le) (rate(kubechain_pow_seal_seconds_bucket{chain=\"$chain\"}[$__rate_interval])))",
                        "p50",
                    ),
                    (
                        "histogram_quantile(0.99, sum by (le) (rate(kubechain_pow_seal_seconds_bucket{chain=\"$chain\"}[$__rate_interval])))",
                        "p99",
                    ),
                ],
            ),
            panel(
                "Rejected messages by reason",
                "ops",
                &[(
                    "sum by (reason) (rate(kubechain_rejected_messages_total{chain=\"$chain\"}[$__rate_interval]))",
                    "{{reason}}",
                )],
            ),
            panel(
                "Rejected transactions by reason",
                "ops",
                &[(
                    "sum by (reason) (rate(kubechain_rejected_transactions_total{chain=\"$chain\"}[$__rate_interval]))",
                    "{{reason}}",
                )],
            ),
        ],
    }
}

fn validator() -> Dashboard {
    Dashboard {
        uid: "kubechain-validator",
        title: "kubechain / Validator",
        variables: vec![
            chain_variable("kubechain_height", "chain"),
            Variable { name: "pod", label: "pod", series: "kubechain_height{chain=\"$chain\"}", multi: true },
        ],
        panels: vec![
            panel("Height", "none", &[("kubechain_height{chain=\"$chain\", pod=~\"$pod\"}", "{{pod}}")]),
            panel(
                "Storage write time (p99)",
                "s",
                &[(
                    "histogram_quantile(0.99, sum by (pod, le) (rate(kubechain_storage_write_seconds_bucket{chain=\"$chain\", pod=~\"$pod\"}[$__rate_interval])))",
                    "{{pod}}",
                )],
            ),
            panel(
                "Peers connected",
                "none",
                &[("kubechain_connected_peers{chain=\"$chain\", pod=~\"$pod\"}", "{{pod}}")],
            ),
            panel(
                "CPU",
                "percentunit",
                &[(
                    "rate(process_cpu_seconds_total{chain=\"$chain\", pod=~\"$pod\"}[$__rate_interval])",
                    "{{pod}}",
                )],
            ),
            panel(
                "Memory (resident)",
                "bytes",
                &[("process_resident_memory_bytes{chain=\"$chain\", pod=~\"$pod\"}", "{{pod}}")],
            ),
            panel(
                "Disk available",
                "percentunit",
                &[(
                    "kubechain_storage_available_bytes{chain=\"$chain\", pod=~\"$pod\"} / kubechain_storage_capacity_bytes{chain=\"$chain\", pod=~\"$pod\"}",
                    "{{pod}}",
                )],
            ),
            panel(
                "Consensus messages",
                "ops",
                &[(
                    "sum by (pod, direction) (rate(kubechain_messages_total{chain=\"$chain\", pod=~\"$pod\"}[$__rate_interval]))",
                    "{{pod}} {{direction}}",
                )],
            ),
            panel(
                "Transaction commit latency (p99)",
                "s",
                &[(
                    "histogram_quantile(0.99, sum by (pod, le) (rate(kubechain_transaction_commit_latency_seconds_bucket{chain=\"$chain\", pod=~\"$pod\"}[$__rate_interval])))",
                    "{{pod}}",
                )],
            ),
        ],
    }
}

fn operator() -> Dashboard {
    Dashboard {
        uid: "kubechain-operator",
        title: "kubechain / Operator",
        variables: vec![],
        panels: vec![
            panel(
                "Reconciles by result",
                "ops",
                &[(
                    "sum by (result) (rate(kubechain_operator_reconciles_total[$__rate_interval]))",
                    "{{result}}",
                )],
            ),
            panel(
                "Reconcile errors by kind",
                "ops",
                &[(
                    "sum by (kind) (rate(kubechain_operator_reconcile_errors_total[$__rate_interval]))",
                    "{{kind}}",
                )],
            ),
            panel(
                "Reconcile duration (p50, p99)",
                "s",
                &[
                    (
                        "histogram_quantile(0.5, sum by (le) (rate(kubechain_operator_reconcile_duration_seconds_bucket[$__rate_interval])))",
                        "p50",
                    ),
                    (
                        "histogram_quantile(0.99, sum by (le) (rate(kubechain_operator_reconcile_duration_seconds_bucket[$__rate_interval])))",
                        "p99",
                    ),
                ],
            ),
            panel(
                "Conditions true per chain",
                "none",
                &[("kubechain_operator_chain_condition == 1", "{{namespace}}/{{chain}} {{condition}}")],
            ),
            panel(
                "Validators per chain",
                "none",
                &[("kubechain_operator_chain_validators", "{{namespace}}/{{chain}} {{state}}")],
            ),
            panel(
                "Height per chain",
                "none",
                &[("kubechain_operator_chain_height", "{{namespace}}/{{chain}}")],
            ),
        ],
    }
}

impl Dashboard {
    /// Grafana's JSON model.
    pub fn to_json(&self) -> Value {
        let datasource = json!({ "type": "prometheus", "uid": "${datasource}" });
        let mut variables = vec![json!({
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "hide": 0,
        })];
        variables.extend(self.variables.iter().map(|variable| {
            json!({
                "name": variable.name,
                "label": variable.name,
                "type": "query",
                "datasource": datasource,
                "definition": variable.definition(),
                "query": { "query": variable.definition(), "refId": variable.name },
                "refresh": 2,
                "sort": 1,
                "multi": variable.multi,
                "includeAll": variable.multi,
                "hide": 0,
            })
        }));
        let panels: Vec<Value> = self
            .panels
            .iter()
            .enumerate()
            .map(|(index, panel)| {
                let targets: Vec<Value> = panel
                    .targets
                    .iter()
                    .zip('A'..)
                    .map(|((expr, legend), ref_id)| {
                        json!({
                            "datasource": datasource,
                            "expr": expr,
                            "legendFormat": legend,
                            "refId": ref_id.to_string(),
                        })
                    })
                    .collect();
                // Two panels a row, each half the 24-column grid.
                let (x, y) = ((index % 2) * 12, (index / 2) * 8);
                json!({
                    "id": index + 1,
                    "type": "timeseries",
                    "title": panel.title,
                    "datasource": datasource,
                    "gridPos": { "h": 8, "w": 12, "x": x, "y": y },
                    "fieldConfig": { "defaults": { "unit": panel.unit }, "overrides": [] },
                    "options": {
                        "legend": { "displayMode": "list", "placement": "bottom", "showLegend": true, "calcs": [] },
                        "tooltip": { "mode": "multi", "sort": "none" },
                    },
                    "targets": targets,
                })
            })
            .collect();
        json!({
            "uid": self.uid,
            "title": self.title,
            "tags": ["kubechain"],
            "editable": true,
            "schemaVersion": 39,
            "time": { "from": "now-1h", "to": "now" },
            "refresh": "30s",
            "timezone": "browser",
            "templating": { "list": variables },
            "annotations": { "list": [] },
            "panels": panels,
        })
    }
}

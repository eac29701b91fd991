//! Reading what the nodes logged (JSON lines, `--log-format json`).

use serde_json::Value;

pub use kubechain_node::logs::{CAUGHT_UP, STARTING_NODE};

/// The `fields` (message and values) of each JSON log line in `log`, in order.
pub fn log_fields(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .map(|mut line| line["fields"].take())
        .collect()
}

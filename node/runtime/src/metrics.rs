//! Prometheus metrics, all prefixed `kubechain_` (the list is in DESIGN.md, section 3) but the
//! standard `process_*` ones. Which chain and pod a series belongs to are target labels the
//! scrape adds (`chain`, `pod`; docs/monitoring.md), not labels of the node's own.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use kubechain_network::Stats;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// The standard `process_*` series (CPU, memory, open files), unprefixed.
    process: Registry,
    pub height: IntGauge,
    pub view: IntGauge,
    pub voting: IntGauge,
    pub validators: IntGauge,
    pub committed_transactions: IntCounter,
    pub block_commit_latency: Histogram,
    pub transaction_commit_latency: Histogram,
    pub view_changes: IntCounter,
    pub connected_peers: IntGauge,
    pub mempool_size: IntGauge,
    mempool_capacity: IntGauge,
    pub pow_seal_seconds: Histogram,
    pub storage_write_seconds: Histogram,
    pub messages: IntCounterVec,
    pub rejected_messages: IntCounterVec,
    pub rejected_transactions: IntCounterVec,
    /// Network counters are atomics in the network crate; scrapes carry their increase over.
    network: Arc<Stats>,
    network_seen: Mutex<NetworkSeen>,
    /// The data directory, whose file system's space is read at each scrape.
    data_dir: PathBuf,
    storage_available_bytes: IntGauge,
    storage_capacity_bytes: IntGauge,
}

#[derive(Debug, Default)]
struct NetworkSeen {
    values: Vec<u64>,
}

fn latency_buckets() -> Vec<f64> {
    vec![0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0]
}

impl Metrics {
    pub fn new(
        network: Arc<Stats>,
        data_dir: PathBuf,
        mempool_capacity: usize,
    ) -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new_custom(Some("kubechain".into()), None)?;
        let process = Registry::new();
        #[cfg(target_os = "linux")]
        process.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
        let gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            let gauge = IntGauge::new(name, help)?;
            registry.register(Box::new(gauge.clone()))?;
            Ok(gauge)
        };
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let counter = IntCounter::new(name, help)?;
            registry.register(Box::new(counter.clone()))?;
            Ok(counter)
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| -> Result<Histogram, prometheus::Error> {
            let histogram = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))?;
            registry.register(Box::new(histogram.clone()))?;
            Ok(histogram)
        };
        let counter_vec =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
                let counter = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(counter.clone()))?;
                Ok(counter)
            };
        Ok(Metrics {
            height: gauge("height", "Height of the last committed block")?,
            view: gauge("view", "Current consensus view")?,
            voting: gauge("voting", "1 while this node is in the validator set in force, else 0")?,
            validators: gauge("validators", "Validators in the set in force at the next height")?,
            committed_transactions: counter(
                "committed_transactions_total",
                "Transactions in blocks committed by this node",
            )?,
            block_commit_latency: histogram(
                "block_commit_latency_seconds",
                "From a block's proposal timestamp to its commit on this node",
                latency_buckets(),
            )?,
            transaction_commit_latency: histogram(
                "transaction_commit_latency_seconds",
                "From a client's submission to this node until the transaction commits here",
                latency_buckets(),
            )?,
            view_changes: counter("view_changes_total", "Views this node moved past")?,
            connected_peers: gauge("connected_peers", "Validators with an authenticated link")?,
            mempool_size: gauge("mempool_size", "Transactions waiting for a block")?,
            mempool_capacity: gauge("mempool_capacity", "Transactions the mempool holds at most")?,
            pow_seal_seconds: histogram(
                "pow_seal_seconds",
                "Time to build, execute and seal one own proposal (the nonce search dominates)",
                latency_buckets(),
            )?,
            storage_write_seconds: histogram(
                "storage_write_seconds",
                "Synced RocksDB writes (blocks and consensus journal)",
                latency_buckets(),
            )?,
            messages: counter_vec(
                "messages_total",
                "Consensus messages by direction and type",
                &["direction", "type"],
            )?,
            rejected_messages: counter_vec(
                "rejected_messages_total",
                "Peer messages and frames refused, by reason",
                &["reason"],
            )?,
            rejected_transactions: counter_vec(
                "rejected_transactions_total",
                "Transactions refused at admission, by reason",
                &["reason"],
            )?,
            storage_available_bytes: gauge(
                "storage_available_bytes",
                "Bytes available to the node on the file system of its data directory",
            )?,
            storage_capacity_bytes: gauge(
                "storage_capacity_bytes",
                "Size in bytes of the file system of the node's data directory",
            )?,
            registry,
            process,
            network,
            network_seen: Mutex::new(NetworkSeen::default()),
            data_dir,
        })
        .inspect(|metrics| metrics.mempool_capacity.set(mempool_capacity as i64))
    }

    /// Copies the network's own counters in, then renders the text exposition format.
    pub fn render(&self) -> String {
        self.connected_peers.set(self.network.connected_peers() as i64);
        let stats = &self.network;
        let network_reasons = [
            ("queue_full", &stats.dropped_queue_full),
            ("queue_bytes", &stats.dropped_queue_bytes),
            ("oversized", &stats.dropped_oversized),
            ("malformed", &stats.dropped_malformed),
            ("undecryptable", &stats.dropped_undecryptable),
            ("handshake_unknown_key", &stats.handshake_unknown_key),
            ("handshake_bad_signature", &stats.handshake_bad_signature),
            ("handshake_failed", &stats.handshake_other),
            ("handshake_busy", &stats.handshake_busy),
        ];
        if let Ok(mut seen) = self.network_seen.lock() {
            seen.values.resize(network_reasons.len(), 0);
            for ((reason, counter), last) in network_reasons.iter().zip(seen.values.iter_mut()) {
                let now = counter.load(Ordering::Relaxed);
                self.rejected_messages.with_label_values(&[*reason]).inc_by(now.saturating_sub(*last));
                *last = now;
            }
        }
        // A file system that cannot be read keeps the last values (and the scrape still works).
        if let Ok(space) = rustix::fs::statvfs(&self.data_dir) {
            let bytes = |blocks: u64| (blocks.saturating_mul(space.f_frsize)).min(i64::MAX as u64) as i64;
            self.storage_available_bytes.set(bytes(space.f_bavail));
            self.storage_capacity_bytes.set(bytes(space.f_blocks));
        }
        let mut families = self.registry.gather();
        families.extend(self.process.gather());
        let mut buffer = Vec::new();
        // Encoding into a Vec cannot fail for well-formed families, which registration guarantees.
        let _ = TextEncoder::new().encode(&families, &mut buffer);
        String::from_utf8_lossy(&buffer).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prefixed_metrics_including_network_drops() {
        let stats = Arc::new(Stats::default());
        let dir = tempfile::tempdir().unwrap();
        let metrics = Metrics::new(stats.clone(), dir.path().into(), 500).unwrap();
        metrics.height.set(12);
        stats.dropped_oversized.fetch_add(3, Ordering::Relaxed);
        let text = metrics.render();
        assert!(text.contains("kubechain_height 12"), "{text}");
        assert!(text.contains("kubechain_mempool_capacity 500"), "{text}");
        assert!(text.contains("kubechain_rejected_messages_total{reason=\"oversized\"} 3"), "{text}");
        stats.dropped_oversized.fetch_add(2, Ordering::Relaxed);
        assert!(metrics.render().contains("kubechain_rejected_messages_total{reason=\"oversized\"} 5"));
    }

    #[test]
    fn the_data_directory_space_and_the_process_are_measured() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Metrics::new(Arc::new(Stats::default()), dir.path().into(), 1).unwrap();
        let text = metrics.render();
        let value = |name: &str| -> f64 {
            let line =
                text.lines().find(|line| line.starts_with(name)).unwrap_or_else(|| panic!("{name}: {text}"));
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        let (available, capacity) =
            (value("kubechain_storage_available_bytes"), value("kubechain_storage_capacity_bytes"));
        assert!(capacity > 0.0 && available <= capacity, "{available} of {capacity}");
        assert!(value("process_resident_memory_bytes") > 0.0, "{text}");
    }
}

//! `kubechain bench`: drives signed 256-byte transactions at a running chain and reports committed
//! transactions per second and commit latency.
//!
//! Every transaction is signed before the timed window, so the load generator does not compete
//! with the validators for CPU while it is measured. Commits are timed from the stream of new
//! blocks of one node (with transaction hashes): latency is from the moment a batch was sent to
//! the moment the block holding it was announced. Two phases: as fast as the chain takes them
//! (throughput), then at half that rate (latency under moderate load).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use kubechain_api::{BatchVerdicts, BlockAnnouncement, ErrorCode, Verdict};
use kubechain_types::encoding::encode;
use kubechain_types::{AdminOperation, Hash, Operation, SigningKey, Transaction, TxBody};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::client::{Client, ClientSettings};

/// Size of each benchmark transaction in its canonical encoding.
pub const TX_BYTES: usize = 256;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub nodes: Vec<String>,
    pub admin_key: SigningKey,
    pub chain_id: String,
    pub accounts: usize,
    pub transactions: usize,
    pub batch: usize,
    /// Seconds of the half-load latency phase.
    pub latency_seconds: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub committed_tps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub saturated_p50_ms: f64,
    pub saturated_p99_ms: f64,
    pub half_load_tps: f64,
    pub transactions: usize,
    pub validators: usize,
}

/// When each batch left and when each transaction was seen committed.
#[derive(Debug, Default)]
struct Timings {
    sent: HashMap<Hash, Instant>,
    committed: HashMap<Hash, Instant>,
}

fn sized_transaction(chain_id: &str, key: &SigningKey, nonce: u64, account: usize) -> Transaction {
    let body = |value: Vec<u8>| TxBody {
        chain_id: chain_id.to_string(),
        sender: key.public_key(),
        nonce,
        operations: vec![Operation::Put { key: format!("bench/{account}/{nonce}"), value }],
    };
    let empty = Transaction::new(body(Vec::new()), key);
    let padding = TX_BYTES.saturating_sub(encode(&empty).len());
    Transaction::new(body(vec![0xab; padding]), key)
}

/// Signs `count` transactions round-robin over `keys`, continuing each account's nonces.
fn presign(chain_id: &str, keys: &[SigningKey], next_nonce: &mut [u64], count: usize) -> Vec<Transaction> {
    let plan: Vec<(usize, u64)> = (0..count)
        .map(|i| {
            let account = i % keys.len();
            let nonce = next_nonce[account];
            next_nonce[account] += 1;
            (account, nonce)
        })
        .collect();
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let chunk = plan.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = plan
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(account, nonce)| {
                            sized_transaction(chain_id, &keys[*account], *nonce, *account)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|handle| handle.join().unwrap_or_default()).collect()
    })
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Registers the benchmark's accounts as a new member, signed by the admin key.
fn register_accounts(options: &BenchOptions, keys: &[SigningKey]) -> Result<(), String> {
    let client =
        Client::new(&options.nodes[0], ClientSettings::default()).map_err(|error| error.to_string())?;
    let admin = options.admin_key.public_key();
    let nonce = client.nonce(&admin).map_err(|error| error.to_string())? + 1;
    let name = format!("bench-{:x}", std::process::id() ^ (Instant::now().elapsed().subsec_nanos()));
    let body = TxBody {
        chain_id: options.chain_id.clone(),
        sender: admin,
        nonce,
        operations: vec![Operation::Admin(AdminOperation::AddMember {
            name,
            public_keys: keys.iter().map(SigningKey::public_key).collect(),
        })],
    };
    let hash =
        client.submit(&Transaction::new(body, &options.admin_key)).map_err(|error| error.to_string())?;
    // On every node that gets load: one a block behind would refuse the new accounts' transactions.
    for node in &options.nodes {
        let status = Client::new(node, ClientSettings::default())
            .and_then(|client| client.wait_committed(&hash, Duration::from_secs(60)))
            .map_err(|error| error.to_string())?;
        if !matches!(status, crate::client::TxStatus::Committed { .. }) {
            return Err(format!("registering the benchmark accounts failed on {node}: {status:?}"));
        }
    }
    Ok(())
}

/// Follows one node's block stream and records when each transaction was seen committed.
async fn follow_commits(
    node: String,
    timings: Arc<Mutex<Timings>>,
    ready: tokio::sync::oneshot::Sender<()>,
) -> Result<(), String> {
    let url = format!("{node}/v1/stream/blocks?transactions=true");
    let response =
        reqwest::Client::new().get(&url).send().await.map_err(|error| format!("{url}: {error}"))?;
    let _ = ready.send(());
    let mut stream = response.bytes_stream();
    let mut buffer = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|error| format!("{url}: {error}"))?;
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.windows(2).position(|window| window == b"\n\n") {
            let event: Vec<u8> = buffer.drain(..end + 2).collect();
            let now = Instant::now();
            let text = String::from_utf8_lossy(&event);
            for line in text.lines() {
                let Some(data) = line.strip_prefix("data:") else { continue };
                let Ok(block) = serde_json::from_str::<BlockAnnouncement>(data.trim()) else { continue };
                let hashes = block.transaction_hashes.unwrap_or_default();
                if let Ok(mut timings) = timings.lock() {
                    for hash in hashes {
                        timings.committed.entry(hash).or_insert(now);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Sends `transactions` in binary batches spread over the nodes, at most `rate` per second
/// (unlimited when `None`); batches refused for a full mempool are retried.
async fn drive(
    options: &BenchOptions,
    transactions: Vec<Transaction>,
    rate: Option<f64>,
    timings: &Arc<Mutex<Timings>>,
) -> Result<(), String> {
    let http = reqwest::Client::new();
    let (retry_tx, mut retry_rx) = mpsc::unbounded_channel::<Vec<Transaction>>();
    let mut batches: Vec<Vec<Transaction>> =
        transactions.chunks(options.batch).map(<[Transaction]>::to_vec).collect();
    batches.reverse();
    let started = Instant::now();
    let mut sent = 0usize;
    let in_flight = Arc::new(tokio::sync::Semaphore::new(2 * options.nodes.len()));
    let mut node_index = 0;
    let total = transactions.len();
    let mut last_report = Instant::now();
    loop {
        let batch = match retry_rx.try_recv() {
            Ok(batch) => batch,
            Err(_) => match batches.pop() {
                Some(batch) => batch,
                None if in_flight.available_permits() == 2 * options.nodes.len() => match retry_rx.try_recv()
                {
                    Ok(batch) => batch,
                    Err(_) => break,
                },
                None => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            },
        };
        if let Some(rate) = rate {
            let due = started + Duration::from_secs_f64(sent as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let permit = in_flight.clone().acquire_owned().await.map_err(|error| error.to_string())?;
        let url = format!("{}/v1/transactions", options.nodes[node_index % options.nodes.len()]);
        node_index += 1;
        sent += batch.len();
        let now = Instant::now();
        if let Ok(mut timings) = timings.lock() {
            for tx in &batch {
                timings.sent.entry(tx.hash()).or_insert(now);
            }
        }
        let http = http.clone();
        let retry = retry_tx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let answer = http
                .post(&url)
                .header("content-type", "application/octet-stream")
                .body(encode(&batch))
                .send()
                .await;
            let refused: Vec<Transaction> = match answer {
                Ok(response) => match response.bytes().await.map(|body| serde_json::from_slice(&body)) {
                    Ok(Ok(BatchVerdicts { results, .. })) => batch
                        .into_iter()
                        .zip(results)
                        .filter(|(_, result)| {
                            matches!(result, Verdict::Refused { code: ErrorCode::MempoolFull, .. })
                        })
                        .map(|(tx, _)| tx)
                        .collect(),
                    // An error answer ({code, message}) is a verdict on the whole batch: not retried.
                    Ok(Err(error)) if error.is_data() => Vec::new(),
                    Ok(Err(_)) | Err(_) => batch,
                },
                Err(_) => batch,
            };
            if !refused.is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let _ = retry.send(refused);
            }
        });
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            eprintln!("bench: sent {sent}/{total} in {:.1} s", started.elapsed().as_secs_f64());
        }
    }
    Ok(())
}

/// Waits until every one of `hashes` was seen committed, printing progress; gives up after
/// `timeout` without progress.
async fn await_commits(
    hashes: &[Hash],
    timings: &Arc<Mutex<Timings>>,
    timeout: Duration,
) -> Result<(), String> {
    let mut last_count = 0;
    let mut last_progress = Instant::now();
    loop {
        let count = timings
            .lock()
            .map(|timings| hashes.iter().filter(|hash| timings.committed.contains_key(hash)).count())
            .unwrap_or(0);
        if count == hashes.len() {
            return Ok(());
        }
        if count > last_count {
            last_count = count;
            last_progress = Instant::now();
            eprintln!("bench: committed {count}/{}", hashes.len());
        } else if last_progress.elapsed() > timeout {
            return Err(format!(
                "only {count} of {} transactions committed; the chain stalled",
                hashes.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Committed tx/s over the phase and the sorted latencies (ms) of its transactions.
fn measure(hashes: &[Hash], timings: &Timings) -> (f64, Vec<f64>) {
    let mut first_sent: Option<Instant> = None;
    let mut last_commit: Option<Instant> = None;
    let mut latencies = Vec::with_capacity(hashes.len());
    for hash in hashes {
        if let (Some(sent), Some(committed)) = (timings.sent.get(hash), timings.committed.get(hash)) {
            first_sent = Some(first_sent.map_or(*sent, |first| first.min(*sent)));
            last_commit = Some(last_commit.map_or(*committed, |last| last.max(*committed)));
            latencies.push(committed.saturating_duration_since(*sent).as_secs_f64() * 1000.0);
        }
    }
    latencies.sort_by(f64::total_cmp);
    let seconds = match (first_sent, last_commit) {
        (Some(first), Some(last)) => last.saturating_duration_since(first).as_secs_f64(),
        _ => 0.0,
    };
    let tps = if seconds > 0.0 { latencies.len() as f64 / seconds } else { 0.0 };
    (tps, latencies)
}

pub async fn run(options: BenchOptions) -> Result<BenchResult, String> {
    let keys: Vec<SigningKey> = (0..options.accounts)
        .map(|_| kubechain_node::keyfile::generate().map_err(|error| error.to_string()))
        .collect::<Result<_, _>>()?;
    let register = options.clone();
    let register_keys = keys.clone();
    tokio::task::spawn_blocking(move || register_accounts(&register, &register_keys))
        .await
        .map_err(|error| error.to_string())??;
    eprintln!("bench: registered {} accounts; signing {} transactions", keys.len(), options.transactions);
    let mut next_nonce = vec![1u64; keys.len()];
    let saturating = presign(&options.chain_id, &keys, &mut next_nonce, options.transactions);
    let saturating_hashes: Vec<Hash> = saturating.iter().map(Transaction::hash).collect();

    let timings = Arc::new(Mutex::new(Timings::default()));
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    let follower = tokio::spawn(follow_commits(options.nodes[0].clone(), timings.clone(), ready_tx));
    ready.await.map_err(|_| "could not subscribe to the block stream".to_string())?;

    eprintln!("bench: phase 1, as fast as the chain accepts");
    drive(&options, saturating, None, &timings).await?;
    await_commits(&saturating_hashes, &timings, Duration::from_secs(60)).await?;
    let (committed_tps, saturated) = {
        let timings = timings.lock().map_err(|_| "poisoned")?;
        measure(&saturating_hashes, &timings)
    };
    eprintln!("bench: phase 1: {committed_tps:.0} committed tx/s");

    let half_rate = (committed_tps / 2.0).max(1.0);
    let count = ((half_rate * options.latency_seconds as f64) as usize).max(options.batch);
    let half_load = presign(&options.chain_id, &keys, &mut next_nonce, count);
    let half_hashes: Vec<Hash> = half_load.iter().map(Transaction::hash).collect();
    eprintln!("bench: phase 2, {half_rate:.0} tx/s for {} s", options.latency_seconds);
    let small_batches =
        BenchOptions { batch: (half_rate / 200.0).ceil().max(1.0) as usize, ..options.clone() };
    drive(&small_batches, half_load, Some(half_rate), &timings).await?;
    await_commits(&half_hashes, &timings, Duration::from_secs(60)).await?;
    let (half_load_tps, latencies) = {
        let timings = timings.lock().map_err(|_| "poisoned")?;
        measure(&half_hashes, &timings)
    };
    follower.abort();
    Ok(BenchResult {
        committed_tps: committed_tps.round(),
        p50_ms: round2(percentile(&latencies, 0.50)),
        p99_ms: round2(percentile(&latencies, 0.99)),
        saturated_p50_ms: round2(percentile(&saturated, 0.50)),
        saturated_p99_ms: round2(percentile(&saturated, 0.99)),
        half_load_tps: half_load_tps.round(),
        transactions: options.transactions,
        validators: options.nodes.len(),
    })
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benchmark_transactions_are_exactly_256_bytes_and_verify() {
        let key = SigningKey::from_seed([3; 32]);
        for nonce in [1, 99, 123_456] {
            let tx = sized_transaction("bench-chain", &key, nonce, 17);
            assert_eq!(encode(&tx).len(), TX_BYTES);
            assert!(tx.verify_signature().is_ok());
        }
    }

    #[test]
    fn presigned_nonces_continue_per_account() {
        let keys: Vec<SigningKey> = (1..=3u8).map(|seed| SigningKey::from_seed([seed; 32])).collect();
        let mut next = vec![1; 3];
        let first = presign("c", &keys, &mut next, 7);
        assert_eq!(next, vec![4, 3, 3]);
        let second = presign("c", &keys, &mut next, 2);
        assert_eq!(first.len(), 7);
        assert_eq!((second[0].body.nonce, second[1].body.nonce), (4, 3));
    }
}

//! One Byzantine validator against three honest processes. Validator 0, the primary of view 0,
//! is held by the test's adversary (`kubechain_e2e::byzantine`), which speaks the wire protocol
//! and never behaves: tampered proposals, vote floods, lying view changes and state responses,
//! replays, oversized and undecodable frames, garbage connections and hanging handshakes.
//!
//! Under client load the honest three must leave the Byzantine primary's view within the
//! view-change timeout plus one second (the longest stretch without a block while transactions
//! wait), keep committing, agree block for block on blocks that pass their own checks, and keep
//! their memory bounded. The suite prints what the adversary sent, what the honest nodes refused
//! by reason, and each honest node's peak RSS.
//!
//! `KUBECHAIN_BYZANTINE_SECONDS` sets how long the attack lasts (default 30).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kubechain_api::BlockView;
use kubechain_e2e::byzantine::{Byzantine, ByzantineConfig};
use kubechain_e2e::{Cluster, Load, eventually};
use kubechain_node::keyfile;
use kubechain_types::ConsensusParams;

const VIEW_CHANGE_TIMEOUT_MS: u64 = 2_000;
const TIMEOUT: Duration = Duration::from_secs(90);
const BYZANTINE: usize = 0;
const HONEST: [usize; 3] = [1, 2, 3];
/// Far above what a node holds by design (per-peer budgets of tens of MiB), far below what an
/// unbounded queue fills in the attack's time.
const RSS_LIMIT_MIB: u64 = 256;

#[test]
fn three_honest_validators_keep_committing_while_the_fourth_attacks() {
    let seconds: u64 =
        std::env::var("KUBECHAIN_BYZANTINE_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    let params = ConsensusParams {
        block_interval_ms: 10,
        max_block_txs: 500,
        checkpoint_interval: 8,
        view_change_timeout_ms: VIEW_CHANGE_TIMEOUT_MS,
        pow_difficulty_bits: 4,
    };
    let mut cluster = Cluster::create(4, 4, params);
    for index in HONEST {
        cluster.start(index);
    }
    let key = keyfile::read(&cluster.validators[BYZANTINE].dir.join("validator.key")).unwrap();
    let peers = HONEST
        .iter()
        .map(|i| (cluster.validators[*i].key, cluster.validators[*i].listening.unwrap().p2p))
        .collect();
    let seed = u64::from(std::process::id());
    println!("byzantine: validator {BYZANTINE} attacks for {seconds} s, seed {seed}");
    let byzantine = Byzantine::start(ByzantineConfig { key, genesis: cluster.genesis.clone(), peers, seed });

    let cluster = Arc::new(Mutex::new(cluster));
    let load = Load::start(&cluster);
    // The attack's time is the schedule of the test, not a synchronisation.
    std::thread::sleep(Duration::from_secs(seconds));
    let peaks: Vec<(usize, u64)> = {
        let cluster = cluster.lock().unwrap();
        HONEST.iter().map(|i| (*i, peak_rss_kib(cluster.validators[*i].pid().unwrap()))).collect()
    };
    let rejected: Vec<(usize, Vec<(String, u64)>)> = {
        let cluster = cluster.lock().unwrap();
        HONEST.iter().map(|i| (*i, rejections(&cluster, *i))).collect()
    };
    let sent = byzantine.stop();
    let waits = load.waits.lock().unwrap().clone();
    drop(load);

    let cluster = Arc::try_unwrap(cluster).unwrap().into_inner().unwrap();
    let height = cluster.assert_converged(TIMEOUT);
    println!("byzantine: the adversary sent {sent:?}");
    for (index, reasons) in &rejected {
        println!("byzantine: validator {index} refused {reasons:?}");
    }
    for (index, kib) in &peaks {
        println!("byzantine: validator {index} peak RSS {} MiB", kib / 1024);
    }

    for (kind, count) in &sent {
        assert!(*count > 0, "the adversary never managed to send {kind}: {sent:?}");
    }
    let refused = |reason: &str| -> u64 {
        rejected.iter().flat_map(|(_, reasons)| reasons).filter(|(r, _)| r == reason).map(|(_, n)| n).sum()
    };
    for reason in ["oversized", "malformed"] {
        assert!(refused(reason) > 0, "no honest node counted a refused {reason} frame: {rejected:?}");
    }
    for (index, kib) in &peaks {
        assert!(kib / 1024 < RSS_LIMIT_MIB, "validator {index} peaked at {} MiB", kib / 1024);
    }

    // Every block the honest three committed is one an honest primary proposed, passes its own
    // checks, and came in time.
    assert!(height >= 10, "only {height} blocks in {seconds} s of attack");
    let chain_id = cluster.genesis.chain_id.clone();
    let timestamps: Vec<u64> = (1..=height)
        .map(|h| {
            let (code, view) =
                cluster.get_as::<BlockView>(HONEST[0], &format!("/v1/blocks/{h}")).expect("a block");
            assert_eq!(code, 200);
            let block = view.block;
            block.check_integrity(&chain_id, cluster.genesis.params.pow_difficulty_bits).unwrap();
            assert_ne!(
                block.header.proposer, cluster.validators[BYZANTINE].key,
                "block {h} is the adversary's"
            );
            block.header.timestamp_ms
        })
        .collect();
    let (longest_ms, at) = longest_wait(&timestamps, &waits);
    println!(
        "byzantine: {height} blocks, {} transactions; longest stretch without a block while transactions \
         waited: {longest_ms} ms (before height {at}); bound {} ms",
        waits.len(),
        VIEW_CHANGE_TIMEOUT_MS + 1_000
    );
    assert!(
        longest_ms <= VIEW_CHANGE_TIMEOUT_MS + 1_000,
        "{longest_ms} ms without a block before height {at}: more than the view-change timeout plus one second"
    );
    let view = eventually(TIMEOUT, "the honest view", || cluster.status(HONEST[0]).map(|s| s.view));
    assert!(view >= 1, "the honest validators never left the Byzantine primary's view");
}

/// For each gap before block h (from block h-1, or from genesis for block 1), the part of it during
/// which a transaction that committed at h or later was waiting; the longest, and its h.
fn longest_wait(timestamps: &[u64], waits: &[(u64, u64)]) -> (u64, u64) {
    (1..=timestamps.len() as u64)
        .filter_map(|height| {
            let end = timestamps[height as usize - 1];
            let start = if height == 1 { 0 } else { timestamps[height as usize - 2] };
            let waiting_since = waits
                .iter()
                .filter(|(accepted_ms, committed)| *committed >= height && *accepted_ms < end)
                .map(|(accepted_ms, _)| *accepted_ms)
                .min()?;
            Some((end.saturating_sub(start.max(waiting_since)), height))
        })
        .max()
        .unwrap_or((0, 0))
}

/// The peak resident set of a process (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// What validator `index` refused, by reason, from its metrics.
fn rejections(cluster: &Cluster, index: usize) -> Vec<(String, u64)> {
    let url = format!("{}/metrics", cluster.validators[index].api());
    let text = cluster.http().get(url).send().unwrap().text().unwrap();
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("kubechain_rejected_messages_total{reason=\"")?;
            let (reason, count) = rest.split_once("\"} ")?;
            Some((reason.to_string(), count.trim().parse::<f64>().ok()? as u64))
        })
        .filter(|(_, count)| *count > 0)
        .collect()
}

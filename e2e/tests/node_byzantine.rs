//! One Byzantine validator against three honest processes. Validator 0, the primary of view 0,
//! is held by the test's adversary (`kubechain_e2e::byzantine`), which speaks the wire protocol
//! and never behaves: tampered proposals, lying view changes, NEW-VIEWs and state responses,
//! replays, oversized and undecodable frames, garbage connections and hanging handshakes, and in
//! the last part vote floods. Client load runs throughout.
//!
//! 1. The honest three must leave the Byzantine primary's view within the view-change timeout
//!    plus one second (the longest stretch without a block while transactions wait).
//! 2. Validator 3 loses its disk and restarts cut off from the honest two, so that only the
//!    adversary reaches it, with doctored blocks and tips it never reached: it must refuse them
//!    all (whatever it takes, from the adversary's replays of genuine messages, is the honest
//!    chain). Reconnected, it re-syncs from the honest two. (Meanwhile the chain waits: two of
//!    four are faulty.)
//! 3. The adversary adds vote floods for `KUBECHAIN_BYZANTINE_SECONDS` (default 30); blocks
//!    keep coming within the same bound.
//!
//! At the end the honest three agree block for block, every block passes its own checks and none
//! is the adversary's, and each honest node's peak RSS is bounded. The suite prints what the
//! adversary sent, what the honest nodes refused by reason, the catch-up time and the peak RSS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kubechain_api::BlockView;
use kubechain_e2e::byzantine::{Byzantine, ByzantineConfig};
use kubechain_e2e::{Cluster, Load, eventually, fault_suite_params};
use kubechain_node::keyfile;

const VIEW_CHANGE_TIMEOUT_MS: u64 = 2_000;
const TIMEOUT: Duration = Duration::from_secs(90);
const BYZANTINE: usize = 0;
const HONEST: [usize; 3] = [1, 2, 3];
const LAGGING: usize = 3;
/// Blocks committed before the lagging validator loses its disk.
const LAG: u64 = 100;
/// How a node refuses a state response's blocks (a block that does not match its certificate or
/// header, a certificate that does not verify).
const STATE_LIES: [&str; 2] = ["bad_state_response", "bad_certificate"];
/// Far above what a node holds by design (per-peer budgets of tens of MiB), far below what an
/// unbounded queue fills in the attack's time.
const RSS_LIMIT_MIB: u64 = 256;

#[test]
fn three_honest_validators_keep_committing_while_the_fourth_attacks() {
    let seconds: u64 =
        std::env::var("KUBECHAIN_BYZANTINE_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    let mut cluster = Cluster::create(4, 4, fault_suite_params(VIEW_CHANGE_TIMEOUT_MS));
    for index in HONEST {
        cluster.start(index);
    }
    let key = keyfile::read(&cluster.validators[BYZANTINE].dir.join("validator.key")).unwrap();
    let peers = HONEST
        .iter()
        .map(|i| (cluster.validators[*i].key, cluster.validators[*i].listening.unwrap().p2p))
        .collect();
    let seed = u64::from(std::process::id());
    println!("byzantine: validator {BYZANTINE} attacks, seed {seed}");
    let byzantine = Byzantine::start(ByzantineConfig { key, genesis: cluster.genesis.clone(), peers, seed });
    let cluster = Arc::new(Mutex::new(cluster));
    let height_of = |index: usize| cluster.lock().unwrap().height(index);
    let load = Load::start(&cluster);

    // 1. Out of the Byzantine primary's view, and on for a while.
    let left_at = eventually(TIMEOUT, "blocks", || height_of(HONEST[0]).filter(|h| *h >= LAG));

    // 2. Validator 3 loses its disk and re-syncs, cut off from the honest two.
    let target = {
        let mut cluster = cluster.lock().unwrap();
        cluster.kill(LAGGING);
        std::fs::remove_dir_all(cluster.validators[LAGGING].dir.join("data")).unwrap();
        let target = cluster.height(HONEST[0]).unwrap();
        cluster.isolate(LAGGING, true);
        cluster.start(LAGGING);
        let address = cluster.validators[LAGGING].listening.unwrap().p2p;
        byzantine.set_address(HONEST.iter().position(|i| *i == LAGGING).unwrap(), address);
        target
    };
    let restarted_at = height_of(LAGGING).unwrap();
    // Only the adversary reaches it now: doctored blocks it must refuse, and (in its replays)
    // genuine ones it may take, since their certificates prove them.
    let lies_refused = eventually(TIMEOUT, "validator 3 to refuse the adversary's state responses", || {
        let refused = rejections(&cluster.lock().unwrap(), LAGGING);
        let lies: u64 =
            refused.iter().filter(|(reason, _)| STATE_LIES.contains(&reason.as_str())).map(|(_, n)| n).sum();
        (lies > 0).then_some(refused)
    });
    let isolated_at = height_of(LAGGING).unwrap();
    {
        let cluster = cluster.lock().unwrap();
        let honest = cluster.block_hashes(HONEST[0], isolated_at);
        assert_eq!(cluster.block_hashes(LAGGING, isolated_at), honest, "validator 3 took a doctored block");
    }
    let restarted = Instant::now();
    cluster.lock().unwrap().isolate(LAGGING, false);
    eventually(TIMEOUT, "validator 3 to catch up", || height_of(LAGGING).filter(|h| *h >= target));
    let catch_up = restarted.elapsed();
    let flood_from = eventually(TIMEOUT, "the chain to go on with validator 3 again", || {
        height_of(HONEST[0]).filter(|h| *h >= target + 5)
    });

    // 3. Floods on top. The attack's time is the schedule of the test, not a synchronisation.
    byzantine.flood(true);
    std::thread::sleep(Duration::from_secs(seconds));
    let flood_to = HONEST.iter().filter_map(|i| height_of(*i)).max().unwrap();
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
    println!(
        "byzantine: validator {LAGGING}, cut off from the honest two, refused {lies_refused:?} and went from \
         height {restarted_at} to {isolated_at} (any block it took is the honest chain's); reconnected, it \
         caught up {} blocks in {catch_up:?} (its peak RSS below counts from its restart)",
        target - isolated_at
    );
    for (index, kib) in &peaks {
        println!("byzantine: validator {index} peak RSS {} MiB", kib / 1024);
    }

    for (kind, count) in &sent {
        assert!(*count > 0, "the adversary never managed to send {kind}: {sent:?}");
    }
    let refused = |reason: &str| -> u64 {
        rejected.iter().flat_map(|(_, reasons)| reasons).filter(|(r, _)| r == reason).map(|(_, n)| n).sum()
    };
    for reason in ["oversized", "malformed", "bad_block", "bad_view_change", "over_quota"] {
        assert!(refused(reason) > 0, "no honest node refused anything as {reason}: {rejected:?}");
    }
    for (index, kib) in &peaks {
        assert!(kib / 1024 < RSS_LIMIT_MIB, "validator {index} peaked at {} MiB", kib / 1024);
    }

    // Every block the honest three committed passes its own checks and is no proposal of the
    // adversary's.
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
    // Parts 1 and 3 have one fault; the stall while validator 3 re-syncs is two at once, so it
    // does not count.
    let (first_ms, _) = longest_wait(&timestamps, &waits, 1..=left_at);
    let (flood_ms, at) = longest_wait(&timestamps, &waits, flood_from + 1..=flood_to);
    println!(
        "byzantine: {height} blocks, {} transactions; longest stretch without a block while transactions \
         waited: {first_ms} ms under the Byzantine primary and after, {flood_ms} ms under floods (before \
         height {at}); bound {} ms",
        waits.len(),
        VIEW_CHANGE_TIMEOUT_MS + 1_000
    );
    for longest_ms in [first_ms, flood_ms] {
        assert!(
            longest_ms <= VIEW_CHANGE_TIMEOUT_MS + 1_000,
            "{longest_ms} ms without a block: more than the view-change timeout plus one second"
        );
    }
    assert!(flood_to >= flood_from + 10, "only {} blocks in {seconds} s of floods", flood_to - flood_from);
}

/// For each block h in `heights`, the part of the gap before it (from block h-1, or from genesis)
/// during which a transaction that committed at h or later was waiting; the longest, and its h.
fn longest_wait(
    timestamps: &[u64],
    waits: &[(u64, u64)],
    heights: std::ops::RangeInclusive<u64>,
) -> (u64, u64) {
    heights
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

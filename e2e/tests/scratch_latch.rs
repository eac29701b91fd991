#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::time::{Duration, Instant};
use kubechain_e2e::{Account, Cluster, eventually};
use kubechain_types::ConsensusParams;

#[test]
fn scratch() {
    let params = ConsensusParams { view_change_timeout_ms: 2000, ..ConsensusParams::default() };
    let mut cluster = Cluster::create(4, 1, params);
    cluster.start_all();
    let mut account = Account::new(cluster.clients[0].clone());
    let via = std::env::var("VIA").unwrap().parse::<usize>().unwrap();
    let victim = std::env::var("VICTIM").unwrap().parse::<usize>().unwrap();
    let mut commit = |cluster: &Cluster| {
        let tx = account.put("k", b"v");
        assert_eq!(cluster.submit(via, &tx).0, 202);
        eventually(Duration::from_secs(30), "commit", || cluster.committed(via, &tx.hash()));
        std::thread::sleep(Duration::from_millis(150));
    };
    for _ in 0..5 { commit(&cluster); }
    eprintln!("primary {}", cluster.primary_seen_by(via));
    cluster.stop(victim);
    for _ in 0..10 { commit(&cluster); }
    cluster.start(victim);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(8) {
        commit(&cluster);
        let (code, body) = cluster.get(victim, "/readyz").unwrap();
        eprintln!("{:?} {code} {body} chain {:?} view {:?} vs {:?}", t.elapsed(), cluster.height(via), cluster.status(victim).unwrap()["view"], cluster.status(via).unwrap()["view"]);
        let _ = code;
    }
}

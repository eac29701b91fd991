//! The genesis file a node (and `kubechain verify-receipt`) reads: JSON parsed and validated as
//! `kubechain_node::read_genesis` does; then, for a genesis that validated, what a node derives
//! from it at start: hash, validator set and primaries, the consensus schedule, the genesis state
//! root. A parsed genesis also comes back equal through JSON.
#![no_main]

use kubechain_consensus::Schedule;
use kubechain_ledger::genesis_root;
use kubechain_types::Genesis;
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: kubechain_fuzz::init(env!("CARGO_BIN_NAME")), |data: &[u8]| {
    let Ok(genesis) = serde_json::from_slice::<Genesis>(data) else { return };
    let json = serde_json::to_vec(&genesis).unwrap_or_default();
    assert_eq!(serde_json::from_slice::<Genesis>(&json).ok().as_ref(), Some(&genesis), "JSON round trip");
    if genesis.validate().is_err() {
        return;
    }
    let validators = genesis.validator_set();
    let schedule = Schedule::from_genesis(&genesis);
    assert!(schedule.is_well_formed());
    for view in 0..=validators.len() as u64 {
        let _ = validators.primary(view);
    }
    let _ = (genesis.hash(), genesis.params.watermark_window(), schedule.window(), genesis_root(&genesis));
});

//! The peers file a node reads again every few seconds while it runs (`peers_file`, written by
//! the operator or by hand): `parse_peer_list` on any text gives peers or an error, never a
//! panic, and what it accepts survives a write and a second read unchanged.
#![no_main]

use kubechain_network::parse_peer_list;
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: kubechain_fuzz::init(env!("CARGO_BIN_NAME")), |data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(peers) = parse_peer_list(text) else { return };
    let written = serde_yaml::to_string(&peers).expect("accepted peers serialize");
    assert_eq!(parse_peer_list(&written).as_ref(), Ok(&peers), "a peer list changed on a second read");
});

//! Who this node is, which validators it links to, and where to find them.

use std::net::SocketAddr;

use kubechain_types::{PublicKey, SigningKey};
use serde::{Deserialize, Serialize};

/// Where a peer can be dialled; the entries of a node config's `peers` and of its peers file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    pub key: PublicKey,
    /// `host:port`, resolved at every dial (DNS names of Kubernetes Services change address).
    pub address: String,
}

/// The longest peer address accepted (a DNS name is at most 253 characters, then `:port`).
pub const MAX_PEER_ADDRESS: usize = 260;
/// Peers in one list, at most: each is a link task with its own bounded queues.
pub const MAX_PEERS: usize = 1024;

/// A peers file: a YAML list of `{key, address}` (an empty text is an empty list). Each address
/// must be `host:port` with a non-empty host and a port from 1 to 65535, at most
/// [`MAX_PEER_ADDRESS`] characters; a key appears once; at most [`MAX_PEERS`] entries.
pub fn parse_peer_list(text: &str) -> Result<Vec<Peer>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let peers: Vec<Peer> = serde_yaml::from_str(text).map_err(|error| error.to_string())?;
    if peers.len() > MAX_PEERS {
        return Err(format!("{} peers, at most {MAX_PEERS}", peers.len()));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(twice) = peers.iter().find(|peer| !seen.insert(peer.key)) {
        return Err(format!("peer {} is listed twice", twice.key));
    }
    for peer in &peers {
        let well_formed = peer.address.len() <= MAX_PEER_ADDRESS
            && peer.address.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|port| port > 0)
            });
        if !well_formed {
            return Err(format!(
                "peer {}: the address must be host:port (port 1 to 65535), at most {MAX_PEER_ADDRESS} characters",
                peer.key
            ));
        }
    }
    Ok(peers)
}

#[derive(Clone, Debug)]
pub struct NetworkConfig {
    pub chain_id: String,
    pub key: SigningKey,
    pub listen: SocketAddr,
    /// The validator set in force at start (this node's own key may be in it); these keys and
    /// those of `peers` may link. [`crate::Network::set_validators`] replaces the set as the
    /// chain changes it.
    pub validators: Vec<PublicKey>,
    /// Addresses to dial. A key here that is not a validator is a learner: linked, but its votes
    /// count for nothing. A validator missing here can still dial us.
    pub peers: Vec<Peer>,
    /// Largest frame accepted or sent.
    pub max_frame_bytes: usize,
    /// Frames queued per peer before new ones are dropped (and counted).
    pub queue_frames: usize,
    /// Bytes queued per peer before new frames are dropped (and counted); a single frame larger
    /// than this is still queued when nothing else is.
    pub queue_bytes: usize,
    /// Frames from one peer delivered but not yet handled, at most; its link stops reading
    /// until the node handles some, so one peer cannot crowd the others out of the node's queue.
    pub inbound_frames: usize,
    /// Bytes from one peer delivered but not yet handled, at most (a larger single frame still
    /// goes through alone).
    pub inbound_bytes: usize,
}

impl NetworkConfig {
    pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;
    pub const DEFAULT_QUEUE_BYTES: usize = 32 * 1024 * 1024;
    pub const DEFAULT_INBOUND_FRAMES: usize = 256;
    pub const DEFAULT_INBOUND_BYTES: usize = 32 * 1024 * 1024;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_list_parses_and_bad_entries_are_refused() {
        let key = SigningKey::from_seed([1; 32]).public_key();
        assert_eq!(parse_peer_list("  \n"), Ok(Vec::new()));
        let parsed = parse_peer_list(&format!("- key: {key}\n  address: v-1.ns.svc:7000\n")).unwrap();
        assert_eq!(parsed, vec![Peer { key, address: "v-1.ns.svc:7000".into() }]);
        for bad in ["", ":7000", "host", "host:0", "host:70000", &format!("{}:1", "h".repeat(300))] {
            let text = format!("- key: {key}\n  address: '{bad}'\n");
            assert!(parse_peer_list(&text).is_err(), "{bad:?} accepted");
        }
        assert!(parse_peer_list(&format!("- key: {key}\n  adress: h:1\n")).is_err(), "unknown field");
        assert!(parse_peer_list("- key: nothex\n  address: h:1\n").is_err());
        let twice = format!("- key: {key}\n  address: a:1\n- key: {key}\n  address: b:1\n");
        assert!(parse_peer_list(&twice).unwrap_err().contains("twice"));
    }
}

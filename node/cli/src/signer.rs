//! Who signs a transaction and where it goes: the flags `tx` and `admin` share, and the one path
//! that signs, submits and waits.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use kubechain_node::keyfile;
use kubechain_types::{Operation, Transaction, TxBody};

use crate::client::{Client, TxStatus};

#[derive(Args, Debug)]
pub struct Signer {
    /// The client key that signs (a member's or an admin's key file).
    #[arg(long, env = "KUBECHAIN_KEY_FILE", global = true)]
    pub key_file: Option<PathBuf>,
    /// Nonce to use; default: the account's committed nonce + 1, asked from the node.
    #[arg(long, global = true)]
    pub nonce: Option<u64>,
    /// Chain id; default: the node's.
    #[arg(long, global = true)]
    pub chain_id: Option<String>,
    /// Wait until the transaction commits (for `admin` changes of validators or parameters, until
    /// they are in force) and print where it committed.
    #[arg(long, global = true)]
    pub wait: bool,
    #[arg(long, default_value_t = 30, global = true)]
    pub wait_seconds: u64,
    #[arg(long, env = "KUBECHAIN_NODE", default_value = "http://127.0.0.1:27000", global = true)]
    pub node: String,
}

/// Signs `operations` with the signer's key (its next nonce unless given), submits them, prints
/// the hash, and with `--wait` waits for the commit. Returns the height it committed at, if
/// waited for.
pub fn sign_and_submit(
    client: &Client,
    node_chain_id: &str,
    operations: Vec<Operation>,
    signer: &Signer,
) -> Result<Option<u64>, String> {
    let key_file = signer.key_file.as_ref().ok_or("--key-file (or KUBECHAIN_KEY_FILE) is required")?;
    let key = keyfile::read(key_file).map_err(|error| error.to_string())?;
    let chain_id = signer.chain_id.clone().unwrap_or_else(|| node_chain_id.to_string());
    let nonce = match signer.nonce {
        Some(nonce) => nonce,
        None => client.nonce(&key.public_key()).map_err(|error| error.to_string())? + 1,
    };
    let body = TxBody { chain_id, sender: key.public_key(), nonce, operations };
    let hash = client.submit(&Transaction::new(body, &key)).map_err(|error| error.to_string())?;
    out!("{hash}");
    if !signer.wait {
        return Ok(None);
    }
    match client.wait_committed(&hash, Duration::from_secs(signer.wait_seconds)).map_err(|e| e.to_string())? {
        TxStatus::Committed { height, index, .. } => {
            out!("committed at height {height}, index {index}");
            Ok(Some(height))
        }
        TxStatus::Rejected { error, .. } => {
            let error = serde_json::to_string(&error).map_err(|error| error.to_string())?;
            Err(format!("rejected: {error}"))
        }
        TxStatus::Pending { .. } => Err("still pending".into()),
    }
}

//! `kubechain admin ...`: the admin transactions that change a running chain (members, admins,
//! validators, consensus parameters), so a chain run without Kubernetes can change too.

use std::time::{Duration, Instant};

use clap::Subcommand;
use kubechain_types::{AdminOperation, ConsensusParams, Operation, PublicKey};

use crate::client::{Client, ClientSettings};
use crate::signer::{Signer, sign_and_submit};

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Register an organisation and the client keys that act for it.
    AddMember {
        #[arg(long)]
        name: String,
        /// A client public key (hex); repeat for each.
        #[arg(long = "key", required = true)]
        keys: Vec<PublicKey>,
    },
    /// Remove a member: its keys are refused from then on (`unknown_sender`).
    RemoveMember {
        #[arg(long)]
        name: String,
    },
    /// Add a validator. Start it first (with every validator's address in its peers) and let
    /// it catch up: it votes from the height at which the addition takes effect.
    AddValidator {
        #[arg(long)]
        key: PublicKey,
    },
    /// Remove a validator; it stops voting at the height at which the removal takes effect.
    RemoveValidator {
        #[arg(long)]
        key: PublicKey,
    },
    /// Let another key sign admin transactions.
    AddAdmin {
        #[arg(long)]
        key: PublicKey,
    },
    /// Take admin rights from a key; an admin cannot remove itself, so one always remains.
    RemoveAdmin {
        #[arg(long)]
        key: PublicKey,
    },
    /// Change consensus parameters; those not given keep the values in force (so a change
    /// committed but not yet in force is overwritten; the checkpoint interval cannot change).
    SetParams {
        #[arg(long)]
        block_interval_ms: Option<u64>,
        #[arg(long)]
        max_block_txs: Option<u32>,
        #[arg(long)]
        view_change_timeout_ms: Option<u64>,
        #[arg(long)]
        pow_difficulty_bits: Option<u8>,
    },
}

pub fn run(command: AdminCommand, signer: Signer, timeouts: ClientSettings) -> Result<(), String> {
    let client = Client::new(&signer.node, timeouts).map_err(|error| error.to_string())?;
    let status = client.status().map_err(|error| error.to_string())?;
    let operation = match command {
        AdminCommand::AddMember { name, keys } => AdminOperation::AddMember { name, public_keys: keys },
        AdminCommand::RemoveMember { name } => AdminOperation::RemoveMember { name },
        AdminCommand::AddValidator { key } => AdminOperation::AddValidator { public_key: key },
        AdminCommand::RemoveValidator { key } => AdminOperation::RemoveValidator { public_key: key },
        AdminCommand::AddAdmin { key } => AdminOperation::AddAdmin { public_key: key },
        AdminCommand::RemoveAdmin { key } => AdminOperation::RemoveAdmin { public_key: key },
        AdminCommand::SetParams {
            block_interval_ms,
            max_block_txs,
            view_change_timeout_ms,
            pow_difficulty_bits,
        } => {
            let current = status
                .consensus_params
                .clone()
                .ok_or("the node does not report its consensus parameters (an older version)")?;
            let params = ConsensusParams {
                block_interval_ms: block_interval_ms.unwrap_or(current.block_interval_ms),
                max_block_txs: max_block_txs.unwrap_or(current.max_block_txs),
                view_change_timeout_ms: view_change_timeout_ms.unwrap_or(current.view_change_timeout_ms),
                pow_difficulty_bits: pow_difficulty_bits.unwrap_or(current.pow_difficulty_bits),
                ..current.clone()
            };
            current.validate_change(&params).map_err(|error| format!("refused before sending: {error}"))?;
            AdminOperation::SetConsensusParams { params }
        }
    };
    let changes_rules = matches!(
        operation,
        AdminOperation::AddValidator { .. }
            | AdminOperation::RemoveValidator { .. }
            | AdminOperation::SetConsensusParams { .. }
    );
    let wait = signer.wait.then(|| Duration::from_secs(signer.wait_seconds));
    let started = Instant::now();
    let committed_at =
        sign_and_submit(&client, &status.chain_id, vec![Operation::Admin(operation)], &signer)?;
    let (Some(committed_at), true, Some(wait)) = (committed_at, changes_rules, wait) else { return Ok(()) };
    // A rule change takes effect a watermark window after its block (docs/encoding.md, 8.1).
    let window = status.consensus_params.map(|params| params.watermark_window()).ok_or(
        "committed, but the node does not report its parameters (an older version): cannot tell when the change is in force",
    )?;
    let activation = committed_at + window + 1;
    out!("in force from height {activation}");
    let deadline = wait.saturating_sub(started.elapsed());
    let in_force = wait_for_height(&client, activation, deadline)?;
    out!(
        "in force: {} validators (tolerating {} faulty), at height {}",
        in_force.validators.len(),
        kubechain_types::fault_tolerance(in_force.validators.len()),
        in_force.height
    );
    Ok(())
}

/// Polls the node until its committed height reaches `height - 1` (the rules of `height` then
/// govern its next block).
fn wait_for_height(
    client: &Client,
    height: u64,
    timeout: Duration,
) -> Result<kubechain_api::NodeStatus, String> {
    let started = Instant::now();
    loop {
        let status = client.status().map_err(|error| error.to_string())?;
        if status.height + 1 >= height {
            return Ok(status);
        }
        if started.elapsed() >= timeout {
            return Err(format!(
                "committed, but the chain is at height {} and the change takes effect at {height}: not in force within the wait",
                status.height
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

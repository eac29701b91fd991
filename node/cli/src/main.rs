//! `kubechain`: the command-line entry point.

mod keys;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kubechain_types::{ConsensusParams, Genesis, Member, PublicKey};

#[derive(Parser, Debug)]
#[command(name = "kubechain", version, about = "A permissioned BFT ledger for consortia")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create an ed25519 key file (owner-only) and print its public key.
    Keygen {
        /// Where to write the key; an existing file is never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a genesis file and print its hash.
    Genesis {
        #[arg(long)]
        chain_id: String,
        /// Validator public key (hex); repeat for each, in order.
        #[arg(long = "validator", required = true)]
        validators: Vec<PublicKey>,
        /// Admin public key (hex); repeat for each.
        #[arg(long = "admin")]
        admins: Vec<PublicKey>,
        /// A member as NAME=KEY[,KEY...]; repeat for each.
        #[arg(long = "member", value_parser = parse_member)]
        members: Vec<Member>,
        /// Genesis time in milliseconds since the Unix epoch (fixed so every member gets the same
        /// genesis hash).
        #[arg(long, default_value_t = 0)]
        genesis_time_ms: u64,
        #[arg(long, default_value_t = ConsensusParams::default().block_interval_ms)]
        block_interval_ms: u64,
        #[arg(long, default_value_t = ConsensusParams::default().max_block_txs)]
        max_block_txs: u32,
        #[arg(long, default_value_t = ConsensusParams::default().checkpoint_interval)]
        checkpoint_interval: u64,
        #[arg(long, default_value_t = ConsensusParams::default().view_change_timeout_ms)]
        view_change_timeout_ms: u64,
        #[arg(long, default_value_t = ConsensusParams::default().pow_difficulty_bits)]
        pow_difficulty_bits: u8,
        #[arg(long)]
        out: PathBuf,
    },
}

fn parse_member(text: &str) -> Result<Member, String> {
    let (name, keys) = text.split_once('=').ok_or("expected NAME=KEY[,KEY...]")?;
    let public_keys = keys
        .split(',')
        .map(|key| PublicKey::from_hex(key.trim()).map_err(|e| format!("member {name}: key {key:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Member { name: name.to_string(), public_keys })
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Keygen { out } => {
            let key = keys::generate().map_err(|e| e.to_string())?;
            keys::write(&out, &key).map_err(|e| e.to_string())?;
            println!("{}", key.public_key());
        }
        Command::Genesis {
            chain_id,
            validators,
            admins,
            members,
            genesis_time_ms,
            block_interval_ms,
            max_block_txs,
            checkpoint_interval,
            view_change_timeout_ms,
            pow_difficulty_bits,
            out,
        } => {
            let params = ConsensusParams {
                block_interval_ms,
                max_block_txs,
                checkpoint_interval,
                view_change_timeout_ms,
                pow_difficulty_bits,
            };
            let genesis = Genesis { chain_id, genesis_time_ms, validators, admins, members, params };
            genesis.validate().map_err(|e| format!("invalid genesis: {e}"))?;
            let json = serde_json::to_vec_pretty(&genesis).map_err(|e| e.to_string())?;
            std::fs::write(&out, json).map_err(|e| format!("{}: {e}", out.display()))?;
            println!("{}", genesis.hash());
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

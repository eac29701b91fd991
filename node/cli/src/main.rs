//! `kubechain`: the command-line entry point (node, devnet, keys, genesis, transactions, receipts,
//! load).

/// `println!` that ends the program quietly when stdout's reader has gone (`... | head -1`).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::write_stdout(&format!("{}\n", format_args!($($arg)*)))
    };
}

mod admin;
mod bench;
mod client;
mod devnet;
mod signer;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use client::{Client, ClientSettings, TxStatus};
use kubechain_node::{NodeConfig, RunningNode, keyfile};
use kubechain_types::{
    ConsensusParams, DocumentAnchor, Genesis, Hash, Member, Operation, PublicKey, Receipt,
};
use serde_json::Value;
use signer::{Signer, sign_and_submit};

#[derive(Parser, Debug)]
#[command(name = "kubechain", version, about = "A permissioned BFT ledger for consortia")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    timeouts: TimeoutArgs,
}

/// How long commands that talk to a node wait for it.
#[derive(Args, Debug)]
struct TimeoutArgs {
    /// Seconds to wait for a connection to the node.
    #[arg(long, global = true, env = "KUBECHAIN_CONNECT_TIMEOUT_SECONDS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..))]
    connect_timeout_seconds: u64,
    /// Seconds to wait for the node's whole answer to one request (`--wait` polls many times
    /// within its own `--wait-seconds`).
    #[arg(long, global = true, env = "KUBECHAIN_REQUEST_TIMEOUT_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    request_timeout_seconds: u64,
    /// A file holding the bearer token the node's API requires (its `api_token_file`), if any.
    #[arg(long, global = true, env = "KUBECHAIN_API_TOKEN_FILE")]
    api_token_file: Option<PathBuf>,
}

impl TimeoutArgs {
    fn timeouts(&self) -> Result<ClientSettings, String> {
        let token = match &self.api_token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
                // Read once for the life of this command.
                Some(&*Box::leak(text.trim().to_string().into_boxed_str()))
            }
            None => None,
        };
        Ok(ClientSettings {
            connect: Duration::from_secs(self.connect_timeout_seconds),
            request: Duration::from_secs(self.request_timeout_seconds),
            token,
        })
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
struct Logging {
    /// Log format: human-readable text, or JSON lines for log collectors.
    #[arg(long, value_enum, default_value = "text", env = "KUBECHAIN_LOG_FORMAT", global = true)]
    log_format: LogFormat,
    /// Log filter (tracing env-filter syntax), e.g. `info` or `kubechain_node=debug`.
    #[arg(long, default_value = "info", env = "KUBECHAIN_LOG", global = true)]
    log_level: String,
}

#[derive(Args, Debug)]
struct NodeUrl {
    /// The node's API, e.g. http://127.0.0.1:27000.
    #[arg(long, env = "KUBECHAIN_NODE", default_value = "http://127.0.0.1:27000")]
    node: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a validator.
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// Run a local chain of N validators in this process (created on first run, resumed after).
    Devnet {
        #[arg(long, default_value_t = 4)]
        validators: usize,
        #[arg(long, default_value = ".devnet")]
        dir: PathBuf,
        /// Validator I serves its API on BASE+I and peers on BASE+100+I (127.0.0.1).
        #[arg(long, default_value_t = 27000)]
        base_port: u16,
        #[arg(long, default_value_t = ConsensusParams::default().block_interval_ms)]
        block_interval_ms: u64,
        #[arg(long, default_value_t = ConsensusParams::default().max_block_txs)]
        max_block_txs: u32,
        #[arg(long, default_value_t = ConsensusParams::default().pow_difficulty_bits)]
        pow_difficulty_bits: u8,
        /// Do not print each new block.
        #[arg(long)]
        quiet: bool,
        #[command(flatten)]
        logging: Logging,
    },
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
    /// Change a running chain with an admin key: members, validators, consensus parameters.
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
        #[command(flatten)]
        signer: Signer,
    },
    /// Sign and submit a transaction.
    Tx {
        #[command(subcommand)]
        operation: TxOperation,
        #[command(flatten)]
        signer: Signer,
    },
    /// Read a key from a member's namespace.
    Get {
        namespace: String,
        key: String,
        #[command(flatten)]
        node: NodeUrl,
    },
    /// Show a node's status.
    Status {
        #[command(flatten)]
        node: NodeUrl,
    },
    /// Fetch a committed transaction's receipt (JSON) to a file or stdout.
    Receipt {
        hash: Hash,
        #[arg(long)]
        out: Option<PathBuf>,
        /// Wait up to this many seconds for the node to commit it (behind a load-balanced
        /// Service the node asked may be a block behind the one that committed it).
        #[arg(long, value_name = "SECONDS")]
        wait: Option<u64>,
        #[command(flatten)]
        node: NodeUrl,
    },
    /// Verify a receipt offline against the chain's genesis file.
    VerifyReceipt {
        /// The receipt file, exactly as `kubechain receipt` wrote it.
        receipt: PathBuf,
        #[arg(long)]
        genesis: PathBuf,
    },
    /// Drive load at a chain; the last line printed is a JSON summary.
    Bench {
        /// Start a new devnet of N validators in a temporary dir, load it, then stop and delete it.
        #[arg(long, value_name = "N", conflicts_with_all = ["devnet", "nodes", "admin_key", "genesis"],
              value_parser = clap::value_parser!(u16).range(1..))]
        fresh_devnet: Option<u16>,
        #[command(flatten)]
        fresh: FreshDevnetArgs,
        /// A devnet directory: its validators' APIs and admin key are used.
        #[arg(long, conflicts_with_all = ["nodes", "admin_key"])]
        devnet: Option<PathBuf>,
        /// A node API to load (repeat for each).
        #[arg(long = "node")]
        nodes: Vec<String>,
        /// Admin key, to register the benchmark's client accounts.
        #[arg(long)]
        admin_key: Option<PathBuf>,
        /// The chain's genesis file (with --node).
        #[arg(long)]
        genesis: Option<PathBuf>,
        #[arg(long, default_value_t = 64)]
        accounts: usize,
        #[arg(long, default_value_t = 200_000)]
        transactions: usize,
        /// Transactions per request.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Length of the half-load latency phase.
        #[arg(long, default_value_t = 10)]
        latency_seconds: u64,
    },
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
}

/// The chain `bench --fresh-devnet` starts: short blocks, light proof of work.
#[derive(Args, Debug)]
struct FreshDevnetArgs {
    /// With --fresh-devnet: validator I serves its API on BASE+I and peers on BASE+100+I.
    #[arg(long, requires = "fresh_devnet", default_value_t = 27300)]
    base_port: u16,
    /// With --fresh-devnet.
    #[arg(long, requires = "fresh_devnet", default_value_t = 10)]
    block_interval_ms: u64,
    /// With --fresh-devnet.
    #[arg(long, requires = "fresh_devnet", default_value_t = ConsensusParams::default().max_block_txs)]
    max_block_txs: u32,
    /// With --fresh-devnet.
    #[arg(long, requires = "fresh_devnet", default_value_t = 8)]
    pow_difficulty_bits: u8,
}

impl FreshDevnetArgs {
    fn options(&self, validators: u16) -> devnet::DevnetOptions {
        devnet::DevnetOptions {
            validators: usize::from(validators),
            base_port: self.base_port,
            params: ConsensusParams {
                block_interval_ms: self.block_interval_ms,
                max_block_txs: self.max_block_txs,
                pow_difficulty_bits: self.pow_difficulty_bits,
                ..ConsensusParams::default()
            },
        }
    }
}

#[derive(Subcommand, Debug)]
enum NodeCommand {
    /// Run a validator from a config file; flags and KUBECHAIN_* variables override the file.
    Run {
        #[arg(long, env = "KUBECHAIN_CONFIG")]
        config: PathBuf,
        #[arg(long, env = "KUBECHAIN_DATA_DIR")]
        data_dir: Option<PathBuf>,
        #[arg(long, env = "KUBECHAIN_API_LISTEN")]
        api_listen: Option<SocketAddr>,
        #[arg(long, env = "KUBECHAIN_P2P_LISTEN")]
        p2p_listen: Option<SocketAddr>,
        #[command(flatten)]
        logging: Logging,
    },
}

#[derive(Subcommand, Debug)]
enum TxOperation {
    /// Set KEY to VALUE (UTF-8) in the member's namespace.
    Put {
        #[arg(long)]
        key: String,
        #[arg(long)]
        value: String,
    },
    /// Delete KEY from the member's namespace.
    Delete {
        #[arg(long)]
        key: String,
    },
    /// Anchor an off-chain document by its SHA-256 and size.
    Anchor {
        #[arg(long)]
        uri: String,
        #[arg(long)]
        sha256: Hash,
        #[arg(long)]
        size: u64,
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

fn init_logging(logging: &Logging) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(&logging.log_level)
        .map_err(|error| format!("--log-level {:?}: {error}", logging.log_level))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let installed = match logging.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    installed.map_err(|error| error.to_string())
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|error| error.to_string())
}

fn print_json(value: &impl serde::Serialize) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|error| error.to_string())?;
    out!("{text}");
    Ok(())
}

fn run_node(
    config: PathBuf,
    data_dir: Option<PathBuf>,
    api: Option<SocketAddr>,
    p2p: Option<SocketAddr>,
) -> Result<(), String> {
    let mut config = NodeConfig::load(&config).map_err(|error| error.to_string())?;
    if let Some(data_dir) = data_dir {
        config.data_dir = data_dir;
    }
    if let Some(api) = api {
        config.api_listen = api;
    }
    if let Some(p2p) = p2p {
        config.p2p_listen = p2p;
    }
    runtime()?.block_on(async {
        let node = RunningNode::start(&config).await.map_err(|error| error.to_string())?;
        let shutdown = node.shutdown_token();
        tokio::spawn(async move {
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let terminated = async {
                match terminate.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminated => {}
            }
            tracing::info!("stopping on signal");
            shutdown.cancel();
        });
        node.wait().await.map_err(|error| error.to_string())
    })
}

fn submit_tx(operation: TxOperation, signer: Signer, timeouts: ClientSettings) -> Result<(), String> {
    let client = Client::new(&signer.node, timeouts).map_err(|error| error.to_string())?;
    let chain_id = match &signer.chain_id {
        Some(chain_id) => chain_id.clone(),
        None => client.status().map_err(|error| error.to_string())?.chain_id,
    };
    let operation = match operation {
        TxOperation::Put { key, value } => Operation::Put { key, value: value.into_bytes() },
        TxOperation::Delete { key } => Operation::Delete { key },
        TxOperation::Anchor { uri, sha256, size } => Operation::Anchor(DocumentAnchor { uri, sha256, size }),
    };
    sign_and_submit(&client, &chain_id, vec![operation], &signer)?;
    Ok(())
}

fn verify_receipt(receipt: PathBuf, genesis: PathBuf) -> Result<(), String> {
    let genesis: Genesis = kubechain_node::read_genesis(&genesis).map_err(|error| error.to_string())?;
    let text = std::fs::read(&receipt).map_err(|error| format!("{}: {error}", receipt.display()))?;
    let receipt = Receipt::from_file_text(&text)
        .map_err(|error| format!("{}: receipt does NOT verify: {error}", receipt.display()))?;
    let validators = receipt.verify(&genesis).map_err(|error| format!("receipt does NOT verify: {error}"))?;
    let set = match receipt.rule_changes.len() {
        0 => "genesis validators".to_string(),
        changes => {
            format!("validators in force at that height (genesis and {changes} rule changes followed)")
        }
    };
    out!(
        "receipt verifies: transaction {} is at index {} of block {} (height {}) of chain {:?}, certified by {} of {} {set}",
        receipt.transaction.hash(),
        receipt.proof.index,
        receipt.header.hash(),
        receipt.header.height,
        genesis.chain_id,
        receipt.certificate.votes.len(),
        validators.len()
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn run_bench(
    devnet: Option<PathBuf>,
    nodes: Vec<String>,
    admin_key: Option<PathBuf>,
    genesis: Option<PathBuf>,
    accounts: usize,
    transactions: usize,
    batch: usize,
    latency_seconds: u64,
) -> Result<(), String> {
    let (nodes, admin_key, genesis) = match devnet {
        Some(dir) => {
            let nodes =
                devnet::configs(&dir)?.iter().map(|config| format!("http://{}", config.api_listen)).collect();
            (nodes, dir.join("admin.key"), devnet::genesis_path(&dir))
        }
        None => (
            nodes,
            admin_key.ok_or("--admin-key is required with --node")?,
            genesis.ok_or("--genesis is required with --node")?,
        ),
    };
    if nodes.is_empty() {
        return Err("no node to load: give --devnet DIR or --node URL".into());
    }
    let genesis = kubechain_node::read_genesis(&genesis).map_err(|error| error.to_string())?;
    let options = bench::BenchOptions {
        nodes,
        admin_key: keyfile::read(&admin_key).map_err(|error| error.to_string())?,
        chain_id: genesis.chain_id,
        accounts: accounts.max(1),
        transactions: transactions.max(1),
        batch: batch.max(1),
        latency_seconds: latency_seconds.max(1),
    };
    let result = runtime()?.block_on(bench::run(options))?;
    eprintln!(
        "bench: {} validators, {} transactions of {} bytes: {} committed tx/s (p50 {} ms, p99 {} ms when saturated); at {} tx/s: p50 {} ms, p99 {} ms",
        result.validators,
        result.transactions,
        bench::TX_BYTES,
        result.committed_tps,
        result.saturated_p50_ms,
        result.saturated_p99_ms,
        result.half_load_tps,
        result.p50_ms,
        result.p99_ms
    );
    out!("{}", serde_json::to_string(&result).map_err(|error| error.to_string())?);
    Ok(())
}

fn run(cli: Cli) -> Result<(), String> {
    let timeouts = cli.timeouts.timeouts()?;
    match cli.command {
        Command::Node { command: NodeCommand::Run { config, data_dir, api_listen, p2p_listen, logging } } => {
            init_logging(&logging)?;
            run_node(config, data_dir, api_listen, p2p_listen)?;
        }
        Command::Devnet {
            validators,
            dir,
            base_port,
            block_interval_ms,
            max_block_txs,
            pow_difficulty_bits,
            quiet,
            logging,
        } => {
            init_logging(&logging)?;
            if validators == 0 {
                return Err("--validators must be at least 1".into());
            }
            let params = ConsensusParams {
                block_interval_ms,
                max_block_txs,
                pow_difficulty_bits,
                ..Default::default()
            };
            let options = devnet::DevnetOptions { validators, base_port, params };
            runtime()?.block_on(devnet::run(&dir, &options, quiet))?;
        }
        Command::Keygen { out } => {
            let key = keyfile::generate().map_err(|e| e.to_string())?;
            keyfile::write(&out, &key).map_err(|e| e.to_string())?;
            out!("{}", key.public_key());
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
            out!("{}", genesis.hash());
        }
        Command::Tx { operation, signer } => submit_tx(operation, signer, timeouts)?,
        Command::Admin { command, signer } => admin::run(command, signer, timeouts)?,
        Command::Get { namespace, key, node } => {
            // Printed as the node wrote it.
            let answer: Value = Client::new(&node.node, timeouts)
                .and_then(|client| client.get(&format!("/v1/state/{namespace}/{key}")))
                .map_err(|e| e.to_string())?;
            print_json(&answer)?;
        }
        Command::Status { node } => {
            let answer: Value = Client::new(&node.node, timeouts)
                .and_then(|client| client.get("/v1/status"))
                .map_err(|e| e.to_string())?;
            print_json(&answer)?;
        }
        Command::Receipt { hash, out, wait, node } => {
            let status = Client::new(&node.node, timeouts).and_then(|client| match wait {
                Some(seconds) => client.wait_committed(&hash, Duration::from_secs(seconds)),
                None => client.tx_status(&hash),
            });
            let receipt = match status.map_err(|e| e.to_string())? {
                TxStatus::Committed { receipt, .. } => receipt,
                TxStatus::Pending { .. } => {
                    return Err(format!("transaction {hash} is not committed yet (pending)"));
                }
                TxStatus::Rejected { error, .. } => {
                    return Err(format!("transaction {hash} was refused: {error}"));
                }
            };
            let text = receipt.to_file_text();
            match out {
                Some(path) => std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?,
                None => write_stdout(&text),
            }
        }
        Command::VerifyReceipt { receipt, genesis } => verify_receipt(receipt, genesis)?,
        Command::Bench {
            fresh_devnet,
            fresh,
            devnet,
            nodes,
            admin_key,
            genesis,
            accounts,
            transactions,
            batch,
            latency_seconds,
        } => {
            let chain = fresh_devnet.map(|validators| devnet::FreshDevnet::start(&fresh.options(validators)));
            let chain = chain.transpose()?;
            let devnet = chain.as_ref().map(|chain| chain.dir().to_path_buf()).or(devnet);
            let benched =
                run_bench(devnet, nodes, admin_key, genesis, accounts, transactions, batch, latency_seconds);
            // A fresh devnet is stopped (and its dir removed) whether or not the bench passed.
            match chain {
                Some(chain) => benched.and(chain.stop())?,
                None => benched?,
            }
        }
        Command::Completions { shell } => {
            let mut command = Cli::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "kubechain", &mut script);
            write_stdout(&String::from_utf8_lossy(&script));
        }
    }
    Ok(())
}

/// Writes `text` to stdout. A reader that has gone away (`kubechain ... | head -1`) ends the
/// program quietly with status 0, as it would a Unix filter, instead of the panic `print!` gives.
fn write_stdout(text: &str) {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(error) => {
            eprintln!("error: writing to stdout: {error}");
            std::process::exit(1);
        }
    }
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

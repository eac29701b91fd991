//! The HTTP API. Every answer is a type of the `kubechain-api` crate, whose OpenAPI document is
//! served at `/v1/openapi.json`. Reads go straight to RocksDB; submissions and mempool queries go
//! to the consensus actor over a bounded channel.

mod error;
mod limits;

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::{Stream, StreamExt};
use kubechain_api::{
    AccountView, BatchVerdicts, BlockAnnouncement, BlockView, ConsortiumView, ErrorCode, Live, Liveness,
    MAX_BATCH, MAX_CONSORTIUM_ENTRIES, NodeStatus, Readiness, StateEntry, Submitted, TransactionStatus,
    Verdict,
};
use kubechain_ledger::state::keys;
use kubechain_ledger::{AdmitError, TxStatus};
use kubechain_network::Stats;
use kubechain_storage::Store;
use kubechain_types::{Hash, PublicKey, Receipt, Transaction, ValidatorSet};
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

pub use error::{ApiError, ApiPath, ApiQuery};
pub use kubechain_api::OPENAPI;
pub(crate) use limits::{Guard, Limits, serve};

use crate::driver::{Command, CommittedBlock, ConsensusStatus};
use crate::metrics::Metrics;

#[derive(Clone, Debug)]
pub(crate) struct ApiState {
    pub chain_id: Arc<str>,
    pub genesis_hash: Hash,
    /// A rule change committed at `c` is in force from `c + rule_window + 1` (the genesis
    /// watermark window, which no change may alter).
    pub rule_window: u64,
    pub node: PublicKey,
    pub store: Arc<Store>,
    pub commands: mpsc::Sender<Command>,
    pub status: watch::Receiver<ConsensusStatus>,
    pub blocks: broadcast::Sender<CommittedBlock>,
    pub metrics: Arc<Metrics>,
    pub network: Arc<Stats>,
    pub shutdown: CancellationToken,
    /// Block streams that may still open (`api_max_streams` in all).
    pub streams: Arc<tokio::sync::Semaphore>,
}

pub(crate) fn router(state: ApiState, max_body_bytes: usize, guard: Guard) -> Router {
    Router::new()
        .route("/v1/transactions", post(submit))
        .route("/v1/transactions/{hash}", get(transaction))
        .route("/v1/blocks/{id}", get(block))
        .route("/v1/stream/blocks", get(stream_blocks))
        .route("/v1/state/{namespace}/{key}", get(state_value))
        .route("/v1/accounts/{public_key}", get(account))
        .route("/v1/consortium", get(consortium))
        .route("/v1/status", get(status))
        .route("/v1/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            ApiError::not_found(ErrorCode::NotFound, "no such route; see /v1/openapi.json")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                "method not allowed on this route",
            )
        })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(guard, limits::guard))
        .with_state(state)
}

fn storage_error(error: kubechain_storage::StorageError) -> ApiError {
    ApiError::internal(error)
}

async fn ask<T>(
    state: &ApiState,
    command: impl FnOnce(oneshot::Sender<T>) -> Command,
) -> Result<T, ApiError> {
    let (reply, answer) = oneshot::channel();
    state.commands.send(command(reply)).await.map_err(|_| ApiError::unavailable("the node is stopping"))?;
    answer.await.map_err(|_| ApiError::unavailable("the node is stopping"))
}

/// The transactions of a request (see [`kubechain_api::parse_submission`]); says whether it was a
/// single transaction.
fn parse_transactions(headers: &HeaderMap, body: &[u8]) -> Result<(Vec<Transaction>, bool), ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or("");
    let submission = kubechain_api::parse_submission(content_type, body).map_err(|error| {
        let status = match error.code {
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, error.code, error.message)
    })?;
    Ok((submission.transactions, submission.single))
}

async fn submit(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::BodyTooLarge, rejection.body_text())
        } else {
            ApiError::bad_request(ErrorCode::MalformedJson, rejection.body_text())
        }
    })?;
    let (transactions, single) = parse_transactions(&headers, &body)?;
    if transactions.len() > MAX_BATCH {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::TooManyTransactions,
            format!("{} transactions in one request; at most {MAX_BATCH}", transactions.len()),
        ));
    }
    let hashes: Vec<Hash> = transactions.iter().map(Transaction::hash).collect();
    let verdicts: Vec<Result<Hash, AdmitError>> =
        ask(&state, |reply| Command::Submit { transactions, reply }).await?;
    let mut refused = Vec::new();
    let results: Vec<Verdict> = hashes
        .iter()
        .zip(&verdicts)
        .map(|(hash, verdict)| match verdict {
            Ok(hash) => Verdict::Accepted { hash: *hash },
            Err(error) => {
                let error = ApiError::admission(error);
                refused.push((*hash, error.clone()));
                Verdict::Refused { hash: *hash, code: error.code, message: error.message }
            }
        })
        .collect();
    if single {
        return match (verdicts.first(), refused.into_iter().next()) {
            (Some(Ok(hash)), _) => {
                Ok((StatusCode::ACCEPTED, Json(Submitted { hash: *hash })).into_response())
            }
            (_, Some((_, error))) => Err(error),
            _ => Err(ApiError::internal("no verdict for the transaction")),
        };
    }
    let accepted = verdicts.iter().filter(|verdict| verdict.is_ok()).count() as u64;
    let all_full =
        !verdicts.is_empty() && verdicts.iter().all(|verdict| matches!(verdict, Err(AdmitError::Full(_))));
    let status = if all_full { StatusCode::TOO_MANY_REQUESTS } else { StatusCode::OK };
    Ok((status, Json(BatchVerdicts { accepted, results })).into_response())
}

fn parse_hash(text: &str) -> Result<Hash, ApiError> {
    Hash::from_hex(text)
        .map_err(|_| ApiError::bad_request(ErrorCode::InvalidHash, "expected 64 hex characters"))
}

async fn transaction(
    State(state): State<ApiState>,
    ApiPath(hash): ApiPath<String>,
) -> Result<Response, ApiError> {
    let hash = parse_hash(&hash)?;
    if let Some(answer) = committed_transaction(&state, &hash)? {
        return Ok(answer);
    }
    let status = ask(&state, |reply| Command::TransactionStatus { hash, reply }).await?;
    if status == TxStatus::Pending {
        return Ok(Json(TransactionStatus::Pending { hash }).into_response());
    }
    // It may have committed between the two looks.
    if let Some(answer) = committed_transaction(&state, &hash)? {
        return Ok(answer);
    }
    match status {
        TxStatus::Refused(reason) => {
            let error = ApiError::admission(&reason);
            Ok(Json(TransactionStatus::Rejected { hash, error: error.body() }).into_response())
        }
        TxStatus::Pending | TxStatus::Unknown => {
            Err(ApiError::not_found(ErrorCode::TransactionNotFound, "no such transaction here"))
        }
    }
}

/// The committed answer with its receipt, if `hash` is in a committed block.
fn committed_transaction(state: &ApiState, hash: &Hash) -> Result<Option<Response>, ApiError> {
    if let Some(location) = state.store.tx_location(hash).map_err(storage_error)? {
        let certified = state
            .store
            .block(location.height)
            .map_err(storage_error)?
            .ok_or_else(|| ApiError::internal(format!("indexed block {} is missing", location.height)))?;
        let index = location.index as usize;
        let (Some(transaction), Some(proof)) =
            (certified.block.transactions.get(index).cloned(), certified.block.tx_proof(index))
        else {
            return Err(ApiError::internal("transaction index points outside its block"));
        };
        let receipt = Receipt {
            transaction,
            proof,
            header: certified.block.header,
            certificate: certified.certificate,
            rule_changes: state
                .store
                .rule_changes(location.height, state.rule_window)
                .map_err(storage_error)?,
        };
        let status = TransactionStatus::Committed {
            hash: *hash,
            height: location.height,
            index: location.index,
            receipt: Box::new(receipt),
        };
        return Ok(Some(Json(status).into_response()));
    }
    Ok(None)
}

async fn block(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<BlockView>, ApiError> {
    let height = if id == "latest" {
        state.store.tip_height().map_err(storage_error)?
    } else if let Ok(height) = id.parse::<u64>() {
        height
    } else if id.len() == 2 * Hash::LEN {
        let hash = parse_hash(&id)?;
        state.store.height_of(&hash).map_err(storage_error)?.ok_or_else(|| {
            ApiError::not_found(ErrorCode::BlockNotFound, "no committed block with this hash")
        })?
    } else {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidBlockId,
            "expected a height, a block hash or \"latest\"",
        ));
    };
    let certified = state.store.block(height).map_err(storage_error)?.ok_or_else(|| {
        ApiError::not_found(ErrorCode::BlockNotFound, format!("no committed block at height {height}"))
    })?;
    Ok(Json(BlockView {
        height,
        hash: certified.block.hash(),
        block: certified.block,
        certificate: certified.certificate,
    }))
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    /// Include each block's transaction hashes (load generators use them to time commits).
    #[serde(default)]
    transactions: bool,
}

async fn stream_blocks(
    State(state): State<ApiState>,
    ApiQuery(options): ApiQuery<StreamOptions>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    // The stream holds its slot until the client goes away.
    let slot = state.streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::TooManyStreams,
            "as many block streams are open as this node serves",
        )
    })?;
    let receiver = state.blocks.subscribe();
    let with_hashes = options.transactions;
    let stream = futures_util::stream::unfold((receiver, slot), move |(mut receiver, slot)| async move {
        let event = match receiver.recv().await {
            Ok(block) => {
                let announcement = BlockAnnouncement {
                    height: block.height,
                    hash: block.hash,
                    view: block.view,
                    proposer: block.proposer,
                    timestamp_ms: block.timestamp_ms,
                    transactions: block.transactions as u64,
                    transaction_hashes: with_hashes.then(|| block.transaction_hashes.to_vec()),
                };
                SseEvent::default().event("block").json_data(&announcement).ok()?
            }
            // A slow reader skipped some blocks; it can fetch them by height.
            Err(broadcast::error::RecvError::Lagged(skipped)) => {
                SseEvent::default().event("lagged").data(skipped.to_string())
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(event), (receiver, slot)))
    });
    Ok(Sse::new(stream.take_until(state.shutdown.cancelled_owned())).keep_alive(KeepAlive::default()))
}

async fn state_value(
    State(state): State<ApiState>,
    ApiPath((namespace, key)): ApiPath<(String, String)>,
) -> Result<Json<StateEntry>, ApiError> {
    let value =
        state.store.state(&keys::data(&namespace, &key)).map_err(storage_error)?.ok_or_else(|| {
            ApiError::not_found(ErrorCode::KeyNotFound, format!("{namespace}/{key} is not set"))
        })?;
    Ok(Json(StateEntry {
        namespace,
        key,
        value: hex::encode(&value),
        value_utf8: String::from_utf8(value).ok(),
    }))
}

async fn account(
    State(state): State<ApiState>,
    ApiPath(account): ApiPath<String>,
) -> Result<Json<AccountView>, ApiError> {
    let account = PublicKey::from_hex(&account)
        .map_err(|_| ApiError::bad_request(ErrorCode::InvalidPublicKey, "expected 64 hex characters"))?;
    let committed = DurableRead(&state.store);
    Ok(Json(AccountView {
        public_key: account,
        nonce: kubechain_ledger::state::nonce(&committed, &account),
        member: kubechain_ledger::state::member_of(&committed, &account),
        admin: kubechain_ledger::state::is_admin(&committed, &account),
    }))
}

/// Members and admins, read from one snapshot of the committed state.
async fn consortium(State(state): State<ApiState>) -> Result<Json<ConsortiumView>, ApiError> {
    use kubechain_ledger::state::{admin_entry, member_entry};
    let prefixes = [keys::MEMBER_PREFIX, keys::ADMIN_PREFIX];
    let listing = state.store.state_listing(&prefixes, MAX_CONSORTIUM_ENTRIES).map_err(storage_error)?;
    let [(members, more_members), (admins, more_admins)] = &listing.listings[..] else {
        return Err(ApiError::internal("the store listed other prefixes than asked"));
    };
    let corrupt = |what: &str| ApiError::internal(format!("a stored {what} entry does not decode"));
    let members = members
        .iter()
        .map(|(name, value)| member_entry(name, value).ok_or_else(|| corrupt("member")))
        .collect::<Result<_, _>>()?;
    let admins = admins
        .iter()
        .map(|(key, _)| admin_entry(key).ok_or_else(|| corrupt("admin")))
        .collect::<Result<_, _>>()?;
    Ok(Json(ConsortiumView {
        height: listing.height,
        members,
        admins,
        truncated: *more_members || *more_admins,
    }))
}

/// Committed state for account queries. Unlike the consensus actor's reader it never panics: a
/// failed read shows as an absent value, and the next query tries again.
struct DurableRead<'a>(&'a Store);

impl kubechain_ledger::StateView for DurableRead<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.state(key).ok().flatten()
    }
}

/// A node fetching blocks stays ready while it is at most this many blocks behind what it
/// fetches. Under load a validator often misses a block or two and fetches them back at once; it
/// still votes, and its readiness (its pod's, its place behind the client Service, a rolling
/// upgrade's next step) must not flap with every such fetch.
const READY_WITHIN_BLOCKS: u64 = 8;

fn readiness(state: &ApiState) -> (bool, usize, ConsensusStatus) {
    let consensus = state.status.borrow().clone();
    let peers = state.network.connected_peers();
    let quorum = ValidatorSet::new(consensus.validators.clone()).quorum();
    let behind = consensus.sync_target.map_or(0, |target| target.saturating_sub(consensus.height));
    let ready = !state.commands.is_closed() && is_ready(consensus.caught_up, behind, peers, quorum);
    (ready, peers, consensus)
}

/// Caught up, connected to a quorum, and fetching no more than the last few blocks.
fn is_ready(caught_up: bool, blocks_behind: u64, peers_connected: usize, quorum: usize) -> bool {
    caught_up && blocks_behind <= READY_WITHIN_BLOCKS && peers_connected + 1 >= quorum
}

async fn status(State(state): State<ApiState>) -> Json<NodeStatus> {
    let (ready, peers_connected, consensus) = readiness(&state);
    Json(NodeStatus {
        chain_id: state.chain_id.to_string(),
        genesis_hash: state.genesis_hash,
        node: state.node,
        role: consensus.role,
        height: consensus.height,
        last_block_hash: consensus.last_block_hash,
        view: consensus.view,
        primary: consensus.primary,
        in_view_change: consensus.in_view_change,
        syncing: consensus.sync_target.is_some(),
        sync_target: consensus.sync_target,
        caught_up: consensus.caught_up,
        stable_checkpoint: consensus.stable_checkpoint,
        validators: consensus.validators,
        consensus_params: Some(consensus.consensus_params),
        rules_since: Some(consensus.rules_since),
        scheduled: consensus.scheduled,
        peers_connected: peers_connected as u64,
        mempool_size: consensus.mempool_size as u64,
        ready,
    })
}

async fn healthz(State(state): State<ApiState>) -> Response {
    if state.commands.is_closed() {
        ApiError::unavailable("the consensus loop has stopped").into_response()
    } else {
        Json(Liveness { status: Live::Ok }).into_response()
    }
}

async fn readyz(State(state): State<ApiState>) -> Response {
    let (ready, peers_connected, consensus) = readiness(&state);
    let body = Readiness {
        ready,
        height: consensus.height,
        caught_up: consensus.caught_up,
        syncing: consensus.sync_target.is_some(),
        sync_target: consensus.sync_target,
        peers_connected: peers_connected as u64,
    };
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body)).into_response()
}

async fn metrics(State(state): State<ApiState>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openapi() -> serde_json::Value {
        serde_json::from_str(OPENAPI).expect("openapi.json is JSON")
    }

    #[test]
    fn the_openapi_document_lists_every_route() {
        let source = include_str!("mod.rs");
        let routes: Vec<&str> = source
            .lines()
            .filter_map(|line| line.trim().strip_prefix(".route(\""))
            .filter_map(|rest| rest.split('"').next())
            .collect();
        assert!(routes.len() >= 10, "found only {routes:?}");
        let paths = openapi()["paths"].as_object().unwrap().clone();
        for route in &routes {
            assert!(paths.contains_key(*route), "{route} is served but not documented");
        }
        for path in paths.keys() {
            assert!(routes.contains(&path.as_str()), "{path} is documented but not served");
        }
    }

    #[test]
    fn a_short_fetch_keeps_a_node_ready_a_long_one_does_not() {
        let quorum = 3;
        assert!(is_ready(true, 0, 2, quorum));
        assert!(is_ready(true, READY_WITHIN_BLOCKS, 2, quorum), "a block or two fetched back");
        assert!(!is_ready(true, READY_WITHIN_BLOCKS + 1, 2, quorum), "far behind");
        assert!(!is_ready(false, 0, 3, quorum), "never caught up since it started");
        assert!(!is_ready(true, 0, 1, quorum), "cut off from a quorum");
    }

    #[test]
    fn admission_errors_map_to_their_documented_status() {
        use kubechain_ledger::TxError;
        assert_eq!(ApiError::admission(&AdmitError::Full(5)).status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(ApiError::admission(&AdmitError::Duplicate(1)).status, StatusCode::CONFLICT);
        let replay = AdmitError::Invalid(TxError::Nonce { expected: 3, found: 2 });
        assert_eq!(
            (ApiError::admission(&replay).status, ApiError::admission(&replay).code),
            (StatusCode::CONFLICT, ErrorCode::BadNonce)
        );
        let stranger = AdmitError::Invalid(TxError::UnknownSender(kubechain_types::PublicKey([1; 32])));
        assert_eq!(ApiError::admission(&stranger).status, StatusCode::FORBIDDEN);
    }
}

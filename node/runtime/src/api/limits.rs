//! What keeps one client, or many, from taking the API down: its own accept loop with a cap on
//! connections and a timeout on request headers, and a guard on every request (the bearer token
//! if the node requires one, a cap on requests served at once, a timeout on the whole request).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use kubechain_api::ErrorCode;
use kubechain_types::Hash;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::error::ApiError;

/// Probes answer without a token and are never turned away: the kubelet must see the truth.
const OPEN_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// The limits of one node's API, from its config.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    /// SHA-256 of the bearer token every request but the probes must carry, if any.
    pub token_digest: Option<Hash>,
}

/// What the guard shares across requests.
#[derive(Clone, Debug)]
pub(crate) struct Guard {
    limits: Limits,
    requests: Arc<Semaphore>,
}

impl Guard {
    pub fn new(limits: Limits, max_concurrent_requests: usize) -> Guard {
        Guard { limits, requests: Arc::new(Semaphore::new(max_concurrent_requests)) }
    }
}

/// Checks the token, takes a request slot (or answers 503 at once: a queue would only add
/// latency under overload) and bounds the time to an answer (body reading included).
pub(crate) async fn guard(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    if OPEN_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    if let Some(expected) = guard.limits.token_digest
        && bearer_digest(&request) != Some(expected)
    {
        let error =
            ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, "a bearer token is required");
        return ([(header::WWW_AUTHENTICATE, "Bearer")], error).into_response();
    }
    let Ok(_slot) = guard.requests.try_acquire() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Overloaded,
            "the node is serving as many requests as it takes; retry shortly",
        )
        .into_response();
    };
    match tokio::time::timeout(guard.limits.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::RequestTimeout,
            format!("no answer within {} ms", guard.limits.request_timeout.as_millis()),
        )
        .into_response(),
    }
}

/// SHA-256 of the request's bearer token. Digests are compared, so the comparison's time says
/// nothing about the token.
fn bearer_digest(request: &Request) -> Option<Hash> {
    let value = request.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ")?.trim();
    Some(Hash::digest(token.as_bytes()))
}

/// Serves `router` on `listener` until `shutdown`: at most `max_connections` at once (more are
/// closed as they come), each closed when a request's headers take longer than `header_timeout`
/// (slow and idle clients cannot hold connections). In-flight requests finish on shutdown.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let mut open = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, say: back off a moment rather than spin.
                    tracing::warn!(%error, "API accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            continue; // dropped: closed at once
        };
        let service = TowerToHyperService::new(router.clone());
        let shutdown = shutdown.clone();
        let header_timeout = limits.header_timeout;
        open.spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
        // Reap finished connections so the set does not grow with every one ever served.
        while open.try_join_next().is_some() {}
    }
    while open.join_next().await.is_some() {}
}

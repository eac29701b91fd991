//! Talks to the validators' HTTP APIs, the operator's only window on the chain: how each one
//! is (`GET /v1/status`), and, for changes on chain, the members and admins, the admin
//! account's nonce and the submission of admin transactions.

use std::time::Duration;

use kubechain_api::{AccountView, ConsortiumView};
use kubechain_types::{PublicKey, Transaction};

use crate::build::config::API_PORT;
use crate::health::NodeStatus;

/// How long one validator may take to answer before it counts as not answering.
const STATUS_TIMEOUT: Duration = Duration::from_secs(3);

/// Where a validator's API is reached. The template's placeholders are `{chain}` (the
/// Blockchain's name), `{namespace}` and `{index}`; the default is the validator's pod by its
/// DNS name under the headless Service (which lists pods that are not ready too). The peer
/// Services carry no API port.
#[derive(Clone, Debug)]
pub struct NodeUrls {
    template: String,
}

impl NodeUrls {
    pub const DEFAULT_TEMPLATE: &'static str =
        "http://{chain}-validator-{index}-0.{chain}-validators.{namespace}.svc:8080";

    pub fn new(template: impl Into<String>) -> NodeUrls {
        NodeUrls { template: template.into() }
    }

    pub fn url(&self, chain: &str, namespace: &str, index: u32) -> String {
        self.template
            .replace("{chain}", chain)
            .replace("{namespace}", namespace)
            .replace("{index}", &index.to_string())
    }
}

/// A client for validator APIs, with a short timeout. No pooled connections: every poll dials the
/// Service afresh, so a connection made before the Service was routed (or to a pod since
/// replaced) is never reused.
pub fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(STATUS_TIMEOUT)
        .connect_timeout(STATUS_TIMEOUT)
        .pool_max_idle_per_host(0)
        .build()
}

/// The validator's status, or `None` when it does not answer, or answers for another chain or
/// genesis (a misrouted Service must not count as a ready validator).
pub async fn node_status(
    http: &reqwest::Client,
    base: &str,
    chain_id: &str,
    genesis_hash: &str,
) -> Option<NodeStatus> {
    match read_json(http, &format!("{base}/v1/status"), MAX_STATUS_BYTES).await {
        Ok(status) => of_this_chain(status, base, chain_id, genesis_hash),
        Err(error) => {
            tracing::debug!(%base, %error, "a validator did not answer");
            None
        }
    }
}

/// The status of a validator in a member cluster, through that cluster's API server (the pod
/// proxy to its API port): the operator needs no route to member pods. Bounded like
/// [`node_status`]; `None` as for it.
pub async fn node_status_via_proxy(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
    chain_id: &str,
    genesis_hash: &str,
) -> Option<NodeStatus> {
    let path = format!("/api/v1/namespaces/{namespace}/pods/{pod}:{API_PORT}/proxy/v1/status");
    let request = http::Request::get(&path).body(Vec::new()).ok()?;
    match tokio::time::timeout(STATUS_TIMEOUT, client.request::<NodeStatus>(request)).await {
        Ok(Ok(status)) => of_this_chain(status, &path, chain_id, genesis_hash),
        Ok(Err(error)) => {
            tracing::debug!(%path, error = %error_chain(&error), "a validator did not answer");
            None
        }
        Err(_) => {
            tracing::debug!(%path, "a validator did not answer in time");
            None
        }
    }
}

/// A status only counts for the chain it is about: a misrouted Service must not count as a
/// ready validator.
fn of_this_chain(status: NodeStatus, base: &str, chain_id: &str, genesis_hash: &str) -> Option<NodeStatus> {
    if status.chain_id != chain_id || status.genesis_hash.to_hex() != genesis_hash {
        tracing::warn!(%base, chain_id = %status.chain_id, "a validator answered for another chain or genesis");
        return None;
    }
    Some(status)
}

/// The last committed nonce of `account` (the next transaction carries it + 1), or `None` when
/// the validator does not answer.
pub async fn account_nonce(http: &reqwest::Client, base: &str, account: &PublicKey) -> Option<u64> {
    match read_json::<AccountView>(http, &format!("{base}/v1/accounts/{account}"), MAX_ACCOUNT_BYTES).await {
        Ok(view) => Some(view.nonce),
        Err(error) => {
            tracing::debug!(%base, %error, "a validator did not say the admin's nonce");
            None
        }
    }
}

/// Largest answers read from a validator: a status names at most 64 validators twice; an account
/// is a few fields; 4096 members with 32 keys each, in hex, fit in a consortium answer.
const MAX_STATUS_BYTES: usize = 64 << 10;
const MAX_ACCOUNT_BYTES: usize = 4 << 10;
const MAX_CONSORTIUM_BYTES: usize = 16 << 20;

/// The members and admins on chain, or `None` when the validator does not answer, or answers
/// with more bytes than any consortium takes or with something else.
pub async fn consortium(http: &reqwest::Client, base: &str) -> Option<ConsortiumView> {
    match read_json(http, &format!("{base}/v1/consortium"), MAX_CONSORTIUM_BYTES).await {
        Ok(view) => Some(view),
        Err(error) => {
            tracing::debug!(%base, %error, "a validator did not list the consortium");
            None
        }
    }
}

/// A validator's JSON answer to a GET, read only up to `max` bytes: a validator may be hostile,
/// and the operator must not hold whatever it sends in memory.
async fn read_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    max: usize,
) -> Result<T, String> {
    let mut response =
        http.get(url).send().await.and_then(|r| r.error_for_status()).map_err(|e| error_chain(&e))?;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| error_chain(&e))? {
        if body.len() + chunk.len() > max {
            return Err(format!("the answer exceeds {max} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|error| format!("the answer does not parse: {error}"))
}

/// What a validator did with a submitted transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    Accepted,
    /// The same transaction, or another with its nonce, already waits (409).
    AlreadyWaiting,
}

/// Submits `transaction`; `Err` says why the validator did not take it.
pub async fn submit(
    http: &reqwest::Client,
    base: &str,
    transaction: &Transaction,
) -> Result<Submitted, String> {
    let mut response = http
        .post(format!("{base}/v1/transactions"))
        .json(transaction)
        .send()
        .await
        .map_err(|error| error_chain(&error))?;
    match response.status().as_u16() {
        200..=299 => Ok(Submitted::Accepted),
        409 => Ok(Submitted::AlreadyWaiting),
        code => {
            // Only the first chunk: a misbehaving node must not make the operator read a
            // large body to report one refusal.
            let head = response.chunk().await.ok().flatten().unwrap_or_default();
            let text = String::from_utf8_lossy(&head[..head.len().min(300)]).into_owned();
            Err(format!("HTTP {code}: {text}"))
        }
    }
}

/// An error with its causes ("error sending request: connection refused"), for logs.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_fill_the_template() {
        let urls = NodeUrls::new(NodeUrls::DEFAULT_TEMPLATE);
        assert_eq!(
            urls.url("ledger", "prod", 2),
            "http://ledger-validator-2-0.ledger-validators.prod.svc:8080"
        );
        assert_eq!(NodeUrls::new("http://127.0.0.1:90{index}").url("x", "y", 3), "http://127.0.0.1:903");
    }
}

//! A small blocking client of the node's HTTP API, for the CLI's one-shot commands.

use std::time::{Duration, Instant};

pub use kubechain_api::TransactionStatus as TxStatus;
use kubechain_api::{AccountView, NodeStatus, Submitted};
use kubechain_types::{Hash, PublicKey, Transaction};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// An error answer (kubechain-api's `ErrorBody`) with its code kept as text.
#[derive(Debug, Deserialize)]
struct RawErrorBody {
    code: String,
    message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot set up the HTTP client: {0}")]
    Setup(reqwest::Error),
    #[error("cannot reach {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("node at {url} did not answer within {seconds} s")]
    NoAnswer { url: String, seconds: u64 },
    #[error("{url} answered {status}: {code}: {message}")]
    Api { url: String, status: u16, code: String, message: String },
    #[error("{url}: unexpected answer: {detail}")]
    Unexpected { url: String, detail: String },
    #[error("transaction {hash} did not commit within {seconds} s (last status: {status})")]
    Timeout { hash: Hash, seconds: u64, status: String },
}

#[derive(Debug)]
pub struct Client {
    base: String,
    http: reqwest::blocking::Client,
    timeouts: ClientSettings,
}

/// How a command reaches a node: how long it waits to connect and for each whole answer (without
/// them a command sent to a paused node would wait for ever), and the bearer token, if the node's
/// API requires one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ClientSettings {
    pub connect: Duration,
    pub request: Duration,
    pub token: Option<&'static str>,
}

impl std::fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token never shows.
        f.debug_struct("ClientSettings")
            .field("connect", &self.connect)
            .field("request", &self.request)
            .field("token", &self.token.map(|_| "<set>"))
            .finish()
    }
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings { connect: Duration::from_secs(5), request: Duration::from_secs(30), token: None }
    }
}

impl Client {
    pub fn new(base: &str, timeouts: ClientSettings) -> Result<Client, ClientError> {
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.request)
            .build()
            .map_err(ClientError::Setup)?;
        Ok(Client { base: base.trim_end_matches('/').to_string(), http, timeouts })
    }

    /// A failed exchange with the node: out of time, or refused.
    fn unreachable(&self, url: &str, source: reqwest::Error) -> ClientError {
        if !source.is_timeout() {
            return ClientError::Unreachable { url: url.to_string(), source };
        }
        let waited = if source.is_connect() { self.timeouts.connect } else { self.timeouts.request };
        ClientError::NoAnswer { url: self.base.clone(), seconds: waited.as_secs() }
    }

    /// Sends `request`; a success answer is read as a `T`, an error answer as the node's
    /// `{code, message}`.
    fn call<T: DeserializeOwned>(
        &self,
        request: reqwest::blocking::RequestBuilder,
        url: &str,
    ) -> Result<T, ClientError> {
        let request = match self.timeouts.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().map_err(|source| self.unreachable(url, source))?;
        let status = response.status();
        let body = response.bytes().map_err(|source| self.unreachable(url, source))?;
        if !status.is_success() {
            // The code as the node wrote it, even one newer than this build's `ErrorCode`.
            let (code, message) = match serde_json::from_slice::<RawErrorBody>(&body) {
                Ok(error) => (error.code, error.message),
                Err(_) => ("unknown".to_string(), String::from_utf8_lossy(&body).into_owned()),
            };
            return Err(ClientError::Api { url: url.to_string(), status: status.as_u16(), code, message });
        }
        serde_json::from_slice(&body)
            .map_err(|error| ClientError::Unexpected { url: url.to_string(), detail: error.to_string() })
    }

    /// GET `path`, read as a `T` (a `serde_json::Value` to pass an answer on as it came).
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        self.call(self.http.get(&url), &url)
    }

    pub fn submit(&self, transaction: &Transaction) -> Result<Hash, ClientError> {
        let url = format!("{}/v1/transactions", self.base);
        let answer: Submitted = self.call(self.http.post(&url).json(transaction), &url)?;
        Ok(answer.hash)
    }

    pub fn status(&self) -> Result<NodeStatus, ClientError> {
        self.get("/v1/status")
    }

    pub fn tx_status(&self, hash: &Hash) -> Result<TxStatus, ClientError> {
        self.get(&format!("/v1/transactions/{hash}"))
    }

    /// The account's last committed nonce.
    pub fn nonce(&self, account: &PublicKey) -> Result<u64, ClientError> {
        let answer: AccountView = self.get(&format!("/v1/accounts/{account}"))?;
        Ok(answer.nonce)
    }

    /// Polls until the transaction commits (or is rejected, or `timeout` passes).
    pub fn wait_committed(&self, hash: &Hash, timeout: Duration) -> Result<TxStatus, ClientError> {
        let started = Instant::now();
        loop {
            let status = match self.tx_status(hash) {
                // A node that has not heard of it yet (gossip in flight): keep asking.
                Err(ClientError::Api { status: 404, .. }) if started.elapsed() < timeout => {
                    TxStatus::Pending { hash: *hash }
                }
                other => other?,
            };
            match &status {
                TxStatus::Pending { .. } if started.elapsed() < timeout => {}
                TxStatus::Pending { .. } => {
                    return Err(ClientError::Timeout {
                        hash: *hash,
                        seconds: timeout.as_secs(),
                        status: "pending".into(),
                    });
                }
                _ => return Ok(status),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

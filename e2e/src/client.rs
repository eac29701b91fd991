//! Talking to the validators' HTTP API with the node's own answer types (`kubechain-api`), and the
//! accounts that sign the transactions sent.

use std::time::Duration;

use kubechain_api::{BlockView, ErrorBody, ErrorCode, NodeStatus, TransactionStatus};
use kubechain_types::{Hash, Operation, SigningKey, Transaction, TxBody};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::poll::eventually;
use crate::processes::{CHAIN_ID, Cluster};

impl Cluster {
    /// GET `path` of validator `index`, the body as JSON (to check answers as they are written).
    pub fn get(&self, index: usize, path: &str) -> Option<(u16, Value)> {
        get_json(&self.http, &format!("{}{path}", self.validators[index].api()))
    }

    /// GET `path` of validator `index`, the body read as a `T`.
    pub fn get_as<T: DeserializeOwned>(&self, index: usize, path: &str) -> Option<(u16, T)> {
        get_as(&self.http, &format!("{}{path}", self.validators[index].api()))
    }

    /// The value of one series of validator `index`'s /metrics, e.g.
    /// `kubechain_height` or `kubechain_messages_total{direction="in",type="state_response"}`.
    pub fn metric(&self, index: usize, series: &str) -> Option<f64> {
        let text = self.metrics(index)?;
        text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// Validator `index`'s /metrics text.
    pub fn metrics(&self, index: usize) -> Option<String> {
        let url = format!("{}/metrics", self.validators[index].api());
        self.http.get(url).send().ok()?.text().ok()
    }

    pub fn status(&self, index: usize) -> Option<NodeStatus> {
        self.get_as(index, "/v1/status").filter(|(code, _)| *code == 200).map(|(_, status)| status)
    }

    pub fn height(&self, index: usize) -> Option<u64> {
        self.status(index).map(|status| status.height)
    }

    /// Index of the validator the given node considers primary.
    pub fn primary_seen_by(&self, index: usize) -> usize {
        let primary = self.status(index).expect("status").primary;
        self.validators.iter().position(|v| v.key == primary).unwrap()
    }

    /// Waits until every running validator has committed at least `height`.
    pub fn wait_height(&self, height: u64, timeout: Duration) {
        for index in self.running() {
            eventually(timeout, &format!("validator {index} to reach height {height}"), || {
                self.height(index).filter(|h| *h >= height)
            });
        }
    }

    pub fn post_raw(&self, index: usize, body: Vec<u8>, content_type: &str) -> (u16, Value) {
        let url = format!("{}/v1/transactions", self.validators[index].api());
        let response = self.http.post(url).header("content-type", content_type).body(body).send().unwrap();
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }

    pub fn submit(&self, index: usize, tx: &Transaction) -> (u16, Value) {
        self.post_raw(index, serde_json::to_vec(tx).unwrap(), "application/json")
    }

    /// The block hash at each height 1..=`height` on validator `index`.
    pub fn block_hashes(&self, index: usize, height: u64) -> Vec<Hash> {
        (1..=height)
            .map(|h| {
                let (code, block) = self.get(index, &format!("/v1/blocks/{h}")).expect("block");
                assert_eq!(code, 200, "validator {index} has no block {h}: {block}");
                serde_json::from_value::<BlockView>(block).unwrap().hash
            })
            .collect()
    }

    /// Waits for every running validator to reach the same height, then checks that all of
    /// them hold identical block hashes at every height. Returns that height.
    pub fn assert_converged(&self, timeout: Duration) -> u64 {
        let running = self.running();
        let height = eventually(timeout, "all running validators at one height", || {
            let heights: Vec<u64> = running.iter().map(|i| self.height(*i)).collect::<Option<_>>()?;
            let first = heights[0];
            heights.iter().all(|h| *h == first).then_some(first)
        });
        let reference = self.block_hashes(running[0], height);
        for index in &running[1..] {
            assert_eq!(
                self.block_hashes(*index, height),
                reference,
                "validator {index} differs from {}",
                running[0]
            );
        }
        height
    }
}

/// A client account that signs transactions with increasing nonces.
#[derive(Debug)]
pub struct Account {
    pub key: SigningKey,
    pub chain_id: String,
    pub next_nonce: u64,
}

impl Account {
    /// An account on the harness's own chain ([`CHAIN_ID`]).
    pub fn new(key: SigningKey) -> Account {
        Account::on_chain(key, CHAIN_ID)
    }

    pub fn on_chain(key: SigningKey, chain_id: &str) -> Account {
        Account { key, chain_id: chain_id.to_string(), next_nonce: 1 }
    }

    pub fn put(&mut self, key: &str, value: &[u8]) -> Transaction {
        self.sign(vec![Operation::Put { key: key.to_string(), value: value.to_vec() }])
    }

    pub fn sign(&mut self, operations: Vec<Operation>) -> Transaction {
        let body = TxBody {
            chain_id: self.chain_id.clone(),
            sender: self.key.public_key(),
            nonce: self.next_nonce,
            operations,
        };
        self.next_nonce += 1;
        Transaction::new(body, &self.key)
    }
}

/// A transaction a node acknowledged as committed, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledged {
    pub hash: Hash,
    pub height: u64,
    pub index: u32,
    pub transaction: Transaction,
}

impl Cluster {
    /// Asks validator `index` about `hash`; `Some` once it reports it committed.
    pub fn committed(&self, index: usize, hash: &Hash) -> Option<Acknowledged> {
        committed_at(&self.http, &self.validators[index].api(), hash)
    }

    /// Checks that every acknowledged transaction is on every running validator, identical.
    pub fn assert_all_present(&self, acknowledged: &[Acknowledged]) {
        for index in self.running() {
            for ack in acknowledged {
                let found = self.committed(index, &ack.hash);
                assert_eq!(
                    found.as_ref(),
                    Some(ack),
                    "validator {index} lost or changed transaction {}",
                    ack.hash
                );
            }
        }
    }
}

/// A client for validators behind Services: 10 s per request, and no pooled connections, so a
/// connection to a pod since replaced (or made before the Service routed) is never reused.
pub fn fresh_connections() -> reqwest::blocking::Client {
    connections(Duration::from_secs(10))
}

/// Like `fresh_connections`, for a sampler: 2 s per request, so a request routed to a pod that
/// just went away costs one sample rather than the moments the sampler is there to see.
pub fn sampling_connections() -> reqwest::blocking::Client {
    connections(Duration::from_secs(2))
}

fn connections(timeout: Duration) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(timeout)
        .pool_max_idle_per_host(0)
        .build()
        .expect("an HTTP client")
}

/// GET `url`: status and JSON body, or `None` if the node did not answer (it may be dead).
pub fn get_json(http: &reqwest::blocking::Client, url: &str) -> Option<(u16, Value)> {
    get_as(http, url)
}

/// GET `url`: status and body read as a `T`, or `None` if the node did not answer (it may be
/// dead) or answered something else.
pub fn get_as<T: DeserializeOwned>(http: &reqwest::blocking::Client, url: &str) -> Option<(u16, T)> {
    let response = http.get(url).send().ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().ok()?))
}

/// The code of an error answer (`{code, message}`), or `None` if `body` is no error.
pub fn error_code(body: &Value) -> Option<ErrorCode> {
    serde_json::from_value::<ErrorBody>(body.clone()).ok().map(|error| error.code)
}

/// Submits `tx` to the node at `api`; the HTTP status, or `None` if the node did not answer.
pub fn submit_to(http: &reqwest::blocking::Client, api: &str, tx: &Transaction) -> Option<u16> {
    let url = format!("{api}/v1/transactions");
    let response = http.post(url).json(tx).send().ok()?;
    Some(response.status().as_u16())
}

/// Asks the node at `api` about `hash`; `Some` once it reports it committed.
pub fn committed_at(http: &reqwest::blocking::Client, api: &str, hash: &Hash) -> Option<Acknowledged> {
    match get_as(http, &format!("{api}/v1/transactions/{hash}"))? {
        (200, TransactionStatus::Committed { height, index, receipt, .. }) => {
            Some(Acknowledged { hash: *hash, height, index, transaction: receipt.transaction })
        }
        _ => None,
    }
}

//! Asks each validator's HTTP API how it is (`GET /v1/status`): the operator's only window on
//! the chain.

use std::time::Duration;

use crate::health::NodeStatus;

/// How long one validator may take to answer before it counts as not answering.
const STATUS_TIMEOUT: Duration = Duration::from_secs(3);

/// Where a validator's API is reached. The template's placeholders are `{chain}` (the
/// Blockchain's name), `{namespace}` and `{index}`; the default is the validator's Service.
#[derive(Clone, Debug)]
pub struct NodeUrls {
    template: String,
}

impl NodeUrls {
    pub const DEFAULT_TEMPLATE: &'static str = "http://{chain}-validator-{index}.{namespace}.svc:8080";

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

/// A client for validator APIs, with a short timeout.
pub fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder().timeout(STATUS_TIMEOUT).connect_timeout(STATUS_TIMEOUT).build()
}

/// The validator's status, or `None` when it does not answer, or answers for another chain or
/// genesis (a misrouted Service must not count as a ready validator).
pub async fn node_status(
    http: &reqwest::Client,
    base: &str,
    chain_id: &str,
    genesis_hash: &str,
) -> Option<NodeStatus> {
    let response = http.get(format!("{base}/v1/status")).send().await.ok()?.error_for_status().ok()?;
    let status: NodeStatus = response.json().await.ok()?;
    if status.chain_id != chain_id || status.genesis_hash != genesis_hash {
        tracing::warn!(%base, chain_id = %status.chain_id, "a validator answered for another chain or genesis");
        return None;
    }
    Some(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_fill_the_template() {
        let urls = NodeUrls::new(NodeUrls::DEFAULT_TEMPLATE);
        assert_eq!(urls.url("ledger", "prod", 2), "http://ledger-validator-2.prod.svc:8080");
        assert_eq!(NodeUrls::new("http://127.0.0.1:90{index}").url("x", "y", 3), "http://127.0.0.1:903");
    }
}

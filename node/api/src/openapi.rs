//! The OpenAPI 3.1 document of the node API, built from the response types' JSON Schemas (2020-12,
//! the dialect OpenAPI 3.1 uses) and the table of routes below. The committed copy
//! (`node/api/openapi.json`, served by the node at `/v1/openapi.json`) is checked against it.

use kubechain_types::{Hash, Transaction};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Value, json};

use crate::{
    AccountView, BatchVerdicts, BlockAnnouncement, BlockView, ConsortiumView, ErrorBody, Liveness,
    NodeStatus, Readiness, StateEntry, Submitted, TransactionStatus,
};

/// The document as committed and served.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// The command that rewrites the committed document from the types.
pub const REGENERATE_COMMAND: &str =
    "cargo run --release -p kubechain-api --bin openapigen > node/api/openapi.json";

/// Transactions accepted in one request, at most.
pub const MAX_BATCH: usize = 20_000;

/// The document, generated: what `openapigen` prints.
pub fn openapi_json() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}

fn document() -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|settings| {
            settings.definitions_path = "/components/schemas".into();
            settings.meta_schema = None;
        })
        .for_serialize()
        .into_generator();
    let mut schema = Schemas(&mut generator);
    let error = json!({ "$ref": "#/components/responses/Error" });
    let hash = schema.of::<Hash>();
    let transaction = schema.of::<Transaction>();
    let paths = json!({
        "/v1/transactions": { "post": {
            "summary": "Submit one transaction or a batch",
            "description": format!("JSON: one Transaction (answered 202 or an error) or an array of them (answered 200 with one verdict per transaction; 429 when every one was refused for a full mempool). application/octet-stream: the canonical encoding (docs/encoding.md) of a list of transactions, answered like a JSON array. At most {MAX_BATCH} transactions per request."),
            "requestBody": {
                "required": true,
                "content": {
                    "application/json": { "schema": { "oneOf": [
                        transaction,
                        { "type": "array", "items": transaction },
                    ] } },
                    "application/octet-stream": { "schema": { "type": "string", "format": "binary" } },
                },
            },
            "responses": {
                "202": json_response("Accepted into the mempool", schema.of::<Submitted>()),
                "200": json_response("Batch verdicts", schema.of::<BatchVerdicts>()),
                "400": error, "403": error, "409": error, "413": error, "415": error, "429": error,
                "503": error,
            },
        } },
        "/v1/transactions/{hash}": { "get": {
            "summary": "Status of a transaction; once committed, an offline-verifiable receipt",
            "parameters": [path_parameter("hash", hash.clone())],
            "responses": {
                "200": json_response("pending, committed (with height, index and receipt) or rejected (with the error)", schema.of::<TransactionStatus>()),
                "400": error, "404": error,
            },
        } },
        "/v1/blocks/{id}": { "get": {
            "summary": "A committed block with its commit certificate, by height, by hash, or \"latest\"",
            "parameters": [path_parameter("id", json!({ "type": "string" }))],
            "responses": {
                "200": json_response("The block", schema.of::<BlockView>()),
                "400": error, "404": error,
            },
        } },
        "/v1/stream/blocks": { "get": {
            "summary": "Server-sent events: one `block` event per newly committed block",
            "description": "Each `block` event's data is a BlockAnnouncement (JSON). A `lagged` event's data is how many blocks a slow reader skipped; it can fetch them by height.",
            "parameters": [{
                "name": "transactions",
                "in": "query",
                "required": false,
                "schema": { "type": "boolean" },
                "description": "include each block's transaction hashes",
            }],
            "responses": {
                "200": {
                    "description": "text/event-stream of `block` events (data: BlockAnnouncement) and `lagged` events",
                    "content": { "text/event-stream": {
                        "schema": { "type": "string" },
                        // OpenAPI 3.1 cannot type the events of a stream; this extension names the schema.
                        "x-block-event-data": schema.of::<BlockAnnouncement>(),
                    } },
                },
                "400": error,
                "503": error,
            },
        } },
        "/v1/state/{namespace}/{key}": { "get": {
            "summary": "A key in a member's namespace, as of the last committed block",
            "parameters": [
                path_parameter("namespace", json!({ "type": "string" })),
                path_parameter("key", json!({ "type": "string" })),
            ],
            "responses": {
                "200": json_response("The value", schema.of::<StateEntry>()),
                "400": error, "404": error,
            },
        } },
        "/v1/accounts/{public_key}": { "get": {
            "summary": "An account's committed nonce, its member and whether it is an admin",
            "parameters": [path_parameter("public_key", json!({ "type": "string" }))],
            "responses": {
                "200": json_response("The account", schema.of::<AccountView>()),
                "400": error,
            },
        } },
        "/v1/consortium": { "get": {
            "summary": "Members and admins as of the last committed block",
            "responses": { "200": json_response("The consortium", schema.of::<ConsortiumView>()) },
        } },
        "/v1/status": { "get": {
            "summary": "Node status",
            "responses": { "200": json_response("The node's view of the chain", schema.of::<NodeStatus>()) },
        } },
        "/v1/openapi.json": { "get": {
            "summary": "This document",
            "responses": { "200": json_response("OpenAPI 3.1", json!({ "type": "object" })) },
        } },
        "/healthz": { "get": {
            "summary": "Liveness: the consensus loop runs",
            "responses": { "200": json_response("ok", schema.of::<Liveness>()), "503": error },
        } },
        "/readyz": { "get": {
            "summary": "Readiness: caught up with a quorum, connected to a quorum, and not syncing more than the last 8 blocks",
            "responses": {
                "200": json_response("ready", schema.of::<Readiness>()),
                "503": json_response("not ready", schema.of::<Readiness>()),
            },
        } },
        "/metrics": { "get": {
            "summary": "Prometheus metrics, prefixed kubechain_",
            "responses": { "200": {
                "description": "text exposition format",
                "content": { "text/plain": { "schema": { "type": "string" } } },
            } },
        } },
    });
    let error_body = schema.of::<ErrorBody>();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "kubechain node API",
            "version": "v1",
            "description": "HTTP API of a kubechain validator. Errors are JSON {code, message}; the codes are stable and listed in ErrorCode. Hashes and keys are lowercase hex. A node may require a bearer token (its api_token_file) on every route but /healthz and /readyz, answering 401 `unauthorized` without it. Any route may answer 503 `overloaded` when the node serves as many requests as it takes at once, and 408 `request_timeout` when a request does not finish in time. Generated from the kubechain-api crate; do not edit.",
        },
        // Reads are open unless the node is configured with a token.
        "security": [{}, { "bearer": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "responses": { "Error": json_response("An error", error_body) },
            "schemas": generator.take_definitions(true),
        },
    })
}

/// Hands out `$ref`s to named schemas, collecting their definitions in the generator.
struct Schemas<'a>(&'a mut SchemaGenerator);

impl Schemas<'_> {
    fn of<T: JsonSchema>(&mut self) -> Value {
        self.0.subschema_for::<T>().to_value()
    }
}

fn json_response(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

fn path_parameter(name: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": schema })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn committed() -> Value {
        serde_json::from_str(OPENAPI).expect("openapi.json is JSON")
    }

    #[test]
    fn committed_openapi_matches_the_types() {
        // The manifest dir at run time: a cached test binary may come from another checkout.
        let manifest_dir: std::path::PathBuf = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
        let path = manifest_dir.join("openapi.json");
        assert!(
            OPENAPI == openapi_json(),
            "{} is out of date with the kubechain-api types; regenerate it from the workspace root with:\n  {}",
            path.display(),
            REGENERATE_COMMAND
        );
    }

    #[test]
    fn the_document_lists_exactly_the_error_codes() {
        let variants = committed()["components"]["schemas"]["ErrorCode"]["oneOf"].clone();
        let mut listed: Vec<String> = variants
            .as_array()
            .expect("ErrorCode lists its codes")
            .iter()
            .map(|variant| variant["const"].as_str().expect("a code").to_string())
            .collect();
        listed.sort();
        let mut codes: Vec<String> = ErrorCode::ALL.iter().map(|code| code.as_str().to_string()).collect();
        codes.sort();
        assert_eq!(listed, codes);
    }

    #[test]
    fn every_schema_reference_resolves() {
        let document = committed();
        let mut references = Vec::new();
        collect_references(&document, &mut references);
        assert!(references.len() > 20, "found only {references:?}");
        for reference in references {
            let pointer = reference.strip_prefix('#').expect("a local reference");
            assert!(document.pointer(pointer).is_some(), "{reference} points nowhere");
        }
    }

    #[test]
    fn a_block_is_described_field_by_field() {
        let document = committed();
        let schemas = &document["components"]["schemas"];
        let block = &schemas["BlockView"]["properties"];
        for field in ["height", "hash", "header", "transactions", "certificate"] {
            assert!(block.get(field).is_some(), "BlockView lacks {field}: {block}");
        }
        assert!(schemas["Header"]["properties"].get("state_root").is_some());
    }

    fn collect_references(value: &Value, references: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref") {
                    references.push(reference.clone());
                }
                map.values().for_each(|value| collect_references(value, references));
            }
            Value::Array(items) => items.iter().for_each(|value| collect_references(value, references)),
            _ => {}
        }
    }
}

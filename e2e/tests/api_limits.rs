//! The API against hostile or careless clients, on a real node process: slow and idle
//! connections are cut, connections, concurrent requests and block streams are capped, a request
//! must finish in time, and an optional bearer token guards everything but the probes.

// A broken connection fails the test where it happens.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use kubechain_api::ErrorCode;
use kubechain_e2e::client::error_code;
use kubechain_e2e::processes::Cluster;
use kubechain_node::config::NodeConfig;
use kubechain_types::ConsensusParams;

/// One validator, started with `change` applied to its config.
fn node(change: impl FnOnce(&mut NodeConfig)) -> Cluster {
    let mut cluster = Cluster::create(1, 1, ConsensusParams::default());
    cluster.configure(0, change);
    cluster.start_all();
    cluster
}

fn address(cluster: &Cluster) -> std::net::SocketAddr {
    cluster.validators[0].listening.expect("running").api
}

/// Reads until the server closes the connection; how long after `since` that was. (The read
/// timeout only bounds a test that fails: the close itself is awaited.)
fn closed_after(stream: &mut TcpStream, since: Instant, bound: Duration) -> Duration {
    stream.set_read_timeout(Some(bound)).unwrap();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return since.elapsed(),
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => return since.elapsed(),
            Err(error) => panic!("the connection stayed open for {:?}: {error}", since.elapsed()),
        }
    }
}

/// A raw HTTP/1.1 request on `stream`; the status code of the answer.
fn status_of(stream: &mut TcpStream, request: &str) -> u16 {
    stream.write_all(request.as_bytes()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while !answer.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = stream.read(&mut buffer).expect("an answer");
        assert!(read > 0, "closed without an answer");
        answer.extend_from_slice(&buffer[..read]);
    }
    let text = String::from_utf8_lossy(&answer);
    text.split(' ').nth(1).and_then(|code| code.parse().ok()).expect("a status line")
}

#[test]
fn slow_and_idle_clients_cannot_hold_connections() {
    let cluster = node(|config| config.api_header_timeout_ms = 500);
    // Headers that never end (a slowloris), and a connection that never says anything.
    let since = Instant::now();
    let mut slow = TcpStream::connect(address(&cluster)).unwrap();
    slow.write_all(b"GET /v1/status HTTP/1.1\r\nHost: node\r\nX-Slow: ").unwrap();
    let mut idle = TcpStream::connect(address(&cluster)).unwrap();
    for stream in [&mut slow, &mut idle] {
        let after = closed_after(stream, since, Duration::from_secs(20));
        assert!(after >= Duration::from_millis(400), "closed after {after:?}, before the timeout");
    }
    // An ordinary client is served.
    let mut client = TcpStream::connect(address(&cluster)).unwrap();
    assert_eq!(status_of(&mut client, "GET /healthz HTTP/1.1\r\nHost: node\r\n\r\n"), 200);
}

#[test]
fn connections_beyond_the_cap_are_closed_at_once() {
    let cluster = node(|config| config.api_max_connections = 4);
    // Four connections the node serves and keeps open. (The start-up probes' connections may
    // still hold slots for a moment: a connection closed at once is simply tried again.)
    let mut held: Vec<TcpStream> = (0..4)
        .map(|_| {
            kubechain_e2e::poll::eventually(Duration::from_secs(20), "a connection slot", || {
                let mut stream = TcpStream::connect(address(&cluster)).ok()?;
                stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: node\r\n\r\n").ok()?;
                stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                let mut buffer = [0u8; 512];
                let read = stream.read(&mut buffer).ok()?;
                (read > 0 && buffer.starts_with(b"HTTP/1.1 200")).then_some(stream)
            })
        })
        .collect();
    let since = Instant::now();
    let mut fifth = TcpStream::connect(address(&cluster)).unwrap();
    let after = closed_after(&mut fifth, since, Duration::from_secs(20));
    assert!(after < Duration::from_secs(5), "the fifth connection was held {after:?}");
    // One of the four goes away: a new client gets in.
    drop(held.pop());
    kubechain_e2e::poll::eventually(Duration::from_secs(20), "a freed connection slot", || {
        let mut stream = TcpStream::connect(address(&cluster)).ok()?;
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: node\r\n\r\n").ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut buffer = [0u8; 64];
        let read = stream.read(&mut buffer).ok()?;
        (read > 0 && buffer.starts_with(b"HTTP/1.1 200")).then_some(())
    });
}

#[test]
fn requests_beyond_the_concurrency_cap_get_503_and_slow_bodies_408() {
    let cluster = node(|config| {
        config.api_max_concurrent_requests = 2;
        // Long enough that a loaded machine still sees the slots taken before the timeout frees
        // them (3 s once was not).
        config.api_request_timeout_ms = 10_000;
    });
    // Two submissions whose bodies never finish arriving hold both request slots.
    let mut slow_bodies: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut stream = TcpStream::connect(address(&cluster)).unwrap();
            let head = "POST /v1/transactions HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\n\
                        Content-Length: 1000\r\n\r\n{\"body\":";
            stream.write_all(head.as_bytes()).unwrap();
            stream
        })
        .collect();
    let overloaded = kubechain_e2e::poll::eventually(Duration::from_secs(20), "both slots taken", || {
        let (code, body) = cluster.get(0, "/v1/status")?;
        (code == 503).then_some(body)
    });
    assert_eq!(error_code(&overloaded), Some(ErrorCode::Overloaded));
    // The probes are never turned away.
    assert_eq!(cluster.get(0, "/healthz").map(|(code, _)| code), Some(200));
    // The slow bodies are answered 408 once the request timeout passes, which frees the slots.
    for stream in &mut slow_bodies {
        assert_eq!(status_of(stream, ""), 408);
    }
    assert_eq!(cluster.get(0, "/v1/status").map(|(code, _)| code), Some(200));
}

#[test]
fn block_streams_are_capped() {
    let cluster = node(|config| config.api_max_streams = 2);
    let url = format!("{}/v1/stream/blocks", cluster.validators[0].api());
    let http = reqwest::blocking::Client::new();
    let open: Vec<reqwest::blocking::Response> =
        (0..2).map(|_| http.get(&url).send().expect("a stream")).collect();
    assert!(open.iter().all(|response| response.status() == 200));
    let refused = http.get(&url).send().unwrap();
    assert_eq!(refused.status(), 503);
    let body: serde_json::Value = refused.json().unwrap();
    assert_eq!(error_code(&body), Some(ErrorCode::TooManyStreams));
}

#[test]
fn a_token_guards_everything_but_the_probes() {
    const TOKEN: &str = "s3cret-token-of-the-consortium";
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("api.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let cluster = node(|config| config.api_token_file = Some(token_file.clone()));
    let api = cluster.validators[0].api();
    let http = reqwest::blocking::Client::new();
    let get = |path: &str, token: Option<&str>| {
        let mut request = http.get(format!("{api}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().unwrap()
    };
    for path in ["/v1/status", "/v1/blocks/latest", "/metrics", "/v1/openapi.json"] {
        let refused = get(path, None);
        assert_eq!(refused.status(), 401, "{path} without a token");
        assert_eq!(refused.headers()["www-authenticate"], "Bearer");
        assert_eq!(error_code(&refused.json().unwrap()), Some(ErrorCode::Unauthorized));
        assert_eq!(get(path, Some("another-token-entirely")).status(), 401, "{path} with a wrong token");
        assert_ne!(get(path, Some(TOKEN)).status(), 401, "{path} with the token");
    }
    for probe in ["/healthz", "/readyz"] {
        assert_ne!(get(probe, None).status(), 401, "{probe} is open");
    }
    // The CLI sends the token from a file; without it the node's refusal is what it prints.
    let status = |token: Option<&std::path::Path>| {
        let mut command = std::process::Command::new(kubechain_e2e::kubechain_bin());
        command.args(["status", "--node", &api]).env_remove("KUBECHAIN_API_TOKEN_FILE");
        if let Some(path) = token {
            command.arg("--api-token-file").arg(path);
        }
        command.output().unwrap()
    };
    let with_token = status(Some(&token_file));
    assert!(with_token.status.success(), "{}", String::from_utf8_lossy(&with_token.stderr));
    let without = status(None);
    assert!(!without.status.success());
    assert!(String::from_utf8_lossy(&without.stderr).contains("unauthorized"));
    // The token is nowhere in the node's log.
    let log = std::fs::read_to_string(cluster.validators[0].dir.join("node.log")).unwrap();
    assert!(!log.contains(TOKEN));
}

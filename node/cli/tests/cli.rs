//! The `kubechain` binary, run as a user would.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn kubechain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubechain")).args(args).output().expect("kubechain runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn keygen(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    let output = kubechain(&["keygen", "--out", path.to_str().expect("utf-8 path")]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    stdout(&output)
}

#[test]
fn keygen_writes_an_owner_only_key_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let public = keygen(dir.path(), "v1.key");
    assert_eq!(public.len(), 64, "hex public key: {public}");
    let path = dir.path().join("v1.key");
    let mode = std::fs::metadata(&path).expect("key file").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let contents = std::fs::read_to_string(&path).expect("key file");
    assert!(contents.contains(&public));
    let again = kubechain(&["keygen", "--out", path.to_str().expect("utf-8 path")]);
    assert!(!again.status.success(), "an existing key must not be overwritten");
    assert_eq!(std::fs::read_to_string(&path).expect("key file"), contents);
}

#[test]
fn genesis_is_validated_written_and_hashed_deterministically() {
    let dir = tempfile::tempdir().expect("temp dir");
    let validators: Vec<String> = (0..4).map(|i| keygen(dir.path(), &format!("v{i}.key"))).collect();
    let client = keygen(dir.path(), "acme.key");
    let out = dir.path().join("genesis.json");
    let mut args =
        vec!["genesis", "--chain-id", "trade-ledger-1", "--out", out.to_str().expect("utf-8 path")];
    for key in &validators {
        args.extend(["--validator", key]);
    }
    let member = format!("acme={client}");
    args.extend(["--member", &member, "--admin", &client]);
    let first = kubechain(&args);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let second = kubechain(&args);
    assert_eq!(stdout(&first), stdout(&second), "same inputs, same genesis hash");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("genesis file")).expect("json");
    assert_eq!(written["chain_id"], "trade-ledger-1");
    assert_eq!(written["validators"].as_array().map(Vec::len), Some(4));

    let bad_chain = kubechain(&[
        "genesis",
        "--chain-id",
        "Bad_Chain",
        "--validator",
        &validators[0],
        "--out",
        "/dev/null",
    ]);
    assert!(!bad_chain.status.success());
    assert!(String::from_utf8_lossy(&bad_chain.stderr).contains("chain id"));
    let duplicate = kubechain(&[
        "genesis",
        "--chain-id",
        "c",
        "--validator",
        &validators[0],
        "--validator",
        &validators[0],
        "--out",
        "/dev/null",
    ]);
    assert!(String::from_utf8_lossy(&duplicate.stderr).contains("listed twice"));
    let not_hex = kubechain(&["genesis", "--chain-id", "c", "--validator", "zz", "--out", "/dev/null"]);
    assert!(!not_hex.status.success());
}

/// `kubechain ... | head -1`: a reader that closed its end before the output came. The command
/// still does its work and ends quietly, without the panic and backtrace `println!` gives.
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("k.key");
    let run_into_closed_pipe = |args: &[&str]| {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        Command::new(env!("CARGO_BIN_EXE_kubechain"))
            .args(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .expect("kubechain runs")
    };
    for args in [vec!["keygen", "--out", key.to_str().expect("utf-8 path")], vec!["completions", "bash"]] {
        let output = run_into_closed_pipe(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?} printed on stderr: {stderr}");
    }
    assert!(key.exists(), "keygen wrote its key before the pipe mattered");
}

/// A node that accepts connections but never answers (a paused process): the command gives up
/// after its request timeout with a message that says so.
#[test]
fn a_node_that_does_not_answer_times_out_with_a_clear_message() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let url = format!("http://{}", silent.local_addr().expect("address"));
    let started = Instant::now();
    let output = kubechain(&["status", "--node", &url, "--request-timeout-seconds", "1"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains(&format!("node at {url} did not answer within 1 s")), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    drop(silent);
}

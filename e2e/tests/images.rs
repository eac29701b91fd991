//! The container images `scripts/image.sh` builds without Docker: well-formed OCI layouts whose
//! digests hold, a binary that runs from the image's own root filesystem as its non-root user, and
//! the same binary, user, entrypoint, command and ports as the Dockerfile that describes the image.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use kubechain_e2e::kube::repo_dir;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// What the final stage of a Dockerfile says about its image.
#[derive(Debug, Default, PartialEq)]
struct Described {
    /// The package `cargo build -p` builds in the build stage.
    package: String,
    /// Where the binary is copied to.
    binary_path: String,
    user: String,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    /// `7000/tcp`, ...
    ports: Vec<String>,
    /// The final stage's base image and what its RUN lines do.
    base: String,
    final_runs: Vec<String>,
}

fn read_dockerfile(path: &Path) -> Described {
    let text = std::fs::read_to_string(path).unwrap();
    // Continuation lines joined, comments dropped.
    let joined = text.replace("\\\n", " ");
    let lines: Vec<&str> =
        joined.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let mut described = Described::default();
    let last_from = lines.iter().rposition(|line| line.starts_with("FROM ")).expect("a FROM line");
    for line in &lines[..last_from] {
        if let Some(at) = line.find("cargo build --release -p ") {
            let rest = &line[at + "cargo build --release -p ".len()..];
            described.package = rest.split_whitespace().next().unwrap().to_string();
        }
    }
    for line in &lines[last_from..] {
        let (instruction, args) = line.split_once(' ').unwrap_or((line, ""));
        match instruction {
            "FROM" => described.base = args.to_string(),
            "RUN" => described.final_runs.push(args.to_string()),
            "USER" => described.user = args.to_string(),
            "ENTRYPOINT" => {
                described.entrypoint = serde_json::from_str(args).expect("ENTRYPOINT in exec form")
            }
            "CMD" => described.cmd = serde_json::from_str(args).expect("CMD in exec form"),
            "EXPOSE" => described.ports = args.split_whitespace().map(|port| format!("{port}/tcp")).collect(),
            "COPY" if args.starts_with("--from=build") => {
                described.binary_path = args.split_whitespace().last().unwrap().to_string();
            }
            _ => {}
        }
    }
    described
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A blob of the layout, checked against its digest.
fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    let bytes = std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(sha256_hex(&bytes), hex, "blob {digest} does not match its digest");
    bytes
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("run a command");
    assert!(output.status.success(), "{command:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn check_image(image: &str, package: &str) {
    let work = tempfile::tempdir().unwrap();
    let out = run(Command::new(repo_dir().join("scripts/image.sh"))
        .args([image, "--no-build", "--out"])
        .arg(work.path()));
    let tarball = out.trim();
    let version = env!("CARGO_PKG_VERSION");
    assert!(tarball.ends_with(&format!("kubechain-{image}-{version}.oci.tar")), "{tarball}");

    let layout = work.path().join("layout");
    std::fs::create_dir(&layout).unwrap();
    run(Command::new("tar").arg("-xf").arg(tarball).arg("-C").arg(&layout));
    let oci_layout: Value =
        serde_json::from_slice(&std::fs::read(layout.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(oci_layout["imageLayoutVersion"], "1.0.0");
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entry = &index["manifests"][0];
    assert_eq!(
        entry["annotations"]["io.containerd.image.name"],
        format!("docker.io/kubechain/{image}:{version}")
    );
    let manifest_bytes = blob(&layout, entry["digest"].as_str().unwrap());
    assert_eq!(entry["size"].as_u64(), Some(manifest_bytes.len() as u64));
    let manifest: Value = serde_json::from_slice(&manifest_bytes).unwrap();
    let config: Value =
        serde_json::from_slice(&blob(&layout, manifest["config"]["digest"].as_str().unwrap())).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    let layer = blob(&layout, layers[0]["digest"].as_str().unwrap());

    // The layer unpacks to the root filesystem; its uncompressed digest is the config's diff_id.
    let rootfs = work.path().join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    let layer_path = work.path().join("layer.tar.gz");
    std::fs::write(&layer_path, &layer).unwrap();
    let uncompressed = Command::new("gzip").arg("-dc").arg(&layer_path).output().unwrap().stdout;
    assert_eq!(config["rootfs"]["diff_ids"][0], format!("sha256:{}", sha256_hex(&uncompressed)));
    run(Command::new("tar").arg("-xzf").arg(&layer_path).arg("-C").arg(&rootfs));

    // The Dockerfile describes the same image.
    let dockerfile = read_dockerfile(
        &repo_dir().join(if image == "node" { "node" } else { "operator" }).join("Dockerfile"),
    );
    let settings = &config["config"];
    let strings = |value: &Value| -> Vec<String> {
        value.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
    };
    assert_eq!(dockerfile.package, package, "the Dockerfile builds another package");
    // No build tools in what ships: the final stage is a slim base that installs none.
    assert!(
        dockerfile.base.starts_with("debian:") && dockerfile.base.ends_with("-slim"),
        "{}",
        dockerfile.base
    );
    for run in &dockerfile.final_runs {
        for tool in ["cargo", "rustc", "gcc", "g++", "clang", "build-essential", "make "] {
            assert!(!run.contains(tool), "the final stage installs {tool}: {run}");
        }
    }
    assert_eq!(settings["User"], dockerfile.user.as_str());
    assert_eq!(strings(&settings["Entrypoint"]), dockerfile.entrypoint);
    assert_eq!(strings(&settings["Cmd"]), dockerfile.cmd);
    assert_eq!(dockerfile.entrypoint, vec![dockerfile.binary_path.clone()]);
    let mut ports: Vec<String> = settings["ExposedPorts"].as_object().unwrap().keys().cloned().collect();
    ports.sort();
    let mut expected = dockerfile.ports.clone();
    expected.sort();
    assert_eq!(ports, expected);
    assert!(
        settings["Env"].as_array().unwrap().iter().any(|e| e.as_str().unwrap().contains("/usr/local/bin"))
    );

    // The binary runs from the image's own files alone, as the image's user (not root).
    let binary = rootfs.join(dockerfile.binary_path.trim_start_matches('/'));
    assert!(binary.exists(), "{} is not in the image", dockerfile.binary_path);
    let user = dockerfile.user.as_str();
    assert_ne!(user.split(':').next(), Some("0"), "the image runs as root");
    let version_line = run(Command::new("chroot")
        .arg(format!("--userspec={user}"))
        .arg(&rootfs)
        .args([dockerfile.binary_path.as_str(), "--version"]));
    assert!(version_line.contains(version), "{version_line}");
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    let uid = user.split(':').next().unwrap();
    assert!(passwd.lines().any(|line| line.split(':').nth(2) == Some(uid)), "no passwd entry for {uid}");

    // Same input, same image.
    let again = tempfile::tempdir().unwrap();
    let out = run(Command::new(repo_dir().join("scripts/image.sh"))
        .args([image, "--no-build", "--out"])
        .arg(again.path()));
    assert_eq!(
        std::fs::read(out.trim()).unwrap(),
        std::fs::read(tarball).unwrap(),
        "the build is not reproducible"
    );
}

#[test]
fn the_node_image_matches_its_dockerfile_and_runs_as_non_root() {
    check_image("node", "kubechain-cli");
}

#[test]
fn the_operator_image_matches_its_dockerfile_and_runs_as_non_root() {
    check_image("operator", "kubechain-operator");
}

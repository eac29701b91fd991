#!/usr/bin/env bash
# Makes sure a fresh machine has what building and testing kubechain needs (with --kubelet, also
# what a real one-node cluster needs). Idempotent: a second run only checks and prints. Installs
# from package registries only (rustup components, apt); never downloads anything else.
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# Runs a command as root, through sudo when we are not root already.
as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

ensure_cache_dir() {
    mkdir -p "$cache_dir"
    say "cache dir $cache_dir"
}

# ensure_debian_packages pkg...: installs the packages that dpkg does not report as installed.
# `apt-get update` runs only when something is missing, so a second run never touches the network.
ensure_debian_packages() {
    local missing=() pkg status
    if [[ $# -eq 0 ]]; then
        say "no debian packages needed"
        return 0
    fi
    for pkg in "$@"; do
        # A removed package can linger as "deinstall ok config-files": only this status counts.
        if ! status=$(dpkg -s "$pkg" 2>/dev/null) || [[ $status != *"Status: install ok installed"* ]]; then
            missing+=("$pkg")
        fi
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        say "debian packages present: $*"
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
    say "installing debian packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# ensure_rust_component component cargo-subcommand: adds a rustup component when
# `cargo <subcommand> --version` fails.
ensure_rust_component() {
    local component=$1 subcommand=$2 version
    if version=$(cargo "$subcommand" --version 2>/dev/null); then
        say "$component present ($version)"
        return 0
    fi
    command -v rustup >/dev/null 2>&1 || die "cargo $subcommand missing and no rustup to add $component"
    say "adding rustup component $component"
    rustup component add "$component"
}

main() {
    local kubelet=0
    case ${1:-} in
        --kubelet) kubelet=1 ;;
        "") ;;
        *) die "unknown argument: $1 (usage: scripts/setup.sh [--kubelet])" ;;
    esac
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install a Rust toolchain with rustup first"
    ensure_cache_dir

    # Debian packages the build needs: libclang for bindgen (RocksDB's C API bindings); and
    # Prometheus with promtool, which check the monitoring mixin (make monitoring-check,
    # e2e-monitoring).
    ensure_debian_packages libclang-dev prometheus

    ensure_rust_component rustfmt fmt
    ensure_rust_component clippy clippy

    # A real node (scripts/cluster.sh --kubelet): container runtime, CNI plugins, the tools
    # kube-proxy and kubelet call, and a static busybox for the volume provisioner's helper pods.
    if ((kubelet)); then
        ensure_debian_packages containerd runc containernetworking-plugins iptables conntrack socat \
            busybox-static
    fi
}

main "$@"

#!/usr/bin/env bash
# Builds the Kubernetes control-plane binaries the operator's end-to-end tests run against
# (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, etcdctl, kwok) from Go
# modules only: no release downloads are reachable here. Cached under
#   ${KUBECHAIN_CACHE:-$HOME/.cache/kubechain}/k8s/<k8s version>/bin
# and idempotent: a second run with the binaries in place does nothing. Prints the bin dir last.
#
# With --kubelet it also builds what a real node needs: kubelet and kube-proxy (same module),
# CoreDNS, local-path-provisioner and a pause binary (for the pod sandbox image).
#
# Usage: scripts/k8s-build.sh [--kubelet] [--print-bin-dir | --bin-dir]
#   --print-bin-dir  build if needed, then print the bin dir on stdout
#   --bin-dir        only print the bin dir (no build)
# Env:   K8S_VERSION (v1.34.2), ETCD_VERSION (v3.5.35), KWOK_VERSION (v0.7.0),
#        COREDNS_VERSION (v1.12.4), LOCAL_PATH_VERSION (v0.0.30), KUBECHAIN_CACHE
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

k8s_version="${K8S_VERSION:-v1.34.2}"
etcd_version="${ETCD_VERSION:-v3.5.35}"
kwok_version="${KWOK_VERSION:-v0.7.0}"
coredns_version="${COREDNS_VERSION:-v1.12.4}"
local_path_version="${LOCAL_PATH_VERSION:-v0.0.30}"
# Bumped when the pause program below changes.
pause_version=1
version_dir="$cache_dir/k8s/$k8s_version"
bin_dir="$version_dir/bin"
# Records which etcd and kwok versions sit in bin_dir, since the dir is keyed by the k8s version only.
stamp="$bin_dir/.versions"

k8s_bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
etcd_bins=(etcd etcdctl)
node_bins=(kubelet kube-proxy)
kubelet=0

# The stamp line a component must have for its binaries to count as built.
want_line() {
    case $1 in
        k8s) echo "k8s $k8s_version" ;;
        etcd) echo "etcd $etcd_version" ;;
        kwok) echo "kwok $kwok_version" ;;
        node) echo "node $k8s_version" ;;
        coredns) echo "coredns $coredns_version" ;;
        local-path) echo "local-path $local_path_version" ;;
        pause) echo "pause $pause_version" ;;
    esac
}

# component_ok NAME BIN...: true when every BIN exists and the stamp has NAME's version.
component_ok() {
    local name=$1 b
    shift
    [[ -f $stamp ]] && grep -qxF "$(want_line "$name")" "$stamp" || return 1
    for b in "$@"; do
        [[ -x $bin_dir/$b ]] || return 1
    done
}

all_ok() {
    component_ok k8s "${k8s_bins[@]}" && component_ok etcd "${etcd_bins[@]}" && component_ok kwok kwok &&
        { ((kubelet == 0)) || node_ok; }
}

node_ok() {
    component_ok node "${node_bins[@]}" && component_ok coredns coredns &&
        component_ok local-path local-path-provisioner && component_ok pause pause
}

find_go() {
    if command -v go >/dev/null 2>&1; then
        command -v go
    elif [[ -x /usr/local/go/bin/go ]]; then
        echo /usr/local/go/bin/go
    else
        die "no Go toolchain found (need go in PATH or /usr/local/go/bin/go)"
    fi
}

# Go state lives in the cache dir so a fresh clone (CI) reuses downloads and compiled packages.
setup_go_env() {
    GO=$(find_go)
    export GOPATH="$cache_dir/go"
    export GOMODCACHE="$cache_dir/go/pkg/mod"
    export GOCACHE="$cache_dir/go/build-cache"
    # Never fetch a newer toolchain: only modules come from the proxy.
    export GOTOOLCHAIN=local
    export GOFLAGS="-mod=mod -buildvcs=false"
    export CGO_ENABLED=0
    mkdir -p "$GOMODCACHE" "$GOCACHE"
}

# timed LABEL CMD...: runs CMD niced (a Rust build may share the two cores) and prints its time.
timed() {
    local label=$1 start end
    shift
    start=$(date +%s)
    if ! nice -n 10 "$@"; then
        say "FAILED: $label after $(($(date +%s) - start))s"
        return 1
    fi
    end=$(date +%s)
    say "built $label in $((end - start))s"
    printf '%s %ss\n' "$label" "$((end - start))" >>"$work/timings"
}

# upstream_gomod MODULE@VERSION: path of that module's go.mod in the module cache.
upstream_gomod() {
    local f
    f=$(cd "$work" && "$GO" mod download -json "$1" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
    [[ -f $f ]] || die "go mod download gave no go.mod for $1"
    echo "$f"
}

# Wrapper module for k8s.io/kubernetes: its go.mod points the k8s.io/* staging modules at
# ./staging/src/..., which only exist in its git tree, so point them at the published v0.X.Y tags.
prepare_k8s_module() {
    local dir=$1 upstream staging_version
    upstream=$(upstream_gomod "k8s.io/kubernetes@$k8s_version")
    staging_version="v0.${k8s_version#v1.}"
    mkdir -p "$dir"
    {
        echo "module kubechain.local/k8s-build"
        echo
        # Same go and godebug lines as upstream: they set the GODEBUG defaults of the binaries.
        grep -E '^(go|godebug) ' "$upstream"
        echo
        echo "require k8s.io/kubernetes $k8s_version"
        echo
        echo "replace ("
        sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/src/k8s\.io/.*$#\t\1 => \1 '"$staging_version"'#p' "$upstream"
        echo ")"
    } >"$dir/go.mod"
    grep -q "k8s.io/api => k8s.io/api $staging_version" "$dir/go.mod" ||
        die "found no staging replace lines in $upstream"
}

k8s_ldflags() {
    local major minor build_date pkg flags=""
    major=${k8s_version#v}
    major=${major%%.*}
    minor=${k8s_version#v*.}
    minor=${minor%%.*}
    build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        flags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
        flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
    done
    echo "-s -w$flags"
}

# build_from_k8s COMPONENT BIN...: binaries of k8s.io/kubernetes/cmd/BIN from the wrapper module.
build_from_k8s() {
    local component=$1 src="$version_dir/src/kubernetes" ldflags b
    shift
    prepare_k8s_module "$src"
    ldflags=$(k8s_ldflags)
    for b in "$@"; do
        (cd "$src" && timed "$b" "$GO" build -trimpath -ldflags "$ldflags" -o "$work/bin/$b" "k8s.io/kubernetes/cmd/$b")
    done
    want_line "$component" >>"$work/stamp"
}

# go_install COMPONENT BIN MODULE/PATH@VERSION: a module that `go install` builds as it is.
go_install() {
    local component=$1 bin=$2 package=$3
    (cd "$work" && GOBIN="$work/gobin" GOFLAGS=-buildvcs=false timed "$bin" "$GO" install -trimpath -ldflags "-s -w" "$package")
    mv "$work/gobin/$(basename "${package%@*}")" "$work/bin/$bin"
    want_line "$component" >>"$work/stamp"
}

# The pod sandbox ("pause") process: waits for a signal. No image can be pulled here, so it is
# built and packed into an image locally.
build_pause() {
    local src="$work/pause"
    mkdir -p "$src"
    printf 'module kubechain.local/pause\n\ngo 1.21\n' >"$src/go.mod"
    cat >"$src/main.go" <<'EOF'
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	<-signals
}
EOF
    (cd "$src" && timed pause "$GO" build -trimpath -ldflags "-s -w" -o "$work/bin/pause" .)
    want_line pause >>"$work/stamp"
}

# etcd 3.5's go.mod files carry replace directives, so `go install pkg@version` refuses them:
# build from a wrapper module instead (its own, as its dependencies differ from Kubernetes').
build_etcd() {
    local src="$version_dir/src/etcd-$etcd_version" ldflags upstream
    upstream=$(upstream_gomod "go.etcd.io/etcd/server/v3@$etcd_version")
    mkdir -p "$src"
    {
        echo "module kubechain.local/etcd-build"
        echo
        grep -E '^(go|godebug) ' "$upstream"
        echo
        echo "require ("
        printf '\t%s %s\n' go.etcd.io/etcd/server/v3 "$etcd_version" go.etcd.io/etcd/etcdctl/v3 "$etcd_version"
        echo ")"
    } >"$src/go.mod"
    ldflags="-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=${etcd_version}"
    (cd "$src" && timed etcd "$GO" build -trimpath -ldflags "$ldflags" -o "$work/bin/etcd" go.etcd.io/etcd/server/v3)
    (cd "$src" && timed etcdctl "$GO" build -trimpath -ldflags "$ldflags" -o "$work/bin/etcdctl" go.etcd.io/etcd/etcdctl/v3)
    want_line etcd >>"$work/stamp"
}

build_kwok() {
    (cd "$work" && GOBIN="$work/bin" GOFLAGS=-buildvcs=false timed kwok "$GO" install -trimpath "sigs.k8s.io/kwok/cmd/kwok@$kwok_version")
    want_line kwok >>"$work/stamp"
}

main() {
    local print_bin_dir=0
    while [[ $# -gt 0 ]]; do
        case $1 in
            --bin-dir) echo "$bin_dir"; return 0 ;;
            --print-bin-dir) print_bin_dir=1 ;;
            --kubelet) kubelet=1 ;;
            *) die "unknown argument: $1" ;;
        esac
        shift
    done
    if all_ok; then
        [[ $print_bin_dir -eq 1 ]] && echo "$bin_dir"
        say "cached: $bin_dir"
        return 0
    fi
    setup_go_env
    mkdir -p "$version_dir"
    # One build at a time per version: two `cluster.sh up` started together must not race.
    exec 9>"$version_dir/.lock"
    flock 9
    if all_ok; then
        say "cached (built by a concurrent run): $bin_dir"
        [[ $print_bin_dir -eq 1 ]] && echo "$bin_dir"
        return 0
    fi
    say "building into $bin_dir with $("$GO" version)"
    work=$(mktemp -d "$version_dir/.build.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    mkdir -p "$work/bin" "$work/gobin"
    : >"$work/stamp"
    component_ok k8s "${k8s_bins[@]}" || build_from_k8s k8s "${k8s_bins[@]}"
    component_ok etcd "${etcd_bins[@]}" || build_etcd
    component_ok kwok kwok || build_kwok
    if ((kubelet)); then
        component_ok node "${node_bins[@]}" || build_from_k8s node "${node_bins[@]}"
        component_ok coredns coredns || go_install coredns coredns "github.com/coredns/coredns@$coredns_version"
        component_ok local-path local-path-provisioner ||
            go_install local-path local-path-provisioner "github.com/rancher/local-path-provisioner@$local_path_version"
        component_ok pause pause || build_pause
    fi

    # Everything built: move each binary into place (rename within one filesystem is atomic),
    # then record the versions; a failure above leaves bin_dir as it was.
    mkdir -p "$bin_dir"
    local f line
    for f in "$work"/bin/*; do
        mv -f "$f" "$bin_dir/"
    done
    touch "$stamp"
    while read -r line; do
        grep -v "^${line%% *} " "$stamp" >"$work/stamp.new" || true
        echo "$line" >>"$work/stamp.new"
        mv -f "$work/stamp.new" "$stamp"
    done <"$work/stamp"
    [[ -f $work/timings ]] && say "timings: $(tr '\n' ' ' <"$work/timings")"
    all_ok || die "binaries missing after build in $bin_dir"
    say "done: $bin_dir"
    [[ $print_bin_dir -eq 1 ]] && echo "$bin_dir"
    return 0
}

main "$@"

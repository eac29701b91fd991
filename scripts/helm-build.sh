#!/usr/bin/env bash
# Builds Helm (helm.sh/helm/v4) and helm-unittest from their Go modules: no release downloads
# are reachable here. helm-unittest's go.mod carries a replace line, which `go install
# module@version` refuses, so it is built from a wrapper module that repeats it; it runs as its
# own command (`helm-unittest CHART`), not as a plugin (whose install hook downloads a release).
# Cached under ${KUBECHAIN_CACHE:-$HOME/.cache/kubechain}/helm/<helm>-unittest-<version>/bin;
# idempotent. Prints the bin dir last.
#
# Usage: scripts/helm-build.sh [--bin-dir]
#   --bin-dir  only print the bin dir (no build)
# Env:   HELM_VERSION (v4.3.2), HELM_UNITTEST_VERSION (v1.1.2), KUBECHAIN_CACHE
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

helm_version="${HELM_VERSION:-v4.3.2}"
unittest_version="${HELM_UNITTEST_VERSION:-v1.1.2}"
version_dir="$cache_dir/helm/$helm_version-unittest-$unittest_version"
bin_dir="$version_dir/bin"

case "${1:-}" in
    "") ;;
    --bin-dir) echo "$bin_dir"; exit 0 ;;
    *) usage ;;
esac

if [[ -x $bin_dir/helm && -x $bin_dir/helm-unittest ]]; then
    echo "$bin_dir"
    exit 0
fi

use_cached_go
mkdir -p "$bin_dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [[ ! -x $bin_dir/helm ]]; then
    start=$SECONDS
    GOBIN="$work" nice -n 10 go install "helm.sh/helm/v4/cmd/helm@$helm_version" ||
        die "go install helm.sh/helm/v4/cmd/helm@$helm_version failed"
    # Copied under a temporary name, then renamed: an interrupted run never leaves a binary
    # that looks built.
    cp "$work/helm" "$bin_dir/.helm.partial" && mv "$bin_dir/.helm.partial" "$bin_dir/helm"
    say "built helm $helm_version in $((SECONDS - start))s"
fi

if [[ ! -x $bin_dir/helm-unittest ]]; then
    start=$SECONDS
    module=github.com/helm-unittest/helm-unittest
    download=$(cd "$work" && go mod download -json "$module@$unittest_version") ||
        die "go mod download $module@$unittest_version failed"
    upstream=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' <<<"$download")
    [[ -f $upstream ]] || die "go mod download gave no go.mod for $module@$unittest_version"
    # One-line replace directives only (what the module has); a block would need more.
    grep -q '^replace ($' "$upstream" && die "$module@$unittest_version has a replace block: extend this script"
    mkdir -p "$work/wrapper"
    {
        echo "module kubechain.dev/helm-unittest-build"
        sed -n 's/^go .*/&/p' "$upstream"
        echo "require $module $unittest_version"
        grep '^replace ' "$upstream" || true
    } >"$work/wrapper/go.mod"
    # -mod=mod: the build settles go.sum for what it needs.
    (cd "$work/wrapper" && nice -n 10 go build -mod=mod -o "$bin_dir/.helm-unittest.partial" "$module/cmd/helm-unittest") ||
        die "go build $module@$unittest_version failed"
    mv "$bin_dir/.helm-unittest.partial" "$bin_dir/helm-unittest"
    say "built helm-unittest $unittest_version in $((SECONDS - start))s"
fi

echo "$bin_dir"

# shellcheck shell=bash
# Helpers every script here sources (not run): messages named after the script, the help text
# read from the script's header comment, and the cache dir shared with the Makefile. A script may
# set `log_name` before sourcing this; it defaults to the script's name without `.sh`.

log_name="${log_name:-$(basename "$0" .sh)}"
# Build output, Go-built binaries, images and cluster state (outside the clone, so fresh clones
# reuse them). Used by the scripts that source this file.
# shellcheck disable=SC2034
cache_dir="${KUBECHAIN_CACHE:-$HOME/.cache/kubechain}"

# Messages to stderr, named after the script. `|| true`: a reader that went away (`up | head`)
# must not stop the clean-up after a failure.
say() { printf '%s: %s\n' "$log_name" "$*" >&2 || true; }
die() { printf '%s: error: %s\n' "$log_name" "$*" >&2; exit 1; }

# Go state in the cache dir, so a fresh clone (CI) reuses downloads and compiled packages. Never
# a newer toolchain: only modules come from the proxy.
use_cached_go() {
    command -v go >/dev/null 2>&1 || die "no Go toolchain in PATH"
    export GOPATH="$cache_dir/go" GOMODCACHE="$cache_dir/go/pkg/mod" GOCACHE="$cache_dir/go/build-cache"
    export GOTOOLCHAIN=local GOFLAGS="-buildvcs=false" CGO_ENABLED=0
}

# The script's header comment (after the #! line, up to the first line that is not a comment)
# as its help, then exit 2.
usage() {
    awk 'NR == 1 { next } !/^#/ { exit } { sub(/^# ?/, ""); print }' "$0" >&2
    exit 2
}

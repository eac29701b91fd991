#!/usr/bin/env bash
# Builds the kubechain container images without a Docker engine: a minimal root filesystem (the
# stripped release binary, the shared libraries it links, a non-root user), packed as an OCI image
# layout in a tarball that `ctr images import` (containerd) and `docker load` accept. Reproducible:
# the same binary gives the same image digest.
#
# Usage: scripts/image.sh node|operator|pause|busybox [--out DIR] [--no-build] [--tag TAG]
#   Builds the release binary first (cargo, shared target dir; --no-build uses the one there), writes
#   DIR/kubechain-IMAGE-TAG.oci.tar (DIR defaults to $KUBECHAIN_CACHE/images) and prints its
#   path. The image is named docker.io/kubechain/IMAGE:TAG; TAG defaults to VERSION from
#   Cargo.toml (another tag gives a second image to roll a chain to).
#
# node/Dockerfile and operator/Dockerfile describe the same images for people who build with
# Docker; e2e/tests/images.rs keeps the two in step (binary, user, entrypoint, ports).
# pause (the pod sandbox, from scripts/k8s-build.sh --kubelet) and busybox (Debian's static one,
# for the volume provisioner's helper pods) exist because the local cluster can pull nothing.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(cd "$script_dir/.." && pwd)
# shellcheck source=scripts/common.sh
source "$script_dir/common.sh"
target_dir="${CARGO_TARGET_DIR:-$cache_dir/target}"

# The unprivileged user the kubechain images run as (the operator's pod specs say the same).
kubechain_uid=10001
user=kubechain

# What differs between the images: where the binary comes from (and the cargo package that
# builds it, if any), where it goes, its user, exposed ports and default arguments.
describe() {
    package="" ports=() cmd=() links=()
    case $1 in
        node)
            package=kubechain-cli source="$target_dir/release/kubechain" dest=/usr/local/bin/kubechain
            uid=$kubechain_uid ports=(7000 8080) cmd=(node run --config /etc/kubechain/config/node.yaml)
            ;;
        operator)
            package=kubechain-operator source="$target_dir/release/kubechain-operator"
            dest=/usr/local/bin/kubechain-operator uid=$kubechain_uid ports=(8080) cmd=(run)
            ;;
        pause)
            source="$("$script_dir/k8s-build.sh" --bin-dir)/pause" dest=/pause uid=65535
            ;;
        busybox)
            source=/bin/busybox dest=/bin/busybox uid=0 links=(sh mkdir rm ls cat sleep)
            ;;
        *) usage ;;
    esac
}

sha256() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }

# json_strings A B C -> "A","B","C"
json_strings() {
    local first=1 item
    for item in "$@"; do
        ((first)) || printf ','
        printf '"%s"' "$item"
        first=0
    done
}

# A file into the layout's blob store; prints "sha256:HEX SIZE".
add_blob() {
    local file=$1 digest
    digest=$(sha256 "$file")
    cp "$file" "$layout/blobs/sha256/$digest"
    echo "sha256:$digest $(size "$file")"
}

# The root filesystem: the binary, the libraries the dynamic loader needs for it (as ldd resolves
# them on this machine), and passwd/group entries for the user.
make_rootfs() {
    local root=$1 lib
    mkdir -p "$root$(dirname "$dest")" "$root/etc" "$root/tmp"
    chmod 1777 "$root/tmp"
    strip --strip-debug -o "$root$dest" "$source"
    # ldd prints "name => /path (addr)" or "/path (addr)" (nothing for a static binary); copy
    # each path, keeping it.
    while read -r lib; do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done < <(ldd "$source" 2>/dev/null | grep -oE '/[^ ]+' | sort -u)
    local link
    for link in "${links[@]}"; do
        ln -s "$(basename "$dest")" "$root$(dirname "$dest")/$link"
    done
    printf 'root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:%s:/nonexistent:/sbin/nologin\n' \
        "$user" "$kubechain_uid" "$kubechain_uid" "$user" >"$root/etc/passwd"
    printf 'root:x:0:\n%s:x:%d:\n' "$user" "$kubechain_uid" >"$root/etc/group"
}

main() {
    [[ $# -ge 1 ]] || usage
    local image=$1 out_dir="$cache_dir/images" build=1 tag=""
    shift
    while [[ $# -gt 0 ]]; do
        case $1 in
            --out) out_dir=${2:?--out needs a value}; shift 2 ;;
            --tag) tag=${2:?--tag needs a value}; shift 2 ;;
            --no-build) build=0; shift ;;
            -h | --help) usage ;;
            *) die "unknown argument: $1" ;;
        esac
    done
    describe "$image"
    command -v strip >/dev/null || die "strip (binutils) is missing"
    local version
    version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo_dir/Cargo.toml" | head -n 1)
    [[ -n $version ]] || die "no version in Cargo.toml"
    tag=${tag:-$version}
    [[ $tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "not an image tag: $tag"

    if ((build)) && [[ -n $package ]]; then
        # The whole workspace's binaries, as `make build` does: one feature set, one build.
        say "building the workspace's binaries (release) for $package"
        (cd "$repo_dir" && CARGO_TARGET_DIR="$target_dir" cargo build --release -q --workspace --bins)
    fi
    [[ -x $source ]] || die "$source is missing (build it first)"

    # Global, for the EXIT trap.
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    make_rootfs "$work/rootfs"
    # Deterministic layer: sorted names, fixed times and owners.
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=posix \
        --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
        -C "$work/rootfs" -cf "$work/layer.tar" .
    gzip -n -6 -c "$work/layer.tar" >"$work/layer.tar.gz"

    layout=$work/layout
    mkdir -p "$layout/blobs/sha256"
    local diff_id layer layer_size
    diff_id="sha256:$(sha256 "$work/layer.tar")"
    read -r layer layer_size < <(add_blob "$work/layer.tar.gz")

    local exposed="" port
    for port in "${ports[@]}"; do
        exposed+="${exposed:+,}\"$port/tcp\":{}"
    done
    cat >"$work/config.json" <<EOF
{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":{"User":"$uid:$uid","Env":["PATH=/usr/local/bin:/usr/bin:/bin"],"Entrypoint":["$dest"],"Cmd":[$(json_strings "${cmd[@]}")],"ExposedPorts":{$exposed},"WorkingDir":"/","Labels":{"org.opencontainers.image.title":"kubechain-$image","org.opencontainers.image.version":"$version"}},"rootfs":{"type":"layers","diff_ids":["$diff_id"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"scripts/image.sh $image"}]}
EOF
    local config config_size
    read -r config config_size < <(add_blob "$work/config.json")
    cat >"$work/manifest.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"$config","size":$config_size},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"$layer","size":$layer_size}]}
EOF
    local manifest manifest_size name="docker.io/kubechain/$image:$tag"
    read -r manifest manifest_size < <(add_blob "$work/manifest.json")
    cat >"$layout/index.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"$manifest","size":$manifest_size,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"$name","org.opencontainers.image.ref.name":"$tag"}}]}
EOF
    printf '{"imageLayoutVersion":"1.0.0"}\n' >"$layout/oci-layout"

    mkdir -p "$out_dir"
    local out="$out_dir/kubechain-$image-$tag.oci.tar"
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$layout" -cf "$out.tmp" .
    mv "$out.tmp" "$out"
    say "$name: $out ($(size "$out") bytes, manifest $manifest)"
    echo "$out"
}

main "$@"

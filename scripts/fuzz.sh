#!/usr/bin/env bash
# Coverage-guided fuzzing of every byte parser: the libFuzzer targets in fuzz/fuzz_targets/.
#
#   scripts/fuzz.sh [--seconds N] [TARGET...]     (make fuzz FUZZ_SECONDS=N FUZZ_TARGETS="...")
#
# Builds the targets (cargo-fuzz, stable Rust, no sanitizer, debug assertions and overflow checks
# on) into the cache, then for each target (all of fuzz/fuzz_targets/ unless named): replays its
# regression inputs (fuzz/regressions/TARGET/, each must pass), has it write its seeds into its
# corpus ($KUBECHAIN_CACHE/fuzz-corpus/TARGET, kept between runs) and fuzzes it for N seconds (default
# 60). Prints executions, executions per second and peak memory per target. Exits 1 if a target
# crashed; the input that did it is in $KUBECHAIN_CACHE/fuzz-artifacts/TARGET/.
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# cargo-fuzz from crates.io, installed once per version under the cache.
CARGO_FUZZ_VERSION=0.13.2
# A single input taking longer than this (seconds) counts as a crash: a parser must stay cheap.
INPUT_TIMEOUT=10
RSS_LIMIT_MB=2048

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fuzz_dir="$repo/fuzz"
target_dir="$cache_dir/fuzz-target"

ensure_cargo_fuzz() {
    local root="$cache_dir/cargo-fuzz-$CARGO_FUZZ_VERSION"
    if [[ ! -x $root/bin/cargo-fuzz ]]; then
        say "installing cargo-fuzz $CARGO_FUZZ_VERSION into $root"
        # Built in a temporary dir of cargo's own, not in the project's target dir.
        env -u CARGO_TARGET_DIR cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked \
            --root "$root" --quiet
    fi
    PATH="$root/bin:$PATH"
}

# Runs one target; prints "target runs runs_per_second peak_rss_mb verdict".
fuzz_one() {
    local target=$1 seconds=$2 binary=$3
    local corpus="$cache_dir/fuzz-corpus/$target" artifacts="$cache_dir/fuzz-artifacts/$target"
    local regressions="$fuzz_dir/regressions/$target" log="$cache_dir/fuzz-logs/$target.log"
    mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
    : >"$log"

    local inputs=()
    if [[ -d $regressions ]]; then
        mapfile -t inputs < <(find "$regressions" -type f ! -name '.*' ! -name '*.md' | sort)
    fi
    if ((${#inputs[@]})); then
        # Given files, libFuzzer runs each once and stops at the first that fails.
        if ! "$binary" -timeout="$INPUT_TIMEOUT" -rss_limit_mb="$RSS_LIMIT_MB" "${inputs[@]}" >>"$log" 2>&1; then
            tail -n 40 "$log" >&2
            say "$target: a regression input fails again (log: $log)"
            printf '%s - - - regression-failed\n' "$target"
            return 1
        fi
    fi

    # Each target writes its own seeds (fuzz/src/seeds.rs) and exits when asked to; it fails when
    # a seed no longer passes the checks it was made for.
    if ! KUBECHAIN_FUZZ_WRITE_SEEDS="$corpus" "$binary" >>"$log" 2>&1; then
        tail -n 40 "$log" >&2
        say "$target: writing its seeds failed (log: $log)"
        printf '%s - - - seeds-failed\n' "$target"
        return 1
    fi
    local status=0
    "$binary" -max_total_time="$seconds" -print_final_stats=1 -timeout="$INPUT_TIMEOUT" \
        -rss_limit_mb="$RSS_LIMIT_MB" -artifact_prefix="$artifacts/" "$corpus" >>"$log" 2>&1 || status=$?
    local runs speed rss
    runs=$(stat_of number_of_executed_units "$log")
    speed=$(stat_of average_exec_per_sec "$log")
    rss=$(stat_of peak_rss_mb "$log")
    if ((status != 0)); then
        tail -n 40 "$log" >&2
        say "$target: crashed; the input is in $artifacts/ (log: $log). Fix the parser, then keep the input in fuzz/regressions/$target/"
        printf '%s %s %s %s crashed\n' "$target" "$runs" "$speed" "$rss"
        return 1
    fi
    printf '%s %s %s %s ok\n' "$target" "$runs" "$speed" "$rss"
}

# stat_of NAME LOG: the value of libFuzzer's final `stat::NAME:` line (-print_final_stats=1), or -.
stat_of() {
    local value
    value=$(sed -n "s/^stat::$1:[[:space:]]*//p" "$2" | tail -n 1)
    printf '%s' "${value:--}"
}

main() {
    local seconds=60 targets=()
    while (($#)); do
        case $1 in
            --seconds) seconds=${2:?--seconds needs a number}; shift 2 ;;
            -h | --help) usage ;;
            -*) die "unknown option $1" ;;
            *) targets+=("$1"); shift ;;
        esac
    done
    [[ $seconds =~ ^[1-9][0-9]*$ ]] || die "--seconds must be a positive whole number, got $seconds"
    if ((${#targets[@]} == 0)); then
        mapfile -t targets < <(find "$fuzz_dir/fuzz_targets" -name '*.rs' -exec basename {} .rs \; | sort)
    fi

    ensure_cargo_fuzz
    local triple
    triple=$(rustc -vV | sed -n 's/^host: //p')
    say "building ${#targets[@]} targets (cargo-fuzz $CARGO_FUZZ_VERSION, $(rustc --version)) into $target_dir"
    # -s none: no sanitizer, so stable Rust builds it (the code forbids `unsafe`; what is sought are
    # panics, overflows, runaway memory and time, which libFuzzer catches without one).
    (cd "$repo" && cargo fuzz build --fuzz-dir "$fuzz_dir" --release --debug-assertions --sanitizer none \
        --target "$triple" --target-dir "$target_dir")
    local fuzz_bin_dir="$target_dir/$triple/release"

    say "fuzzing each target for $seconds s"
    local results=() failed=0 target line
    for target in "${targets[@]}"; do
        [[ -x $fuzz_bin_dir/$target ]] || die "no fuzz target $target (fuzz/fuzz_targets/$target.rs and a [[bin]] in fuzz/Cargo.toml)"
        line=$(fuzz_one "$target" "$seconds" "$fuzz_bin_dir/$target") || failed=1
        results+=("$line")
        say "$line"
    done

    printf '%-20s %12s %10s %12s  %s\n' target executions execs/s peak_rss_mb verdict
    for line in "${results[@]}"; do
        # shellcheck disable=SC2086
        printf '%-20s %12s %10s %12s  %s\n' $line
    done
    ((failed == 0)) || die "a fuzz target failed (see above)"
}

main "$@"

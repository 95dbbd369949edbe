#!/usr/bin/env bash
# Builds the fuzz targets in fuzz/ (cargo fuzz, libFuzzer) and runs each for a fixed time,
# one after the other, starting from the committed seeds (fuzz/seeds/<target>) and the
# corpus earlier runs grew (fuzz/corpus/<target>, not committed).
#
#     scripts/fuzz.sh [--seconds N] [target...]     (default: 30 s each, every target)
#
# Targets: decoder, startup, splitter, rewriter (see fuzz/src/). Exits nonzero when a target
# crashes, after the others have run, printing each reproducer's path and the command that
# replays it. cargo-fuzz is installed under .tools/ (or $REDVEIL_TOOLS) when missing.
# libFuzzer's instrumentation needs rustc flags that only nightly accepts; RUSTC_BOOTSTRAP=1
# lets the stable toolchain take them, for this build only.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
seconds=30
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="${2:?--seconds needs a value}"; shift 2 ;;
        --seconds=*) seconds="${1#*=}"; shift ;;
        -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done
if [ ${#targets[@]} -eq 0 ]; then
    targets=(decoder startup splitter rewriter)
fi

tools="${REDVEIL_TOOLS:-$PWD/.tools}"
if [ "$("$tools/bin/cargo-fuzz" --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION" --root "$tools"
fi
export PATH="$tools/bin:$PATH"
export RUSTC_BOOTSTRAP=1

# Release build with debug assertions (overflow checks on), no sanitizer: the code under
# test is safe Rust, and the checks in fuzz/src catch what a sanitizer would not.
build_flags=(--sanitizer none)
cargo fuzz build "${build_flags[@]}"

failed=()
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
    log="fuzz/artifacts/$target.log"
    echo "== $target: ${seconds}s"
    # -timeout: a single input taking 10 s is a hang; -rss_limit_mb catches runaway memory.
    if cargo fuzz run "${build_flags[@]}" "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        grep -E '^(#[0-9]+\s+DONE|stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb))' "$log" || true
    else
        tail -n 40 "$log"
        reproducer=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        echo "!! $target failed; log: $log"
        if [ -n "$reproducer" ]; then
            echo "!! reproducer: $reproducer"
            echo "!! replay: PATH=$tools/bin:\$PATH RUSTC_BOOTSTRAP=1 cargo fuzz run ${build_flags[*]} $target $reproducer"
        fi
        failed+=("$target")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: crashes in ${failed[*]}" >&2
    exit 1
fi

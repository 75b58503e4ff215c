#!/usr/bin/env bash
# Builds every fuzz target and runs each for a bounded time (default 30 s) on its corpus in
# fuzz/corpus/<target>. Exits non-zero if a target crashes (the input is in fuzz/artifacts).
# cargo fuzz needs nightly flags; RUSTC_BOOTSTRAP=1 lets this stable toolchain accept them.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-30}"
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo fuzz build -O
for target in $(cargo fuzz list); do
    mkdir -p "corpus/$target"
    echo "fuzzing $target for ${seconds}s"
    # grep hides libFuzzer's progress lines; the status that counts is the fuzzer's.
    set +e
    cargo fuzz run -O "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>&1 \
        | grep -E '^(Done|stat::number_of_executed_units|==[0-9]+==|SUMMARY|thread .* panicked)'
    status=${PIPESTATUS[0]}
    set -e
    if [ "$status" -ne 0 ]; then
        echo "fuzz target $target failed; reproducer in fuzz/artifacts/$target" >&2
        exit 1
    fi
done

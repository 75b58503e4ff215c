#!/usr/bin/env bash
# Fuzzes each target (or those named) for a bounded amount of CPU time, one after another at the
# lowest priority: `bash fuzz/long.sh [cpu-seconds] [target...]` (default 3600, every target).
# The bound is the process's CPU time (RLIMIT_CPU), not the wall clock, so a run on a busy
# machine still gets its full share. New inputs land in fuzz/corpus/<target>; a crash leaves
# its input in fuzz/artifacts/<target> and the log says so. Logs: fuzz/logs/<target>.log.
set -uo pipefail
cd "$(dirname "$0")"
seconds="${1:-3600}"
shift || true
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O || exit 1
targets=("$@")
((${#targets[@]})) || mapfile -t targets < <(cargo fuzz list)
mkdir -p logs
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    (ulimit -t "$seconds"; exec nice -n 19 cargo fuzz run -O "$t" "corpus/$t" -- \
        -max_total_time=100000000 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1) \
        >"logs/$t.log" 2>&1
    last=$(grep -E '^#[0-9]+' "logs/$t.log" | tail -1)
    crashes=$(find "artifacts/$t" -type f 2>/dev/null | wc -l)
    echo "$t: ${last:-no progress line}; crash inputs: $crashes"
done

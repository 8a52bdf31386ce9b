#!/usr/bin/env bash
# Runs every fuzz target in turn for SECONDS each (default 180), one job, and
# prints the executions and the outcome of each. Logs go to fuzz/logs/.
# Usage: fuzz/run-all.sh [SECONDS] [TARGET...]
set -u
cd "$(dirname "$0")"
seconds=${1:-180}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(icap_head encapsulated chunked reader time url config haproxy_cfg x509_fields servers_state)
export RUSTC_BOOTSTRAP=1
mkdir -p logs
cargo fuzz build || exit 2
for t in "${targets[@]}"; do
    # Heads are bounded at 64 KiB: let inputs grow past that where it matters.
    case $t in icap_head | reader) max_len=70000 ;; *) max_len=4096 ;; esac
    cargo fuzz run "$t" -- -max_total_time="$seconds" -max_len="$max_len" \
        -timeout=10 -print_final_stats=1 >"logs/$t.log" 2>&1
    rc=$?
    execs=$(grep -o 'number_of_executed_units: [0-9]*' "logs/$t.log" | grep -o '[0-9]*$')
    echo "$t: exit $rc, ${execs:-?} executions in ${seconds}s"
done

#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time from a copy of its seed corpus (the checked-in
# corpus is never written to). Usage: run_fuzzer.sh BINARY SEED_DIR WORK_DIR SECONDS
set -euo pipefail
binary=$1 seeds=$2 work=$3 seconds=$4
rm -rf "$work" && mkdir -p "$work/corpus" "$work/artifacts"
cp "$seeds"/* "$work/corpus/"
"$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" "$work/corpus" 2>&1 | tail -n 25
status=${PIPESTATUS[0]}
if compgen -G "$work/artifacts/*" >/dev/null; then
    echo "fuzzer left a reproducer: $(ls "$work"/artifacts/*)"
    exit 1
fi
exit "$status"

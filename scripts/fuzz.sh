#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS (default 60) seeded with the RFC
# examples of tests/data/, and prints executions and crashes per target.
# TARGETS="a b" limits the run to those targets (e.g. to split them over cores).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
export RUSTC_BOOTSTRAP=1
targets=${TARGETS:-$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^isc-fuzz$')}
for t in $targets; do
  corpus=fuzz/corpus/$t
  mkdir -p "$corpus"
  find tests/data -type f -exec cp -n {} "$corpus"/ \; 2>/dev/null || true
  log=$(mktemp)
  (cd fuzz && cargo fuzz run "$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1) >"$log" 2>&1 && rc=0 || rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  crashes=$(ls fuzz/artifacts/"$t" 2>/dev/null | wc -l)
  echo "$t: exit=$rc executions=$execs crashes=$crashes"
  rm -f "$log"
done

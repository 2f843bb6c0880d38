#!/usr/bin/env bash
# Run every fuzz target for a bounded time on its corpus (fuzz/corpus/TARGET), one after the
# other; any crash fails the run. Usage: fuzz/run.sh [SECONDS_PER_TARGET, default 60].
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). Builds on the stable toolchain:
# RUSTC_BOOTSTRAP lets it accept the sanitizer flags that cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${LATCHKEY_FUZZ_TARGET_DIR:-/var/tmp/latchkey-fuzz-target}"
cargo fuzz build -a --fuzz-dir fuzz
for target in $(cargo fuzz list --fuzz-dir fuzz); do
  mkdir -p "fuzz/corpus/$target"
  log="$(mktemp)"
  if ! cargo fuzz run -a --fuzz-dir fuzz "$target" "fuzz/corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz target $target FAILED" >&2
    exit 1
  fi
  execs="$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')"
  echo "fuzz $target: ${execs:-?} executions in ${seconds} s, no crash"
done

#!/usr/bin/env bash
# Fuzzes the config parser and the API's JSON request bodies with cargo-fuzz (libFuzzer, on
# the nightly toolchain), each for a bounded time, and prints one summary line per target.
#
#   bench/fuzz.sh [SECONDS_PER_TARGET]      (default: 120)
#
# Needs the nightly toolchain (`rustup toolchain install nightly`) and cargo-fuzz (installed
# from crates.io here when missing). Corpora stay in fuzz/corpus/ (git-ignored) so later runs
# continue where earlier ones stopped. A crash leaves its input in fuzz/artifacts/ and exits
# nonzero. Results go into FUZZING.md by hand, with the machine.
set -euo pipefail
SECS="${1:-120}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_FUZZ_TARGET_DIR:-$HOME/.cache/runbook-fuzz-target}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cd "$ROOT/fuzz"
cargo +nightly fuzz build
for target in config api_bodies; do
  mkdir -p "corpus/$target"
  log="$(mktemp)"
  if ! cargo +nightly fuzz run "$target" "corpus/$target" -- \
      -max_total_time="$SECS" -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    if grep -q "could not compile\|failed to build" "$log"; then
      echo "$target: BUILD FAILED" >&2
    else
      echo "$target: CRASH (input saved in fuzz/artifacts/$target/)" >&2
    fi
    exit 1
  fi
  runs=$(awk '/stat::number_of_executed_units/{print $2}' "$log")
  rate=$(awk '/stat::average_exec_per_sec/{print $2}' "$log")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1 | awk '{print $2}')
  corpus=$(find "corpus/$target" -type f | wc -l)
  echo "$target: ${SECS}s, ${runs:-?} inputs (${rate:-?}/s), coverage ${cov:-?} edges, corpus ${corpus} inputs, no crash"
  rm -f "$log"
done

#!/usr/bin/env bash
# Job-queue throughput on one PostgreSQL state store: trivial jobs claimed (with a lease) and
# finished per second by 1, 2 and 3 instances, each with its own connection pool. The same
# claim path the worker uses; the jobs themselves do nothing.
#
#   bench/cluster.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/runbook-target}"
echo "| instances | jobs | seconds | jobs/s |"
echo "|---:|---:|---:|---:|"
cargo test --release -q -p runbook-server --manifest-path "$ROOT/Cargo.toml" --test cluster \
  -- --ignored --nocapture --exact job_throughput 2>/dev/null | grep '^| [0-9]'

#!/usr/bin/env bash
# Load benchmark for GET /api/backups with auth and rate limiting on (limit raised so it
# never triggers), counted in process and then in Redis, against a release build, with wrk
# from Debian's packages.
#
#   bench/api.sh [DURATION_S] [CONNECTIONS]      (defaults: 20, 32)
#
# The server and wrk share this machine's cores; the figures are for this machine only.
set -euo pipefail
DUR="${1:-20}"
CONN="${2:-32}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/runbook-target}"
command -v wrk >/dev/null || { echo "install wrk: apt-get install wrk" >&2; exit 1; }
cargo build --release -q -p runbook --manifest-path "$ROOT/Cargo.toml"
RUNBOOK="$CARGO_TARGET_DIR/release/runbook"
WORK="$(mktemp -d)"
PID=
trap '{ [ -n "$PID" ] && kill "$PID" 2>/dev/null; } || true; rm -rf "$WORK"' EXIT
cd "$WORK"
"$RUNBOOK" init --demo >/dev/null 2>&1
for i in 1 2 3; do "$RUNBOOK" backup app-db --reason "bench-$i" >/dev/null; done
KEY="rbk_bench_$(od -An -N16 -tx1 /dev/urandom | tr -d " \n")"   # SECURITY_OWNER_KEYS needs >= 32 characters
echo "| endpoint | rate limit counted | connections | requests/s | p50 | p99 | non-2xx |"
echo "|---|---|---:|---:|---:|---:|---:|"
# Once with the in-process count, once with the count in Redis (RUNBOOK_REDIS_URL, the
# machine's Redis on 127.0.0.1:6379), the limit raised so it never triggers.
for mode in in-process redis; do
  if [ "$mode" = redis ]; then
    export RUNBOOK_REDIS_URL=redis://127.0.0.1:6379/ RUNBOOK_REDIS_PREFIX="rb-bench-$$"
  fi
  PORT=9317 SECURITY_OWNER_KEYS="$KEY" SECURITY_RATE_LIMIT_MAX=100000000 RUNBOOK_LOG=warn \
    "$RUNBOOK" serve 2>serve.log &
  PID=$!
  for _ in $(seq 50); do curl -sf localhost:9317/healthz >/dev/null && break; sleep 0.1; done
  curl -sf -H "x-runbook-api-key: $KEY" localhost:9317/api/backups >/dev/null
  echo "$mode: wrk -t2 -c$CONN -d${DUR}s --latency -H 'x-runbook-api-key: …' http://127.0.0.1:9317/api/backups" >&2
  wrk -t2 -c"$CONN" -d"${DUR}s" --latency -H "x-runbook-api-key: $KEY" http://127.0.0.1:9317/api/backups > wrk.out
  kill "$PID"; wait "$PID" 2>/dev/null || true
  RPS=$(awk '/Requests\/sec/{print $2}' wrk.out)
  P99=$(awk '$1=="99%"{print $2}' wrk.out)
  P50=$(awk '$1=="50%"{print $2}' wrk.out)
  NON2XX=$(awk '/Non-2xx/{print $NF}' wrk.out)
  echo "| GET /api/backups (3 snapshots, owner key) | $mode | $CONN | $RPS | $P50 | $P99 | ${NON2XX:-0} |"
done

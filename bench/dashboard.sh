#!/usr/bin/env bash
# The dashboard on a large install: 100 targets with 100 snapshots each (10,000 snapshots).
# Times the overview and a target page through curl, signed in like a browser: the first load
# after start (every repository opened, its key derived) and then warm loads (median of 10).
#
#   bench/dashboard.sh [TARGETS] [SNAPSHOTS_PER_TARGET] [WORKDIR]
#       (defaults: 100, 100, /tmp/runbook-bench-dashboard)
#
# One repository is filled with real backups, then copied for the other targets (same
# password), so the setup takes seconds rather than 10,000 backups.
set -euo pipefail
T="${1:-100}"
S="${2:-100}"
WORK="${3:-/tmp/runbook-bench-dashboard}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/runbook-target}"
cargo build --release -q -p runbook --manifest-path "$ROOT/Cargo.toml"
RUNBOOK="$CARGO_TARGET_DIR/release/runbook"

rm -rf "$WORK" && mkdir -p "$WORK/runbook-data" "$WORK/data" && cd "$WORK"
head -c 32 /dev/urandom | base64 > runbook-data/repo.key
name() { printf 't%03d' "$1"; }
{
  for i in $(seq 0 $((T - 1))); do
    printf '[targets.%s]\nkind = "files"\npaths = ["data"]\nschedule = "daily at 03 UTC"\n' "$(name "$i")"
  done
} > runbook.toml
echo "making $S snapshots..." >&2
for s in $(seq 1 "$S"); do
  echo "$s" > data/counter
  "$RUNBOOK" backup t000 --reason bench >/dev/null
done
for i in $(seq 1 $((T - 1))); do cp -r runbook-data/repo/t000 "runbook-data/repo/$(name "$i")"; done

OWNER="bench-owner-key-$(head -c 24 /dev/urandom | base64 | tr -dc a-zA-Z0-9)"
PORT=$((20000 + RANDOM % 20000))
SECURITY_OWNER_KEYS="$OWNER" PORT="$PORT" RUNBOOK_LOG=warn "$RUNBOOK" serve 2>serve.log &
SERVE=$!
trap 'kill $SERVE 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
curl -s -o /dev/null -c jar -d "key=$OWNER" "http://127.0.0.1:$PORT/login"
get() { curl -s -o /dev/null -b jar -w '%{time_total}\n' "http://127.0.0.1:$PORT$1"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
cold_overview=$(get /)
kill "$SERVE"; wait "$SERVE" 2>/dev/null || true
# Again, this time leaving serve 40 s to open the repositories in the background first.
SECURITY_OWNER_KEYS="$OWNER" PORT="$PORT" RUNBOOK_LOG=warn "$RUNBOOK" serve 2>serve.log &
SERVE=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
curl -s -o /dev/null -c jar -d "key=$OWNER" "http://127.0.0.1:$PORT/login"
sleep 40
settled_overview=$(get /)
warm_overview=$(for _ in $(seq 1 10); do get /; done | median)
cold_target=$(get "/targets/t050?page=1")
warm_target=$(for _ in $(seq 1 10); do get "/targets/t050?page=1"; done | median)
bytes=$(curl -s -b jar "http://127.0.0.1:$PORT/" | wc -c)

echo
echo "| page ($T targets, $((T * S)) snapshots) | first load right after start | first load 40 s after start | warm (median of 10) |"
echo "|---|---|---|---|"
echo "| overview \`/\` ($bytes bytes) | ${cold_overview} s | ${settled_overview} s | ${warm_overview} s |"
echo "| target page (50 snapshots of $S) | | ${cold_target} s | ${warm_target} s |"

#!/usr/bin/env bash
# The monitor under load: `runbook serve` running N HTTP probes at a 10 s interval against a
# local HTTP server (CPU share of one core and resident memory, sampled from /proc), then
# heartbeat pings per second with latency percentiles (wrk, Debian's package).
#
#   bench/monitor.sh [PROBES] [SECONDS] [WORKDIR]   (defaults: 1000, 120, /tmp/runbook-bench-monitor)
#
# Gatus and Uptime Kuma are not in the package registries this machine reaches (Debian, PyPI,
# npm, crates.io), so there is no side-by-side run with them here. Prints Markdown for
# BENCHMARKS.md.
set -euo pipefail
N="${1:-1000}"
SECS="${2:-120}"
WORK="${3:-/tmp/runbook-bench-monitor}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/runbook-target}"
command -v wrk >/dev/null || { echo "installing wrk" >&2; apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q -p runbook --manifest-path "$ROOT/Cargo.toml"
RUNBOOK="$CARGO_TARGET_DIR/release/runbook"

rm -rf "$WORK" && mkdir -p "$WORK/runbook-data" && cd "$WORK"
head -c 32 /dev/urandom | base64 > runbook-data/repo.key

# The probed service: a threaded Python server answering {"status":"ready"}.
cat > upstream.py <<'PY'
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b'{"status":"ready","workerLagMs":12}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
coproc UP { python3 upstream.py 2>/dev/null; }
read -r UPORT <&"${UP[0]}"

{
  echo '[targets.app]'
  echo 'kind = "files"'
  echo 'paths = ["upstream.py"]'
  for i in $(seq 1 "$N"); do
    printf '[probes.p%d]\nkind = "http"\nurl = "http://127.0.0.1:%s/ready?p=%d"\ninterval = "10s"\nexpect = ["status == 200", "json.status == \\"ready\\"", "response_time < 2s"]\n' "$i" "$UPORT" "$i"
  done
  echo '[heartbeats.bench]'
  echo 'period = "1h"'
} > runbook.toml

OWNER="bench-owner-key-$(head -c 24 /dev/urandom | base64 | tr -dc a-zA-Z0-9)"
PORT=$((20000 + RANDOM % 20000))
SECURITY_OWNER_KEYS="$OWNER" PORT="$PORT" RUNBOOK_LOG=warn "$RUNBOOK" serve 2>serve.log &
SERVE=$!
cleanup() { kill "$SERVE" 2>/dev/null || true; kill "${UP_PID:-0}" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done

ticks() { awk '{print $14 + $15}' "/proc/$SERVE/stat"; }
HZ=$(getconf CLK_TCK)
echo "warming up 30 s with $N probes..." >&2
sleep 30
c0=$(ticks); t0=$(date +%s.%N)
rss_max=0
for _ in $(seq 1 "$SECS"); do
  sleep 1
  r=$(awk '/VmRSS/ {print $2}' "/proc/$SERVE/status")
  [ "$r" -gt "$rss_max" ] && rss_max=$r
done
c1=$(ticks); t1=$(date +%s.%N)
cpu=$(python3 -c "print(f'{($c1-$c0)/$HZ/($t1-$t0)*100:.1f}')")
checks=$(curl -sf -H "x-runbook-api-key: $OWNER" "http://127.0.0.1:$PORT/api/probes" \
  | python3 -c "import json,sys; d=json.load(sys.stdin); print(sum(p['last_24h']['checks'] for p in d), sum(p['status']=='up' for p in d))")
rss_mib=$((rss_max / 1024))

KEY=$(curl -sf -H "x-runbook-api-key: $OWNER" "http://127.0.0.1:$PORT/api/heartbeats" \
  | python3 -c "import json,sys; print(json.load(sys.stdin)[0]['ping_path'])")
echo "heartbeat pings for 20 s (wrk -t2 -c32) while the probes keep running..." >&2
wrk -t2 -c32 -d20s --latency "http://127.0.0.1:$PORT$KEY" > wrk.txt
rps=$(awk '/Requests\/sec/ {print $2}' wrk.txt)
p50=$(awk '$1=="50%" {print $2}' wrk.txt)
p99=$(awk '$1=="99%" {print $2}' wrk.txt)
errors=$(grep -E "Non-2xx|Socket errors" wrk.txt || echo none)

# What a year of N probes leaves in the state store: the retention keeps 30 days of hourly
# rollups and 400 days of daily ones (the raw results live in memory). Filled into a copy of
# this run's state.db, through its own schema.
kill "$SERVE" 2>/dev/null || true; wait "$SERVE" 2>/dev/null || true
python3 - "$N" runbook-data/state.db year.db <<'PY'
import sqlite3, sys
n, src, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
live = sqlite3.connect(src)
assert live.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
db = sqlite3.connect(path)
live.backup(db)
H, D = 3_600_000, 86_400_000
t0 = 1_790_000_000_000 - 1_790_000_000_000 % D
db.executemany("INSERT OR REPLACE INTO probe_rollups VALUES (?,?,?,?,?,?)",
    ((f"p{p}", t0 - h * H, 360, h % 7 == 0, 360 * 3, 40) for p in range(1, n + 1) for h in range(30 * 24)))
db.executemany("INSERT OR REPLACE INTO probe_daily VALUES (?,?,?,?,?,?)",
    ((f"p{p}", t0 - (30 + d) * D, 8640, d % 5, 8640 * 3, 90) for p in range(1, n + 1) for d in range(370)))
db.commit()
db.execute("VACUUM")
PY
year_mib=$(python3 -c "import os; print(round(os.path.getsize('year.db') / 2**20, 1))")

echo
echo "| measure | runbook serve | goal |"
echo "|---|---|---|"
echo "| $N HTTP probes every 10 s: CPU (share of one core, ${SECS} s) | ${cpu}% | < 5% |"
echo "| resident memory (max over the run) | ${rss_mib} MiB | < 100 MiB |"
echo "| checks stored (total, probes up) | ${checks} | |"
echo "| heartbeat pings per second (wrk -t2 -c32, 20 s) | ${rps} | > 10,000 |"
echo "| ping latency p50 / p99 | ${p50} / ${p99} | |"
echo "| ping errors | ${errors} | |"
echo "| state store after a year of $N probes (30 d hourly + 400 d daily rollups) | ${year_mib} MiB | a few hundred MB |"

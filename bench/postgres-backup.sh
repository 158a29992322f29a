#!/usr/bin/env bash
# Backup time only, side by side: one or more runbook binaries, alternating, against
# `pg_dump -Fc -f` on the same pgbench database, RUNS times each (min / median / max).
#
#   bench/postgres-backup.sh [SCALE] [RUNS] [BINARY...]     (defaults: 70, 3, this checkout's release build)
#
# To compare a change, build the binary before it and pass both, e.g.
#   bench/postgres-backup.sh 70 3 /tmp/runbook-before ~/.cache/runbook-target/release/runbook
set -euo pipefail
SCALE="${1:-70}"
RUNS="${2:-3}"
shift 2 || true
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/runbook-target}"
if [ $# -eq 0 ]; then
  cargo build --release -q -p runbook --manifest-path "$ROOT/Cargo.toml"
  set -- "$CARGO_TARGET_DIR/release/runbook"
fi
PG=(-h 127.0.0.1 -U postgres)
DB=rb_bench_backup
WORK="$(mktemp -d)"
trap 'psql "${PG[@]}" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" postgres >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
cd "$WORK"
psql "${PG[@]}" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" postgres >/dev/null 2>&1 || true
createdb "${PG[@]}" $DB
pgbench "${PG[@]}" -i -q -s "$SCALE" $DB >/dev/null 2>&1
echo pw > key
secs() { local s; s=$(date +%s.%N); "$@" >/dev/null; python3 -c "print(f'{$(date +%s.%N) - $s:.2f}')"; }
stats() { python3 -c "import sys,statistics as s; v=sorted(map(float,sys.argv[1:])); print(f'{v[0]:.2f} / {s.median(v):.2f} / {v[-1]:.2f}')" "$@"; }
declare -A times
n=0
for bin in "$@"; do
  n=$((n + 1))
  mkdir -p "b$n"
  printf '[repository]\npath = "repo"\npassword_file = "../key"\n[targets.pg]\nkind = "postgres"\nurl = "postgres://postgres@127.0.0.1:5432/%s"\n' "$DB" > "b$n/runbook.toml"
done
for r in $(seq "$RUNS"); do
  n=0
  for bin in "$@"; do
    n=$((n + 1))
    rm -rf "b$n/repo" "b$n/runbook-data"
    times[$n]="${times[$n]:-} $(cd "b$n" && secs "$bin" backup pg)"
  done
  times[pg]="${times[pg]:-} $(secs pg_dump "${PG[@]}" -Fc -f plain.dump $DB)"
done
echo "pgbench scale $SCALE, $RUNS runs each, seconds (min / median / max):"
n=0
for bin in "$@"; do
  n=$((n + 1))
  echo "| runbook backup ($bin) | $(stats ${times[$n]}) |"
done
echo "| pg_dump -Fc -f | $(stats ${times[pg]}) |"

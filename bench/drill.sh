#!/usr/bin/env bash
# Side-by-side benchmark: a restore drill of a PostgreSQL target vs a bare pg_restore of the
# same dump.
#
#   bench/drill.sh [SCALE]      (default: 70, ~1 GB)
#
# One run on one database: `runbook backup`; the same dump taken out of the repository with
# stock `restic dump` into a file; `pg_restore --single-transaction -d` of that file into a new
# database (the bare restore); `runbook drill` with the built-in checks only, then with an
# `sql` check and `row_counts` added. Reports the drill's wall time, its restore and check
# phases, and its overhead over the bare restore. Needs pgbench, restic.
set -euo pipefail
SCALE="${1:-70}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/runbook-target}"
cargo build --release -q -p runbook --manifest-path "$ROOT/Cargo.toml"
RUNBOOK="$CARGO_TARGET_DIR/release/runbook"
PG=(-h 127.0.0.1 -U postgres)
DB=rb_drill_src
WORK="$(mktemp -d)"
cleanup() {
  for d in $DB rb_drill_bare; do psql "${PG[@]}" -qc "DROP DATABASE IF EXISTS $d WITH (FORCE)" postgres >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.1f}')"; }
mib() { python3 -c "print(f'{$1 / 1048576:.1f}')"; }
field() { python3 -c "import json,sys; print(f'{json.load(open(\"$1\"))[0][\"$2\"]:.1f}')"; }

psql "${PG[@]}" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" postgres >/dev/null
createdb "${PG[@]}" $DB
echo "pgbench -i -s $SCALE ..." >&2
pgbench "${PG[@]}" -i -q -s "$SCALE" $DB >/dev/null 2>&1
DBSIZE=$(psql "${PG[@]}" -tAc "SELECT pg_database_size('$DB')" $DB)

echo pw > key
write_config() {
  cat > runbook.toml <<TOML
[repository]
path = "repo"
password_file = "key"
[targets.pg]
kind = "postgres"
url = "postgres://postgres@127.0.0.1:5432/$DB"
[targets.pg.drill]
$1
TOML
}
write_config ""
echo "backup..." >&2
"$RUNBOOK" backup pg >/dev/null
RESTIC_PASSWORD_FILE=key restic -q -r repo/pg dump latest "/postgres/$DB.dump" > same.dump
sync
DUMPSIZE=$(stat -c %s same.dump)

echo "bare pg_restore of the same dump..." >&2
createdb "${PG[@]}" rb_drill_bare
t0=$(now); pg_restore "${PG[@]}" --single-transaction -d rb_drill_bare same.dump; t1=$(now); bare=$(secs $t0 $t1)
psql "${PG[@]}" -qc "DROP DATABASE rb_drill_bare WITH (FORCE)" postgres

echo "drill, built-in checks..." >&2
t0=$(now); "$RUNBOOK" drill pg --json > d1.json; t1=$(now); d1=$(secs $t0 $t1)
write_config '[[targets.pg.drill.checks]]
sql = "select count(*) > 0 from pgbench_accounts"
[[targets.pg.drill.checks]]
row_counts = { tolerance = "0%" }'
echo "drill, with sql and row_counts..." >&2
t0=$(now); "$RUNBOOK" drill pg --json > d2.json; t1=$(now); d2=$(secs $t0 $t1)
python3 - "$bare" "$d1" "$d2" <<'PY'
import json, sys
bare, d1, d2 = map(float, sys.argv[1:])
for name, f, wall in (("built-in checks", "d1.json", d1), ("+ sql + row_counts", "d2.json", d2)):
    r = json.load(open(f))[0]
    assert r["outcome"] == "passed", r
    print(f"{name}: wall {wall:.1f}s restore {r['restore_seconds']:.1f}s checks {r['check_seconds']:.1f}s overhead {100 * (wall - bare) / bare:.0f}%", file=sys.stderr)
PY

cat <<MD

Database: pgbench scale $SCALE, $(mib "$DBSIZE") MiB on disk; dump $(mib "$DUMPSIZE") MiB (custom format, uncompressed).
Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM; $(pg_restore --version); restic $(restic version | cut -d' ' -f2).

| | seconds | vs bare pg_restore |
|---|---:|---:|
| bare \`pg_restore --single-transaction -d\` of the same dump (file from \`restic dump\`) | $bare | |
| \`runbook drill\`, built-in checks (wall) | $d1 | $(python3 -c "print(f'{100 * ($d1 - $bare) / $bare:+.0f}%')") |
| &nbsp;&nbsp;of which restore (repository → pg_restore) | $(field d1.json restore_seconds) | |
| &nbsp;&nbsp;of which checks | $(field d1.json check_seconds) | |
| \`runbook drill\` + \`sql\` + \`row_counts\` (wall) | $d2 | $(python3 -c "print(f'{100 * ($d2 - $bare) / $bare:+.0f}%')") |
| &nbsp;&nbsp;of which checks | $(field d2.json check_seconds) | |
MD

#!/usr/bin/env bash
# Side-by-side benchmark: a PostgreSQL target vs plain pg_dump/pg_restore and vs restic.
#
#   bench/postgres.sh [SCALE] [TRANSACTIONS]      (defaults: 70 (~1 GB), 10000)
#
# In one run on the same database: backup time (runbook backup vs `pg_dump -Fc > file`),
# restore time into a new database (runbook restore --into vs `pg_restore -d`), then
# repository growth after `pgbench` runs TRANSACTIONS transactions (runbook vs restic backing up
# `pg_dump -Fc` from stdin, both repositories fresh from the first dump). Needs pgbench, restic.
set -euo pipefail
SCALE="${1:-70}"
TX="${2:-10000}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/runbook-target}"
cargo build --release -q -p runbook --manifest-path "$ROOT/Cargo.toml"
RUNBOOK="$CARGO_TARGET_DIR/release/runbook"
PG=(-h 127.0.0.1 -U postgres)
DB=rb_bench_src
WORK="$(mktemp -d)"
cleanup() {
  for d in $DB rb_bench_a rb_bench_b; do psql "${PG[@]}" -qc "DROP DATABASE IF EXISTS $d WITH (FORCE)" postgres >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.1f}')"; }
mib() { python3 -c "print(f'{$1 / 1048576:.1f}')"; }
dusize() { du -sb "$1" | cut -f1; }

psql "${PG[@]}" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" postgres >/dev/null
createdb "${PG[@]}" $DB
echo "pgbench -i -s $SCALE ..." >&2
pgbench "${PG[@]}" -i -q -s "$SCALE" $DB >/dev/null 2>&1
DBSIZE=$(psql "${PG[@]}" -tAc "SELECT pg_database_size('$DB')" $DB)

echo pw > key
cat > runbook.toml <<TOML
[repository]
path = "repo"
password_file = "key"
[targets.pg]
kind = "postgres"
url = "postgres://postgres@127.0.0.1:5432/$DB"
TOML
export RESTIC_PASSWORD_FILE="$WORK/key"
restic -q init -r restic-repo >/dev/null

echo "backups..." >&2
t0=$(now); pg_dump "${PG[@]}" -Fc -f plain.dump $DB; t1=$(now); plain_backup=$(secs $t0 $t1)
sync
t0=$(now); "$RUNBOOK" backup pg >/dev/null; t1=$(now); rb_backup=$(secs $t0 $t1)
t0=$(now); pg_dump "${PG[@]}" -Fc -Z0 $DB | restic -q -r restic-repo backup --stdin --stdin-filename pg.dump >/dev/null; t1=$(now); rs_backup=$(secs $t0 $t1)
rb1=$(dusize repo/pg); rs1=$(dusize restic-repo)

echo "restores..." >&2
createdb "${PG[@]}" rb_bench_a
t0=$(now); pg_restore "${PG[@]}" -d rb_bench_a plain.dump; t1=$(now); plain_restore=$(secs $t0 $t1)
t0=$(now); "$RUNBOOK" restore pg --into rb_bench_b >/dev/null; t1=$(now); rb_restore=$(secs $t0 $t1)
ROWS_SRC=$(psql "${PG[@]}" -tAc "SELECT count(*) FROM pgbench_accounts" $DB)
ROWS_RB=$(psql "${PG[@]}" -tAc "SELECT count(*) FROM pgbench_accounts" rb_bench_b)

echo "pgbench $TX transactions, second backups..." >&2
pgbench "${PG[@]}" -n -t "$TX" -c 1 $DB >/dev/null 2>&1
"$RUNBOOK" backup pg >/dev/null
pg_dump "${PG[@]}" -Fc -Z0 $DB | restic -q -r restic-repo backup --stdin --stdin-filename pg.dump >/dev/null
rb_growth=$(( $(dusize repo/pg) - rb1 )); rs_growth=$(( $(dusize restic-repo) - rs1 ))

cat <<MD

Database: pgbench scale $SCALE, $(mib "$DBSIZE") MiB on disk; $ROWS_SRC accounts (restored by runbook: $ROWS_RB).
Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM; $(pg_dump --version); restic $(restic version | cut -d' ' -f2).

| | runbook | reference |
|---|---:|---:|
| backup (s) | $rb_backup | $plain_backup (\`pg_dump -Fc -f\`) |
| restore into a new database (s) | $rb_restore | $plain_restore (\`pg_restore -d\`) |
| repository after first backup (MiB) | $(mib $rb1) | $(mib $rs1) (restic, \`pg_dump -Fc -Z0\` on stdin; took ${rs_backup}s) |
| repository growth after $TX pgbench transactions (MiB) | $(mib $rb_growth) | $(mib $rs_growth) (restic) |
MD

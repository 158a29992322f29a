#!/usr/bin/env bash
# Side-by-side benchmark: runbook vs stock restic on a generated SQLite database.
#
#   bench/sqlite.sh [SIZE_MB] [WORKDIR]      (defaults: 512, /tmp/runbook-bench)
#
# Measures, for each tool in the same run on the same file: first backup time, repository
# growth after updating 1% of the rows (scattered), second backup time, and restore time of
# the latest snapshot. Prints a Markdown table for BENCHMARKS.md. Needs restic and python3;
# uses rustic too when it is on PATH.
set -euo pipefail
SIZE_MB="${1:-512}"
WORK="${2:-/tmp/runbook-bench}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/runbook-target}"
cargo build --release -q -p runbook --manifest-path "$ROOT/Cargo.toml"
RUNBOOK="$CARGO_TARGET_DIR/release/runbook"

rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }
dusize() { du -sb "$1" | cut -f1; }
mib() { python3 -c "print(f'{$1 / 1048576:.1f}')"; }

echo "generating ${SIZE_MB} MiB SQLite database..." >&2
python3 - "$SIZE_MB" <<'PY'
import sqlite3, sys, random, os
size = int(sys.argv[1]) << 20
random.seed(42)
c = sqlite3.connect("app.db")
c.execute("PRAGMA journal_mode=wal")
c.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT, payload TEXT, n INTEGER)")
c.execute("CREATE INDEX events_kind ON events(kind)")
kinds = ["signup", "order", "refund", "login", "logout", "update"]
batch, i = [], 0
while True:
    for _ in range(10000):
        i += 1
        batch.append((i, random.choice(kinds), os.urandom(90).hex() + " note " * random.randint(0, 20), i))
    c.executemany("INSERT INTO events VALUES (?,?,?,?)", batch); batch.clear(); c.commit()
    if os.path.getsize("app.db") + os.path.getsize("app.db-wal") >= size:
        break
c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
c.close()
PY
ROWS=$(python3 -c "import sqlite3; print(sqlite3.connect('app.db').execute('select count(*) from events').fetchone()[0])")
DBSIZE=$(stat -c %s app.db)

echo "pw-$(date +%s%N)" > key
cat > runbook.toml <<TOML
data_dir = "runbook-data"
[repository]
path = "runbook-data/repo"
password_file = "key"
[targets.app-db]
kind = "sqlite"
path = "app.db"
TOML
export RESTIC_PASSWORD_FILE="$WORK/key"
restic -q init -r restic-repo >/dev/null
have_rustic=0; command -v rustic >/dev/null && have_rustic=1
[ $have_rustic = 1 ] && rustic -r rustic-repo --password-file key init >/dev/null

sync; echo "first backups..." >&2
t0=$(now); "$RUNBOOK" backup app-db >/dev/null; t1=$(now); rb_first=$(secs $t0 $t1)
t0=$(now); restic -q -r restic-repo backup app.db >/dev/null; t1=$(now); rs_first=$(secs $t0 $t1)
if [ $have_rustic = 1 ]; then t0=$(now); rustic -r rustic-repo --password-file key backup app.db >/dev/null; t1=$(now); ru_first=$(secs $t0 $t1); fi
rb_size1=$(dusize runbook-data/repo/app-db); rs_size1=$(dusize restic-repo)
[ $have_rustic = 1 ] && ru_size1=$(dusize rustic-repo)

echo "updating 1% of rows..." >&2
python3 - "$ROWS" <<'PY'
import sqlite3, sys, random, os
rows = int(sys.argv[1]); random.seed(7)
c = sqlite3.connect("app.db")
ids = random.sample(range(1, rows + 1), rows // 100)
c.executemany("UPDATE events SET payload = ?, n = n + 1 WHERE id = ?", [(os.urandom(90).hex(), i) for i in ids])
c.commit(); c.execute("PRAGMA wal_checkpoint(TRUNCATE)"); c.close()
PY

sync; echo "second backups..." >&2
t0=$(now); "$RUNBOOK" backup app-db >/dev/null; t1=$(now); rb_second=$(secs $t0 $t1)
t0=$(now); restic -q -r restic-repo backup app.db >/dev/null; t1=$(now); rs_second=$(secs $t0 $t1)
if [ $have_rustic = 1 ]; then t0=$(now); rustic -r rustic-repo --password-file key backup app.db >/dev/null; t1=$(now); ru_second=$(secs $t0 $t1); fi
rb_growth=$(( $(dusize runbook-data/repo/app-db) - rb_size1 ))
rs_growth=$(( $(dusize restic-repo) - rs_size1 ))
[ $have_rustic = 1 ] && ru_growth=$(( $(dusize rustic-repo) - ru_size1 ))

echo "restores..." >&2
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
t0=$(now); "$RUNBOOK" restore app-db --to restored-runbook/app.db >/dev/null; t1=$(now); rb_restore=$(secs $t0 $t1)
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
t0=$(now); restic -q -r restic-repo restore latest --target restored-restic >/dev/null; t1=$(now); rs_restore=$(secs $t0 $t1)
if [ $have_rustic = 1 ]; then sync; t0=$(now); rustic -r rustic-repo --password-file key restore latest restored-rustic >/dev/null; t1=$(now); ru_restore=$(secs $t0 $t1); fi

cat <<MD

Database: $(mib $DBSIZE) MiB, $ROWS rows, page size $(python3 -c "import sqlite3; print(sqlite3.connect('app.db').execute('pragma page_size').fetchone()[0])"); update: 1% of rows at random ($(( ROWS / 100 )) rows).
Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(uname -r); restic $(restic version | cut -d' ' -f2); runbook $("$RUNBOOK" --version | cut -d' ' -f2).

| | runbook | restic |$([ $have_rustic = 1 ] && echo " rustic |")
|---|---:|---:|$([ $have_rustic = 1 ] && echo "---:|")
| first backup (s) | $rb_first | $rs_first |$([ $have_rustic = 1 ] && echo " $ru_first |")
| repository after first backup (MiB) | $(mib $rb_size1) | $(mib $rs_size1) |$([ $have_rustic = 1 ] && echo " $(mib $ru_size1) |")
| second backup after 1% update (s) | $rb_second | $rs_second |$([ $have_rustic = 1 ] && echo " $ru_second |")
| repository growth after 1% update (MiB) | $(mib $rb_growth) | $(mib $rs_growth) |$([ $have_rustic = 1 ] && echo " $(mib $ru_growth) |")
| restore latest (s) | $rb_restore | $rs_restore |$([ $have_rustic = 1 ] && echo " $ru_restore |")

Growth ratio runbook/restic: $(python3 -c "print(f'{$rb_growth / max($rs_growth,1) * 100:.1f}%')")
MD

#!/usr/bin/env bash
# Side-by-side benchmark on S3-compatible storage: runbook vs stock restic, both writing to the
# same local S3 server (moto's, as in the tests), on the same generated SQLite database.
#
#   bench/s3.sh [SIZE_MB] [WORKDIR]      (defaults: 256, /tmp/runbook-bench-s3)
#
# Uses $RUNBOOK_TEST_S3 when it answers, else starts moto_server on 127.0.0.1:9333 (and stops
# it at the end). Measures first backup, a second backup after updating 1% of the rows, and the
# restore of the latest snapshot. Prints a Markdown table for BENCHMARKS.md.
set -euo pipefail
SIZE_MB="${1:-256}"
WORK="${2:-/tmp/runbook-bench-s3}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/runbook-target}"
cargo build --release -q -p runbook --manifest-path "$ROOT/Cargo.toml"
RUNBOOK="$CARGO_TARGET_DIR/release/runbook"
S3="${RUNBOOK_TEST_S3:-http://127.0.0.1:9333}"
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret

up() { python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" "$S3" >/dev/null 2>&1; }
moto_pid=""
if ! up; then
  moto_server -H 127.0.0.1 -p "${S3##*:}" >/dev/null 2>&1 &
  moto_pid=$!
  for _ in $(seq 1 50); do up && break; sleep 0.2; done
fi
trap '[ -n "$moto_pid" ] && kill "$moto_pid" 2>/dev/null || true' EXIT
bucket() { python3 -c "import sys, urllib.request as u; u.urlopen(u.Request(sys.argv[1], method='PUT'), timeout=10)" "$S3/$1"; }
B="bench-$(date +%s)"
bucket "$B"

rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }

echo "generating ${SIZE_MB} MiB SQLite database..." >&2
python3 - "$SIZE_MB" <<'PY'
import sqlite3, sys, random, os
size = int(sys.argv[1]) << 20
random.seed(42)
c = sqlite3.connect("app.db")
c.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT, payload TEXT, n INTEGER)")
batch, i = [], 0
while os.path.getsize("app.db") < size:
    for _ in range(10000):
        i += 1
        batch.append((i, "order", os.urandom(90).hex() + " note " * random.randint(0, 20), i))
    c.executemany("INSERT INTO events VALUES (?,?,?,?)", batch); batch.clear(); c.commit()
c.close()
PY
ROWS=$(python3 -c "import sqlite3; print(sqlite3.connect('app.db').execute('select count(*) from events').fetchone()[0])")

echo "pw-$(date +%s%N)" > key
cat > runbook.toml <<TOML
data_dir = "runbook-data"
[repository]
url = "s3:$S3/$B/runbook"
password_file = "key"
[targets.app-db]
kind = "sqlite"
path = "app.db"
TOML
export RESTIC_PASSWORD_FILE="$WORK/key" RESTIC_REPOSITORY="s3:$S3/$B/restic"
restic -q init >/dev/null

t0=$(now); "$RUNBOOK" backup app-db >/dev/null; t1=$(now); rb_first=$(secs $t0 $t1)
t0=$(now); restic -q backup app.db >/dev/null; t1=$(now); rs_first=$(secs $t0 $t1)
python3 - "$ROWS" <<'PY'
import sqlite3, sys, random, os
rows = int(sys.argv[1]); random.seed(7)
c = sqlite3.connect("app.db")
ids = random.sample(range(1, rows + 1), rows // 100)
c.executemany("UPDATE events SET payload = ?, n = n + 1 WHERE id = ?", [(os.urandom(90).hex(), i) for i in ids])
c.commit(); c.close()
PY
t0=$(now); "$RUNBOOK" backup app-db >/dev/null; t1=$(now); rb_second=$(secs $t0 $t1)
t0=$(now); restic -q backup app.db >/dev/null; t1=$(now); rs_second=$(secs $t0 $t1)
t0=$(now); "$RUNBOOK" restore app-db --to rb-restored.db >/dev/null; t1=$(now); rb_restore=$(secs $t0 $t1)
t0=$(now); restic -q restore latest --target rs-restored >/dev/null; t1=$(now); rs_restore=$(secs $t0 $t1)
# Both restores hold the same rows (the files differ in SQLite's header: runbook stores a copy
# made with SQLite's backup API, restic the live file).
same=$(python3 -c "
import sqlite3, sys
q = 'select count(*), sum(n), group_concat(length(payload)) from events'
a, b = (sqlite3.connect(f).execute(q).fetchone() for f in sys.argv[1:])
print(a == b)" rb-restored.db rs-restored/app.db)
[ "$same" = True ] || { echo "restored copies hold different rows" >&2; exit 1; }

# A bucket of 1,000 objects (4-400 KiB): runbook's bucket target against the way to do it with
# restic (download the objects with boto3, then back the directory up).
echo "filling a 1,000-object bucket..." >&2
IMG="img-$(date +%s)"; bucket "$IMG"
boto() { python3 -c "import sys, os, boto3
s3 = boto3.client('s3', endpoint_url='$S3', aws_access_key_id='k', aws_secret_access_key='s', region_name='us-east-1')
$1" "${@:2}"; }
boto "
for i in range(1000):
    s3.put_object(Bucket=sys.argv[1], Key=f'img/{i:04}.jpg', Body=os.urandom(4096 * (i % 100 + 1)), ContentType='image/jpeg')" "$IMG"
cat >> runbook.toml <<TOML
[targets.images]
kind = "bucket"
url = "s3:$S3/$IMG/img"
TOML
download() { boto "
for page in s3.get_paginator('list_objects_v2').paginate(Bucket=sys.argv[1]):
    for o in page.get('Contents', []):
        p = os.path.join(sys.argv[2], o['Key']); os.makedirs(os.path.dirname(p), exist_ok=True)
        s3.download_file(sys.argv[1], o['Key'], p)" "$IMG" "$1"; }
t0=$(now); "$RUNBOOK" backup images >/dev/null; t1=$(now); rbb_first=$(secs $t0 $t1)
t0=$(now); "$RUNBOOK" backup images >/dev/null; t1=$(now); rbb_second=$(secs $t0 $t1)
t0=$(now); "$RUNBOOK" restore images --to rb-images >/dev/null; t1=$(now); rbb_restore=$(secs $t0 $t1)
export RESTIC_REPOSITORY="s3:$S3/$B/restic-images"; restic -q init >/dev/null
t0=$(now); download dl; restic -q backup dl >/dev/null; t1=$(now); rsb_first=$(secs $t0 $t1)
t0=$(now); rm -rf dl; download dl; restic -q backup dl >/dev/null; t1=$(now); rsb_second=$(secs $t0 $t1)
t0=$(now); restic -q restore latest --target rs-images >/dev/null; t1=$(now); rsb_restore=$(secs $t0 $t1)
BUCKET_MB=$(du -sm dl | cut -f1)

echo "| tool | first backup (s) | second backup, 1% rows changed (s) | restore (s) |"
echo "|---|---|---|---|"
echo "| runbook | $rb_first | $rb_second | $rb_restore |"
echo "| restic $(restic version | cut -d' ' -f2) | $rs_first | $rs_second | $rs_restore |"
echo
echo "($(du -m app.db | cut -f1) MiB SQLite, $ROWS rows; local S3 server: moto at $S3; $(nproc) cores)"
echo
echo "| bucket of 1,000 objects ($BUCKET_MB MiB) | first backup (s) | second backup, nothing changed (s) | restore to a directory (s) |"
echo "|---|---|---|---|"
echo "| runbook (bucket target) | $rbb_first | $rbb_second | $rbb_restore |"
echo "| boto3 download + restic backup | $rsb_first | $rsb_second | $rsb_restore |"

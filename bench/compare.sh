#!/usr/bin/env bash
# Side by side in one run: runbook against restic, rustic and borg (each when installed;
# kopia when on PATH), three repetitions each, wall time min/median/max and peak RSS.
#
#   bench/compare.sh [SQLITE_MB] [PG_SCALE] [REPS] [WORKDIR]   (defaults: 512 70 3 /tmp/runbook-compare)
#
# Workloads:
#   sqlite  a generated SQLite database of SQLITE_MB: first backup into an empty repository,
#           second backup after 1% of the rows changed (scattered), growth, restore latest
#           (and restic's restore followed by a sync of the file: runbook's restore syncs).
#   tree    real source files: the cargo registry's sources and the Rust toolchain's HTML docs,
#           copied once to WORKDIR/tree (about 1.2 GB): first backup, second backup after 1% of
#           the files changed (a line appended to every hundredth), growth, restore latest.
#   pg      the pgbench database at PG_SCALE: runbook vs `pg_dump -Fc -f` (backup; also with
#           PGSSLMODE=disable, as runbook's own tools connect over loopback) and
#           `pg_restore -d` (restore into a new database; also followed by ANALYZE, as
#           runbook's restore is); the dump runbook takes
#           (`pg_dump -Fc -Z0`) piped into `restic backup --stdin` (and rustic's `backup -`).
# Set RUNBOOK=PATH to measure a binary already built (no cargo build: one that another cargo
# holds the target directory of, or an older build to compare).
# Set WORKLOADS="sqlite tree pg" (default) to choose, TREE_SRC=DIR for another tree,
# SQLITE_JOURNAL=delete for a database in rollback-journal mode (default wal, as applications run
# SQLite; runbook reads a WAL database in place and copies any other first).
# Needs /usr/bin/time (Debian `time`).
# The other tools: `apt-get install borgbackup`, `cargo install rustic-rs --locked` (about 26 minutes
# on two cores); kopia is in none of the registries this machine reaches.
# Prints Markdown tables for BENCHMARKS.md; the raw samples go to WORKDIR/samples.tsv.
set -euo pipefail
SQLITE_MB="${1:-512}"
PG_SCALE="${2:-70}"
REPS="${3:-3}"
WORK="${4:-/tmp/runbook-compare}"
WORKLOADS="${WORKLOADS:-sqlite tree pg}"
SQLITE_JOURNAL="${SQLITE_JOURNAL:-wal}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/runbook-target}"
if [ -z "${RUNBOOK:-}" ]; then
    cargo build --release -q -p runbook --manifest-path "$ROOT/Cargo.toml"
    RUNBOOK="$CARGO_TARGET_DIR/release/runbook"
fi

mkdir -p "$WORK" && cd "$WORK"
: > samples.tsv
echo "pw-compare" > key
export RESTIC_PASSWORD_FILE="$WORK/key" BORG_PASSPHRASE="pw-compare" BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
TOOLS="runbook restic"
command -v rustic >/dev/null && TOOLS="$TOOLS rustic"
command -v borg >/dev/null && TOOLS="$TOOLS borg"
command -v kopia >/dev/null && TOOLS="$TOOLS kopia"
echo "tools: $TOOLS" >&2

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }

# measure WORKLOAD STEP TOOL REP COMMAND: wall seconds and peak RSS (KiB, the largest process
# of the command's tree) into samples.tsv.
measure() {
    local w=$1 step=$2 tool=$3 rep=$4 cmd=$5
    /usr/bin/time -f "%e %M" -o time.out sh -c "$cmd" >/dev/null 2>cmd.err || {
        echo "FAILED: $w $step $tool: $cmd" >&2; cat cmd.err >&2; exit 1; }
    read -r secs rss < <(tail -1 time.out)
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "$step" "$tool" "$rep" "$secs" "$rss" >> samples.tsv
}
size_of() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$(du -sb "$5" | cut -f1)" 0 >> samples.tsv; }

runbook_config() { # NAME KIND LINES...
    cat > runbook.toml <<TOML
data_dir = "rb-data"
[repository]
path = "rb-data/repo"
password_file = "key"
[targets.$1]
kind = "$2"
$3
TOML
}

# init TOOL: a fresh, empty repository for TOOL.
init() {
    rm -rf rb-data restic-repo rustic-repo borg-repo kopia-repo kopia.config
    case $1 in
        runbook) ;;  # created by the first backup
        restic) restic -q init -r restic-repo >/dev/null ;;
        rustic) rustic -r rustic-repo --password-file key init >/dev/null 2>&1 ;;
        borg) borg init -e repokey-blake2 borg-repo ;;
        kopia) kopia --config-file kopia.config repository create filesystem --path kopia-repo --password pw-compare >/dev/null 2>&1 ;;
    esac
}

# backup TOOL TARGET PATH: one backup of PATH (TARGET names the runbook target).
backup_cmd() {
    case $1 in
        runbook) echo "$RUNBOOK backup $2" ;;
        restic) echo "restic -q -r restic-repo backup $3" ;;
        rustic) echo "rustic -r rustic-repo --password-file key backup $3" ;;
        borg) echo "borg create borg-repo::b$(date +%s%N) $3" ;;
        kopia) echo "kopia --config-file kopia.config snapshot create $3" ;;
    esac
}
repo_of() { case $1 in runbook) echo rb-data/repo;; *) echo "$1-repo";; esac; }
# restore TOOL TARGET DEST
restore_cmd() {
    case $1 in
        runbook) echo "$RUNBOOK restore $2 --to $3/out --force" ;;
        restic) echo "restic -q -r restic-repo restore latest --target $3" ;;
        rustic) echo "rustic -r rustic-repo --password-file key restore latest $3" ;;
        borg) echo "mkdir -p $3 && cd $3 && borg extract $WORK/borg-repo::\$(borg list --short --last 1 $WORK/borg-repo)" ;;
        kopia) echo "kopia --config-file kopia.config snapshot restore \$(kopia --config-file kopia.config snapshot list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1][\"id\"])') $3" ;;
    esac
}

if [[ " $WORKLOADS " == *" sqlite "* ]]; then
    BASE="base-$SQLITE_JOURNAL.db"
    if [ ! -f "$BASE" ]; then
        echo "generating ${SQLITE_MB} MiB SQLite database ($SQLITE_JOURNAL)..." >&2
        python3 - "$SQLITE_MB" "$SQLITE_JOURNAL" <<'PY'
import sqlite3, sys, random, os
size = int(sys.argv[1]) << 20
random.seed(42)
c = sqlite3.connect("base.db")
c.execute("PRAGMA journal_mode=wal")
c.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT, payload TEXT, n INTEGER)")
c.execute("CREATE INDEX events_kind ON events(kind)")
kinds = ["signup", "order", "refund", "login", "logout", "update"]
i = 0
while True:
    batch = []
    for _ in range(10000):
        i += 1
        batch.append((i, random.choice(kinds), os.urandom(90).hex() + " note " * random.randint(0, 20), i))
    c.executemany("INSERT INTO events VALUES (?,?,?,?)", batch); c.commit()
    if os.path.getsize("base.db") + os.path.getsize("base.db-wal") >= size:
        break
c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
c.execute(f"PRAGMA journal_mode={sys.argv[2]}")
c.close()
os.rename("base.db", f"base-{sys.argv[2]}.db")
PY
    fi
    runbook_config app-db sqlite 'path = "app.db"'
    for rep in $(seq 1 "$REPS"); do
        for tool in $TOOLS; do
            echo "sqlite rep $rep: $tool" >&2
            cp "$BASE" app.db
            init "$tool"
            drop_caches
            measure sqlite first "$tool" "$rep" "$(backup_cmd "$tool" app-db app.db)"
            size_of sqlite size1 "$tool" "$rep" "$(repo_of "$tool")"
            python3 - <<'PY'
import sqlite3, random, os
random.seed(7)
c = sqlite3.connect("app.db")
rows = c.execute("select max(id) from events").fetchone()[0]
ids = random.sample(range(1, rows + 1), rows // 100)
c.executemany("UPDATE events SET payload = ?, n = n + 1 WHERE id = ?", [(random.randbytes(90).hex(), i) for i in ids])
c.commit(); c.close()
PY
            drop_caches
            measure sqlite second "$tool" "$rep" "$(backup_cmd "$tool" app-db app.db)"
            size_of sqlite size2 "$tool" "$rep" "$(repo_of "$tool")"
            rm -rf restored && drop_caches
            measure sqlite restore "$tool" "$rep" "$(restore_cmd "$tool" app-db "$WORK/restored")"
            if [ "$tool" = restic ]; then
                # restic returns with the restored file still in the page cache; runbook syncs
                # it to disk (and checks it) before it reports the restore done. The same
                # restore made durable: restic's, then a sync of the file it wrote.
                rm -rf restored && drop_caches
                measure sqlite "restore, synced" restic "$rep" \
                    "$(restore_cmd restic app-db "$WORK/restored") && sync \$(find $WORK/restored -name app.db)"
            fi
        done
    done
fi

if [[ " $WORKLOADS " == *" tree "* ]]; then
    if [ ! -d tree ]; then
        echo "copying the source tree..." >&2
        mkdir -p tree
        if [ -n "${TREE_SRC:-}" ]; then
            cp -r "$TREE_SRC" tree/src
        else
            cp -r "$HOME/.cargo/registry/src" tree/registry
            cp -r "$(ls -d "$HOME"/.rustup/toolchains/*/share/doc | head -1)" tree/rust-doc
        fi
    fi
    runbook_config tree files 'paths = ["tree"]'
    for rep in $(seq 1 "$REPS"); do
        for tool in $TOOLS; do
            echo "tree rep $rep: $tool" >&2
            init "$tool"
            drop_caches
            measure tree first "$tool" "$rep" "$(backup_cmd "$tool" tree tree)"
            size_of tree size1 "$tool" "$rep" "$(repo_of "$tool")"
            # 1% of the files change (every hundredth, a line appended), then a second backup.
            find tree -type f | sort | awk 'NR % 100 == 0' | while IFS= read -r f; do
                echo "changed: $tool $rep" >> "$f"
            done
            drop_caches
            measure tree second "$tool" "$rep" "$(backup_cmd "$tool" tree tree)"
            size_of tree size2 "$tool" "$rep" "$(repo_of "$tool")"
            rm -rf restored && drop_caches
            measure tree restore "$tool" "$rep" "$(restore_cmd "$tool" tree "$WORK/restored")"
        done
    done
    rm -rf restored
fi

if [[ " $WORKLOADS " == *" pg "* ]]; then
    DB="bench_compare_s${PG_SCALE}"
    if ! psql -h 127.0.0.1 -U postgres -tAc "select 1 from pg_database where datname='$DB'" | grep -q 1; then
        echo "pgbench -i -s $PG_SCALE..." >&2
        createdb -h 127.0.0.1 -U postgres "$DB"
        pgbench -h 127.0.0.1 -U postgres -i -q -s "$PG_SCALE" "$DB" >/dev/null 2>&1
    fi
    runbook_config pg postgres "url = \"postgres://postgres@127.0.0.1:5432/$DB\""
    for rep in $(seq 1 "$REPS"); do
        echo "pg rep $rep" >&2
        # Caches dropped (and dirty pages written) first: the tree workload's restore leaves
        # more than a GB to write back; the first backup right after it once took 10.2 s
        # against 6.3-7.0 s in a run of its own.
        init runbook && drop_caches
        measure pg backup runbook "$rep" "$RUNBOOK backup pg"
        drop_caches
        measure pg backup pg_dump "$rep" "pg_dump -h 127.0.0.1 -U postgres -Fc -f dump.fc $DB"
        # runbook's tools connect to a server on loopback without TLS (README); pg_dump as
        # users run it by hand uses libpq's default (`prefer`: TLS when the server has it).
        # The same pg_dump without TLS, for reference.
        drop_caches
        measure pg backup "pg_dump, no TLS" "$rep" "PGSSLMODE=disable pg_dump -h 127.0.0.1 -U postgres -Fc -f dump.fc $DB"
        # Before each restore the server's own dirty buffers are written too (a checkpoint:
        # `sync` does not reach them), so no restore pays for the one before it. runbook's
        # restore ends with ANALYZE (the restored database is ready for queries); a bare
        # pg_restore does not, so it is also measured followed by one.
        for who in runbook pg_restore "pg_restore, analyzed"; do
            dropdb -h 127.0.0.1 -U postgres --if-exists "${DB}_r"
            psql -h 127.0.0.1 -U postgres -qc CHECKPOINT && drop_caches
            case $who in
                runbook) measure pg restore runbook "$rep" "$RUNBOOK restore pg --into ${DB}_r" ;;
                pg_restore)
                    createdb -h 127.0.0.1 -U postgres "${DB}_r"
                    measure pg restore pg_restore "$rep" "pg_restore -h 127.0.0.1 -U postgres -d ${DB}_r dump.fc" ;;
                *)
                    createdb -h 127.0.0.1 -U postgres "${DB}_r"
                    measure pg "restore, analyzed" pg_restore "$rep" \
                        "pg_restore -h 127.0.0.1 -U postgres -d ${DB}_r dump.fc && psql -h 127.0.0.1 -U postgres -qd ${DB}_r -c ANALYZE" ;;
            esac
        done
        dropdb -h 127.0.0.1 -U postgres --if-exists "${DB}_r"
        # The same dump runbook takes (uncompressed custom format), piped into each tool that
        # reads a stream: the same job, for time and memory (after runbook's restore: `init`
        # empties every repository).
        init restic && drop_caches
        measure pg backup "restic (stdin)" "$rep" "pg_dump -h 127.0.0.1 -U postgres -Fc -Z0 $DB | restic -q -r restic-repo backup --stdin --stdin-filename $DB.dump"
        if command -v rustic >/dev/null; then
            init rustic && drop_caches
            measure pg backup "rustic (stdin)" "$rep" "pg_dump -h 127.0.0.1 -U postgres -Fc -Z0 $DB | rustic -r rustic-repo --password-file key backup --stdin-filename $DB.dump -"
        fi
    done
    rm -f dump.fc
fi

echo >&2
echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(uname -r); runbook $("$RUNBOOK" --version | cut -d' ' -f2-); restic $(restic version | cut -d' ' -f2)$(command -v rustic >/dev/null && echo "; rustic $(rustic --version | cut -d' ' -f2)")$(command -v borg >/dev/null && echo "; borg $(borg --version | cut -d' ' -f2)")."
python3 - samples.tsv "$SQLITE_JOURNAL" <<'PY'
import sys, statistics, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
by = collections.defaultdict(list)
for w, step, tool, rep, v, rss in rows:
    by[(w, step, tool)].append((float(v), int(rss)))
def mmm(xs):
    xs = sorted(xs)
    return f"{xs[0]:.2f} / {statistics.median(xs):.2f} / {xs[-1]:.2f}"
tools = []
for (w, s, t) in by:
    if t not in tools: tools.append(t)
for w in ["sqlite", "tree", "pg"]:
    steps = []
    for (ww, s, t) in by:
        if ww == w and s not in steps: steps.append(s)
    if not steps: continue
    ts = [t for t in tools if any((w, s, t) in by for s in steps)]
    print(f"\n### {w}" + (f" ({sys.argv[2]} mode)" if w == "sqlite" else "") + "\n")
    print("| | " + " | ".join(ts) + " |")
    print("|---|" + "---:|" * len(ts))
    for s in steps:
        if s.startswith("size"):
            continue
        cells = [mmm([v for v, _ in by[(w, s, t)]]) if (w, s, t) in by else "" for t in ts]
        print(f"| {s} (s, min / median / max) | " + " | ".join(cells) + " |")
        cells = [f"{max(r for _, r in by[(w, s, t)]) / 1024:.0f}" if (w, s, t) in by else "" for t in ts]
        print(f"| {s} peak RSS (MiB) | " + " | ".join(cells) + " |")
    if (w, "size1", ts[0]) in by:
        cells = [f"{statistics.median(v for v, _ in by[(w, 'size1', t)]) / 1048576:.1f}" for t in ts]
        print("| repository after first backup (MiB) | " + " | ".join(cells) + " |")
    if (w, "size2", ts[0]) in by:
        cells = [f"{statistics.median(b - a for (a, _), (b, _) in zip(by[(w, 'size1', t)], by[(w, 'size2', t)])) / 1048576:.1f}" for t in ts]
        what = "1% of the files changed" if w == "tree" else "1% update"
        print(f"| growth after {what} (MiB) | " + " | ".join(cells) + " |")
PY

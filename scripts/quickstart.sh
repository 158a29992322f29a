#!/usr/bin/env bash
# Quick start: build runbook, create ./demo with a config, a repository password and a sample
# SQLite database, back it up, list the snapshots, restore the latest one and prove it with a
# restore drill.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/runbook-target}"

cargo build --release -p runbook
runbook="$CARGO_TARGET_DIR/release/runbook"
rm -rf demo && mkdir demo && cd demo
set -x
"$runbook" init --demo
"$runbook" config check
"$runbook" backup --all --reason quickstart
"$runbook" snapshots
"$runbook" restore app-db --to restored/app.db
"$runbook" check --read-data 100
"$runbook" drill app-db
"$runbook" report drills
sqlite3 restored/app.db 'select count(*) as users from users' 2>/dev/null || true

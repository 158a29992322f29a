#!/usr/bin/env bash
# Builds the Debian package: packaging/build-deb.sh → prints the .deb's path.
# Needs cargo-deb (installed here when missing: cargo install cargo-deb --locked).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/runbook-target}"
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked >&2
cargo build --release -q -p runbook --manifest-path "$ROOT/Cargo.toml" >&2
BIN="$CARGO_TARGET_DIR/release/runbook"
OUT="$CARGO_TARGET_DIR/release/packaging"
mkdir -p "$OUT"
"$BIN" man | gzip -9n > "$OUT/runbook.1.gz"
"$BIN" completions bash > "$OUT/runbook.bash"
"$BIN" completions zsh > "$OUT/_runbook"
"$BIN" completions fish > "$OUT/runbook.fish"
cd "$ROOT"
cargo deb -p runbook --no-build --strip -q 2>&1 | tail -n 1

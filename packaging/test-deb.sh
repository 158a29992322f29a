#!/usr/bin/env bash
# Builds the Debian package and checks it: unpacked into a scratch root with `dpkg -x`, it holds
# the binary (which runs and names its commit), the man page, the completions and the systemd
# unit, and the unit passes `systemd-analyze verify` with no complaint. The same check is shown
# to catch a broken unit. Called by scripts/test.sh.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
DEB="$("$HERE/build-deb.sh")"
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT
ROOT="$SCRATCH/root"
dpkg -x "$DEB" "$ROOT"
fail() { echo "test-deb: $*" >&2; exit 1; }
for f in usr/bin/runbook usr/lib/systemd/system/runbook.service usr/share/man/man1/runbook.1.gz \
         usr/share/bash-completion/completions/runbook usr/share/zsh/vendor-completions/_runbook \
         usr/share/fish/vendor_completions.d/runbook.fish etc/default/runbook etc/runbook/runbook.toml; do
  [ -e "$ROOT/$f" ] || fail "$f is not in the package"
done
"$ROOT/usr/bin/runbook" --version | grep -q "(commit " || fail "--version names no commit"
dpkg-deb -f "$DEB" Depends | grep -q adduser || fail "Depends lacks adduser"
# The shipped config is valid as it is (no targets yet; the password comes after `runbook init`)
# and keeps data in the state directory.
RUNBOOK_REPOSITORY_PASSWORD=check-only RUNBOOK_CONFIG="$ROOT/etc/runbook/runbook.toml" "$ROOT/usr/bin/runbook" config check --offline >/dev/null 2>&1 \
  || fail "the shipped config does not check"
grep -q '^data_dir = "/var/lib/runbook"' "$ROOT/etc/runbook/runbook.toml" || fail "the config's data_dir is not the state directory"
MANPATH="$ROOT/usr/share/man" man -w runbook >/dev/null || fail "man page not found"

# The unit as installed, with ExecStart pointing into the scratch root (the host has no
# /usr/bin/runbook). Any complaint counts: systemd-analyze only warns about bad values.
verify() {
  local out
  out="$(MANPATH="$ROOT/usr/share/man" systemd-analyze verify "$1" 2>&1)" || { echo "$out"; return 1; }
  [ -z "$out" ] || { echo "$out"; return 1; }
}
UNIT="$SCRATCH/runbook.service"
sed "s#/usr/bin/runbook#$ROOT/usr/bin/runbook#" "$ROOT/usr/lib/systemd/system/runbook.service" > "$UNIT"
verify "$UNIT" || fail "the unit does not verify"
grep -q '^User=runbook' "$UNIT" && grep -q '^ProtectSystem=strict' "$UNIT" \
  && grep -q '^NoNewPrivileges=yes' "$UNIT" && grep -q '^StateDirectory=runbook' "$UNIT" \
  || fail "the unit lacks its own user or its hardening"
BAD="$SCRATCH/bad/runbook.service"
mkdir -p "$(dirname "$BAD")"
sed 's/^ProtectSystem=strict/ProtectSystem=sometimes/' "$UNIT" > "$BAD"
if verify "$BAD" >/dev/null; then fail "the check passed a broken unit"; fi
echo "test-deb: $(basename "$DEB") ok ($(du -h "$DEB" | cut -f1))"

#!/usr/bin/env bash
# The one test command: installs what the tests need on a fresh Debian machine, starts the
# database servers if they are not running, then runs the format and lint gates and the
# whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/runbook-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages the tests use: stock restic (interop tests), python3 (a second writer
# process; pip for schemathesis), the PostgreSQL and MariaDB clients (database targets),
# prometheus (its promtool lints /metrics), chromium and chromium-driver (the dashboard's
# browser tests drive headless Chromium through WebDriver); util-linux mount (the
# full-disk test mounts a tiny tmpfs when run as root) is part of the base system.
missing=()
command -v restic >/dev/null || missing+=(restic)
command -v python3 >/dev/null || missing+=(python3)
command -v pg_dump >/dev/null || missing+=(postgresql-client)
command -v mariadb-dump >/dev/null || command -v mysqldump >/dev/null || missing+=(mariadb-client)
command -v promtool >/dev/null || missing+=(prometheus)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v st >/dev/null || python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
# The Debian package's check: dpkg-deb unpacks it, systemd-analyze verifies its unit, man finds
# its man page.
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v man >/dev/null || missing+=(man-db)
command -v strip >/dev/null || missing+=(binutils)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# schemathesis (PyPI) holds the running server to its OpenAPI document.
if ! command -v st >/dev/null; then
  echo "installing: schemathesis (pip)"
  python3 -m pip install --quiet schemathesis 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages schemathesis
  hash -r
fi

# standardwebhooks (PyPI) verifies the alert webhooks' signatures in the receiver the tests run.
# aiosmtpd (PyPI) is the local SMTP sink the alert e-mail test sends to.
# junitparser (PyPI) reads `runbook smoke --junit` output as CI tools do.
for py in standardwebhooks aiosmtpd junitparser; do
  if ! python3 -c "import $py" 2>/dev/null; then
    echo "installing: $py (pip)"
    python3 -m pip install --quiet "$py" 2>/dev/null \
      || python3 -m pip install --quiet --break-system-packages "$py"
  fi
done

# A local S3-compatible server for the object-storage tests: moto's server (PyPI `moto[server]`),
# in memory, on 127.0.0.1:9333, started here when nothing answers there.
export RUNBOOK_TEST_S3="${RUNBOOK_TEST_S3:-http://127.0.0.1:9333}"
if ! command -v moto_server >/dev/null; then
  echo "installing: moto[server] (pip)"
  python3 -m pip install --quiet 'moto[server]' 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages 'moto[server]'
  hash -r
fi
s3_up() { python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" "$RUNBOOK_TEST_S3" >/dev/null 2>&1; }
if ! s3_up; then
  port="${RUNBOOK_TEST_S3##*:}"
  setsid nohup moto_server -H 127.0.0.1 -p "$port" >"${TMPDIR:-/tmp}/runbook-moto.log" 2>&1 < /dev/null &
  for _ in $(seq 1 50); do s3_up && break; sleep 0.2; done
  s3_up || { echo "the local S3 server did not start; see ${TMPDIR:-/tmp}/runbook-moto.log" >&2; exit 1; }
fi

# Database servers (used by the database-target tests): start them if they are installed
# and not running.
if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
if command -v mariadbd >/dev/null && ! mariadb-admin -h 127.0.0.1 -uroot ping >/dev/null 2>&1; then
  as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
fi
# Redis (the monitor's redis probe, the shared rate limit): installed and started when it does
# not answer on 127.0.0.1:6379; it keeps nothing on disk.
if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  if ! command -v redis-server >/dev/null; then
    echo "installing: redis-server"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  fi
  redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no --daemonize yes >/dev/null
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
# The full-disk test mounts a tmpfs, so it only runs as root (as CI is).
if [ "$(id -u)" -eq 0 ]; then
  cargo test -p runbook --test cli -- --ignored full_disk
fi
# The Debian package (cargo-deb, installed into ~/.cargo/bin when missing; a release build):
# unpacked with dpkg -x, its unit verified by systemd-analyze.
packaging/test-deb.sh

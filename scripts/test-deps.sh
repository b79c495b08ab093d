#!/usr/bin/env bash
# Installs what the test suite needs and a fresh machine may lack: Debian's Chromium, Node.js
# with npm, the browser tests' npm packages, curl and Python 3 (for schemathesis), and a
# running local PostgreSQL, and moto's S3 server (PyPI) in a venv under target/ for the
# blob store's S3 test.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_updated=0
apt_install() {
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
  if [ $apt_updated = 0 ]; then $SUDO apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

command -v chromium >/dev/null || { echo "installing chromium"; apt_install chromium; }
command -v node >/dev/null && command -v npm >/dev/null || { echo "installing nodejs and npm"; apt_install nodejs npm; }
command -v psql >/dev/null || { echo "installing postgresql-client"; apt_install postgresql-client; }
command -v curl >/dev/null || { echo "installing curl"; apt_install curl; }
# schemathesis (scripts/schemathesis.sh) installs itself into a venv under target/.
command -v python3 >/dev/null || { echo "installing python3"; apt_install python3 python3-venv python3-pip; }

# moto's server mode: a real S3-compatible HTTP server on loopback (scripts/test.sh starts
# it). Pinned to a major version, in a venv so nothing lands in the system's site-packages.
MOTO_VENV=target/moto-venv
if ! "$MOTO_VENV/bin/python" -c 'import moto, sys; sys.exit(0 if moto.__version__.startswith("5.") else 1)' 2>/dev/null \
  || [ ! -x "$MOTO_VENV/bin/moto_server" ]; then
  echo "installing moto[server] 5 into $MOTO_VENV"
  if ! python3 -m venv "$MOTO_VENV" 2>/dev/null; then
    apt_install python3-venv
    rm -rf "$MOTO_VENV"
    python3 -m venv "$MOTO_VENV"
  fi
  "$MOTO_VENV/bin/pip" install -q --disable-pip-version-check 'moto[server]==5.*'
fi

if [ ! -d tests/browser/node_modules/playwright-core ] || [ ! -d tests/browser/node_modules/axe-core ]; then
  (cd tests/browser && npm ci --no-audit --no-fund)
fi

PG_URL="${BUYLINE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
if ! psql "$PG_URL" -Atqc 'select 1' >/dev/null 2>&1; then
  echo "starting local PostgreSQL"
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
  for _ in $(seq 1 30); do psql "$PG_URL" -Atqc 'select 1' >/dev/null 2>&1 && break; sleep 1; done
  psql "$PG_URL" -Atqc 'select 1' >/dev/null || { echo "PostgreSQL at $PG_URL is not reachable" >&2; exit 1; }
fi
# Databases left by interrupted test runs (each test makes its own, named bl_t_…).
for db in $(psql "$PG_URL" -Atqc "select datname from pg_database where datname like 'bl\_t\_%'"); do
  psql "$PG_URL" -qc "drop database if exists \"$db\" with (force)" >/dev/null || true
done

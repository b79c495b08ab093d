#!/usr/bin/env bash
# Installs what the test suite needs and a fresh machine may lack: Debian's Chromium, Node.js
# with npm, the browser tests' npm packages, curl and Python 3 (for schemathesis), and a
# running local PostgreSQL.
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

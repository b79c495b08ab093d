#!/usr/bin/env bash
# Every test, from a fresh machine: installs what is missing, then runs the unit and
# integration tests on SQLite, the integration tests again on PostgreSQL, and the browser
# tests in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-deps.sh
export BUYLINE_LOG="${BUYLINE_LOG:-warn}"

echo "== unit and integration tests on SQLite"
env -u BUYLINE_TEST_DATABASE_URL cargo test --workspace

echo "== integration tests on PostgreSQL"
BUYLINE_TEST_DATABASE_URL="${BUYLINE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}" \
  cargo test -p buyline --test it

echo "== browser tests (Chromium)"
cargo build -p buyline
(cd tests/browser && npm test)

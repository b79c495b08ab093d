#!/usr/bin/env bash
# Every test, from a fresh machine: installs what is missing, then runs the unit and
# integration tests on SQLite, the integration tests again on PostgreSQL, schemathesis
# against the API, the benchmark smoke, and the browser tests in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-deps.sh
export BUYLINE_LOG="${BUYLINE_LOG:-warn}"

echo "== unit and integration tests on SQLite"
env -u BUYLINE_TEST_DATABASE_URL cargo test --workspace

echo "== integration tests on PostgreSQL"
BUYLINE_TEST_DATABASE_URL="${BUYLINE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}" \
  cargo test -p buyline --test it

cargo build -p buyline -p buyline-bench

# The API against its own OpenAPI document: schemathesis with every check, as shopper,
# merchant and operator; fails on a 5xx, a response the document does not describe, or the
# server's RSS passing 512 MiB.
echo "== schemathesis (API contract fuzzing)"
bash scripts/schemathesis.sh

# Every benchmark scenario for a moment: a run fails on a correctness counter (oversold,
# double charges, lost or badly signed webhooks, an unbalanced ledger, cart replies unanswered
# or answered twice), never on speed.
echo "== benchmark smoke"
B=target/debug/buyline
PG_URL="${BUYLINE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
$B bench baseline --duration 2 --clients 8
$B bench one-tap --duration 2 --clients 8
$B bench timeline --duration 2 --clients 8
$B bench flash-sale --stock 50 --buyers 500 --database-url "$PG_URL"
# The backlog is made by placing orders through the API: a small one keeps the debug smoke short.
$B bench webhooks --duration 2 --outage 3 --clients 8 --backlog 200
$B bench hashtag-cart --duration 2 --clients 8 --rate 100

echo "== browser tests (Chromium)"
(cd tests/browser && npm test)

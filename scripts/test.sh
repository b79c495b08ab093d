#!/usr/bin/env bash
# Every test, from a fresh machine: installs what is missing, then runs the unit and
# integration tests on SQLite, the integration tests again on PostgreSQL, schemathesis
# against the API, the benchmark smoke, and the browser tests in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-deps.sh
export BUYLINE_LOG="${BUYLINE_LOG:-warn}"

# A real S3-compatible server for the blob store's S3 test (tests/it/money_out.rs): moto on
# a free loopback port, with the AWS_* variables `--blob-url s3://…` reads.
MOTO_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
MOTO_LOG="$(mktemp)"
target/moto-venv/bin/moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$MOTO_LOG" 2>&1 &
MOTO_PID=$!
trap 'kill "$MOTO_PID" 2>/dev/null || true; rm -f "$MOTO_LOG"' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$MOTO_PORT/" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fs "http://127.0.0.1:$MOTO_PORT/" >/dev/null || { cat "$MOTO_LOG" >&2; echo "moto did not start" >&2; exit 1; }
export BUYLINE_TEST_S3_ENDPOINT="http://127.0.0.1:$MOTO_PORT"
export AWS_ENDPOINT_URL="$BUYLINE_TEST_S3_ENDPOINT" AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing

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

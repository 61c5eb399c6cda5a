#!/usr/bin/env bash
# Every test of the project: the workspace's unit, integration and doc tests
# (the conformance suite, Go compatibility, crash and fault injection,
# property tests, tower-sessions' own suite, the CLI through its binary),
# then the demo driven by headless Chromium (installed when missing).
# The PostgreSQL tests use PGSTORE_TEST_URL when set, else a private server
# that scripts/pg-test-server.sh starts (installing postgresql when missing)
# and stops around the whole cargo test run.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/pg-test-server.sh run cargo test --workspace --all-features
bash scripts/browser-test.sh

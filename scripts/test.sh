#!/usr/bin/env bash
# Every test of the project: the workspace's unit, integration and doc tests
# (the conformance suite, Go compatibility, crash and fault injection,
# property tests, tower-sessions' own suite, the CLI through its binary),
# then the demo driven by headless Chromium (installed when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --all-features
bash scripts/browser-test.sh

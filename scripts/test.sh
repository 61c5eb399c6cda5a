#!/usr/bin/env bash
# Every test of the project: the workspace's unit, integration and doc tests
# (the conformance suite, Go compatibility, crash and fault injection,
# property tests, tower-sessions' own suite, the CLI through its binary),
# then the demo driven by headless Chromium (installed when missing).
# strace is installed first when missing: the PowerLoss fsync test needs it,
# and under CI a test that cannot do its real check fails.
# The PostgreSQL tests use PGSTORE_TEST_URL when set, else a private server
# that scripts/pg-test-server.sh starts (installing postgresql when missing)
# and stops around the whole cargo test run.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v strace >/dev/null 2>&1; then
    echo "test: installing strace" >&2
    sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "test: strace is missing, and neither root nor sudo can install it" >&2
            exit 1
        fi
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace
fi

bash scripts/pg-test-server.sh run cargo test --workspace --all-features
bash scripts/browser-test.sh

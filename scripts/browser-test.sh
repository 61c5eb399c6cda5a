#!/usr/bin/env bash
# Runs the demo's real-browser test (crates/demo/tests/browser.rs): the demo
# server driven by headless Chromium through chromedriver (WebDriver).
# Installs Debian's chromium and chromium-driver first when either
# /usr/bin/chromium or /usr/bin/chromedriver (the paths the test runs) is
# missing. Extra arguments go to the test binary.
set -euo pipefail
cd "$(dirname "$0")/.."

have() { command -v "$1" >/dev/null 2>&1; }

if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
    echo "browser-test: installing chromium and chromium-driver" >&2
    sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        if ! have sudo; then
            echo "browser-test: chromium or chromedriver is missing, and neither root nor sudo can install them" >&2
            exit 1
        fi
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
fi

exec cargo test -p demo --test browser -- --ignored --nocapture "$@"

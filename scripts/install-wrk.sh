#!/usr/bin/env bash
# Installs wrk (Debian's package), the HTTP load tool of the full-stack
# benchmark (crates/bench-axum), when it is missing. Needs root or sudo.
set -euo pipefail
if command -v wrk >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk
command -v wrk

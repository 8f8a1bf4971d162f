#!/usr/bin/env bash
# Installs Debian's chromium and chromedriver for the test that opens the `rnnkit inspect` page in
# a real headless browser. Needs root (CI runs as root); elsewhere that test is skipped without it.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "install-browser: not root; skipping (the browser test will be skipped)" >&2
    exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver > /dev/null

#!/usr/bin/env bash
# System packages the test suite needs (Debian). Idempotent: installs only what is missing, and only as root
# with apt-get available; otherwise prints one line saying why it did nothing. Quiet on success.
#   chromium - headless browser for tests/test_pipelines_viz_browser.py (opens the `kedro viz build` site)
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "setup_test_system: /usr/bin/chromium missing; not root, so not installing it (the browser test will skip)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup_test_system: /usr/bin/chromium missing; no apt-get here, so not installing it (the browser test will skip)"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! { apt-get install -y --no-install-recommends chromium >"$log" 2>&1 \
       || { apt-get update >>"$log" 2>&1 && apt-get install -y --no-install-recommends chromium >>"$log" 2>&1; }; }; then
    tail -n 20 "$log" >&2
    echo "setup_test_system: apt-get install chromium failed" >&2
    exit 1
fi

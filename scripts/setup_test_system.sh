#!/usr/bin/env bash
# System packages the test suite needs (Debian). Idempotent: installs only what is missing, and only as root
# with apt-get available; otherwise prints one line saying why it did nothing. Quiet on success.
#   chromium        - headless browser for tests/test_pipelines_viz_browser.py (opens the `kedro viz build` site)
#   slurm-wlm munge - a one-node SLURM for packages/td-hpc/tests/test_slurm_real.py and
#                     tests/test_slurm_integration.py (each starts its own through scripts/slurm_cluster.sh, not here)
set -euo pipefail

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
{ command -v slurmctld && command -v slurmd && command -v sbatch; } >/dev/null 2>&1 || missing+=(slurm-wlm)
command -v munged >/dev/null 2>&1 || missing+=(munge)
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "setup_test_system: ${missing[*]} missing; not root, so not installing (the browser / real-SLURM tests will skip)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup_test_system: ${missing[*]} missing; no apt-get here, so not installing (the browser / real-SLURM tests will skip)"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! { apt-get install -y --no-install-recommends "${missing[@]}" >"$log" 2>&1 \
       || { apt-get update >>"$log" 2>&1 && apt-get install -y --no-install-recommends "${missing[@]}" >>"$log" 2>&1; }; }; then
    tail -n 20 "$log" >&2
    echo "setup_test_system: apt-get install ${missing[*]} failed" >&2
    exit 1
fi

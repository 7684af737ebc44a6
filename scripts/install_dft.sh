#!/usr/bin/env bash
# Installs the optional DFT extra (td-physics[dft]: GPAW 26.7.0 + gpaw-data 1.2.1, built here against Debian's
# libxc and OpenBLAS) into the given Python environment. `make install` runs it.
#   bash scripts/install_dft.sh [.venv/bin/python]
# The libraries are installed with apt-get when missing and this runs as root; otherwise the script says why it
# skips GPAW and exits 0: everything else works without it, and td_physics.dft.dft_available() (and the Kedro
# report) says that DFT verification is off. GPAW builds in about 30 s to 2 min; nothing is downloaded at run time
# (gpaw-data ships the PAW setups and basis sets).
set -euo pipefail
py="${1:-.venv/bin/python}"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"

have_libs() {
    [ -f /usr/include/xc.h ] && { ldconfig -p 2>/dev/null | grep -q 'libopenblas\.so ' || ls /usr/lib/*/libopenblas.so >/dev/null 2>&1; }
}

if ! have_libs; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        log="$(mktemp)"
        trap 'rm -f "$log"' EXIT
        if ! { apt-get install -y --no-install-recommends libxc-dev libopenblas-dev >"$log" 2>&1 \
               || { apt-get update >>"$log" 2>&1 && apt-get install -y --no-install-recommends libxc-dev libopenblas-dev >>"$log" 2>&1; }; }; then
            tail -n 20 "$log" >&2
            echo "install_dft: apt-get install libxc-dev libopenblas-dev failed" >&2
            exit 1
        fi
    else
        echo "install_dft: libxc-dev/libopenblas-dev missing and not root with apt-get: GPAW not built, DFT verification off (install them, then rerun this script)"
        exit 0
    fi
fi

if "$py" -c "import gpaw, gpaw_data" >/dev/null 2>&1 && "$py" -c "import gpaw; assert gpaw.__version__ == '26.7.0'" >/dev/null 2>&1; then
    "$py" -m pip install --quiet -e "$root/packages/td-physics[dft]"
    exit 0
fi
GPAW_CONFIG="$here/gpaw_siteconfig.py" "$py" -m pip install --quiet -e "$root/packages/td-physics[dft]"
"$py" -c "from td_physics.dft import dft_available; ok, why = dft_available(); assert ok, why"

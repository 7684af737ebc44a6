"""A real one-node SLURM for the tests that submit jobs: ``scripts/slurm_cluster.sh`` started on the test's own
ports (so that modules may run at once) in a short temporary folder (the munge socket path must be short), and
stopped afterwards. Where the script cannot run here (not root, no apt-get) the test is skipped with its reason."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CLUSTER = Path(__file__).resolve().parents[1] / "scripts" / "slurm_cluster.sh"


@contextmanager
def one_node_cluster(prefix: str, ctld_port: int, d_port: int) -> Iterator[tuple[dict[str, str], Path]]:
    """``(environment for slurm_cluster.sh, run folder)`` of a started cluster; ``SLURM_CONF`` is
    ``run folder / "slurm.conf"``."""
    run_dir = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    env = {
        **os.environ,
        "TD_SLURM_DIR": str(run_dir),
        "TD_SLURM_CTLD_PORT": str(ctld_port),
        "TD_SLURM_D_PORT": str(d_port),
    }
    proc = subprocess.run(["bash", str(CLUSTER), "start"], env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode == 3:
        shutil.rmtree(run_dir, ignore_errors=True)
        pytest.skip(f"scripts/slurm_cluster.sh cannot run here: {proc.stderr.strip()}")
    if proc.returncode != 0:
        subprocess.run(["bash", str(CLUSTER), "stop"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(run_dir, ignore_errors=True)
        pytest.fail(f"scripts/slurm_cluster.sh start failed:\n{proc.stderr}")
    try:
        yield env, run_dir
    finally:
        subprocess.run(["bash", str(CLUSTER), "stop"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(run_dir, ignore_errors=True)

"""Shared fixtures: a tiny td-data input for labelling (Si, diamond, strained Si, and bcc Fe, which the
labeller quarantines), as in td-data's own tests; and, for a failed real-SLURM test, the daemon logs copied
next to the test's tmp dir with their tail in the report (``scripts/slurm_cluster.sh logs``)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

CLUSTER = Path(__file__).resolve().parents[3] / "scripts" / "slurm_cluster.sh"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """When a test that uses the ``slurm`` fixture (its value is the cluster's run folder) fails, copy
    slurmctld.log, slurmd.log, munged.log, slurm.conf and jobcomp.txt into ``<tmp_path>/slurm-daemon-logs``
    and add the tail of the two daemon logs to the failure report."""
    outcome = yield
    report = outcome.get_result()
    run_dir = getattr(item, "funcargs", {}).get("slurm")
    if not report.failed or run_dir is None:
        return
    tmp = item.funcargs.get("tmp_path")
    dest = Path(tmp) / "slurm-daemon-logs" if tmp is not None else Path(tempfile.mkdtemp(prefix="slurm-logs-"))
    env = {**os.environ, "TD_SLURM_DIR": str(run_dir)}
    proc = subprocess.run(
        ["bash", str(CLUSTER), "logs", str(dest), "80"], env=env, capture_output=True, text=True, timeout=60
    )
    report.sections.append((f"slurm daemon logs (kept in {dest})", proc.stdout + proc.stderr))


@pytest.fixture
def label_opts():
    return {"spin_orbit_constants": {"Si": 0.03, "C": 0.003}, "gap_mesh": 4}


@pytest.fixture
def tiny_records():
    td_data = pytest.importorskip("td_data")
    import numpy as np

    fcc = 0.5 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]])
    frac = [[0, 0, 0], [0.25, 0.25, 0.25]]
    rec = td_data.CrystalRecord
    return [
        rec(5.431 * fcc, frac, [14, 14], id="si"),
        rec(3.567 * fcc, frac, [6, 6], id="c"),
        rec(5.5 * fcc, frac, [14, 14], id="si2"),
        rec(2.87 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5]], [26, 26], id="fe"),
    ]

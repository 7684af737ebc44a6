"""DFT verification on a real one-node SLURM (scripts/slurm_cluster.sh): a 2-task array on Si (GPAW,
the coarsest settings), the merge job after it; the same job submitted again computes nothing; after a
lost result, an array over the missing index recomputes that crystal alone.

Marked slow. The fixture starts the cluster as test_slurm_real.py does (its own folder and ports, so
that the two modules never share daemons) and stops it by the PIDs it recorded; a failed test keeps the
daemon logs (conftest.py). The jobs run ``python -m td_physics.dft`` in this interpreter, so td-physics
with the dft extra (gpaw) must be installed here; td-hpc itself does not import it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from td_hpc import (
    array_status,
    cancel,
    missing_dft_results,
    status,
    submit_dft_verification,
    write_dft_array_job,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
CLUSTER = REPO / "scripts" / "slurm_cluster.sh"
DONE = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}
FCC = [[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]]
TINY_SETTINGS = {"min_kpts": 2, "max_kpts": 2, "confirm": False}  # as in td-physics' test_dft_cli.py


@pytest.fixture(scope="module")
def slurm():
    if os.geteuid() != 0:
        pytest.skip("the real-SLURM tests start slurmctld/slurmd/munged as root; not root here")
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        pytest.skip("slurm-wlm is not installed and there is no apt-get to install it")
    if importlib.util.find_spec("gpaw") is None or importlib.util.find_spec("td_physics") is None:
        pytest.skip("the jobs need td-physics[dft] (gpaw) in this interpreter")
    run_dir = Path(tempfile.mkdtemp(prefix="td-slurm-dft-", dir="/tmp"))
    env = {**os.environ, "TD_SLURM_DIR": str(run_dir), "TD_SLURM_CTLD_PORT": "16827", "TD_SLURM_D_PORT": "16828"}
    proc = subprocess.run(["bash", str(CLUSTER), "start"], env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode == 3:
        pytest.skip(f"slurm_cluster.sh cannot run here: {proc.stderr.strip()}")
    if proc.returncode != 0:
        subprocess.run(["bash", str(CLUSTER), "stop"], env=env, capture_output=True, timeout=60)
        pytest.fail(f"slurm_cluster.sh start failed:\n{proc.stderr}")
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(run_dir / "slurm.conf")
    try:
        yield run_dir
    finally:
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old
        subprocess.run(["bash", str(CLUSTER), "stop"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(run_dir, ignore_errors=True)


def wait_for(job_id: str, timeout: float):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        st = status(job_id)
        if st.state in DONE:
            return st
        time.sleep(1)
    cancel(job_id)
    pytest.fail(f"job {job_id} did not finish in {timeout} s: {status(job_id)}")


def logs_text(log_dir: Path) -> str:
    return "".join(f"== {p.name}\n{p.read_text()}" for p in sorted(log_dir.glob("*")))


def test_dft_array_merge_and_resubmission(slurm, tmp_path):
    crystals = tmp_path / "crystals.json"
    records = [
        {"id": "si", "lattice": [[5.431 * x for x in row] for row in FCC]},
        {"id": "si-strained", "lattice": [[5.6 * x for x in row] for row in FCC]},
    ]
    for r in records:
        r.update(frac_coords=[[0, 0, 0], [0.25, 0.25, 0.25]], atomic_numbers=[14, 14])
    crystals.write_text(json.dumps({"crystals": records}))  # the format of td_physics.dft.cli.write_crystals_file
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps(TINY_SETTINGS))
    job = write_dft_array_job(
        crystals,
        tmp_path / "dft",
        time_per_task="00:10:00",
        cpus_per_task=1,
        mem="2G",
        array_parallelism=2,
        python=sys.executable,
        settings_file=settings,
    )
    array_id, merge_id = submit_dft_verification(job, cwd=tmp_path)
    merge = wait_for(merge_id, timeout=900)
    tasks = array_status(array_id)
    assert sorted(t.job_id for t in tasks) == [f"{array_id}_0", f"{array_id}_1"]
    assert all(t.state == "COMPLETED" for t in tasks) and merge.state == "COMPLETED", logs_text(job.log_dir)
    merged = json.loads(job.results_file.read_text())
    assert merged["missing"] == [] and [r["id"] for r in merged["results"]] == ["si", "si-strained"]
    assert all(r["converged"] and r["topo_class"] == "trivial" for r in merged["results"]), merged["results"]
    results = sorted(job.output_dir.glob("result-*.json"))
    before = {p.name: p.stat().st_mtime_ns for p in results}

    # submitted again: every task finds its valid result and computes nothing; the merge runs again
    merged_mtime = job.results_file.stat().st_mtime_ns
    array2, merge2 = submit_dft_verification(job, cwd=tmp_path)
    assert wait_for(merge2, timeout=300).state == "COMPLETED", logs_text(job.log_dir)
    assert all(t.state == "COMPLETED" for t in array_status(array2))
    assert {p.name: p.stat().st_mtime_ns for p in results} == before
    assert job.results_file.stat().st_mtime_ns > merged_mtime
    second = "".join(p.read_text() for p in job.log_dir.glob(f"*-{array2}_*.err"))
    assert second.count("valid result in") == 2 and "computing" not in second, second

    # a partial run (one result lost): an array over the missing index recomputes it alone
    (job.output_dir / "result-000001.json").unlink()
    assert missing_dft_results(job.output_dir, 2) == [1]
    retry = write_dft_array_job(
        crystals,
        tmp_path / "dft",
        time_per_task="00:10:00",
        cpus_per_task=1,
        mem="2G",
        python=sys.executable,
        settings_file=settings,
        indices=missing_dft_results(job.output_dir, 2),
    )
    array3, merge3 = submit_dft_verification(retry, cwd=tmp_path)
    assert wait_for(merge3, timeout=600).state == "COMPLETED", logs_text(job.log_dir)
    assert [t.job_id for t in array_status(array3)] == [f"{array3}_1"]
    assert (job.output_dir / "result-000000.json").stat().st_mtime_ns == before["result-000000.json"]
    assert json.loads(job.results_file.read_text())["missing"] == []
    third = "".join(p.read_text() for p in job.log_dir.glob(f"*-{array3}_*.err"))
    assert "crystal 1 (si-strained): computing" in third, third

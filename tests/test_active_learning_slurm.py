"""One round of active learning as td-hpc's chain on a real one-node SLURM (tiny sizes, CPU): the generate job, the
labelling array and the train job end COMPLETED, linked by afterok, and the round's outputs are where the pipeline
puts them, its labels from the array's shards.

The cluster is started and stopped by ``scripts/slurm_cluster.sh`` on its own ports (not those of
``tests/test_slurm_integration.py`` or packages/td-hpc's real-SLURM tests, so that the modules may run at once);
where it cannot run here (not root, no apt-get) the module is skipped with its reason.

    python -m pytest tests/test_active_learning_slurm.py -v
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests._active_learning import project_copy, tiny_inputs
from tests._slurm import one_node_cluster

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "scripts" / "slurm_cluster.sh"
BIN = Path(sys.executable).parent
FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}


@pytest.fixture(scope="module")
def slurm():
    """The cluster's environment; ``SLURM_CONF`` and the venv's bin/ are set in ``os.environ`` while it runs (the
    chain is submitted through td_hpc.submit, which passes this process's environment to sbatch)."""
    with one_node_cluster("td-slurm-al-", 16847, 16848) as (env, run_dir):
        saved = {k: os.environ.get(k) for k in ("SLURM_CONF", "PATH")}
        os.environ["SLURM_CONF"] = str(run_dir / "slurm.conf")
        os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
        try:
            yield env
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _states(job: str) -> list[str]:
    """The state of a job, or of every task of an array job."""
    out = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True, check=False).stdout
    return re.findall(r"\bJobState=(\S+)", out) or ["UNKNOWN"]


def test_a_round_runs_as_a_chain_of_jobs_to_completed(slurm, tmp_path):
    from pipelines.active_learning.slurm import write_round_jobs
    from td_hpc import submit_chain

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    tiny_inputs(inputs)
    project = project_copy(tmp_path, inputs, rounds=1)
    chain = write_round_jobs(project, 1, tmp_path / "chain", num_shards=2, time="00:15:00", label_time="00:15:00",
                             mem="1G", cpus_per_task=1, extra_env={"KEDRO_DISABLE_TELEMETRY": "1",
                                                                   "MPLBACKEND": "Agg"})  # fmt: skip
    jobs = submit_chain(chain)
    end = time.monotonic() + 900
    states = {job: _states(job) for job in jobs}
    while time.monotonic() < end and not all(set(s) <= FINISHED for s in states.values()):
        time.sleep(2)
        states = {job: _states(job) for job in jobs}
    logs = "".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(chain.log_dir.glob("*")))
    if not all(set(s) == {"COMPLETED"} for s in states.values()):
        for job in jobs:
            subprocess.run(["scancel", job], capture_output=True, check=False)
        tail = subprocess.run(["bash", str(CLUSTER), "logs", str(tmp_path / "daemon-logs"), "40"], env=slurm,
                              capture_output=True, text=True, timeout=60).stdout  # fmt: skip
        pytest.fail(f"jobs {jobs}: {states}\n{logs}\n{tail}")
    assert len(states[jobs[1]]) == 2  # the array's two tasks

    work = project / "data" / "06_models" / "active_learning"
    state = json.loads((work / "state.json").read_text())
    assert list(state["rounds"]["1"]) == ["generate", "relax", "label", "verify", "acquire", "add", "train"]
    assert state["rounds"]["1"]["label"]["labelled_by"] == "a SLURM array of 2 shards"
    shards = sorted(p.name for p in (work / "round_01" / "label_shards").glob("shard_*.h5"))
    assert shards == ["shard_00000.h5", "shard_00001.h5"]
    report = json.loads((project / "data" / "08_reporting" / "active_learning.json").read_text())
    assert [e["round"] for e in report["rounds"]] == [1] and report["rounds"][0]["n_added"] >= 1
    additions = project / "data" / "05_model_input" / "active_learning_additions"
    assert sorted(p.name for p in additions.iterdir()) == ["round_01.h5"]
    assert (project / "data" / "06_models" / "active_learning_model.pt").is_file()
    assert "stopped after relax of round 1" in logs  # the generate job stopped where the array takes over

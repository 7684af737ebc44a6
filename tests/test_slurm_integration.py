"""HPC deployment as the user guide runs it, on a real one-node SLURM: ``training_example.py
--create-config``, ``scripts/create_slurm_script.py``, ``sbatch training_job.sh``; the job trains on CPU
(two gloo processes under ``accelerate launch``), writes its checkpoints and ends COMPLETED.

The cluster is started and stopped by ``scripts/slurm_cluster.sh`` (as packages/td-hpc's real-SLURM tests
do, on other ports), which installs slurm-wlm and munge with apt when they are missing; where it cannot
run here (not root, no apt-get) the module is skipped with its reason. On a failure the daemon logs are
copied next to the test's tmp dir (``slurm_cluster.sh logs``) and their tail is in the message.

    python -m pytest tests/test_slurm_integration.py -v
    python tests/test_slurm_integration.py
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

from tests._slurm import one_node_cluster

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "scripts" / "slurm_cluster.sh"
CREATE = REPO / "scripts" / "create_slurm_script.py"
TRAIN = REPO / "examples" / "training_example.py"
BIN = Path(sys.executable).parent  # the environment's bin/ (accelerate), as an activated venv puts it on PATH
FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}


@pytest.fixture(scope="module")
def slurm():
    """The cluster's environment (``SLURM_CONF`` and the venv's bin/ on ``PATH``) and its run folder."""
    # ports of its own: the modules that start a cluster may run at once (tests/test_slurm_ports.py checks)
    with one_node_cluster("td-slurm-it-", 16837, 16838) as (env, run_dir):
        env.update(SLURM_CONF=str(run_dir / "slurm.conf"), PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
        yield env


def daemon_logs(env: dict[str, str], dest: Path) -> str:
    """Copy the daemon logs into ``dest`` and return their tail (for a failure message)."""
    proc = subprocess.run(
        ["bash", str(CLUSTER), "logs", str(dest), "60"], env=env, capture_output=True, text=True, timeout=60
    )
    return proc.stdout + proc.stderr


def typed(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def job_state(job: str, env: dict[str, str]) -> str:
    out = typed(["scontrol", "show", "job", "-o", job], Path.cwd(), env).stdout
    match = re.search(r"\bJobState=(\S+)", out)
    return match.group(1) if match else "UNKNOWN"


def test_guide_script_is_accepted_by_sbatch(slurm, tmp_path):
    """The guide's 4 x 4 script parses in sbatch and is refused only for the resources this one-node CPU
    cluster lacks; the same command for one node and two CPU processes is accepted."""
    made = typed([sys.executable, str(CREATE), "--nodes", "4", "--gpus-per-node", "4"], tmp_path, slurm)
    assert made.returncode == 0, made.stderr
    assert "sbatch training_job.sh" in made.stdout
    big = typed(["sbatch", "--test-only", "training_job.sh"], tmp_path, slurm)
    assert big.returncode != 0
    refused = r"Invalid generic resource \(gres\) specification|Node count specification invalid"
    assert re.search(refused, big.stderr), big.stderr
    # the guide's other way, "Create SLURM Script": python -c "..." > submit_training.sh; sbatch submit_training.sh
    snippet = (
        "from topological_diffusion.hpc import create_distributed_training_script\n"
        "script = create_distributed_training_script(\n    num_nodes=4,\n    gpus_per_node=4,\n"
        "    training_script='examples/training_example.py',\n    config_file='training_config.json'\n)\n"
        "print(script)\n"
    )
    shell = f'python -c "{snippet}" > submit_training.sh && sbatch --test-only submit_training.sh'
    guide = typed(["bash", "-c", shell], tmp_path, slurm)
    assert guide.returncode != 0 and re.search(refused, guide.stderr), guide.stderr
    assert (tmp_path / "submit_training.sh").read_text().startswith("#!/bin/bash")
    small = tmp_path / "small"
    small.mkdir()
    args = ["--nodes", "1", "--gpus-per-node", "2", "--cpu-only", "--cpus-per-task", "2", "--mem", "1G"]
    made = typed([sys.executable, str(CREATE), *args, "--time", "00:05:00"], small, slurm)
    assert made.returncode == 0, made.stderr
    accepted = typed(["sbatch", "--test-only", "training_job.sh"], small, slurm)
    assert accepted.returncode == 0 and "to start at" in accepted.stderr, accepted.stderr + daemon_logs(
        slurm, tmp_path / "slurm-daemon-logs"
    )


def test_guide_path_trains_on_cpu_to_completed(slurm, tmp_path):
    """--create-config, shrink it, create_slurm_script.py (CPU variant), sbatch training_job.sh: COMPLETED
    with the epoch checkpoints and the final model in the run folder."""
    made = typed([sys.executable, str(TRAIN), "--create-config", "training_config.json"], tmp_path, slurm)
    assert made.returncode == 0, made.stderr
    config = tmp_path / "training_config.json"
    data = json.loads(config.read_text())
    data["model_config"].update(hidden_dim=32, num_layers=1, num_heads=4, num_steps=50, sampling_steps=None)
    data["training_config"].update(batch_size=4, max_epochs=2, warmup_epochs=0, checkpoint_every=1)
    config.write_text(json.dumps(data, indent=1))

    create = [sys.executable, str(CREATE), "--nodes", "1", "--gpus-per-node", "2", "--cpu-only"]
    create += ["--cpus-per-task", "2", "--mem", "2G", "--time", "00:10:00", "--job-name", "td-integration"]
    create += ["--checkpoint-dir", "run", "--", "--num-synthetic", "32", "--threads", "1"]
    made = typed(create, tmp_path, slurm)
    assert made.returncode == 0, made.stderr
    assert "using the existing training_config.json" in made.stdout

    submitted = typed(["sbatch", "training_job.sh"], tmp_path, slurm)
    assert submitted.returncode == 0, submitted.stderr
    job = re.search(r"Submitted batch job (\d+)", submitted.stdout).group(1)
    state, end = "PENDING", time.monotonic() + 600
    while state not in FINISHED and time.monotonic() < end:
        time.sleep(1)
        state = job_state(job, slurm)
    logs = "".join(p.read_text() for p in sorted((tmp_path / "slurm_logs").glob("*")))
    run = tmp_path / "run"
    produced = sorted(p.name for p in (run / "checkpoints").glob("*.pt")) if (run / "checkpoints").is_dir() else []
    ok = state == "COMPLETED" and "checkpoint_epoch_0002.pt" in produced and (run / "final_model.pt").is_file()
    if state not in FINISHED:
        typed(["scancel", job], tmp_path, slurm)
    if not ok:
        pytest.fail(
            f"job {job} {state}; checkpoints {produced}\n--- job logs ---\n{logs}\n"
            + daemon_logs(slurm, tmp_path / "slurm-daemon-logs")
        )
    assert "finished: 2 epochs" in logs
    torch = pytest.importorskip("torch")
    checkpoint = torch.load(run / "checkpoints" / "checkpoint_epoch_0002.pt", weights_only=True)
    assert checkpoint["epoch"] == 2 and checkpoint["data_order"]["num_processes"] == 2


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))

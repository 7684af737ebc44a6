"""Against a real one-node SLURM on this machine (scripts/slurm_cluster.sh): sbatch --test-only, a CPU
training job to COMPLETED, preemption -> checkpoint -> requeue -> resume, and a labelling array + merge.

Marked slow. The module fixture starts the cluster (installing slurm-wlm and munge with apt when missing)
and stops it by the PIDs it recorded; without root or apt the module is skipped with the reason.
"""

from __future__ import annotations

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
    SlurmError,
    array_status,
    cancel,
    create_distributed_training_script,
    create_labelling_array_script,
    status,
    submit,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
CLUSTER = REPO / "scripts" / "slurm_cluster.sh"
TRAIN = REPO / "examples" / "training_example.py"
BIN = Path(sys.executable).parent
DONE = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}


@pytest.fixture(scope="module")
def slurm():
    if os.geteuid() != 0:
        pytest.skip("the real-SLURM tests start slurmctld/slurmd/munged as root; not root here")
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        pytest.skip("slurm-wlm is not installed and there is no apt-get to install it")
    # a short folder (the munge socket path must fit in 108 bytes) and ports away from a system SLURM's
    run_dir = Path(tempfile.mkdtemp(prefix="td-slurm-", dir="/tmp"))
    env = {**os.environ, "TD_SLURM_DIR": str(run_dir), "TD_SLURM_CTLD_PORT": "16817", "TD_SLURM_D_PORT": "16818"}
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


def wait_for(job_id: str, timeout: float = 300):
    """Poll scontrol until the job finished. A requeued job waits for its BeginTime (cred_expire + 1 s,
    20 + 1 in slurm_cluster.sh's config): moving it earlier races slurmd's revoked credential."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        st = status(job_id)
        if st.state in DONE:
            return st
        time.sleep(1)
    cancel(job_id)
    pytest.fail(f"job {job_id} did not finish in {timeout} s: {status(job_id)}")


def tiny_config(path: Path, max_epochs: int) -> Path:
    """The cpu-demo preset squeezed to a few steps."""
    subprocess.run([sys.executable, str(TRAIN), "--create-config", str(path), "--preset", "cpu-demo"], check=True)
    cfg = json.loads(path.read_text())
    cfg["model_config"].update(hidden_dim=32, num_layers=1, num_heads=4, num_steps=50, sampling_steps=None)
    cfg["training_config"].update(
        batch_size=4, max_epochs=max_epochs, warmup_epochs=0, checkpoint_every=1, keep_checkpoints=0
    )
    path.write_text(json.dumps(cfg, indent=1))
    return path


def training_script(tmp: Path, max_epochs: int, num_synthetic: int) -> tuple[str, Path, Path]:
    logs, run = tmp / "logs", tmp / "run"
    logs.mkdir()
    text = create_distributed_training_script(
        1,
        2,  # two CPU processes (gloo): accelerate launch --multi_gpu --num_processes 2 ... --cpu
        TRAIN,
        tiny_config(tmp / "tiny config.json", max_epochs),  # a blank in the path: quoting is exercised
        job_name="td-cpu-test",
        time="00:10:00",
        mem="2G",
        cpus_per_task=2,
        output_dir=logs,
        checkpoint_dir=run,
        cpu_only=True,
        accelerate=BIN / "accelerate",
        extra_args=["--num-synthetic", str(num_synthetic), "--threads", "1"],
    )
    return text, logs, run


def test_sbatch_test_only_accepts_generated_scripts(slurm, tmp_path):
    text, _, _ = training_script(tmp_path, 1, 16)
    out = submit(text, sbatch_args=["--test-only"], cwd=tmp_path)
    assert "to start at" in out or out == ""
    # the 4 x 4 GPU script asks for more than this node has: sbatch must parse it and refuse only the resources
    big = create_distributed_training_script(4, 4, TRAIN, "training_config.json", output_dir=tmp_path)
    with pytest.raises(SlurmError, match="configuration is not available|Invalid generic resource|gres"):
        submit(big, sbatch_args=["--test-only"], cwd=tmp_path)


def test_cpu_training_job_completes_with_checkpoint(slurm, tmp_path):
    text, logs, run = training_script(tmp_path, 2, 32)
    job = submit(text, cwd=tmp_path)
    st = wait_for(job)
    out = "".join(p.read_text() for p in logs.glob("*.out"))
    assert st.state == "COMPLETED", out + "".join(p.read_text() for p in logs.glob("*.err"))
    assert (run / "checkpoints" / "checkpoint_epoch_0002.pt").exists() and (run / "final_model.pt").exists()
    assert "finished: 2 epochs" in out
    jobcomp = (slurm / "jobcomp.txt").read_text()  # the file job-completion log of slurm_cluster.sh
    assert f"JobId={job} " in jobcomp and "JobState=COMPLETED" in jobcomp


def test_preempted_job_checkpoints_requeues_and_resumes(slurm, tmp_path):
    text, logs, run = training_script(tmp_path, 5, 64)
    job = submit(text, cwd=tmp_path)
    first = run / "checkpoints" / "checkpoint_epoch_0001.pt"
    end = time.monotonic() + 180
    while not first.exists() and time.monotonic() < end:
        assert status(job).state not in DONE, "the job ended before its first checkpoint"
        time.sleep(0.5)
    cancel(job, signal="USR1", batch=True)  # what --signal=B:USR1@300 does before the time limit
    st = wait_for(job, timeout=420)
    out = "".join(p.read_text() for p in logs.glob("*.out"))
    assert st.state == "COMPLETED" and st.restarts == 1, out
    assert "preemption checkpoint written; requeueing" in out and "run 1 on" in out
    preempt = sorted((run / "checkpoints").glob("checkpoint_epoch_*_batch_*.pt"))
    assert len(preempt) == 1
    # resumed, not restarted: the epoch-1 checkpoint was not rewritten by the second run
    assert first.stat().st_mtime < preempt[0].stat().st_mtime < (run / "final_model.pt").stat().st_mtime
    assert "finished: 5 epochs" in out.split("run 1 on", 1)[1]


def test_labelling_array_over_three_shards_and_merge(slurm, tmp_path, label_opts, tiny_records):
    from td_data.label_shard import merge_label_shards
    from td_data.store import CrystalStore, write_store

    store = write_store(tmp_path / "crystals.h5", tiny_records)
    (tmp_path / "logs").mkdir()
    text = create_labelling_array_script(
        store,
        3,
        tmp_path / "shards",
        time="00:10:00",
        mem="1G",
        cpus_per_task=1,
        log_dir=tmp_path / "logs",
        python=sys.executable,
        label_options=label_opts,
    )
    job = submit(text, cwd=tmp_path)
    end = time.monotonic() + 300
    while time.monotonic() < end:
        tasks = array_status(job)
        if len(tasks) == 3 and all(t.state in DONE for t in tasks):
            break
        time.sleep(1)
    assert sorted(t.job_id for t in tasks) == [f"{job}_{i}" for i in range(3)]
    assert all(t.state == "COMPLETED" for t in tasks), [(t.job_id, t.state) for t in tasks]
    out = merge_label_shards(tmp_path / "shards", tmp_path / "labelled.h5", num_shards=3)
    with CrystalStore.open(out) as merged:
        assert sorted(r.id for r in merged.read_all()) == ["c", "si", "si2"]

"""scripts/create_slurm_script.py and python -m td_hpc.label_shard as commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
GOLDEN = Path(__file__).parent / "golden" / "production_4x4.sbatch"


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd)


def test_create_slurm_script_prints_the_golden_script():
    proc = run(
        "scripts/create_slurm_script.py", "--nodes", "4", "--gpus-per-node", "4", "--config", "training_config.json"
    )
    assert proc.returncode == 0 and proc.stdout == GOLDEN.read_text()


def test_create_slurm_script_output_file_and_bad_value(tmp_path):
    out = tmp_path / "submit.sh"
    args = ["scripts/create_slurm_script.py", "--preset", "research", "--config", "c.json", "--output", str(out)]
    assert run(*args).returncode == 0 and "#SBATCH --nodes=8" in out.read_text()
    proc = run("scripts/create_slurm_script.py", "--config", "c.json", "--partition", "gpu;reboot")
    assert proc.returncode == 2 and "partition must match" in proc.stderr and "'gpu;reboot'" in proc.stderr


def test_user_guide_one_liner():
    code = (
        "from td_hpc import create_distributed_training_script; print(create_distributed_training_script("
        "num_nodes=4, gpus_per_node=4, training_script='examples/training_example.py', "
        "config_file='training_config.json'), end='')"
    )
    proc = run("-c", code)
    assert proc.returncode == 0 and proc.stdout == GOLDEN.read_text()


def test_label_shard_cli_errors(tmp_path):
    proc = run("-m", "td_hpc.label_shard", "--out", str(tmp_path))
    assert proc.returncode == 2 and "--store, --shard and --num-shards are required" in proc.stderr
    proc = run("-m", "td_hpc.label_shard", "--merge", str(tmp_path), "--out", str(tmp_path / "m.h5"))
    assert proc.returncode == 2 and "shards_dir must hold shard_*.h5 files" in proc.stderr

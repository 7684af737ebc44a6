"""scripts/create_slurm_script.py as a command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
GOLDEN = Path(__file__).parent / "golden" / "production_4x4.sbatch"
CREATE = str(REPO / "scripts" / "create_slurm_script.py")


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


def umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_user_guide_hpc_commands_as_typed(tmp_path):
    """USER_GUIDE "For HPC Deployment": `python scripts/create_slurm_script.py --nodes 4 --gpus-per-node 4`
    then `sbatch training_job.sh`, in a folder of the user's own: the script, the guide's configuration
    beside it, the log folder; the files have the umask's mode; a second run refuses to overwrite."""
    td_models = pytest.importorskip("td_models")
    proc = run(CREATE, "--nodes", "4", "--gpus-per-node", "4", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    job, config = tmp_path / "training_job.sh", tmp_path / "training_config.json"
    text = job.read_text()
    assert "#SBATCH --nodes=4" in text and "#SBATCH --gres=gpu:h100:4" in text
    assert "    --config training_config.json\n" in text
    # no examples/ here: the clone's example by its absolute path, so the job finds it from this folder
    assert f"    {REPO / 'examples' / 'training_example.py'}\n" in text
    assert subprocess.run([shutil.which("bash"), "-n", str(job)]).returncode == 0
    assert td_models.load_config(config) == td_models.ExperimentConfig()  # the guide's blocks
    assert (tmp_path / "slurm_logs").is_dir()
    for path in (job, config):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask(), path
    assert "wrote training_job.sh" in proc.stdout and "wrote training_config.json" in proc.stdout
    assert "sbatch training_job.sh" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slurm_logs", "training_config.json", "training_job.sh"]

    again = run(CREATE, "--nodes", "2", "--gpus-per-node", "4", cwd=tmp_path)
    assert again.returncode == 2 and "training_job.sh exists" in again.stderr and "--force" in again.stderr
    assert job.read_text() == text


def test_user_guide_hpc_command_keeps_an_existing_config(tmp_path):
    """From the clone's root after `training_example.py --create-config`: the relative example path of the
    guide, and the user's training_config.json used as it is."""
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "training_example.py").write_text("")
    mine = '{"training_config": {"max_epochs": 3}}\n'
    (tmp_path / "training_config.json").write_text(mine)
    (tmp_path / "training_job.sh").write_text("old")
    proc = run(CREATE, "--nodes", "1", "--gpus-per-node", "2", "--force", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "training_config.json").read_text() == mine
    assert "using the existing training_config.json" in proc.stdout
    text = (tmp_path / "training_job.sh").read_text()
    assert "    examples/training_example.py\n    --config training_config.json\n" in text


def test_output_without_config_writes_the_config_beside_it(tmp_path):
    pytest.importorskip("td_models")
    proc = run(CREATE, "--preset", "development", "--output", "jobs/dev.sh", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "--config jobs/training_config.json" in (tmp_path / "jobs" / "dev.sh").read_text()
    assert (tmp_path / "jobs" / "training_config.json").is_file()
    assert "sbatch jobs/dev.sh" in proc.stdout


def test_user_guide_one_liner():
    code = (
        "from td_hpc import create_distributed_training_script; print(create_distributed_training_script("
        "num_nodes=4, gpus_per_node=4, training_script='examples/training_example.py', "
        "config_file='training_config.json'), end='')"
    )
    proc = run("-c", code)
    assert proc.returncode == 0 and proc.stdout == GOLDEN.read_text()

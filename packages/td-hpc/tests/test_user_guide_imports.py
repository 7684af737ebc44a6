"""The user guide's ``topological_diffusion.hpc`` imports are td_hpc's objects."""

from __future__ import annotations

import importlib

import td_hpc
import td_hpc.scripts


def test_guide_import_works():
    from topological_diffusion.hpc import create_distributed_training_script

    assert create_distributed_training_script is td_hpc.create_distributed_training_script
    assert create_distributed_training_script is td_hpc.scripts.create_distributed_training_script


def test_facade_re_exports_td_hpc():
    facade = importlib.import_module("topological_diffusion.hpc")
    assert sorted(facade.__all__) == sorted(td_hpc.__all__)
    for name in facade.__all__:
        assert getattr(facade, name) is getattr(td_hpc, name), name
    assert facade.__doc__ and "user guide's import path for td_hpc" in facade.__doc__


def test_guide_snippet_runs():
    from topological_diffusion.hpc import create_distributed_training_script

    script = create_distributed_training_script(
        num_nodes=4,
        gpus_per_node=4,
        training_script="examples/training_example.py",
        config_file="training_config.json",
    )
    assert script.startswith("#!/bin/bash")
    assert "#SBATCH --nodes=4" in script


def test_guide_shell_snippet_as_typed(tmp_path):
    """USER_GUIDE "Create SLURM Script", typed in a shell: python -c "..." > submit_training.sh. The file is
    the golden 4 x 4 script (plus print's newline) and bash parses it; test_slurm_real submits it."""
    import shlex
    import subprocess
    import sys
    from pathlib import Path

    snippet = """
from topological_diffusion.hpc import create_distributed_training_script
script = create_distributed_training_script(
    num_nodes=4,
    gpus_per_node=4,
    training_script='examples/training_example.py',
    config_file='training_config.json'
)
print(script)
"""
    command = f'{shlex.quote(sys.executable)} -c "{snippet}" > submit_training.sh'
    proc = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    written = (tmp_path / "submit_training.sh").read_text()
    golden = Path(__file__).parent / "golden" / "production_4x4.sbatch"
    assert written == golden.read_text() + "\n"
    assert subprocess.run(["bash", "-n", "submit_training.sh"], cwd=tmp_path).returncode == 0

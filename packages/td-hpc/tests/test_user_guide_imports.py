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

"""td-hpc: SLURM job scripts, job arrays and submit/status/cancel wrappers for td-models training,
td-data labelling, td-physics DFT verification and a round of active learning as a chain of dependent
jobs. Depends on jinja2 only: the jobs run the other packages' command lines (``python -m
td_data.label_shard``, ``python -m td_physics.dft``) in their Python.

>>> from td_hpc import create_distributed_training_script
>>> script = create_distributed_training_script(num_nodes=4, gpus_per_node=4,
...     training_script="examples/training_example.py", config_file="training_config.json")
>>> script.splitlines()[0], "#SBATCH --requeue" in script
('#!/bin/bash', True)
"""

from __future__ import annotations

from td_hpc._version import __version__
from td_hpc.chain import JobChain, submit_chain, write_round_chain
from td_hpc.dft_array import DFTArrayJob, missing_dft_results, submit_dft_verification, write_dft_array_job
from td_hpc.exceptions import HpcValueError, SlurmError
from td_hpc.presets import PRESETS, Resources, preset_resources
from td_hpc.scripts import create_distributed_training_script, create_labelling_array_script
from td_hpc.slurm import JobStatus, array_status, cancel, status, submit

__all__ = [
    "__version__",
    "HpcValueError",
    "SlurmError",
    "PRESETS",
    "Resources",
    "preset_resources",
    "create_distributed_training_script",
    "create_labelling_array_script",
    "submit",
    "status",
    "array_status",
    "cancel",
    "JobStatus",
    "DFTArrayJob",
    "write_dft_array_job",
    "submit_dft_verification",
    "missing_dft_results",
    "JobChain",
    "write_round_chain",
    "submit_chain",
]

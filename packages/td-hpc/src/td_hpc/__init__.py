"""td-hpc: SLURM job scripts, job arrays and submit/status/cancel wrappers for td-models training,
td-data labelling and td-physics DFT verification. Depends on jinja2 only; td-data is imported by the
labelling command when it runs, td-physics only by the jobs' command line.

>>> from td_hpc import create_distributed_training_script
>>> script = create_distributed_training_script(num_nodes=4, gpus_per_node=4,
...     training_script="examples/training_example.py", config_file="training_config.json")
>>> script.splitlines()[0], "#SBATCH --requeue" in script
('#!/bin/bash', True)
"""

from __future__ import annotations

__version__ = "0.1.0"

from td_hpc.dft_array import DFTArrayJob, missing_dft_results, submit_dft_verification, write_dft_array_job  # noqa: E402
from td_hpc.exceptions import HpcValueError, SlurmError  # noqa: E402
from td_hpc.labelling import merge_label_shards, shard_indices  # noqa: E402
from td_hpc.presets import PRESETS, Resources, preset_resources  # noqa: E402
from td_hpc.scripts import create_distributed_training_script, create_labelling_array_script  # noqa: E402
from td_hpc.slurm import JobStatus, array_status, cancel, status, submit  # noqa: E402

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
    "merge_label_shards",
    "shard_indices",
    "DFTArrayJob",
    "write_dft_array_job",
    "submit_dft_verification",
    "missing_dft_results",
]

"""``topological_diffusion.hpc``: the user guide's import path for td_hpc.

The same objects as :mod:`td_hpc` (SLURM scripts, job arrays, submit/status/cancel)::

    from topological_diffusion.hpc import create_distributed_training_script

    script = create_distributed_training_script(
        num_nodes=4, gpus_per_node=4,
        training_script="examples/training_example.py", config_file="training_config.json",
    )

Shipped by td-hpc as a portion of the PEP 420 namespace package ``topological_diffusion``.
"""

from td_hpc import *  # noqa: F403  (the same objects, by the source's __all__)
from td_hpc import __all__  # noqa: F401

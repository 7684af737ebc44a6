"""Resource presets from the user guide's "HPC Deployment" section.

>>> preset_resources("production")
Resources(num_nodes=4, gpus_per_node=4, mem='256G', time='72:00:00')
"""

from __future__ import annotations

from dataclasses import dataclass

from td_hpc.exceptions import HpcValueError

__all__ = ["Resources", "PRESETS", "preset_resources"]


@dataclass(frozen=True)
class Resources:
    """What one training job asks SLURM for."""

    num_nodes: int  # nodes (one `accelerate launch` per node)
    gpus_per_node: int  # H100s per node (one training process each)
    mem: str  # memory per node, SLURM syntax
    time: str  # wall-clock limit, HH:MM:SS


PRESETS: dict[str, Resources] = {
    "development": Resources(1, 2, "128G", "12:00:00"),  # small scale: one node, 2 H100
    "production": Resources(4, 4, "256G", "72:00:00"),  # medium model: 4 nodes x 4 H100
    "research": Resources(8, 8, "512G", "168:00:00"),  # large model: 8 nodes x 8 H100
}


def preset_resources(name: str) -> Resources:
    """The resources of preset ``name`` (``development``, ``production`` or ``research``)."""
    if name not in PRESETS:
        raise HpcValueError(f"preset must be one of {sorted(PRESETS)}, got {name!r}")
    return PRESETS[name]

"""Rewrite the golden files of the tests: ``python -m td_hpc.golden [TESTS_GOLDEN_DIR]``.

The golden 4-node x 4-GPU script is the user guide's call with the defaults; review the diff after
running this, then commit it together with the change that caused it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from td_hpc.scripts import create_distributed_training_script

__all__ = ["GOLDEN", "write_golden"]

# file name -> script text, built from the public API only
GOLDEN = {
    "production_4x4.sbatch": lambda: create_distributed_training_script(
        num_nodes=4,
        gpus_per_node=4,
        training_script="examples/training_example.py",
        config_file="training_config.json",
    ),
}

_DEFAULT_DIR = Path(__file__).resolve().parents[2] / "tests" / "golden"


def write_golden(folder: str | Path = _DEFAULT_DIR) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in GOLDEN.items():
        path = folder / name
        path.write_text(make())
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_golden(*sys.argv[1:2]):
        print(p)

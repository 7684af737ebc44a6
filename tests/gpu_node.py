"""What the GPU machine lacks: torch, accelerate, Kedro and the project's own sources are there (td-physics,
td-data and the pipelines installed without their dependencies), the materials stack is not.

The benchmarks' training stages must run on such a machine (docs/benchmarks.md, "GPU runs"); the tests run
them as :func:`gpu_node_kedro_command` and :func:`gpu_node_command` do, with every module of the materials
stack (:data:`BLOCKED`) unimportable.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

BLOCKED = ("pymatgen", "spglib", "smact", "matminer", "threadpoolctl", "h5py", "ase", "chgnet")
BLOCKER = f"""import sys
class _MaterialsStackBlocker:
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError(f"blocked: {{name}}")
        return None
sys.meta_path.insert(0, _MaterialsStackBlocker())
"""


def gpu_node_kedro_command(args: list[str]) -> list[str]:
    """``python -c ...`` running ``kedro <args>`` after blocking the materials stack."""
    code = BLOCKER + f"sys.argv = ['kedro', *{args!r}]\nfrom kedro.framework.cli import main\nmain()"
    return [sys.executable, "-c", code]


def gpu_node_command(script: Path, argv: list[str]) -> list[str]:
    """``python -c ...`` running ``script`` with ``argv`` (``sys.argv``) after blocking the materials stack."""
    code = BLOCKER + f"import runpy, sys; sys.argv = {argv!r}; runpy.run_path({str(script)!r}, run_name='__main__')"
    return [sys.executable, "-c", code]


ROOT = Path(__file__).resolve().parents[1]
#: the environment of the benchmarks' test runs: one thread, no plots on screen, no telemetry
RUN_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg",
           "WANDB_MODE": "disabled", "KEDRO_DISABLE_TELEMETRY": "1"}  # fmt: skip


def kedro_run(
    env: str, pipeline: str, params: str, blocked: bool = False, from_nodes: str | None = None
) -> subprocess.CompletedProcess:
    """``kedro run --env env --pipelines=pipeline --params params`` (``--from-nodes``: the pipeline from that node
    on) from the repository root in a subprocess (with ``blocked``: the materials stack made unimportable first);
    ``wall_seconds`` is measured around it."""
    args = ["run", "--env", env, f"--pipelines={pipeline}", "--params", params]
    args += [f"--from-nodes={from_nodes}"] if from_nodes else []
    command = gpu_node_kedro_command(args) if blocked else [sys.executable, "-m", "kedro", *args]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=RUN_ENV, capture_output=True, text=True, timeout=600)
    done.wall_seconds = time.perf_counter() - started  # measured around the whole process, start-up included
    return done

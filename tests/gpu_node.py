"""What the GPU machine lacks: torch and accelerate are there, the materials stack is not.

The benchmarks' ``--stage train`` must run on such a machine (docs/benchmarks.md, "GPU runs"); the tests run
that stage as :func:`gpu_node_command` does, with every module of the materials stack unimportable.
"""

from __future__ import annotations

import sys
from pathlib import Path

BLOCKED = ("td_data", "pymatgen", "spglib", "td_physics", "pipelines", "smact", "matminer", "threadpoolctl")
BLOCKER = f"""import sys
class _MaterialsStackBlocker:
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError(f"blocked: {{name}}")
        return None
sys.meta_path.insert(0, _MaterialsStackBlocker())
"""


def gpu_node_command(script: Path, argv: list[str]) -> list[str]:
    """``python -c ...`` running ``script`` with ``argv`` (``sys.argv``) after blocking the materials stack."""
    code = BLOCKER + f"import runpy, sys; sys.argv = {argv!r}; runpy.run_path({str(script)!r}, run_name='__main__')"
    return [sys.executable, "-c", code]

"""Run an example script on its coarse ``--quick`` setting in a temporary folder, for the example tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_quick(name: str, out: Path, figures: tuple[str, ...], timeout: int = 300) -> tuple[str, dict[str, Any]]:
    """``python examples/<name>.py --quick --output-dir out``: its stdout and ``summary.json``.

    Fails the test when the run fails or when a figure of ``figures`` is missing or nearly empty (under 10 kB).
    """
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "--quick", "--output-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr
    for figure in figures:
        assert (out / figure).stat().st_size > 10_000, figure
    return proc.stdout, json.loads((out / "summary.json").read_text())

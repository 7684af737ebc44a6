"""examples/magnetic.py --quick: the figures exist and every diagram agrees with its closed form."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "magnetic.py"
FIGURES = ("qah_phase_diagram.png", "qah_hall_cut.png", "qah_ribbon_bands.png", "afti_phase_diagram.png")


def test_quick_run_writes_the_figures_and_agrees_with_the_closed_forms(tmp_path):
    out = tmp_path / "mag"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--quick", "--output-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    for name in FIGURES:
        assert (out / name).stat().st_size > 10_000, name
    summary = json.loads((out / "summary.json").read_text())
    rows = {row["diagram"]: row for row in summary["diagrams"]}
    # the quick grids: 9 x 9 QAH points off the boundaries, 7 Hall and ribbon points, 7 x 5 AFTI points of
    # which the one at (|m|, dt) = (0, 0) is the gapless parent (the Fu-Kane-Mele semimetal)
    expected = {
        "QAH Chern number": (81, 81),
        "QAH Hall conductivity": (7, 7),
        "QAH edge modes": (7, 7),
        "AFTI Z2": (35, 34),
    }
    for name, (points, trusted) in expected.items():
        row = rows[name]
        assert (row["points"], row["trusted"], row["disagree"]) == (points, trusted, 0), row
        assert f"{name:<24}{points:>8}{trusted:>9}{0:>10}" in proc.stdout

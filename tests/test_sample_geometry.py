"""``benchmarks/sample_geometry.py``: the geometry of samples files against a benchmark's test split."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CARBON = ROOT.parent / "shared" / "data" / "benchmarks" / "carbon_24"


def test_sample_geometry_reports_each_file_beside_the_test_split(tmp_path):
    """Two diamond cells (shortest C-C 1.54 A) and one with two atoms 1.0 A apart: the close share is 1/3, the
    percentiles bracket 1.0 and 1.54, the test split's own row has no distances to itself, and the diamond cells'
    CrystalNN coordination is 4 at every site."""
    if not (CARBON / "test.csv.gz").is_file():
        pytest.skip(f"shared Carbon-24 data not available in {CARBON}")
    from td_models import save_crystals

    a = 3.567
    fcc = a / 2 * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    diamond = {"lattice": fcc, "frac_coords": np.array([[0.0, 0.0, 0.0], [0.25, 0.25, 0.25]]),
               "atomic_numbers": np.array([6, 6])}  # fmt: skip
    close = {"lattice": 4.0 * np.eye(3), "frac_coords": np.array([[0.0, 0.0, 0.0], [0.25, 0.0, 0.0]]),
             "atomic_numbers": np.array([6, 6])}  # fmt: skip
    path = save_crystals(tmp_path / "samples.npz", [diamond, diamond, close], {"steps": 7, "volume_guidance": 0.2})
    script = ROOT / "benchmarks" / "sample_geometry.py"
    args = [sys.executable, str(script), "--dataset", "carbon_24", "--data-dir", str(CARBON), "--max-test", "16",
            "--coordination", "2", "--samples", str(path)]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    test_row = [line for line in lines if line.startswith("| test split |")][0]
    assert test_row.split("|")[2].strip() == "16" and test_row.split("|")[3].strip() == "-"
    ours = [line for line in lines if "steps 7" in line and "volume_guidance 0.2" in line][0]
    cells = [c.strip() for c in ours.split("|")[1:-1]]
    assert cells[1] == "3" and float(cells[2]) > 0  # three records, a density distance to the test split
    p5, median, p95 = (float(v) for v in cells[5].split(" / "))
    assert 1.0 <= p5 < median == pytest.approx(1.545, abs=0.01) and p95 == pytest.approx(1.545, abs=0.01)
    assert float(cells[6]) == pytest.approx(1 / 3, abs=1e-3)
    assert cells[7] == "0 / 0 / 100 / 0"  # --coordination 2: the two diamond cells, every site 4-coordinated


def test_sample_geometry_coverage_counts_a_test_crystal_as_covered(tmp_path):
    """``--coverage``: a test crystal among four samples is within the cutoffs of itself, so COV-P is at least 25%
    and COV-R at least one test crystal in 16; AMSD-P, the mean distance to the nearest test fingerprint, is
    finite and at least 0 (the test crystal's own is 0)."""
    if not (CARBON / "test.csv.gz").is_file():
        pytest.skip(f"shared Carbon-24 data not available in {CARBON}")
    from td_data.evaluation import load_split
    from td_models import save_crystals

    first = load_split([CARBON / "test.csv.gz"], "test", limit=1).records[0]
    own = {"lattice": np.asarray(first.lattice), "frac_coords": np.asarray(first.frac_coords),
           "atomic_numbers": np.asarray(first.atomic_numbers)}  # fmt: skip
    square = {"lattice": 4.0 * np.eye(3), "frac_coords": np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.0]]),
              "atomic_numbers": np.array([6, 6])}  # fmt: skip
    path = save_crystals(tmp_path / "samples.npz", [own, square, square, square], {"steps": 5})
    script = ROOT / "benchmarks" / "sample_geometry.py"
    args = [sys.executable, str(script), "--dataset", "carbon_24", "--data-dir", str(CARBON), "--max-test", "16",
            "--coverage", "4", "--samples", str(path)]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    header = [line for line in done.stdout.splitlines() if line.startswith("| set |")][0]
    assert header.rstrip().endswith("COV-R / COV-P, 4 vs 16 [%] | AMSD-P |")
    ours = [line for line in done.stdout.splitlines() if line.startswith("| ") and "steps 5" in line][0]
    cells = [c.strip() for c in ours.split("|")[1:-1]]
    recall, precision = (float(v) for v in cells[7].split(" / "))
    assert precision >= 25.0 and recall >= 6.2  # 1 of 16, printed with one decimal
    assert 0.0 <= float(cells[8]) < float("inf")

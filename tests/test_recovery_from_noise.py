"""``benchmarks/recovery_from_noise.py``: test crystals noised to a step and run back through the sampler's chain."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CARBON = ROOT.parent / "shared" / "data" / "benchmarks" / "carbon_24"


def _rows(stdout: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("|")[1:-1]] for line in stdout.splitlines() if line.startswith("| 1 |")]


def test_a_model_that_predicts_no_score_leaves_the_noised_crystals_and_the_corrector_only_adds_noise(tmp_path):
    """A fresh model predicts a zero coordinate score. From step 1 the predictor's one step to 0 adds no noise, so
    without corrector steps the recovered crystals are the noised ones (equal distances and coordination); with
    corrector steps of a large step size the Langevin noise, which no score pulls back, carries them further away."""
    if not (CARBON / "test.csv.gz").is_file():
        pytest.skip(f"shared Carbon-24 data not available in {CARBON}")
    from td_models import TopologicalDiffusionModel
    from td_models.config import ExperimentConfig

    config = ExperimentConfig.preset("cpu-demo", model_config={"max_atoms": 24, "num_steps": 100})
    path = str(TopologicalDiffusionModel(config).save(tmp_path / "model.pt"))
    script = ROOT / "benchmarks" / "recovery_from_noise.py"
    args = [sys.executable, str(script), "--dataset", "carbon_24", "--data-dir", str(CARBON), "--n", "4",
            "--levels", "1", "--model-path", path]  # fmt: skip
    plain = subprocess.run(args + ["--corrector-steps", "0"], capture_output=True, text=True, timeout=300)
    assert plain.returncode == 0, plain.stderr[-3000:]
    (row,) = _rows(plain.stdout)
    assert row[3:6] == row[6:9], row  # noised == recovered: distance, share within 0.2, coordination
    assert float(row[3]) < 0.2 and row[4] == "100"  # sigma_1 = 0.005 of the cell keeps every crystal inside
    noisy = subprocess.run(args + ["--corrector-steps", "3", "--step-lr", "1e-3"], capture_output=True, text=True)
    assert noisy.returncode == 0, noisy.stderr[-3000:]
    (row,) = _rows(noisy.stdout)
    assert float(row[6]) > 2 * float(row[3]), row
    bad = subprocess.run(args[:-4] + ["--levels", "0", "--model-path", path], capture_output=True, text=True)
    assert bad.returncode != 0 and "--levels must lie in 1..100" in bad.stderr

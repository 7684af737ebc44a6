"""benchmarks/perov5.py end to end on a tiny subset of the shared Perov-5 data (a few seconds of training)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("td_models")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "perov5.py"
DATA = ROOT.parent / "shared" / "data" / "benchmarks" / "perov_5"
FILES = ("val.csv.gz", "train_first1024.csv.gz", "test.csv.gz")


def _script():
    spec = importlib.util.spec_from_file_location("_perov5_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _require_data() -> None:
    missing = [name for name in FILES if not (DATA / name).is_file()]
    if missing:
        pytest.skip(f"shared Perov-5 data not available: {DATA} lacks {', '.join(missing)}")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(output folder, completed process) of one tiny run that the training budget stops."""
    _require_data()
    out = tmp_path_factory.mktemp("perov5")
    tiny = ["--budget-minutes", "0.1", "--max-epochs", "10000", "--n-samples", "16", "--steps", "20",
            "--max-train", "64", "--max-test", "64"]  # fmt: skip
    argv = [sys.executable, str(SCRIPT), *tiny, "--output-dir", str(out), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", "WANDB_MODE": "disabled"}
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return out, done


@pytest.mark.slow
def test_writes_every_output(run):
    out, done = run
    for name in ("metrics.json", "table.md", "model.pt", "perov5.png", "samples/index.json", "training/metrics.csv"):
        assert (out / name).is_file(), name
    assert (out / "perov5.png").stat().st_size > 1000
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(list((out / "samples").glob("*.cif"))) == metrics["n_generated"] <= 16
    from td_models import TopologicalDiffusionModel

    model = TopologicalDiffusionModel.load(out / "model.pt")
    assert model.num_parameters() == metrics["parameters"]
    assert "ours (this run)" in done.stdout and "DiffCSP (published)" in done.stdout
    assert "Not like for like" in done.stdout and "SUBSET" in done.stdout
    table = (out / "table.md").read_text()
    assert table.count("\n| ") == 7  # header + 6 metric rows


@pytest.mark.slow
def test_metrics_are_finite_or_explained(run):
    out, _ = run
    result = json.loads((out / "metrics.json").read_text())
    script = _script()
    assert set(result["metrics"]) == set(script.METRIC_KEYS)
    for key, value in result["metrics"].items():
        if value is None:
            assert result["null_reasons"].get(key), f"{key} is null without a reason"
        else:
            assert isinstance(value, (int, float)) and math.isfinite(value), (key, value)
    assert result["null_reasons"]["wdist_prop"]  # no property predictor: always explained
    for row in result["table"]:
        assert row["CDVAE"] == script.PUBLISHED["CDVAE"][row["key"]]
        assert row["DiffCSP"] == script.PUBLISHED["DiffCSP"][row["key"]]
        assert row["ours"] is None or math.isfinite(row["ours"])
    assert result["cutoffs"] == [0.2, 4.0]  # CDVAE's COV_Cutoffs["perovskite"]
    assert result["data"]["n_train"] == result["data"]["n_test"] == 64
    assert result["data"]["train_atom_counts"] == {"5": 64}
    training = result["training"]
    assert training["stopped_by"] == "budget" and training["steps"] >= 1
    assert training["weights"] == "EMA"
    for phase in ("load_data", "train", "sample", "metrics", "total"):
        assert result["timings_seconds"][phase] >= 0
    assert result["hardware"]["cpu_count"] >= 1 and result["hardware"]["torch"]


def test_missing_data_dir_is_a_one_line_error(tmp_path, capsys):
    assert _script().main(["--data-dir", str(tmp_path / "nowhere"), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Perov-5 data folder") and "--data-dir" in err
    (tmp_path / "partial").mkdir()
    assert _script().main(["--data-dir", str(tmp_path / "partial")]) == 2
    assert "lacks val.csv.gz" in capsys.readouterr().err

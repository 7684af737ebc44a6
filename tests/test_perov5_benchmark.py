"""benchmarks/perov5.py end to end on a tiny subset of the shared Perov-5 data (a few seconds of training)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.gpu_node import BLOCKER, gpu_node_command

pytest.importorskip("td_models")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "perov5.py"
DATA = ROOT.parent / "shared" / "data" / "benchmarks" / "perov_5"
FILES = ("val.csv.gz", "train_first1024.csv.gz", "test.csv.gz")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", "WANDB_MODE": "disabled"}
# the training options of the tiny runs: the budget stops training after a few seconds
TRAIN_TINY = ["--budget-minutes", "0.1", "--max-epochs", "10000", "--n-samples", "16", "--steps", "20"]
DATA_TINY = ["--max-train", "64", "--max-test", "64"]


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
    argv = [sys.executable, str(SCRIPT), *TRAIN_TINY, *DATA_TINY, "--output-dir", str(out), "--no-progress"]
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    done.wall_seconds = time.perf_counter() - started  # measured around the whole process, start-up included
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return out, done


#: the parts each stage times (``timings_seconds`` keys)
TRAIN_PARTS = ("train_setup", "train", "save_model", "sample", "predict")
EVALUATE_PARTS = ("write_samples", "metrics", "coverage_valid_only", "figure")


def _check_timings(result: dict, walls: dict[str, float]) -> None:
    """``timings_seconds`` holds exactly the phases that ran; each stage's parts fit in the stage's seconds, the
    stages in the measured wall time of their process(es), and ``total`` is the sum of the three stages. Values
    are rounded to 0.01 s, hence tolerances of half a hundredth per summand."""
    timings, stages = result["timings_seconds"], result["stages"]
    seconds = {name: stages[name]["seconds"] for name in ("prepare", "train", "evaluate")}
    staged = len(walls) > 1
    prepare_parts = ("prepare",) if staged else ("load_data",)
    evaluate_parts = ("load_data", *EVALUATE_PARTS) if staged else EVALUATE_PARTS
    loaded = ("load_samples",) if staged else ()  # read before the evaluate stage's clock starts
    assert set(timings) == {*prepare_parts, *TRAIN_PARTS, *evaluate_parts, *loaded, "total"}
    assert all(v >= 0 for v in timings.values()), timings
    for stage, parts in (("prepare", prepare_parts), ("train", TRAIN_PARTS), ("evaluate", evaluate_parts)):
        assert sum(timings[p] for p in parts) <= seconds[stage] + 0.005 * (len(parts) + 1), (stage, timings, stages)
    assert timings["total"] == pytest.approx(sum(seconds.values()), abs=0.02)
    assert 0 < timings["total"] <= sum(walls.values()), (timings, walls)
    if staged:  # one process per stage: each stage fits in its own process
        for stage, wall in walls.items():
            before = timings["load_samples"] if stage == "evaluate" else 0.0
            assert seconds[stage] + before <= wall, (stage, seconds, walls)


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
    out, done = run
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
    _check_timings(result, {"all": done.wall_seconds})
    assert result["hardware"]["cpu_count"] >= 1 and result["hardware"]["torch"]


def test_missing_data_dir_is_a_one_line_error(tmp_path, capsys):
    assert _script().main(["--data-dir", str(tmp_path / "nowhere"), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Perov-5 data folder") and "--data-dir" in err
    (tmp_path / "partial").mkdir()
    assert _script().main(["--data-dir", str(tmp_path / "partial")]) == 2
    assert "lacks val.csv.gz" in capsys.readouterr().err


def _blocked(args: list[str]) -> list[str]:
    """A command that runs the script with ``args`` while the materials stack cannot be imported."""
    return gpu_node_command(SCRIPT, [str(SCRIPT), *args])


def test_the_blocker_blocks():
    """Without this, a passing staged run would prove nothing about the GPU node."""
    code = BLOCKER + "import numpy, td_models\ntry:\n    import td_data\nexcept ImportError as e:\n    print(e)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "blocked: td_data", done.stderr


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """(output folder, {stage: completed process}) of prepare, train (materials stack blocked) and evaluate run
    as three processes into one folder, as on a GPU node without td-data."""
    _require_data()
    out = tmp_path_factory.mktemp("perov5_staged")
    common = ["--output-dir", str(out), "--no-progress"]
    commands = {
        "prepare": [sys.executable, str(SCRIPT), "--stage", "prepare", *DATA_TINY, *common],
        "train": _blocked(["--stage", "train", *TRAIN_TINY, *common]),
        "evaluate": [sys.executable, str(SCRIPT), "--stage", "evaluate", *DATA_TINY, *common],
    }
    runs = {}
    for stage, argv in commands.items():
        started = time.perf_counter()
        runs[stage] = subprocess.run(argv, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
        runs[stage].wall_seconds = time.perf_counter() - started
        assert runs[stage].returncode == 0, (stage, runs[stage].stdout[-2000:] + runs[stage].stderr[-4000:])
    return out, runs


@pytest.mark.slow
def test_staged_run(staged):
    out, runs = staged
    assert runs["prepare"].stdout.startswith("prepare: 64 training crystals")
    assert len(runs["prepare"].stdout.strip().splitlines()) == 1
    assert "blocked" not in runs["train"].stderr
    for name in ("train_items.npz", "model.pt", "samples.npz", "metrics.json", "table.md", "perov5.png",
                 "samples/index.json", "training/metrics.csv"):  # fmt: skip
        assert (out / name).is_file(), name

    result = json.loads((out / "metrics.json").read_text())
    script = _script()
    for key in ("metrics", "null_reasons", "table", "data", "training", "sampling", "config", "parameters",
                "timings_seconds", "hardware", "stages", "caveats"):  # fmt: skip
        assert key in result, key
    assert set(result["metrics"]) == set(script.METRIC_KEYS)
    assert result["n_requested"] == 16 and 1 <= result["n_generated"] <= 16
    assert result["data"]["n_train"] == result["data"]["n_test"] == 64
    assert result["data"]["train_atom_counts"] == {"5": 64}
    assert result["training"]["stopped_by"] == "budget" and result["training"]["weights"] == "EMA"
    assert result["sampling"]["steps"] == 20
    stages = result["stages"]
    assert stages["run"].startswith("separate processes")
    assert stages["train"]["hardware"] == result["hardware"] and stages["train"]["args"]["stage"] == "train"
    assert stages["evaluate"]["hardware"]["cpu_count"] >= 1 and stages["prepare"]["hardware"]
    _check_timings(result, {stage: done.wall_seconds for stage, done in runs.items()})
    assert result["timings_seconds"]["prepare"] == stages["prepare"]["seconds"]
    assert result["args"]["stage"] == "evaluate"
    assert (out / "table.md").read_text().count("\n| ") == 7  # header + 6 metric rows
    assert "ours (this run)" in runs["evaluate"].stdout and "Not like for like" in runs["evaluate"].stdout

    from td_models import TopologicalDiffusionModel, load_crystals

    samples, meta = load_crystals(out / "samples.npz")
    assert len(samples) == 16 == meta["sampling"]["n_requested"]
    assert len(list((out / "samples").glob("*.cif"))) == result["n_generated"]
    for s in samples:
        assert set(s["predicted"]) == {"band_gap", "formation_energy", "topo_class", "topo_class_probability"}
        assert all(v is None for v in s["conditions"].values())
        assert len(s["atomic_numbers"]) == len(s["frac_coords"]) == 5
    assert any(s["predicted"]["band_gap"] is not None for s in samples)
    assert meta["prepare"]["n_train"] == 64 and meta["prepare"]["max_train"] == 64
    assert meta["parameters"] == result["parameters"]
    assert TopologicalDiffusionModel.load(out / "model.pt").num_parameters() == meta["parameters"]
    items, prep = load_crystals(out / "train_items.npz")
    assert len(items) == prep["n_train"] == 64 and prep["train_files"] == ["val.csv.gz", "train_first1024.csv.gz"]


def test_stage_without_its_input_is_a_one_line_error(tmp_path, capsys):
    script = _script()
    assert script.main(["--stage", "evaluate", "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --stage evaluate needs") and err.count("\n") == 1
    assert str(tmp_path / "samples.npz") in err and "--stage train writes it" in err
    assert not (tmp_path / "metrics.json").exists()
    assert script.main(["--stage", "train", "--items", str(tmp_path / "x.npz"), "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --stage train needs") and err.count("\n") == 1
    assert str(tmp_path / "x.npz") in err and "--stage prepare writes it" in err
    assert script.main(["--stage", "prepare", "--samples", str(tmp_path / "s.npz")]) == 2
    assert capsys.readouterr().err.startswith("error: --samples is read only by --stage evaluate")

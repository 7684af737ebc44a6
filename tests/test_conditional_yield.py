"""benchmarks/conditional_yield.py: its statistics (Wilson, Katz, zero cases) and one tiny end-to-end run."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.gpu_node import gpu_node_command

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "conditional_yield.py"


@pytest.fixture(scope="module")
def cy():
    pytest.importorskip("td_models")
    spec = importlib.util.spec_from_file_location("_conditional_yield_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------- Wilson
@pytest.mark.parametrize(
    ("x", "n", "low", "high"),
    [
        # Wilson 95% score intervals as tabulated (e.g. Newcombe 1998, Table I; any statistics package)
        (0, 10, 0.0, 0.2775),
        (5, 10, 0.2366, 0.7634),
        (10, 10, 0.7225, 1.0),
        (1, 20, 0.0089, 0.2361),
    ],
)
def test_wilson_known_values(cy, x, n, low, high):
    lo, hi = cy.wilson_interval(x, n)
    assert lo == pytest.approx(low, abs=1e-4)
    assert hi == pytest.approx(high, abs=1e-4)


def test_wilson_edges_and_errors(cy):
    assert cy.wilson_interval(0, 0) == (None, None)
    assert cy.wilson_interval(0, 7)[0] == 0.0 and cy.wilson_interval(7, 7)[1] == 1.0
    with pytest.raises(ValueError):
        cy.wilson_interval(3, 2)
    s = cy.share(3, 12)
    assert s["share"] == 0.25 and s["ci_low"] < 0.25 < s["ci_high"] and (s["count"], s["n"]) == (3, 12)
    assert cy.share(0, 0)["share"] is None


# ---------------------------------------------------------------------------------------------- Katz
def test_katz_against_hand_computation(cy):
    # RR = (10/50) / (5/100) = 4; SE(ln RR) = sqrt(1/10 - 1/50 + 1/5 - 1/100) = sqrt(0.27) = 0.519615;
    # 4 exp(-/+ 1.959964 * 0.519615) = 4 * 0.361163 = 1.44465 and 4 * 2.768836 = 11.07535
    ratio, low, high = cy.katz_interval(10, 50, 5, 100)
    assert ratio == pytest.approx(4.0)
    assert low == pytest.approx(1.44465, abs=1e-4)
    assert high == pytest.approx(11.07535, abs=1e-4)
    e = cy.enrichment(10, 50, 5, 100)
    assert e["status"] == "finite" and e["method"] == "katz-log"
    assert (e["ratio"], e["ci_low"], e["ci_high"]) == (ratio, low, high)
    # equal shares: the interval is symmetric about 1 on the log scale
    _, lo, hi = cy.katz_interval(7, 40, 7, 40)
    assert lo * hi == pytest.approx(1.0)
    with pytest.raises(ValueError):
        cy.katz_interval(0, 10, 3, 10)


def test_enrichment_zero_cases(cy):
    inf = cy.enrichment(3, 20, 0, 20)  # unconditioned 0: infinite, one-sided lower bound
    lo1, _ = cy.wilson_interval(3, 20)
    _, hi2 = cy.wilson_interval(0, 20)
    assert inf["status"] == "infinite" and math.isinf(inf["ratio"]) and math.isinf(inf["ci_high"])
    assert inf["ci_low"] == pytest.approx(lo1 / hi2) and 0 < inf["ci_low"] < 1
    zero = cy.enrichment(0, 20, 3, 20)  # conditioned 0: ratio 0, one-sided upper bound
    assert zero["status"] == "zero" and zero["ratio"] == 0.0 and zero["ci_low"] == 0.0
    assert zero["ci_high"] == pytest.approx(cy.wilson_interval(0, 20)[1] / cy.wilson_interval(3, 20)[0])
    both = cy.enrichment(0, 20, 0, 30)
    assert both["status"] == "both_zero" and both["ratio"] is None and "both shares are 0" in both["note"]
    empty = cy.enrichment(0, 0, 1, 5)
    assert empty["status"] == "undefined" and empty["ratio"] is None
    assert cy.format_enrichment(inf).startswith("infinite") and ">=" in cy.format_enrichment(inf)
    assert cy.format_enrichment(zero).startswith("0 ") and "<=" in cy.format_enrichment(zero)
    assert cy.format_enrichment(both) == "undefined: both shares are 0"
    as_json = cy._json_ratio(inf)
    assert as_json["ratio"] == "inf" and as_json["ci_high"] == "inf"
    json.dumps(as_json, allow_nan=False)


def test_bad_option_is_a_one_line_error(cy, capsys):
    assert cy.main(["--num-atoms", "lots", "--output-dir", "unused"]) == 2
    assert capsys.readouterr().err.startswith("error: --num-atoms")


def test_missing_stage_inputs_are_one_line_errors(cy, capsys, tmp_path):
    assert cy.main(["--stage", "label", "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --stage label needs") and err.count("\n") == 1
    assert str(tmp_path / "samples_conditioned.npz") in err and "--stage train" in err
    assert cy.main(["--stage", "train", "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --stage train needs") and err.count("\n") == 1
    assert str(tmp_path / "train_items.npz") in err and "--stage prepare" in err
    assert not any(tmp_path.iterdir())  # nothing written


# ---------------------------------------------------------------------------------------------- end to end
TINY = ["--n-train", "24", "--budget-minutes", "0.2", "--max-epochs", "2", "--n-samples", "6", "--steps", "5"]


def _run(args: list[str], blocked: bool = False) -> subprocess.CompletedProcess:
    """The script in a subprocess (with ``blocked``: the materials stack made unimportable first)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg",
           "WANDB_MODE": "disabled"}  # fmt: skip
    argv = [str(SCRIPT), *args, "--no-progress"]
    if blocked:
        command = gpu_node_command(SCRIPT, argv)
    else:
        command = [sys.executable, *argv]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    done.wall_seconds = time.perf_counter() - started  # measured around the whole process, start-up included
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


#: what each stage times (``timings_seconds`` keys); a stage's parts are timed inside its ``stage_*`` span
PREPARE_PARTS = ("generate_training_data", "label_training_data")
TRAIN_PARTS = ("train", "sample_conditioned", "sample_unconditioned")
LABEL_PARTS = ("label_conditioned", "label_unconditioned", "figure")


def _check_timings(timings: dict, walls: dict[str, float], trained: bool = True) -> None:
    """``timings_seconds`` has exactly the phases that ran; each stage's parts fit in the stage, the stages in the
    measured wall time of the process(es) that ran them, and ``total`` is the sum of the stages. Every value is
    rounded to 0.01 s, hence the tolerances of half a hundredth per summand."""
    spans = {"stage_prepare": PREPARE_PARTS, "stage_train": TRAIN_PARTS, "stage_label": LABEL_PARTS}
    if not trained:  # --model-path: no prepare stage, and the model is loaded instead of trained
        spans = {"stage_train": ("load_model", *TRAIN_PARTS[1:]), "stage_label": LABEL_PARTS}
    assert set(timings) == {*spans, *(p for parts in spans.values() for p in parts), "total"}
    assert all(v >= 0 for v in timings.values()), timings
    for stage, parts in spans.items():
        assert sum(timings[p] for p in parts) <= timings[stage] + 0.005 * (len(parts) + 1), (stage, timings)
    assert timings["total"] == pytest.approx(sum(timings[s] for s in spans), abs=0.005 * (len(spans) + 1))
    assert 0 < timings["total"] <= sum(walls.values()), (timings, walls)
    if len(walls) > 1:  # one process per stage: each stage fits in its own process
        for stage in spans:
            assert timings[stage] <= walls[stage.removeprefix("stage_")], (stage, timings, walls)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    pytest.importorskip("td_models")
    pytest.importorskip("matplotlib")
    out = tmp_path_factory.mktemp("conditional_yield")
    done = _run([*TINY, "--output-dir", str(out)])
    return out, done


@pytest.mark.slow
def test_tiny_run_writes_files_and_keys(tiny_run, cy):
    out, done = tiny_run
    for name in ("yield.json", "yield.md", "yield.png", "crystals.csv", "model.pt"):
        assert (out / name).is_file(), name
    assert (out / "yield.png").stat().st_size > 1000
    result = json.loads((out / "yield.json").read_text())
    for key in ("arms", "enrichment", "training_labels", "training", "sampling", "config", "timings_seconds",
                "hardware", "notes", "num_atoms"):  # fmt: skip
        assert key in result, key
    tl = result["training_labels"]
    assert tl["n_records"] == 24 and set(tl["class_counts"]) == {"trivial", "z2_ti", "chern", "semimetal_or_metal"}
    assert tl["n_labelled"] == sum(tl["class_counts"].values()) <= tl["n_attempted"]
    for arm in ("conditioned", "unconditioned"):
        a = result["arms"][arm]
        assert a["n_generated"] == 6
        assert a["n_labelled"] + a["n_unlabelled"] == 6 == a["n_labelled"] + sum(a["unlabelled_reasons"].values())
        assert a["n_labelled"] == sum(a["class_counts"].values())
        assert a["share_over_generated"]["n"] == 6 and a["share_over_labelled"]["n"] == a["n_labelled"]
        assert a["n_z2_ti"] == a["class_counts"]["z2_ti"] == a["share_over_labelled"]["count"]
    assert result["sampling"]["conditioned"]["topo_class"] == "z2_ti"
    assert result["sampling"]["unconditioned"]["topo_class"] is None
    assert result["sampling"]["unconditioned"]["guidance_scale"] == 1.0
    c, u = result["arms"]["conditioned"], result["arms"]["unconditioned"]
    for basis, n in (("over_labelled", "n_labelled"), ("over_generated", "n_generated")):
        # the stored ratio and interval are those of the arms' own counts
        expected = cy._json_ratio(cy.enrichment(c["n_z2_ti"], c[n], u["n_z2_ti"], u[n]))
        assert result["enrichment"][basis] == json.loads(json.dumps(expected)), basis
    _check_timings(result["timings_seconds"], {"all": done.wall_seconds})
    assert "enrichment (conditioned / unconditioned)" in done.stdout and "Training labels:" in done.stdout
    table = (out / "yield.md").read_text()
    assert "| conditioned on z2_ti (w=2) |" in table and "| unconditioned |" in table
    assert len((out / "crystals.csv").read_text().splitlines()) == 1 + 12


@pytest.mark.slow
def test_model_path_skips_training(tiny_run, tmp_path):
    out, _ = tiny_run
    done = _run(["--model-path", str(out / "model.pt"), "--n-samples", "3", "--steps", "3", "--guidance-scale", "1",
                 "--num-atoms", "2", "--label-timeout", "8", "--output-dir", str(tmp_path)])  # fmt: skip
    result = json.loads((tmp_path / "yield.json").read_text())
    assert result["training"] is None and result["training_labels"] is None
    assert not (tmp_path / "model.pt").exists()
    _check_timings(result["timings_seconds"], {"all": done.wall_seconds}, trained=False)
    assert result["sampling"]["conditioned"]["guidance_scale"] == 1.0
    assert result["num_atoms"] == {"mode": "fixed", "value": 2}
    assert "Training labels: unknown" in done.stdout


@pytest.mark.slow
def test_stages_in_separate_processes(tmp_path):
    """prepare, train (materials stack unimportable, as on the GPU machine) and label, one process each."""
    pytest.importorskip("td_models")
    pytest.importorskip("matplotlib")
    from td_models import load_crystals
    from td_models.config import TOPO_CLASSES

    out = tmp_path / "run"
    prepared = _run(["--stage", "prepare", *TINY, "--output-dir", str(out)])
    assert "training labels:" in prepared.stdout
    assert sorted(p.name for p in out.iterdir()) == ["train_items.npz"]
    items, items_meta = load_crystals(out / "train_items.npz")
    assert len(items) == items_meta["n_items"] <= 24 and items_meta["training_labels"]["n_records"] == 24

    trained = _run(["--stage", "train", *TINY, "--output-dir", str(out)], blocked=True)
    assert "training:" in trained.stdout and "blocked:" not in trained.stderr
    for name in ("model.pt", "samples_conditioned.npz", "samples_unconditioned.npz"):
        assert (out / name).is_file(), name
    assert not (out / "yield.json").exists()
    samples = {arm: load_crystals(out / f"samples_{arm}.npz") for arm in ("conditioned", "unconditioned")}
    assert {s["conditions"]["topo_class"] for s in samples["conditioned"][0]} == {TOPO_CLASSES.index("z2_ti")}
    assert {s["conditions"]["topo_class"] for s in samples["unconditioned"][0]} == {None}

    labelled = _run(["--stage", "label", "--output-dir", str(out)])
    assert "enrichment (conditioned / unconditioned)" in labelled.stdout
    result = json.loads((out / "yield.json").read_text())
    for key in ("arms", "enrichment", "training_labels", "training", "sampling", "config", "timings_seconds",
                "hardware", "hardware_label", "notes", "num_atoms"):  # fmt: skip
        assert key in result, key
    assert result["training_labels"]["class_counts"] == items_meta["training_labels"]["class_counts"]
    assert result["training"]["n_items"] == len(items) and result["config"]["n_train"] == 24
    assert result["hardware"]["device"] == "cpu" and "torch" in result["hardware_label"]
    walls = {"prepare": prepared.wall_seconds, "train": trained.wall_seconds, "label": labelled.wall_seconds}
    _check_timings(result["timings_seconds"], walls)
    rows = (out / "crystals.csv").read_text().splitlines()[1:]
    for arm, (crystals, meta) in samples.items():
        a = result["arms"][arm]
        assert a["n_generated"] == len(crystals) == 6 == meta["config"]["n_samples"]
        assert a["n_labelled"] + a["n_unlabelled"] == len(crystals) == sum(r.startswith(f"{arm},") for r in rows)
        assert a["n_labelled"] == sum(a["class_counts"].values())
        n_predicted = sum(c["predicted"]["topo_class"] is not None for c in crystals)
        assert sum(a["predicted_class_counts"].values()) <= n_predicted
        assert result["sampling"][arm] == meta["sampling"]
        drawn = Counter(str(len(c["atomic_numbers"])) for c in crystals)
        assert result["num_atoms"]["drawn"] == dict(drawn) == meta["num_atoms"]["drawn"]
    assert result["sampling"]["conditioned"]["topo_class"] == "z2_ti"
    assert result["sampling"]["unconditioned"]["topo_class"] is None

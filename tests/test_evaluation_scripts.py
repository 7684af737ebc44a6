"""The evaluation scripts of the user guide, run as a user types them: ``python scripts/NAME.py ...`` in a working
folder where ``examples/training_example.py`` trained a tiny model (outputs/training/) and the data pipeline's
test split lies at data/05_model_input/test.h5. Unit checks of the shared command-line helpers run in-process
(``scripts._evaluation``, importable through the installed root project); the evaluation itself is td-data's
(``td_data.evaluation``) and is tested there."""

from __future__ import annotations

import csv
import json
import math
import os
import pickle
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("td_models")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", "WANDB_MODE": "disabled"}
TINY_CONFIG = {
    "model_config": {"hidden_dim": 32, "num_layers": 2, "num_heads": 4, "num_steps": 50},
    "training_config": {"batch_size": 8, "max_epochs": 2},
}


def run(cwd: Path, *argv: str, expect: int = 0, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python <argv>`` in ``cwd``, as typed; ``scripts/X.py`` and ``examples/X.py`` are the repository's."""
    args = [str(ROOT / a) if a.startswith(("scripts/", "examples/")) else a for a in argv]
    done = subprocess.run([sys.executable, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == expect, (argv, done.returncode, done.stdout[-3000:], done.stderr[-3000:])
    return done


@pytest.fixture
def helpers():
    """``scripts/_evaluation.py``, the scripts' command-line helpers, through the installed root project."""
    import scripts._evaluation

    return scripts._evaluation


def _crystals():
    from td_data import CrystalRecord

    out = []
    for i, a in enumerate((5.4, 5.5, 5.6, 5.7, 5.8, 5.9)):
        species = [31, 33] if i % 2 else [50, 52]  # GaAs / SnTe-like zincblende cells: elements the labeller knows
        lattice = [[0, a / 2, a / 2], [a / 2, 0, a / 2], [a / 2, a / 2, 0]]
        out.append(
            CrystalRecord(
                lattice,
                [[0, 0, 0], [0.25, 0.25, 0.25]],
                species,
                id=f"zb-{i}",
                properties={"band_gap": 0.5 + 0.1 * i, "formation_energy": -0.3 - 0.05 * i},
                labels={"topo_class": "trivial" if i % 2 else "z2_ti"},
            )  # fmt: skip
        )
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A working folder as a user has it after training with the guide's command and running the data pipeline:
    outputs/training/{best_model,final_model}.pt and metrics.csv, data/05_model_input/test.h5 (six labelled
    crystals)."""
    from td_data import CrystalStore

    work = tmp_path_factory.mktemp("work")
    (work / "training_config.json").write_text(json.dumps(TINY_CONFIG))
    run(work, "examples/training_example.py", "--config", "training_config.json", "--num-synthetic", "24",
        "--no-progress", "--no-tensorboard", "--threads", "1")  # fmt: skip
    for name in ("best_model.pt", "final_model.pt", "metrics.csv"):
        assert (work / "outputs" / "training" / name).is_file(), name
    (work / "data" / "05_model_input").mkdir(parents=True)
    with CrystalStore.create(work / "data" / "05_model_input" / "test.h5") as store:
        store.append(_crystals())
    return work


@pytest.fixture(scope="module")
def generated(workdir):
    """``(completed process, metrics.json)`` of the guide's generation-quality command without --model-path
    (5 samples in batches of at most 2, with progress bars)."""
    done = run(workdir, "scripts/test_generation_quality.py", "--n-samples", "5", "--steps", "8", "--batch-size", "2",
               "--dataset", "perov5", "--output-dir", "validation_results/")  # fmt: skip
    return done, json.loads((workdir / "validation_results" / "metrics.json").read_text())


# ------------------------------------------------------------------------------------ generation quality
def test_generation_quality_guide_path_names_where_training_wrote(workdir):
    done = run(workdir, "scripts/test_generation_quality.py", "--model-path", "checkpoints/best_model.pt",
               "--n-samples", "1000", "--output-dir", "validation_results/", expect=2)  # fmt: skip
    err = done.stderr
    assert err.startswith("error: model file 'checkpoints/best_model.pt' does not exist") and err.count("\n") == 1
    assert "OUTPUT_DIR/best_model.pt" in err and "data/06_models/model.pt" in err
    assert "models found here (newest first): outputs/training/best_model.pt" in err
    assert not (workdir / "validation_results").exists()


def test_generation_quality_defaults_to_the_newest_model(workdir, generated):
    from td_models import TopologicalDiffusionModel

    done, metrics = generated
    first = done.stdout.splitlines()[0]
    assert first.startswith("model: outputs/training/best_model.pt (the newest trained model found")
    assert Path(metrics["model_path"]).resolve() == (workdir / "outputs" / "training" / "best_model.pt").resolve()
    assert metrics["reference"] == "data/05_model_input/test.h5 (6 crystals)"
    # progress bars on stderr: the chunks of crystals, td-models' reverse steps, the fingerprints, the metric steps
    bars = ("sampling 5 crystals", "predicting properties", "validity", "fingerprints (generated)",
            "fingerprints (reference)", "metrics")  # fmt: skip
    for bar in bars:
        assert bar in done.stderr, bar
    out = workdir / "validation_results"
    cifs = sorted((out / "samples").glob("*.cif"))
    assert len(cifs) == metrics["n_records"] == metrics["n_generated"] == 5 - metrics["n_rejected_samples"]
    assert (out / "histograms.png").stat().st_size > 1000
    # definitional bounds and internal consistency of the metrics
    n = metrics["n_generated"]
    assert metrics["n_valid"] == round(metrics["valid"] * n)
    assert metrics["valid"] <= min(metrics["struct_valid"], metrics["comp_valid"])
    for key in ("struct_valid", "comp_valid", "cov_recall", "cov_precision", "uniqueness"):
        assert 0 <= metrics[key] <= 1, key
    assert metrics["uniqueness"] > 0 and round(metrics["struct_valid"] * n, 9) % 1 == 0
    assert (metrics["struct_cutoff"], metrics["comp_cutoff"]) == (0.2, 4.0)  # the perov5 cutoffs
    assert metrics["novelty"] is None and metrics["train"] is None  # no --train given
    model = TopologicalDiffusionModel.load(workdir / "outputs" / "training" / "best_model.pt")
    assert metrics["steps"] == 8 and model.num_steps == 50 and metrics["batch_size"] == 2


def test_generation_quality_refuses_a_pickled_reference(workdir, tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "ref.pkl").write_bytes(_malicious_pickle(marker))
    done = run(workdir, "scripts/test_generation_quality.py", "--reference", str(tmp_path / "ref.pkl"),
               "--n-samples", "2", "--output-dir", str(tmp_path / "out"), expect=2)  # fmt: skip
    assert "is a pickle, which is refused by default" in done.stderr and "--trusted" in done.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_generation_quality_without_any_model_says_how_to_train(tmp_path):
    done = run(tmp_path, "scripts/test_generation_quality.py", "--n-samples", "10", expect=2)
    err = done.stderr
    assert err.startswith("error: no --model-path given and no trained model found") and err.count("\n") == 1
    for place in ("outputs/*/best_model.pt", "checkpoints/best_model.pt", "data/06_models/model.pt"):
        assert place in err, place
    assert "python examples/training_example.py" in err and "kedro run" in err
    assert list(tmp_path.iterdir()) == []


def test_sampling_bar_follows_every_reverse_step_and_changes_nothing(helpers, workdir):
    from td_models import TopologicalDiffusionModel

    model = TopologicalDiffusionModel.load(workdir / "outputs" / "training" / "best_model.pt")
    calls = []
    original = helpers.StepProgress.__call__
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(helpers.StepProgress, "__call__", lambda self, d, t: (calls.append((d, t)), original(self, d, t)))
        barred = helpers.sample_with_progress(model, 5, batch_size=2, seed=3, steps=4, disable=False)
    plain = model.sample(5, seed=3, steps=4, batch_size=2)
    assert len(barred) == len(plain) == 5
    for a, b in zip(barred, plain):  # the bar only watches: same crystals as a call without it
        np.testing.assert_array_equal(a["atomic_numbers"], b["atomic_numbers"])
        np.testing.assert_array_equal(a["lattice"], b["lattice"])
        np.testing.assert_array_equal(a["frac_coords"], b["frac_coords"])
    total = calls[0][1]
    assert total % 4 == 0 and total >= 4 * 3  # 4 steps for each of at least ceil(5 / 2) batches
    assert calls == [(d, total) for d in range(1, total + 1)]
    calls.clear()
    with pytest.MonkeyPatch.context() as mp:  # without steps: the number metrics.json records is the one sampled
        mp.setattr(helpers.StepProgress, "__call__", lambda self, d, t: calls.append((d, t)))
        helpers.sample_with_progress(model, 1, seed=0, disable=True)
    assert calls[-1] == (helpers.default_steps(model),) * 2


def test_metrics_with_progress_equal_the_library_metrics(helpers):
    from td_data import CrystalRecord, SyntheticDatasetGenerator
    from td_data.metrics import generation_metrics

    nacl2 = CrystalRecord(np.eye(3) * 5.0, [[0, 0, 0], [0.5, 0.5, 0.5], [0, 0.5, 0.5]], [11, 17, 17], id="nacl2")
    generated = [*SyntheticDatasetGenerator(seed=1, max_atoms=6).generate_dataset(6), nacl2]  # NaCl2: not neutral
    reference = _crystals()
    ours = helpers.generation_metrics_with_progress(generated, reference, dataset="perov_5", train=reference[:3],
                                                    disable=True)  # fmt: skip
    theirs = generation_metrics(generated, reference, dataset="perov_5", train=reference[:3], n_jobs=1)
    assert set(ours) == set(theirs)
    for key, value in theirs.items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(ours[key]), key
        elif isinstance(value, float):
            assert ours[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
        else:
            assert ours[key] == value, key
    assert 0 < theirs["n_valid"] < 7  # a set with valid and invalid crystals, so the masks matter


# ------------------------------------------------------------------------------------ physics consistency
def _malicious_pickle(marker: Path) -> bytes:
    """A pickle that creates ``marker`` when loaded: it must never be opened without --trusted."""

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    return pickle.dumps([Payload()])


def test_physics_consistency_refuses_the_guides_pickle_and_says_what_to_use(workdir):
    marker = workdir / "pwned"
    (workdir / "test_set.pkl").write_bytes(_malicious_pickle(marker))
    (workdir / "test_set.dat").write_bytes(_malicious_pickle(marker))  # a pickle under another name
    # as typed in the guide: the model path first (training never wrote it), then the pickle
    done = run(workdir, "scripts/test_physics_consistency.py", "--model-path", "checkpoints/best_model.pt",
               "--test-materials", "test_set.pkl", expect=2)  # fmt: skip
    assert "models found here (newest first): outputs/training/best_model.pt" in done.stderr
    for name in ("test_set.pkl", "test_set.dat"):
        done = run(workdir, "scripts/test_physics_consistency.py", "--model-path", "outputs/training",
                   "--test-materials", name, expect=2)  # fmt: skip
        err = done.stderr
        assert err.startswith(f"error: test materials {name!r} is a pickle, which is refused by default"), err
        assert "Pass --trusted to read it only if you made it yourself" in err
        for safe in ("HDF5 store", "JSON", "folder of CIF files"):
            assert safe in err, safe
    assert not marker.exists()


def test_physics_consistency_reads_json_and_trusted_pickles(workdir, tmp_path):
    from td_models import TopologicalDiffusionModel
    from td_models.config import TOPO_CLASSES

    records = _crystals()
    (tmp_path / "test_set.json").write_text(json.dumps([r.to_dict() for r in records]))
    (tmp_path / "test_set.pkl").write_bytes(pickle.dumps([r.to_dict() for r in records]))
    model = TopologicalDiffusionModel.load(workdir / "outputs" / "training" / "best_model.pt")
    preds = model.predict_properties(
        [{"lattice": r.lattice, "frac_coords": r.frac_coords, "atomic_numbers": r.atomic_numbers} for r in records]
    )
    heads = {}
    for name, extra in (("test_set.json", []), ("test_set.pkl", ["--trusted"])):
        out = tmp_path / f"pc-{name}"
        run(workdir, "scripts/test_physics_consistency.py", "--test-materials", str(tmp_path / name), *extra,
            "--n-samples", "2", "--steps", "4", "--classes", "TI", "--max-relabel", "1", "--output-dir", str(out),
            "--no-progress")  # fmt: skip
        heads[name] = json.loads((out / "property_heads.json").read_text())
    assert heads["test_set.json"] == {**heads["test_set.pkl"], "test_materials": str(tmp_path / "test_set.json")}
    h = heads["test_set.json"]
    # the MAEs and the accuracy are those of the model's own predictions on the six crystals
    gaps = np.array([r.properties["band_gap"] for r in records])
    energies = np.array([r.properties["formation_energy"] for r in records])
    assert h["band_gap_mae"] == pytest.approx(float(np.mean(np.abs(gaps - preds.band_gap))), rel=1e-5)
    assert h["formation_energy_mae"] == pytest.approx(float(np.mean(np.abs(energies - preds.formation_energy))),
                                                      rel=1e-5)  # fmt: skip
    assert h["band_gap_mae_of_mean_baseline"] == pytest.approx(float(np.mean(np.abs(gaps - gaps.mean()))))
    truth = [r.labels["topo_class"] for r in records]
    assert h["class_accuracy"] == pytest.approx(np.mean([t == p for t, p in zip(truth, preds.topo_class)]))
    assert h["majority_class_baseline"] == 0.5 and set(truth) <= set(TOPO_CLASSES)


def test_physics_consistency_confusion_is_consistent(workdir):
    done = run(workdir, "scripts/test_physics_consistency.py", "--model-path", "outputs/training/best_model.pt",
               "--n-samples", "3", "--steps", "8", "--classes", "TI", "trivial", "--max-relabel", "1",
               "--output-dir", "physics_results")  # fmt: skip
    assert done.stdout.startswith("model: outputs/training/best_model.pt (--model-path)")
    assert "classes" in done.stderr  # the progress bar over the requested classes
    out = workdir / "physics_results"
    result = json.loads((out / "confusion.json").read_text())
    heads = json.loads((out / "property_heads.json").read_text())
    assert heads["test_materials"] == "data/05_model_input/test.h5" and heads["n_crystals"] == 6
    assert result["classes"] == ["z2_ti", "trivial"]
    assert set(result["confusion"]["z2_ti"]) == {"trivial", "z2_ti", "chern", "semimetal_or_metal"}
    for cls in result["classes"]:
        row = result["per_class"][cls]
        assert row["n_checked"] + row["n_refused"] == row["n_records"] <= 3
        assert sum(result["confusion"][cls].values()) == row["n_checked"] <= 1  # --max-relabel 1
        assert sum(row["refusals"].values()) == row["n_refused"]
        assert row["n_as_requested"] == result["confusion"][cls][cls]
        share = row["share_as_requested"]
        assert share == (row["n_as_requested"] / row["n_checked"] if row["n_checked"] else None)
    n_checked = sum(r["n_checked"] for r in result["per_class"].values())
    n_as = sum(result["confusion"][c][c] for c in result["classes"])
    assert (result["n_checked"], result["n_as_requested"]) == (n_checked, n_as)
    assert result["share_as_requested"] == (n_as / n_checked if n_checked else None)
    assert (out / "confusion.png").stat().st_size > 1000


def test_labelling_progress_reaches_every_crystal(helpers):
    from pipelines.evaluate.nodes import physics_consistency

    records = [r.with_labels(requested_class="trivial") for r in _crystals()[1:4:2]]  # two GaAs cells
    bar = helpers.StepProgress("labelling", disable=True)
    checked, report, _ = physics_consistency(records, {"workers": 1, "gap_mesh": 4}, {"max_relabel": 2}, progress=bar)
    assert report["n_checked"] == 2 == len(checked)
    assert bar.calls[-1] == (2, 2) and [d for d, _ in bar.calls] == list(range(1, len(bar.calls) + 1))


# ------------------------------------------------------------------------------------ model and log discovery
def _touch(path: Path, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    os.utime(path, (mtime, mtime))


def test_newest_model_wins_and_a_run_offers_its_best_model(helpers, tmp_path):
    _touch(tmp_path / "outputs" / "old" / "best_model.pt", 1_000)
    _touch(tmp_path / "outputs" / "training" / "best_model.pt", 2_000)
    _touch(tmp_path / "outputs" / "training" / "final_model.pt", 3_000)  # newer, but the run's best model is offered
    path, how = helpers.resolve_model_path(None, tmp_path)
    assert path == tmp_path / "outputs" / "training" / "best_model.pt"
    assert "examples/training_example.py" in how and "also found: outputs/old/best_model.pt" in how
    _touch(tmp_path / "data" / "06_models" / "model.pt", 4_000)  # then the Kedro pipeline trains
    path, how = helpers.resolve_model_path(None, tmp_path)
    assert path == tmp_path / "data" / "06_models" / "model.pt" and "Kedro train pipeline" in how
    _touch(tmp_path / "outputs" / "only_final" / "final_model.pt", 5_000)  # a run stopped before validation
    assert helpers.resolve_model_path(None, tmp_path)[0] == tmp_path / "outputs" / "only_final" / "final_model.pt"
    # explicit paths win, folders give their model
    explicit = tmp_path / "outputs" / "old" / "best_model.pt"
    assert helpers.resolve_model_path(str(explicit), tmp_path) == (explicit, "--model-path")
    for folder in ("outputs/training", "outputs/training/checkpoints"):
        (tmp_path / "outputs" / "training" / "checkpoints").mkdir(exist_ok=True)
        got, _ = helpers.resolve_model_path(str(tmp_path / folder), tmp_path)
        assert got == tmp_path / "outputs" / "training" / "best_model.pt", folder
    with pytest.raises(helpers.ScriptError, match="is a folder without best_model.pt"):
        helpers.resolve_model_path(str(tmp_path / "data"), tmp_path)
    assert issubclass(helpers.ScriptError, ValueError)


def test_plot_training_curves_as_typed(workdir):
    done = run(workdir, "scripts/plot_training_curves.py", "--log-dir", "logs/", expect=2)
    err = done.stderr
    assert err.startswith("error: log directory 'logs/' does not exist; training writes its log (metrics.csv)")
    assert "outputs/*/metrics.csv" in err and "data/06_models/metrics.csv" in err
    assert "Logs found here: outputs/training/" in err and err.count("\n") == 1
    done = run(workdir, "scripts/plot_training_curves.py")
    assert done.stdout.startswith("log: outputs/training/metrics.csv (the newest training log")
    assert "epoch 2, step 6" in done.stdout
    assert (workdir / "outputs" / "training" / "training_curves.png").stat().st_size > 1000
    run(workdir, "scripts/plot_training_curves.py", "--log-dir", "outputs/", "--output", "figures/new/curves.png")
    assert (workdir / "figures" / "new" / "curves.png").stat().st_size > 1000  # the output folders are created


def test_plot_training_curves_without_logs(tmp_path):
    done = run(tmp_path, "scripts/plot_training_curves.py", expect=2)
    assert done.stderr.startswith("error: no --log-dir given and no training log found")
    assert "outputs/*/metrics.csv" in done.stderr and "data/06_models/metrics.csv" in done.stderr
    (tmp_path / "logs").mkdir()
    done = run(tmp_path, "scripts/plot_training_curves.py", "--log-dir", "logs", expect=2)
    assert done.stderr.startswith("error: no metrics.csv in 'logs' or below; training writes its log")


def test_plot_training_curves_phases_from_a_trainer_log(tmp_path, helpers):
    from td_models.training.logbook import COLUMNS

    log = tmp_path / "logs" / "run1"
    log.mkdir(parents=True)
    with open(log / "metrics.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for step in range(1, 13):
            phase = "structure_learning" if step <= 6 else "physics_integration"
            row = {"kind": "train", "epoch": (step + 1) // 2, "step": step, "phase": phase, "lr": 1e-4 / step,
                   "total": 5.0 / step, "diffusion": 4.0 / step, "lattice": 1.0 / step, "coords": 1.5 / step,
                   "species": 1.5 / step}  # fmt: skip
            if phase == "physics_integration":
                row.update({"properties": 0.5, "band_gap": 0.2, "density": 0.1})
            writer.writerow(row)
            if step % 2 == 0:
                writer.writerow({**row, "kind": "epoch"})
                writer.writerow(
                    {"kind": "val", "epoch": row["epoch"], "step": step, "phase": phase, "diffusion": 3.0 / step}
                )
    done = run(tmp_path, "scripts/plot_training_curves.py", "--log-dir", "logs/")
    assert "epoch 6, step 12 (physics_integration)" in done.stdout
    assert (log / "training_curves.png").stat().st_size > 1000
    # the script's own function, imported as Python imports a module of the current folder
    code = (
        "import json, pandas as pd, plot_training_curves as s; "
        f"spans = s.phase_spans(pd.read_csv({str(log / 'metrics.csv')!r})); "
        "print(json.dumps([(p, int(a), int(b)) for p, a, b in spans]))"
    )
    spans = [tuple(span) for span in json.loads(run(SCRIPTS, "-c", code).stdout)]
    assert spans == [("structure_learning", 1, 6), ("physics_integration", 6, 12)]


# ------------------------------------------------------------------------------------ analysis of generations
def test_analyze_generations_as_typed(workdir, generated):
    _, metrics = generated
    done = run(workdir, "scripts/analyze_generations.py", "--output-dir", "results/", "--no-prototypes")
    assert done.stdout.startswith("crystals: validation_results/samples (the newest generated crystals")
    out = workdir / "results" / "analysis"
    rows = list(csv.DictReader(open(out / "structures.csv")))
    assert len(rows) == metrics["n_records"] == json.loads((out / "analysis.json").read_text())["n_crystals"]
    for name in ("summary.png", "gallery.png"):
        assert (out / name).stat().st_size > 1000, name
    assert "crystals" in done.stderr  # the progress bar over the crystals


def test_analyze_generations_without_generations(tmp_path):
    done = run(tmp_path, "scripts/analyze_generations.py", "--output-dir", "results/", expect=2)
    err = done.stderr
    assert err.startswith("error: no generated crystals found") and "validation_results/samples" in err
    assert "data/07_model_output/candidates" in err and "--input-dir" in err
    done = run(tmp_path, "scripts/analyze_generations.py", "--input-dir", "nowhere", expect=2)
    assert done.stderr.startswith("error: --input-dir 'nowhere' does not exist or is not a folder")
    assert list(tmp_path.iterdir()) == []


def test_analyze_generations_space_groups_prototypes_gallery(tmp_path):
    from pymatgen.core import Lattice, Structure

    from pipelines.datasets import CifFolderDataset
    from td_data import CrystalRecord

    rocksalt = CrystalRecord.from_structure(
        Structure.from_spacegroup("Fm-3m", Lattice.cubic(6.46), ["Pb", "Te"], [[0, 0, 0], [0.5, 0.5, 0.5]]), id="pbte"
    )
    CifFolderDataset(path=tmp_path / "run" / "samples").save([*_crystals()[:2], rocksalt])
    done = run(tmp_path, "scripts/analyze_generations.py", "--output-dir", "run", "--no-progress", "--n-best", "2")
    assert done.stdout.startswith("crystals: run (--output-dir holds CIFs)")
    out = tmp_path / "run" / "analysis"
    rows = {r["id"]: r for r in csv.DictReader(open(out / "structures.csv"))}
    assert rows["samples/pbte"]["spacegroup_symbol"] == "Fm-3m" and rows["samples/pbte"]["crystal_system"] == "cubic"
    assert rows["samples/pbte"]["aflow_prototype"] == "AB_cF8_225_a_b"
    assert rows["samples/zb-0"]["spacegroup_symbol"] == "F-43m"
    summary = json.loads((out / "analysis.json").read_text())
    assert summary["n_crystals"] == 3 and summary["prototypes_matched"] >= 1
    assert summary["elements"]["Te"] == 2
    assert summary["gallery"]["n_built"] >= 1
    assert (out / "gallery.png").stat().st_size > 1000 and (out / "summary.png").stat().st_size > 1000


# ------------------------------------------------------------------------------------ files
def test_files_are_written_atomically_with_the_users_umask(helpers, tmp_path):
    old = os.umask(0o027)
    try:
        path = helpers.write_json({"x": float("nan"), "y": np.float32(1.5)}, tmp_path / "new" / "a.json")
    finally:
        os.umask(old)
    assert json.loads(path.read_text()) == {"x": None, "y": 1.5}
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # 0666 & ~umask, not mkstemp's 0600
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.json"]  # no temporary file left behind


def test_missing_pipelines_package_is_a_one_line_error(tmp_path):
    """Without the project installed (``pip install -e .``), the scripts say so instead of a traceback."""
    (tmp_path / "gen").mkdir()
    _crystals()[0].to_structure().to(filename=str(tmp_path / "gen" / "zb.cif"))
    code = (
        "import runpy, sys; sys.modules['pipelines'] = None; "  # as if the package were not installed
        f"sys.argv = ['analyze_generations.py', '--input-dir', {str(tmp_path / 'gen')!r}]; "
        "runpy.run_path('analyze_generations.py', run_name='__main__')"
    )
    done = run(SCRIPTS, "-c", code, expect=2)  # in the scripts' folder, which Python puts first on the path
    assert done.stderr.startswith("error: the project's Kedro package `pipelines` is not installed")
    assert "pip install -e ." in done.stderr and "Traceback" not in done.stderr

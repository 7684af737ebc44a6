"""The evaluation scripts of the user guide, run in-process on a tiny untrained model with tiny sample counts."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path

import pytest

pytest.importorskip("td_models")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"_eval_script_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
                properties={"band_gap": 0.5 + 0.1 * i, "formation_energy": -0.3},
                labels={"topo_class": "trivial" if i % 2 else "z2_ti"},
            )  # fmt: skip
        )
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """``(model file, store of six labelled crystals)``: an untrained 2-layer model fitted on their statistics."""
    from td_data import CrystalStore
    from td_models import ExperimentConfig, TopologicalDiffusionModel, crystal_item

    tmp = tmp_path_factory.mktemp("tiny")
    config = ExperimentConfig.from_dict(
        {"model_config": {"hidden_dim": 32, "num_layers": 2, "num_heads": 4, "num_steps": 50}}
    )
    model = TopologicalDiffusionModel(config)
    records = _crystals()
    model.fit_normalisation([crystal_item(r.lattice, r.frac_coords, r.atomic_numbers) for r in records])
    model.save(tmp / "model.pt")
    with CrystalStore.create(tmp / "crystals.h5") as store:
        store.append(records)
    return tmp / "model.pt", tmp / "crystals.h5"


def _finite_fraction(value) -> bool:
    return value is not None and math.isfinite(value) and 0.0 <= value <= 1.0


def test_generation_quality_writes_metrics_cifs_and_figures(tiny, tmp_path, capsys):
    model, store = tiny
    out = tmp_path / "gq"
    argv = ["--model-path", str(model), "--n-samples", "5", "--steps", "8", "--reference", str(store),
            "--train", str(store), "--dataset", "perov5", "--output-dir", str(out), "--no-progress"]  # fmt: skip
    assert _script("test_generation_quality").main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("valid", "struct_valid", "comp_valid", "cov_recall", "cov_precision", "uniqueness", "novelty"):
        assert _finite_fraction(metrics[key]), (key, metrics[key])
    assert metrics["wdist_density"] >= 0 and metrics["wdist_num_elems"] >= 0
    assert (metrics["struct_cutoff"], metrics["comp_cutoff"]) == (0.2, 4.0)  # the perov5 cutoffs
    assert metrics["n_generated"] == metrics["n_records"] == 5
    assert len(list((out / "samples").glob("*.cif"))) == 5
    assert (out / "histograms.png").stat().st_size > 1000
    assert "cov_recall" in capsys.readouterr().out


def test_generation_quality_errors_are_one_line(tiny, tmp_path, capsys):
    model, store = tiny
    script = _script("test_generation_quality")
    assert script.main(["--model-path", str(tmp_path / "missing.pt"), "--reference", str(store)]) == 2
    assert "model file" in capsys.readouterr().err
    assert script.main(["--model-path", str(model), "--reference", str(tmp_path / "none.h5")]) == 2
    assert "reference" in capsys.readouterr().err
    (tmp_path / "x.pkl").write_bytes(b"not really")
    assert script.main(["--model-path", str(model), "--reference", str(tmp_path / "x.pkl")]) == 2
    assert "--trusted" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.main(["--help"])
    assert "--n-samples" in capsys.readouterr().out


def test_physics_consistency_confusion_and_property_heads(tiny, tmp_path):
    model, store = tiny
    out = tmp_path / "pc"
    argv = ["--model-path", str(model), "--test-materials", str(store), "--n-samples", "3", "--steps", "8",
            "--classes", "TI", "trivial", "--max-relabel", "2", "--output-dir", str(out), "--no-progress"]  # fmt: skip
    assert _script("test_physics_consistency").main(argv) == 0
    result = json.loads((out / "confusion.json").read_text())
    assert result["classes"] == ["z2_ti", "trivial"]
    assert set(result["confusion"]["z2_ti"]) == {"trivial", "z2_ti", "chern", "semimetal_or_metal"}
    for cls in result["classes"]:
        row = result["per_class"][cls]
        assert row["n_checked"] + row["n_refused"] == row["n_records"] <= 3
        assert sum(result["confusion"][cls].values()) == row["n_checked"]
    assert result["per_class"]["z2_ti"]["refusals"].get("beyond --max-relabel", 0) >= 1
    assert result["share_as_requested"] is None or 0 <= result["share_as_requested"] <= 1
    heads = json.loads((out / "property_heads.json").read_text())
    assert heads["n_crystals"] == heads["band_gap_n_labelled"] == heads["class_n_labelled"] == 6
    assert heads["band_gap_mae"] >= 0 and heads["formation_energy_mae"] >= 0
    assert 0 <= heads["class_accuracy"] <= 1
    assert (out / "confusion.png").stat().st_size > 1000


def test_physics_consistency_refuses_missing_files_and_untrusted_pickles(tiny, tmp_path, capsys):
    model, _ = tiny
    script = _script("test_physics_consistency")
    assert script.main(["--model-path", str(model), "--test-materials", str(tmp_path / "nope")]) == 2
    assert "test materials" in capsys.readouterr().err
    (tmp_path / "test_set.pkl").write_bytes(b"x")
    assert script.main(["--model-path", str(model), "--test-materials", str(tmp_path / "test_set.pkl")]) == 2
    assert "pickle" in capsys.readouterr().err


def test_plot_training_curves_from_a_trainer_log(tmp_path, capsys):
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
    script = _script("plot_training_curves")
    assert script.main(["--log-dir", str(tmp_path / "logs")]) == 0
    assert (log / "training_curves.png").stat().st_size > 1000
    assert "epoch 6, step 12 (physics_integration)" in capsys.readouterr().out
    assert script.phase_spans(__import__("pandas").read_csv(log / "metrics.csv"))[1][0] == "physics_integration"
    assert script.main(["--log-dir", str(tmp_path / "empty")]) == 2


def test_analyze_generations_space_groups_prototypes_gallery(tmp_path, capsys):
    from pymatgen.core import Lattice, Structure

    from pipelines.datasets import CifFolderDataset
    from td_data import CrystalRecord

    rocksalt = CrystalRecord.from_structure(
        Structure.from_spacegroup("Fm-3m", Lattice.cubic(6.46), ["Pb", "Te"], [[0, 0, 0], [0.5, 0.5, 0.5]]), id="pbte"
    )
    CifFolderDataset(path=tmp_path / "run" / "samples").save([*_crystals()[:2], rocksalt])
    assert (
        _script("analyze_generations").main(["--output-dir", str(tmp_path / "run"), "--no-progress", "--n-best", "2"])
        == 0
    )
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
    assert _script("analyze_generations").main(["--output-dir", str(tmp_path / "missing")]) == 2

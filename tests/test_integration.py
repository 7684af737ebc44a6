"""The complete pipeline on the user's own files (the user guide's ``python tests/test_integration.py``).

A folder of CIF, POSCAR and JSON files goes through every Kedro pipeline (ingest -> label -> split -> train ->
generate -> evaluate -> report), run through the ``KedroSession`` API as a notebook or a script runs it, in a
temporary copy of the project with a tiny configuration in ``conf/local``. Each stage's output is checked against
its inputs: what was quarantined, the labels of the literature crystals, the split, the training, the candidates
and the metrics. ``tests/test_pipelines_e2e.py`` runs the ``kedro run`` command line on the synthetic data and
checks that every catalogued file is written; this test checks the values, on user data.

Runs with pytest or as a script: ``python tests/test_integration.py``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TINY = """
data_config: {{source: cif_folder, path: {path}, n_samples: 1, seed: 0, max_atoms: 12, elements: labeller,
              fraction_2d: 0.0, trusted: false}}
label_options: {{max_records: 20, max_atoms: 5, workers: 1, spin_orbit: true, spin_orbit_constants: null,
                gap_mesh: 4, metal_gap: 0.001, max_band_overlap: 0.5}}
model_config: {{num_species: 100, hidden_dim: 16, num_topo_classes: 4, num_layers: 1, num_heads: 2,
               max_atoms: 12, num_steps: 20}}
training_config: {{batch_size: 8, learning_rate: 0.001, max_epochs: 2, warmup_epochs: 0,
                  checkpoint_every: 1, keep_checkpoints: 1, seed: 0}}
generate_options: {{n_candidates: 4, steps: 5, seed: 0}}
evaluate_options: {{coverage_dataset: mp_20, max_metric_candidates: 4, max_relabel: 2, max_relabel_atoms: 4}}
"""

# The KedroSession API, in its own process (bootstrap_project configures logging and settings process-wide).
RUN = """
import sys
from pathlib import Path

from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

project = Path(sys.argv[1])
bootstrap_project(project)
with KedroSession.create(project_path=project) as session:
    session.run()
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """One run of the default pipeline on a folder of 12 reference crystals and 2 unreadable files."""
    from tests._crystal_files import write_user_folder  # imported here: a script run sets the root path first

    base = tmp_path_factory.mktemp("integration")
    written = write_user_folder(base / "user_crystals")
    project = base / "project"
    project.mkdir()
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    (project / "conf" / "local").mkdir()
    tiny = TINY.format(path=json.dumps(str(base / "user_crystals")))
    (project / "conf" / "local" / "parameters_tiny.yml").write_text(tiny, encoding="utf-8")
    (project / "pipelines").symlink_to(ROOT / "pipelines")
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(project)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return {"data": project / "data", "written": written, "log": done.stdout + done.stderr}


def _json(run: dict, path: str) -> dict:
    return json.loads((run["data"] / path).read_text(encoding="utf-8"))


def _store(run: dict, path: str) -> list:
    from td_data.store import CrystalStore

    with CrystalStore.open(run["data"] / path) as store:
        return store.read_all()


def _crystal_of(record, written: dict[str, str]) -> str:
    by_file = {file_name: name for name, file_name in written.items()}
    return by_file[Path(record.source).name]


def test_ingest_keeps_every_readable_file_and_quarantines_the_others(run):
    from tests._crystal_files import BROKEN

    quarantine = _json(run, "01_raw/quarantine.json")
    assert quarantine["counts"] == {"kept": len(run["written"]), "quarantined": len(BROKEN)}
    assert sorted(Path(e["source"]).name for e in quarantine["entries"]) == sorted(BROKEN)
    assert all(e["reason"] for e in quarantine["entries"])
    raw = _store(run, "01_raw/crystals.h5")
    assert sorted(_crystal_of(r, run["written"]) for r in raw) == sorted(run["written"])


def test_labels_of_the_literature_crystals(run):
    from td_models import TOPO_CLASSES
    from tests._crystal_files import CRYSTALS

    labelled = _store(run, "02_intermediate/labelled_crystals.h5")
    classes = {_crystal_of(r, run["written"]): r.labels["topo_class"] for r in labelled}
    assert classes == CRYSTALS  # Bi2Se3 z2_ti, the semiconductors and salts trivial
    assert all(0.0 <= r.labels["confidence"] <= 1.0 for r in labelled)
    summary = _json(run, "02_intermediate/label_summary.json")
    counted = {c: sum(v == c for v in classes.values()) for c in TOPO_CLASSES if c in classes.values()}
    assert summary["class_counts"] == counted and summary["n_failed"] == 0


def test_split_partitions_the_labelled_crystals_into_the_stores(run):
    split = _json(run, "05_model_input/split.json")
    labelled = {r.id for r in _store(run, "02_intermediate/labelled_crystals.h5")}
    parts = {name: split[name] for name in ("train", "val", "test")}
    assert sorted(sum(parts.values(), [])) == sorted(labelled)
    assert len(parts["train"]) == 10 and len(parts["val"]) == 1 and len(parts["test"]) == 1  # 0.8, 0.1, 0.1 of 12
    for name, ids in parts.items():
        assert [r.id for r in _store(run, f"05_model_input/{name}.h5")] == ids, name


def test_training_ran_the_configured_epochs_with_finite_losses(run):
    summary = _json(run, "06_models/training_summary.json")
    assert summary["epochs_completed"] == 2
    assert summary["global_step"] == 4  # 10 training crystals in batches of 8: 2 steps an epoch
    assert summary["n_train"] == 10 and summary["nonfinite_steps"] == 0
    assert summary["config"]["model_config"]["hidden_dim"] == 16  # conf/local reached the model
    with (run["data"] / "06_models" / "metrics.csv").open(encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["kind"] == "train"]
    assert len(rows) == 4
    assert all(math.isfinite(float(row["total"])) and float(row["total"]) > 0 for row in rows)


def test_candidates_are_readable_crystals_listed_in_the_table(run):
    from td_data import load_materials_database

    summary = _json(run, "07_model_output/generation_summary.json")
    assert summary["n_requested"] == 4 and summary["n_records"] + len(summary["rejected"]) == 4
    assert summary["requested_class"] == "z2_ti"  # physics_config.topological_class: TI
    cifs = sorted((run["data"] / "07_model_output" / "candidates").glob("*.cif"))
    loaded = load_materials_database(cifs)  # the candidates as a user would read them back
    assert not loaded.quarantined and len(loaded.records) == len(cifs)
    with (run["data"] / "08_reporting" / "candidates.csv").open(encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == len(loaded.records) == summary["n_records"]
    formulas = {Path(r.source).stem: r.formula for r in loaded.records}
    assert {row["id"]: row["formula"] for row in table} == formulas
    for row in table:
        assert row["requested_class"] == "z2_ti"
        assert 0.0 <= float(row["predicted_class_probability"]) <= 1.0
        assert 0.1 <= float(row["target_band_gap"]) <= 0.5


def test_metrics_and_report_hold_sane_values(run):
    metrics = _json(run, "08_reporting/generation_metrics.json")
    assert metrics["n_generated"] == 4
    for name in ("valid", "struct_valid", "comp_valid", "cov_recall", "cov_precision", "uniqueness", "novelty"):
        assert 0.0 <= metrics[name] <= 1.0, (name, metrics[name])
    physics = _json(run, "08_reporting/physics_consistency.json")
    assert physics["n_candidates"] == 4 and physics["n_checked"] <= 2  # max_relabel
    assert sum(physics["recomputed_class_counts"].values()) == physics["n_candidates"]
    assert 0 <= physics["n_as_requested"] <= physics["n_checked"]
    report = (run["data"] / "08_reporting" / "report.md").read_text(encoding="utf-8")
    assert "12 crystals kept, 2 quarantined" in report
    assert "10 train, 1 val, 1 test" in report
    assert "## Limits" in report
    for figure in ("training_curves.png", "class_distribution.png", "property_histograms.png"):
        assert (run["data"] / "08_reporting" / figure).stat().st_size > 1000, figure


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-v"]))

"""The Kedro project end to end, in a temporary copy (never the repository's data/): every pipeline on a tiny
preset, and ``kedro run --pipeline=train`` without its inputs failing with a plain message."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEDRO = Path(sys.executable).with_name("kedro")

TINY = """
data_config: {source: synthetic, path: null, n_samples: 30, seed: 0, max_atoms: 12, elements: labeller,
              fraction_2d: 0.1, trusted: false}
label_options: {max_records: 4, max_atoms: 4, workers: 1, spin_orbit: true, spin_orbit_constants: null,
                gap_mesh: 4, metal_gap: 0.001}
model_config: {num_species: 100, hidden_dim: 16, num_topo_classes: 4, num_layers: 1, num_heads: 2,
               max_atoms: 20, num_steps: 20}
training_config: {batch_size: 8, learning_rate: 0.001, max_epochs: 1, warmup_epochs: 0,
                  checkpoint_every: 1, keep_checkpoints: 1, seed: 0}
generate_options: {n_candidates: 4, steps: 5, seed: 0}
evaluate_options: {coverage_dataset: mp_20, max_metric_candidates: 3, max_relabel: 2, max_relabel_atoms: 4}
"""


def _project(tmp_path: Path) -> Path:
    """A copy of the project's configuration, the real package linked in, and tiny parameters in conf/local."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    (project / "conf" / "local").mkdir()
    (project / "conf" / "local" / "parameters_tiny.yml").write_text(TINY, encoding="utf-8")
    (project / "pipelines").symlink_to(ROOT / "pipelines")
    return project


def _kedro(project: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [str(KEDRO), *args], cwd=project, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_train_alone_without_inputs_says_what_to_run_first(tmp_path):
    project = _project(tmp_path)
    done = _kedro(project, "run", "--pipeline=train", timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert "train_crystals" in out and "kedro run --pipeline=split" in out
    assert not (project / "data" / "06_models").exists()


def test_default_pipeline_end_to_end_then_train_alone(tmp_path):
    project = _project(tmp_path)
    done = _kedro(project, "run")
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    data = project / "data"
    expected = [
        "01_raw/crystals.h5", "01_raw/quarantine.json", "02_intermediate/labelled_crystals.h5",
        "05_model_input/split.json", "05_model_input/train.h5", "06_models/model.pt", "06_models/metrics.csv",
        "07_model_output/candidates/index.json", "07_model_output/checked_candidates.h5",
        "08_reporting/generation_metrics.json", "08_reporting/physics_consistency.json", "08_reporting/candidates.csv",
        "08_reporting/training_curves.png", "08_reporting/class_distribution.png",
        "08_reporting/property_histograms.png", "08_reporting/band_structures.png", "08_reporting/report.md",
    ]  # fmt: skip
    missing = [p for p in expected if not (data / p).exists()]
    assert not missing, missing
    assert len(list((data / "07_model_output" / "candidates").glob("*.cif"))) >= 1
    assert "## Limits" in (data / "08_reporting" / "report.md").read_text(encoding="utf-8")
    assert json.loads((data / "08_reporting" / "physics_consistency.json").read_text())["n_candidates"] >= 1
    # every catalog entry of the default pipeline was written
    import yaml

    catalog = yaml.safe_load((ROOT / "conf" / "base" / "catalog.yml").read_text(encoding="utf-8"))
    for name, entry in catalog.items():
        assert (project / (entry.get("filepath") or entry["path"])).exists(), name
    # train alone on what the earlier pipelines left
    model = data / "06_models" / "model.pt"
    before = model.stat().st_mtime_ns
    again = _kedro(project, "run", "--pipeline=train")
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    assert model.stat().st_mtime_ns != before

"""The Kedro project end to end, in a temporary copy (never the repository's data/): every pipeline on a tiny
preset, ``kedro run --pipeline=train`` without its inputs failing with a plain message, and a training run
killed with SIGKILL that resumes from its newest checkpoint when the same command is run again."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

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
relax_options: {enabled: true, fmax: 0.1, max_steps: 30, relax_cell: true, batch_size: 8, max_atoms: 4,
                max_candidates: 3}
verify_options: {enabled: true, top_n: 1, max_atoms: 4, spin_orbit: true, timeout_per_crystal: 120,
                 settings: {kpt_spacing: 0.6, max_kpts: 4, confirm: false}}
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
    assert "train_crystals" in out and "kedro run --pipelines=split" in out
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
        "07_model_output/relaxed_candidates/index.json", "08_reporting/relax_table.csv",
        "08_reporting/relax_summary.json", "07_model_output/dft_crystals.json", "07_model_output/dft_results.json",
        "08_reporting/verify_summary.json", "08_reporting/dft_band_structure.png",
    ]  # fmt: skip
    missing = [p for p in expected if not (data / p).exists()]
    assert not missing, missing
    assert len(list((data / "07_model_output" / "candidates").glob("*.cif"))) >= 1
    report = (data / "08_reporting" / "report.md").read_text(encoding="utf-8")
    assert "## Limits" in report and "- **Relaxation** (CHGNet" in report and "DFT verification" in report
    relax = json.loads((data / "08_reporting" / "relax_summary.json").read_text())
    assert relax["n_candidates"] >= 1 and relax["stability_threshold"] == 0.1  # conf/base: the guide's value
    assert json.loads((data / "08_reporting" / "physics_consistency.json").read_text())["n_candidates"] >= 1
    # every catalog entry of the default pipeline was written
    import yaml

    catalog = yaml.safe_load((ROOT / "conf" / "base" / "catalog.yml").read_text(encoding="utf-8"))
    from pipelines.active_learning import create_pipeline as active_learning

    for name, entry in catalog.items():
        if name == "user_crystals":  # the user's files: only read (none for the synthetic source), never written
            continue
        if name in active_learning().all_outputs():  # not part of the default run
            continue
        assert (project / (entry.get("filepath") or entry["path"])).exists(), name
    # train alone on what the earlier pipelines left
    model = data / "06_models" / "model.pt"
    before = model.stat().st_mtime_ns
    again = _kedro(project, "run", "--pipeline=train")
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    assert model.stat().st_mtime_ns != before


def _train_inputs(project: Path) -> None:
    """train.h5 and val.h5 as split would write them (synthetic crystals, no labels: training needs none)."""
    from pipelines.datasets import CrystalStoreDataset
    from pipelines.ingest.nodes import ingest_crystals
    from pipelines.split.nodes import split_crystals

    records, _ = ingest_crystals({"source": "synthetic", "n_samples": 30, "seed": 0, "max_atoms": 12})
    _, train, val, _ = split_crystals(records, {"fractions": [0.8, 0.1, 0.1]})
    CrystalStoreDataset(filepath=str(project / "data/05_model_input/train.h5")).save(train)
    CrystalStoreDataset(filepath=str(project / "data/05_model_input/val.h5")).save(val)


@pytest.mark.slow
def test_train_killed_after_a_checkpoint_resumes_when_rerun(tmp_path):
    """kill -9 of `kedro run --pipeline=train` once a checkpoint exists; the same command again resumes there."""
    project = _project(tmp_path)
    params = yaml.safe_load(TINY)
    epochs = 40
    params["training_config"].update(max_epochs=epochs, checkpoint_every=1, keep_checkpoints=2)
    params["train_options"] = {"num_threads": 1, "augmentation": ["origin_shift", "permute"]}
    (project / "conf" / "local" / "parameters_tiny.yml").write_text(yaml.safe_dump(params), encoding="utf-8")
    _train_inputs(project)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1",
           "TMPDIR": str(scratch)}  # fmt: skip
    checkpoints = project / "data" / "06_models" / "training" / "checkpoints"
    log = tmp_path / "first.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(KEDRO), "run", "--pipeline=train"], cwd=project, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        try:
            deadline = time.monotonic() + 600
            while not list(checkpoints.glob("checkpoint_epoch_*.pt")) and proc.poll() is None:
                assert time.monotonic() < deadline, "no checkpoint after 600 s"
                time.sleep(0.005)
            running = proc.poll() is None
            os.killpg(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=60)
    first = log.read_text()
    assert running and proc.returncode == -signal.SIGKILL, first[-3000:]
    kept = sorted(
        int(m.group(1)) for p in checkpoints.iterdir() if (m := re.match(r"checkpoint_epoch_(\d+)\.pt$", p.name))
    )
    assert kept and kept[-1] < epochs, kept
    assert not (project / "data" / "06_models" / "model.pt").exists()

    again = _kedro(project, "run", "--pipeline=train")
    out = again.stdout + again.stderr
    assert again.returncode == 0, out[-4000:]
    newest = f"data/06_models/training/checkpoints/checkpoint_epoch_{kept[-1]:04d}.pt"
    assert f"resuming the same run from {newest} after epoch {kept[-1]}" in out, out[-4000:]
    assert "starting afresh" not in out
    summary = json.loads((project / "data" / "06_models" / "training_summary.json").read_text())
    assert summary["epochs_completed"] == epochs and summary["n_train_augmented"] == summary["n_train"] // 2
    import pandas as pd

    metrics = pd.read_csv(project / "data" / "06_models" / "metrics.csv")
    assert metrics.loc[metrics["kind"] == "epoch", "epoch"].tolist() == list(range(1, epochs + 1))  # continued
    steps = metrics.loc[metrics["kind"] == "train", "step"].tolist()
    assert steps == sorted(set(steps)) and steps[-1] == summary["global_step"]  # no step twice, none lost
    assert not list(scratch.glob("td-train-*")), list(scratch.iterdir())

"""dvc.yaml: from a clean copy, offline, `dvc repro` runs every stage; a second `dvc repro` does nothing;
changing one training parameter reruns train and what follows it, not ingest, label or split.

Runs in a temporary, non-git copy (``dvc init --no-scm``) with tiny parameters in its conf/base."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DVC = Path(sys.executable).with_name("dvc")
STAGES = ("ingest", "label", "split", "train", "generate", "evaluate", "report")

TINY = {
    "parameters_ingest.yml": {"data_config": {"n_samples": 30, "max_atoms": 12}},
    "parameters_label.yml": {"label_options": {"max_records": 4, "max_atoms": 4, "workers": 1, "gap_mesh": 4}},
    "parameters_train.yml": {
        "model_config": {"hidden_dim": 16, "num_layers": 1, "num_heads": 2, "num_steps": 20},
        "training_config": {
            "batch_size": 8,
            "max_epochs": 1,
            "warmup_epochs": 0,
            "checkpoint_every": 1,
            "phases": None,
        },
    },  # fmt: skip
    "parameters_generate.yml": {"generate_options": {"n_candidates": 4, "steps": 5}},
    "parameters_evaluate.yml": {"evaluate_options": {"max_metric_candidates": 3, "max_relabel": 2}},
}


def _update(path: Path, changes: dict) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for block, values in changes.items():
        for key, value in values.items():
            if value is None:
                data[block].pop(key, None)
            else:
                data[block][key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def _copy(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    project.mkdir()
    for name in ("pyproject.toml", ".telemetry", "dvc.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    (project / "conf" / "local").mkdir()
    shutil.copytree(ROOT / "pipelines", project / "pipelines", ignore=ignore)
    for src in ROOT.glob("packages/*/src"):
        shutil.copytree(src, project / src.relative_to(ROOT), ignore=ignore)
    for name, changes in TINY.items():
        _update(project / "conf" / "base" / name, changes)
    return project


def _dvc(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "DVC_NO_ANALYTICS": "1", "MPLBACKEND": "Agg",
           "OMP_NUM_THREADS": "1", "PATH": f"{DVC.parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # fmt: skip
    done = subprocess.run(
        [str(DVC), *args], cwd=project, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done


def _ran(done: subprocess.CompletedProcess) -> set[str]:
    return set(re.findall(r"Running stage '(\w+)'", done.stdout + done.stderr))


@pytest.mark.slow
@pytest.mark.skipif(not DVC.exists(), reason="dvc is not installed (requirements-pipelines.txt)")
def test_dvc_repro_runs_all_then_nothing_then_only_what_a_training_parameter_affects(tmp_path):
    project = _copy(tmp_path)
    _dvc(project, "init", "--no-scm", "-q")
    _dvc(project, "config", "core.analytics", "false")
    first = _dvc(project, "repro")
    assert _ran(first) == set(STAGES)
    assert (project / "data" / "08_reporting" / "report.md").is_file()
    second = _dvc(project, "repro")
    assert _ran(second) == set()
    _update(project / "conf" / "base" / "parameters_train.yml", {"training_config": {"max_epochs": 2}})
    third = _dvc(project, "repro")
    ran = _ran(third)
    assert "train" in ran and not ran & {"ingest", "label", "split"}, ran

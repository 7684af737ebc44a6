"""`kedro viz build` writes a static site whose graph data holds every node of the default pipeline.

No browser here: the page itself is not opened (a headless-Chromium check is still to do)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KEDRO = Path(sys.executable).with_name("kedro")


@pytest.mark.skipif(
    importlib.util.find_spec("kedro_viz") is None, reason="kedro-viz is not installed (requirements-pipelines.txt)"
)
def test_viz_build_contains_the_default_pipeline(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    (project / "conf" / "local").mkdir()
    (project / "pipelines").symlink_to(ROOT / "pipelines")
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run([str(KEDRO), "viz", "build"], cwd=project, env=env, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    build = project / "build"
    assert (build / "index.html").is_file()
    main = json.loads((build / "api" / "main").read_text(encoding="utf-8"))
    names = {n["name"] for n in main["nodes"]}
    for node in ("ingest_crystals_node", "train_model_node", "generate_candidates_node", "write_report_node"):
        assert any(node in name or name in node for name in names), (node, sorted(names)[:20])
    assert {p["id"] for p in main["pipelines"]} >= {"__default__", "train", "report"}

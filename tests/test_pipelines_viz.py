"""`kedro viz build` writes a static site whose graph data holds every node of the default pipeline, and a headless
Chromium (Debian's `chromium`, installed by scripts/setup_test_system.sh) opened on that site draws the graph.

The site is built once per module (and once per xdist worker that runs a test from here)."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KEDRO = Path(sys.executable).with_name("kedro")
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = ROOT / "outputs" / "kedro_viz.png"  # git-ignored; kept after the run for a person to look at
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--virtual-time-budget=20000"]  # fmt: skip

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("kedro_viz") is None, reason="kedro-viz is not installed (requirements-pipelines.txt)"
)


@pytest.fixture(scope="module")
def viz_build(tmp_path_factory) -> Path:
    """`kedro viz build` on a copy of the project (conf/ copied, pipelines/ linked); returns the build/ folder."""
    project = tmp_path_factory.mktemp("viz") / "project"
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
    return project / "build"


def test_viz_build_contains_the_default_pipeline(viz_build):
    assert (viz_build / "index.html").is_file()
    main = json.loads((viz_build / "api" / "main").read_text(encoding="utf-8"))
    names = {n["name"] for n in main["nodes"]}
    for node in ("ingest_crystals_node", "train_model_node", "generate_candidates_node", "write_report_node"):
        assert any(node in name or name in node for name in names), (node, sorted(names)[:20])
    assert {p["id"] for p in main["pipelines"]} >= {"__default__", "train", "report"}


class _FlowchartNodes(HTMLParser):
    """The drawn graph: `<g class="pipeline-node pipeline-node--{task,data}" data-node-fullname=...>` inside
    `<g class="pipeline-flowchart__nodes">`, and the `<g class="pipeline-edge">` elements."""

    def __init__(self):
        super().__init__()
        self.g_stack: list[bool] = []  # per open <g>: is it the flowchart's nodes group
        self.nodes: list[tuple[str, str]] = []  # (data-node-type, data-node-fullname)
        self.edges = 0

    def handle_starttag(self, tag, attrs):
        if tag != "g":
            return
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        inside = any(self.g_stack)
        if inside and "pipeline-node" in classes:
            self.nodes.append((a.get("data-node-type", ""), a.get("data-node-fullname", "")))
        if "pipeline-edge" in classes:
            self.edges += 1
        self.g_stack.append("pipeline-flowchart__nodes" in classes)

    def handle_endtag(self, tag):
        if tag == "g" and self.g_stack:
            self.g_stack.pop()


@pytest.fixture
def served_site(viz_build):
    handler = functools.partial(_QuietHandler, directory=str(viz_build))
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/"
        finally:
            server.shutdown()
            thread.join(timeout=10)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # the base class logs every request to stderr
        pass


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run([str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=180, check=False)  # fmt: skip


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (make system-deps installs it)")
def test_viz_site_draws_the_default_pipeline_in_chromium(viz_build, served_site, tmp_path, record_property):
    main = json.loads((viz_build / "api" / "main").read_text(encoding="utf-8"))
    default = [n for n in main["nodes"] if "__default__" in n.get("pipelines", [])]
    tasks = {n["name"] for n in default if n["type"] == "task"}
    n_data = sum(n["type"] == "data" for n in default)
    assert len(tasks) >= 10 and n_data >= 10, (len(tasks), n_data)

    dump = _chromium(tmp_path, "--dump-dom", served_site)
    assert dump.returncode == 0, dump.stderr[-3000:]
    drawn = _FlowchartNodes()
    drawn.feed(dump.stdout)
    drawn_tasks = {name for kind, name in drawn.nodes if kind == "task"}
    drawn_data = [name for kind, name in drawn.nodes if kind == "data"]
    assert drawn_tasks == tasks, (sorted(drawn_tasks), sorted(tasks), len(dump.stdout))
    assert len(drawn_data) == n_data, (len(drawn_data), n_data)
    assert drawn.edges >= len(tasks), drawn.edges

    shot = tmp_path / "kedro_viz.png"
    done = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,900", served_site)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-3000:]
    assert shot.stat().st_size > 20_000, shot.stat().st_size
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size == (1400, 900), image.size
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 50, f"screenshot is nearly flat: {len(colours)} colours"
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, SCREENSHOT)
    record_property("screenshot", str(SCREENSHOT))
    print(f"kedro-viz screenshot: {SCREENSHOT} ({len(drawn_tasks)} task + {len(drawn_data)} dataset nodes drawn)")

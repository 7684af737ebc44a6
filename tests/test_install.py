"""``pip install -e .`` at the repository root, as the user guide types it.

The root project is the Kedro package ``pipelines`` plus, as dependencies, every library under ``packages/``
(direct references to this checkout's folders, written by ``hatch_build.py``) and the pipelines' requirements.
Before it had a ``[project]`` table, setuptools stopped with "Multiple top-level packages discovered in a
flat-layout"; :func:`test_pip_install_editable_at_the_root_in_a_fresh_environment` runs that very command.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests._tree import ROOT, copy_checkout, overlay_venv

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

LIBRARIES = sorted(p.parent for p in (ROOT / "packages").glob("*/pyproject.toml"))
# no PYTHONPATH: a fresh environment has none (kedro's bootstrap_project sets it process-wide to the project it
# bootstraps, so a test that loaded the configuration in this worker would make the probes import this checkout)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
ENV.update(PIP_DISABLE_PIP_VERSION_CHECK="1", KEDRO_DISABLE_TELEMETRY="1")


def _name(folder: Path) -> str:
    return tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))["project"]["name"]


def _requirement_lines(path: Path) -> list[str]:
    lines = (re.sub(r"(^|\s)#.*$", "", line).strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def _installed_here() -> dict[str, tuple[str, str | None]]:
    """Where and how (direct_url.json) the libraries are installed in the environment running the tests."""
    found = {}
    for folder in LIBRARIES:
        try:
            dist = importlib.metadata.distribution(_name(folder))
        except importlib.metadata.PackageNotFoundError:
            continue
        found[_name(folder)] = (str(dist.locate_file("")), dist.read_text("direct_url.json"))
    return found


def _build_wheel(project: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(out), str(project)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
        check=False,
    )


def _metadata(wheel: Path) -> tuple[list[str], dict]:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        text = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    return names, Parser().parsestr(text)


@pytest.fixture(scope="module")
def root_wheel(tmp_path_factory) -> tuple[Path, list[str], dict]:
    """The root project built as a wheel from a copy of the checkout (what pip builds for ``pip install .``)."""
    project = copy_checkout(tmp_path_factory.mktemp("checkout"))
    out = tmp_path_factory.mktemp("wheel")
    done = _build_wheel(project, out)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    (wheel,) = out.glob("*.whl")
    return (project, *_metadata(wheel))


def test_root_wheel_ships_the_kedro_package_and_nothing_else(root_wheel):
    _, names, meta = root_wheel
    assert meta["Name"] == "topological-diffusion"
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"pipelines"}
    shipped = {name for name in names if name.startswith("pipelines/")}
    on_disk = {p.relative_to(ROOT).as_posix() for p in (ROOT / "pipelines").rglob("*.py")}
    assert on_disk <= shipped, sorted(on_disk - shipped)
    assert meta["Version"] == re.search(r'__version__ = "(.+)"', (ROOT / "pipelines" / "__init__.py").read_text())[1]


def test_root_depends_on_every_library_in_this_checkout_and_the_pipeline_requirements(root_wheel):
    project, _, meta = root_wheel
    requirements = [Requirement(line) for line in meta.get_all("Requires-Dist")]
    runtime = [r for r in requirements if r.marker is None]
    libraries = {r.name: r.url for r in runtime if r.url}
    assert libraries == {_name(folder): (project / "packages" / folder.name).as_uri() for folder in LIBRARIES}
    assert all(not r.extras for r in runtime if r.url)
    # the pipelines' requirements, exactly as requirements-pipelines.txt states them (one source of truth)
    expected = {str(Requirement(line)) for line in _requirement_lines(ROOT / "requirements-pipelines.txt")}
    assert {str(r) for r in runtime if not r.url} == expected
    # the dev extra: the libraries with their test extras, and requirements-dev.txt
    dev = [r for r in requirements if r.marker is not None and r.marker.evaluate({"extra": "dev"})]
    assert {r.name for r in dev if r.url} == set(libraries)
    assert all(r.extras == {"test"} for r in dev if r.url)
    expected_dev = {str(Requirement(line)) for line in _requirement_lines(ROOT / "requirements-dev.txt")}
    assert {str(Requirement(f"{r.name}{r.specifier}")) for r in dev if not r.url} == expected_dev


def test_a_pip_option_in_a_requirements_file_fails_the_build_with_the_line(tmp_path):
    project = copy_checkout(tmp_path / "checkout")
    requirements = project / "requirements-pipelines.txt"
    requirements.write_text(requirements.read_text() + "-r other-requirements.txt\n", encoding="utf-8")
    done = _build_wheel(project, tmp_path / "out")
    assert done.returncode != 0
    assert "requirements-pipelines.txt:" in done.stdout + done.stderr
    assert "not pip options" in done.stdout + done.stderr and "-r other-requirements.txt" in done.stdout + done.stderr


def test_pip_install_editable_at_the_root_in_a_fresh_environment(tmp_path):
    """The guide's command in a new environment: the libraries from packages/, pipelines editable, kedro finds it.

    The environment sees the test interpreter's packages (torch and the rest are not downloaded again); what pip
    installs goes into the new environment only.
    """
    project = copy_checkout(tmp_path / "clone")
    python = overlay_venv(tmp_path / "venv")
    ours = _installed_here()
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "-e", "."],
        cwd=project,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "flat-layout" not in out
    probe = (
        "import json, importlib.metadata as m, pipelines, td_physics, td_data, td_models, td_hpc\n"
        "from topological_diffusion.physics import TopologicalInvariantCalculator\n"
        "print(json.dumps({'pipelines': pipelines.__file__, 'td_physics': td_physics.__file__,"
        " 'td_data': td_data.__file__, 'td_models': td_models.__file__, 'td_hpc': td_hpc.__file__,"
        " 'project': m.version('topological-diffusion')}))\n"
    )
    where = json.loads(
        subprocess.run(
            [str(python), "-c", probe], cwd=tmp_path, env=ENV, capture_output=True, text=True, check=True
        ).stdout
    )
    venv = (tmp_path / "venv").resolve()
    assert Path(where["pipelines"]).resolve() == (project / "pipelines" / "__init__.py").resolve()  # editable
    for module in ("td_physics", "td_data", "td_models", "td_hpc"):
        assert venv in Path(where[module]).resolve().parents, (module, where[module])  # installed from packages/
    assert where["project"] == "0.1.0"
    # kedro finds the project by pyproject's [tool.kedro] table, next to the new [project] table
    listed = subprocess.run(
        [str(python), "-m", "kedro", "registry", "list"],
        cwd=project,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
        check=False,
    )
    assert listed.returncode == 0, (listed.stdout + listed.stderr)[-3000:]
    for pipeline in ("__default__", "ingest", "label", "split", "train", "generate", "evaluate", "report"):
        assert f"- {pipeline}\n" in listed.stdout
    # the environment running the tests was left alone
    assert _installed_here() == ours
    assert "Successfully uninstalled" not in out


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-v"]))

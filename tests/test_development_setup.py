"""``python scripts/development_setup.py``, as the user guide types it, in a git clone of the working tree.

The environment step is ``make install`` (tested by every CI run); here the script runs against the environment
running the tests (``--venv``, ``--skip-install``) so that nothing is installed into it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests._tree import ROOT, git_clone_of_working_tree, overlay_venv

VENV = Path(sys.prefix)
LIBRARIES = sorted(p.parent.name for p in (ROOT / "packages").glob("*/pyproject.toml"))
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "KEDRO_DISABLE_TELEMETRY": "1",
}


def _setup(clone: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "scripts/development_setup.py", "--venv", str(VENV), *args],
        cwd=clone,
        capture_output=True,
        text=True,
        env=GIT_ENV,
        timeout=600,
        check=False,
    )


def _line(out: str, name: str) -> str:
    (line,) = [line for line in out.splitlines() if line.split()[1:2] == [name]]
    return line


@pytest.fixture
def clone(tmp_path) -> Path:
    return git_clone_of_working_tree(tmp_path / "clone")


@pytest.fixture
def script(clone, monkeypatch):
    """The clone's scripts/development_setup.py as a module (its functions, for the cases a command cannot set up)."""
    spec = importlib.util.spec_from_file_location("development_setup", clone / "scripts" / "development_setup.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_check_only_reports_what_works_and_changes_nothing(clone):
    done = _setup(clone, "--check-only")
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    for name in LIBRARIES:
        # installed, but from the main checkout, not editable from this clone: the check says so
        assert _line(out, name).split()[0] == "ok"
        assert "not editable from this checkout" in _line(out, name)
    assert _line(out, "invariant").split()[0] == "ok" and "closed form" in _line(out, "invariant")
    assert _line(out, "kedro").split()[0] == "ok" and "__default__" in _line(out, "kedro")
    assert _line(out, "ruff").split()[0] == "ok"
    for optional in ("slurm", "chromium", "gpu"):
        assert _line(out, optional).split()[0] in {"ok", "missing"}
    assert out.rstrip().endswith("smoke check: the essentials work")
    assert not (clone / ".git" / "hooks" / "pre-commit").exists()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True)
    assert status.stdout == ""


def test_check_only_fails_when_the_environment_is_missing(tmp_path, clone):
    done = subprocess.run(
        [sys.executable, "scripts/development_setup.py", "--check-only", "--venv", str(tmp_path / "nowhere")],
        cwd=clone,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "FAILED" in _line(done.stdout, "environment") and "nowhere" in done.stdout


def test_installed_hook_runs_ruff_on_staged_files_and_blocks_a_bad_commit(clone):
    done = _setup(clone, "--skip-install", "--skip-system")
    assert done.returncode == 0, done.stdout + done.stderr
    hook = clone / ".git" / "hooks" / "pre-commit"
    assert hook.exists() and hook.stat().st_mode & stat.S_IXUSR
    assert _line(done.stdout, "pre-commit").split()[0] == "ok"

    (clone / "scratch.py").write_text("import os\nx=1\n", encoding="utf-8")  # unused import, unformatted
    subprocess.run(["git", "add", "scratch.py"], cwd=clone, check=True)
    refused = subprocess.run(
        ["git", "commit", "-m", "bad"], cwd=clone, capture_output=True, text=True, env=GIT_ENV, check=False
    )
    assert refused.returncode != 0
    said = refused.stdout + refused.stderr
    assert "F401" in said and "scratch.py" in said  # ruff check's finding
    assert "1 file would be reformatted" in said  # ruff format --check's
    assert "ruff check: FAILED" in said and "ruff format --check: FAILED" in said

    (clone / "scratch.py").write_text("x = 1\n", encoding="utf-8")
    subprocess.run(["git", "add", "scratch.py"], cwd=clone, check=True)
    accepted = subprocess.run(
        ["git", "commit", "-m", "good"], cwd=clone, capture_output=True, text=True, env=GIT_ENV, check=False
    )
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert "ruff check: passed" in accepted.stderr and "ruff format --check: passed" in accepted.stderr

    # what is checked is what is staged: a good staged version commits although the work tree has a bad one ...
    (clone / "scratch.py").write_text("y = 2\n", encoding="utf-8")
    subprocess.run(["git", "add", "scratch.py"], cwd=clone, check=True)
    (clone / "scratch.py").write_text("import sys\ny=2\n", encoding="utf-8")
    staged_good = subprocess.run(
        ["git", "commit", "-m", "staged good"], cwd=clone, capture_output=True, text=True, env=GIT_ENV, check=False
    )
    assert staged_good.returncode == 0, staged_good.stdout + staged_good.stderr
    # ... and a bad staged version is refused although the work tree has been fixed since
    subprocess.run(["git", "add", "scratch.py"], cwd=clone, check=True)
    (clone / "scratch.py").write_text("y = 3\n", encoding="utf-8")
    staged_bad = subprocess.run(
        ["git", "commit", "-m", "staged bad"], cwd=clone, capture_output=True, text=True, env=GIT_ENV, check=False
    )
    assert staged_bad.returncode != 0 and "F401" in staged_bad.stdout + staged_bad.stderr


def test_a_hook_the_script_did_not_write_is_left_alone(clone, script):
    hook = clone / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    said = script.install_hook(VENV, root=clone)
    assert "left alone" in said
    assert hook.read_text(encoding="utf-8") == "#!/bin/sh\nexit 0\n"


def test_libraries_not_editable_from_this_checkout_are_found(tmp_path, clone, script):
    """What makes the environment step reinstall: a copy (``pip install -e .``) or another checkout's editable."""
    venv = tmp_path / "venv"
    site = venv / "lib" / "python3.11" / "site-packages"
    origins = {
        "td-data": {"url": (clone / "packages" / "td-data").as_uri(), "dir_info": {"editable": True}},
        "td-hpc": {"url": (clone / "packages" / "td-hpc").as_uri(), "dir_info": {}},  # a copy
        "td-models": {"url": (ROOT / "packages" / "td-models").as_uri(), "dir_info": {"editable": True}},
    }  # td-physics is not installed at all: make install installs it, nothing to force
    for name, origin in origins.items():
        info = site / f"{name.replace('-', '_')}-0.1.0.dist-info"
        info.mkdir(parents=True)
        (info / "direct_url.json").write_text(json.dumps(origin), encoding="utf-8")
    assert script.not_editable_here(venv, root=clone) == ["td-hpc", "td-models"]


def test_only_local_system_hooks_are_run(clone, script):
    (clone / ".pre-commit-config.yaml").write_text(
        "repos:\n  - repo: https://github.com/astral-sh/ruff-pre-commit\n    hooks: [{id: ruff}]\n", encoding="utf-8"
    )
    with pytest.raises(script.SetupError, match="only 'repo: local' hooks run without network, got 'https://"):
        script._load_hooks(clone)


@pytest.mark.slow
def test_guide_developer_flow_pip_install_then_setup_makes_the_libraries_editable(tmp_path, clone):
    """The guide's "For Development" lines in a new virtual environment: ``pip install -e .`` (the libraries as
    copies), then ``python scripts/development_setup.py`` with that environment's Python: ``make install`` into that
    same environment makes the libraries editable from the clone, installs the hook and passes the smoke check.

    The new environment sees the test interpreter's packages (nothing heavy is downloaded); what pip and make
    install goes into it, and the environment running the tests is left as it was.
    """
    python = overlay_venv(tmp_path / "venv")
    before = {name: importlib.metadata.distribution(name).read_text("direct_url.json") for name in LIBRARIES}
    env = {**GIT_ENV, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # its ruff

    def run(*command: str) -> subprocess.CompletedProcess:
        done = subprocess.run(command, cwd=clone, capture_output=True, text=True, env=env, timeout=900, check=False)
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
        return done

    run(str(python), "-m", "pip", "install", "-e", ".")
    out = run(str(python), "scripts/development_setup.py", "--skip-system").stdout
    venv = (tmp_path / "venv").absolute()
    assert f"[1/4] environment: {venv}" in out  # the running environment, not a new .venv
    assert not (clone / ".venv").exists()
    assert "not editable from this checkout: reinstalling" not in out  # no stamp yet: make installs anyway
    assert "make install" in out and (venv / ".installed").exists()
    for name in LIBRARIES:
        assert f"editable from packages/{name}" in _line(out, name)
    assert _line(out, "pre-commit").split()[0] == "ok" and (clone / ".git" / "hooks" / "pre-commit").exists()
    probe = "import td_physics, pipelines; print(td_physics.__file__, pipelines.__file__)"
    where = subprocess.run([str(python), "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert where.stdout.split() == [
        str(clone / "packages" / "td-physics" / "src" / "td_physics" / "__init__.py"),
        str(clone / "pipelines" / "__init__.py"),
    ]
    # a later `pip install -e .` turns the libraries into copies again; the next setup run notices and repairs
    run(str(python), "-m", "pip", "install", "-e", ".")
    again = run(str(python), "scripts/development_setup.py", "--skip-system", "--skip-hooks").stdout
    assert "not editable from this checkout: reinstalling" in again
    for name in LIBRARIES:
        assert f"editable from packages/{name}" in _line(again, name)
    assert {name: importlib.metadata.distribution(name).read_text("direct_url.json") for name in LIBRARIES} == before


def test_system_step_as_a_normal_user_says_what_to_run(script, monkeypatch):
    monkeypatch.setattr(script, "system_pieces", lambda: {"slurm": [], "chromium": ["chromium"]})
    monkeypatch.setattr(script.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(script.subprocess, "run", lambda *a, **k: pytest.fail(f"ran {a}"))  # installs nothing
    assert script.install_system() == "not root, so nothing installed: run `sudo bash scripts/setup_test_system.sh`"
    monkeypatch.setattr(script, "system_pieces", lambda: {"slurm": [], "chromium": []})
    assert script.install_system() == "chromium, slurm and munge present"


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-v"]))

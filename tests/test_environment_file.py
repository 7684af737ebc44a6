"""``conda env create -f environment.yml``: the file installs what ``make install`` installs, from the same files.

Conda solves only ``python`` and ``pip`` here; the rest is its ``pip:`` section, which conda writes to a
``condaenv.*.requirements.txt`` next to ``environment.yml`` and hands to pip from that folder. The second test
does exactly that with pip's ``--dry-run`` (conda, mamba and micromamba are not installable from the package
registries this project can reach, and no conda channel is reachable, so a real conda solve cannot run here).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tests._tree import ROOT, copy_checkout

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

LIBRARIES = sorted(p.parent.name for p in (ROOT / "packages").glob("*/pyproject.toml"))
REMOTE_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"


def _environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))


def _pip_section(environment: dict) -> list[str]:
    (section,) = [d["pip"] for d in environment["dependencies"] if isinstance(d, dict)]
    return [str(line) for line in section]


def _requirement_names(path: Path) -> set[str]:
    names = set()
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if line:
            names.add(Requirement(line).name.lower())
    return names


def _makefile_install_recipe() -> tuple[str, str]:
    """The Makefile's TORCH default and the text of the recipe that ``make install`` runs."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    torch = re.search(r"^TORCH\s*\?=\s*(\S+)", makefile, re.MULTILINE)[1]
    recipe = re.search(r"^\$\(STAMP\):.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)[1]
    return torch, recipe


def test_environment_installs_what_make_install_installs_from_the_same_files():
    environment = _environment()
    conda = [d for d in environment["dependencies"] if isinstance(d, str)]
    assert "pip" in conda
    (python,) = [d for d in conda if d.startswith("python")]
    version = Version(python.split("=", 1)[1])
    for folder in [ROOT, *(ROOT / "packages" / name for name in LIBRARIES)]:
        requires = tomllib.loads((folder / "pyproject.toml").read_text())["project"]["requires-python"]
        assert version in SpecifierSet(requires), (folder.name, requires, python)

    pip = _pip_section(environment)
    torch, recipe = _makefile_install_recipe()
    # the same torch pin as `make install`
    assert torch in pip
    # the requirements files are referenced, not copied: the same -r files as the Makefile's recipe ...
    referenced = {line.split(None, 1)[1] for line in pip if line.startswith("-r ")}
    assert referenced == set(re.findall(r"-r (\S+)", recipe))
    for name in referenced:
        assert (ROOT / name).is_file(), name
    # ... and none of their requirements repeated here
    copied = {Requirement(line).name.lower() for line in pip if not line.startswith("-")}
    for name in referenced:
        assert not copied & _requirement_names(ROOT / name), (name, copied & _requirement_names(ROOT / name))
    # every library under packages/ in editable mode with its test extra, as `make install` does
    assert '-e "$(p)[test]"' in recipe
    editable = sorted(line.split(None, 1)[1] for line in pip if line.startswith("-e "))
    assert editable == [f"packages/{name}[test]" for name in LIBRARIES]
    # nothing conda would install twice: pip's packages are not conda dependencies too
    conda_names = {re.split(r"[=<>! ]", d, maxsplit=1)[0].lower() for d in conda}
    assert conda_names == {"python", "pip"}
    # the only pip option besides -r/-e is the CPU wheel index for torch
    options = [line for line in pip if line.startswith("-") and not line.startswith(("-r ", "-e "))]
    assert options == [REMOTE_INDEX]


def test_pip_section_resolves_as_conda_runs_it(tmp_path):
    """The pip section written to condaenv.*.requirements.txt beside environment.yml and resolved from there.

    pip's --dry-run resolves it against the environment running the tests (made by ``make install``): it must be
    valid requirements-file input whose relative paths resolve in a checkout, and it must ask for nothing that
    ``make install`` did not install. The torch CPU index line is left out: that index cannot be reached here and
    the CPU build of torch is installed already.
    """
    project = copy_checkout(tmp_path / "clone")
    specs = [line for line in _pip_section(_environment()) if line != REMOTE_INDEX]
    requirements = project / "condaenv.test.requirements.txt"
    requirements.write_text("\n".join(specs), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "-r", requirements.name],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        timeout=600,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    for name in LIBRARIES:
        assert f"Obtaining file://{(project / 'packages' / name).as_posix()}" in out, name
    would = re.search(r"^Would install (.*)$", out, re.MULTILINE)
    # only the libraries themselves (the copies in this checkout) are new: every other requirement is satisfied
    installs = sorted(shlex.split(would[1])) if would else []
    assert [re.sub(r"-[^-]+$", "", item) for item in installs] == LIBRARIES, installs


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-v"]))

"""Metadata of the repository-root project, so that ``pip install -e .`` installs the whole product.

The root project ships the Kedro package ``pipelines/`` and depends on:

* every library under ``packages/`` (discovered from ``packages/*/pyproject.toml``, as the Makefile
  discovers them), as a PEP 508 direct reference to this checkout's folder
  (``td-physics @ file:///.../packages/td-physics``);
* the pipelines' requirements, read from ``requirements-pipelines.txt``;
* and, as the ``dev`` extra, the libraries' ``test`` extras plus ``requirements-dev.txt``.

The requirements files stay the one source of truth (``make install`` and ``environment.yml`` read
them too). This is a hatchling metadata hook (``[tool.hatch.metadata.hooks.custom]``), not a build
backend of our own: hatchling calls :meth:`RepositoryMetadataHook.update` when it builds the metadata.
"""

from __future__ import annotations

import re
from pathlib import Path

from hatchling.metadata.plugin.interface import MetadataHookInterface

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: hatchling itself depends on tomli there
    import tomli as tomllib

PIPELINE_REQUIREMENTS = "requirements-pipelines.txt"
DEV_REQUIREMENTS = "requirements-dev.txt"
_COMMENT = re.compile(r"(^|\s)#.*$")


class RequirementsFileError(ValueError):
    """A requirements file holds a line that cannot become package metadata."""


def library_folders(root: Path) -> list[Path]:
    """The library folders under ``packages/``, those with a ``pyproject.toml``, sorted by name."""
    return sorted(p.parent for p in (root / "packages").glob("*/pyproject.toml"))


def library_name(folder: Path) -> str:
    """The distribution name declared in ``folder/pyproject.toml``."""
    with (folder / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)["project"]["name"]


def library_requirements(root: Path, extra: str | None = None) -> list[str]:
    """One direct reference per library: ``name[extra] @ file:///absolute/folder``."""
    suffix = f"[{extra}]" if extra else ""
    return [f"{library_name(folder)}{suffix} @ {folder.resolve().as_uri()}" for folder in library_folders(root)]


def read_requirements(path: Path) -> list[str]:
    """The requirement lines of a pip requirements file, without comments and blank lines.

    Pip options (``-r``, ``-e``, ``--index-url``) have no place in package metadata and are refused.
    """
    requirements = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = _COMMENT.sub("", raw).strip()
        if not line:
            continue
        if line.startswith("-"):
            raise RequirementsFileError(
                f"{path.name}:{number}: package metadata takes requirement lines only, not pip options; got {line!r}"
            )
        requirements.append(line)
    return requirements


class RepositoryMetadataHook(MetadataHookInterface):
    """Fills the root project's dependencies and its ``dev`` extra (see the module docstring)."""

    PLUGIN_NAME = "custom"

    def update(self, metadata: dict) -> None:
        root = Path(self.root)
        metadata["dependencies"] = [
            *library_requirements(root),
            *read_requirements(root / PIPELINE_REQUIREMENTS),
        ]
        metadata["optional-dependencies"] = {
            "dev": [*library_requirements(root, extra="test"), *read_requirements(root / DEV_REQUIREMENTS)],
        }

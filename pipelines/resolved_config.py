"""The configuration ``kedro run`` will use, resolved by Kedro and written where DVC can read it.

``python -m pipelines.resolved_config`` (the ``config`` stage of ``dvc.yaml``, run by every ``dvc repro``)
loads the parameters and the catalog through Kedro's own config loader (``conf/base`` merged with
``conf/local``, or ``KEDRO_ENV``, by Kedro's rules) and writes them to ``data/00_config/parameters.yml`` and
``data/00_config/catalog.yml``, with ``data/00_config/inputs.yml``: the MD5 of the user's files that a
parameter block names by its ``path`` (``data_config.path``), which no ``dvc.yaml`` can list as a dependency.
Every other stage names, as DVC ``params`` of those files, the parameter blocks, inputs and catalog entries its
pipeline reads or writes, so a change in ``conf/local`` (or in the user's data) reruns exactly the stages whose
keys changed.

It also refuses a catalog that moves a dataset away from the path ``dvc.yaml`` tracks for it (a
``conf/local/catalog.yml`` that writes the model elsewhere would leave DVC checking a file no stage writes).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import posixpath
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from pipelines.exceptions import CatalogPathError
from td_physics.files import write_text_atomic

__all__ = [
    "OUTPUT_DIR",
    "load_kedro_config",
    "dataset_path",
    "dvc_stage_pipelines",
    "check_catalog_paths",
    "input_digests",
    "write_resolved_config",
    "main",
]

log = logging.getLogger("pipelines.resolved_config")  # not __main__ under `python -m`

#: Where the ``config`` stage writes ``parameters.yml`` and ``catalog.yml`` (relative to the project).
OUTPUT_DIR = "data/00_config"

_KEDRO_RUN = re.compile(r"^\s*kedro\s+run\s+--pipelines?[= ](\w+)\s*$")


def load_kedro_config(project_path: str | os.PathLike, env: str | None = None) -> tuple[dict, dict]:
    """``(parameters, catalog)`` as ``kedro run --env ENV`` sees them (``KEDRO_ENV`` when ``env`` is None)."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    project_path = Path(project_path).resolve()
    bootstrap_project(project_path)
    with KedroSession.create(project_path=project_path, env=env) as session:
        loader = session.load_context().config_loader
        return dict(loader["parameters"]), dict(loader["catalog"])


def dataset_path(entry: Mapping[str, Any], project_path: str | os.PathLike) -> str | None:
    """The file or folder of a catalog entry, relative to the project in POSIX form (None: no local path)."""
    raw = entry.get("filepath", entry.get("path")) if isinstance(entry, Mapping) else None
    if not isinstance(raw, str) or "://" in raw:
        return None
    path = Path(raw)
    if path.is_absolute():
        try:
            path = path.relative_to(Path(project_path).resolve())
        except ValueError:
            return path.as_posix()
    return posixpath.normpath(path.as_posix())


def _paths(entries: Sequence[Any]) -> list[str]:
    """The paths of a ``deps``/``outs``/``metrics``/``plots`` list of ``dvc.yaml`` (strings or one-key dicts)."""
    found = []
    for item in entries or ():
        for path in [item] if isinstance(item, str) else list(item):
            found.append(posixpath.normpath(path))
    return found


def dvc_stage_pipelines(dvc_yaml: Mapping[str, Any]) -> dict[str, str]:
    """``{stage: kedro pipeline}`` for every stage of ``dvc.yaml`` whose command is ``kedro run --pipelines=X``."""
    found = {}
    for stage, spec in (dvc_yaml.get("stages") or {}).items():
        match = _KEDRO_RUN.match(str(spec.get("cmd", "")))
        if match:
            found[stage] = match.group(1)
    return found


def check_catalog_paths(
    catalog: Mapping[str, Any],
    pipelines: Mapping[str, Any],
    dvc_yaml: Mapping[str, Any],
    project_path: str | os.PathLike = ".",
) -> None:
    """Raise :class:`CatalogPathError` unless every dataset a stage's pipeline reads is a dependency of that
    stage (or under one) and every dataset it writes is one of the stage's outputs, metrics or plots."""
    problems = []
    stages = dvc_yaml.get("stages") or {}
    for stage, pipeline_name in dvc_stage_pipelines(dvc_yaml).items():
        if pipeline_name not in pipelines:
            problems.append(f"stage {stage!r} runs pipeline {pipeline_name!r}, which the project does not register")
            continue
        spec, pipe = stages[stage], pipelines[pipeline_name]
        deps = _paths(spec.get("deps"))
        outs = _paths(spec.get("outs")) + _paths(spec.get("metrics")) + _paths(spec.get("plots"))
        for name in sorted(pipe.inputs()):
            path = dataset_path(catalog.get(name, {}), project_path)
            if path is not None and not any(path == d or path.startswith(d + "/") for d in deps):
                problems.append(f"{stage}: reads {name!r} from {path!r}, which is not among its deps {deps}")
        for name in sorted(pipe.all_outputs()):
            path = dataset_path(catalog.get(name, {}), project_path)
            if path is not None and path not in outs:
                problems.append(f"{stage}: writes {name!r} to {path!r}, which is not among its outs {outs}")
    if problems:
        raise CatalogPathError(
            "the Kedro catalog (conf/base merged with conf/local) and dvc.yaml must name the same paths; "
            "under DVC a dataset stays where dvc.yaml tracks it (move it in both files, or run `kedro run` "
            "without DVC):\n  " + "\n  ".join(problems)
        )


def _md5(path: Path, digest: Any) -> None:
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)


def input_digests(parameters: Mapping[str, Any], project_path: str | os.PathLike = ".") -> dict[str, Any]:
    """``{block: {"path", "md5", "files"}}`` for every parameter block with a ``path`` key.

    ``md5`` is that of the local file or folder ``path`` names, None for null, a URL or a missing path (the
    pipeline reports the latter). A folder's MD5 covers each file's relative path and content, in sorted
    order (symbolic links followed, loops skipped).
    """
    found: dict[str, Any] = {}
    for block, values in sorted(parameters.items()):
        if not isinstance(values, Mapping) or "path" not in values:
            continue
        raw = values["path"]
        if not isinstance(raw, str) or not raw or "://" in raw:  # no local file: the key is there all the same
            found[block] = {"path": raw, "md5": None, "files": 0}
            continue
        path = Path(raw) if Path(raw).is_absolute() else Path(project_path) / raw
        digest, files = hashlib.md5(usedforsecurity=False), 0
        if path.is_file():
            _md5(path, digest)
            files = 1
        elif path.is_dir():
            seen = set()
            for root, dirs, names in os.walk(path, followlinks=True):
                real = os.path.realpath(root)
                if real in seen:  # a symbolic-link loop
                    dirs[:] = []
                    continue
                seen.add(real)
                dirs.sort()
                for name in sorted(names):
                    file = Path(root) / name
                    if file.is_file():
                        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
                        _md5(file, digest)
                        files += 1
        found[block] = {"path": raw, "md5": digest.hexdigest() if path.exists() else None, "files": files}
    return found


def write_resolved_config(
    project_path: str | os.PathLike = ".", env: str | None = None, output_dir: str = OUTPUT_DIR
) -> list[Path]:
    """Check the catalog against ``dvc.yaml``; write ``parameters.yml``, ``catalog.yml`` and ``inputs.yml``."""
    from kedro.framework.project import pipelines

    project = Path(project_path).resolve()
    parameters, catalog = load_kedro_config(project, env)
    dvc_file = project / "dvc.yaml"
    if dvc_file.is_file():
        check_catalog_paths(catalog, pipelines, yaml.safe_load(dvc_file.read_text(encoding="utf-8")), project)
    out = project / output_dir
    written = []
    inputs = input_digests(parameters, project)
    for name, data in (("parameters.yml", parameters), ("catalog.yml", catalog), ("inputs.yml", inputs)):
        header = f"# Resolved by `python -m pipelines.resolved_config` (Kedro env {env or 'local'}); do not edit.\n"
        written.append(write_text_atomic(out / name, header + yaml.safe_dump(data, sort_keys=True)))
        log.info("wrote %s (%d top-level keys)", out / name, len(data))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.resolved_config", description=__doc__.split("\n")[0])
    parser.add_argument("--env", default=os.environ.get("KEDRO_ENV"), help="Kedro environment (default: local)")
    parser.add_argument("--output-dir", default=OUTPUT_DIR, help=f"folder to write (default: {OUTPUT_DIR})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    write_resolved_config(Path.cwd(), args.env, args.output_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

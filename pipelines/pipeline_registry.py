"""Project pipelines, discovered from the folders of the ``pipelines`` package.

Kedro's :func:`kedro.framework.project.find_pipelines` looks for ``<package>.pipelines.<name>``, which
with ``package_name = "pipelines"`` would mean ``pipelines/pipelines/<name>/``. Our pipelines sit
one level up (``pipelines/<name>/``, DESIGN.md), so :func:`find_project_pipelines` does the same
discovery there: every sub-folder with a ``pipeline.py`` whose package exports ``create_pipeline``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from kedro.pipeline import Pipeline

#: The order in which the pipelines run; ``__default__`` is all of them but :data:`OUTSIDE_DEFAULT`.
PIPELINE_ORDER = ("ingest", "label", "split", "train", "generate", "relax", "evaluate", "report")
#: Discovered pipelines that run only when named (``kedro run --pipelines=active_learning``).
OUTSIDE_DEFAULT = ("active_learning",)


def find_project_pipelines() -> dict[str, Pipeline]:
    """``{name: pipeline}`` for every ``pipelines/<name>/pipeline.py`` (an import error is raised, not hidden)."""
    found: dict[str, Pipeline] = {}
    for folder in sorted(Path(__file__).parent.iterdir()):
        if folder.name.startswith((".", "_")) or not (folder / "pipeline.py").is_file():
            continue
        module = importlib.import_module(f"{__package__}.{folder.name}")
        pipe = module.create_pipeline()
        if not isinstance(pipe, Pipeline):
            raise TypeError(f"{module.__name__}.create_pipeline must return a Pipeline, got {type(pipe).__name__}")
        found[folder.name] = pipe
    return found


def register_pipelines() -> dict[str, Pipeline]:
    """Every discovered pipeline plus ``__default__`` (all of them but :data:`OUTSIDE_DEFAULT`, in
    :data:`PIPELINE_ORDER`)."""
    pipelines = find_project_pipelines()
    ordered = [pipelines[name] for name in PIPELINE_ORDER if name in pipelines]
    ordered += [p for name, p in sorted(pipelines.items()) if name not in PIPELINE_ORDER + OUTSIDE_DEFAULT]
    pipelines["__default__"] = sum(ordered, Pipeline([]))
    # the benchmarks' runs (kedro run --env perov5 --pipelines=benchmark ...): registered, never in __default__;
    # imported by name like the folders above, so that no pipeline's code depends on another's
    pipelines.update(importlib.import_module(f"{__package__}.benchmark").create_pipelines())
    return pipelines

"""What each ``dvc.yaml`` stage must depend on, from the code itself: the import graph (static, every
``import`` statement, those inside functions too) and the Kedro pipelines' datasets and parameters.

A helper of ``tests/test_pipelines_dvc.py``; ``python -m tests._dvc_graph`` (from the repository root) prints
the expected ``deps`` and ``params`` of every stage (to paste into ``dvc.yaml`` after a change of imports).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = {p.parent.name.replace("-", "_"): p.parent for p in ROOT.glob("packages/*/pyproject.toml")}
#: What ``kedro run`` itself loads for any pipeline: the settings (and the hooks they import) and the registry.
KEDRO_ENTRY = ("pipelines.settings", "pipelines.pipeline_registry")


def _imports(tree: ast.AST, module: str) -> set[str]:
    """Absolute names of every module imported anywhere in ``tree`` (relative imports resolved)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")[: -node.level]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
    return found


def _module_file(name: str) -> Path | None:
    """The file of a ``pipelines`` module (``.py`` or package ``__init__``), None when there is none."""
    path = ROOT.joinpath(*name.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


@cache
def library_closure(top: str) -> frozenset[str]:
    """The td-* libraries that library ``top`` imports, itself included, transitively."""
    seen, todo = set(), [top]
    while todo:
        lib = todo.pop()
        if lib in seen:
            continue
        seen.add(lib)
        for path in (PACKAGE_DIRS[lib] / "src").rglob("*.py"):
            for name in _imports(ast.parse(path.read_text(encoding="utf-8")), lib):
                first = name.split(".")[0]
                if first in PACKAGE_DIRS and first not in seen:
                    todo.append(first)
    return frozenset(seen)


def _dataset_class_imports(class_names: set[str]) -> set[str]:
    """Imports of ``pipelines/datasets.py`` at module level plus those inside the named classes."""
    path = ROOT / "pipelines" / "datasets.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            if node.name in class_names:
                found |= _imports(node, "pipelines.datasets")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            found |= _imports(node, "pipelines.datasets")
    return found


def code_dependencies(pipeline_name: str, dataset_classes: set[str]) -> set[str]:
    """The files (``pipelines/...``) and library source folders (``packages/<lib>/src``) a pipeline runs.

    ``dataset_classes``: the ``pipelines.datasets`` classes its catalog entries use. The pipeline's own folder
    is one entry (``pipelines/<name>``), and so is the folder of another pipeline all of whose modules it
    loads; other project modules are listed file by file.
    """
    own = ROOT / "pipelines" / pipeline_name
    start = [f"pipelines.{pipeline_name}.{p.stem}" for p in own.glob("*.py") if p.stem != "__init__"]
    todo = [*start, f"pipelines.{pipeline_name}", *KEDRO_ENTRY]
    files: set[Path] = set()
    libraries: set[str] = set()
    extra = _dataset_class_imports(dataset_classes) if dataset_classes else set()
    if dataset_classes:
        todo.append("pipelines.datasets")
    seen = set()
    while todo:
        name = todo.pop()
        for part in _parents(name):
            if part in seen:
                continue
            seen.add(part)
            path = _module_file(part)
            if path is None:
                continue
            files.add(path)
            imported = _imports(ast.parse(path.read_text(encoding="utf-8")), part if path.stem != "__init__" else part)
            if part == "pipelines.datasets":
                imported = extra
            for dep in imported:
                first = dep.split(".")[0]
                if first == "pipelines":
                    todo.append(dep)
                elif first in PACKAGE_DIRS:
                    libraries |= library_closure(first)
    files = {p for p in files if own not in p.parents}
    for folder in {p.parent for p in files if p.parent.parent == ROOT / "pipelines"}:
        if set(folder.glob("*.py")) <= files:  # every module of another pipeline: name its folder
            files = {p for p in files if p.parent != folder} | {folder}
    deps = {p.relative_to(ROOT).as_posix() for p in files | {own}}
    deps |= {(PACKAGE_DIRS[lib] / "src").relative_to(ROOT).as_posix() for lib in libraries}
    return deps


def expected_stages() -> dict[str, dict[str, set[str]]]:
    """``{stage: {"code", "inputs", "outputs", "parameters", "path_inputs", "datasets"}}`` for every registered
    pipeline, from the Kedro project (conf/base) and the import graph. ``path_inputs``: the parameter blocks
    read that name a user's file by ``path`` (their digests are params of ``data/00_config/inputs.yml``)."""
    import yaml

    from pipelines.pipeline_registry import find_project_pipelines
    from pipelines.resolved_config import dataset_path

    catalog = yaml.safe_load((ROOT / "conf" / "base" / "catalog.yml").read_text(encoding="utf-8"))
    base: dict = {}
    for path in sorted((ROOT / "conf" / "base").glob("parameters*.yml")):
        base.update(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    found = {}
    for name, pipe in find_project_pipelines().items():
        params = {n.removeprefix("params:") for n in pipe.inputs() if n.startswith("params:")}
        datasets = {n for n in pipe.all_inputs() | pipe.all_outputs() if not n.startswith("params:")}
        classes = {
            str(catalog[n]["type"]).rsplit(".", 1)[1]
            for n in datasets
            if n in catalog and str(catalog[n]["type"]).startswith("pipelines.datasets.")
        }
        found[name] = {
            "code": code_dependencies(name, classes),
            "inputs": {dataset_path(catalog[n], ROOT) for n in pipe.inputs() if n in catalog} - {None},
            "outputs": {dataset_path(catalog[n], ROOT) for n in pipe.all_outputs() if n in catalog} - {None},
            "parameters": params,
            "path_inputs": {p for p in params if isinstance(base.get(p), dict) and "path" in base[p]},
            "datasets": {n for n in datasets if n in catalog},
        }
    return found


if __name__ == "__main__":
    for stage, spec in expected_stages().items():
        print(f"{stage}:")
        for key in ("code", "inputs", "outputs", "parameters", "path_inputs", "datasets"):
            print(f"  {key}: {sorted(spec[key])}")

"""The structure's contracts (docs/ARCHITECTURE.md), checked on the source itself.

- The four topological classes are defined once, in ``td_physics.classes``; every other module that
  names them imports that tuple.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIRS = [
    *sorted(ROOT.glob("packages/*/src")),
    ROOT / "pipelines",
    ROOT / "scripts",
    ROOT / "benchmarks",
    ROOT / "examples",
]
CLASS_NAMES = {"trivial", "z2_ti", "chern", "semimetal_or_metal"}
HOME = ROOT / "packages" / "td-physics" / "src" / "td_physics" / "classes.py"


def _sources():
    for folder in SOURCE_DIRS:
        yield from (p for p in sorted(folder.rglob("*.py")) if "__pycache__" not in p.parts)


def _class_tuples(tree: ast.AST):
    """Line numbers of tuple or list literals holding all four class names."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List)):
            names = {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
            if CLASS_NAMES <= names:
                yield node.lineno


def test_the_topological_classes_are_defined_once_and_imported_everywhere_else():
    from td_physics.classes import TOPO_CLASSES

    assert TOPO_CLASSES == ("trivial", "z2_ti", "chern", "semimetal_or_metal")  # the order is the class index
    copies = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in _sources()
        if path != HOME
        for line in _class_tuples(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert copies == [], f"define the classes only in {HOME.relative_to(ROOT)} and import TOPO_CLASSES: {copies}"
    assert list(_class_tuples(ast.parse(HOME.read_text(encoding="utf-8")))), "the home lost its definition"


def test_every_library_exposes_the_same_class_tuple():
    import td_models.config
    import td_physics.classify
    from td_physics.classes import TOPO_CLASSES

    assert td_physics.classify.TOPO_CLASSES is TOPO_CLASSES
    assert td_models.config.TOPO_CLASSES is TOPO_CLASSES


def _module_files() -> dict[str, Path]:
    """``{dotted module name: file}`` for every module of the four libraries and the Kedro package."""
    roots = {p.name: p for p in ROOT.glob("packages/*/src/td_*")} | {"pipelines": ROOT / "pipelines"}
    found = {}
    for top, folder in roots.items():
        for path in folder.rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            parts = [top, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
                found[".".join(parts)] = path
            else:
                found[".".join(parts)] = path
    return found


def _import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports anywhere (function-level imports included)."""
    from tests._dvc_graph import _imports

    files = _module_files()
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        # relative imports resolve against the package for an __init__, against the parent for a module
        anchor = f"{name}.__init__" if path.name == "__init__.py" else name
        targets = set()
        for imported in _imports(ast.parse(path.read_text(encoding="utf-8")), anchor):
            while imported and imported not in files:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_of_the_libraries_or_the_pipelines_imports_itself_through_others():
    cycles = _cycles(_import_graph())
    assert cycles == [], f"import cycles (break each by moving the shared piece down a layer): {cycles}"


LAYERS = {"td_physics": set(), "td_data": {"td_physics"}, "td_models": {"td_physics"}, "td_hpc": set()}


def test_each_library_imports_only_the_libraries_below_it():
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in _import_graph().items()
        for target in targets
        if (top := module.split(".")[0]) in LAYERS
        and (other := target.split(".")[0]) != top
        and other not in LAYERS[top]
    )
    assert wrong == [], f"imports against docs/ARCHITECTURE.md's layers: {wrong}"


#: The one place allowed to name site.addsitedir: it writes a ``.pth`` file into a throwaway virtual environment
#: that the install tests layer over this interpreter's (tests/_tree.py ``overlay_venv``); no code of the tree
#: changes its own import path.
IMPORT_PATH_EXCEPTIONS = {ROOT / "tests" / "_tree.py"}


def test_no_file_in_the_tree_edits_the_import_path():
    pattern = re.compile(r"sys\.path\.(insert|append|extend)|sys\.path\s*=|syspath_prepend|site\.addsitedir")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in [*SOURCE_DIRS, ROOT / "tests", *sorted(ROOT.glob("packages/*/tests"))]
        for path in sorted(folder.rglob("*.py"))
        if "__pycache__" not in path.parts and path != Path(__file__) and path not in IMPORT_PATH_EXCEPTIONS
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == [], f"import what is installed instead of editing sys.path: {offenders}"

"""The structure's contracts (docs/ARCHITECTURE.md), checked on the source itself.

- The four topological classes are defined once, in ``td_physics.classes``; every other module that
  names them imports that tuple.
"""

from __future__ import annotations

import ast
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

"""The four topological classes every label, model condition and report uses, in class-index order.

This is the one definition: td-data, td-models, the pipelines, the scripts and the benchmarks import
it from here (a test in the root suite fails on another definition).
"""

from __future__ import annotations

__all__ = ["TOPO_CLASSES", "CLASS_ALIASES"]

#: The classes, in the order of the class index (0..3) the diffusion model conditions on.
TOPO_CLASSES: tuple[str, ...] = ("trivial", "z2_ti", "chern", "semimetal_or_metal")

#: Names users type for each class (the user guide says "TI"), lower case with underscores -> index.
CLASS_ALIASES: dict[str, int] = {
    "trivial": 0,
    "insulator": 0,
    "normal": 0,
    "z2_ti": 1,
    "ti": 1,
    "z2": 1,
    "topological_insulator": 1,
    "qsh": 1,
    "chern": 2,
    "ci": 2,
    "qah": 2,
    "chern_insulator": 2,
    "semimetal_or_metal": 3,
    "semimetal": 3,
    "metal": 3,
    "wsm": 3,
    "weyl": 3,
}

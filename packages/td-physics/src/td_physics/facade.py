"""Facade modules: a module that re-exports a package's public names, each resolved on first use.

The user guide's ``topological_diffusion.physics``, ``.data`` and ``.models`` are such facades over
td_physics, td_data and td_models: one call at the end of the facade's ``__init__`` gives it the
source's ``__all__``, a module ``__getattr__`` (PEP 562) that looks a name up in the source only when
it is first used (so a facade of a lazily importing package stays lazy), and a ``__dir__``.

>>> import types
>>> facade = types.ModuleType("guide.physics")
>>> reexport(vars(facade), "td_physics")
>>> facade.TightBindingModel is __import__("td_physics").TightBindingModel
True
>>> facade.nothing_here
Traceback (most recent call last):
...
AttributeError: module 'guide.physics' has no attribute 'nothing_here'
"""

from __future__ import annotations

import importlib
from collections.abc import MutableMapping
from typing import Any

__all__ = ["reexport"]


def reexport(namespace: MutableMapping[str, Any], source: str) -> None:
    """Make the module whose globals are ``namespace`` re-export the names of ``source``'s ``__all__``.

    Sets ``__all__`` (a list the facade may extend with names it binds itself), ``__getattr__`` (the
    source's object for one of its names; otherwise ``AttributeError`` naming the facade) and
    ``__dir__`` (the facade's globals and ``__all__``).
    """
    module = importlib.import_module(source)
    names = frozenset(module.__all__)
    facade = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {facade!r} has no attribute {name!r}")
        return getattr(module, name)

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(namespace["__all__"]))

    namespace.update(__all__=list(module.__all__), __getattr__=__getattr__, __dir__=__dir__)

"""One conversion of Python and numpy data to plain JSON values, for every library above this one.

:func:`to_jsonable` returns a copy made of ``None``, ``bool``, ``int``, ``float``, ``str``, ``list`` and
``dict`` with string keys: numpy scalars become Python numbers, numpy arrays and tuples become lists.
Two sets of rules, chosen by ``strict``:

* ``strict=True`` (stored data: records, model files, which must read back as they were written): a NaN or
  infinity, a non-string key or any other type is an error naming where it stands and what it is;
* ``strict=False`` (reports and run summaries): NaN and infinities become ``None`` (a diverged loss),
  keys become strings, paths their string and objects with ``tolist`` (torch tensors) lists; any other
  type is still an error.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from td_physics.exceptions import FileFormatError

__all__ = ["to_jsonable"]


def to_jsonable(
    value: Any, *, strict: bool = True, where: str = "value", error: type[ValueError] = FileFormatError
) -> Any:
    """``value`` as plain JSON data (a new object; ``value`` unchanged), under the rules of ``strict``.

    ``where`` names ``value`` in the messages (``metadata['gap'] must be a finite number ...``); ``error`` is
    the :class:`ValueError` subclass raised, so that each library raises its own.

    >>> to_jsonable({"gap": np.float32(0.5), "k": np.arange(2), "shape": (3, 3)})
    {'gap': 0.5, 'k': [0, 1], 'shape': [3, 3]}
    >>> to_jsonable({1: float("nan")}, strict=False)
    {'1': None}
    """
    if isinstance(value, (np.ndarray, np.generic)) or (not strict and hasattr(value, "tolist")):
        value = value.tolist()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
        if strict:
            raise error(f"{where} must be a finite number (JSON has no NaN or infinity), got {value}")
        return None
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                if strict:
                    raise error(f"{where} keys must be strings (JSON objects), got key {key!r}")
                key = str(key)
            out[key] = to_jsonable(item, strict=strict, where=f"{where}[{key!r}]", error=error)
        return out
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item, strict=strict, where=f"{where}[{i}]", error=error) for i, item in enumerate(value)]
    if not strict and isinstance(value, os.PathLike):
        return os.fspath(value)
    raise error(f"{where} must hold JSON values (str, number, bool, None, list, dict), got {type(value).__name__}")

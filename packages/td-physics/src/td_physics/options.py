"""What every options object of td-physics shares: overrides by keyword and checks of their fields.

An options object is a frozen dataclass that validates itself once, in ``__post_init__``. A
function takes ``options: XOptions | None = None, **overrides``; :func:`resolve` applies the
overrides with :func:`dataclasses.replace`, which validates the result again. In every options
class ``None`` means one thing: the setting is off, or not given (never "the default value").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any, TypeVar

import numpy as np

__all__ = ["resolve", "check_int", "check_number"]

T = TypeVar("T")


def resolve(cls: type[T], options: T | None, overrides: Mapping[str, Any], what: str) -> T:
    """``options`` (default ``cls()``) with ``overrides`` applied; unknown names raise ``TypeError``.

    ``what`` names the kind of options in the error ("convergence", "builder").
    """
    if options is None:
        options = cls()
    elif not isinstance(options, cls):
        raise TypeError(f"options must be a {cls.__name__}, got {type(options).__name__}")
    valid = sorted(f.name for f in fields(cls))  # type: ignore[arg-type]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise TypeError(f"unknown {what} options {unknown}; valid: {valid}")
    return replace(options, **overrides) if overrides else options  # type: ignore[type-var]


def check_int(error: type[ValueError], owner: str, name: str, value: Any, minimum: int) -> int:
    """``value`` as an int, or ``error`` naming the rule ``owner.name >= minimum`` and the value."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise error(f"{owner}.{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_number(
    error: type[ValueError], owner: str, name: str, value: Any, *, minimum: float | None = None, strict: bool = False
) -> float:
    """``value`` as a finite float (``>= minimum``, or ``> minimum`` when ``strict``), or ``error``."""
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float, np.integer, np.floating))
        and math.isfinite(value)
        and (minimum is None or (value > minimum if strict else value >= minimum))
    )
    if not ok:
        rule = "" if minimum is None else (f" > {minimum:g}" if strict else f" >= {minimum:g}")
        raise error(f"{owner}.{name} must be a finite number{rule}, got {value!r}")
    return float(value)

"""The parameter blocks of the pipelines as frozen dataclasses, built from their ``params:`` dicts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, ClassVar, TypeVar

from pipelines.exceptions import ParameterError

T = TypeVar("T", bound="OptionsBlock")


def is_int(value: Any) -> bool:
    """An integer from YAML (``true`` is not one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An integer or float from YAML (``true`` is not one)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class OptionsBlock:
    """Mixin for a dataclass holding one parameter block; ``block`` is its name in ``conf/base``."""

    block: ClassVar[str] = "options"

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any] | None) -> T:
        """The block from its YAML mapping; an unknown key is an error that names it and the known ones."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ParameterError(f"{cls.block} has unknown keys {unknown}; known: {sorted(known)}")
        return cls(**data)

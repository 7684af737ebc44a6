"""The parameter blocks of the pipelines as frozen dataclasses, built from their ``params:`` dicts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from pipelines.exceptions import ParameterError
from td_physics.options import from_mapping

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
        return from_mapping(
            cls, data, lambda unknown, known: ParameterError(f"{cls.block} has unknown keys {unknown}; known: {known}")
        )

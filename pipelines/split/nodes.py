"""Split: a deterministic train/val/test split (random or by composition), saved with the data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pipelines._options import OptionsBlock
from td_data import CrystalRecord


@dataclass(frozen=True)
class SplitConfig(OptionsBlock):
    """The ``split_options`` block of ``parameters_split.yml``."""

    block: ClassVar[str] = "split_options"

    method: str = "random"  # random | composition (no reduced formula in two sets)
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train, val, test
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in ("random", "composition"):
            raise ValueError(f"split_options.method must be 'random' or 'composition', got {self.method!r}")
        object.__setattr__(self, "fractions", tuple(float(f) for f in self.fractions))


def split_crystals(
    records: Sequence[CrystalRecord], split_options: Mapping[str, Any]
) -> tuple[dict[str, Any], list[CrystalRecord], list[CrystalRecord], list[CrystalRecord]]:
    """``(split as a td-data split dict, train, val, test)``; the same inputs give the same split."""
    from td_data.splits import apply_split, composition_split, random_split

    cfg = SplitConfig.from_dict(split_options)
    make = random_split if cfg.method == "random" else composition_split
    split = make(records, fractions=cfg.fractions, seed=cfg.seed)
    train, val, test = apply_split(records, split)
    return split.to_dict(), list(train), list(val), list(test)

"""Deterministic train / validation / test splits of crystal records, saved as JSON.

A split depends only on the records' ids (and, for :func:`composition_split`, their reduced
formulas), the fractions and the seed, never on the order in which the records arrive: ids are
sorted before a seeded shuffle. Record ids must be unique.

Examples
--------
>>> recs = [CrystalRecord(np.eye(3) * 4.0, [[0, 0, 0]], ["Cu"], id=f"r{i}") for i in range(10)]
>>> split = random_split(recs, fractions=(0.8, 0.1, 0.1), seed=0)
>>> len(split.train), len(split.val), len(split.test)
(8, 1, 1)
>>> train, val, test = apply_split(recs, split)
>>> sorted(r.id for r in val + test) == sorted(split.val + split.test)
True
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from td_data.exceptions import TDDataError
from td_data.record import CrystalRecord
from td_physics.files import replace_durably, temp_sibling

__all__ = ["Split", "random_split", "composition_split", "save_split", "load_split", "apply_split"]

_FORMAT = "td-data.split"
_VERSION = 1


@dataclass(frozen=True)
class Split:
    """Ids of the train, validation and test sets, and how they were made.

    ``method`` is ``"random"`` or ``"composition"``; ``fractions`` (train, val, test).
    """

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    method: str
    seed: int
    fractions: tuple[float, float, float]

    def __post_init__(self) -> None:
        for name in ("train", "val", "test"):
            object.__setattr__(self, name, tuple(str(i) for i in getattr(self, name)))
        object.__setattr__(self, "fractions", _check_fractions(self.fractions))
        object.__setattr__(self, "seed", int(self.seed))
        seen: set[str] = set()
        for name in ("train", "val", "test"):
            ids = getattr(self, name)
            overlap = seen.intersection(ids)
            if overlap or len(set(ids)) != len(ids):
                dup = sorted(overlap)[0] if overlap else next(i for i in ids if ids.count(i) > 1)
                raise TDDataError(f"split ids must be unique across train, val and test, got {dup!r} twice")
            seen.update(ids)

    @property
    def sizes(self) -> tuple[int, int, int]:
        return len(self.train), len(self.val), len(self.test)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (``format: td-data.split``, version 1)."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "method": self.method,
            "seed": self.seed,
            "fractions": list(self.fractions),
            "train": list(self.train),
            "val": list(self.val),
            "test": list(self.test),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Split:
        if d.get("format") != _FORMAT:
            raise TDDataError(f"expected format {_FORMAT!r}, got {d.get('format')!r}")
        if d.get("version") != _VERSION:
            raise TDDataError(f"split version {_VERSION} is supported, got {d.get('version')!r}")
        try:
            return cls(d["train"], d["val"], d["test"], d["method"], d["seed"], tuple(d["fractions"]))
        except KeyError as err:
            raise TDDataError(f"split dict is missing the key {err}") from None


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    try:
        values = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        raise TDDataError(f"fractions must be three numbers (train, val, test), got {fractions!r}") from None
    if len(values) != 3:
        raise TDDataError(f"fractions must be three numbers (train, val, test), got {len(values)}: {fractions!r}")
    if not all(math.isfinite(f) and f >= -1e-12 for f in values):
        raise TDDataError(f"fractions must be non-negative finite numbers, got {fractions!r}")
    values = tuple(max(f, 0.0) for f in values)  # a rounding error such as 1 - 0.8 - 0.2 < 0 counts as 0
    if not math.isclose(sum(values), 1.0, abs_tol=1e-9):
        raise TDDataError(f"fractions must sum to 1, got {fractions!r} (sum {sum(values):.6g})")
    return values  # type: ignore[return-value]


def _unique_ids(records: Sequence[CrystalRecord]) -> list[str]:
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = next(i for i in ids if i in seen or seen.add(i))  # type: ignore[func-returns-value]
        raise TDDataError(f"record ids must be unique to split, got {dup!r} more than once")
    return ids


def _boundaries(n: int, fractions: tuple[float, float, float]) -> tuple[int, int]:
    """End of train and of val in a list of ``n`` items: cumulative fractions, rounded."""
    first = int(round(fractions[0] * n))
    second = int(round((fractions[0] + fractions[1]) * n))
    return first, max(first, min(second, n))


def random_split(
    records: Sequence[CrystalRecord], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> Split:
    """Ids shuffled with ``seed`` and cut at the cumulative fractions (sizes rounded)."""
    fr = _check_fractions(fractions)
    ids = sorted(_unique_ids(records))
    order = np.random.default_rng(seed).permutation(len(ids))
    shuffled = [ids[i] for i in order]
    a, b = _boundaries(len(ids), fr)
    return Split(tuple(shuffled[:a]), tuple(shuffled[a:b]), tuple(shuffled[b:]), "random", seed, fr)


def composition_split(
    records: Sequence[CrystalRecord], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> Split:
    """A split in which no reduced formula appears in two sets.

    Formulas are shuffled with ``seed``; each goes, with all its records, to the set whose
    cumulative boundary its records' midpoint falls before, so the sizes follow the fractions as
    closely as whole formula groups allow.
    """
    fr = _check_fractions(fractions)
    _unique_ids(records)
    groups: dict[str, list[str]] = {}
    for r in records:
        groups.setdefault(r.formula, []).append(r.id)
    formulas = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(formulas))
    n = len(records)
    cut = (fr[0] * n, (fr[0] + fr[1]) * n)
    parts: tuple[list[str], list[str], list[str]] = ([], [], [])
    done = 0
    for i in order:
        ids = sorted(groups[formulas[i]])
        mid = done + 0.5 * len(ids)
        which = 0 if mid < cut[0] else 1 if mid < cut[1] else 2
        parts[which].extend(ids)
        done += len(ids)
    return Split(tuple(parts[0]), tuple(parts[1]), tuple(parts[2]), "composition", seed, fr)


def save_split(split: Split, path: str | os.PathLike[str]) -> Path:
    """Write ``split`` as JSON atomically (a temporary file in the same folder, then ``os.replace``)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(target)
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(split.to_dict(), fh, indent=1)
            fh.write("\n")
        replace_durably(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return target


def load_split(path: str | os.PathLike[str]) -> Split:
    """Read a split written by :func:`save_split`."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise TDDataError(f"{path} is not a JSON split file: {err}") from None
    if not isinstance(data, dict):
        raise TDDataError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return Split.from_dict(data)


def apply_split(
    records: Sequence[CrystalRecord], split: Split, strict: bool = True
) -> tuple[list[CrystalRecord], list[CrystalRecord], list[CrystalRecord]]:
    """(train, val, test) records, each in the order of the split's ids.

    With ``strict`` (the default) every id of the split must be among ``records`` and every
    record must be in the split; otherwise missing ids and unassigned records are skipped.
    """
    by_id = {r.id: r for r in records}
    if len(by_id) != len(records):
        _unique_ids(records)
    if strict:
        wanted = set(split.train) | set(split.val) | set(split.test)
        missing = sorted(wanted - by_id.keys())
        if missing:
            raise TDDataError(f"{len(missing)} split ids are not among the records, e.g. {missing[0]!r}")
        extra = sorted(by_id.keys() - wanted)
        if extra:
            raise TDDataError(f"{len(extra)} records are in no set of the split, e.g. {extra[0]!r}")
    return tuple([by_id[i] for i in ids if i in by_id] for ids in (split.train, split.val, split.test))  # type: ignore[return-value]

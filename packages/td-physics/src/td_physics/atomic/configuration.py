"""Electron configurations: ``"[Ar] 3d10 4s2 4p1"`` strings, orbital labels, and the orbitals a mode solves.

In ``"dirac"`` mode an ``l > 0`` shell becomes two orbitals, ``j = l - 1/2`` (``"6p-"``, ``kappa = l``)
and ``j = l + 1/2`` (``"6p+"``, ``kappa = -(l + 1)``), sharing the occupation in proportion to ``2j + 1``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from td_physics.exceptions import AtomicInputError

__all__ = ["NOBLE_GAS_CORES", "RELATIVITY_MODES", "parse_configuration", "parse_label", "Orbital", "solved_orbitals"]

RELATIVITY_MODES = ("none", "scalar", "dirac")

NOBLE_GAS_CORES: dict[str, str] = {
    "He": "1s2",
    "Ne": "[He] 2s2 2p6",
    "Ar": "[Ne] 3s2 3p6",
    "Kr": "[Ar] 3d10 4s2 4p6",
    "Xe": "[Kr] 4d10 5s2 5p6",
    "Rn": "[Xe] 4f14 5d10 6s2 6p6",
}
"""Closed-shell cores usable as ``[X]`` in configuration strings."""

L_LETTERS = "spdfg"
_LABEL_RE = re.compile(r"^([1-9][0-9]?)([spdfg])$")
_TOKEN_RE = re.compile(r"^([1-9][0-9]?)([spdfg])\^?([0-9]+(?:\.[0-9]*)?|\.[0-9]+)$")
Z_MAX = 118


def check_relativity(relativity: str) -> None:
    if relativity not in RELATIVITY_MODES:
        raise AtomicInputError(f"relativity must be one of {RELATIVITY_MODES}, got {relativity!r}")


def parse_label(label: str) -> tuple[int, int]:
    m = _LABEL_RE.match(label.strip()) if isinstance(label, str) else None
    if m is None:
        raise AtomicInputError(
            f"orbital labels must look like '1s', '2p', '4f' (n = 1..99, l in s/p/d/f/g), got {label!r}"
        )
    n, l = int(m.group(1)), L_LETTERS.index(m.group(2))
    if l >= n:
        raise AtomicInputError(f"orbital {label!r} is impossible: the rule is l < n (l={l}, n={n})")
    return n, l


def parse_configuration(configuration: str | Mapping[str, float]) -> dict[str, float]:
    """Occupations per ``nl`` shell from a string or a mapping.

    Parameters
    ----------
    configuration:
        ``"[Xe] 4f14 5d10 6s2 6p3"`` (noble-gas cores ``[He]`` .. ``[Rn]``, occupations may be
        fractional, ``"6p1.5"``) or a mapping ``{"1s": 2, "2s": 2, ...}``.

    Returns
    -------
    dict
        ``{"1s": 2.0, ...}`` sorted by ``(n, l)``.

    Raises
    ------
    AtomicInputError
        Unknown core or orbital label, an orbital given twice, a negative occupation or one above
        the shell capacity ``2 (2l + 1)``.

    Examples
    --------
    >>> parse_configuration("[Ne] 3s2 3p1")
    {'1s': 2.0, '2s': 2.0, '2p': 6.0, '3s': 2.0, '3p': 1.0}
    """
    occ: dict[str, float] = {}

    def add(label: str, value: Any) -> None:
        n, l = parse_label(label)
        key = f"{n}{L_LETTERS[l]}"
        try:
            x = float(value)
        except (TypeError, ValueError) as exc:
            raise AtomicInputError(f"occupation of {key} must be a number, got {value!r}") from exc
        if not np.isfinite(x) or x < 0:
            raise AtomicInputError(f"occupation of {key} must be finite and >= 0, got {value!r}")
        cap = 2 * (2 * l + 1)
        if x > cap + 1e-12:
            raise AtomicInputError(f"occupation of {key} is {x:g}, above the shell capacity 2(2l+1) = {cap}")
        if key in occ:
            raise AtomicInputError(f"orbital {key} appears twice in the configuration")
        occ[key] = x

    if isinstance(configuration, str):
        tokens = configuration.split()
        if not tokens:
            raise AtomicInputError("the configuration string is empty")
        for tok in tokens:
            if tok.startswith("[") and tok.endswith("]"):
                core = tok[1:-1]
                if core not in NOBLE_GAS_CORES:
                    raise AtomicInputError(
                        f"unknown core {tok!r} in the configuration; known cores: "
                        + ", ".join(f"[{k}]" for k in NOBLE_GAS_CORES)
                    )
                for label, value in parse_configuration(NOBLE_GAS_CORES[core]).items():
                    add(label, value)
                continue
            m = _TOKEN_RE.match(tok)
            if m is None:
                raise AtomicInputError(
                    f"cannot read configuration token {tok!r}: expected e.g. '6p3', '4f14', '6s1.5' or a core '[Xe]'"
                )
            add(m.group(1) + m.group(2), m.group(3))
    elif isinstance(configuration, Mapping):
        if not configuration:
            raise AtomicInputError("the configuration mapping is empty")
        for label, value in configuration.items():
            add(label, value)
    else:
        raise AtomicInputError(
            f"configuration must be a string like '[Ne] 3s2 3p1' or a mapping {{'1s': 2, ...}}, got {configuration!r}"
        )
    return dict(sorted(occ.items(), key=lambda kv: parse_label(kv[0])))


@dataclass(frozen=True)
class Orbital:
    label: str
    n: int
    l: int
    kappa: int  # Dirac quantum number; 0 outside dirac mode
    occupation: float


def solved_orbitals(occ: Mapping[str, float], relativity: str) -> list[Orbital]:
    out = []
    for label, f in occ.items():
        n, l = parse_label(label)
        if relativity != "dirac":
            out.append(Orbital(label, n, l, 0, f))
        elif l == 0:
            out.append(Orbital(label, n, l, -1, f))
        else:
            out.append(Orbital(label + "-", n, l, l, f * l / (2 * l + 1)))
            out.append(Orbital(label + "+", n, l, -(l + 1), f * (l + 1) / (2 * l + 1)))
    return out

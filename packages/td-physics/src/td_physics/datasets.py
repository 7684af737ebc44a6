"""Data sets of tight-binding models with exact invariants: random Haldane, Kane-Mele and BHZ models.

:class:`TightBindingDatasetGenerator` draws random Haldane, Kane-Mele (lambda_r = 0) and BHZ
(B = 1, a = 1) parameters away from their phase boundaries, computes the invariant with
:func:`td_physics.phase_diagram.phase_diagram` (all samples of a family in one batched call) and
stores the closed-form value next to it (:class:`TBSample`). It builds models, not crystals: the
crystal data sets are in ``td_data.synthetic``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from td_physics.exceptions import ModelDefinitionError
from td_physics.models import bhz, haldane, kane_mele
from td_physics.options import ChernOptions
from td_physics.phase_diagram import phase_diagram
from td_physics.validation import haldane_closed_form

__all__ = ["FAMILIES", "TBSample", "TightBindingDatasetGenerator"]

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]

FAMILIES = ("haldane", "kane_mele", "bhz")


@dataclass(frozen=True)
class TBSample:
    """One tight-binding model with its computed invariant and the closed-form value.

    ``invariant`` is ``"chern"`` (Haldane, lower band) or ``"z2"`` (Kane-Mele, BHZ; two lowest
    bands); ``min_gap`` the smallest direct gap seen (model energy units); ``expected`` the
    closed-form value, or None where no closed form applies.
    """

    family: str
    parameters: Mapping[str, float]
    invariant: str
    value: int
    converged: bool
    min_gap: float
    expected: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "parameters", MappingProxyType(dict(self.parameters)))

    @property
    def agrees(self) -> bool | None:
        """Whether the computed value equals the closed form (None without a closed form)."""
        return None if self.expected is None else self.value == self.expected


@dataclass(frozen=True)
class _FamilySpec:
    invariant: str
    sample: Callable[[np.random.Generator], tuple[dict[str, float], float]]  # parameters, distance/scale
    expected: Callable[[Mapping[str, float]], int]
    factory: Callable[..., Any] = field(repr=False)


def _haldane_params(rng: np.random.Generator) -> tuple[dict[str, float], float]:
    t2 = rng.uniform(0.05, 0.3)
    phi = rng.uniform(-math.pi, math.pi)
    mc = 3 * math.sqrt(3) * abs(t2 * math.sin(phi))  # gap closes at |m| = mc
    m = rng.uniform(-2.0, 2.0) * mc
    # distance to the boundary |m| = mc relative to mc; mc < 0.1 (sin(phi) near 0) counts as on it
    distance = abs(abs(m) - mc) / mc if mc >= 0.1 else 0.0
    return {"t1": 1.0, "t2": t2, "phi": phi, "m": m}, distance


def _kane_mele_params(rng: np.random.Generator) -> tuple[dict[str, float], float]:
    lso = rng.uniform(0.02, 0.1)
    crit = 3 * math.sqrt(3) * lso  # gap at K closes at |lambda_v| = 3 sqrt(3) lambda_so
    lv = rng.uniform(-2.0, 2.0) * crit
    return {"t": 1.0, "lambda_so": lso, "lambda_r": 0.0, "lambda_v": lv}, abs(abs(lv) - crit) / crit


def _bhz_params(rng: np.random.Generator) -> tuple[dict[str, float], float]:
    m = rng.uniform(-2.0, 10.0)
    params = {"A": rng.uniform(0.5, 1.5), "B": 1.0, "C": 0.0, "D": rng.uniform(-0.5, 0.5), "M": m, "a": 1.0}
    # boundaries M = 0, 4, 8 (gap closes at Gamma, X, M); distance relative to the spacing 4 B / a^2
    return params, min(abs(m), abs(m - 4.0), abs(m - 8.0)) / 4.0


def _haldane_expected(p: Mapping[str, float]) -> int:
    return int(haldane_closed_form(np.array(p["m"]), np.array(p["phi"]), p["t2"]))


def _kane_mele_expected(p: Mapping[str, float]) -> int:
    return int(abs(p["lambda_v"]) < 3 * math.sqrt(3) * p["lambda_so"])


def _bhz_expected(p: Mapping[str, float]) -> int:
    ratio = p["M"] * p["a"] ** 2 / p["B"]
    return int(0.0 < ratio < 8.0 and ratio != 4.0)


class TightBindingDatasetGenerator:
    """Random Haldane, Kane-Mele and BHZ models with exact invariants and their closed forms.

    Parameter ranges (dimensionless, t1 = t = B = a = 1): Haldane ``t2`` in [0.05, 0.3], ``phi``
    in [-pi, pi], ``m`` in [-2, 2] times the critical mass ``3 sqrt(3) |t2 sin phi|``; Kane-Mele
    ``lambda_so`` in [0.02, 0.1], ``lambda_r = 0``, ``lambda_v`` in [-2, 2] times ``3 sqrt(3)
    lambda_so``; BHZ ``A`` in [0.5, 1.5], ``D`` in [-0.5, 0.5], ``C = 0``, ``M`` in [-2, 10]. Draws
    closer to a phase boundary than ``boundary_margin`` (relative to the critical value, or to
    the boundary spacing 4 for BHZ; Haldane also when the critical mass is below 0.1) are drawn
    again: there the gap is tiny and neither the closed form nor a finite mesh is meaningful.

    Examples
    --------
    >>> samples = TightBindingDatasetGenerator(seed=0, families=("kane_mele",)).generate(2)
    >>> [(s.family, s.invariant, s.value == s.expected) for s in samples]
    [('kane_mele', 'z2', True), ('kane_mele', 'z2', True)]
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        families: Sequence[str] = FAMILIES,
        boundary_margin: float = 0.01,
        mesh: int = 24,
        max_mesh: int = 192,
    ) -> None:
        unknown = [f for f in families if f not in FAMILIES]
        if unknown or not families:
            raise ModelDefinitionError(f"families must be a non-empty subset of {FAMILIES}, got {tuple(families)}")
        if not 0.0 <= boundary_margin < 0.5:
            raise ModelDefinitionError(f"boundary_margin must be between 0 and 0.5, got {boundary_margin}")
        self.seed = int(seed)
        self.families = tuple(families)
        self.boundary_margin = float(boundary_margin)
        self.mesh = int(mesh)
        self.max_mesh = int(max_mesh)
        self._specs = {
            "haldane": _FamilySpec("chern", _haldane_params, _haldane_expected, haldane),
            "kane_mele": _FamilySpec("z2", _kane_mele_params, _kane_mele_expected, kane_mele),
            "bhz": _FamilySpec("z2", _bhz_params, _bhz_expected, bhz),
        }

    def _draw(self, family: str, rng: np.random.Generator) -> dict[str, float]:
        for _ in range(1000):
            params, distance = self._specs[family].sample(rng)
            if distance >= self.boundary_margin:
                return params
        raise ModelDefinitionError(
            f"could not draw {family} parameters away from the phase boundary"
        )  # pragma: no cover

    def generate(self, n_samples: int, progress: ProgressCallback | None = None) -> list[TBSample]:
        """``n_samples`` models (family chosen at random), each family computed in one batch.

        ``progress(done, total)`` is called after each family's batch if given.
        """
        if n_samples < 0:
            raise ModelDefinitionError(f"n_samples must be non-negative, got {n_samples}")
        rng = np.random.default_rng(self.seed)
        drawn = []
        for _ in range(n_samples):
            family = self.families[int(rng.integers(len(self.families)))]
            drawn.append((family, self._draw(family, rng)))
        out: list[TBSample | None] = [None] * n_samples
        done = 0
        for family in self.families:
            idx = [i for i, (f, _) in enumerate(drawn) if f == family]
            if not idx:
                continue
            spec = self._specs[family]
            params = [drawn[i][1] for i in idx]

            def build(index: float, _params: list[dict[str, float]] = params, _spec: _FamilySpec = spec) -> Any:
                return _spec.factory(**_params[int(index)])

            # mesh and max_mesh are the Chern mesh; the Z2 families use the default Z2Options
            chern = ChernOptions(mesh=self.mesh, max_mesh=self.max_mesh) if spec.invariant == "chern" else None
            diagram = phase_diagram(build, {"index": np.arange(len(idx))}, spec.invariant, options=chern)
            for k, i in enumerate(idx):
                out[i] = TBSample(
                    family=family,
                    parameters=params[k],
                    invariant=spec.invariant,
                    value=int(diagram.values[k]),
                    converged=bool(diagram.converged[k]),
                    min_gap=float(diagram.min_gap[k]),
                    expected=spec.expected(params[k]),
                )
            done += len(idx)
            if progress is not None:
                progress(done, n_samples)
        samples = [s for s in out if s is not None]
        bad = sum(1 for s in samples if s.agrees is False)
        logger.info("generated %d tight-binding samples, %d disagree with the closed form", len(samples), bad)
        return samples

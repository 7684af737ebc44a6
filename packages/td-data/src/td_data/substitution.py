"""Chemically guided substitution and the volume of a substituted cell.

Shared by the synthetic data set (:mod:`td_data.synthetic`) and the topological families
(:mod:`td_data.families`).

* **Substitution probabilities**: the data-mined lambda table of Hautier et al., Inorg. Chem. 50,
  656 (2011), as pymatgen's
  :class:`~pymatgen.analysis.structure_prediction.substitution_probability.SubstitutionProbability`
  ships it (:func:`substitution_table`). :class:`Substituter` draws, for each slot of a structure
  (an element with its site count), a species of the table as the seed (a charge-balanced choice of
  the table's oxidation states when one exists, otherwise any species of the slot's element) and
  replaces it by species ``t`` with probability proportional to ``exp(lambda(t, s) / T)`` over the
  substitutions observed in the table (the identity included; never-observed pairs are left out).
  The table is an oxide-heavy ICSD statistic without anions such as Te2- or Sb3-; for those elements
  it still proposes same-group replacements through their cationic species.
* **Volume**: :func:`dls_length_scale`, the data-mined lattice scaling (DLS) of pymatgen's
  :class:`~pymatgen.analysis.structure_prediction.volume_predictor.DLSVolumePredictor`: bond radii
  ``r + k std(X)`` from pymatgen's ``DLS_bond_params.yaml`` (atomic or metallic radius when an
  element has none), and an isotropic scaling that makes the smallest ratio of interatomic distance
  to radius sum equal to one, computed with one array operation per structure and without
  pymatgen's clamp to 0.5-1.5 times the starting volume.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

import numpy as np

from td_data.exceptions import TDDataError

__all__ = ["SubstitutionTable", "substitution_table", "Substituter", "bond_radius_params", "dls_length_scale"]

_MAX_SEED_COMBINATIONS = 50_000  # larger products of oxidation states are not searched for a balanced seed


@dataclass(frozen=True)
class SubstitutionTable:
    """Hautier's lambda table as arrays: ``lam[t, s]`` is lambda(t, s), NaN where never observed."""

    species: tuple[str, ...]  # sorted by name, e.g. 'Na+'
    element: tuple[str, ...]
    charge: np.ndarray  # (n,) oxidation states
    lam: np.ndarray  # (n, n) lambda(t, s); NaN where the pair was never observed
    by_element: Mapping[str, tuple[int, ...]]


@lru_cache(maxsize=1)
def substitution_table() -> SubstitutionTable:
    """The lambda table of pymatgen's ``SubstitutionProbability``, loaded once.

    >>> table = substitution_table()
    >>> [table.species[i] for i in table.by_element["Se"]]
    ['Se2+', 'Se2-', 'Se4+', 'Se6+']
    """
    from pymatgen.analysis.structure_prediction.substitution_probability import SubstitutionProbability

    prob = SubstitutionProbability()
    species = sorted(prob.species, key=str)  # the class keeps a set: sort for determinism
    n = len(species)
    lam = np.full((n, n), np.nan)
    for i, j in itertools.combinations_with_replacement(range(n), 2):
        value = prob.get_lambda(species[i], species[j])
        if value != prob.alpha:  # alpha marks never-observed pairs (observed values are above -2)
            lam[i, j] = lam[j, i] = value
    by_element: dict[str, list[int]] = {}
    for i, s in enumerate(species):
        by_element.setdefault(s.symbol, []).append(i)
    return SubstitutionTable(
        species=tuple(str(s) for s in species),
        element=tuple(s.symbol for s in species),
        charge=np.array([float(s.oxi_state) for s in species]),
        lam=lam,
        by_element=MappingProxyType({k: tuple(v) for k, v in by_element.items()}),
    )


class Substituter:
    """Draws data-mined substitutes for the slots of a structure (see the module docstring).

    Parameters
    ----------
    allowed_elements:
        Elements a substitute may be (a species of another element is never drawn).
    temperature:
        ``T`` in ``exp(lambda / T)``; 1 is Hautier's probability, larger values substitute more freely.

    Examples
    --------
    >>> sub = Substituter(["Bi", "Sb", "Se", "Te", "S"])
    >>> sub.draw(("Bi", "Se"), (2, 3), np.random.default_rng(0))
    ('Bi', 'S')
    """

    def __init__(self, allowed_elements: Iterable[str], temperature: float = 1.0) -> None:
        if not temperature > 0:
            raise TDDataError(f"substitution_temperature must be positive, got {temperature}")
        self.allowed_elements = frozenset(allowed_elements)
        self.temperature = float(temperature)
        self.table = substitution_table()
        self._seeds: dict[tuple[tuple[str, ...], tuple[int, ...]], list[tuple[int, ...]]] = {}
        self._cdf: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def balanced_seeds(self, elements: Sequence[str], counts: Sequence[int]) -> list[tuple[int, ...]]:
        """Charge-balanced choices of the table's species (indices), one per slot; [] when there is none.

        ``elements[i]`` occupies ``counts[i]`` sites; an element may fill several slots.
        """
        key = (tuple(elements), tuple(int(c) for c in counts))
        if key in self._seeds:
            return self._seeds[key]
        table = self.table
        options = [table.by_element.get(e, ()) for e in elements]
        weights = np.array(counts, dtype=float)
        balanced: list[tuple[int, ...]] = []
        if all(options) and math.prod(len(o) for o in options) <= _MAX_SEED_COMBINATIONS:
            for combo in itertools.product(*options):
                if abs(float(table.charge[list(combo)] @ weights)) < 1e-9:
                    balanced.append(combo)
        self._seeds[key] = balanced
        return balanced

    def candidates(self, s: int) -> tuple[np.ndarray, np.ndarray]:
        """(species indices, cumulative probabilities) that species ``s`` can become."""
        if s not in self._cdf:
            table = self.table
            col = table.lam[:, s]
            ok = np.isfinite(col) & np.array([e in self.allowed_elements for e in table.element])
            idx = np.flatnonzero(ok)
            if len(idx) == 0:
                self._cdf[s] = (np.array([s]), np.array([1.0]))
            else:
                w = np.exp((col[idx] - col[idx].max()) / self.temperature)
                self._cdf[s] = (idx, np.cumsum(w) / w.sum())
        return self._cdf[s]

    def draw(
        self, elements: Sequence[str], counts: Sequence[int], rng: np.random.Generator, *, balanced_seed: bool = True
    ) -> tuple[str, ...]:
        """One substitute element per slot: a seed species, then a substitute drawn from its column.

        The seed is a charge-balanced choice of species (:meth:`balanced_seeds`) when ``balanced_seed`` and
        one exists, otherwise any species of each slot's element: ``balanced_seed=False`` reaches, through
        the cationic species the table holds for anions (Se4+ -> Te4+), the tellurides and antimonides that
        a balanced seed (Se2-, whose column holds no Te2-) never proposes. A slot whose element the table
        does not hold keeps its element. The caller checks the result (charge balance, radii, distinct
        elements) and draws again if it is rejected.
        """
        table = self.table
        balanced = self.balanced_seeds(elements, counts) if balanced_seed else []
        if balanced:
            seed: tuple[int | None, ...] = balanced[int(rng.integers(len(balanced)))]
        else:
            seed = tuple(
                opts[int(rng.integers(len(opts)))] if opts else None
                for opts in (table.by_element.get(e, ()) for e in elements)
            )
        new = []
        for element, s in zip(elements, seed):
            if s is None:
                new.append(element)
                continue
            idx, cdf = self.candidates(s)
            pick = int(np.searchsorted(cdf, rng.uniform(), side="right"))
            new.append(table.element[int(idx[min(pick, len(idx) - 1)])])
        return tuple(new)


@lru_cache(maxsize=256)
def bond_radius_params(symbol: str) -> tuple[float, float, float]:
    """(r, k, Pauling electronegativity) of DLS: bond radius r + k * std(X), Angstrom.

    >>> r, k, x = bond_radius_params("Bi")
    >>> r > 1.0, x > 1.5
    (True, True)
    """
    from pymatgen.core import Element
    from pymatgen.core.structure_prediction.volume_predictor import bond_params

    el = Element(symbol)
    x = float(el.X) if el.X == el.X else 2.0  # elements without a Pauling value (noble gases) are not used
    if symbol in bond_params:
        return float(bond_params[symbol]["r"]), float(bond_params[symbol]["k"]), x
    radius = el.atomic_radius or el.metallic_radius  # Cf has only a metallic radius
    if not radius:
        raise TDDataError(f"no DLS bond radius, atomic or metallic radius is known for {symbol}")
    return float(radius), 0.0, x


_IMAGES = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=float)  # (27, 3)


def dls_length_scale(lattice: np.ndarray, frac_coords: np.ndarray, symbols: Sequence[str]) -> float:
    """Factor by which to scale all lengths so that the smallest distance / DLS radius sum is one.

    ``lattice`` (3, 3) should be reduced (Niggli) so that the 27 neighbouring cells hold every
    shortest contact. Pymatgen's :class:`DLSVolumePredictor` without its scaling clamp.

    >>> fcc = 2.8 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]])
    >>> round(dls_length_scale(fcc, np.array([[0, 0, 0], [0.5, 0.5, 0.5]]), ["Na", "Cl"]), 3) > 0
    True
    """
    params = np.array([bond_radius_params(s) for s in symbols])  # (N, 3)
    std_x = float(np.std(params[:, 2]))
    radius = params[:, 0] + params[:, 1] * std_x  # (N,)
    diff = frac_coords[:, None, None, :] - frac_coords[None, :, None, :] + _IMAGES[None, None]  # (N, N, 27, 3)
    dist = np.linalg.norm(diff @ lattice, axis=-1)  # (N, N, 27)
    n = len(frac_coords)
    dist[np.arange(n), np.arange(n), 13] = np.inf  # an atom and itself in the same cell
    ratio = dist / (radius[:, None, None] + radius[None, :, None])
    return 1.0 / float(ratio.min())

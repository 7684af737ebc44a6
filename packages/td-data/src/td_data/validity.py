"""CDVAE's validity tests (Xie et al., ICLR 2022), used by the filters, the generator and the metrics.

* Structural validity: the shortest interatomic distance, periodic images included, is at least
  ``cutoff`` (0.5 Angstrom) and the cell volume at least 0.1 Angstrom^3.
* Compositional validity: SMACT charge neutrality with some choice of oxidation states, plus the
  Pauling electronegativity test; a single element, and a composition made only of metals
  (alloys), pass. The stoichiometry is first divided by its greatest common divisor, and the
  charge-balance search allows ratios up to the largest count, as CDVAE does.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from td_data.record import ELEMENTS, CrystalRecord

__all__ = ["min_distance", "structure_validity", "composition_validity", "record_validity"]

_IMAGES = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=float)  # (27, 3)


def min_distance(record: CrystalRecord) -> float:
    """Shortest distance (Angstrom) between two atoms, or an atom and its own periodic image.

    All pairs and the 27 neighbouring cells are checked in one array operation; for strongly
    skewed cells the cell is Niggli-reduced first so that 27 images suffice.
    """
    lattice = record.lattice
    frac = record.frac_coords
    a, b, c, alpha, beta, gamma = record.lattice_parameters
    if min(alpha, beta, gamma) < 60 or max(alpha, beta, gamma) > 120 or max(a, b, c) > 4 * min(a, b, c):
        from pymatgen.core import Lattice

        reduced = Lattice(lattice).get_niggli_reduced_lattice()
        cart = frac @ lattice
        frac = np.mod(reduced.get_fractional_coords(cart), 1.0)
        lattice = reduced.matrix
    diff = frac[:, None, None, :] - frac[None, :, None, :] + _IMAGES[None, None, :, :]  # (N, N, 27, 3)
    dist = np.linalg.norm(diff @ lattice, axis=-1)
    n = len(frac)
    dist[np.arange(n), np.arange(n), 13] = np.inf  # an atom and itself in the same cell
    return float(dist.min())


def structure_validity(record: CrystalRecord, cutoff: float = 0.5, min_volume: float = 0.1) -> tuple[bool, str]:
    """CDVAE's structural validity, with the reason when it fails."""
    if record.volume < min_volume:
        return False, f"volume {record.volume:.3g} A^3 is below {min_volume} A^3"
    d = min_distance(record)
    if d < cutoff:
        return False, f"shortest interatomic distance {d:.3f} A is below {cutoff} A"
    return True, ""


@lru_cache(maxsize=200_000)
def _composition_valid(elements: tuple[int, ...], counts: tuple[int, ...], use_pauling: bool) -> bool:
    import smact
    from smact.screening import pauling_test

    symbols = tuple(ELEMENTS[z] for z in elements)
    if len(set(symbols)) == 1:
        return True
    if all(s in smact.metals for s in symbols):
        return True
    space = smact.element_dictionary(symbols)
    elems = [space[s] for s in symbols]
    electronegs = [e.pauling_eneg for e in elems]
    ox_combos = [e.oxidation_states or [] for e in elems]  # no known states: no neutral combination
    for ox_states in _neutral_assignments(ox_combos, counts):
        if not use_pauling:
            return True
        try:
            if pauling_test(ox_states, electronegs):
                return True
        except TypeError:  # no electronegativity data: CDVAE counts it as passing
            return True
    return False


def _neutral_assignments(ox_combos: Sequence[Sequence[int]], counts: Sequence[int]):
    """Every choice of one oxidation state per element with ``sum count * state == 0``.

    The same assignments, in the same order, as CDVAE's loop over ``itertools.product`` filtered by
    ``smact.neutral_ratios`` with the cell's own counts, but found by depth-first search that drops a
    branch as soon as the remaining elements cannot bring the charge back to zero. The plain product
    has ``prod(len(states))`` members (millions for a generated cell with ten elements, minutes of
    SMACT calls); the search visits only branches that can still be neutral.
    """
    n = len(ox_combos)
    if any(len(states) == 0 for states in ox_combos) or np.gcd.reduce(np.asarray(counts, dtype=int)) != 1:
        return  # smact.neutral_ratios only accepts counts in lowest terms (composition_validity reduces them)
    low = [c * min(states) for c, states in zip(counts, ox_combos)]
    high = [c * max(states) for c, states in zip(counts, ox_combos)]
    rest_low = list(itertools.accumulate(reversed(low)))[::-1] + [0]  # rest_low[i] = sum(low[i:])
    rest_high = list(itertools.accumulate(reversed(high)))[::-1] + [0]
    chosen: list[int] = []

    def search(i: int, charge: int):
        if i == n:
            if charge == 0:
                yield tuple(chosen)
            return
        for state in ox_combos[i]:
            total = charge + counts[i] * state
            if total + rest_low[i + 1] <= 0 <= total + rest_high[i + 1]:
                chosen.append(state)
                yield from search(i + 1, total)
                chosen.pop()

    yield from search(0, 0)


def composition_validity(atomic_numbers: Sequence[int], use_pauling_test: bool = True) -> tuple[bool, str]:
    """CDVAE's compositional validity of a cell's atoms, with the reason when it fails."""
    zs, counts = np.unique(np.asarray(atomic_numbers, dtype=int), return_counts=True)
    counts = counts // np.gcd.reduce(counts)
    ok = _composition_valid(tuple(int(z) for z in zs), tuple(int(c) for c in counts), use_pauling_test)
    if ok:
        return True, ""
    formula = "".join(f"{ELEMENTS[z]}{c if c > 1 else ''}" for z, c in zip(zs, counts))
    return False, f"{formula} is not charge-balanced with SMACT oxidation states and the Pauling test"


def record_validity(record: CrystalRecord) -> tuple[bool, bool]:
    """(structurally valid, compositionally valid) of one record."""
    return structure_validity(record)[0], composition_validity(record.atomic_numbers)[0]

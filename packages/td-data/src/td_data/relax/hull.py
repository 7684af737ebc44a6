"""Energy above the convex hull of the phases at hand, all from the same CHGNet model.

:func:`energy_above_hull` places relaxed crystals (from :func:`td_data.relax.relax_records`) on a convex
hull (pymatgen ``PhaseDiagram``) built from CHGNet energies of

* the elements: each relaxed in six prototypes (fcc, bcc, hcp, diamond, simple cubic and a crystal of
  dimers, lattice constants from covalent radii), the lowest taken; and
* the compounds of the candidate's chemical system found in ``references`` (the training data),
  relaxed with the same model.

Caveat: this is a hull of the phases at hand, not of the Materials Project. A phase that is missing
(a compound not in ``references``, an element whose ground state is none of the six prototypes, such as
alpha-boron or black phosphorus) can only make the hull higher, so ``e_above_hull`` can only be
under-estimated: a candidate looks more stable than it is, never less. CHGNet's own errors (about
30 meV/atom mean absolute error on energies) carry over to every number here. Use it to rank and
filter candidates, not as a verdict on thermodynamic stability.

Relaxed reference phases are cached on the :class:`~td_data.relax.Relaxer`, so a second call with the
same relaxer relaxes only what is new.

Examples
--------
>>> from td_data.record import CrystalRecord
>>> from td_data.relax import Relaxer, relax_records
>>> relaxer = Relaxer(threads=1)
>>> nacl = CrystalRecord([[0, 2.8, 2.8], [2.8, 0, 2.8], [2.8, 2.8, 0]], [[0, 0, 0], [0.5] * 3], ["Na", "Cl"])
>>> [hull] = energy_above_hull(relax_records([nacl], relaxer=relaxer), relaxer=relaxer)
>>> hull.e_above_hull, hull.formation_energy_per_atom < -1.5
(0.0, True)
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from td_data.exceptions import TDDataError
from td_data.record import CrystalRecord, atomic_number, symbol
from td_data.relax.relaxer import BfgsSettings, Relaxer, RelaxResult, check_optimizer, relax_records

__all__ = ["HullResult", "energy_above_hull", "elemental_prototypes", "PROTOTYPES"]

logger = logging.getLogger(__name__)

_DECIMALS = 4  # eV/atom: hull numbers are rounded to 0.1 meV/atom, above float32 noise, far below CHGNet's error
PROTOTYPES = ("fcc", "bcc", "hcp", "diamond", "sc", "dimer")
_DIMER_GAP = 2.5  # Angstrom: the least distance between neighbouring molecules in the starting dimer crystal


@dataclass(frozen=True)
class HullResult:
    """A candidate's place on the hull of the phases at hand (all energies eV/atom, same CHGNet model).

    Attributes
    ----------
    e_above_hull:
        Energy above the hull (rounded to 0.1 meV/atom, like ``hull_distance``), >= 0 (0: on the hull of
        the reference phases plus the candidate); ``None``
        when it could not be computed (``reason`` says why).
    reason:
        Why ``e_above_hull`` is ``None``; ``None`` otherwise.
    reference_phases:
        The hull phases at the candidate's composition: what it would decompose into (or, below the hull
        of the references, the phases it beats). Names are record ids, or ``"Si (diamond)"`` for the
        project's elemental prototypes.
    hull_distance:
        Signed distance to the hull of the reference phases alone: negative when the candidate lies below
        it (it would be a new stable phase among the phases at hand); ``e_above_hull = max(0, hull_distance)``.
    formation_energy_per_atom:
        Energy relative to the elemental references.
    """

    e_above_hull: float | None
    reason: str | None
    reference_phases: tuple[str, ...] = ()
    hull_distance: float | None = None
    formation_energy_per_atom: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict for a results table."""
        return {
            "e_above_hull": self.e_above_hull,
            "reason": self.reason,
            "reference_phases": list(self.reference_phases),
            "hull_distance": self.hull_distance,
            "formation_energy_per_atom": self.formation_energy_per_atom,
        }


def _radius(sym: str) -> float:
    """Covalent radius (Cordero et al., Dalton Trans. 2008, via ASE), Angstrom."""
    try:
        from ase.data import covalent_radii
    except ImportError as err:
        raise ImportError(f"elemental_prototypes needs ASE: pip install 'td-data[relax]' ({err})") from err
    return float(covalent_radii[atomic_number(sym)])


def elemental_prototypes(element: str) -> list[CrystalRecord]:
    """The starting structures of an element's reference phase: fcc, bcc, hcp, diamond, simple cubic
    (primitive cells) and a cubic crystal of dimers, with nearest neighbours at twice the covalent radius.

    >>> [(r.id, r.num_atoms) for r in elemental_prototypes("Si")]  # doctest: +NORMALIZE_WHITESPACE
    [('Si (fcc)', 1), ('Si (bcc)', 1), ('Si (hcp)', 2), ('Si (diamond)', 2), ('Si (sc)', 1), ('Si (dimer)', 2)]
    """
    z = atomic_number(element)
    d = 2.0 * _radius(element)  # nearest-neighbour distance
    fcc_cell = np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]]) / 2.0
    bcc_cell = np.array([[-1, 1, 1], [1, -1, 1], [1, 1, -1]]) / 2.0
    hcp_c = math.sqrt(8.0 / 3.0) * d
    a_dimer = d + max(1.5 * d, _DIMER_GAP)  # molecules farther apart than their bond
    cells = {
        "fcc": (d * math.sqrt(2.0) * fcc_cell, [[0, 0, 0]]),
        "bcc": (2.0 * d / math.sqrt(3.0) * bcc_cell, [[0, 0, 0]]),
        "hcp": (
            [[d, 0, 0], [-d / 2, d * math.sqrt(3.0) / 2, 0], [0, 0, hcp_c]],
            [[1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]],
        ),
        "diamond": (4.0 * d / math.sqrt(3.0) * fcc_cell, [[0, 0, 0], [0.25, 0.25, 0.25]]),
        "sc": (d * np.eye(3), [[0, 0, 0]]),
        "dimer": (a_dimer * np.eye(3), [[0, 0, 0], [d / a_dimer, 0, 0]]),
    }
    return [
        CrystalRecord(cell, frac, [z] * len(frac), id=f"{element} ({name})", source="td_data.hull:prototype")
        for name, (cell, frac) in cells.items()
    ]


def _record_key(rec: CrystalRecord) -> str:
    h = hashlib.sha256()
    for arr in (rec.lattice, rec.frac_coords):
        h.update(np.ascontiguousarray(np.round(arr, 8), dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(rec.atomic_numbers, dtype=np.int64).tobytes())
    return h.hexdigest()


def energy_above_hull(
    results: Sequence[RelaxResult],
    references: Sequence[CrystalRecord] = (),
    *,
    relaxer: Relaxer | None = None,
    progress: bool = False,
    fmax: float = 0.1,
    max_steps: int = 200,
    batch_size: int = 32,
    optimizer: str = "fire",
    workers: int = 1,
    bfgs: BfgsSettings | None = None,
) -> list[HullResult]:
    """Energy above the hull of the phases at hand for each relaxed candidate (one :class:`HullResult` each).

    Parameters
    ----------
    results:
        Relaxed candidates from :func:`td_data.relax.relax_records`, computed with the same model as
        ``relaxer``. A failed or unconverged one gets ``e_above_hull=None`` and the reason.
    references:
        Known crystals (the training data): those whose elements all belong to a candidate's chemical
        system are relaxed with ``relaxer`` and enter that candidate's hull. Their stored energies are
        not used (a hull mixes no models).
    relaxer:
        The loaded :class:`~td_data.relax.Relaxer` (default: CHGNet 0.3.0 on the CPU); it caches the
        relaxed reference phases for later calls.
    progress:
        A progress bar while the reference phases relax.
    fmax, max_steps, batch_size, optimizer, workers, bfgs:
        Relaxation settings of the reference phases (see :func:`~td_data.relax.relax_records`). The
        relaxer's cache keeps reference energies per ``(fmax, max_steps, optimizer, bfgs)``: phases relaxed
        with other settings are relaxed again, so that one hull never mixes two minimisations.

    See the module docstring for the caveat: missing phases make ``e_above_hull`` too low, never too high.
    """
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
    from pymatgen.core import Composition

    check_optimizer(optimizer, bfgs=bfgs)  # checked here too: a fully cached hull never reaches relax_records
    relaxer = relaxer if relaxer is not None else Relaxer()
    results = list(results)
    references = list(references)
    for i, res in enumerate(results):
        if not isinstance(res, RelaxResult):
            raise TDDataError(f"results must be RelaxResult objects, got {type(res).__name__} at position {i}")
        if res.energy_per_atom is not None and res.model != relaxer.name:
            raise TDDataError(
                f"result {i} ({res.initial.id!r}) has energies from {res.model!r}, the hull uses {relaxer.name!r}: "
                "relax the candidates with the same model"
            )
    for i, ref in enumerate(references):
        if not isinstance(ref, CrystalRecord):
            raise TDDataError(f"references must be CrystalRecord objects, got {type(ref).__name__} at position {i}")

    systems = [frozenset(int(z) for z in res.record.atomic_numbers) for res in results if _usable(res) is None]
    elements = sorted(set().union(*systems)) if systems else []
    relevant = [ref for ref in references if any(set(ref.atomic_numbers.tolist()) <= s for s in systems)]

    # relax what the cache does not hold yet, in one batched call
    if optimizer == "bfgs":
        bfgs = bfgs if bfgs is not None else BfgsSettings()
    settings = (float(fmax), int(max_steps), str(optimizer), bfgs)
    todo: list[tuple[tuple, CrystalRecord]] = []
    for z in elements:
        key = ("element", z, *settings)
        if key not in relaxer.reference_cache:
            todo.extend((key, proto) for proto in elemental_prototypes(symbol(z)))
    for ref in relevant:
        key = ("record", _record_key(ref), *settings)
        if key not in relaxer.reference_cache and all(k != key for k, _ in todo):
            todo.append((key, ref))
    if todo:
        logger.info("relaxing %d reference phases for the hull", len(todo))
        relaxed = relax_records(
            [rec for _, rec in todo],
            fmax=fmax,
            max_steps=max_steps,
            batch_size=batch_size,
            progress=progress,
            relaxer=relaxer,
            rmsd=False,
            optimizer=optimizer,
            workers=workers,
            bfgs=bfgs,
        )
        for (key, rec), res in zip(todo, relaxed):
            name = rec.id or rec.formula
            value = (float(res.energy_per_atom), name) if res.converged and res.energy_per_atom is not None else None
            if value is None:
                logger.info("reference phase %s left out of the hull: %s", name, res.reason)
            if key[0] == "element":
                best = relaxer.reference_cache.get(key)
                if value is not None and (best is None or value[0] < best[0]):
                    relaxer.reference_cache[key] = value
                else:
                    relaxer.reference_cache.setdefault(key, best)
            else:
                relaxer.reference_cache[key] = value

    ref_entries: dict[int, Any] = {}  # index in references -> (PDEntry, elements)
    for i, ref in enumerate(references):
        if any(set(ref.atomic_numbers.tolist()) <= s for s in systems):
            got = relaxer.reference_cache.get(("record", _record_key(ref), *settings))
            if got is not None:
                comp = Composition(ref.composition)
                ref_entries[i] = (
                    PDEntry(comp, got[0] * comp.num_atoms, name=got[1]),
                    frozenset(ref.atomic_numbers.tolist()),
                )

    diagrams: dict[frozenset[int], Any] = {}
    out: list[HullResult] = []
    for res in results:
        problem = _usable(res)
        if problem:
            out.append(HullResult(None, problem))
            continue
        system = frozenset(int(z) for z in res.record.atomic_numbers)
        missing = [symbol(z) for z in sorted(system) if relaxer.reference_cache.get(("element", z, *settings)) is None]
        if missing:
            out.append(HullResult(None, f"no elemental reference phase of {', '.join(missing)} relaxed to convergence"))
            continue
        if system not in diagrams:
            entries = []
            for z in sorted(system):
                e, name = relaxer.reference_cache[("element", z, *settings)]
                entries.append(PDEntry(Composition({symbol(z): 1}), e, name=name))
            entries.extend(entry for entry, elems in ref_entries.values() if elems <= system)
            diagrams[system] = PhaseDiagram(entries)
        pd = diagrams[system]
        comp = Composition(res.record.composition)
        entry = PDEntry(comp, float(res.energy_per_atom) * comp.num_atoms, name=res.record.id or res.record.formula)
        decomposition, distance = pd.get_decomp_and_e_above_hull(entry, allow_negative=True, check_stable=False)
        # float32 energies of the same crystal differ by ~1e-6 eV/atom between batches: round to 0.1 meV/atom
        distance = round(float(distance), _DECIMALS) + 0.0
        phases = tuple(sorted(str(e.name) for e in decomposition))
        out.append(
            HullResult(
                max(0.0, distance),
                None,
                phases,
                hull_distance=distance,
                formation_energy_per_atom=round(float(pd.get_form_energy_per_atom(entry)), _DECIMALS) + 0.0,
            )
        )
    return out


def _usable(res: RelaxResult) -> str | None:
    """Why a relaxation result cannot go on the hull, or None."""
    if res.energy_per_atom is None:
        return f"no relaxed energy: {res.reason}"
    if not res.converged:
        return f"the relaxation did not converge, its energy is not a minimum: {res.reason}"
    return None

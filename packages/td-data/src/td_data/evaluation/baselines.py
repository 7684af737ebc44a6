"""Baseline generators for the generation benchmarks: what a model must beat, scored by the same metrics.

Three baselines, each built from the training crystals only (:data:`BASELINES`):

* ``memorise``: ``n`` training crystals drawn at random, unchanged. Without replacement while ``n`` is at
  most the training set's size; beyond it, every training crystal is taken ``n // len(train)`` times and
  the remainder is drawn without replacement. Novelty 0 by construction; its coverage is the ceiling that
  memorisation reaches with ``n`` samples.
* ``random_structures``: no learning. For each draw, a training crystal's composition (same atom count)
  placed by PyXtal (Fredericks et al., Comput. Phys. Commun. 261, 107810 (2021)) in a random space group
  compatible with the composition, the cell then scaled to the training set's mean volume per atom. A
  draw tries up to ``max_group_tries`` compatible groups (uniformly, without repeats), then P1; a try fails
  when PyXtal cannot place the atoms or when the scaled cell has two atoms closer than 0.5 Angstrom
  (CDVAE's structural validity), so every crystal returned is structurally valid. Needs the
  ``td-data[baselines]`` extra (PyXtal), which works offline.
* ``prototype``: the data set's ideal prototype with training compositions. For ``perov_5``: the ideal
  cubic perovskite ABX3 (A at 0,0,0; B at 1/2,1/2,1/2; X at the face centres 1/2,1/2,0, 1/2,0,1/2 and
  0,1/2,1/2). The three most electronegative atoms (Pauling) of the composition are X, the larger
  (pymatgen's empirical atomic radius) of the other two is A. The lattice constant is that of a training
  crystal drawn at random with replacement, independently of the composition (the cube root of its volume
  per cell), so it is random and follows the training distribution. Carbon-24 (allotropes of 6 to 24 atoms)
  and MP-20 (every structure type) have no single prototype: :class:`BaselineNotApplicableError`.

Every baseline is deterministic for a seed; record ``i`` gets the id ``f"{kind}-{i:04d}"`` and a
``source`` naming the training crystal it came from. Draw ``i`` of ``random_structures`` has its own
random stream (seeded by ``(seed, i)``), so the crystals do not depend on ``n_jobs``.

>>> from td_data.record import CrystalRecord
>>> train = [CrystalRecord(4.0 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5],
...          [0, 0.5, 0.5]], ["Sr", "Ti", "O", "O", "O"], id="SrTiO3")]
>>> [r.formula for r in baseline_records("prototype", train, 2, dataset="perov5")]
['SrTiO3', 'SrTiO3']
>>> baseline_records("memorise", train, 1, dataset="perov_5")[0].source
'baseline memorise: training crystal SrTiO3'
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from functools import cache, lru_cache
from typing import NamedTuple

import numpy as np

from td_data.evaluation.datasets import dataset_key
from td_data.exceptions import BaselineNotApplicableError, EvaluationError
from td_data.record import ELEMENTS, CrystalRecord
from td_data.validity import min_distance

__all__ = [
    "BASELINES",
    "PROTOTYPE_DATASETS",
    "RandomStructures",
    "baseline_records",
    "perovskite_sites",
    "random_structures",
]

log = logging.getLogger(__name__)

#: the baselines :func:`baseline_records` builds
BASELINES = ("memorise", "random_structures", "prototype")
#: the data sets with an ideal prototype (the ``prototype`` baseline)
PROTOTYPE_DATASETS = ("perov_5",)
_NO_PROTOTYPE = {
    "carbon_24": "Carbon-24 has no single prototype: its crystals are carbon allotropes of 6 to 24 atoms per cell "
    "in many structure types",
    "mp_20": "MP-20 has no single prototype: it holds every structure type of up to 20 atoms per cell",
}
#: CDVAE's structural validity distance (Angstrom): random structures closer than this after scaling are retried
MIN_DISTANCE = 0.5
# ideal cubic perovskite: A, B, then the three X sites (fractional coordinates)
_PEROVSKITE_FRAC = np.array([[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])


def _check_n(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise EvaluationError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _draw_training(rng: np.random.Generator, n_train: int, n: int) -> np.ndarray:
    """``n`` training indices: without replacement up to ``n_train``; beyond, full passes plus a remainder."""
    full, rest = divmod(n, n_train)
    parts = [rng.permutation(n_train) for _ in range(full)]
    parts.append(rng.permutation(n_train)[:rest])
    return np.concatenate(parts)


def _name(record: CrystalRecord, index: int) -> str:
    return record.id or f"#{index}"


# ----------------------------------------------------------------------------------------------- memorise
def _memorise(train: list[CrystalRecord], n: int, seed: int) -> list[CrystalRecord]:
    picks = _draw_training(np.random.default_rng(seed), len(train), n)
    return [
        dataclasses.replace(
            train[j], id=f"memorise-{i:04d}", source=f"baseline memorise: training crystal {_name(train[j], j)}"
        )
        for i, j in enumerate(picks)
    ]


# ---------------------------------------------------------------------------------------------- prototype
@lru_cache(maxsize=1)
def _element_tables() -> tuple[np.ndarray, np.ndarray]:
    """(electronegativity, atomic radius) indexed by atomic number; NaN where pymatgen has none."""
    import warnings

    from pymatgen.core import Element

    chi, radius = np.full(len(ELEMENTS), np.nan), np.full(len(ELEMENTS), np.nan)
    with warnings.catch_warnings():  # pymatgen warns for the elements without a Pauling electronegativity
        warnings.simplefilter("ignore")
        for z in range(1, len(ELEMENTS)):
            el = Element(ELEMENTS[z])
            chi[z] = el.X
            radius[z] = np.nan if el.atomic_radius is None else float(el.atomic_radius)
    return chi, radius


def perovskite_sites(numbers: np.ndarray) -> np.ndarray:
    """The atomic numbers of ``numbers`` (m, 5) reordered as A, B, X, X, X of the ideal perovskite.

    X: the three most electronegative atoms (Pauling; none counts as least); A: the larger (empirical atomic
    radius) of the other two, the larger atomic number on a tie.

    >>> perovskite_sites(np.array([[8, 22, 8, 38, 8]])).tolist()  # O, Ti, O, Sr, O -> Sr Ti O O O
    [[38, 22, 8, 8, 8]]
    """
    chi, radius = _element_tables()
    numbers = np.asarray(numbers)
    by_chi = np.argsort(np.nan_to_num(chi[numbers], nan=-np.inf), axis=1, kind="stable")  # (m, 5) ascending
    ordered = np.take_along_axis(numbers, by_chi, axis=1)
    cations, anions = ordered[:, :2], ordered[:, 2:]
    r = np.nan_to_num(radius[cations], nan=0.0)  # (m, 2)
    first_is_a = (r[:, 0] > r[:, 1]) | ((r[:, 0] == r[:, 1]) & (cations[:, 0] >= cations[:, 1]))
    a = np.where(first_is_a, cations[:, 0], cations[:, 1])
    b = np.where(first_is_a, cations[:, 1], cations[:, 0])
    return np.column_stack([a, b, np.sort(anions, axis=1)])


def _prototype(train: list[CrystalRecord], n: int, dataset: str, seed: int) -> list[CrystalRecord]:
    if dataset not in PROTOTYPE_DATASETS:
        raise BaselineNotApplicableError(
            f"the prototype baseline needs a data set with one prototype, one of {PROTOTYPE_DATASETS}; "
            f"{_NO_PROTOTYPE.get(dataset, f'{dataset!r} has none')}"
        )
    rng = np.random.default_rng(seed)
    picks = _draw_training(rng, len(train), n)
    sizes = {train[j].num_atoms for j in set(picks.tolist())}
    if sizes != {5}:
        raise EvaluationError(
            f"the perovskite prototype needs training crystals of 5 atoms (ABX3), got {sorted(sizes)}"
        )
    numbers = perovskite_sites(np.stack([train[j].atomic_numbers for j in picks]))  # (n, 5)
    constants = np.cbrt([r.volume for r in train])  # (n_train,) Angstrom
    donors = rng.integers(len(train), size=n)
    out = []
    for i, (j, d) in enumerate(zip(picks, donors)):
        a = constants[d]
        source = (
            f"baseline prototype: ideal cubic perovskite, composition of training crystal {_name(train[j], j)}, "
            f"a = {a:.4f} A from training crystal {_name(train[d], d)}"
        )
        out.append(CrystalRecord(a * np.eye(3), _PEROVSKITE_FRAC, numbers[i], id=f"prototype-{i:04d}", source=source))
    return out


# -------------------------------------------------------------------------------------- random structures
class RandomStructures(NamedTuple):
    """The ``random_structures`` crystals and how many PyXtal tries failed on the way (all draws together)."""

    records: list[CrystalRecord]
    n_failed_tries: int


def _pyxtal():
    try:
        from pyxtal import pyxtal
        from pyxtal.symmetry import Group
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            "the random_structures baseline needs PyXtal: pip install 'td-data[baselines]'", name=err.name
        ) from err
    return pyxtal, Group


@cache
def _group(number: int):
    return _pyxtal()[1](number)


@cache
def _compatible_groups(counts: tuple[int, ...]) -> tuple[int, ...]:
    """The space groups 2..230 whose Wyckoff positions can hold ``counts`` atoms of each species."""
    return tuple(g for g in range(2, 231) if _group(g).check_compatible(list(counts))[0])


class _Draw(NamedTuple):
    index: int
    seed: int
    numbers: tuple[int, ...]
    volume_per_atom: float
    max_group_tries: int


def _random_structure(draw: _Draw) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """One random structure: (lattice, frac_coords, atomic_numbers, space group, failed tries)."""
    pyxtal, _ = _pyxtal()
    rng = np.random.default_rng([draw.seed, draw.index])
    z, counts = np.unique(draw.numbers, return_counts=True)
    species, counts = [ELEMENTS[int(e)] for e in z], [int(c) for c in counts]
    groups = rng.permutation(_compatible_groups(tuple(counts)))[: draw.max_group_tries].tolist()
    failed = 0
    for g in groups + [1] * 5:
        crystal = pyxtal()
        try:
            crystal.from_random(3, _group(g), species, counts, max_count=2, random_state=int(rng.integers(2**62)))
            structure = crystal.to_pymatgen()
        except Exception as err:  # PyXtal raises RuntimeError and its own errors when it cannot place the atoms
            log.debug("pyxtal failed in group %d for %s: %s", g, species, err)
            failed += 1
            continue
        lattice = structure.lattice.matrix * np.cbrt(draw.volume_per_atom * len(structure) / structure.volume)
        frac = structure.frac_coords
        numbers = np.array([site.specie.Z for site in structure])
        if min_distance(CrystalRecord(lattice, frac, numbers)) < MIN_DISTANCE:
            failed += 1
            continue
        return lattice, frac, numbers, g, failed
    raise EvaluationError(
        f"PyXtal could not build a structurally valid crystal of {dict(zip(species, counts))} in "
        f"{len(groups)} random space groups nor in P1 ({failed} tries)"
    )


def _map_draws(draws: list[_Draw], n_jobs: int, progress: Callable[[int, int], None] | None) -> list:
    if n_jobs > 1 and len(draws) >= 4 * n_jobs:
        import multiprocessing

        for counts in {tuple(np.unique(d.numbers, return_counts=True)[1].tolist()) for d in draws}:
            _compatible_groups(counts)  # built before the fork, so the workers inherit the space groups
        pool = multiprocessing.get_context().Pool(n_jobs)
        results = pool.imap(_random_structure, draws, chunksize=max(1, len(draws) // (16 * n_jobs)))
    else:
        pool, results = None, map(_random_structure, draws)
    out = []
    try:
        for res in results:
            out.append(res)
            if progress is not None:
                progress(len(out), len(draws))
    finally:
        if pool is not None:
            pool.terminate()
    return out


def random_structures(
    train: Sequence[CrystalRecord],
    n: int,
    *,
    seed: int = 0,
    max_group_tries: int = 5,
    n_jobs: int | None = 1,
    progress: Callable[[int, int], None] | None = None,
) -> RandomStructures:
    """The ``random_structures`` baseline (module docstring) with its count of failed PyXtal tries.

    ``n_jobs`` worker processes (``None``: every CPU) share the draws; the crystals do not depend on it.
    ``progress(done, total)`` is called after each crystal.
    """
    train = _check_train(train)
    n = _check_n("n", n, 1)
    seed = _check_n("seed", seed, 0)
    max_group_tries = _check_n("max_group_tries", max_group_tries, 0)
    n_jobs = (os.cpu_count() or 1) if n_jobs is None else _check_n("n_jobs", n_jobs, 1)
    _pyxtal()
    volume_per_atom = float(np.mean([r.volume / r.num_atoms for r in train]))
    picks = _draw_training(np.random.default_rng(seed), len(train), n)
    draws = [
        _Draw(i, seed, tuple(train[j].atomic_numbers.tolist()), volume_per_atom, max_group_tries)
        for i, j in enumerate(picks)
    ]
    results = _map_draws(draws, n_jobs, progress)
    records = []
    for i, (j, (lattice, frac, numbers, group, failed)) in enumerate(zip(picks, results)):
        source = (
            f"baseline random_structures: composition of training crystal {_name(train[j], j)} placed by PyXtal "
            f"in space group {group}, scaled to {volume_per_atom:.3f} A^3/atom ({failed} failed tries)"
        )
        records.append(CrystalRecord(lattice, frac, numbers, id=f"random_structures-{i:04d}", source=source))
    n_failed = sum(res[4] for res in results)
    log.info("random_structures: %d crystals, %d failed PyXtal tries", n, n_failed)
    return RandomStructures(records, n_failed)


# ------------------------------------------------------------------------------------------------- entry
def _check_train(train: Sequence[CrystalRecord]) -> list[CrystalRecord]:
    train = list(train)
    if not train:
        raise EvaluationError("the training set must hold at least one crystal, got 0")
    bad = next((r for r in train if not isinstance(r, CrystalRecord)), None)
    if bad is not None:
        raise EvaluationError(f"training crystals must be CrystalRecords, got {type(bad).__name__}")
    return train


def baseline_records(
    kind: str,
    train_records: Sequence[CrystalRecord],
    n: int,
    *,
    dataset: str,
    seed: int = 0,
    n_jobs: int | None = 1,
    progress: Callable[[int, int], None] | None = None,
) -> list[CrystalRecord]:
    """``n`` crystals of the baseline ``kind`` (one of :data:`BASELINES`) built from ``train_records``.

    Parameters
    ----------
    dataset:
        The benchmark data set (``"perov_5"`` or its command-line name ``"perov5"``, ...,
        :func:`~td_data.evaluation.dataset_key`); it picks the prototype.
    seed:
        The same seed gives the same crystals.
    n_jobs, progress:
        For ``random_structures`` (the slow one): :func:`random_structures`.

    Raises
    ------
    EvaluationError
        An unknown ``kind``, ``n < 1``, an empty training set.
    BenchmarkDataError
        An unknown ``dataset``.
    BaselineNotApplicableError
        ``prototype`` for a data set without one prototype (the message says why).
    """
    if kind not in BASELINES:
        raise EvaluationError(f"kind must be one of {BASELINES}, got {kind!r}")
    key = dataset_key(dataset)
    train = _check_train(train_records)
    n = _check_n("n", n, 1)
    seed = _check_n("seed", seed, 0)
    if kind == "memorise":
        return _memorise(train, n, seed)
    if kind == "prototype":
        return _prototype(train, n, key, seed)
    return random_structures(train, n, seed=seed, n_jobs=n_jobs, progress=progress).records

"""Fingerprints of whole crystals, as CDVAE compares them: structure (CrystalNN "ops", site average) and
composition (Magpie), for many crystals at once, in a process pool, with an optional cache.

The structure fingerprint comes from :mod:`td_data.fingerprint.crystalnn` (the default "fast" path, the
same numbers as matminer to floating-point rounding) or from matminer's ``CrystalNNFingerprint`` site by
site ("matminer"); the composition fingerprint from matminer's Magpie ``ElementProperty``. A crystal whose
fingerprint fails gets ``ok=False`` and NaN rows: the generation metrics count it invalid, as CDVAE does.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from td_data.exceptions import TDDataError
from td_data.record import CrystalRecord, symbol
from td_physics.files import replace_durably, temp_sibling

__all__ = [
    "STRUCTURE_FINGERPRINT",
    "STRUCTURE_FINGERPRINTS",
    "Fingerprints",
    "content_hash",
    "fingerprints",
]

log = logging.getLogger(__name__)

_CACHE_FORMAT = "td-data.fingerprints.v1"
STRUCTURE_FINGERPRINTS = ("fast", "matminer")
# Default path for the structure fingerprint: "fast" (td_data.fingerprint.crystalnn) or "matminer"
# (CrystalNNFingerprint site by site; about 20x slower, the same numbers to rounding).
STRUCTURE_FINGERPRINT = "fast"


@dataclass(frozen=True, eq=False)
class Fingerprints:
    """Fingerprints of ``n`` crystals, in input order.

    ``structure`` (n, 61): site-averaged CrystalNN "ops" fingerprints; ``composition`` (n, 132):
    Magpie vectors (unscaled); ``ok`` (n,): False where featurisation failed (those rows are NaN).
    """

    structure: np.ndarray
    composition: np.ndarray
    ok: np.ndarray

    def __len__(self) -> int:
        return len(self.ok)


_SITE_FEATURISER: Any = None
_COMP_FEATURISER: Any = None


def _site_featuriser() -> Any:
    """matminer's CrystalNNFingerprint "ops", built once per process (the "matminer" path)."""
    global _SITE_FEATURISER
    if _SITE_FEATURISER is None:
        from matminer.featurizers.site.fingerprint import CrystalNNFingerprint

        _SITE_FEATURISER = CrystalNNFingerprint.from_preset("ops")
    return _SITE_FEATURISER


def _comp_featuriser() -> Any:
    """matminer's Magpie ElementProperty, built once per process."""
    global _COMP_FEATURISER
    if _COMP_FEATURISER is None:
        from matminer.featurizers.composition.composite import ElementProperty

        _COMP_FEATURISER = ElementProperty.from_preset("magpie")
    return _COMP_FEATURISER


def _dims() -> tuple[int, int]:
    from td_data.fingerprint.crystalnn import FEATURE_LABELS

    return len(FEATURE_LABELS), len(_comp_featuriser().feature_labels())


def _structure_path(structure_fingerprint: str | None) -> str:
    path = STRUCTURE_FINGERPRINT if structure_fingerprint is None else structure_fingerprint
    if path not in STRUCTURE_FINGERPRINTS:
        raise TDDataError(f"structure_fingerprint must be one of {STRUCTURE_FINGERPRINTS}, got {path!r}")
    return path


def _featurise_cell(cell: tuple) -> tuple[np.ndarray, np.ndarray] | str:
    """(structure fingerprint, composition fingerprint) of one cell, or the error text.

    ``cell``: (lattice, frac_coords, atomic_numbers[, structure_fingerprint]), the last "fast"
    (:func:`td_data.fingerprint.crystalnn.site_fingerprints`, the default) or "matminer"
    (``CrystalNNFingerprint.featurize`` site by site); both average over the sites.
    """
    from pymatgen.core import Composition, Lattice, Structure

    lattice, frac, numbers = cell[:3]
    structure_fingerprint = cell[3] if len(cell) > 3 else "fast"
    comp_fp = _comp_featuriser()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if structure_fingerprint == "fast":
                from td_data.fingerprint.crystalnn import site_average, site_fingerprints

                struct = site_average(site_fingerprints(lattice, frac, numbers))
                # the composition the matminer path reads off the Structure: one atom per site,
                # elements in order of first appearance
                counts: dict[str, float] = {}
                for z in numbers.tolist():
                    counts[symbol(z)] = counts.get(symbol(z), 0.0) + 1.0
                composition = Composition(counts)
            else:
                site_fp = _site_featuriser()
                structure = Structure(Lattice(lattice), numbers.tolist(), frac)
                sites = np.array([site_fp.featurize(structure, i) for i in range(len(structure))], dtype=float)
                struct = sites.mean(axis=0)
                composition = Composition(structure.composition.as_dict())
            comp = np.array(comp_fp.featurize(composition), dtype=float)
    except Exception as err:  # any featurisation error makes the crystal invalid, as in CDVAE
        return f"{type(err).__name__}: {err}"
    return struct, comp  # (61,), (132,)


def content_hash(record: CrystalRecord) -> str:
    """Hex digest identifying a crystal by its cell, coordinates and species (not id or labels)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(record.lattice, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(record.frac_coords, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(record.atomic_numbers, dtype=np.int64).tobytes())
    return h.hexdigest()[:32]


def _featuriser_version(structure_fingerprint: str = "fast") -> str:
    """Tag of cache entries: the format, the structure-fingerprint path that made them, versions."""
    from importlib.metadata import version

    from td_data.fingerprint.crystalnn import FINGERPRINT_VERSION

    tag = f"{_CACHE_FORMAT} CrystalNN-ops[{structure_fingerprint}]+magpie"
    if structure_fingerprint == "fast":
        tag += f" td_data.fingerprint={FINGERPRINT_VERSION} scipy={version('scipy')}"
    return f"{tag} matminer={version('matminer')} pymatgen={version('pymatgen')}"


def _load_cache(path: Path, version: str) -> dict[str, tuple[np.ndarray, np.ndarray, bool]]:
    if not path.exists():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["version"]) != version:
                log.warning("fingerprint cache %s was made by %s; ignoring it", path, data["version"])
                return {}
            keys, struct, comp, ok = data["keys"], data["structure"], data["composition"], data["ok"]
    except (OSError, KeyError, ValueError) as err:
        log.warning("fingerprint cache %s could not be read (%s); ignoring it", path, err)
        return {}
    return {str(k): (s, c, bool(o)) for k, s, c, o in zip(keys, struct, comp, ok)}


def _save_cache(path: Path, entries: dict[str, tuple[np.ndarray, np.ndarray, bool]], version: str) -> None:
    keys = sorted(entries)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path, suffix=".tmp.npz")
    try:
        np.savez_compressed(
            tmp,
            version=np.array(version),
            keys=np.array(keys),
            structure=np.stack([entries[k][0] for k in keys]),
            composition=np.stack([entries[k][1] for k in keys]),
            ok=np.array([entries[k][2] for k in keys], dtype=bool),
        )
        replace_durably(tmp, path)  # atomic: readers never see half a file
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _run_featurisation(cells: list, n_jobs: int) -> Iterator:
    """The fingerprints of ``cells``, in order, as they come (a process pool for ``n_jobs`` > 1)."""
    if n_jobs <= 1 or len(cells) < 4 * n_jobs:
        yield from map(_featurise_cell, cells)
        return
    import multiprocessing

    # built before the fork, so forked workers inherit them instead of importing matminer again
    _comp_featuriser()
    if any(len(c) > 3 and c[3] == "matminer" for c in cells):
        _site_featuriser()
    else:
        import pymatgen.core.local_env  # noqa: F401  (the fast path's fallback for a few sites)

        from td_data.fingerprint.crystalnn import _element_tables

        _element_tables()
    chunksize = max(1, len(cells) // (8 * n_jobs))
    with multiprocessing.get_context().Pool(n_jobs) as pool:
        yield from pool.imap(_featurise_cell, cells, chunksize=chunksize)  # imap keeps the input order


def fingerprints(
    records: Sequence[CrystalRecord],
    *,
    n_jobs: int | None = None,
    cache: str | os.PathLike | None = None,
    structure_fingerprint: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    checkpoint_seconds: float = 60.0,
) -> Fingerprints:
    """Structure (CrystalNN "ops", site average) and composition (Magpie) fingerprints.

    Parameters
    ----------
    records:
        The crystals; identical crystals are featurised once.
    n_jobs:
        Worker processes; ``None`` uses every CPU (``os.cpu_count()``), 1 runs in this process.
        Results do not depend on it.
    cache:
        Optional ``.npz`` file. Entries are keyed by :func:`content_hash` and tagged with the
        structure-fingerprint path and the matminer and pymatgen (and, for "fast", scipy)
        versions; a file with another tag is ignored. Missing crystals are featurised and the file
        is rewritten (atomically) with the old and the new entries: every ``checkpoint_seconds`` while
        they are computed, at the end, and when the call stops early (an interrupt, an error), so that
        an interrupted run resumes with what was done.
    structure_fingerprint:
        "fast" (:mod:`td_data.fingerprint.crystalnn`) or "matminer" (``CrystalNNFingerprint`` site by site);
        ``None`` uses :data:`STRUCTURE_FINGERPRINT` ("fast"). Both give the same numbers to
        floating-point rounding.
    progress:
        ``progress(done, total)`` after each crystal featurised (``total``: those not in the cache).
    checkpoint_seconds:
        Seconds between writes of ``cache`` while featurising (no effect without a cache).

    Failures (any exception from the featurisers) give ``ok=False`` and NaN rows, and are logged.
    """
    records = list(records)
    n_jobs = (os.cpu_count() or 1) if n_jobs is None else int(n_jobs)
    if n_jobs < 1:
        raise TDDataError(f"n_jobs must be a positive number of processes or None, got {n_jobs}")
    if (
        isinstance(checkpoint_seconds, bool)
        or not isinstance(checkpoint_seconds, (int, float))
        or not (checkpoint_seconds > 0)
    ):
        raise TDDataError(f"checkpoint_seconds must be a number of seconds > 0, got {checkpoint_seconds!r}")
    method = _structure_path(structure_fingerprint)
    version = _featuriser_version(method)
    keys = [content_hash(r) for r in records]
    path = Path(cache) if cache is not None else None
    known = _load_cache(path, version) if path is not None else {}
    todo: dict[str, CrystalRecord] = {}
    for key, rec in zip(keys, records):
        if key not in known and key not in todo:
            todo[key] = rec
    if todo:
        log.info("featurising %d crystals with %d process(es)", len(todo), n_jobs)
        cells = [(r.lattice.copy(), r.frac_coords.copy(), r.atomic_numbers.copy(), method) for r in todo.values()]
        n_struct, n_comp = _dims()
        saved, last_save, total = len(known), time.monotonic(), len(cells)
        try:
            for done, ((key, rec), res) in enumerate(zip(todo.items(), _run_featurisation(cells, n_jobs)), 1):
                if isinstance(res, str):
                    log.warning("fingerprint of %r failed, counted invalid: %s", rec, res)
                    known[key] = (np.full(n_struct, np.nan), np.full(n_comp, np.nan), False)
                else:
                    known[key] = (res[0], res[1], True)
                if progress is not None:
                    progress(done, total)
                if path is not None and time.monotonic() - last_save >= checkpoint_seconds:
                    _save_cache(path, known, version)
                    saved, last_save = len(known), time.monotonic()
                    log.info("fingerprint cache %s: %d of %d new crystals written", path, done, total)
        finally:  # finished, interrupted or failed: keep what was computed
            if path is not None and len(known) > saved:
                _save_cache(path, known, version)
    if not records:
        n_struct, n_comp = _dims()
        return Fingerprints(np.zeros((0, n_struct)), np.zeros((0, n_comp)), np.zeros(0, dtype=bool))
    struct = np.stack([known[k][0] for k in keys])  # (n, 61)
    comp = np.stack([known[k][1] for k in keys])  # (n, 132)
    ok = np.array([known[k][2] for k in keys], dtype=bool)
    for arr in (struct, comp, ok):
        arr.setflags(write=False)
    return Fingerprints(struct, comp, ok)

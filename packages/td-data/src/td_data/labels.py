"""Physics labels for crystal records: batched, parallel, resumable, with quarantine.

:func:`label_records` runs :func:`td_physics.classify.classify_structure` on every record that
needs it, in a pool of worker processes, and returns new records whose ``labels`` carry the
topological class, the Z2 indices or Chern number, the gaps, the ``confidence`` of the variant
ensemble and the labeller and its version (``label_source``).

* Labels supplied by the user win: a record that already has a ``topo_class`` whose
  ``label_source`` is not this labeller keeps it untouched (a column from a topological
  materials database or a DFT study). Next come the user's own Hamiltonians: ``models`` maps a
  record id to a tight-binding model (for example ``TightBindingModel.from_wannier90``), which is
  classified directly (:func:`td_physics.classify.classify_model`) instead of by the
  universal-table ensemble.
* Resumable: with ``store_path``, records already labelled in that HDF5 store (same id and the same
  crystal: species, cell and positions) are taken from it and not recomputed; a record whose crystal
  changed under the same id is labelled again. The store is rewritten atomically with every label so
  far at most every ``checkpoint_seconds`` while the work goes on, when the work stops on an error or
  an interrupt, and at the end, so a killed run loses at most that much work.
* One failing record never loses the others: it is quarantined with its reason.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from td_data.readers import Quarantined
from td_data.record import CrystalRecord

__all__ = ["LabelResult", "label_records", "LABELLER_PREFIX"]

logger = logging.getLogger(__name__)

LABELLER_PREFIX = "td-physics universal tight binding"


@dataclass(frozen=True)
class LabelResult:
    """Labelled records (input order, quarantined ones left out) and what could not be labelled."""

    records: tuple[CrystalRecord, ...]
    quarantined: tuple[Quarantined, ...]
    computed: int
    reused: int
    user_labelled: int


def _limit_blas_threads(n: int) -> None:
    """Worker initializer: ``n`` BLAS threads per worker process.

    Each worker's ``eigvalsh`` calls are small (tens to hundreds of orbitals); with the BLAS default
    of one thread per core, two workers on two cores oversubscribe them and run 2-4x slower than two
    single-threaded workers (benchmarks/labeller_throughput.py).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn (matminer)
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(n)
        return
    threadpool_limits(limits=n, user_api="blas")


def _user_labelled(record: CrystalRecord) -> bool:
    source = str(record.labels.get("label_source", ""))
    return "topo_class" in record.labels and not source.startswith(LABELLER_PREFIX)


class _RecordTimeout(BaseException):
    """Raised in a worker by SIGALRM when one record passes ``timeout`` (a BaseException, so the labeller's own
    ``except Exception`` handlers cannot swallow it)."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise _RecordTimeout


def _classify_one(record: CrystalRecord, options: dict[str, Any]) -> tuple[str, dict[str, Any] | None, str]:
    try:
        from td_physics.classify import classify_structure

        # the record's own moments (magCIF, pymatgen magmom, POSCAR MAGMOM); a "magnetic_moments" label is the
        # older way of giving them and is read when the record has none
        moments = record.magmoms if record.magmoms is not None else record.labels.get("magnetic_moments")
        result = classify_structure(
            record.lattice, record.frac_coords, record.atomic_numbers, magnetic_moments=moments, **options
        )
        return record.id, result.as_labels(), ""
    except Exception as err:  # noqa: BLE001 - every failure is quarantined with its reason
        return record.id, None, f"{type(err).__name__}: {err}"


def _label_one(args: tuple[CrystalRecord, dict[str, Any], float | None]) -> tuple[str, dict[str, Any] | None, str]:
    """Worker: (id, labels or None, error reason). Never raises, so one record cannot stop a pool.

    With a ``timeout`` (seconds) a SIGALRM timer interrupts the labeller (at its next Python bytecode; a
    long LAPACK call finishes first) and the record fails with reason ``"timeout: ..."``.
    """
    record, options, timeout = args
    if not timeout:
        return _classify_one(record, options)
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, timeout)
            return _classify_one(record, options)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _RecordTimeout:
        return record.id, None, f"timeout: no answer within {timeout:g} s"
    finally:
        signal.signal(signal.SIGALRM, previous)


def _same_crystal(a: CrystalRecord, b: CrystalRecord, tol: float = 1e-6) -> bool:
    """Whether two records hold the same crystal: species in the same order, the same cell and the same positions
    (fractional, up to whole lattice vectors) to ``tol``."""
    if a.num_atoms != b.num_atoms or not np.array_equal(a.atomic_numbers, b.atomic_numbers):
        return False
    if not np.allclose(a.lattice, b.lattice, rtol=0.0, atol=tol):
        return False
    d = np.asarray(a.frac_coords) - np.asarray(b.frac_coords)
    return bool(np.allclose(d - np.rint(d), 0.0, atol=tol))


def label_records(
    records: Sequence[CrystalRecord],
    *,
    workers: int | None = None,
    store_path: str | os.PathLike[str] | None = None,
    chunksize: int = 4,
    progress: Callable[[int, int], None] | None = None,
    models: Mapping[str, Any] | None = None,
    timeout: float | None = None,
    checkpoint_seconds: float | None = 60.0,
    **classify_options: Any,
) -> LabelResult:
    """Label ``records`` with the structure labeller; see the module docstring.

    ``workers`` processes (default: the CPU count; 1 runs in this process); ``progress(done,
    total)`` is called as results arrive; ``timeout`` (seconds, POSIX only) gives up on a record that
    takes longer and quarantines it with reason ``"timeout: ..."`` (a badly generated cell can take
    minutes); ``checkpoint_seconds`` (with ``store_path``; ``None``: only at the end) is how often the
    labels so far are written to the store; ``classify_options`` go to ``classify_structure``
    (``variants``, ``gap_mesh``, ``metal_gap``, ``dimension``, ``electric_field``).
    """
    if timeout is not None and not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a number of seconds > 0 or None, got {timeout!r}")
    if timeout is not None and not hasattr(signal, "setitimer"):
        raise ValueError("timeout needs POSIX interval timers (signal.setitimer), which this platform lacks")
    if checkpoint_seconds is not None and not (
        isinstance(checkpoint_seconds, (int, float)) and math.isfinite(checkpoint_seconds) and checkpoint_seconds > 0
    ):
        raise ValueError(f"checkpoint_seconds must be a number of seconds > 0 or None, got {checkpoint_seconds!r}")
    from td_data.store import CrystalStore, write_store

    previous: dict[str, CrystalRecord] = {}
    if store_path is not None and Path(store_path).exists():
        with CrystalStore.open(store_path) as store:
            previous = {r.id: r for r in store.read_all() if "topo_class" in r.labels}
    todo: list[CrystalRecord] = []
    out: dict[str, CrystalRecord] = {}
    user = reused = 0
    for rec in records:
        if _user_labelled(rec):
            out[rec.id] = rec
            user += 1
        elif rec.id in previous and _same_crystal(rec, previous[rec.id]):
            out[rec.id] = rec.replace(labels={**rec.labels, **previous[rec.id].labels})
            reused += 1
        else:
            todo.append(rec)
    quarantined: list[Quarantined] = []
    models = dict(models or {})
    if models:
        from td_physics.classify import classify_model

        for rec in [r for r in todo if r.id in models]:
            try:
                labels = classify_model(models[rec.id], source=f"user model for {rec.id}").as_labels()
                out[rec.id] = rec.with_labels(**labels)
            except ValueError as err:
                quarantined.append(Quarantined(rec.id, rec.source or rec.id, f"its user model failed: {err}"))
        todo = [r for r in todo if r.id not in models]
    jobs = [(rec, classify_options, timeout) for rec in todo]
    by_id = {rec.id: rec for rec in todo}
    n_workers = workers or os.cpu_count() or 1
    # the timer needs the main thread: called from another thread, a timed run goes to one worker process
    in_process_ok = timeout is None or threading.current_thread() is threading.main_thread()
    if (n_workers <= 1 or len(jobs) <= 1) and in_process_ok:
        results = map(_label_one, jobs)
        pool = None
    else:
        pool = ProcessPoolExecutor(max_workers=n_workers, initializer=_limit_blas_threads, initargs=(1,))
        results = pool.map(_label_one, jobs, chunksize=chunksize)

    def save() -> None:
        if store_path is not None:
            write_store(store_path, [out[r.id] for r in records if r.id in out], overwrite=True)

    last_save = time.monotonic()
    finished = False
    try:
        for done, (rid, labels, reason) in enumerate(results, 1):
            if labels is None:
                quarantined.append(Quarantined(rid, by_id[rid].source or rid, reason))
            else:
                out[rid] = by_id[rid].with_labels(**labels)
            if progress is not None:
                progress(done, len(jobs))
            if checkpoint_seconds is not None and time.monotonic() - last_save >= checkpoint_seconds:
                save()
                last_save = time.monotonic()
        finished = True
    finally:
        if pool is not None:
            pool.shutdown(wait=finished, cancel_futures=not finished)
        if not finished:  # an error or an interrupt: keep what is done for the rerun
            save()
    labelled = tuple(out[r.id] for r in records if r.id in out)
    save()
    logger.info(
        "labelled %d records (%d computed, %d reused, %d user labels), %d quarantined",
        len(labelled),
        len(todo) - len(quarantined),
        reused,
        user,
        len(quarantined),
    )
    computed = len(labelled) - reused - user
    return LabelResult(labelled, tuple(quarantined), computed, reused, user)

"""Command line of :mod:`td_physics.dft`: DFT verification of a list of crystals, one result file per
crystal (resumable, one crystal per SLURM array task), and the merge of the result files.

::

    python -m td_physics.dft run --input crystals.json --output-dir results/ [--index I]
        [--settings settings.json] [--no-spin-orbit] [--timeout SECONDS] [--retry-failed] [--workers N]
    python -m td_physics.dft merge results/ --input crystals.json --output results.json [--allow-missing]

Input (:func:`write_crystals_file` writes it)::

    {"format": "td-physics.dft-crystals", "version": 1,
     "crystals": [{"id": "si", "lattice": [[...], [...], [...]],   # (3, 3) Angstrom, rows are vectors
                   "frac_coords": [[...], ...],                      # (N, 3) reduced coordinates
                   "atomic_numbers": [14, 14],                       # (N,)
                   "magmoms": [0.0, 0.0]}, ...]}                     # optional, (N,) Bohr magnetons

(``format`` and ``version`` are optional when reading.)

``run`` computes crystal ``I`` (``--index``, else ``$SLURM_ARRAY_TASK_ID``, else every crystal with a
progress bar; ``--workers N`` computes N of them at once, each in its own process) and writes
``OUTPUT_DIR/result-IIIIII.json`` atomically: ``{"index": I, "id": ..., **DFTResult.to_dict()}``. A valid
result file that is already there is skipped, so a resubmitted job array only does what is missing; a
corrupt one, or one for another crystal or other settings (a newer td-physics that added a setting counts:
its default may change the answer), is redone. A crystal that cannot be computed (malformed arrays, a
calculation that raised, a child process that died, the ``--timeout`` limit) gets a result file with
``converged: false`` and the reason, and the others go on. Exit status: 0 when every requested crystal has
a result file, 2 for an unusable input or settings file or a bad argument, 3 when the ``td-physics[dft]``
extra (GPAW and its setups) is missing (then no result is written, so that a later run computes them).

``merge`` reads the result files, checks each against the input (index and id), and writes
``{"n_crystals", "results": [... in input order ...], "missing": [indices], ...}`` atomically;
exit status 1 when results are missing (unless ``--allow-missing``), 2 for an unusable input file.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> path = write_crystals_file(folder / "crystals.json", [{"id": "si",
...     "lattice": [[0, 2.715, 2.715], [2.715, 0, 2.715], [2.715, 2.715, 0]],
...     "frac_coords": [[0, 0, 0], [0.25, 0.25, 0.25]], "atomic_numbers": [14, 14]}])
>>> [c["id"] for c in read_crystals_file(path)]
['si']
>>> result_file_name(7)
'result-000007.json'
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from td_physics.dft._gpaw import DFTUnavailableError
from td_physics.dft.core import DFTInputError, DFTResult, DFTSettings, _formula, dft_invariants
from td_physics.exceptions import FileFormatError
from td_physics.files import atomic_write

__all__ = [
    "CRYSTALS_FORMAT",
    "RunSummary",
    "read_crystals_file",
    "write_crystals_file",
    "result_file_name",
    "run_crystals",
    "merge_results",
    "main",
]

logger = logging.getLogger(__name__)

CRYSTALS_FORMAT = "td-physics.dft-crystals"
RESULTS_FORMAT = "td-physics.dft-results"
_REQUIRED = ("id", "lattice", "frac_coords", "atomic_numbers")
_OPTIONAL = ("magmoms",)
_OWN_KEYS = ("index", "id")  # what a result file holds beside DFTResult.to_dict()
_KILL_GRACE_S = 5.0  # SIGTERM, then this long, then SIGKILL


# ----------------------------------------------------------------------------------------------------
# the crystals file


def _plain(value: Any, where: str) -> Any:
    """``value`` as JSON data (numpy arrays and scalars become lists and numbers)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise FileFormatError(f"crystal values must be finite numbers, got {value!r} in {where}")
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise FileFormatError(
        f"crystal values must be numbers, text or lists of them, got {type(value).__name__} in {where}"
    )


def _check_crystal_shape(crystal: Any, where: str) -> str | None:
    """Why the record cannot be a crystal (None when its keys and array shapes are right)."""
    if not isinstance(crystal, Mapping):
        return f"a crystal must be a JSON object, got {type(crystal).__name__} at {where}"
    missing = [k for k in _REQUIRED if k not in crystal]
    if missing:
        return f"a crystal must have the keys {list(_REQUIRED)}, {where} lacks {missing}"
    unknown = sorted(set(crystal) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        return f"a crystal may only have the keys {list(_REQUIRED + _OPTIONAL)}, {where} has {unknown}"
    return None


def _check_id(crystal: Mapping[str, Any], where: str) -> str:
    cid = crystal.get("id") if isinstance(crystal, Mapping) else None
    if not isinstance(cid, str) or not cid:
        raise FileFormatError(f"every crystal needs a non-empty text id, got {cid!r} at {where}")
    return cid


def write_crystals_file(path: str | os.PathLike[str], crystals: Iterable[Mapping[str, Any]]) -> Path:
    """Write ``crystals`` (mappings with ``id``, ``lattice`` (3, 3) Angstrom, ``frac_coords`` (N, 3),
    ``atomic_numbers`` (N,) and optionally ``magmoms`` (N,); numpy arrays are fine) as the input file
    of ``python -m td_physics.dft run``. Ids must be unique non-empty text; the shapes are checked.
    Written atomically with the user's umask; returns the path."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, crystal in enumerate(crystals):
        where = f"crystals[{i}]"
        why = _check_crystal_shape(crystal, where)
        if why is not None:
            raise FileFormatError(why)
        cid = _check_id(crystal, where)
        if cid in seen:
            raise FileFormatError(f"crystal ids must be unique, got {cid!r} twice")
        seen.add(cid)
        record = {k: _plain(crystal[k], f"{where}.{k}") for k in _REQUIRED + _OPTIONAL if k in crystal}
        why = _array_problem(record)
        if why is not None:
            raise FileFormatError(f"{why} at {where} (id {cid!r})")
        out.append(record)
    path = Path(path)
    text = json.dumps({"format": CRYSTALS_FORMAT, "version": 1, "crystals": out}, indent=1) + "\n"
    _write_text(path, text)
    logger.info("wrote %d crystal(s) to %s", len(out), path)
    return path


def _array_problem(record: Mapping[str, Any]) -> str | None:
    """Shape rules of the crystal arrays (the writer refuses; the reader leaves them to the result)."""
    import numpy as np

    try:
        lattice = np.asarray(record["lattice"], dtype=float)
        frac = np.asarray(record["frac_coords"], dtype=float)
        numbers = np.asarray(record["atomic_numbers"])
    except (TypeError, ValueError) as err:
        return f"lattice, frac_coords and atomic_numbers must be numeric arrays ({err})"
    if lattice.shape != (3, 3):
        return f"lattice must have shape (3, 3), got {lattice.shape}"
    if frac.ndim != 2 or frac.shape[1:] != (3,) or len(frac) == 0:
        return f"frac_coords must have shape (N, 3) with N >= 1, got {frac.shape}"
    if numbers.shape != (len(frac),) or not np.issubdtype(numbers.dtype, np.integer):
        return f"atomic_numbers must be N = {len(frac)} whole numbers, got {numbers.tolist()!r}"
    magmoms = record.get("magmoms")
    if magmoms is not None:
        try:
            m = np.asarray(magmoms, dtype=float)
        except (TypeError, ValueError):
            return f"magmoms must be N numbers, got {magmoms!r}"
        if m.shape != (len(frac),):
            return f"magmoms must have shape (N,) = ({len(frac)},), got {m.shape}"
    return None


def read_crystals_file(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The crystal records of an input file, in order. An unusable file (not JSON, no ``crystals``
    list, a record without a text id, a repeated id, another format) raises
    :class:`~td_physics.exceptions.FileFormatError`; a record with wrong keys or arrays is returned as
    it is, and ``run`` gives it a result that says why."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise FileFormatError(f"the crystals file must exist, got {str(path)!r}") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FileFormatError(f"the crystals file must be readable JSON, got {str(path)!r}: {err}") from err
    if not isinstance(data, dict) or not isinstance(data.get("crystals"), list):
        raise FileFormatError(
            f"the crystals file must be a JSON object with a 'crystals' list, got {type(data).__name__}"
            f"{'' if not isinstance(data, dict) else ' with keys ' + repr(sorted(data))} in {str(path)!r}"
        )
    fmt = data.get("format", CRYSTALS_FORMAT)
    if fmt != CRYSTALS_FORMAT:
        raise FileFormatError(f"the crystals file format must be {CRYSTALS_FORMAT!r}, got {fmt!r} in {str(path)!r}")
    crystals = data["crystals"]
    seen: dict[str, int] = {}
    for i, crystal in enumerate(crystals):
        if not isinstance(crystal, dict):
            continue  # run answers it with a result that says why
        cid = _check_id(crystal, f"crystals[{i}] of {str(path)!r}")
        if cid in seen:
            raise FileFormatError(
                f"crystal ids must be unique, got {cid!r} at crystals[{seen[cid]}] and crystals[{i}] of {str(path)!r}"
            )
        seen[cid] = i
    return crystals


# ----------------------------------------------------------------------------------------------------
# result files


def result_file_name(index: int) -> str:
    """``result-IIIIII.json``: the file of crystal ``index`` in the output folder."""
    return f"result-{index:06d}.json"


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: tmp.write_text(text))


def _json_roundtrip(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _crystal_id(crystal: Any) -> str | None:
    return crystal.get("id") if isinstance(crystal, dict) and isinstance(crystal.get("id"), str) else None


def _read_result(path: Path) -> dict[str, Any] | None:
    """The result record at ``path``, or None when it is missing or not a JSON object (logged)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        logger.warning("%s is corrupt (%s)", path, err)
        return None
    if not isinstance(data, dict):
        logger.warning("%s is corrupt (a JSON %s, not an object)", path, type(data).__name__)
        return None
    return data


_ABSENT = object()  # a setting a result's settings or the wanted ones lack


def settings_change_problem(data: Mapping[str, Any], settings: Mapping[str, Any]) -> str | None:
    """Why the result ``data`` (``DFTResult.to_dict()``) is not the one ``settings`` (a ``DFTSettings`` dict) would
    give, or None when it is: the same settings, or settings that differ only in ``min_margin`` where the result
    shows that the difference changes no step of the calculation.

    ``min_margin`` only decides where the Wannier-centre flow gets more strings. A converged result with no
    Wilson loops (parities, a gap or the electron count decided it) never used it. One with Wilson loops is the
    same calculation under another threshold when every mesh's smallest margin (``wilson_min_margin``) is at
    least both thresholds: no step was refined, or refused, because of a threshold between the two. A result
    that did not converge and recorded no Wilson loops (stopped at the time limit, say) shows nothing either
    way, so it is not reused; nor is one made before a setting existed (its settings lack the key).
    """
    made = data.get("settings")
    if not isinstance(made, Mapping):
        return "it has no settings"
    changed = sorted(k for k in set(made) | set(settings) if made.get(k, _ABSENT) != settings.get(k, _ABSENT))
    if not changed:
        return None
    if changed == ["min_margin"]:
        meshes = (data.get("details") or {}).get("meshes") or []
        wilson = [m for m in meshes if isinstance(m, Mapping) and "plane_z2" in m]
        floor = max(float(made["min_margin"]), float(settings["min_margin"]))
        margins = [m.get("wilson_min_margin") for m in wilson]
        clear = all(isinstance(x, (int, float)) and x >= floor for x in margins)
        if clear and (wilson or data.get("converged") is True):
            return None
    return f"it was computed with other settings ({', '.join(changed)})"


def _result_problem(
    data: dict[str, Any], index: int, crystal: Any, settings: dict[str, Any] | None, spin_orbit: bool | None
) -> str | None:
    """Why ``data`` is not a valid result of crystal ``index`` (None when it is)."""

    if data.get("index") != index:
        return f"it is the result of index {data.get('index')!r}"
    if data.get("id") != _crystal_id(crystal):
        return f"it is the result of crystal {data.get('id')!r}, the input has {_crystal_id(crystal)!r}"
    if not isinstance(data.get("converged"), bool) or not isinstance(data.get("reason", ""), (str, type(None))):
        return "it has no converged flag"
    try:
        DFTResult.from_dict({k: v for k, v in data.items() if k not in _OWN_KEYS})
    except (TypeError, ValueError, KeyError) as err:
        return f"it does not read as a DFT result ({err})"
    if settings is not None and data.get("settings") is not None:
        why = settings_change_problem(data, settings)
        if why is not None:
            return why
    if spin_orbit is not None and "spin_orbit" in data and data["spin_orbit"] != spin_orbit:
        return f"it was computed with spin_orbit={data['spin_orbit']}"
    return None


def _formula_of(numbers: Any) -> str:
    """The formula of a record's atomic numbers ("" when they are not valid atomic numbers)."""

    try:
        z = [int(x) for x in numbers]
    except (TypeError, ValueError):
        return ""
    if not z or any(x != y or not 1 <= x <= 118 for x, y in zip(z, numbers)):
        return ""
    return _formula(z)


def _failure(crystal: Any, reason: str, settings: Any, spin_orbit: bool, wall_time: float) -> dict[str, Any]:
    """The result of a crystal that gave no DFT answer (a ``DFTResult`` with converged=False), as a dict."""

    numbers = crystal.get("atomic_numbers") if isinstance(crystal, dict) else None
    numbers = numbers if isinstance(numbers, list) else []
    result = DFTResult.failed(
        reason,
        formula=_formula_of(numbers),
        n_atoms=len(numbers),
        spin_orbit=bool(spin_orbit),
        settings=settings.to_dict(),
        wall_time=wall_time,
    )
    return result.to_dict()


# ----------------------------------------------------------------------------------------------------
# one crystal


def _compute(crystal: Any, settings_dict: dict[str, Any] | None, spin_orbit: bool, where: str) -> dict[str, Any]:
    """``dft_invariants`` of one crystal record as a result dict; a record that cannot be computed
    (wrong keys, arrays the core refuses, an exception from the calculation) gives converged=False."""

    settings = DFTSettings() if settings_dict is None else DFTSettings.from_dict(settings_dict)
    start = time.perf_counter()
    why = _check_crystal_shape(crystal, where)
    if why is not None:
        return _failure(crystal, why, settings, spin_orbit, time.perf_counter() - start)
    try:
        result = dft_invariants(
            crystal["lattice"],
            crystal["frac_coords"],
            crystal["atomic_numbers"],
            spin_orbit=spin_orbit,
            magmoms=crystal.get("magmoms"),
            settings=settings,
        )
    except ValueError as err:  # malformed arrays: the core's ValueError subclasses name the rule
        return _failure(crystal, f"refused: {err}", settings, spin_orbit, time.perf_counter() - start)
    except DFTUnavailableError:  # not this crystal's fault: no result file, the command fails
        raise
    except Exception as err:  # noqa: BLE001 - one crystal's crash must not stop the batch
        logger.exception("the calculation raised")
        reason = f"the calculation raised {type(err).__name__}: {err}"
        return _failure(crystal, reason, settings, spin_orbit, time.perf_counter() - start)
    return result.to_dict()


def _child(
    conn: Any, crystal: Any, settings_dict: dict[str, Any] | None, spin_orbit: bool, where: str, log_level: int
) -> None:
    """Body of the child process of a crystal with a time limit: the result goes back as JSON text."""
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")
    result = _compute(crystal, settings_dict, spin_orbit, where)
    conn.send_bytes(json.dumps(result).encode())
    conn.close()


def _compute_with_timeout(
    crystal: Any, settings_dict: dict[str, Any] | None, spin_orbit: bool, where: str, timeout: float | None
) -> dict[str, Any]:
    """``_compute`` in a spawned child process, stopped (SIGTERM, then SIGKILL) after ``timeout`` s
    counted from the child's start (its imports included); None: no limit."""
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_child,
        args=(send, crystal, settings_dict, spin_orbit, where, logging.getLogger().getEffectiveLevel()),
        name="td-dft-crystal",
        daemon=True,
    )
    start = time.perf_counter()
    proc.start()
    send.close()  # the child holds the only write end: EOF when it dies
    payload, timed_out = None, False
    try:
        if receive.poll(timeout):  # a message, or EOF when the child died without one
            try:
                payload = receive.recv_bytes()
            except EOFError:
                payload = None
        else:
            timed_out = True
    finally:
        receive.close()
        if payload is None and proc.is_alive():
            proc.terminate()
            proc.join(_KILL_GRACE_S)
            if proc.is_alive():
                proc.kill()
        proc.join()
    elapsed = time.perf_counter() - start
    if payload is not None:
        return json.loads(payload)

    settings = DFTSettings() if settings_dict is None else DFTSettings.from_dict(settings_dict)
    if timed_out:
        reason = f"over the time limit of {timeout:g} s"
    else:
        reason = f"the calculation process died (exit code {proc.exitcode}) after {elapsed:.1f} s"
    return _failure(crystal, reason, settings, spin_orbit, elapsed)


# ----------------------------------------------------------------------------------------------------
# run and merge


@dataclass(frozen=True)
class RunSummary:
    """What :func:`run_crystals` did: indices computed now, skipped (valid result there) and of those
    computed, the ones that did not converge."""

    computed: tuple[int, ...]
    skipped: tuple[int, ...]
    not_converged: tuple[int, ...]


def _settings_dict(settings: Any) -> dict[str, Any]:

    if settings is None:
        settings = DFTSettings()
    elif isinstance(settings, Mapping):
        settings = DFTSettings.from_dict(dict(settings))
    return _json_roundtrip(settings.to_dict())


def run_crystals(
    crystals: Sequence[Any],
    output_dir: str | os.PathLike[str],
    *,
    indices: Sequence[int] | None = None,
    settings: Any = None,
    spin_orbit: bool = True,
    timeout: float | None = None,
    retry_failed: bool = False,
    progress: bool = False,
    workers: int = 1,
) -> RunSummary:
    """Compute ``crystals[i]`` for each ``i`` of ``indices`` (all when None) and write
    ``output_dir/result-IIIIII.json``. ``settings``: a ``DFTSettings``, its dict, or None (defaults).
    A valid result already there is skipped (``retry_failed`` redoes those with converged=False);
    ``timeout`` (s) runs each crystal in a child process stopped at the limit. ``workers`` > 1 computes
    that many crystals at once, each in its own child process (give each ``DFTSettings.threads`` =
    cores / workers). ``progress``: a tqdm bar when tqdm is installed."""
    n = len(crystals)
    todo = list(range(n)) if indices is None else list(indices)
    for i in todo:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n:
            raise DFTInputError(f"index must be a whole number in [0, {n}) (the number of crystals), got {i!r}")
    if timeout is not None and (not isinstance(timeout, (int, float)) or not timeout > 0 or not math.isfinite(timeout)):
        raise DFTInputError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise DFTInputError(f"workers must be a whole number >= 1, got {workers!r}")
    settings_dict = _settings_dict(settings)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    computed, skipped, failed = [], [], []
    with contextlib.ExitStack() as stack:
        bar = _progress_bar(len(todo), stack) if progress else None
        pending = []
        for i in todo:
            path = out / result_file_name(i)
            existing = _read_result(path)
            if existing is not None:
                why = _result_problem(existing, i, crystals[i], settings_dict, spin_orbit)
                if why is None and (existing["converged"] or not retry_failed):
                    logger.info("crystal %d (%s): valid result in %s, skipped", i, existing.get("id"), path)
                    skipped.append(i)
                    _advance(bar)
                    continue
                logger.warning("crystal %d: redoing %s: %s", i, path, why or "it did not converge (--retry-failed)")
            elif path.exists():
                logger.warning("crystal %d: redoing the corrupt %s", i, path)
            pending.append(i)
        if pending:  # once, before the first calculation: a missing extra is no crystal's result
            _require_dft()

        def compute(i: int) -> dict[str, Any]:
            cid = _crystal_id(crystals[i])
            logger.info("crystal %d (%s): computing", i, cid)
            where = f"crystals[{i}]"
            if timeout is None and workers == 1:
                result = _compute(crystals[i], settings_dict, spin_orbit, where)
            else:
                result = _compute_with_timeout(crystals[i], settings_dict, spin_orbit, where, timeout)
            record = {"index": i, "id": cid, **result}
            _write_text(out / result_file_name(i), json.dumps(record, indent=1) + "\n")
            return record

        def finished(i: int, record: dict[str, Any]) -> None:
            computed.append(i)
            if not record.get("converged"):
                failed.append(i)
                logger.warning("crystal %d (%s): not converged: %s", i, record["id"], record.get("reason"))
            else:
                logger.info(
                    "crystal %d (%s): %s %s, %.1f s",
                    i,
                    record["id"],
                    record.get("topo_class"),
                    record.get("z2_indices") or record.get("chern_numbers") or "",
                    record.get("wall_time") or 0.0,
                )
            _advance(bar)

        if workers == 1:
            for i in pending:
                finished(i, compute(i))
        else:  # threads only wait: every crystal runs in its own child process
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="td-dft") as pool:
                futures = {pool.submit(compute, i): i for i in pending}
                for future in as_completed(futures):
                    finished(futures[future], future.result())
    return RunSummary(tuple(sorted(computed)), tuple(skipped), tuple(sorted(failed)))


def _require_dft() -> None:
    """Raise ``DFTUnavailableError`` (naming the extra to install) when GPAW or its setups are missing."""
    from td_physics.dft.core import dft_available  # looked up at each call: tests replace it

    ok, why = dft_available()
    if not ok:
        if "td-physics[dft]" not in why:
            why = f"DFT verification needs GPAW and its PAW setups: pip install 'td-physics[dft]' ({why})"
        raise DFTUnavailableError(why)


def _progress_bar(total: int, stack: contextlib.ExitStack) -> Any:
    """A tqdm bar closed with ``stack``; log lines go through it meanwhile (no torn bar lines)."""
    try:
        from tqdm.auto import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm
    except ImportError:  # a nicety: the log lines say the same
        logger.info("tqdm is not installed (pip install 'td-physics[dft]'): no progress bar")
        return None
    bar = stack.enter_context(tqdm(total=total, desc="DFT", unit="crystal", dynamic_ncols=True))
    stack.enter_context(logging_redirect_tqdm())
    return bar


def _advance(bar: Any) -> None:
    if bar is not None:
        bar.update(1)


def merge_results(crystals: Sequence[Any], output_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The result files of ``output_dir`` joined in input order: ``{"format", "version", "n_crystals",
    "results": [...], "missing": [indices], "missing_ids": [...], "problems": {index: why}}``. A result
    file that is corrupt or belongs to another crystal counts as missing (its problem is listed)."""
    folder = Path(output_dir)
    if not folder.is_dir():  # no task has run: every result is missing
        logger.warning("the results folder %s does not exist", folder)
    results, missing, problems = [], [], {}
    for i, crystal in enumerate(crystals):
        path = folder / result_file_name(i)
        data = _read_result(path)
        why = None
        if data is None:
            why = "corrupt result file" if path.exists() else None
        else:
            why = _result_problem(data, i, crystal, None, None)
        if data is None or why is not None:
            missing.append(i)
            if why is not None:
                problems[str(i)] = why
                logger.warning("crystal %d: %s: %s", i, path, why)
            continue
        results.append(data)
    extra = sorted(p.name for p in folder.glob("result-*.json") if not _is_index_file(p.name, len(crystals)))
    if extra:
        logger.warning(
            "%d result file(s) beyond the %d input crystals ignored: %s", len(extra), len(crystals), extra[:5]
        )
    if missing:
        logger.warning("%d of %d crystal(s) have no result: indices %s", len(missing), len(crystals), missing)
    return {
        "format": RESULTS_FORMAT,
        "version": 1,
        "n_crystals": len(crystals),
        "n_converged": sum(1 for r in results if r.get("converged")),
        "results": results,
        "missing": missing,
        "missing_ids": [_crystal_id(crystals[i]) for i in missing],
        "problems": problems,
    }


def _is_index_file(name: str, n: int) -> bool:
    stem = name[len("result-") : -len(".json")]
    return stem.isdigit() and int(stem) < n and name == result_file_name(int(stem))


# ----------------------------------------------------------------------------------------------------
# command line


_DESCRIPTION = (
    "DFT verification of crystals (GPAW, PBE + spin-orbit): one result file per crystal, resumable, "
    "one crystal per SLURM array task; then merge the result files."
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m td_physics.dft", description=_DESCRIPTION)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="compute crystals, one result file each (resumable)")
    run.add_argument("--input", required=True, help="crystals JSON file")
    run.add_argument("--output-dir", required=True, help="folder of the result-IIIIII.json files")
    run.add_argument("--index", type=int, help="the one crystal to compute (default $SLURM_ARRAY_TASK_ID, else all)")
    run.add_argument("--settings", help="JSON file of DFTSettings keys (default: DFTSettings())")
    run.add_argument("--no-spin-orbit", action="store_true", help="leave spin-orbit coupling out")
    run.add_argument("--timeout", type=float, help="seconds per crystal; over it the crystal is stopped")
    run.add_argument("--retry-failed", action="store_true", help="redo results with converged=false too")
    run.add_argument("--workers", type=int, default=1, help="crystals computed at once, one process each (default 1)")
    merge = sub.add_parser("merge", help="join the result files into one JSON file")
    merge.add_argument("output_dir", help="folder of the result files")
    merge.add_argument("--input", required=True, help="the crystals JSON file the results belong to")
    merge.add_argument("--output", required=True, help="merged JSON file to write")
    merge.add_argument("--allow-missing", action="store_true", help="exit 0 even when results are missing")
    return p


def _read_settings(path: str | None) -> Any:

    if path is None:
        return DFTSettings()
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FileFormatError(f"the settings file must be readable JSON, got {path!r}: {err}") from err
    if not isinstance(data, dict):
        raise FileFormatError(f"the settings file must hold a JSON object, got {type(data).__name__} in {path!r}")
    return DFTSettings.from_dict(data)


def _task_index(index: int | None) -> int | None:
    if index is not None:
        return index
    env = os.environ.get("SLURM_ARRAY_TASK_ID")
    if env is None:
        return None
    try:
        return int(env)
    except ValueError:
        raise DFTInputError(f"SLURM_ARRAY_TASK_ID must be a whole number, got {env!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m td_physics.dft``; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        crystals = read_crystals_file(args.input)
        if args.command == "merge":
            merged = merge_results(crystals, args.output_dir)
            _write_text(Path(args.output), json.dumps(merged, indent=1) + "\n")
            logger.info("merged %d of %d result(s) into %s", len(merged["results"]), len(crystals), args.output)
            if merged["missing"]:
                print(f"missing results for indices {merged['missing']}", file=sys.stderr)
                return 0 if args.allow_missing else 1
            return 0
        settings = _read_settings(args.settings)
        index = _task_index(args.index)
        summary = run_crystals(
            crystals,
            args.output_dir,
            indices=None if index is None else [index],
            settings=settings,
            spin_orbit=not args.no_spin_orbit,
            timeout=args.timeout,
            retry_failed=args.retry_failed,
            progress=index is None,
            workers=args.workers,
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ImportError as err:  # DFTUnavailableError: the extra is missing, nothing was written
        print(f"error: {err}", file=sys.stderr)
        return 3
    logger.info(
        "%d computed (%d not converged), %d skipped with a valid result",
        len(summary.computed),
        len(summary.not_converged),
        len(summary.skipped),
    )
    return 0

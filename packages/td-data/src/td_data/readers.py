"""Read crystal structures from the formats materials scientists have, and quarantine what is broken.

:func:`load_materials_database` walks files and folders, reads every structure it can, and puts
every file, row or entry it cannot read into ``quarantined`` with the reason, instead of failing
the whole load. Formats, chosen by file name (case-insensitive; a ``.gz`` ending is decompressed):

========================================  ==========================================================
``*.cif``, ``*.mcif``                      CIF and magCIF, one record per data block (pymatgen's
                                           CifParser); ``_atom_site_moment`` loops become ``magmoms``
``POSCAR*``, ``CONTCAR*``, ``*.vasp``,     VASP structure files; ``MAGMOM = ...`` (INCAR syntax) in
``*.poscar``                               the comment line gives ``magmoms``
``*.json``                                 a pymatgen ``Structure`` dict, a td-data record dict
                                           (``format: td-data.crystal-record``), a Materials Project
                                           document (``structure`` plus ``material_id``,
                                           ``band_gap``, ``formation_energy_per_atom``,
                                           ``energy_above_hull``...), a list of any of these, or
                                           ``{"data": [...]}`` as the MP API returns it
``*.csv``                                  CDVAE/DiffCSP benchmark tables: a ``cif`` column, the id
                                           from ``material_id``, every numeric column (most cells
                                           numbers) a property
``*.h5``, ``*.hdf5``                       a :class:`~td_data.store.CrystalStore`
``*.pkl``, ``*.pickle``                    only with ``trusted=True``: unpickling can run code
========================================  ==========================================================

Magnetic moments: a ``magmom`` site property (pymatgen Structure dicts, MP documents), a
``magmoms`` key (td-data record dicts), magCIF ``_atom_site_moment`` loops and a POSCAR ``MAGMOM``
comment line all become the record's ``magmoms`` (Bohr magnetons, (N,) or (N, 3) Cartesian).

Limits: every record read must pass :class:`~td_data.plausibility.Plausibility` (no two atoms
closer than ``min_distance``, at least ``min_volume_per_atom``, at most ``max_atoms`` sites; a CIF's
atoms are counted before it is parsed); one that does not is quarantined with the rule and value.
A CSV row with the wrong number of fields or a text value in a numeric column costs that row only.

Property names: numeric CSV columns keep their names (``heat_ref``, ``dir_gap``, ``band_gap``,
``energy_per_atom``...); ``formation_energy_per_atom`` is also stored as ``formation_energy``
(eV/atom) and ``energy_above_hull`` as ``e_above_hull`` (eV/atom). Materials Project documents
give ``band_gap`` (eV), ``formation_energy`` (eV/atom), ``e_above_hull`` (eV/atom) and
``energy_per_atom`` (eV/atom).

Every record's ``source`` is the file it came from, followed by ``:row N`` (CSV, N counts data
rows from 0, as ``DataFrame.iloc``) or ``:entry N`` (a list, a multi-block CIF, a store). Records
without an id get ``<file stem>-<index>`` (with ``.2``, ``.3``... appended if that is taken).
Ids are de-duplicated across everything read: the first record wins and later ones are
quarantined with ``duplicate id ...``.

Examples
--------
>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "NaCl.vasp").write_text('''NaCl
... 1.0
... 5.64 0 0
... 0 5.64 0
... 0 0 5.64
... Na Cl
... 1 1
... direct
... 0 0 0
... 0.5 0.5 0.5
... ''')
>>> _ = (folder / "broken.cif").write_text("data_broken\\n_cell_length_a 4.0\\n")
>>> result = load_materials_database(folder)
>>> [(r.id, r.formula) for r in result.records]
[('NaCl-0', 'NaCl')]
>>> result.quarantined[0].source.endswith("broken.cif")
True
"""

from __future__ import annotations

import csv
import errno
import gzip
import io
import json
import logging
import math
import os
import pickle
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from td_data.exceptions import ReaderError, RecordValidationError, StoreError, UntrustedInputError
from td_data.plausibility import (
    DEFAULT_MAX_ATOMS,
    DEFAULT_MIN_DISTANCE,
    DEFAULT_MIN_VOLUME_PER_ATOM,
    Plausibility,
)
from td_data.record import CrystalRecord

__all__ = ["load_materials_database", "LoadResult", "Quarantined", "PICKLE_REFUSED"]

logger = logging.getLogger(__name__)

PICKLE_REFUSED = "pickle can run code when loaded; pass trusted=True only for files you trust"

# What a malformed file, row or entry can raise inside pymatgen, pandas, h5py, json or pickle. Anything
# else (NameError, MemoryError, KeyboardInterrupt) is a bug or an emergency and propagates.
_READ_ERRORS = (
    ValueError,  # includes UnicodeDecodeError, json.JSONDecodeError, pandas' parser errors, our TDDataError
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    OSError,  # includes gzip.BadGzipFile and h5py's open errors
    EOFError,
    ArithmeticError,
    AssertionError,  # a few pymatgen parsers check input with assert
    RuntimeError,
    pickle.UnpicklingError,
    Warning,  # a warning turned into an error by the caller's warning filters
)

_MAX_REASON = 400
_CSV_ID_COLUMN = "material_id"
_CSV_ALIASES = {"formation_energy_per_atom": "formation_energy", "energy_above_hull": "e_above_hull"}
_MP_PROPERTIES = {
    "band_gap": "band_gap",
    "formation_energy_per_atom": "formation_energy",
    "energy_above_hull": "e_above_hull",
    "e_above_hull": "e_above_hull",
    "energy_per_atom": "energy_per_atom",
}
_MP_ID_KEYS = ("material_id", "task_id", "id")


@dataclass(frozen=True)
class Quarantined:
    """Something that was set aside, and why.

    ``record_id``: the id of the record concerned, when there is one (a labeller failure, a duplicate id,
    an implausible crystal); None for a file, row or entry that gave no record. ``source``: where it came
    from (``file``, ``file:row N`` or ``file:entry N``; a record's own ``source``). ``reason``: the rule
    broken and the value. ``str()`` gives the readable message.

    >>> str(Quarantined("cand-0001", "cand-0001.cif", "timeout: no answer within 20 s"))
    'cand-0001.cif (record cand-0001): timeout: no answer within 20 s'
    """

    record_id: str | None
    source: str
    reason: str

    def __str__(self) -> str:
        if self.record_id is None or self.record_id == self.source:
            return f"{self.source}: {self.reason}"
        return f"{self.source} (record {self.record_id}): {self.reason}"


@dataclass(frozen=True)
class LoadResult:
    """What :func:`load_materials_database` read, what it set aside, and a few counts."""

    records: list[CrystalRecord]
    quarantined: list[Quarantined]
    files: list[str] = field(default_factory=list)  # every file visited, in reading order
    parser_warnings: int = 0  # warnings raised by pymatgen while parsing (silenced, logged at DEBUG)

    def summary(self) -> dict[str, int]:
        """Counts: records, quarantined (of which duplicate ids), files visited, parser warnings."""
        duplicates = sum(q.reason.startswith("duplicate id") for q in self.quarantined)
        return {
            "records": len(self.records),
            "quarantined": len(self.quarantined),
            "duplicate_ids": duplicates,
            "files": len(self.files),
            "parser_warnings": self.parser_warnings,
        }


class _Entry:
    """One record or one failure, as a reader yields them: ``where`` is '' (the file), 'row N' or 'entry N'."""

    __slots__ = ("where", "record", "reason")

    def __init__(self, where: str, record: CrystalRecord | None = None, reason: str = "") -> None:
        self.where, self.record, self.reason = where, record, reason


class _Context:
    """Per-load state shared by the readers: the trust flag, the limits and the count of silenced warnings."""

    def __init__(self, trusted: bool, limits: Plausibility) -> None:
        self.trusted = trusted
        self.limits = limits
        self.warnings = 0

    def parse(self, func, *args, **kwargs):
        """Call ``func`` with pymatgen's warnings recorded (counted, logged at DEBUG), not shown."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                return func(*args, **kwargs)
            finally:
                self.warnings += len(caught)
                if caught and logger.isEnabledFor(logging.DEBUG):
                    for w in caught:
                        logger.debug("parser warning: %s", str(w.message).replace("\n", " ")[:200])


def _reason(err: BaseException) -> str:
    text = " ".join(str(err).split())
    if isinstance(err, UnicodeDecodeError):
        text = f"not UTF-8 text ({err.reason} at byte {err.start})"
    elif isinstance(err, UntrustedInputError):
        return text
    elif isinstance(err, ZeroDivisionError):
        text = f"numbers in the file must not divide by zero (a zero cell length, scale or denominator?): {text}"
    elif isinstance(err, OverflowError):
        text = f"numbers in the file must be finite and of a sensible size, got one too large: {text}"
    reason = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return reason if len(reason) <= _MAX_REASON else reason[: _MAX_REASON - 3] + "..."


# ---------------------------------------------------------------------------------------------- kinds
def _kind(path: Path) -> tuple[str, bool]:
    """The format of ``path`` from its name, and whether it is gzip-compressed."""
    name = path.name.lower()
    gz = name.endswith(".gz")
    if gz:
        name = name[:-3]
    if name.endswith((".cif", ".mcif")):
        return "cif", gz
    if name.endswith(".json"):
        return "json", gz
    if name.endswith(".csv"):
        return "csv", gz
    if name.endswith((".h5", ".hdf5")) and not gz:
        return "store", False
    if name.endswith((".pkl", ".pickle")):
        return "pickle", gz
    if name.endswith((".vasp", ".poscar")) or name.startswith(("poscar", "contcar")):
        return "poscar", gz
    return "unknown", gz


def _stem(path: Path) -> str:
    name = path.name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    return Path(name).stem or name


def _read_bytes(path: Path, gz: bool) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if gz else data


_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_BINARY = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufeff\ufffe]")  # control characters no text file holds


def _read_text(path: Path, gz: bool) -> str:
    """The file as text: UTF-8 (a UTF-8 byte-order mark is dropped), or UTF-16 with its byte-order mark."""
    data = _read_bytes(path, gz)
    if data.startswith(_UTF16_BOMS):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as err:
            raise ReaderError(
                f"a file that starts with a UTF-16 byte-order mark must be UTF-16 text, got invalid UTF-16 "
                f"({err.reason} at byte {err.start}); save it as UTF-8"
            ) from None
        if _BINARY.search(text):
            raise ReaderError(
                "a file that starts with a UTF-16 byte-order mark must be UTF-16 text, got binary data "
                "(NUL bytes or control characters after decoding)"
            )
    else:
        if b"\x00" in data:
            raise ReaderError(
                "a text structure file must not contain NUL bytes, got binary data "
                "(UTF-16 or UTF-32 text without a byte-order mark? save it as UTF-8)"
            )
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise ReaderError(
                "a text structure file must be UTF-8, got bytes that are not UTF-8 text "
                f"({err.reason} at byte {err.start})"
            ) from None
    if not text.strip():
        raise ReaderError(f"a structure file must not be empty, got {len(data)} bytes")
    return text


def _from_structure(structure: Any, properties: Mapping[str, float] | None, id: str, source: str) -> CrystalRecord:
    """A record from a pymatgen Structure, with a clear reason for unknown elements."""
    from pymatgen.core import Element

    for site in structure:
        for sp in site.species:
            element = getattr(sp, "element", sp)
            if not isinstance(element, Element):
                raise RecordValidationError(f"every site must hold a known element, got {str(sp)!r}")
    return CrystalRecord.from_structure(structure, properties=dict(properties or {}), id=id, source=source)


# ---------------------------------------------------------------------------------------------- CIF
_CIF_BLOCK = re.compile(r"^data_", re.MULTILINE)


def _cif_blocks(text: str) -> list[str]:
    """Split a CIF into its data blocks (a line starting with ``data_`` outside a ';' text field)."""
    blocks: list[list[str]] = []
    in_field = False
    for line in text.splitlines(keepends=True):
        if line.startswith(";"):
            in_field = not in_field
        if not in_field and line.startswith("data_"):
            blocks.append([])
        if blocks:
            blocks[-1].append(line)
        elif line.strip() and not line.lstrip().startswith("#"):
            raise ReaderError(f"a CIF must start with a data_ block, got {line.strip()[:60]!r}")
    if not blocks:
        raise ReaderError("a CIF must contain at least one data_ block, got none")
    return ["".join(b) for b in blocks]


def _structure_from_cif(text: str) -> Any:
    from pymatgen.io.cif import CifParser

    structures = CifParser.from_str(text).parse_structures(primitive=False, on_error="raise")
    if len(structures) != 1:
        raise ReaderError(f"a CIF data block must give one structure, got {len(structures)}")
    return structures[0]


_SYMOP_KEYS = (
    "_symmetry_equiv_pos_as_xyz",
    "_symmetry_equiv_pos_as_xyz_",
    "_space_group_symop_operation_xyz",
    "_space_group_symop_operation_xyz_",
)
_UNCERTAINTY = re.compile(r"\(\d+\)$")
_SITE_TOLERANCE = 1e-4  # CifParser's site_tolerance: closer sites would be merged, so they take the slow path


def _cif_float(value: Any) -> float:
    return float(_UNCERTAINTY.sub("", str(value)))


_CIF_TOKEN = re.compile(r"'[^']*'|\"[^\"]*\"|\S+")
_SITE_TAGS = ("_atom_site_fract_x", "_atom_site_cartn_x")


def _cif_loops(text: str) -> tuple[list[tuple[list[str], list[str]]], dict[str, str]]:
    """A cheap scan of one CIF block: its atom-site and symmetry loops (tags, values), and its single items.

    Only the loops that :func:`_cif_site_count` needs keep their values; ';' text fields count as one
    value. This reads 50,000 atom-site rows in a fraction of a second, before any pymatgen parsing.
    """
    wanted = set(_SITE_TAGS) | set(_SYMOP_KEYS)
    loops: list[tuple[list[str], list[str]]] = []
    items: dict[str, str] = {}
    tags: list[str] | None = None  # the tags of the loop being read
    values: list[str] = []
    keep = False
    in_tags = False
    in_field = False

    def close() -> None:
        nonlocal tags
        if tags is not None and keep:
            loops.append((tags, values))
        tags = None

    for line in text.splitlines():
        if in_field:
            if line.startswith(";"):
                in_field = False
                if tags is not None and keep:
                    values.append(";")
            continue
        if line.startswith(";"):
            in_field = True
            continue
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        lower = stripped.lower()
        if lower.startswith("loop_"):
            close()
            tags, values, keep, in_tags = [], [], False, True
            continue
        if lower.startswith("_"):
            if tags is not None and in_tags:
                tag = lower.split()[0]
                tags.append(tag)
                keep = keep or tag in wanted
                continue
            close()
            parts = stripped.split(None, 1)
            items[parts[0].lower()] = parts[1] if len(parts) > 1 else ""
            continue
        if lower.startswith(("data_", "save_", "global_")):
            close()
            continue
        if tags is not None:
            in_tags = False
            if keep:
                values.extend(_CIF_TOKEN.findall(stripped))
    close()
    return loops, items


def _symops(strings: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Rotations (k, 3, 3) and translations (k, 3) of CIF symmetry operations such as ``'-x, y+1/2, z'``."""
    from pymatgen.core.operations import SymmOp

    rots, trans = [], []
    for raw in strings:
        op = raw.strip("'\"").strip()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                matrix = SymmOp.from_xyz_str(op).affine_matrix
        except (ValueError, ZeroDivisionError, ArithmeticError, KeyError, IndexError, TypeError) as err:
            raise ReaderError(
                f"CIF symmetry operations must be x,y,z expressions with finite numbers, got {op!r} "
                f"({type(err).__name__}: {err})"
            ) from None
        if not np.all(np.isfinite(matrix)):
            raise ReaderError(f"CIF symmetry operations must have finite numbers, got {op!r}")
        rots.append(matrix[:3, :3])
        trans.append(matrix[:3, 3])
    return np.array(rots), np.array(trans)


def _cif_site_count(text: str, max_atoms: int | None) -> None:
    """Refuse a CIF block with more than ``max_atoms`` atoms before pymatgen parses it.

    The atom-site loop rows are counted first: more rows than ``max_atoms`` is refused at once. Then
    each row is expanded by the symmetry operations and its images are counted (distinct positions
    to 1e-3 in fractional coordinates), which is the number of atoms pymatgen would build. Also
    checks that the coordinates are finite numbers and that the symmetry operations parse.
    """
    loops, items = _cif_loops(text)
    _check_cell(items)
    site = next(((t, v) for t, v in loops if any(tag in t for tag in _SITE_TAGS)), None)
    if site is None:
        return
    tags, values = site
    rows = len(values) // len(tags)
    if max_atoms is not None and rows > max_atoms:
        raise ReaderError(
            f"the CIF has {rows} atom-site rows, more than max_atoms {max_atoms} (checked before parsing)"
        )
    if "_atom_site_fract_x" not in tags:
        return
    cols = [tags.index(f"_atom_site_fract_{c}") for c in "xyz" if f"_atom_site_fract_{c}" in tags]
    if len(cols) != 3 or rows == 0:
        return
    table = np.array(values[: rows * len(tags)], dtype=object).reshape(rows, len(tags))
    try:
        frac = np.array([[_cif_float(v) for v in row] for row in table[:, cols]], dtype=float)  # (rows, 3)
    except ValueError:
        return  # '?' or '.' placeholders: pymatgen decides
    bad = ~np.isfinite(frac).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ReaderError(
            f"atom-site fractional coordinates must be finite numbers, got {table[i, cols].tolist()} in row {i}"
        )
    ops = next((k for t, _ in loops for k in t if k in _SYMOP_KEYS), None)
    if ops is not None:
        strings = next(v for t, v in loops if ops in t)
        tags_ops = next(t for t, v in loops if ops in t)
        strings = strings[tags_ops.index(ops) :: len(tags_ops)]
    else:
        single = next((items[k] for k in _SYMOP_KEYS if k in items), None)
        if single is None:
            return  # a space-group symbol only: pymatgen expands it; rows <= max_atoms was checked
        strings = [single]
    rot, trans = _symops(strings)
    if max_atoms is None or rows * len(rot) <= max_atoms:
        return  # even with every image distinct the block is within the limit
    count = _orbit_count(frac, rot, trans)
    if count > max_atoms:
        raise ReaderError(
            f"the CIF has {count} atoms ({rows} atom-site rows and their images under {len(strings)} symmetry "
            f"operations), more than max_atoms {max_atoms} (checked before parsing)"
        )


def _check_cell(items: dict[str, str]) -> None:
    """Cell lengths must be positive and angles strictly between 0 and 180 degrees (when they are numbers)."""
    for axis in "abc":
        raw = items.get(f"_cell_length_{axis}")
        try:
            value = _cif_float(raw) if raw is not None else None
        except ValueError:
            continue  # '?' and other placeholders: pymatgen decides
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ReaderError(f"CIF cell lengths must be positive numbers (Angstrom), got _cell_length_{axis} {raw}")
    for angle in ("alpha", "beta", "gamma"):
        raw = items.get(f"_cell_angle_{angle}")
        try:
            value = _cif_float(raw) if raw is not None else None
        except ValueError:
            continue
        if value is not None and not (math.isfinite(value) and 0 < value < 180):
            raise ReaderError(
                f"CIF cell angles must be between 0 and 180 degrees (exclusive), got _cell_angle_{angle} {raw}"
            )


def _orbit_count(frac: np.ndarray, rot: np.ndarray, trans: np.ndarray, tol: float = 1e-3) -> int:
    """Distinct images of each site under the operations (within ``tol`` in fractional coordinates), summed."""
    k = len(rot)
    images = np.mod(np.einsum("kij,nj->nki", rot, frac) + trans[None], 1.0)  # (rows, k, 3)
    earlier = np.tril(np.ones((k, k), dtype=bool), -1)  # (k, k): j < i
    chunk = max(1, (1 << 21) // (k * k * 3))
    count = 0
    for lo in range(0, len(frac), chunk):
        block = images[lo : lo + chunk]  # (b, k, 3)
        diff = block[:, :, None, :] - block[:, None, :, :]  # (b, k, k, 3)
        diff -= np.round(diff)
        same = np.all(np.abs(diff) < tol, axis=-1) & earlier  # image i repeats an earlier image j
        count += int(np.count_nonzero(~same.any(axis=2)))
    return count


def _p1_arrays(text: str) -> tuple[np.ndarray, np.ndarray, list[int]] | None:
    """Lattice, coordinates and atomic numbers of a plain P1 CIF block, or None for anything else.

    The CDVAE/DiffCSP tables hold pymatgen-written P1 CIFs: one identity symmetry operation, element
    symbols, full occupancies. For those, CifParser's symmetry expansion, site merging and sorting
    do nothing but cost about 2.5 ms a structure; here the block is only tokenised (pymatgen's
    CifFile) and the arrays are read off. Sites stay in file order, and coordinates are not snapped
    to 1/3, 2/3 (CifParser moves values within 1e-4 of them). Anything unusual returns None, and
    the caller uses CifParser.
    """
    from pymatgen.core import Lattice
    from pymatgen.io.cif import CifFile

    from td_data.record import _SYMBOL_TO_Z

    blocks = list(CifFile.from_str(text).data.values())
    if len(blocks) != 1:
        return None
    data = blocks[0].data
    ops = next((data[k] for k in _SYMOP_KEYS if k in data), None)
    if ops is None or isinstance(ops, str):
        ops = [ops]
    if len(ops) != 1 or str(ops[0]).replace(" ", "").replace("'", "").lower() != "x,y,z":
        return None
    if any("magn" in k or "moment" in k for k in data):
        return None
    try:
        symbols = data["_atom_site_type_symbol"]
        columns = [data[f"_atom_site_fract_{c}"] for c in "xyz"]
        occupancy = data.get("_atom_site_occupancy")
        if isinstance(symbols, str) or any(isinstance(c, str) or len(c) != len(symbols) for c in columns):
            return None
        if occupancy is not None and (isinstance(occupancy, str) or any(_cif_float(o) != 1.0 for o in occupancy)):
            return None
        numbers = [_SYMBOL_TO_Z[s] for s in symbols]
        frac = np.array([[_cif_float(v) for v in c] for c in columns]).T  # (N, 3)
        lengths = [_cif_float(data[f"_cell_length_{c}"]) for c in "abc"]
        angles = [_cif_float(data[f"_cell_angle_{c}"]) for c in ("alpha", "beta", "gamma")]
    except (KeyError, ValueError, TypeError):
        return None
    n = len(numbers)
    if n == 0 or n > 500 or not np.all(np.isfinite(frac)):
        return None
    diff = frac[:, None, :] - frac[None, :, :]  # (N, N, 3)
    diff -= np.round(diff)
    close = np.all(np.abs(diff) < _SITE_TOLERANCE, axis=-1)
    if np.count_nonzero(close) > n:  # another site within the tolerance: CifParser would merge them
        return None
    lattice = Lattice.from_parameters(*lengths, *angles).matrix
    if not np.all(np.isfinite(lattice)) or abs(np.linalg.det(lattice)) <= 1e-6:
        return None
    return lattice, frac, numbers


def _cif_record(text: str, ctx: _Context, properties: Mapping[str, float] | None = None, id: str = "") -> CrystalRecord:
    """One record from one CIF data block: the plain-P1 fast path, or pymatgen's CifParser."""
    _cif_site_count(text, ctx.limits.max_atoms)
    fast = ctx.parse(_p1_arrays, text)
    if fast is not None:
        return CrystalRecord(fast[0], fast[1], fast[2], dict(properties or {}), {}, id, "")
    return _from_structure(ctx.parse(_structure_from_cif, text), properties, id, "")


def _read_cif(path: Path, gz: bool, ctx: _Context) -> Iterator[_Entry]:
    blocks = _cif_blocks(_read_text(path, gz))
    single = len(blocks) == 1
    for i, block in enumerate(blocks):
        where = "" if single else f"entry {i}"
        try:
            yield _Entry(where, _cif_record(block, ctx))
        except _READ_ERRORS as err:
            if single:
                raise
            yield _Entry(where, reason=_reason(err))


# ---------------------------------------------------------------------------------------------- POSCAR
def _read_poscar(path: Path, gz: bool, ctx: _Context) -> Iterator[_Entry]:
    from pymatgen.io.vasp import Poscar

    text = _read_text(path, gz)
    poscar = ctx.parse(Poscar.from_str, text, read_velocities=False)
    record = _from_structure(poscar.structure, None, "", "")
    magmoms = _poscar_magmoms(text.split("\n", 1)[0], record.num_atoms)
    if magmoms is not None:
        record = record.replace(magmoms=magmoms)
    yield _Entry("", record)


_MAGMOM = re.compile(r"\bMAGMOM\s*=\s*([-+0-9.eE*\s]+)", re.IGNORECASE)


def _poscar_magmoms(comment: str, n: int) -> np.ndarray | None:
    """Moments from ``MAGMOM = ...`` in a POSCAR's comment line (INCAR syntax, ``2*1.5`` repeats), or None.

    VASP keeps moments in the INCAR; tools that put them into the POSCAR write this line. N values
    are collinear moments, 3N non-collinear ones (Cartesian, as VASP's non-collinear MAGMOM).
    """
    found = _MAGMOM.search(comment)
    if found is None:
        return None
    values: list[float] = []
    try:
        for token in found.group(1).split():
            if "*" in token:
                count, value = token.split("*", 1)
                values += [float(value)] * int(count)
            else:
                values.append(float(token))
    except ValueError:
        raise ReaderError(
            f"MAGMOM in the POSCAR comment line must be numbers or n*value, got {found.group(0)!r}"
        ) from None
    if len(values) == n:
        return np.array(values)
    if len(values) == 3 * n:
        return np.array(values).reshape(n, 3)
    raise ReaderError(
        f"MAGMOM in the POSCAR comment line must give {n} (collinear) or {3 * n} (non-collinear) values for {n} "
        f"sites, got {len(values)}"
    )


# ---------------------------------------------------------------------------------------------- JSON and pickle
def _mp_properties(doc: Mapping[str, Any]) -> dict[str, float]:
    props = {}
    for key, name in _MP_PROPERTIES.items():
        value = doc.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            props.setdefault(name, float(value))
    return props


def _record_from_object(obj: Any, ctx: _Context) -> CrystalRecord:
    """One record from a decoded JSON value or an unpickled object."""
    from pymatgen.core import Structure

    if isinstance(obj, CrystalRecord):
        return obj
    if isinstance(obj, Structure):
        return _from_structure(obj, None, "", "")
    if not isinstance(obj, Mapping):
        raise ReaderError(
            f"a JSON entry must be an object (a structure, a record or an MP document), got {type(obj).__name__}"
        )
    if obj.get("format") == "td-data.crystal-record":
        return CrystalRecord.from_dict(obj)
    if "structure" in obj:
        doc_id = next((str(obj[k]) for k in _MP_ID_KEYS if obj.get(k) not in (None, "")), "")
        structure = obj["structure"]
        if isinstance(structure, Mapping):
            structure = ctx.parse(Structure.from_dict, structure)
        elif not isinstance(structure, Structure):
            raise ReaderError(f"an MP document's 'structure' must be a Structure dict, got {type(structure).__name__}")
        return _from_structure(structure, _mp_properties(obj), doc_id, "")
    if "lattice" in obj and "sites" in obj:
        return _from_structure(ctx.parse(Structure.from_dict, obj), None, "", "")
    raise ReaderError(
        "a JSON entry must be a pymatgen Structure dict, a td-data.crystal-record or a document with 'structure', "
        f"got an object with keys {sorted(obj)[:8]}"
    )


def _entries_from_object(data: Any, ctx: _Context) -> Iterator[_Entry]:
    if isinstance(data, Mapping) and isinstance(data.get("data"), list) and "structure" not in data:
        data = data["data"]  # an MP API response
    if isinstance(data, (list, tuple)):
        if not data:
            raise ReaderError("a list of structures must not be empty, got []")
        for i, item in enumerate(data):
            try:
                yield _Entry(f"entry {i}", _record_from_object(item, ctx))
            except _READ_ERRORS as err:
                yield _Entry(f"entry {i}", reason=_reason(err))
    else:
        yield _Entry("", _record_from_object(data, ctx))


def _read_json(path: Path, gz: bool, ctx: _Context) -> Iterator[_Entry]:
    yield from _entries_from_object(json.loads(_read_text(path, gz)), ctx)


def _read_pickle(path: Path, gz: bool, ctx: _Context) -> Iterator[_Entry]:
    if not ctx.trusted:
        raise UntrustedInputError(PICKLE_REFUSED)
    with gzip.open(path, "rb") if gz else open(path, "rb") as fh:
        data = pickle.load(fh)  # noqa: S301 - only with trusted=True
    yield from _entries_from_object(data, ctx)


# ---------------------------------------------------------------------------------------------- CSV
def _number(text: str) -> float | None:
    """A CSV cell as a float, ``nan`` for an empty or NaN cell, None for text."""
    text = text.strip()
    if not text or text.lower() in ("nan", "na", "n/a", "null", "none"):
        return math.nan
    try:
        return float(text)
    except ValueError:
        return None


def _read_csv(path: Path, gz: bool, ctx: _Context) -> Iterator[_Entry]:
    """Rows of a benchmark table; a bad row costs only that row.

    A row with more or fewer fields than the header, a text value in a numeric column, an infinite
    number or a bad CIF is quarantined with its row number, column and value; the other rows are
    read. A column is numeric when most of its non-empty cells are numbers; other columns (formulas,
    element lists, an index) are not properties. An unnamed first column is the pandas index.
    """
    text = _read_text(path, gz)
    if csv.field_size_limit() < _CSV_FIELD_LIMIT:
        csv.field_size_limit(_CSV_FIELD_LIMIT)  # a CIF cell can be longer than csv's 128 KiB default
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows:
        raise ReaderError("a structure CSV needs a header row, got none")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    if "cif" not in header:
        raise ReaderError(f"a structure CSV needs a 'cif' column, got columns {header[:12]}")
    width = len(header)
    cif_col = header.index("cif")
    id_col = header.index(_CSV_ID_COLUMN) if _CSV_ID_COLUMN in header else None
    candidates = [
        c for c, name in enumerate(header) if c not in (cif_col, id_col) and name and not name.startswith("Unnamed:")
    ]
    numeric = []
    for c in candidates:
        cells = [_number(row[c]) for row in body if len(row) == width and row[c].strip()]
        numbers = sum(v is not None for v in cells)
        if cells and numbers * 2 > len(cells):
            numeric.append(c)
    body = [row for row in body if any(cell.strip() for cell in row)]  # blank lines are not rows (as in pandas)
    for i, row in enumerate(body):
        where = f"row {i}"
        try:
            if len(row) != width:
                raise ReaderError(
                    f"every CSV row must have the header's {width} fields, got {len(row)} in data row {i}"
                )
            props: dict[str, float] = {}
            for c in numeric:
                value = _number(row[c])
                name = header[c]
                if value is None or math.isinf(value):
                    raise ReaderError(
                        f"column {name!r} holds numbers, got {row[c].strip()[:60]!r} in data row {i}: "
                        "not a finite number"
                    )
                if math.isnan(value):
                    continue  # missing in this row
                props[name] = value
                alias = _CSV_ALIASES.get(name)
                if alias is not None:
                    props.setdefault(alias, value)
            cif = row[cif_col]
            if not cif.strip():
                raise ReaderError(f"the cif cell must hold CIF text, got {cif!r} in data row {i}")
            record_id = "" if id_col is None else row[id_col].strip()
            yield _Entry(where, _cif_record(cif, ctx, props, record_id))
        except _READ_ERRORS as err:
            yield _Entry(where, reason=_reason(err))


_CSV_FIELD_LIMIT = 1 << 28  # characters in one CSV cell


# ---------------------------------------------------------------------------------------------- HDF5
def _read_store(path: Path, gz: bool, ctx: _Context) -> Iterator[_Entry]:
    from td_data.store import CrystalStore

    try:
        with CrystalStore.open(path) as store:
            records = store._read_range(0, len(store), source=str(path))
    except StoreError:
        raise
    except _READ_ERRORS as err:  # a foreign HDF5 file: datasets of other types or shapes
        raise StoreError(
            f"an .h5 file must be a td-data crystal store (lattices, offsets, frac_coords, ... of the documented "
            f"types and shapes), {path.name} is not: {type(err).__name__}: {err}"
        ) from None
    for i, rec in enumerate(records):
        yield _Entry(f"entry {i}", rec)


_READERS = {
    "cif": _read_cif,
    "poscar": _read_poscar,
    "json": _read_json,
    "csv": _read_csv,
    "store": _read_store,
    "pickle": _read_pickle,
}


# ---------------------------------------------------------------------------------------------- the loader
def _unreadable(path: Path) -> str:
    """Why ``path`` is neither a file nor a folder to read: a link loop, a broken link, a device..."""
    if path.is_symlink():
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        try:
            path.resolve(strict=True)
        except RuntimeError:  # Python < 3.13: "Symlink loop from ..."
            return f"symbolic link loop: {path} -> {target} leads back to itself, so it names no file"
        except OSError as err:
            if err.errno == errno.ELOOP:
                return f"symbolic link loop: {path} -> {target} leads back to itself, so it names no file"
            return f"broken symbolic link: {path} -> {target}, which does not exist"
    if not os.path.lexists(path):
        return f"no such file or directory: {path}"
    return f"not a regular file or folder (a device, socket or pipe): {path}"


def _files(paths: Iterable[str | os.PathLike], recursive: bool) -> Iterator[tuple[Path, str]]:
    """(path, '') for each file to read, or (path, reason) for a path that cannot be read.

    Links to files and folders are followed; a link back to a folder already walked, a link loop,
    a broken link and a special file (device, socket, pipe) inside a folder are reported with their
    reason, never skipped in silence.
    """
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found = _walk(path) if recursive else ((f, "") for f in path.iterdir())
            # hidden files and folders (.DS_Store, .git, editor and temporary files) hold no structures
            visible = (
                (f, why) for f, why in found if not any(part.startswith(".") for part in f.relative_to(path).parts)
            )
            for f, why in sorted(visible):
                if why:
                    yield f, why
                elif f.is_file():
                    yield f, ""
                elif not f.is_dir():
                    yield f, _unreadable(f)
        elif path.is_file():
            yield path, ""
        else:
            yield path, _unreadable(path)


def _walk(folder: Path) -> Iterator[tuple[Path, str]]:
    """(entry, '') for every entry under ``folder``, following links to folders, and (link, reason)
    for a link that leads back to a folder already walked (which would make the walk endless)."""
    seen = {os.path.realpath(folder)}
    for root, dirs, names in os.walk(folder, followlinks=True):
        base = Path(root)
        for name in names:
            yield base / name, ""
        for name in list(dirs):
            sub = base / name
            real = os.path.realpath(sub)
            if real in seen:
                dirs.remove(name)
                yield sub, f"symbolic link loop: {sub} leads back to the folder {real}, already read"
            else:
                seen.add(real)


def load_materials_database(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    trusted: bool = False,
    recursive: bool = True,
    max_atoms: int | None = DEFAULT_MAX_ATOMS,
    min_distance: float | None = DEFAULT_MIN_DISTANCE,
    min_volume_per_atom: float | None = DEFAULT_MIN_VOLUME_PER_ATOM,
) -> LoadResult:
    """Read every structure under ``paths`` (files and folders) into records; quarantine the rest.

    Parameters
    ----------
    paths:
        A file or folder, or several. Folders are walked in sorted order (``recursive=False``: only
        the files directly inside); hidden files in folders are skipped.
    trusted:
        Unpickle ``.pkl``/``.pickle`` files. Without it they are quarantined, never opened, since
        unpickling can run any code.
    max_atoms:
        Sites per cell (default 1000). A CIF is checked before pymatgen parses it (atom-site rows,
        then their symmetry images), so an oversized file is refused in a fraction of a second.
    min_distance:
        Angstrom (default 0.5): a record with two atoms closer than this, periodic images included,
        is quarantined (``"atoms 0 and 1 are 0.04 A apart, below min_distance 0.5 A"``).
    min_volume_per_atom:
        Angstrom^3 (default 1.0): a record whose cell volume per atom is smaller is quarantined.
        See :mod:`td_data.plausibility` for why these defaults keep every real crystal. ``None``
        turns a limit off.

    Returns
    -------
    LoadResult
        ``records`` in reading order (a file's rows and entries in file order), ``quarantined``
        with a reason for each unreadable file, row or entry and each later duplicate of an id,
        and ``summary()`` counts. Nothing in the input makes this raise.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    ctx = _Context(trusted, Plausibility(min_distance, min_volume_per_atom, max_atoms))
    records: list[CrystalRecord] = []
    quarantined: list[Quarantined] = []
    files: list[str] = []
    first_source: dict[str, str] = {}

    for path, problem in _files(paths, recursive):
        file = str(path)
        if problem:
            quarantined.append(Quarantined(None, file, problem))
            continue
        files.append(file)
        kind, gz = _kind(path)
        if kind == "unknown":
            reason = (
                f"unknown file type {path.name!r}: expected .cif/.mcif, POSCAR/CONTCAR/.vasp, .json, .csv, .h5 or .pkl"
            )
            quarantined.append(Quarantined(None, file, reason))
            continue
        before = len(records), len(quarantined)
        try:
            for n, entry in enumerate(_READERS[kind](path, gz, ctx)):
                source = f"{file}:{entry.where}" if entry.where else file
                if entry.record is None:
                    quarantined.append(Quarantined(None, source, entry.reason))
                    continue
                rec = entry.record
                problem = ctx.limits.problem(rec)
                if problem is not None:
                    quarantined.append(Quarantined(rec.id or None, source, problem))
                    continue
                if rec.id:
                    if rec.id in first_source:
                        reason = f"duplicate id {rec.id!r} (first read from {first_source[rec.id]})"
                        quarantined.append(Quarantined(rec.id, source, reason))
                        continue
                    record_id = rec.id
                else:
                    record_id = f"{_stem(path)}-{n}"
                    k = 2
                    while record_id in first_source:
                        record_id, k = f"{_stem(path)}-{n}.{k}", k + 1
                first_source[record_id] = source
                records.append(_relabel(rec, record_id, source))
        except _READ_ERRORS as err:
            # a file-level failure voids what the file gave so far: one quarantined entry for the file
            for rec in records[before[0] :]:
                first_source.pop(rec.id, None)
            del records[before[0] :]
            del quarantined[before[1] :]
            quarantined.append(Quarantined(None, file, _reason(err)))
        logger.debug("%s: %d records, %d quarantined", file, len(records) - before[0], len(quarantined) - before[1])

    result = LoadResult(records, quarantined, files, ctx.warnings)
    logger.info("loaded %s", result.summary())
    return result


def _relabel(rec: CrystalRecord, id: str, source: str) -> CrystalRecord:
    """``rec`` with this id and source, without validating the unchanged arrays again."""
    if rec.id == id and rec.source == source:
        return rec
    props, labels = dict(rec.properties), dict(rec.labels)
    return CrystalRecord._from_checked(
        rec.lattice, rec.frac_coords, rec.atomic_numbers, props, labels, id, source, rec.magmoms
    )

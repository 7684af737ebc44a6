"""Read crystal structures from the formats materials scientists have, and quarantine what is broken.

:func:`load_materials_database` walks files and folders, reads every structure it can, and puts
every file, row or entry it cannot read into ``quarantined`` with the reason, instead of failing
the whole load. Formats, chosen by file name (case-insensitive; a ``.gz`` ending is decompressed):

========================================  ==========================================================
``*.cif``                                  CIF, one record per data block (pymatgen's CifParser)
``POSCAR*``, ``CONTCAR*``, ``*.vasp``,     VASP structure files
``*.poscar``
``*.json``                                 a pymatgen ``Structure`` dict, a td-data record dict
                                           (``format: td-data.crystal-record``), a Materials Project
                                           document (``structure`` plus ``material_id``,
                                           ``band_gap``, ``formation_energy_per_atom``,
                                           ``energy_above_hull``...), a list of any of these, or
                                           ``{"data": [...]}`` as the MP API returns it
``*.csv``                                  CDVAE/DiffCSP benchmark tables: a ``cif`` column, the id
                                           from ``material_id``, every numeric column a property
``*.h5``, ``*.hdf5``                       a :class:`~td_data.store.CrystalStore`
``*.pkl``, ``*.pickle``                    only with ``trusted=True``: unpickling can run code
========================================  ==========================================================

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

from td_data.exceptions import ReaderError, RecordValidationError, UntrustedInputError
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
    """Something that was not read: ``source`` is ``file``, ``file:row N`` or ``file:entry N``."""

    source: str
    reason: str


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
    """Per-load state shared by the readers: the trust flag and the count of silenced warnings."""

    def __init__(self, trusted: bool) -> None:
        self.trusted = trusted
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
    reason = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return reason if len(reason) <= _MAX_REASON else reason[: _MAX_REASON - 3] + "..."


# ---------------------------------------------------------------------------------------------- kinds
def _kind(path: Path) -> tuple[str, bool]:
    """The format of ``path`` from its name, and whether it is gzip-compressed."""
    name = path.name.lower()
    gz = name.endswith(".gz")
    if gz:
        name = name[:-3]
    if name.endswith(".cif"):
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


def _read_text(path: Path, gz: bool) -> str:
    data = _read_bytes(path, gz)
    if not data.strip():
        raise ReaderError(f"a structure file must not be empty, got {len(data)} bytes")
    if b"\x00" in data:
        raise ReaderError("a text structure file must not contain NUL bytes, got binary data")
    return data.decode("utf-8")


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
    yield _Entry("", _from_structure(poscar.structure, None, "", ""))


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
def _read_csv(path: Path, gz: bool, ctx: _Context) -> Iterator[_Entry]:
    import pandas as pd

    frame = pd.read_csv(io.StringIO(_read_text(path, gz)))
    frame = frame.loc[:, [c for c in frame.columns if not str(c).startswith("Unnamed:")]]
    if "cif" not in frame.columns:
        raise ReaderError(f"a structure CSV needs a 'cif' column, got columns {list(frame.columns)[:12]}")
    numeric = [
        c
        for c in frame.columns
        if c != _CSV_ID_COLUMN and pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
    ]
    values = frame[numeric].to_numpy(dtype=np.float64) if numeric else np.empty((len(frame), 0))  # (rows, props)
    names = [str(c) for c in numeric]
    aliases = [_CSV_ALIASES.get(n) for n in names]
    ids = frame[_CSV_ID_COLUMN].tolist() if _CSV_ID_COLUMN in frame.columns else [None] * len(frame)
    for i, (cif, id_, row) in enumerate(zip(frame["cif"].tolist(), ids, values.tolist())):
        where = f"row {i}"
        try:
            if not isinstance(cif, str) or not cif.strip():
                raise ReaderError(f"the cif cell must hold CIF text, got {cif!r}")
            props: dict[str, float] = {}
            for name, alias, value in zip(names, aliases, row):
                if math.isnan(value):
                    continue  # missing in this row
                props[name] = value
                if alias is not None:
                    props.setdefault(alias, value)
            record_id = "" if id_ is None or (isinstance(id_, float) and math.isnan(id_)) else str(id_)
            yield _Entry(where, _cif_record(cif, ctx, props, record_id))
        except _READ_ERRORS as err:
            yield _Entry(where, reason=_reason(err))


# ---------------------------------------------------------------------------------------------- HDF5
def _read_store(path: Path, gz: bool, ctx: _Context) -> Iterator[_Entry]:
    from td_data.store import CrystalStore

    with CrystalStore.open(path) as store:
        records = store._read_range(0, len(store), source=str(path))
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
def _files(paths: Iterable[str | os.PathLike], recursive: bool) -> Iterator[tuple[Path, str]]:
    """(path, '') for each file to read, or (path, reason) for a path that cannot be read."""
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found = path.rglob("*") if recursive else path.iterdir()
            # hidden files and folders (.DS_Store, .git, editor and temporary files) hold no structures
            visible = (f for f in found if not any(part.startswith(".") for part in f.relative_to(path).parts))
            for f in sorted(f for f in visible if f.is_file()):
                yield f, ""
        elif path.is_file():
            yield path, ""
        else:
            yield path, f"no such file or directory: {path}"


def load_materials_database(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    trusted: bool = False,
    recursive: bool = True,
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

    Returns
    -------
    LoadResult
        ``records`` in reading order (a file's rows and entries in file order), ``quarantined``
        with a reason for each unreadable file, row or entry and each later duplicate of an id,
        and ``summary()`` counts. Nothing in the input makes this raise.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    ctx = _Context(trusted)
    records: list[CrystalRecord] = []
    quarantined: list[Quarantined] = []
    files: list[str] = []
    first_source: dict[str, str] = {}

    for path, problem in _files(paths, recursive):
        file = str(path)
        if problem:
            quarantined.append(Quarantined(file, problem))
            continue
        files.append(file)
        kind, gz = _kind(path)
        if kind == "unknown":
            reason = f"unknown file type {path.name!r}: expected .cif, POSCAR/CONTCAR/.vasp, .json, .csv, .h5 or .pkl"
            quarantined.append(Quarantined(file, reason))
            continue
        before = len(records), len(quarantined)
        try:
            for n, entry in enumerate(_READERS[kind](path, gz, ctx)):
                source = f"{file}:{entry.where}" if entry.where else file
                if entry.record is None:
                    quarantined.append(Quarantined(source, entry.reason))
                    continue
                rec = entry.record
                if rec.id:
                    if rec.id in first_source:
                        quarantined.append(
                            Quarantined(source, f"duplicate id {rec.id!r} (first read from {first_source[rec.id]})")
                        )
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
            quarantined.append(Quarantined(file, _reason(err)))
        logger.debug("%s: %d records, %d quarantined", file, len(records) - before[0], len(quarantined) - before[1])

    result = LoadResult(records, quarantined, files, ctx.warnings)
    logger.info("loaded %s", result.summary())
    return result


def _relabel(rec: CrystalRecord, id: str, source: str) -> CrystalRecord:
    """``rec`` with this id and source, without validating the unchanged arrays again."""
    if rec.id == id and rec.source == source:
        return rec
    props, labels = dict(rec.properties), dict(rec.labels)
    return CrystalRecord._from_checked(rec.lattice, rec.frac_coords, rec.atomic_numbers, props, labels, id, source)

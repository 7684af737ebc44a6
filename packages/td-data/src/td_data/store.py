"""An HDF5 store of crystal records: ragged sites as flat arrays plus offsets.

Layout (``schema_version`` 1, file attribute ``format = "td-data.crystal-store"``)::

    lattices        (n, 3, 3)       float64   Angstrom, lattice vectors as rows
    offsets         (n + 1,)        int64     record i owns sites offsets[i]:offsets[i + 1]
    frac_coords     (total_atoms, 3) float64  fractional coordinates in [0, 1)
    atomic_numbers  (total_atoms,)  uint8     1..118
    ids, sources    (n,)            UTF-8 variable-length strings
    labels          (n,)            UTF-8 JSON object per record ("{}" when there are none)
    properties/<name> (n,)          float64, one column per property name; NaN means "this record
                                    has no such property" (records never hold NaN properties, so
                                    the two cannot be confused)
    magmom_kinds    (n,)            int8      optional: 0 no moments, 1 collinear, 3 non-collinear
    magmoms         (total_atoms, 3) float64  optional: magnetic moments (Bohr magnetons), ragged like the
                                    sites; a collinear moment in column 0, NaN where a record has none

The two magnetic datasets are created by the first append of a record with ``magmoms``; a store
without them (every store written before they existed) holds no moments and loads as before.

Every dataset is chunked and resizable. The number of committed records is the file attribute
``num_records``, written last by :meth:`CrystalStore.append`; rows past it (left by an append that
was interrupted) are ignored and overwritten by the next append.

Writes are atomic at the file level: :meth:`CrystalStore.create` and :func:`write_store` build the
file under a temporary name in the same folder (with the user's umask permissions, 0644 under
022), fsync it and ``os.replace`` it onto ``path`` only when it is complete, so a crash leaves
either the old file or no file, never half a store. Appending to an existing store
(``open(path, mode="a")``) writes in place.

Reading is vectorised: a range of records is read with one slice per dataset, checked in bulk
(finite numbers, positive volumes, coordinates in [0, 1), atomic numbers 1..118) and cut into
records that share the block's read-only arrays, without re-running the per-record validation of
:class:`~td_data.record.CrystalRecord`.

Examples
--------
>>> import tempfile, pathlib
>>> from td_data import CrystalRecord
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> recs = [CrystalRecord(4.0 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5]], ["Cs", "Cl"], {"band_gap": 5.0}, id="CsCl"),
...         CrystalRecord(3.0 * np.eye(3), [[0, 0, 0]], ["Po"], id="Po")]
>>> path = write_store(folder / "demo.h5", recs)
>>> with CrystalStore.open(folder / "demo.h5") as store:
...     len(store), store.ids, store.get("CsCl").properties["band_gap"], store[1].formula
(2, ['CsCl', 'Po'], 5.0, 'Po')
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from td_data.exceptions import StoreError
from td_data.record import CrystalRecord
from td_physics.files import replace_durably, temp_sibling

__all__ = ["CrystalStore", "write_store", "SCHEMA_VERSION", "STORE_FORMAT"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
STORE_FORMAT = "td-data.crystal-store"

_STR = h5py.string_dtype(encoding="utf-8")
_CHUNK_RECORDS = 4096  # chunk length of the per-record datasets
_CHUNK_ATOMS = 16384  # chunk length of the per-site datasets
_GAP = 64  # indices closer than this are read as one contiguous range
_WRITE_BATCH = 65536  # write_store appends an iterable in batches of this many records


def _reject_constant(name: str) -> None:
    raise ValueError(f"labels must hold finite numbers, got {name}")


def _temp_path(path: Path) -> Path:
    return temp_sibling(path)


class CrystalStore:
    """A file of :class:`~td_data.record.CrystalRecord` objects; see the module docstring for the layout.

    Open one with :meth:`create` (a new file, written atomically) or :meth:`open` (``mode="r"`` to
    read, ``"a"`` to append), preferably as a context manager. Ids must be non-empty and unique
    within a store.

    Indexing: ``store[i]`` is one record, ``store[a:b]`` and ``store[[i, j, ...]]`` (an integer or
    boolean array) are lists of records in the order asked for. ``store.get(id)`` looks a record up
    by id (the id index is built on first use).
    """

    def __init__(self, file: h5py.File, path: Path, mode: str, temp_path: Path | None = None) -> None:
        # Private: use CrystalStore.create or CrystalStore.open.
        self._file = file
        self._path = path
        self._mode = mode
        self._temp_path = temp_path
        self._check_schema()
        self._num = self._num_records()
        offsets = file["offsets"][: self._num + 1].astype(np.int64)
        if offsets.shape != (self._num + 1,) or offsets[0] != 0 or np.any(np.diff(offsets) < 1):
            raise StoreError(
                f"offsets must start at 0 and grow by at least one site per record for {self._num} records, "
                f"got {offsets.shape[0]} values in {path}"
            )
        if offsets[-1] > file["frac_coords"].shape[0] or offsets[-1] > file["atomic_numbers"].shape[0]:
            raise StoreError(
                f"offsets must not point past the site arrays, got {offsets[-1]} sites for "
                f"{file['frac_coords'].shape[0]} coordinates in {path}"
            )
        self._offsets = offsets  # (n + 1,)
        self._ids: list[str] | None = None
        self._id_index: dict[str, int] | None = None

    # ------------------------------------------------------------------ opening and closing
    @classmethod
    def create(cls, path: str | os.PathLike, *, overwrite: bool = False) -> CrystalStore:
        """A new, empty store written under a temporary name and renamed to ``path`` on :meth:`close`.

        Leaving the ``with`` block with an exception (or calling :meth:`abort`) deletes the temporary
        file, so an existing ``path`` is left as it was. ``overwrite=False`` refuses an existing ``path``.
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise StoreError(f"a store must not overwrite an existing file unless overwrite=True, got {path}")
        if not path.parent.is_dir():
            raise StoreError(f"the folder of a new store must exist, got {path.parent}")
        temp = _temp_path(path)
        try:
            file = h5py.File(temp, "w")
            cls._init_layout(file)
            return cls(file, path, "w", temp)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    @classmethod
    def open(cls, path: str | os.PathLike, mode: str = "r") -> CrystalStore:
        """An existing store, read-only (``mode="r"``) or to append to in place (``mode="a"``)."""
        if mode not in ("r", "a"):
            raise StoreError(f"mode must be 'r' (read) or 'a' (append), got {mode!r}")
        path = Path(path)
        if not path.is_file():
            raise StoreError(f"no store file at {path} (use CrystalStore.create for a new one)")
        try:
            file = h5py.File(path, "r" if mode == "r" else "r+")
        except OSError as err:
            raise StoreError(f"a crystal store must be an HDF5 file, could not open {path}: {err}") from None
        try:
            return cls(file, path, mode)
        except BaseException:
            file.close()
            raise

    @staticmethod
    def _init_layout(f: h5py.File) -> None:
        f.attrs["format"] = STORE_FORMAT
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["num_records"] = 0
        f.create_dataset("lattices", (0, 3, 3), np.float64, maxshape=(None, 3, 3), chunks=(_CHUNK_RECORDS, 3, 3))
        f.create_dataset("offsets", data=np.zeros(1, np.int64), maxshape=(None,), chunks=(_CHUNK_RECORDS,))
        f.create_dataset("frac_coords", (0, 3), np.float64, maxshape=(None, 3), chunks=(_CHUNK_ATOMS, 3))
        f.create_dataset("atomic_numbers", (0,), np.uint8, maxshape=(None,), chunks=(_CHUNK_ATOMS,))
        for name in ("ids", "sources", "labels"):
            f.create_dataset(name, (0,), _STR, maxshape=(None,), chunks=(_CHUNK_RECORDS,))
        f.create_group("properties")

    def _ensure_magmom_layout(self) -> None:
        """Create the optional magnetic datasets, filled for the records already stored."""
        f = self._file
        if "magmom_kinds" in f:
            return
        n, atoms = self._num, int(self._offsets[-1])
        f.create_dataset(
            "magmom_kinds", data=np.zeros(n, np.int8), maxshape=(None,), chunks=(_CHUNK_RECORDS,), fillvalue=0
        )
        f.create_dataset(
            "magmoms",
            data=np.full((atoms, 3), np.nan),
            maxshape=(None, 3),
            chunks=(_CHUNK_ATOMS, 3),
            fillvalue=np.nan,
        )

    def _check_schema(self) -> None:
        attrs = self._file.attrs
        fmt = attrs.get("format")
        fmt = fmt.decode("utf-8", "replace") if isinstance(fmt, (bytes, np.bytes_)) else fmt
        if not isinstance(fmt, str) or fmt != STORE_FORMAT:
            raise StoreError(
                f"file attribute format must be {STORE_FORMAT!r}, got {attrs.get('format')!r} in {self._path}"
            )
        version = attrs.get("schema_version")
        version = version.item() if isinstance(version, np.generic) else version
        if not isinstance(version, int) or version != SCHEMA_VERSION:
            raise StoreError(
                f"this td-data reads crystal-store schema_version {SCHEMA_VERSION}, got {version!r} in {self._path} "
                "(written by another td-data version: convert it with the version that wrote it)"
            )
        needed = ("lattices", "offsets", "frac_coords", "atomic_numbers", "ids", "sources", "labels", "properties")
        missing = [name for name in needed if name not in self._file]
        if "num_records" not in attrs:
            missing.append("the num_records attribute")
        if missing:
            raise StoreError(f"a crystal store needs {', '.join(needed)} and num_records, {self._path} lacks {missing}")
        self._check_layout()

    #: dataset -> (dtype kinds, shape after the first axis, what the rule says)
    _LAYOUT: dict[str, tuple[str, tuple[int, ...], str]] = {
        "lattices": ("f", (3, 3), "a float (n, 3, 3) dataset"),
        "offsets": ("iu", (), "an integer (n + 1,) dataset"),
        "frac_coords": ("f", (3,), "a float (atoms, 3) dataset"),
        "atomic_numbers": ("iu", (), "an integer (atoms,) dataset"),
        "ids": ("S", (), "a UTF-8 string (n,) dataset"),
        "sources": ("S", (), "a UTF-8 string (n,) dataset"),
        "labels": ("S", (), "a UTF-8 string (n,) dataset"),
        "magmom_kinds": ("iu", (), "an integer (n,) dataset"),
        "magmoms": ("f", (3,), "a float (atoms, 3) dataset"),
    }

    def _check_layout(self) -> None:
        """Every dataset of the types and shapes of the layout: a foreign file fails here, with the rule."""
        f = self._file
        for name, (kinds, tail, rule) in self._LAYOUT.items():
            if name not in f:
                continue
            ds = f[name]
            if not isinstance(ds, h5py.Dataset):
                raise StoreError(f"a crystal store's {name} must be {rule}, got a group in {self._path}")
            is_string = h5py.check_string_dtype(ds.dtype) is not None
            kind_ok = is_string if kinds == "S" else (not is_string and ds.dtype.kind in kinds)
            if not kind_ok or ds.ndim != 1 + len(tail) or tuple(ds.shape[1:]) != tail:
                raise StoreError(
                    f"a crystal store's {name} must be {rule}, got dtype {ds.dtype} and shape {ds.shape} "
                    f"in {self._path}"
                )
        group = f["properties"]
        if not isinstance(group, h5py.Group):
            raise StoreError(
                f"a crystal store's properties must be a group of float columns, got a dataset in {self._path}"
            )
        for name, ds in group.items():
            if not isinstance(ds, h5py.Dataset) or ds.ndim != 1 or ds.dtype.kind != "f":
                what = "a group" if not isinstance(ds, h5py.Dataset) else f"dtype {ds.dtype} and shape {ds.shape}"
                raise StoreError(f"property {name!r} must be a float (n,) dataset, got {what} in {self._path}")

    def _num_records(self) -> int:
        value = self._file.attrs["num_records"]
        value = value.item() if isinstance(value, np.generic) else value
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise StoreError(f"the num_records attribute must be a non-negative integer, got {value!r} in {self._path}")
        n = value
        for name in ("lattices", "ids", "sources", "labels", *self._file["properties"]):
            ds = self._file[name] if name in self._file else self._file["properties"][name]
            if ds.shape[0] < n:
                raise StoreError(
                    f"num_records is {n}, so {name} must hold at least {n} rows, got {ds.shape[0]} in {self._path}"
                )
        return n

    def close(self) -> None:
        """Flush and close; a store from :meth:`create` is renamed onto its final path now."""
        if not self._file.id.valid:
            return
        self._file.close()
        if self._temp_path is not None:
            replace_durably(self._temp_path, self._path)
            logger.debug("wrote %d records to %s", self._num, self._path)
            self._temp_path = None

    def abort(self) -> None:
        """Close without keeping anything: a store from :meth:`create` deletes its temporary file."""
        if self._file.id.valid:
            self._file.close()
        if self._temp_path is not None:
            self._temp_path.unlink(missing_ok=True)
            self._temp_path = None

    def __enter__(self) -> CrystalStore:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and self._temp_path is not None:
            self.abort()
        else:
            self.close()

    @property
    def path(self) -> Path:
        """The final path of the store (a store from :meth:`create` lives elsewhere until closed)."""
        return self._path

    def __repr__(self) -> str:
        state = "open" if self._file.id.valid else "closed"
        return f"CrystalStore({str(self._path)!r}, n={self._num}, mode={self._mode!r}, {state})"

    # ------------------------------------------------------------------ writing
    def append(self, records: Iterable[CrystalRecord]) -> None:
        """Append records: one resize and one write per dataset for the whole batch.

        The batch is checked first (record type, non-empty unique ids, property names), so a refused
        batch writes nothing.
        """
        if self._mode == "r":
            raise StoreError(f"store {self._path} is open read-only (mode='r'); open it with mode='a' to append")
        if not self._file.id.valid:
            raise StoreError(f"store {self._path} is closed")
        records = list(records)
        if not records:
            return
        for i, rec in enumerate(records):
            if not isinstance(rec, CrystalRecord):
                raise StoreError(f"append takes CrystalRecord objects, got {type(rec).__name__} at position {i}")
        ids = [rec.id for rec in records]
        index = self._index()
        seen: set[str] = set()
        for i, id_ in enumerate(ids):
            if not id_:
                raise StoreError(f"records in a store need a non-empty id, got '' at position {i}")
            if id_ in seen or id_ in index:
                raise StoreError(f"ids must be unique within a store, got the duplicate id {id_!r}")
            seen.add(id_)
        names: dict[str, None] = {}
        for rec in records:
            names.update(dict.fromkeys(rec.properties))
        for name in names:
            if not name or "/" in name or name == ".":
                raise StoreError(f"property names in a store must be non-empty and without '/', got {name!r}")

        n_new = len(records)
        start, stop = self._num, self._num + n_new
        counts = np.fromiter((len(rec.atomic_numbers) for rec in records), np.int64, n_new)
        atoms_start = int(self._offsets[-1])
        new_offsets = atoms_start + np.cumsum(counts)  # (n_new,)
        atoms_stop = int(new_offsets[-1])
        lattices = np.stack([rec.lattice for rec in records])  # (n_new, 3, 3)
        frac = np.concatenate([rec.frac_coords for rec in records])  # (sum N, 3)
        numbers = np.concatenate([rec.atomic_numbers for rec in records]).astype(np.uint8)
        labels = [json.dumps(dict(rec.labels), separators=(",", ":")) if rec.labels else "{}" for rec in records]
        sources = [rec.source for rec in records]
        with_moments = any(rec.magmoms is not None for rec in records)

        f = self._file
        if with_moments:
            self._ensure_magmom_layout()
        if "magmom_kinds" in f:
            kinds = np.fromiter(
                (0 if rec.magmoms is None else (1 if rec.magmoms.ndim == 1 else 3) for rec in records), np.int8, n_new
            )
            moments = np.full((atoms_stop - atoms_start, 3), np.nan)  # (sum N, 3)
            local = np.concatenate([[0], np.cumsum(counts)])
            for j, rec in enumerate(records):
                if rec.magmoms is not None:
                    lo, hi = local[j], local[j + 1]
                    if rec.magmoms.ndim == 1:
                        moments[lo:hi, 0] = rec.magmoms
                    else:
                        moments[lo:hi] = rec.magmoms
            self._write(f["magmom_kinds"], start, stop, kinds)
            self._write(f["magmoms"], atoms_start, atoms_stop, moments)
        self._write(f["lattices"], start, stop, lattices)
        self._write(f["frac_coords"], atoms_start, atoms_stop, frac)
        self._write(f["atomic_numbers"], atoms_start, atoms_stop, numbers)
        for name, values in (("ids", ids), ("sources", sources), ("labels", labels)):
            self._write(f[name], start, stop, np.array(values, dtype=object))
        group = f["properties"]
        for name in set(group) | set(names):
            if name not in group:
                group.create_dataset(
                    name, data=np.full(start, np.nan), maxshape=(None,), chunks=(_CHUNK_RECORDS,), fillvalue=np.nan
                )
            column = np.fromiter((rec.properties.get(name, np.nan) for rec in records), np.float64, n_new)
            self._write(group[name], start, stop, column)
        self._write(f["offsets"], start + 1, stop + 1, new_offsets)
        f.attrs["num_records"] = stop  # the commit: written last
        f.flush()

        self._num = stop
        self._offsets = np.concatenate([self._offsets, new_offsets])
        if self._ids is not None:
            self._ids.extend(ids)
        if self._id_index is not None:
            self._id_index.update(zip(ids, range(start, stop)))

    @staticmethod
    def _write(ds: h5py.Dataset, start: int, stop: int, values: np.ndarray) -> None:
        if ds.shape[0] != stop:
            ds.resize(stop, axis=0)
        ds[start:stop] = values

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return self._num

    @property
    def property_names(self) -> list[str]:
        """Names of the property columns (a record may lack some: NaN in the file)."""
        return sorted(self._file["properties"])

    @property
    def ids(self) -> list[str]:
        """Every id, in store order (read once, then cached)."""
        if self._ids is None:
            self._ids = list(self._file["ids"].asstr()[: self._num])
        return list(self._ids)

    def _index(self) -> dict[str, int]:
        if self._id_index is None:
            if self._ids is None:
                self._ids = list(self._file["ids"].asstr()[: self._num])
            self._id_index = {id_: i for i, id_ in enumerate(self._ids)}
        return self._id_index

    def __contains__(self, id: object) -> bool:
        return id in self._index()

    def get(self, id: str, default: Any = None) -> CrystalRecord | Any:
        """The record with this id, or ``default`` when there is none (like ``dict.get``)."""
        i = self._index().get(id)
        return default if i is None else self._read_range(i, i + 1)[0]

    def __getitem__(self, key: int | slice | Sequence[int] | np.ndarray) -> CrystalRecord | list[CrystalRecord]:
        n = self._num
        if isinstance(key, (int, np.integer)):
            i = int(key)
            if not -n <= i < n:
                raise IndexError(f"record index must be in [-{n}, {n}), got {i}")
            i %= n
            return self._read_range(i, i + 1)[0]
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            if step == 1:
                return self._read_range(start, max(start, stop))
            return self._read_indices(np.arange(start, stop, step))
        idx = np.asarray(key)
        if idx.dtype == bool:
            if idx.shape != (n,):
                raise IndexError(f"a boolean mask must have shape ({n},), got {idx.shape}")
            idx = np.flatnonzero(idx)
        if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise IndexError(f"index with an int, a slice or a 1-D array of ints, got {type(key).__name__} {idx.dtype}")
        idx = idx.astype(np.int64)
        bad = (idx < -n) | (idx >= n)
        if np.any(bad):
            raise IndexError(f"record indices must be in [-{n}, {n}), got {int(idx[bad][0])}")
        return self._read_indices(idx % n if n else idx)

    def _read_indices(self, idx: np.ndarray) -> list[CrystalRecord]:
        """Records at ``idx`` (any order, repeats allowed): nearby indices are read as one range."""
        if idx.size == 0:
            return []
        uniq = np.unique(idx)
        breaks = np.flatnonzero(np.diff(uniq) > _GAP) + 1
        by_index: dict[int, CrystalRecord] = {}
        for run in np.split(uniq, breaks):
            lo, hi = int(run[0]), int(run[-1]) + 1
            block = self._read_range(lo, hi)
            for i in run.tolist():
                by_index[i] = block[i - lo]
        return [by_index[i] for i in idx.tolist()]

    def iter_chunks(self, size: int = 65536) -> Iterator[list[CrystalRecord]]:
        """Lists of at most ``size`` consecutive records, one bulk read each."""
        if size < 1:
            raise StoreError(f"chunk size must be at least 1, got {size}")
        for start in range(0, self._num, size):
            yield self._read_range(start, min(start + size, self._num))

    def __iter__(self) -> Iterator[CrystalRecord]:
        for chunk in self.iter_chunks(_CHUNK_RECORDS):
            yield from chunk

    def read_all(self) -> list[CrystalRecord]:
        """Every record, in store order."""
        return self._read_range(0, self._num)

    def _read_range(self, start: int, stop: int, source: str | None = None) -> list[CrystalRecord]:
        """Records ``start:stop``: one slice per dataset, a bulk check, then views cut per record."""
        if stop <= start:
            return []
        f = self._file
        offsets = self._offsets[start : stop + 1]  # (m + 1,)
        a0, a1 = int(offsets[0]), int(offsets[-1])
        lattices = f["lattices"][start:stop].astype(np.float64, copy=False)  # (m, 3, 3)
        frac = f["frac_coords"][a0:a1].astype(np.float64, copy=False)  # (sum N, 3)
        numbers = f["atomic_numbers"][a0:a1].astype(np.int64)  # (sum N,)
        ids = f["ids"].asstr()[start:stop].tolist()
        sources = f["sources"].asstr()[start:stop].tolist() if source is None else None
        labels_json = f["labels"].asstr()[start:stop].tolist()
        group = f["properties"]
        names = sorted(group)
        columns = [group[name][start:stop] for name in names]
        self._check_block(start, lattices, frac, numbers, columns, names)
        kinds, moments = self._read_magmoms(start, stop, a0, a1)
        for arr in (lattices, frac, numbers):
            arr.setflags(write=False)  # the records' arrays are read-only views of these
        columns = [c.tolist() for c in columns]
        local = (offsets - a0).tolist()
        out = []
        for j in range(stop - start):
            props = {name: col[j] for name, col in zip(names, columns) if col[j] == col[j]}  # NaN: missing
            text = labels_json[j]
            try:
                labels = {} if text == "{}" else json.loads(text, parse_constant=_reject_constant)
            except ValueError as err:
                raise StoreError(
                    f"labels must be a JSON object, got {text[:80]!r} at record {start + j}: {err}"
                ) from err
            if not isinstance(labels, dict):
                raise StoreError(f"labels must be a JSON object, got {text[:80]!r} at record {start + j}")
            lo, hi = local[j], local[j + 1]
            kind = 0 if kinds is None else kinds[j]
            magmoms = None if kind == 0 else (moments[lo:hi, 0] if kind == 1 else moments[lo:hi])
            out.append(
                CrystalRecord._from_checked(
                    lattices[j],
                    frac[lo:hi],
                    numbers[lo:hi],
                    props,
                    labels,
                    ids[j],
                    sources[j] if source is None else f"{source}:entry {start + j}",
                    magmoms,
                )
            )
        return out

    def _read_magmoms(self, start: int, stop: int, a0: int, a1: int) -> tuple[list[int] | None, np.ndarray | None]:
        """Per-record moment kinds and the block's (sum N, 3) moments, checked; (None, None) without them."""
        f = self._file
        if "magmom_kinds" not in f:
            return None, None
        if "magmoms" not in f or f["magmom_kinds"].shape[0] < stop or f["magmoms"].shape[0] < a1:
            raise StoreError(f"magmom_kinds and magmoms must cover every record and site, they do not in {self._path}")
        kinds = f["magmom_kinds"][start:stop].astype(np.int64)  # (m,)
        bad = ~np.isin(kinds, (0, 1, 3))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise StoreError(f"magmom_kinds must be 0, 1 or 3, got {kinds[i]} at record {start + i} in {self._path}")
        moments = f["magmoms"][a0:a1].astype(np.float64, copy=False)  # (sum N, 3)
        counts = np.diff(self._offsets[start : stop + 1])  # (m,)
        per_site = np.repeat(kinds, counts)  # (sum N,)
        needed = np.where(per_site[:, None] == 3, True, (per_site[:, None] == 1) & (np.arange(3) == 0))
        bad = needed & ~np.isfinite(moments)
        if bad.any():
            site = int(np.flatnonzero(bad.any(axis=1))[0])
            record = start + int(np.searchsorted(np.cumsum(counts), site, side="right"))
            raise StoreError(f"magmoms must be finite numbers, got NaN or infinity at record {record} in {self._path}")
        moments.setflags(write=False)
        return kinds.tolist(), moments

    def _check_block(
        self,
        start: int,
        lattices: np.ndarray,
        frac: np.ndarray,
        numbers: np.ndarray,
        columns: list[np.ndarray],
        names: list[str],
    ) -> None:
        """The record rules, checked on a whole block at once (the file may not come from us)."""

        def first(mask: np.ndarray) -> int:
            return int(np.flatnonzero(mask)[0])

        where = f"in {self._path}"
        bad = ~np.isfinite(lattices).all(axis=(1, 2))
        if bad.any():
            i = start + first(bad)
            raise StoreError(f"lattice must contain finite numbers, got NaN or infinity at record {i} {where}")
        volumes = np.abs(np.linalg.det(lattices))  # (m,)
        bad = ~(volumes > 1e-6)
        if bad.any():
            i = first(bad)
            volume = volumes[i]
            raise StoreError(f"cell volume must be positive, got {volume:.3g} Angstrom^3 at record {start + i} {where}")
        bad = ~((frac >= 0.0) & (frac < 1.0)).all(axis=1)
        if bad.any():
            raise StoreError(f"frac_coords must be finite and in [0, 1), got {frac[first(bad)].tolist()} {where}")
        bad = (numbers < 1) | (numbers > 118)
        if bad.any():
            raise StoreError(f"atomic numbers must be between 1 and 118, got {numbers[first(bad)]} {where}")
        for name, col in zip(names, columns):
            bad = np.isinf(col)
            if bad.any():
                raise StoreError(f"property {name!r} must be finite or NaN (missing), got {col[first(bad)]} {where}")


def write_store(path: str | os.PathLike, records: Iterable[CrystalRecord], *, overwrite: bool = False) -> Path:
    """Write ``records`` to a new store at ``path`` atomically and return ``path``.

    The file is built under a temporary name in the same folder and renamed at the end: if anything
    fails, the temporary file is removed and an existing ``path`` (with ``overwrite=True``) is intact.
    An iterable is appended in batches of 65,536 records.
    """
    path = Path(path)
    with CrystalStore.create(path, overwrite=overwrite) as store:
        batch: list[CrystalRecord] = []
        for rec in records:
            batch.append(rec)
            if len(batch) >= _WRITE_BATCH:
                store.append(batch)
                batch = []
        store.append(batch)
    return path

"""Crystals as one ``.npz`` file: training items or generated samples, moved between machines without pickle.

A GPU node often has PyTorch but not the materials stack (pymatgen, spglib). The benchmarks therefore
prepare training crystals where td-data is installed, train and sample where the GPU is, and evaluate
back where td-data is. Between the stages the crystals travel as one file written by
:func:`save_crystals` and read by :func:`load_crystals`:

* ragged arrays: ``lattice`` (B, 3, 3), ``num_atoms`` (B,), ``frac_coords`` (sum N, 3), ``atomic_numbers``
  (sum N,) concatenated in crystal order;
* one column per scalar field of the crystals (``topo_class``, ``band_gap``, ...; a nested dict such as a
  sample's ``conditions`` becomes ``conditions.topo_class`` ...): numbers as float64 with NaN for ``None``
  (restored as int where every value was an int), strings as a unicode column;
* a JSON ``metadata`` dict of the caller's.

The file holds only numeric and unicode arrays, so it is read with ``allow_pickle=False``; it is written to a
temporary file and renamed into place.

>>> import tempfile, numpy as np
>>> crystal = {"lattice": np.eye(3) * 4.0, "frac_coords": [[0, 0, 0], [0.5, 0.5, 0.5]],
...            "atomic_numbers": [11, 17], "conditions": {"topo_class": None, "band_gap": 1.5}}
>>> with tempfile.TemporaryDirectory() as d:
...     path = save_crystals(f"{d}/x.npz", [crystal], metadata={"what": "demo"})
...     back, meta = load_crystals(path)
>>> back[0]["atomic_numbers"].tolist(), back[0]["conditions"], meta
([11, 17], {'band_gap': 1.5, 'topo_class': None}, {'what': 'demo'})
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from td_models.exceptions import TDModelsError
from td_physics.files import atomic_write

__all__ = ["save_crystals", "load_crystals", "CRYSTAL_FILE_FORMAT"]

CRYSTAL_FILE_FORMAT = ("td-models-crystals", 1)
_ARRAYS = ("lattice", "frac_coords", "atomic_numbers")


class CrystalFileError(TDModelsError):
    """A crystal file that cannot be written or read."""


def _flatten(crystal: Mapping[str, Any], where: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in crystal.items():
        if key in _ARRAYS:
            continue
        if "." in key or "/" in key:
            raise CrystalFileError(f"{where}: field names must not contain '.' or '/', got {key!r}")
        if isinstance(value, Mapping):
            for sub, v in value.items():
                if isinstance(v, Mapping):
                    raise CrystalFileError(f"{where}: field {key}.{sub} nests deeper than one level")
                flat[f"{key}.{sub}"] = v
        else:
            flat[key] = value
    return flat


def _column(name: str, values: list[Any]) -> tuple[np.ndarray, str]:
    """(array, kind) with kind 'int', 'float', 'bool' or 'str'; None becomes NaN (numbers) or '' (str)."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, str) for v in present):
        return np.array(["" if v is None else v for v in values], dtype=str), "str"
    kinds = set()
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        if v is None:
            continue
        if isinstance(v, (bool, np.bool_)):
            kinds.add("bool")
        elif isinstance(v, (int, np.integer)):
            kinds.add("int")
        elif isinstance(v, (float, np.floating)):
            kinds.add("float")
        else:
            raise CrystalFileError(
                f"field {name!r} must hold numbers, strings or None, got {type(v).__name__} in crystal {i}"
            )
        out[i] = float(v)
    kind = "float" if "float" in kinds or not kinds else ("bool" if kinds == {"bool"} else "int")
    return out, kind


def save_crystals(
    path: str | os.PathLike, crystals: Sequence[Mapping[str, Any]], metadata: Mapping[str, Any] | None = None
) -> Path:
    """Write ``crystals`` (dicts with ``lattice``, ``frac_coords``, ``atomic_numbers`` and scalar fields) and a
    JSON-able ``metadata`` dict to ``path`` (``.npz``), atomically. Returns the path."""
    path = Path(path)
    if not crystals:
        raise CrystalFileError(f"save_crystals needs at least one crystal for {str(path)!r}, got none")
    lattices, fracs, zs, counts, flats = [], [], [], [], []
    for i, c in enumerate(crystals):
        try:
            lat = np.asarray(c["lattice"], dtype=np.float64)
            frac = np.asarray(c["frac_coords"], dtype=np.float64).reshape(-1, 3)
            z = np.asarray(c["atomic_numbers"]).reshape(-1)
        except KeyError as exc:
            raise CrystalFileError(f"crystal {i} must have key {exc.args[0]!r}") from exc
        if lat.shape != (3, 3) or len(z) != len(frac) or len(z) == 0:
            raise CrystalFileError(
                f"crystal {i}: need lattice (3, 3) and as many atomic numbers as coordinates (>= 1), "
                f"got {lat.shape}, {len(z)} and {len(frac)}"
            )
        if not np.issubdtype(z.dtype, np.integer):
            raise CrystalFileError(f"crystal {i}: atomic_numbers must be integers, got dtype {z.dtype}")
        lattices.append(lat)
        fracs.append(frac)
        zs.append(z.astype(np.int64))
        counts.append(len(z))
        flats.append(_flatten(c, f"crystal {i}"))
    names = sorted({k for f in flats for k in f})
    arrays: dict[str, np.ndarray] = {
        "lattice": np.stack(lattices),
        "num_atoms": np.asarray(counts, dtype=np.int64),
        "frac_coords": np.concatenate(fracs),
        "atomic_numbers": np.concatenate(zs),
    }
    kinds = {}
    for name in names:
        arrays[f"field/{name}"], kinds[name] = _column(name, [f.get(name) for f in flats])
    try:
        header = json.dumps(
            {
                "format": CRYSTAL_FILE_FORMAT[0],
                "format_version": CRYSTAL_FILE_FORMAT[1],
                "fields": kinds,
                "metadata": dict(metadata or {}),
            },
            allow_nan=False,
        )
    except (TypeError, ValueError) as exc:
        raise CrystalFileError(f"metadata must be JSON-serialisable (finite numbers), got an error: {exc}") from exc
    arrays["header"] = np.array(header)
    return atomic_write(path, lambda tmp: np.savez_compressed(tmp, **arrays), suffix=".tmp.npz")


def _restore(value: float | str, kind: str) -> Any:
    if kind == "str":
        return value or None
    if math.isnan(value):
        return None
    if kind == "int":
        return int(value)
    if kind == "bool":
        return bool(value)
    return float(value)


def load_crystals(path: str | os.PathLike) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``(crystals, metadata)`` from a file written by :func:`save_crystals` (no pickle is ever loaded)."""
    path = Path(path)
    if not path.is_file():
        raise CrystalFileError(f"crystal file must exist, got {str(path)!r}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise CrystalFileError(f"could not read crystal file {str(path)!r}: {exc}") from exc
    try:
        header = json.loads(str(arrays["header"]))
    except (KeyError, ValueError) as exc:
        raise CrystalFileError(f"{str(path)!r} is not a td-models crystal file (no readable header)") from exc
    if header.get("format") != CRYSTAL_FILE_FORMAT[0] or header.get("format_version") != CRYSTAL_FILE_FORMAT[1]:
        raise CrystalFileError(
            f"{str(path)!r} has format {header.get('format')!r} version {header.get('format_version')!r}; "
            f"this td-models reads {CRYSTAL_FILE_FORMAT[0]!r} version {CRYSTAL_FILE_FORMAT[1]}"
        )
    counts = arrays["num_atoms"]
    offsets = np.concatenate([[0], np.cumsum(counts)])
    if offsets[-1] != len(arrays["atomic_numbers"]) or len(counts) != len(arrays["lattice"]):
        raise CrystalFileError(f"{str(path)!r} is inconsistent: atom counts do not match the stored arrays")
    fields = header["fields"]
    crystals = []
    for b in range(len(counts)):
        lo, hi = offsets[b], offsets[b + 1]
        crystal: dict[str, Any] = {
            "lattice": arrays["lattice"][b],
            "frac_coords": arrays["frac_coords"][lo:hi],
            "atomic_numbers": arrays["atomic_numbers"][lo:hi],
        }
        for name, kind in fields.items():
            value = _restore(arrays[f"field/{name}"][b].item(), kind)
            if "." in name:
                outer, inner = name.split(".", 1)
                crystal.setdefault(outer, {})[inner] = value
            else:
                crystal[name] = value
        crystals.append(crystal)
    return crystals, header["metadata"]

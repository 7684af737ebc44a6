"""The native model file: the schema of :func:`model_to_dict` in JSON or HDF5.

This module knows the format, not the class: the functions that build a model take the class
(``cls``) as their first argument and are the methods ``TightBindingModel.from_dict`` and
``TightBindingModel.load``; :mod:`td_physics.io` offers all of them as functions.

Native format
-------------
:func:`save_model` and :func:`load_model` choose the container by suffix: ``.json`` or ``.h5`` /
``.hdf5``. Both hold the same content, the schema of :func:`model_to_dict` (format
``"td-physics.tight-binding-model"``, version 1)::

    {
      "format": "td-physics.tight-binding-model",
      "version": 1,
      "name": "BHZ",
      "lattice": [[a11, a12, a13], ...],      # (dim_r, dim_r) Angstrom, rows are lattice vectors
      "dim_k": 2,                             # number of periodic directions
      "spinful": true,                        # two orbitals (up, down) per site
      "site_positions": [[x, y, z], ...],     # (nsite, dim_r) reduced coordinates
      "labels": ["s0", ...],                  # one per site
      "occupied": 2,                          # or null (half filling)
      "onsite": {"real": [[...]], "imag": [[...]]},              # H0, (norb, norb) eV
      "hoppings": [{"R": [1, 0], "real": [[...]], "imag": [[...]]}, ...],  # T_R, sorted by R
      "inversion": null,   # or {"permutation": [...], "parities": [...], "centre": [...], "shifts": [[...]]}
      "metadata": {...}    # JSON values only: str, finite numbers, bool, null, lists, str-keyed dicts
    }

with ``H(k) = H0 + sum_R [T_R exp(2 pi i k.R) + h.c.]`` (see :mod:`td_physics.model`). JSON floats
are written with the shortest round-tripping repr, so a saved model reloads bit for bit. The HDF5
file stores the arrays as datasets (``lattice``, ``site_positions``, ``onsite`` complex,
``hopping_R`` (nR, dim_k) int, ``hopping_T`` (nR, norb, norb) complex, ``metadata`` JSON text)
and the rest as attributes (``labels`` and ``inversion`` as JSON text). Files are written atomically: to a
temporary file in the same folder, flushed with ``fsync``, then moved over the target with
``os.replace``, so a crash never leaves a half-written model behind.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from td_physics.exceptions import FileFormatError, ModelDefinitionError
from td_physics.files import atomic_write
from td_physics.inversion import InversionSymmetry
from td_physics.jsonable import to_jsonable

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "model_to_dict",
    "model_from_dict",
    "save_model",
    "load_model",
]

M = TypeVar("M")

logger = logging.getLogger(__name__)

FORMAT_NAME = "td-physics.tight-binding-model"
FORMAT_VERSION = 1

_JSON_SUFFIXES = (".json",)
_HDF5_SUFFIXES = (".h5", ".hdf5")
_REQUIRED_KEYS = (
    "format",
    "version",
    "lattice",
    "dim_k",
    "spinful",
    "site_positions",
    "onsite",
    "hoppings",
)


# ---------------------------------------------------------------------------------------- dict
def _inversion_to_dict(op: InversionSymmetry | None) -> dict[str, Any] | None:
    if op is None:
        return None
    return {
        "permutation": [int(p) for p in op.permutation],
        "parities": [int(p) for p in op.parities],
        "centre": [float(c) for c in op.centre],
        "shifts": [[int(x) for x in s] for s in op.shifts],
    }


def model_to_dict(model: Any) -> dict[str, Any]:
    """The model as a JSON-safe dictionary (schema in the module docstring, version 1).

    Raises :class:`FileFormatError` if ``model.metadata`` holds values JSON cannot represent
    (objects, complex numbers, NaN); numpy scalars and real arrays are converted to numbers and lists.
    """
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "name": str(model.name),
        "lattice": model.lattice.tolist(),
        "dim_k": int(model.dim_k),
        "spinful": bool(model.spinful),
        "site_positions": model.site_positions.tolist(),
        "labels": [str(label) for label in model.site_labels],
        "occupied": None if model.occupied is None else int(model.occupied),
        "onsite": {"real": model.onsite.real.tolist(), "imag": model.onsite.imag.tolist()},
        "hoppings": [
            {"R": [int(x) for x in r], "real": t.real.tolist(), "imag": t.imag.tolist()}
            for r, t in sorted(model.hoppings.items())
        ],
        "inversion": _inversion_to_dict(model.inversion),
        "metadata": to_jsonable(dict(model.metadata), where="metadata"),
    }


def _complex_matrix(entry: Any, where: str, norb: int) -> np.ndarray:
    if not isinstance(entry, Mapping) or "real" not in entry or "imag" not in entry:
        raise FileFormatError(f"{where} must be an object with 'real' and 'imag' matrices, got {type(entry).__name__}")
    try:
        re = np.asarray(entry["real"], dtype=float)
        im = np.asarray(entry["imag"], dtype=float)
    except (TypeError, ValueError) as exc:
        raise FileFormatError(f"{where} must hold numbers: {exc}") from exc
    if re.shape != (norb, norb) or im.shape != (norb, norb):
        raise FileFormatError(
            f"{where} must be ({norb}, {norb}) matrices (norb={norb}), got real {re.shape} and imag {im.shape}"
        )
    return re + 1j * im


def _check_format(fmt: Any, version: Any) -> None:
    if fmt != FORMAT_NAME:
        raise FileFormatError(f"format must be {FORMAT_NAME!r}, got {fmt!r}")
    if not isinstance(version, (int, np.integer)) or isinstance(version, bool):
        raise FileFormatError(f"version must be an integer, got {version!r}")
    if int(version) != FORMAT_VERSION:
        newer = " (written by a newer td-physics; upgrade to read it)" if int(version) > FORMAT_VERSION else ""
        raise FileFormatError(
            f"unsupported format version {int(version)}, this reader knows version {FORMAT_VERSION}{newer}"
        )


def _check_header(d: Any) -> None:
    if not isinstance(d, Mapping):
        raise FileFormatError(f"a model must be a JSON object (dict), got {type(d).__name__}")
    _check_format(d.get("format"), d.get("version"))
    missing = [key for key in _REQUIRED_KEYS if key not in d]
    if missing:
        raise FileFormatError(f"model is missing the required keys {missing}")


def model_from_dict(cls: type[M], d: Mapping[str, Any]) -> M:
    """Rebuild a model of class ``cls`` from :func:`model_to_dict` output; raises :class:`FileFormatError` if
    malformed."""
    _check_header(d)
    try:
        model = cls(
            d["lattice"],
            d["site_positions"],
            dim_k=int(d["dim_k"]),
            spinful=bool(d["spinful"]),
            labels=d.get("labels"),
            occupied=d.get("occupied"),
            name=str(d.get("name", "")),
        )
    except (ModelDefinitionError, TypeError, ValueError) as exc:
        raise FileFormatError(f"invalid model description: {exc}") from exc
    norb = model.norb
    onsite = _complex_matrix(d["onsite"], "onsite", norb)
    hoppings: dict[tuple[int, ...], np.ndarray] = {}
    if not isinstance(d["hoppings"], Sequence):
        raise FileFormatError(
            f"hoppings must be a list of {{R, real, imag}} objects, got {type(d['hoppings']).__name__}"
        )
    for n, entry in enumerate(d["hoppings"]):
        if not isinstance(entry, Mapping) or "R" not in entry:
            raise FileFormatError(f"hoppings[{n}] must be an object with keys R, real, imag, got {entry!r:.80}")
        r = np.asarray(entry["R"])
        if r.shape != (model.dim_k,) or r.dtype.kind not in "iu":
            raise FileFormatError(f"hoppings[{n}].R must be {model.dim_k} integers (dim_k), got {entry['R']!r}")
        key = tuple(int(x) for x in r)
        if key in hoppings:
            raise FileFormatError(f"hoppings list R={key} twice; each R must appear once")
        hoppings[key] = _complex_matrix(entry, f"hoppings[{n}] (R={key})", norb)
    try:
        model.set_onsite(onsite)
        rebuilt = cls.from_hopping_matrices(  # type: ignore[attr-defined]
            model.lattice,
            model.site_positions,
            model.onsite,
            hoppings,
            dim_k=model.dim_k,
            spinful=model.spinful,
            labels=model.site_labels,
            occupied=model.occupied,
            name=model.name,
        )
    except ModelDefinitionError as exc:
        raise FileFormatError(f"invalid model description: {exc}") from exc
    rebuilt.inversion = _inversion_from_dict(d.get("inversion"), rebuilt)
    metadata = d.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise FileFormatError(f"metadata must be an object (dict), got {type(metadata).__name__}")
    rebuilt.metadata = dict(metadata)
    return rebuilt


def _inversion_from_dict(d: Any, model: Any) -> InversionSymmetry | None:
    if d is None:
        return None
    try:
        op = InversionSymmetry(
            permutation=tuple(int(p) for p in d["permutation"]),
            parities=tuple(int(p) for p in d["parities"]),
            centre=tuple(float(c) for c in d["centre"]),
            shifts=tuple(tuple(int(x) for x in s) for s in d["shifts"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise FileFormatError(
            f"inversion must be null or an object with permutation, parities, centre, shifts: {exc!r}"
        ) from exc
    n = model.norb
    if sorted(op.permutation) != list(range(n)) or len(op.parities) != n or len(op.shifts) != n:
        raise FileFormatError(
            f"inversion must give a permutation, parities and shifts for each of the {n} orbitals, got "
            f"{len(op.permutation)}, {len(op.parities)} and {len(op.shifts)} entries"
        )
    return op


# ---------------------------------------------------------------------------------------- files
def _container(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in _JSON_SUFFIXES:
        return "json"
    if suffix in _HDF5_SUFFIXES:
        return "hdf5"
    raise FileFormatError(f"model files must end in .json, .h5 or .hdf5, got {path.name!r}")


def save_model(model: Any, path: str | os.PathLike[str]) -> None:
    """Save ``model`` to ``path`` (``.json`` or ``.h5`` / ``.hdf5``), atomically."""
    path = Path(path)
    kind = _container(path)
    if kind == "json":
        text = json.dumps(model_to_dict(model), allow_nan=False)

        def write(tmp: Path) -> None:
            tmp.write_text(text + "\n", encoding="utf-8")

    else:
        write = _hdf5_writer(model)
    atomic_write(path, write)
    logger.debug("saved %r to %s", model, path)


def load_model(cls: type[M], path: str | os.PathLike[str]) -> M:
    """Load a model of class ``cls`` written by :func:`save_model`; raises :class:`FileFormatError` if malformed."""
    path = Path(path)
    kind = _container(path)
    if kind == "json":
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FileFormatError(f"{path.name} is not valid JSON: {exc}") from exc
        return model_from_dict(cls, d)
    return _read_hdf5(cls, path)


def _hdf5_writer(model: Any) -> Callable[[Path], None]:
    import h5py

    d = model_to_dict(model)  # validates the metadata before anything is written
    hops = sorted(model.hoppings.items())
    r_vectors = np.array([r for r, _ in hops], dtype=np.int64).reshape(len(hops), model.dim_k)
    t_matrices = np.array([t for _, t in hops], dtype=complex).reshape(len(hops), model.norb, model.norb)

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT_NAME
            f.attrs["version"] = FORMAT_VERSION
            f.attrs["name"] = d["name"]
            f.attrs["dim_k"] = d["dim_k"]
            f.attrs["spinful"] = d["spinful"]
            f.attrs["occupied"] = json.dumps(d["occupied"])
            f.attrs["labels"] = json.dumps(d["labels"])
            f.attrs["inversion"] = json.dumps(d["inversion"])
            f.create_dataset("metadata", data=json.dumps(d["metadata"], allow_nan=False))  # no 64 KiB attribute limit
            f.create_dataset("lattice", data=model.lattice)
            f.create_dataset("site_positions", data=model.site_positions)
            f.create_dataset("onsite", data=model.onsite)
            f.create_dataset("hopping_R", data=r_vectors)
            f.create_dataset("hopping_T", data=t_matrices)

    return write


def _read_hdf5(cls: type[M], path: Path) -> M:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise FileFormatError(f"{path.name} is not a readable HDF5 file: {exc}") from exc
    with f:
        attrs = dict(f.attrs)
        version = attrs.get("version")
        d: dict[str, Any] = {
            "format": _attr_str(attrs.get("format")),
            "version": int(version) if isinstance(version, (int, np.integer)) else version,
        }
        _check_format(d["format"], d["version"])
        missing = [name for name in ("lattice", "site_positions", "onsite", "hopping_R", "hopping_T") if name not in f]
        missing += [name for name in ("dim_k", "spinful") if name not in attrs]
        if missing:
            raise FileFormatError(f"{path.name} is missing the required datasets or attributes {missing}")
        try:
            d["name"] = _attr_str(attrs.get("name", ""))
            d["dim_k"] = int(attrs["dim_k"])
            d["spinful"] = bool(attrs["spinful"])
            d["occupied"] = json.loads(_attr_str(attrs.get("occupied", "null")))
            d["labels"] = json.loads(_attr_str(attrs.get("labels", "null")))
            d["inversion"] = json.loads(_attr_str(attrs.get("inversion", "null")))
            d["metadata"] = json.loads(_attr_str(f["metadata"][()])) if "metadata" in f else {}
        except (json.JSONDecodeError, TypeError, ValueError) as exc:
            raise FileFormatError(f"{path.name} has a malformed attribute: {exc}") from exc
        d["lattice"] = f["lattice"][()]
        d["site_positions"] = f["site_positions"][()]
        onsite = np.asarray(f["onsite"][()])
        r_vectors = np.asarray(f["hopping_R"][()])
        t_matrices = np.asarray(f["hopping_T"][()])
    if r_vectors.ndim != 2 or t_matrices.ndim != 3 or len(r_vectors) != len(t_matrices):
        raise FileFormatError(
            f"hopping_R must be (nR, dim_k) and hopping_T (nR, norb, norb) with the same nR, got "
            f"{r_vectors.shape} and {t_matrices.shape}"
        )
    d["onsite"] = {"real": onsite.real, "imag": onsite.imag}
    d["hoppings"] = [{"R": r, "real": t.real, "imag": t.imag} for r, t in zip(r_vectors, t_matrices, strict=True)]
    return model_from_dict(cls, d)


def _attr_str(value: Any) -> Any:
    return value.decode("utf-8") if isinstance(value, bytes) else value

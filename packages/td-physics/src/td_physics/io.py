"""Reading and writing tight-binding models: the native JSON / HDF5 format and Wannier90 files.

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

Wannier90
---------
:func:`read_wannier90_hr` parses ``seedname_hr.dat``: a comment line, ``num_wann``, ``nrpts``, the
``nrpts`` degeneracy weights (15 per line), then ``num_wann**2 * nrpts`` lines
``R1 R2 R3 m n Re(H) Im(H)`` with 1-based ``m``, ``n`` and ``H_mn(R) = <m, 0|H|n, R>`` in eV, so
that ``H(k) = sum_R exp(2 pi i k.R) H(R) / deg(R)``. :func:`model_from_wannier90` turns it into a
:class:`~td_physics.model.TightBindingModel`, :func:`write_wannier90_hr` writes one back.

Examples
--------
>>> import tempfile, pathlib
>>> import numpy as np
>>> from td_physics.model import TightBindingModel
>>> m = TightBindingModel([[1.0]], [[0.0]], name="chain")
>>> m.add_hopping(-1.0, 0, 0, (1,))
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> save_model(m, folder / "chain.json")
>>> load_model(folder / "chain.json").eigvalsh([[0.0], [0.5]])[:, 0].round(6)
array([-2.,  2.])
>>> write_wannier90_hr(m, folder / "chain_hr.dat", header="chain")
>>> model_from_wannier90(folder / "chain_hr.dat", lattice=[[1.0]], positions=[[0.0]]).eigvalsh([0.5]).round(6)
array([[2.]])
"""

from __future__ import annotations

import json
import logging
import math
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from td_physics.exceptions import FileFormatError, ModelDefinitionError
from td_physics.model import InversionSymmetry, TightBindingModel

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "BOHR_ANGSTROM",
    "model_to_dict",
    "model_from_dict",
    "save_model",
    "load_model",
    "Wannier90HR",
    "read_wannier90_hr",
    "read_wannier90_centres",
    "read_wannier90_unit_cell",
    "model_from_wannier90",
    "write_wannier90_hr",
]

logger = logging.getLogger(__name__)

FORMAT_NAME = "td-physics.tight-binding-model"
FORMAT_VERSION = 1
BOHR_ANGSTROM = 0.52917721092  # CODATA 2010, the value Wannier90 3.x uses by default

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
def _json_safe(value: Any, where: str) -> Any:
    """A copy of ``value`` made of plain JSON values; numpy scalars and arrays become numbers and lists."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise FileFormatError(f"{where} must hold JSON values; got a numpy array of dtype {value.dtype}")
        return _json_safe(value.tolist(), where)
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FileFormatError(f"{where} must be a finite number (JSON has no NaN or infinity), got {value}")
        return float(value)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise FileFormatError(f"{where} keys must be strings (JSON objects), got key {key!r}")
            out[key] = _json_safe(item, f"{where}[{key!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_json_safe(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise FileFormatError(
        f"{where} must hold JSON values (str, number, bool, None, list, dict), got {type(value).__name__}"
    )


def _inversion_to_dict(op: InversionSymmetry | None) -> dict[str, Any] | None:
    if op is None:
        return None
    return {
        "permutation": [int(p) for p in op.permutation],
        "parities": [int(p) for p in op.parities],
        "centre": [float(c) for c in op.centre],
        "shifts": [[int(x) for x in s] for s in op.shifts],
    }


def model_to_dict(model: TightBindingModel) -> dict[str, Any]:
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
        "metadata": _json_safe(dict(model.metadata), "metadata"),
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


def model_from_dict(d: Mapping[str, Any]) -> TightBindingModel:
    """Rebuild a model from :func:`model_to_dict` output; raises :class:`FileFormatError` if malformed."""
    _check_header(d)
    try:
        model = TightBindingModel(
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
        rebuilt = TightBindingModel.from_hopping_matrices(
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


def _inversion_from_dict(d: Any, model: TightBindingModel) -> InversionSymmetry | None:
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
def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` through a temporary sibling file: ``write(tmp)``, fsync, ``os.replace``."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        write(tmp)
        with open(tmp, "r+b") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if os.name == "posix":  # make the rename itself durable
        try:
            fd = os.open(path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)


def _container(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in _JSON_SUFFIXES:
        return "json"
    if suffix in _HDF5_SUFFIXES:
        return "hdf5"
    raise FileFormatError(f"model files must end in .json, .h5 or .hdf5, got {path.name!r}")


def save_model(model: TightBindingModel, path: str | os.PathLike[str]) -> None:
    """Save ``model`` to ``path`` (``.json`` or ``.h5`` / ``.hdf5``), atomically."""
    path = Path(path)
    kind = _container(path)
    if kind == "json":
        text = json.dumps(model_to_dict(model), allow_nan=False)

        def write(tmp: Path) -> None:
            tmp.write_text(text + "\n", encoding="utf-8")

    else:
        write = _hdf5_writer(model)
    _atomic_write(path, write)
    logger.debug("saved %r to %s", model, path)


def load_model(path: str | os.PathLike[str]) -> TightBindingModel:
    """Load a model written by :func:`save_model`; raises :class:`FileFormatError` if malformed."""
    path = Path(path)
    kind = _container(path)
    if kind == "json":
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FileFormatError(f"{path.name} is not valid JSON: {exc}") from exc
        return model_from_dict(d)
    return _read_hdf5(path)


def _hdf5_writer(model: TightBindingModel) -> Callable[[Path], None]:
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


def _read_hdf5(path: Path) -> TightBindingModel:
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
    return model_from_dict(d)


def _attr_str(value: Any) -> Any:
    return value.decode("utf-8") if isinstance(value, bytes) else value


# ---------------------------------------------------------------------------------------- Wannier90
@dataclass(frozen=True)
class Wannier90HR:
    """The content of a Wannier90 ``seedname_hr.dat`` file, as written (weights not yet applied).

    ``r_vectors`` (nrpts, dim) integer lattice vectors in file order (``dim`` is 3, or the
    ``dim_k`` asked for), ``degeneracy`` (nrpts,) Wigner-Seitz weights, ``matrices``
    (nrpts, num_wann, num_wann) complex ``H_mn(R) = <m, 0|H|n, R>`` in eV.
    """

    header: str
    r_vectors: np.ndarray
    degeneracy: np.ndarray
    matrices: np.ndarray

    @property
    def num_wann(self) -> int:
        """Number of Wannier functions."""
        return int(self.matrices.shape[1])

    def hamiltonian(self, k: Any) -> np.ndarray:
        """``H(k) = sum_R exp(2 pi i k.R) H(R) / deg(R)`` at reduced ``k`` (nk, dim); (nk, num_wann, num_wann)."""
        kk = np.atleast_2d(np.asarray(k, dtype=float))
        phases = np.exp(2j * np.pi * (kk @ self.r_vectors.T)) / self.degeneracy  # (nk, nrpts)
        return np.einsum("kr,rmn->kmn", phases, self.matrices)


def _int_line(lines: list[str], index: int, what: str, path: Path) -> int:
    text = lines[index].strip() if index < len(lines) else ""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise FileFormatError(
            f"{path.name} line {index + 1} must hold {what} (a positive integer) after the header line, got {text!r}"
        )
    return value


def read_wannier90_hr(path: str | os.PathLike[str], *, dim_k: int = 3) -> Wannier90HR:
    """Parse a Wannier90 ``seedname_hr.dat`` file (format in the module docstring).

    ``dim_k < 3`` keeps the first ``dim_k`` components of each R and checks that the others are
    zero (a 2D model written as a 3D file). Raises :class:`FileFormatError` naming the line or the
    rule for any malformed content.
    """
    path = Path(path)
    if dim_k not in (1, 2, 3):
        raise FileFormatError(f"dim_k must be 1, 2 or 3 for a Wannier90 file, got {dim_k!r}")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if len(lines) < 4:
        raise FileFormatError(f"{path.name} is too short for a Wannier90 _hr.dat file ({len(lines)} lines)")
    header = lines[0].strip()
    num_wann = _int_line(lines, 1, "num_wann", path)
    nrpts = _int_line(lines, 2, "nrpts", path)
    weights: list[int] = []
    line_no = 3
    while len(weights) < nrpts:
        if line_no >= len(lines):
            raise FileFormatError(f"{path.name} ends before its {nrpts} degeneracy weights (nrpts) are complete")
        tokens = lines[line_no].split()
        try:
            weights.extend(int(tok) for tok in tokens)
        except ValueError as exc:
            raise FileFormatError(
                f"{path.name} line {line_no + 1} must hold integer degeneracy weights (15 per line), "
                f"got {lines[line_no].strip()!r}"
            ) from exc
        line_no += 1
    if len(weights) != nrpts:
        raise FileFormatError(
            f"{path.name}: expected {nrpts} degeneracy weights (nrpts), got {len(weights)} on lines 4..{line_no}"
        )
    degeneracy = np.array(weights, dtype=int)
    if np.any(degeneracy < 1):
        raise FileFormatError(f"{path.name}: degeneracy weights must be positive integers, got {degeneracy.min()}")
    body = [(n, line) for n, line in enumerate(lines[line_no:], start=line_no + 1) if line.strip()]
    expected = nrpts * num_wann * num_wann
    if len(body) != expected:
        raise FileFormatError(
            f"{path.name} must have nrpts * num_wann**2 = {nrpts} * {num_wann}**2 = {expected} matrix element "
            f"lines after the weights, got {len(body)}"
        )
    try:
        data = np.array(" ".join(line for _, line in body).split(), dtype=float)
    except ValueError:
        data = None
    if data is None or data.size != 7 * expected:
        for n, line in body:  # find the first bad line for the message
            tokens = line.split()
            try:
                [float(tok) for tok in tokens]
            except ValueError:
                tokens = []
            if len(tokens) != 7:
                raise FileFormatError(
                    f"{path.name} line {n} must be 'R1 R2 R3 m n Re Im' (5 integers, 2 numbers), got {line.strip()!r}"
                ) from None
        raise FileFormatError(f"{path.name}: matrix element lines must each hold 7 numbers")
    data = data.reshape(expected, 7)  # (lines, 7)
    ints = data[:, :5]
    if not np.all(np.isfinite(data)) or not np.array_equal(ints, np.round(ints)):
        bad = int(np.argmax(~np.all(np.isfinite(data), axis=1) | np.any(ints != np.round(ints), axis=1)))
        raise FileFormatError(
            f"{path.name} line {body[bad][0]} must start with 5 integers (R1 R2 R3 m n) and hold finite "
            f"numbers, got {body[bad][1].strip()!r}"
        )
    ints = ints.astype(np.int64)
    mn = ints[:, 3:5]
    if np.any(mn < 1) or np.any(mn > num_wann):
        bad = int(np.argmax(np.any((mn < 1) | (mn > num_wann), axis=1)))
        raise FileFormatError(
            f"{path.name} line {body[bad][0]}: orbital indices m, n must be in 1..num_wann={num_wann}, "
            f"got {tuple(int(x) for x in mn[bad])}"
        )
    unique_r, first, inverse = np.unique(ints[:, :3], axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    if len(unique_r) != nrpts:
        raise FileFormatError(f"{path.name} declares nrpts={nrpts} lattice vectors but lists {len(unique_r)}")
    order = np.argsort(first)  # file order, matching the order of the degeneracy weights
    rank = np.empty_like(order)
    rank[order] = np.arange(nrpts)
    block = rank[inverse]
    flat = (block * num_wann + mn[:, 0] - 1) * num_wann + mn[:, 1] - 1
    if len(np.unique(flat)) != expected:
        raise FileFormatError(f"{path.name} lists some (R, m, n) matrix element twice (and so misses another)")
    matrices = np.zeros(nrpts * num_wann * num_wann, dtype=complex)
    matrices[flat] = data[:, 5] + 1j * data[:, 6]
    r_vectors = unique_r[order]  # (nrpts, 3)
    if dim_k < 3:
        extra = r_vectors[:, dim_k:]
        if np.any(extra != 0):
            bad = tuple(int(x) for x in r_vectors[int(np.argmax(np.any(extra != 0, axis=1)))])
            raise FileFormatError(
                f"{path.name}: with dim_k={dim_k} the components of R beyond the first {dim_k} must be zero, "
                f"got R={bad}"
            )
        r_vectors = r_vectors[:, :dim_k]
    return Wannier90HR(header, r_vectors.copy(), degeneracy, matrices.reshape(nrpts, num_wann, num_wann))


def read_wannier90_centres(path: str | os.PathLike[str]) -> np.ndarray:
    """Wannier centres (num_wann, 3), Cartesian Angstrom, from ``seedname_centres.xyz``.

    The file is XYZ: a count line, a comment line, then ``symbol x y z`` lines; Wannier centres
    have the symbol ``X`` (atoms, written when ``write_xyz`` includes them, are skipped).
    """
    path = Path(path)
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if not lines or not lines[0].strip().isdigit():
        raise FileFormatError(
            f"{path.name} must start with the number of entries (XYZ format), got {lines[0].strip() if lines else ''!r}"
        )
    centres = []
    for n, line in enumerate(lines[2:], start=3):
        tokens = line.split()
        if not tokens or tokens[0] != "X":
            continue
        try:
            if len(tokens) < 4:
                raise ValueError
            centres.append([float(tok) for tok in tokens[1:4]])
        except ValueError as exc:
            raise FileFormatError(f"{path.name} line {n} must be 'X x y z' (Angstrom), got {line.strip()!r}") from exc
    if not centres:
        raise FileFormatError(f"{path.name} holds no Wannier centres (lines starting with 'X')")
    return np.array(centres, dtype=float)


def read_wannier90_unit_cell(path: str | os.PathLike[str]) -> np.ndarray:
    """The (3, 3) lattice in Angstrom (rows are vectors) from the ``unit_cell_cart`` block of ``seedname.win``.

    An optional first line ``bohr`` or ``ang`` gives the unit (Angstrom by default); 1 bohr =
    :data:`BOHR_ANGSTROM` Angstrom. Comments (``!`` or ``#``) are ignored; keywords are case-insensitive.
    """
    path = Path(path)
    rows: list[list[float]] | None = None
    unit = "ang"
    for n, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        line = raw.split("!")[0].split("#")[0].replace("=", " ").replace(":", " ").strip().lower()
        tokens = line.split()
        if not tokens:
            continue
        if tokens == ["begin", "unit_cell_cart"]:
            rows = []
            continue
        if rows is None:
            continue
        if tokens == ["end", "unit_cell_cart"]:
            if len(rows) != 3:
                raise FileFormatError(
                    f"{path.name}: the unit_cell_cart block must hold 3 lattice vectors, got {len(rows)}"
                )
            lattice = np.array(rows, dtype=float)
            return lattice * BOHR_ANGSTROM if unit == "bohr" else lattice
        if len(tokens) == 1 and not rows and tokens[0] in ("bohr", "ang", "angstrom"):
            unit = "bohr" if tokens[0] == "bohr" else "ang"
            continue
        try:
            if len(tokens) != 3:
                raise ValueError
            rows.append([float(tok) for tok in tokens])
        except ValueError as exc:
            raise FileFormatError(
                f"{path.name} line {n}: unit_cell_cart lines must be 3 numbers (or a first line 'bohr' / 'ang'), "
                f"got {raw.strip()!r}"
            ) from exc
    if rows is None:
        raise FileFormatError(f"{path.name} has no 'begin unit_cell_cart' block")
    raise FileFormatError(f"{path.name}: the unit_cell_cart block is not closed by 'end unit_cell_cart'")


def _lex_positive(r: tuple[int, ...]) -> bool:
    for x in r:
        if x:
            return x > 0
    return False


def model_from_wannier90(
    hr_path: str | os.PathLike[str],
    lattice: Any = None,
    positions: Any = None,
    centres_path: str | os.PathLike[str] | None = None,
    win_path: str | os.PathLike[str] | None = None,
    spinful: bool = False,
    occupied: int | None = None,
    hermiticity_tol: float | None = 1e-6,
    *,
    dim_k: int | None = None,
    name: str | None = None,
) -> TightBindingModel:
    """A :class:`TightBindingModel` from a Wannier90 ``_hr.dat`` file.

    Conversion: ``H0 = H(0) / deg(0)`` made hermitian, and for each pair ``R, -R`` the
    lexicographically positive ``R`` keeps ``T_R = [H(R)/deg(R) + (H(-R)/deg(-R))^dagger] / 2``, so
    the model's ``H(k)`` is the hermitian part of the file's. ``hermiticity_tol`` (eV, default 1e-6;
    ``None`` turns the check off) bounds ``|H(-R)/deg(-R) - (H(R)/deg(R))^dagger|``; a larger
    deviation raises :class:`FileFormatError` naming the worst ``R``.

    The lattice (Angstrom, rows) comes from ``lattice``, else from the ``unit_cell_cart`` block of
    ``win_path``, else it is the identity (with a warning). ``dim_k`` defaults to the lattice's
    dimension; R components beyond it must be zero. Orbital positions (reduced) come from
    ``positions`` (one row per site), else from the Wannier centres of ``centres_path`` (Cartesian
    Angstrom, converted to reduced), else all sit at the origin (with a warning).

    ``spinful=True`` expects the spinor ordering of this package, up and down of each site
    interleaved (Wannier functions ``2 s`` and ``2 s + 1``); a site's position is the mean of its
    two centres. ``name`` defaults to the file name without ``_hr.dat``.
    """
    hr_path = Path(hr_path)
    if lattice is not None:
        lat = np.asarray(lattice, dtype=float)
    elif win_path is not None:
        lat = read_wannier90_unit_cell(win_path)
    else:
        if centres_path is not None:
            raise ModelDefinitionError(
                "Wannier centres are Cartesian (Angstrom) and need a lattice; pass lattice= or win_path="
            )
        logger.warning("no lattice given for %s: using the identity (positions are reduced anyway)", hr_path.name)
        lat = np.eye(3)
    if lat.ndim != 2 or lat.shape[0] != lat.shape[1] or lat.shape[0] not in (1, 2, 3):
        raise ModelDefinitionError(f"lattice must be a square (dim_r, dim_r) array with dim_r in 1..3, got {lat.shape}")
    dim_r = lat.shape[0]
    dim_k = dim_r if dim_k is None else int(dim_k)
    hr = read_wannier90_hr(hr_path, dim_k=dim_k)
    nw = hr.num_wann
    if spinful and nw % 2:
        raise ModelDefinitionError(f"a spinful model needs an even number of Wannier functions, got num_wann={nw}")
    nsite = nw // 2 if spinful else nw

    if positions is not None:
        sites = np.asarray(positions, dtype=float)
        if sites.ndim == 1 and dim_r == 1:
            sites = sites[:, None]
        if sites.shape != (nsite, dim_r):
            raise ModelDefinitionError(
                f"positions must be ({nsite}, {dim_r}) reduced coordinates (one row per site of the {nw} "
                f"Wannier functions), got shape {sites.shape}"
            )
    elif centres_path is not None:
        cart = read_wannier90_centres(centres_path)
        if len(cart) != nw:
            raise FileFormatError(
                f"{Path(centres_path).name} holds {len(cart)} Wannier centres, expected num_wann={nw}"
            )
        if dim_r < 3 and np.max(np.abs(cart[:, dim_r:])) > 1e-6:
            raise ModelDefinitionError(
                f"Wannier centres have Cartesian components beyond the {dim_r}D lattice (max "
                f"{np.max(np.abs(cart[:, dim_r:])):.3g} Angstrom); pass a 3x3 lattice with dim_k={dim_k}"
            )
        reduced = np.linalg.solve(lat.T, cart[:, :dim_r].T).T  # (nw, dim_r): cart = reduced @ lattice
        if spinful:
            split = float(np.max(np.linalg.norm(cart[0::2] - cart[1::2], axis=1)))
            if split > 0.05:
                logger.warning("spin-up and spin-down Wannier centres differ by up to %.3f Angstrom", split)
            reduced = 0.5 * (reduced[0::2] + reduced[1::2])
        sites = reduced
    else:
        logger.warning("no positions or Wannier centres given for %s: all orbitals sit at the origin", hr_path.name)
        sites = np.zeros((nsite, dim_r))

    mats = hr.matrices / hr.degeneracy[:, None, None]  # (nrpts, nw, nw), H(R) / deg(R)
    index = {tuple(int(x) for x in r): i for i, r in enumerate(hr.r_vectors)}
    zero = (0,) * dim_k
    if zero not in index:
        raise FileFormatError(f"{hr_path.name} has no R = 0 block (on-site terms)")
    h0 = mats[index[zero]]
    worst_dev, worst_r = float(np.max(np.abs(h0 - h0.conj().T))), zero
    hoppings: dict[tuple[int, ...], np.ndarray] = {}
    for r, i in index.items():
        if r == zero:
            continue
        neg = tuple(-x for x in r)
        if neg not in index:
            raise FileFormatError(f"{hr_path.name} lists R={r} but not -R={neg}; a hermitian Hamiltonian needs both")
        if not _lex_positive(r):
            continue
        t, t_neg = mats[i], mats[index[neg]]
        dev = float(np.max(np.abs(t_neg - t.conj().T)))
        if dev > worst_dev:
            worst_dev, worst_r = dev, r
        t_avg = 0.5 * (t + t_neg.conj().T)
        if np.any(t_avg):
            hoppings[r] = t_avg
    if hermiticity_tol is not None and worst_dev > hermiticity_tol:
        raise FileFormatError(
            f"{hr_path.name} is not hermitian: H(-R)/deg(-R) must equal (H(R)/deg(R))^dagger within "
            f"hermiticity_tol={hermiticity_tol:g} eV; worst R={worst_r} deviates by {worst_dev:.3e} eV"
        )
    model = TightBindingModel.from_hopping_matrices(
        lat,
        sites,
        0.5 * (h0 + h0.conj().T),
        hoppings,
        dim_k=dim_k,
        spinful=spinful,
        occupied=occupied,
        name=hr_path.name.removesuffix("_hr.dat") if name is None else name,
    )
    model.metadata["source"] = {"format": "wannier90_hr", "file": hr_path.name, "header": hr.header}
    return model


def write_wannier90_hr(model: TightBindingModel, path: str | os.PathLike[str], *, header: str | None = None) -> None:
    """Write ``model`` as a Wannier90 ``_hr.dat`` file, atomically.

    Every R and -R is written (``H(R) = T_R + T_{-R}^dagger``, ``H(0) = H0 + T_0 + T_0^dagger``)
    with degeneracy 1, R padded with zeros to 3 components, numbers with 17 significant digits so
    that :func:`model_from_wannier90` gives back the same ``H(k)``. Orbital positions are not part
    of the format; keep them (or write ``model.save``) separately.
    """
    path = Path(path)
    if header is None:
        stamp = datetime.now(timezone.utc).strftime("%d%b%Y at %H:%M:%S")
        header = f"written by td-physics on {stamp}"
    header = " ".join(str(header).split())  # one line
    norb, dim = model.norb, model.dim_k
    blocks: dict[tuple[int, ...], np.ndarray] = {(0,) * dim: model.onsite}
    for r, t in model.hoppings.items():
        neg = tuple(-x for x in r)
        blocks[r] = blocks.get(r, 0) + t
        blocks[neg] = blocks.get(neg, 0) + t.conj().T
    keys = sorted(blocks)
    out = [header, f"{norb:12d}", f"{len(keys):12d}"]
    for start in range(0, len(keys), 15):
        out.append("".join(f"{1:5d}" for _ in keys[start : start + 15]))
    m_idx, n_idx = np.meshgrid(np.arange(1, norb + 1), np.arange(1, norb + 1))  # m fastest, as Wannier90
    m_flat, n_flat = m_idx.ravel(), n_idx.ravel()
    for r in keys:
        r3 = tuple(r) + (0,) * (3 - dim)
        prefix = "".join(f" {x:4d}" for x in r3)
        values = blocks[r].T.ravel()  # element (m, n) in the order n outer, m inner
        out.extend(
            f"{prefix} {m:4d} {n:4d} {v.real:24.16e} {v.imag:24.16e}"
            for m, n, v in zip(m_flat.tolist(), n_flat.tolist(), values.tolist(), strict=True)
        )
    text = "\n".join(out) + "\n"
    _atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

"""Wannier90 files: ``seedname_hr.dat``, ``seedname_centres.xyz`` and the unit cell of ``seedname.win``.

:func:`read_wannier90_hr` parses ``seedname_hr.dat``: a comment line, ``num_wann``, ``nrpts``, the
``nrpts`` degeneracy weights (15 per line), then ``num_wann**2 * nrpts`` lines
``R1 R2 R3 m n Re(H) Im(H)`` with 1-based ``m``, ``n`` and ``H_mn(R) = <m, 0|H|n, R>`` in eV, so
that ``H(k) = sum_R exp(2 pi i k.R) H(R) / deg(R)``. :func:`build_from_wannier90` turns it into a
model (it is ``TightBindingModel.from_wannier90`` and :func:`td_physics.io.model_from_wannier90`; this
module knows the format, not the class), :func:`write_wannier90_hr` writes one back.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from td_physics.exceptions import FileFormatError, ModelDefinitionError
from td_physics.files import atomic_write

__all__ = [
    "BOHR_ANGSTROM",
    "Wannier90HR",
    "read_wannier90_hr",
    "read_wannier90_centres",
    "read_wannier90_unit_cell",
    "build_from_wannier90",
    "write_wannier90_hr",
]

logger = logging.getLogger(__name__)

M = TypeVar("M")

BOHR_ANGSTROM = 0.52917721092  # CODATA 2010, the value Wannier90 3.x uses by default


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


def build_from_wannier90(
    cls: type[M],
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
) -> M:
    """A model of class ``cls`` (a :class:`~td_physics.model.TightBindingModel`) from a Wannier90 ``_hr.dat`` file.

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
    model = cls.from_hopping_matrices(  # type: ignore[attr-defined]
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


def write_wannier90_hr(model: Any, path: str | os.PathLike[str], *, header: str | None = None) -> None:
    """Write ``model`` as a Wannier90 ``_hr.dat`` file, atomically.

    Every R and -R is written (``H(R) = T_R + T_{-R}^dagger``, ``H(0) = H0 + T_0 + T_0^dagger``)
    with degeneracy 1, R padded with zeros to 3 components, numbers with 17 significant digits so
    that :func:`build_from_wannier90` gives back the same ``H(k)``. Orbital positions are not part
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
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

"""Optional PyTorch backend: Bloch Hamiltonians and their spectra on a GPU (or CPU) in one batch.

The Hamiltonian is built by the same contraction as :func:`td_physics.model.stacked_hamiltonian`
(phases ``exp(2 pi i k.R)`` from ``k @ R.T``, then one ``einsum`` over R), so the two agree to
rounding (about 1e-14 in complex128). PyTorch is imported only when a torch function is called;
install it with ``pip install td-physics[torch]``.

Examples
--------
>>> from td_physics.model import TightBindingModel
>>> m = TightBindingModel([[1.0]], [[0.0]])
>>> m.add_hopping(-1.0, 0, 0, (1,))
>>> batched_eigvalsh(m, [[0.0], [0.5]], backend="numpy")[:, 0].round(6)
array([-2.,  2.])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from td_physics.exceptions import KPointError, TDPhysicsError
from td_physics.model import TightBindingModel, as_kpoints, iter_models, stacked_arrays, stacked_hamiltonian

if TYPE_CHECKING:
    import torch

__all__ = [
    "import_torch",
    "default_device",
    "torch_hamiltonian",
    "torch_eigh",
    "batched_eigvalsh",
    "torch_chern_numbers",
]

Models = TightBindingModel | Iterable[TightBindingModel]


def import_torch() -> Any:
    """The ``torch`` module, or an ImportError that says how to install it."""
    try:
        import torch
    except ImportError as exc:
        raise ImportError(
            "the torch backend of td-physics needs PyTorch, which is not installed; "
            "install it with `pip install td-physics[torch]`"
        ) from exc
    return torch


def default_device() -> str:
    """``"cuda"`` when a CUDA device is available, else ``"cpu"``."""
    torch = import_torch()
    return "cuda" if torch.cuda.is_available() else "cpu"


def _kpoints(models: list[TightBindingModel], k: Any) -> np.ndarray:
    """k as (nk, dim_k), or (nm, nk, dim_k) for one set of k-points per model."""
    dim_k = models[0].dim_k
    kk = np.asarray(k, dtype=float)
    if kk.ndim <= 2:
        return as_kpoints(kk, dim_k)
    if kk.ndim != 3 or kk.shape[0] != len(models) or kk.shape[2] != dim_k:
        raise KPointError(f"per-model k-points must have shape (nm={len(models)}, nk, {dim_k}), got shape {kk.shape}")
    if not np.all(np.isfinite(kk)):
        raise KPointError("k-points must be finite numbers, got NaN or infinity")
    return kk


def torch_hamiltonian(
    models: Models,
    k: Any,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Bloch Hamiltonians as a torch tensor.

    ``k`` is (nk, dim_k) reduced, or (nm, nk, dim_k) for one set per model. Returns
    (nk, norb, norb) for a single model and (nm, nk, norb, norb) for a sequence of models (same
    norb and dim_k), in eV. ``device`` defaults to :func:`default_device`; ``dtype`` is
    ``torch.complex128`` (default) or ``torch.complex64``.
    """
    torch = import_torch()
    single = isinstance(models, TightBindingModel)
    model_list = iter_models(models)
    if not model_list:
        raise TDPhysicsError("torch_hamiltonian needs at least one model, got an empty sequence")
    cdtype = torch.complex128 if dtype is None else dtype
    if cdtype not in (torch.complex128, torch.complex64):
        raise TDPhysicsError(f"dtype must be torch.complex128 or torch.complex64, got {cdtype}")
    dev = torch.device(default_device() if device is None else device)
    kk = _kpoints(model_list, k)
    rv, t, h0 = stacked_arrays(model_list)  # (nR, dim_k), (nm, nR, norb, norb), (nm, norb, norb)
    k_t = torch.as_tensor(kk, dtype=torch.float64, device=dev)
    r_t = torch.as_tensor(rv, dtype=torch.float64, device=dev)
    angle = (2 * np.pi) * (k_t @ r_t.T)  # (nk, nR) or (nm, nk, nR), float64 before any downcast
    phases = torch.polar(torch.ones_like(angle), angle).to(cdtype)
    t_t = torch.as_tensor(t, device=dev).to(cdtype)
    h0_t = torch.as_tensor(h0, device=dev).to(cdtype)
    if kk.ndim == 2:
        hop = torch.einsum("kr,mrij->mkij", phases, t_t)
    else:
        hop = torch.einsum("mkr,mrij->mkij", phases, t_t)
    h = h0_t[:, None] + hop + hop.transpose(-1, -2).conj()  # (nm, nk, norb, norb)
    return h[0] if single else h


#: most matrices per batched ``eigh`` call on a CUDA device: cuSOLVER's batched solver takes a fixed workspace per
#: matrix even for 2 x 2 ones, so larger batches are split (the sizes that failed are in ``benchmarks/README.md``).
CUDA_EIGH_BATCH = 8192


def _eigh(torch: Any, h: Any, vectors: bool = True) -> Any:
    """``torch.linalg.eigh`` (or ``eigvalsh``) of (..., n, n), split into chunks of matrices on CUDA."""
    fn = torch.linalg.eigh if vectors else torch.linalg.eigvalsh
    lead = h.shape[:-2]
    count = int(np.prod(lead)) if lead else 1
    if h.device.type != "cuda" or count <= CUDA_EIGH_BATCH:
        return fn(h)
    flat = h.reshape(count, *h.shape[-2:])
    parts = [fn(flat[i : i + CUDA_EIGH_BATCH]) for i in range(0, count, CUDA_EIGH_BATCH)]  # memory bound only
    if not vectors:
        return torch.cat(parts).reshape(*lead, h.shape[-1])
    e = torch.cat([p[0] for p in parts]).reshape(*lead, h.shape[-1])
    v = torch.cat([p[1] for p in parts]).reshape(h.shape)
    return e, v


def torch_eigh(
    models: Models,
    k: Any,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Energies (..., nk, norb) in eV, ascending, and eigenvectors (..., nk, norb, norb) as torch tensors.

    Shapes and arguments as :func:`torch_hamiltonian`; batched ``torch.linalg.eigh`` (on CUDA in chunks of
    :data:`CUDA_EIGH_BATCH` matrices, whose workspace cuSOLVER allocates per matrix).
    """
    torch = import_torch()
    return _eigh(torch, torch_hamiltonian(models, k, device=device, dtype=dtype))


def batched_eigvalsh(
    models: Models,
    k: Any,
    *,
    backend: str = "numpy",
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Energies as a numpy array: (nk, norb) for one model, (nm, nk, norb) for a sequence of models.

    ``backend="numpy"`` uses :func:`~td_physics.model.stacked_hamiltonian` and
    ``numpy.linalg.eigvalsh`` (``device`` is ignored); ``backend="torch"`` builds and diagonalises
    in complex128 on ``device`` (default :func:`default_device`) and copies the result back.
    """
    if backend not in ("numpy", "torch"):
        raise TDPhysicsError(f"backend must be 'numpy' or 'torch', got {backend!r}")
    single = isinstance(models, TightBindingModel)
    model_list = iter_models(models)
    if not model_list:
        raise TDPhysicsError("batched_eigvalsh needs at least one model, got an empty sequence")
    if backend == "numpy":
        energies = np.linalg.eigvalsh(stacked_hamiltonian(model_list, _kpoints(model_list, k)))
    else:
        torch = import_torch()
        h = torch_hamiltonian(model_list, k, device=device, dtype=torch.complex128)
        energies = _eigh(torch, h, vectors=False).cpu().numpy()
    return energies[0] if single else energies


def _torch_links(torch: Any, bra: Any, ket: Any, phase: Any) -> Any:
    """Normalised link determinants ``det(bra^dagger diag(phase) ket) / |...|`` (1 where the overlap vanishes)."""
    d = torch.linalg.det(bra.conj().transpose(-1, -2) @ (ket * phase[:, None]))
    mag = d.abs()
    return torch.where(mag > 0, d / torch.where(mag > 0, mag, torch.ones_like(mag)), torch.ones_like(d))


def torch_chern_numbers(
    models: Sequence[TightBindingModel],
    occupied: int | None = None,
    *,
    mesh: int = 24,
    plane: tuple[int, int] | None = None,
    k_fixed: float = 0.0,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    max_models_per_batch: int | None = None,
) -> dict[str, np.ndarray]:
    """Chern numbers of many models (same orbitals) on one ``mesh`` x ``mesh`` grid, on a GPU or CPU with torch.

    The Fukui-Hatsugai-Suzuki sum of :func:`td_physics.invariants.chern_number` (same link variables with the
    orbital-position phases, same plaquette orientation and 2D handedness), computed for every model and
    k-point at once: one batched ``eigh``, one batched determinant per link direction. There is no mesh
    doubling: ``max_flux`` (the largest plaquette flux, radians) and ``min_gap`` (eV) are returned so that
    the caller can refine where ``max_flux`` approaches pi or the gap closes, as ``chern_number`` does.

    Returns numpy arrays (nm,): ``chern`` (int), ``raw`` (the flux sum / 2 pi before rounding), ``max_flux``
    and ``min_gap``. ``dtype`` is ``torch.complex128`` (default) or ``torch.complex64``; models are taken
    ``max_models_per_batch`` at a time (default: about 2**26 complex elements of H per batch).
    """
    from td_physics.invariants._core import MAX_ELEMENTS, plane_grid, resolve_occupied, unit
    from td_physics.invariants.chern import chern_plane, plane_orientation

    torch = import_torch()
    model_list = iter_models(models)
    if not model_list:
        raise TDPhysicsError("torch_chern_numbers needs at least one model, got an empty sequence")
    if isinstance(mesh, bool) or not isinstance(mesh, (int, np.integer)) or mesh < 2:
        raise TDPhysicsError(f"mesh must be an integer >= 2, got {mesh!r}")
    first = model_list[0]
    for i, m in enumerate(model_list):
        if m.norb != first.norb or m.dim_k != first.dim_k or not np.allclose(m.positions, first.positions):
            raise TDPhysicsError(
                f"all models must share orbitals, positions and dim_k; model {i} differs from model 0 "
                f"(norb {m.norb} vs {first.norb}, dim_k {m.dim_k} vs {first.dim_k})"
            )
    nocc = resolve_occupied(first, occupied)
    axes, fixed = chern_plane(first, plane, k_fixed)
    sign = np.array([plane_orientation(m, axes) for m in model_list])
    dev = torch.device(default_device() if device is None else device)
    n, norb, dim_k = int(mesh), first.norb, first.dim_k
    grid = plane_grid(dim_k, axes, n, n, fixed).reshape(-1, dim_k)
    pos = torch.as_tensor(first.positions[:, :dim_k], dtype=torch.float64, device=dev)
    ph = [
        torch.polar(torch.ones(norb, dtype=torch.float64, device=dev),
                    -2 * np.pi * (pos @ torch.as_tensor(unit(dim_k, ax) / n, dtype=torch.float64, device=dev)))
        for ax in axes
    ]  # fmt: skip
    step = max_models_per_batch or max(1, MAX_ELEMENTS // (n * n * norb * norb * 3))
    raw, max_flux, min_gap = (np.zeros(len(model_list)) for _ in range(3))
    for start in range(0, len(model_list), step):  # batches of models bounded by memory, never single k-points
        chunk = model_list[start : start + step]
        e, v = torch_eigh(chunk, grid, device=dev, dtype=dtype)
        ph_c = [p.to(v.dtype) for p in ph]
        gap = (e[..., nocc] - e[..., nocc - 1]).amin(dim=-1)
        v = v[..., :nocc].reshape(len(chunk), n, n, norb, nocc)

        u1 = _torch_links(torch, v, torch.roll(v, -1, dims=1), ph_c[0])
        u2 = _torch_links(torch, v, torch.roll(v, -1, dims=2), ph_c[1])
        plaq = u1 * torch.roll(u2, -1, dims=1) * torch.roll(u1, -1, dims=2).conj() * u2.conj()
        flux = -torch.angle(plaq)
        sl = slice(start, start + len(chunk))
        raw[sl] = (flux.sum(dim=(1, 2)) / (2 * np.pi)).cpu().numpy()
        max_flux[sl] = flux.abs().amax(dim=(1, 2)).cpu().numpy()
        min_gap[sl] = gap.cpu().numpy()
    raw = raw * sign
    return {"chern": np.rint(raw).astype(int), "raw": raw, "max_flux": max_flux, "min_gap": min_gap}

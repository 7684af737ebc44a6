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

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from td_physics.exceptions import KPointError, TDPhysicsError
from td_physics.model import TightBindingModel, _union_arrays, as_kpoints, iter_models, stacked_hamiltonian

if TYPE_CHECKING:
    import torch

__all__ = ["import_torch", "default_device", "torch_hamiltonian", "torch_eigh", "batched_eigvalsh"]

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
    rv, t, h0 = _union_arrays(model_list)  # (nR, dim_k), (nm, nR, norb, norb), (nm, norb, norb)
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


def torch_eigh(
    models: Models,
    k: Any,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Energies (..., nk, norb) in eV, ascending, and eigenvectors (..., nk, norb, norb) as torch tensors.

    Shapes and arguments as :func:`torch_hamiltonian`; one batched ``torch.linalg.eigh`` call.
    """
    torch = import_torch()
    return torch.linalg.eigh(torch_hamiltonian(models, k, device=device, dtype=dtype))


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
        energies = torch.linalg.eigvalsh(h).cpu().numpy()
    return energies[0] if single else energies

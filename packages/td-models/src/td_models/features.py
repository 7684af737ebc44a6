"""Invariant features of a periodic crystal for the denoiser: pair features, lattice metric, scalar embeddings.

Everything here is a pure function of dense padded tensors (``B`` crystals, ``N`` atoms) and never
inverts the lattice, so a very noisy, near-singular lattice (late diffusion times) is harmless. No
matrix products either: under autocast the features keep the precision of their inputs.

* :func:`periodic_pair_features` -- sin and cos of ``2 pi k (f_j - f_i)`` per axis (the Fourier
  features of the fractional difference used by DiffCSP's CSPNet, Jiao et al. 2023). They are
  periodic, so they are unchanged by an origin shift ``f -> f + c`` and by integer shifts of any atom.
* :func:`minimum_image_sq_distance` -- ``d^T G d`` for the wrapped difference ``d = Δf - round(Δf)``
  and the metric ``G = L L^T``: rotation invariant, an approximate minimum image (exact for
  orthogonal cells; in strongly skewed cells a shorter image may exist, and the value jumps where a
  component of ``Δf`` crosses one half). Good enough for an attention bias.
* :func:`gaussian_rbf` -- a Gaussian radial basis expansion of a distance.
* :func:`periodic_image_features` -- the same basis summed over *every* periodic image of each pair within a
  cutoff (an atom's own images included), with a smooth envelope: the radial distribution of each pair, which
  the minimum image alone misses in cells shorter than a few bond lengths (a 6-atom carbon cell has a
  2.5 A axis, so an atom bonds to two images of one neighbour, or to its own image). Optionally also the
  envelope-weighted fractional displacements ``sum_n phi_r(|d + n|) (d + n)`` per radial channel.
* :func:`lattice_metric_features` -- the six entries of the upper triangle of ``G = L L^T``
  (rotation and reflection invariant), by default as log squared lengths and cosines of angles.
* :func:`sinusoidal_embedding` -- the transformer / DDPM sinusoidal embedding of a scalar.

Examples
--------
>>> import torch
>>> f = torch.rand(2, 5, 3, dtype=torch.float64)
>>> periodic_pair_features(f, 4).shape
torch.Size([2, 5, 5, 24])
>>> lattice = torch.eye(3, dtype=torch.float64).expand(2, 3, 3) * 4.0
>>> minimum_image_sq_distance(f, lattice).shape
torch.Size([2, 5, 5])
>>> lattice_metric_features(lattice)[0]
tensor([2.7726, 0.0000, 0.0000, 2.7726, 0.0000, 2.7726], dtype=torch.float64)
>>> sinusoidal_embedding(torch.tensor([0.0, 1.0]), 6).shape
torch.Size([2, 6])
"""

from __future__ import annotations

import math

import torch

from td_models.exceptions import BatchError, ConfigError

__all__ = [
    "periodic_pair_features",
    "wrapped_frac_difference",
    "minimum_image_sq_distance",
    "gaussian_rbf",
    "periodic_image_features",
    "plane_spacings",
    "lattice_metric_features",
    "sinusoidal_embedding",
    "pair_feature_dim",
]

# Row-major upper triangle of a 3x3 matrix: G00, G01, G02, G11, G12, G22.
_TRIU_ROWS = (0, 0, 0, 1, 1, 2)
_TRIU_COLS = (0, 1, 2, 1, 2, 2)
_METRIC_EPS = 1e-12


def _check_frac(frac_coords: torch.Tensor) -> None:
    if frac_coords.dim() != 3 or frac_coords.shape[-1] != 3:
        raise BatchError(f"frac_coords must have shape (B, N, 3), got {tuple(frac_coords.shape)}")


def _check_lattice(lattice: torch.Tensor) -> None:
    if lattice.dim() != 3 or lattice.shape[-2:] != (3, 3):
        raise BatchError(f"lattice must have shape (B, 3, 3), got {tuple(lattice.shape)}")


def _check_positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")


def _metric(lattice: torch.Tensor) -> torch.Tensor:
    """``G = L L^T`` (B, 3, 3) by elementwise products, so autocast keeps the input precision (no bf16 matmul)."""
    return (lattice[:, :, None, :] * lattice[:, None, :, :]).sum(dim=-1)


def pair_feature_dim(num_frequencies: int, num_rbf: int) -> int:
    """Width of the concatenated pair input of the denoiser: Fourier (6 K) + RBF (R) + lattice metric (6)."""
    return 6 * num_frequencies + num_rbf + 6


def periodic_pair_features(frac_coords: torch.Tensor, num_frequencies: int) -> torch.Tensor:
    """Fourier features of every fractional difference ``f_j - f_i``.

    Parameters
    ----------
    frac_coords:
        ``(B, N, 3)`` fractional coordinates (any real numbers; period 1).
    num_frequencies:
        ``K``; frequencies ``k = 1..K`` per axis.

    Returns
    -------
    ``(B, N, N, 6 K)``: entry ``[b, i, j]`` is ``[sin(2 pi k Δ_a) for a, k] + [cos(2 pi k Δ_a) for a, k]``
    with ``Δ = f_j - f_i`` (axis-major, frequency-minor within each half).
    """
    _check_frac(frac_coords)
    _check_positive_int("num_frequencies", num_frequencies)
    diff = frac_coords[:, None, :, :] - frac_coords[:, :, None, :]  # (B, N, N, 3): f_j - f_i
    k = torch.arange(1, num_frequencies + 1, device=frac_coords.device, dtype=frac_coords.dtype)
    angles = (2.0 * math.pi) * diff[..., None] * k  # (B, N, N, 3, K)
    angles = angles.flatten(-2)  # (B, N, N, 3 K)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)  # (B, N, N, 6 K)


def wrapped_frac_difference(frac_coords: torch.Tensor) -> torch.Tensor:
    """``d = (f_j - f_i) - round(f_j - f_i)``, each component in ``[-1/2, 1/2]``; shape ``(B, N, N, 3)``."""
    _check_frac(frac_coords)
    diff = frac_coords[:, None, :, :] - frac_coords[:, :, None, :]  # (B, N, N, 3)
    return diff - torch.round(diff)


def minimum_image_sq_distance(frac_coords: torch.Tensor, lattice: torch.Tensor) -> torch.Tensor:
    """Squared length ``d^T G d`` of the wrapped fractional difference, ``G = L L^T`` (rows of ``L`` are vectors).

    Parameters
    ----------
    frac_coords:
        ``(B, N, 3)``.
    lattice:
        ``(B, 3, 3)``, rows are lattice vectors; any real matrix (never inverted).

    Returns
    -------
    ``(B, N, N)`` squared distances in the units of ``lattice`` squared, zero on the diagonal.
    Invariant to rotations/reflections of the lattice, origin shifts and integer shifts of atoms.
    """
    _check_frac(frac_coords)
    _check_lattice(lattice)
    if lattice.shape[0] != frac_coords.shape[0]:
        raise BatchError(
            f"lattice and frac_coords must share the batch size, got {lattice.shape[0]} and {frac_coords.shape[0]}"
        )
    d = wrapped_frac_difference(frac_coords)  # (B, N, N, 3)
    metric = _metric(lattice)[:, None, None, :, :]  # (B, 1, 1, 3, 3)
    return (d[..., :, None] * metric * d[..., None, :]).sum(dim=(-2, -1)).clamp_min(0.0)  # (B, N, N)


def gaussian_rbf(distance: torch.Tensor, num_rbf: int, cutoff: float) -> torch.Tensor:
    """Gaussian radial basis ``exp(-(r - mu_m)^2 / (2 s^2))`` with ``num_rbf`` centres evenly on ``[0, cutoff]``.

    ``s`` is the spacing of the centres (``cutoff`` when ``num_rbf == 1``); distances beyond the
    cutoff decay smoothly to zero. Returns ``distance.shape + (num_rbf,)``.
    """
    _check_positive_int("num_rbf", num_rbf)
    if not (isinstance(cutoff, (int, float)) and math.isfinite(cutoff) and cutoff > 0):
        raise ConfigError(f"rbf cutoff must be a finite number > 0, got {cutoff!r}")
    centres = torch.linspace(0.0, float(cutoff), num_rbf, device=distance.device, dtype=distance.dtype)
    width = float(cutoff) / max(num_rbf - 1, 1)
    exponent = -0.5 * ((distance[..., None] - centres) / width) ** 2  # (..., num_rbf)
    # below exp(-60) = 9e-27 the basis is set to exactly 0: far distances would otherwise give subnormal
    # floats, which CPUs handle on a slow path
    return torch.where(exponent > -60.0, torch.exp(exponent.clamp_min(-60.0)), torch.zeros_like(exponent))


#: Image shells searched along each axis by :func:`periodic_image_features`: the 27 cells ``n`` in ``{-1, 0, 1}^3``.
IMAGE_SHELLS = 1


def plane_spacings(lattice: torch.Tensor) -> torch.Tensor:
    """Distances between neighbouring lattice planes, ``h_a = |det L| / |b x c|`` for each axis ``a``; ``(B, 3)``.

    An image ``d + n`` of a fractional difference is at least ``|d_a + n_a| h_a`` away, which bounds the image
    shells needed for a cutoff. Rotation invariant; zero for a singular lattice (never inverted).

    >>> plane_spacings(torch.diag(torch.tensor([2.0, 3.0, 4.0]))[None])
    tensor([[2., 3., 4.]])
    """
    _check_lattice(lattice)
    a, b, c = lattice[:, 0], lattice[:, 1], lattice[:, 2]
    crosses = torch.stack([torch.cross(b, c, dim=-1), torch.cross(c, a, dim=-1), torch.cross(a, b, dim=-1)], dim=1)
    volume = (a * crosses[:, 0]).sum(dim=-1).abs()  # (B,)
    return volume[:, None] / crosses.norm(dim=-1).clamp_min(1e-12)  # (B, 3)


def periodic_image_features(
    frac_coords: torch.Tensor,
    lattice: torch.Tensor,
    cutoff: float,
    num_rbf: int,
    num_vector_rbf: int = 0,
    atom_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Radial basis of each pair summed over all periodic images within ``cutoff``, and pair displacement vectors.

    For atoms ``i``, ``j`` with wrapped fractional difference ``d = Δf - round(Δf)`` the images are
    ``d + n`` for integer vectors ``n``; each at distance ``r_n = |(d + n) L|`` below the crystal's cutoff
    ``c`` contributes ``u(r_n) phi(r_n)``, with ``phi`` the :func:`gaussian_rbf` basis on ``[0, cutoff]`` and
    the envelope ``u(r) = (1 + cos(pi r / c)) / 2``, which takes every image smoothly to zero at ``c``.

    ``c = min(cutoff, 1.5 h)`` with ``h`` the crystal's thinnest plane spacing (:func:`plane_spacings`): the
    27 images ``n`` in ``{-1, 0, 1}^3`` of the wrapped difference then hold every image closer than ``c``, so
    the sum is complete, and the work is bounded even for the collapsed cells of a very noisy lattice (their
    ``c`` shrinks with them). A real cell keeps the full cutoff when its planes are at least ``cutoff / 1.5``
    apart (2 A for a 3 A cutoff: 95% of Carbon-24's training cells). Images enter and leave the sum only where
    their weight is zero, so the result is continuous in the coordinates and the lattice, and invariant to
    rotations of the lattice, origin shifts, integer shifts of atoms and the choice of wrapped difference.
    ``i == j`` pairs count an atom's own images (``n != 0``) and itself (``r = 0``).

    Parameters
    ----------
    frac_coords, lattice:
        ``(B, N, 3)`` and ``(B, 3, 3)`` (rows are vectors; the distances are in its units).
    cutoff:
        Largest image distance, in the units of ``lattice``; also the span of the radial basis.
    num_rbf:
        Channels ``R`` of the summed basis.
    num_vector_rbf:
        If > 0, also return ``sum_n u(r_n) phi'_r(r_n) (d + n)`` for a basis ``phi'`` of this many channels
        on ``[0, cutoff]``: displacements in cell fractions weighted by distance, zero for ``r = 0``.
    atom_mask:
        Optional ``(B, N)`` bool: pairs with a padding atom are left out (their rows are zero).

    Returns
    -------
    ``(B, N, N, R)`` and ``(B, N, N, num_vector_rbf, 3)`` or ``None``.

    >>> f = torch.zeros(1, 1, 3)
    >>> rbf, _ = periodic_image_features(f, 2.0 * torch.eye(3)[None], cutoff=2.5, num_rbf=6)
    >>> round(float(rbf[0, 0, 0].sum()), 3)  # itself (1.753) and its six images at 2 A (envelope 0.095 each)
    3.105
    """
    _check_frac(frac_coords)
    _check_lattice(lattice)
    _check_positive_int("num_rbf", num_rbf)
    if not (isinstance(cutoff, (int, float)) and math.isfinite(cutoff) and cutoff > 0):
        raise ConfigError(f"image cutoff must be a finite number > 0, got {cutoff!r}")
    if isinstance(num_vector_rbf, bool) or not isinstance(num_vector_rbf, int) or num_vector_rbf < 0:
        raise ConfigError(f"num_vector_rbf must be an integer >= 0, got {num_vector_rbf!r}")
    b, n, _ = frac_coords.shape
    if lattice.shape[0] != b:
        raise BatchError(f"lattice and frac_coords must share the batch size, got {lattice.shape[0]} and {b}")
    if atom_mask is not None and (atom_mask.dtype != torch.bool or tuple(atom_mask.shape) != (b, n)):
        raise BatchError(
            f"atom_mask must be a bool tensor of shape {(b, n)}, got {atom_mask.dtype} {tuple(atom_mask.shape)}"
        )
    # each crystal's cutoff: the 27 images hold every image within 1.5 plane spacings
    limit = ((IMAGE_SHELLS + 0.5) * plane_spacings(lattice).amin(dim=1)).clamp(max=float(cutoff))  # (B,)
    axis = torch.arange(-IMAGE_SHELLS, IMAGE_SHELLS + 1, device=frac_coords.device, dtype=frac_coords.dtype)
    offsets = torch.cartesian_prod(axis, axis, axis)  # (27, 3)
    wrapped = wrapped_frac_difference(frac_coords)  # (B, N, N, 3)
    metric = _metric(lattice)  # (B, 3, 3)
    # |d + n|^2_G = d G d + 2 n . (G d) + n G n, by elementwise products (no bf16 matmul under autocast)
    g_d = (metric[:, None, None, :, :] * wrapped[:, :, :, None, :]).sum(dim=-1)  # (B, N, N, 3)
    n_g_n = (offsets[None, :, :, None] * metric[:, None, :, :] * offsets[None, :, None, :]).sum(dim=(-2, -1))
    sq = (wrapped * g_d).sum(dim=-1)[..., None] + 2.0 * (g_d[:, :, :, None, :] * offsets).sum(dim=-1)
    sq = sq + n_g_n[:, None, None, :]  # (B, N, N, 27)
    keep = sq < (limit**2)[:, None, None, None]
    if atom_mask is not None:
        keep = keep & (atom_mask[:, :, None] & atom_mask[:, None, :])[..., None]
    index = keep.nonzero(as_tuple=True)  # the few images inside the cutoff
    pair_index = (index[0] * n + index[1]) * n + index[2]  # flat (b, i, j)
    dist = torch.sqrt(sq[index].clamp_min(0.0) + 1e-12)  # (K,)
    envelope = 0.5 * (torch.cos(dist * math.pi / limit[index[0]]) + 1.0)  # (K,)
    weights = gaussian_rbf(dist, num_rbf, float(cutoff)) * envelope[:, None]  # (K, R)
    rbf = torch.zeros(b * n * n, num_rbf, device=frac_coords.device, dtype=weights.dtype)
    rbf = rbf.index_add(0, pair_index, weights).view(b, n, n, num_rbf)
    if num_vector_rbf == 0:
        return rbf, None
    radial = gaussian_rbf(dist, num_vector_rbf, float(cutoff)) * envelope[:, None]  # (K, Rv)
    disp = wrapped[index[0], index[1], index[2]] + offsets[index[3]]  # (K, 3): d + n in cell fractions
    terms = radial[:, :, None] * disp[:, None, :]  # (K, Rv, 3)
    vectors = torch.zeros(b * n * n, num_vector_rbf, 3, device=frac_coords.device, dtype=terms.dtype)
    vectors = vectors.index_add(0, pair_index, terms).view(b, n, n, num_vector_rbf, 3)
    return rbf, vectors


def lattice_metric_features(lattice: torch.Tensor, log_scale: bool = True) -> torch.Tensor:
    """Rotation invariant description of a lattice from its metric ``G = L L^T``.

    Parameters
    ----------
    lattice:
        ``(B, 3, 3)``, rows are lattice vectors.
    log_scale:
        ``True`` (default): ``[log G00, cos_01, cos_02, log G11, cos_12, log G22]`` where
        ``log Gii = log(|a_i|^2 + 1e-12)`` and ``cos_ij = G_ij / sqrt(G_ii G_jj)`` (cosine of the angle
        between lattice vectors ``i`` and ``j``) -- order one numbers whatever the scale, safe for
        near-singular lattices. ``False``: the raw upper triangle ``[G00, G01, G02, G11, G12, G22]``.

    Returns
    -------
    ``(B, 6)``, invariant to ``L -> L Q^T`` for any orthogonal ``Q`` (rotations and reflections).
    """
    _check_lattice(lattice)
    metric = _metric(lattice)  # (B, 3, 3)
    upper = metric[:, _TRIU_ROWS, _TRIU_COLS]  # (B, 6)
    if not log_scale:
        return upper
    diag = torch.diagonal(metric, dim1=-2, dim2=-1) + _METRIC_EPS  # (B, 3)
    norms = torch.sqrt(diag)  # (B, 3)
    cosines = metric / (norms[:, :, None] * norms[:, None, :])  # (B, 3, 3)
    out = cosines[:, _TRIU_ROWS, _TRIU_COLS].clone()  # (B, 6)
    log_diag = torch.log(diag)  # (B, 3)
    out[:, 0], out[:, 3], out[:, 5] = log_diag[:, 0], log_diag[:, 1], log_diag[:, 2]
    return out


def sinusoidal_embedding(x: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding ``[cos(x w_m), sin(x w_m)]`` with ``w_m = max_period^(-m / (dim // 2))``.

    The frequencies run from 1 down to ``1 / max_period``, so scale ``x`` to span about
    ``[0, 1000]`` (the denoiser embeds ``1000 t`` for ``t`` in ``[0, 1]``, as in DDPM/DiT).

    Parameters
    ----------
    x:
        Any shape ``S`` (integers are converted to float32).
    dim:
        Output width; an odd ``dim`` gets a trailing zero column.
    max_period:
        The longest period.

    Returns
    -------
    ``S + (dim,)``.
    """
    _check_positive_int("dim", dim)
    if not (isinstance(max_period, (int, float)) and max_period > 1):
        raise ConfigError(f"max_period must be a number > 1, got {max_period!r}")
    if not torch.is_floating_point(x):
        x = x.float()
    half = dim // 2
    exponent = torch.arange(half, device=x.device, dtype=x.dtype) / max(half, 1)
    freqs = torch.exp(-math.log(max_period) * exponent)  # (half,)
    args = x[..., None] * freqs  # S + (half,)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # S + (2 half,)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[..., :1])], dim=-1)  # S + (dim,)
    return emb

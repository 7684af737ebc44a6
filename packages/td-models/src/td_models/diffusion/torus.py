"""Wrapped-normal (variance-exploding) diffusion on the unit torus ``[0, 1)^d``.

Fractional coordinates live on a torus, so DiffCSP (Jiao et al. 2023, "Crystal Structure Prediction by
Joint Equivariant Diffusion", NeurIPS) noises them with a wrapped normal: ``f_t = (f_0 + sigma_t eps)
mod 1`` with geometric ``sigma_t`` from 0.005 to 0.5, trains the network by score matching on the
wrapped normal (target normalised by ``sqrt(E[score^2])``), and samples with the predictor-corrector
scheme of Song et al. (2021, "Score-Based Generative Modeling through Stochastic Differential
Equations"): a reverse-diffusion predictor and an annealed Langevin corrector.

Sign convention: :func:`wrapped_normal_score` is the true score ``d/dx log p`` (it points towards the
mode). DiffCSP's reference code uses the opposite sign (its ``d_log_p_wrapped_normal`` returns
``-score``) and subtracts its prediction in the sampler; here the network predicts the normalised
*score* and the sampler adds it.

Shapes: data ``f`` is ``(B, ...)`` (e.g. ``(num_atoms, 3)``), steps ``t``, ``s`` are ``(B,)`` integer
tensors (or Python ints used for every row). Units: fractions of a cell edge.

Examples
--------
>>> proc = WrappedNormalProcess(num_steps=100)
>>> f0 = torch.full((8, 3), 0.99, dtype=torch.float64)
>>> ft, target = proc.q_sample(f0, torch.full((8,), 50), generator=torch.Generator().manual_seed(0))
>>> bool(((ft >= 0) & (ft < 1)).all()), target.shape
(True, torch.Size([8, 3]))
>>> score = wrapped_normal_score(torch.tensor([0.02, 0.5, 1.02], dtype=torch.float64), 0.1)
>>> [round(v, 6) + 0.0 for v in score.tolist()]  # ~ -delta / sigma^2 near the mode, 0 at the antipode, periodic
[-2.0, 0.0, -2.0]
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from td_models.diffusion.schedules import (
    TableModule,
    as_steps,
    check_before,
    check_data,
    check_float,
    check_generator,
    check_int,
    check_same_shape,
    expand_like,
    noise_like,
    row_mean,
    sigma_schedule,
)
from td_models.exceptions import ConfigError

__all__ = ["WrappedNormalProcess", "wrapped_normal_score", "wrap01"]

_NORM_CHUNK_NUMBERS = 65536  # numbers per chunk when tabulating sigma_norm


def wrap01(x: torch.Tensor) -> torch.Tensor:
    """``x mod 1`` in ``[0, 1)``, guarding against ``1.0`` from rounding (``-1e-9 mod 1`` in float32)."""
    y = torch.remainder(x, 1.0)
    return torch.where(y >= 1.0, torch.zeros_like(y), y)


def wrapped_normal_score(delta: torch.Tensor, sigma: torch.Tensor | float, n_images: int = 10) -> torch.Tensor:
    """Score ``d/d delta log WN(delta; 0, sigma)`` of the 1-periodic wrapped normal density.

    ``WN(delta) ∝ sum_k exp(-(delta + k)^2 / (2 sigma^2))`` over images ``k in [-n_images, n_images]``.
    ``delta`` is first reduced to ``d = delta - round(delta)`` in ``[-1/2, 1/2]`` (the result is exactly
    1-periodic), then ``score = -(d + E_w[k]) / sigma^2`` with image weights ``w_k ∝ exp(-k (2d + k) /
    (2 sigma^2))`` (the exponents relative to ``k = 0``, all ``<= 0``: nothing cancels or overflows). For
    small ``sigma`` this is ``-d / sigma^2``; it is odd in ``delta`` and zero at ``d = ±1/2``. The
    truncation is exact to double precision while ``sigma <= (n_images + 1/2) / 9`` (``sigma <= 1.1`` for
    the default 10 images).

    Parameters
    ----------
    delta : (...) float tensor
        Displacements (any real values).
    sigma : float or tensor broadcastable against ``delta``, > 0
        Standard deviation of the unwrapped normal.

    Returns
    -------
    torch.Tensor
        The broadcast shape of ``delta`` and ``sigma``, in their promoted floating dtype (at least
        float32), units ``1 / (cell fraction)``.
    """
    n_images = check_int("n_images", n_images, 0)
    if not isinstance(delta, torch.Tensor):
        raise ConfigError(f"delta must be a torch.Tensor, got {type(delta).__name__}")
    sigma_t = torch.as_tensor(sigma, device=delta.device)
    dtype = torch.promote_types(delta.dtype, sigma_t.dtype)
    if not dtype.is_floating_point or torch.finfo(dtype).bits < 32:
        dtype = torch.promote_types(dtype, torch.float32)
    d = delta.to(dtype)
    d = d - torch.round(d)
    d, sig = torch.broadcast_tensors(d, sigma_t.to(dtype))
    _, mean_k = _image_sums(d, sig, n_images)
    return -(d + mean_k) / sig.square()


def _image_sums(d: torch.Tensor, sig: torch.Tensor, n_images: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``Z = sum_k exp(l_k)`` and ``E_w[k]`` over images, for reduced ``d`` in ``[-1/2, 1/2]``.

    ``l_k = -k (2 d + k) / (2 sigma^2)`` is the log-weight of image ``k`` relative to ``k = 0``; it is
    ``<= 0`` for every ``k`` when ``|d| <= 1/2``, so ``1 <= Z <= 2 n_images + 1`` and the plain
    exponentials neither overflow nor lose the leading term (no max-shift or softmax needed).
    """
    k = torch.arange(-n_images, n_images + 1, dtype=d.dtype, device=d.device)
    exponent = -k * (2.0 * d.unsqueeze(-1) + k) / (2.0 * sig.unsqueeze(-1).square())
    # weights below exp(-80) = 2e-35 are exactly 0: no subnormal floats, which are slow on CPUs
    weights = torch.where(exponent > -80.0, torch.exp(exponent.clamp_min(-80.0)), torch.zeros_like(exponent))
    z = weights.sum(dim=-1)
    return z, (weights * k).sum(dim=-1) / z


def _images_needed(sigma: float, n_images: int) -> int:
    """Fewest images ``m`` (at most ``n_images``) whose omitted terms are below ``e^-40`` of the largest."""
    m = min(1, n_images)
    while m < n_images and m * (m - 1) <= 80.0 * sigma * sigma:
        m += 1
    return m


def _nodes_needed(sigma: float) -> int:
    """Quadrature nodes on ``[-1/2, 1/2)`` resolving the smallest feature of ``WN(0, sigma) score^2``.

    That feature has width ``sigma`` at the mode and ``sigma^2`` at the antipode, where it carries a
    relative weight ``exp(-1 / (8 sigma^2))``, negligible (< 1e-16) below ``sigma = 0.06``. Four nodes
    per width (rounded up to a power of two) make the periodic trapezoidal rule exact to ~1e-13.
    """
    width = sigma if sigma < 0.06 else min(sigma, sigma * sigma)
    return 1 << max(6, math.ceil(math.log2(4.0 / width)))  # a power of two, so that levels share grids


@functools.lru_cache(maxsize=8)
def _sigma_norm_table(num_steps: int, sigma_min: float, sigma_max: float, n_images: int, num_points: int | None):
    """``E_{delta ~ WN(0, sigma_t)}[score(delta)^2]`` for ``t = 0..T`` by the periodic trapezoidal rule.

    The integrand ``WN(delta) score(delta)^2`` is smooth and 1-periodic, so the rule on a uniform grid
    of ``N`` nodes converges geometrically in ``N`` once the grid resolves its features
    (:func:`_nodes_needed`; ``num_points`` fixes ``N`` for every level instead). Levels sharing a grid
    are processed together, in chunks of at most ~64k numbers. Entry 0 (``sigma = 0``) is set to 1.
    """
    sigmas = sigma_schedule(num_steps, sigma_min, sigma_max)
    plan = []  # (t, nodes, images)
    for t in range(1, num_steps + 1):
        sig = float(sigmas[t])
        plan.append((t, num_points or _nodes_needed(sig), _images_needed(sig, n_images)))
    levels = sigmas.numpy()
    out = np.ones(num_steps + 1, dtype=np.float64)
    i = 0
    while i < len(plan):
        _, nodes, images = plan[i]
        size = max(1, _NORM_CHUNK_NUMBERS // (nodes * (2 * images + 1)))
        j = i
        while j < len(plan) and j - i < size and plan[j][1:] == (nodes, images):
            j += 1
        var = levels[i + 1 : j + 1, None] ** 2  # (C, 1)
        grid = (np.arange(nodes, dtype=np.float64) + 0.5) / nodes - 0.5  # (N,)
        k = np.arange(-images, images + 1, dtype=np.float64)  # (K,)
        # the same image sums as _image_sums (numpy here: a one-off CPU table, no thread pool needed)
        weights = np.exp(-k * (2.0 * grid[:, None] + k) / (2.0 * var[..., None]))  # (C, N, K), all <= 1
        z = weights.sum(axis=-1)
        score = -(grid + (weights * k).sum(axis=-1) / z) / var  # (C, N)
        density = np.exp(-(grid**2) / (2.0 * var)) * z  # unnormalised, max ~1
        out[i + 1 : j + 1] = (density * score**2).sum(axis=-1) / density.sum(axis=-1)
        i = j
    return torch.from_numpy(out)


class WrappedNormalProcess(TableModule):
    """Wrapped-normal diffusion of points on ``[0, 1)^d`` with score matching (DiffCSP).

    Parameters
    ----------
    num_steps : int
        ``T``; ``sigma[t]`` is geometric from ``sigma_min`` (``t = 1``) to ``sigma_max`` (``t = T``),
        ``sigma[0] = 0``.
    sigma_min, sigma_max : float
        Noise levels in cell fractions (DiffCSP: 0.005 and 0.5).
    n_images : int
        Images ``k in [-n_images, n_images]`` of the truncated wrapped-normal sums.
    num_norm_samples : int, optional
        :meth:`sigma_norm` is tabulated by deterministic quadrature (the periodic trapezoidal rule on
        ``[-1/2, 1/2)``), not Monte Carlo. By default each level gets the nodes it needs (64 to ~1100;
        relative error ~1e-13); an int fixes the number of nodes for every level instead.

    Tables ``sigmas`` and ``sigmas_norm`` (float64, ``T + 1`` entries) are non-persistent buffers.
    """

    def __init__(
        self,
        num_steps: int = 1000,
        sigma_min: float = 0.005,
        sigma_max: float = 0.5,
        n_images: int = 10,
        num_norm_samples: int | None = None,
    ) -> None:
        super().__init__()
        self.num_steps = check_int("num_steps", num_steps, 1)
        self.n_images = check_int("n_images", n_images, 0)
        sigmas = sigma_schedule(num_steps, sigma_min, sigma_max)
        self.sigma_min = float(sigma_min)
        self.sigma_max = float(sigma_max)
        if num_norm_samples is not None:
            num_norm_samples = check_int("num_norm_samples", num_norm_samples, 16)
        self.num_norm_samples = num_norm_samples
        norms = _sigma_norm_table(num_steps, self.sigma_min, self.sigma_max, self.n_images, num_norm_samples)
        self._register_table("sigmas", sigmas)
        self._register_table("sigmas_norm", norms)

    def extra_repr(self) -> str:
        return f"num_steps={self.num_steps}, sigma_min={self.sigma_min}, sigma_max={self.sigma_max}"

    # ------------------------------------------------------------------ look-ups
    def sigma(self, t: torch.Tensor | int) -> torch.Tensor:
        """``sigma[t]`` (float64, ``t``'s shape), in cell fractions; ``sigma[0] = 0``."""
        return self._table_at("sigmas", t, self.num_steps)

    def sigma_norm(self, t: torch.Tensor | int) -> torch.Tensor:
        """``E_{delta ~ WN(0, sigma_t)}[score(delta)^2]`` per dimension (float64, ``t``'s shape); 1 at ``t = 0``.

        Tends to ``1 / sigma^2`` for small ``sigma`` and to 0 as the wrapped normal flattens.
        """
        return self._table_at("sigmas_norm", t, self.num_steps)

    def wrapped_normal_score(self, delta: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        """:func:`wrapped_normal_score` with this process's ``n_images``."""
        return wrapped_normal_score(delta, sigma, self.n_images)

    def _levels(self, t, x: torch.Tensor, name: str = "t", low: int = 1):
        steps = as_steps(t, x.shape[0], x.device, name=name, low=low, high=self.num_steps)
        return steps, self._lookup("sigmas", steps), self._lookup("sigmas_norm", steps)

    # ------------------------------------------------------------------ forward process
    def q_sample(
        self,
        f0: torch.Tensor,
        t: torch.Tensor | int,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise clean points and return the training target.

        Parameters
        ----------
        f0 : (B, ...) float tensor (any real values; taken mod 1)
        t : (B,) integer tensor in ``1..T`` (or an int)
        noise : (B, ...) tensor, optional; ``eps``, drawn with ``torch.randn`` when omitted.

        Returns
        -------
        ft : (B, ...) in ``[0, 1)``: ``(f0 + sigma_t eps) mod 1``.
        target : (B, ...): ``score(sigma_t eps; sigma_t) / sqrt(sigma_norm_t)``, the normalised score the
            network predicts (unit mean square per dimension).
        """
        f0 = check_data("f0", f0)
        _, sig, norm = self._levels(t, f0)
        noise = noise_like(f0, noise, generator, "f0")
        sig_x = expand_like(sig, f0)
        delta = sig_x * noise
        target = self.wrapped_normal_score(delta, sig_x) / expand_like(norm.sqrt(), f0)
        return wrap01(f0 + delta), target.to(f0.dtype)

    def loss(self, score_pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-row mean squared error ``(B,)`` between the predicted and target normalised scores."""
        score_pred = check_data("score_pred", score_pred)
        check_same_shape("target", target, "score_pred", score_pred)
        return row_mean((score_pred - target.to(score_pred.dtype)).square())

    # ------------------------------------------------------------------ reverse process
    def predictor_step(
        self,
        ft: torch.Tensor,
        t: torch.Tensor | int,
        s: torch.Tensor | int,
        score_pred: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Reverse-diffusion predictor from noise level ``sigma_t`` to ``sigma_s`` (``0 <= s < t``).

        With ``score = score_pred * sqrt(sigma_norm_t)``::

            f_s = (f_t + (sigma_t^2 - sigma_s^2) score + sqrt(sigma_s^2 (sigma_t^2 - sigma_s^2) / sigma_t^2) z) mod 1

        ``z`` is one ``torch.randn(ft.shape, generator=generator)`` draw. For a Gaussian this is the
        exact posterior ``q(f_s | f_t, f_0 = f0_hat)`` with Tweedie's ``f0_hat = f_t + sigma_t^2 score``,
        for any jump (DiffCSP's predictor for ``s = t - 1``). At ``s = 0`` there is no noise and the
        result is the mean ``(f_t + sigma_t^2 score) mod 1``.

        Parameters
        ----------
        ft, score_pred : (B, ...) float tensors (``score_pred`` is the network's normalised score)
        t : (B,) integer tensor in ``1..T``; s : (B,) integer tensor with ``0 <= s < t``
        """
        ft = check_data("ft", ft)
        check_same_shape("score_pred", score_pred, "ft", ft)
        steps_t, sig_t, norm_t = self._levels(t, ft)
        steps_s, sig_s, _ = self._levels(s, ft, name="s", low=0)
        check_before(steps_t, steps_s)
        generator = check_generator(generator, ft.device)
        gap = sig_t.square() - sig_s.square()
        std = (sig_s.square() * gap / sig_t.square()).sqrt()
        score = score_pred.to(ft.dtype) * expand_like(norm_t.sqrt(), ft)
        z = torch.randn(ft.shape, generator=generator, dtype=ft.dtype, device=ft.device)
        return wrap01(ft + expand_like(gap, ft) * score + expand_like(std, ft) * z)

    def corrector_step(
        self,
        ft: torch.Tensor,
        t: torch.Tensor | int,
        score_pred: torch.Tensor,
        step_lr: float = 1e-5,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Annealed Langevin corrector at noise level ``sigma_t`` (Song et al. 2021; DiffCSP).

        With ``score = score_pred * sqrt(sigma_norm_t)`` and step size
        ``eps_t = step_lr * (sigma_t / sigma_min)^2`` (``sigma_min`` = the constructor's, ``sigma[1]``)::

            f' = (f_t + eps_t score + sqrt(2 eps_t) z) mod 1

        ``z`` is one ``torch.randn(ft.shape, generator=generator)`` draw. The relative step
        ``eps_t / sigma_t^2 = step_lr / sigma_min^2`` is the same at every level (0.4 for the defaults).
        DiffCSP applies it at level ``t`` with the network evaluated on ``(f_t, t)``, then runs the
        predictor from ``t`` with the network re-evaluated on the corrected points.

        Parameters
        ----------
        ft, score_pred : (B, ...) float tensors; t : (B,) integer tensor in ``1..T``
        step_lr : float > 0
        """
        ft = check_data("ft", ft)
        check_same_shape("score_pred", score_pred, "ft", ft)
        step_lr = check_float("step_lr", step_lr, low=0.0, open_low=True)
        _, sig_t, norm_t = self._levels(t, ft)
        generator = check_generator(generator, ft.device)
        eps = step_lr * (sig_t / self.sigma_min).square()
        score = score_pred.to(ft.dtype) * expand_like(norm_t.sqrt(), ft)
        z = torch.randn(ft.shape, generator=generator, dtype=ft.dtype, device=ft.device)
        return wrap01(ft + expand_like(eps, ft) * score + expand_like((2.0 * eps).sqrt(), ft) * z)

    def _draw_prior(self, shape, generator, dtype, device) -> torch.Tensor:
        """Uniform points on ``[0, 1)`` (the wrapped normal at ``sigma_max = 0.5`` is uniform to ~1%)."""
        return wrap01(torch.rand(shape, generator=generator, dtype=self._float_dtype(dtype), device=device))

"""Variance-preserving Gaussian diffusion on real tensors (DDPM forward process, DDPM/DDIM reverse steps).

Forward process (Ho et al. 2020, "Denoising Diffusion Probabilistic Models"):
``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps`` with ``eps ~ N(0, I)``; the network predicts
``eps``. Reverse steps go from ``t`` to any earlier ``s`` (``0 <= s < t``) with the generalised step of
Song, Meng & Ermon (2021, "Denoising Diffusion Implicit Models"): ``eta = 1`` samples the exact
Gaussian posterior ``q(x_s | x_t, x_0 = x0_hat)`` (the DDPM ancestral step when ``s = t - 1``),
``eta = 0`` is the deterministic DDIM update. The default schedule is the cosine schedule of Nichol &
Dhariwal (2021).

Shapes: data ``x`` is ``(B, ...)`` (any trailing shape); steps ``t``, ``s`` are ``(B,)`` integer
tensors (one step per row) or Python ints / 0-d tensors used for every row. Outputs keep ``x``'s
shape, dtype and device. The data are unitless here (whatever scale the caller normalised to).

Examples
--------
>>> proc = VPProcess(num_steps=100)
>>> x0 = torch.zeros(4, 3, dtype=torch.float64)
>>> g = torch.Generator().manual_seed(0)
>>> xt, eps = proc.q_sample(x0, torch.full((4,), 100), generator=g)
>>> xt.shape, bool(torch.allclose(proc.predict_x0(xt, 100, eps), x0))
(torch.Size([4, 3]), True)
>>> x = proc.step(xt, 100, 0, eps)  # s = 0: the clean estimate
>>> bool(torch.allclose(x, x0))
True
"""

from __future__ import annotations

import torch

from td_models.diffusion.schedules import (
    TableModule,
    as_steps,
    beta_schedule,
    check_before,
    check_data,
    check_float,
    check_generator,
    check_int,
    check_same_shape,
    expand_like,
    noise_like,
    row_mean,
)

__all__ = ["VPProcess"]


class VPProcess(TableModule):
    """Variance-preserving (DDPM) diffusion with eps-prediction and DDPM/DDIM reverse steps.

    Parameters
    ----------
    num_steps : int
        ``T``; steps are ``1..T``, ``t = 0`` is clean data.
    schedule : {"cosine", "linear"}
        Passed to :func:`~td_models.diffusion.schedules.beta_schedule` with its default parameters.

    The float64 table ``alpha_bar`` (``T + 1`` entries, ``alpha_bar[0] = 1``) is a non-persistent
    buffer that follows ``.to(device)`` and stays float64.
    """

    def __init__(self, num_steps: int = 1000, schedule: str = "cosine") -> None:
        super().__init__()
        self.num_steps = check_int("num_steps", num_steps, 1)
        self.schedule = schedule
        self._register_table("alpha_bars", beta_schedule(schedule, num_steps))

    def extra_repr(self) -> str:
        return f"num_steps={self.num_steps}, schedule={self.schedule!r}"

    # ------------------------------------------------------------------ schedule look-ups
    def alpha_bar(self, t: torch.Tensor | int) -> torch.Tensor:
        """``alpha_bar[t]``, float64, of ``t``'s shape and device (0-d for an int; any integer tensor shape).

        Use :func:`~td_models.diffusion.schedules.expand_like` to broadcast it against data ``(B, ...)``.
        """
        return self._table_at("alpha_bars", t, self.num_steps)

    def _expand(self, t: torch.Tensor | int, x: torch.Tensor) -> torch.Tensor:
        """``alpha_bar[t]`` as ``(B, 1, ..., 1)`` in ``x``'s dtype and device (``t`` in ``0..T``, one per row)."""
        return expand_like(self._coeffs(t, x)[1], x)

    def _coeffs(self, t, x: torch.Tensor, *, name: str = "t", low: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        steps = as_steps(t, x.shape[0], x.device, name=name, low=low, high=self.num_steps)
        return steps, self._lookup("alpha_bars", steps)

    # ------------------------------------------------------------------ forward process
    def q_sample(
        self,
        x0: torch.Tensor,
        t: torch.Tensor | int,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample ``x_t ~ q(x_t | x_0)``.

        Parameters
        ----------
        x0 : (B, ...) float tensor
        t : (B,) integer tensor in ``0..T`` (or an int)
        noise : (B, ...) tensor, optional
            ``eps``; drawn as ``torch.randn(x0.shape, generator=generator)`` when omitted.

        Returns
        -------
        (xt, noise) : both ``(B, ...)`` like ``x0``; ``xt = sqrt(ab) x0 + sqrt(1 - ab) noise``.
        """
        x0 = check_data("x0", x0)
        _, ab = self._coeffs(t, x0)
        noise = noise_like(x0, noise, generator)
        ab = expand_like(ab, x0)
        return ab.sqrt() * x0 + (1.0 - ab).sqrt() * noise, noise

    def predict_x0(self, xt: torch.Tensor, t: torch.Tensor | int, eps_pred: torch.Tensor) -> torch.Tensor:
        """``x0_hat = (x_t - sqrt(1 - ab_t) eps_pred) / sqrt(ab_t)``, shape ``(B, ...)`` like ``xt``.

        For the cosine schedule ``1 / sqrt(ab_T)`` is about 2e4 at ``T = 1000``: errors of ``eps_pred``
        at the noisiest steps are amplified accordingly (see ``clip_x0`` in :meth:`step`).
        """
        xt = check_data("xt", xt)
        check_same_shape("eps_pred", eps_pred, "xt", xt)
        _, ab = self._coeffs(t, xt)
        ab = expand_like(ab, xt)
        return (xt - (1.0 - ab).sqrt() * eps_pred.to(xt.dtype)) / ab.sqrt()

    def loss(self, eps_pred: torch.Tensor, noise: torch.Tensor, reduce_dims: tuple[int, ...] | None = None):
        """Mean squared error between ``eps_pred`` and ``noise`` per row (Ho et al.'s simple loss).

        Averages over ``reduce_dims`` (default: every dimension but the first), so the default result
        has shape ``(B,)``; the caller weights and averages the rows.
        """
        eps_pred = check_data("eps_pred", eps_pred)
        check_same_shape("noise", noise, "eps_pred", eps_pred)
        err = (eps_pred - noise.to(eps_pred.dtype)).square()
        if reduce_dims is None:
            return row_mean(err)
        return err.mean(dim=reduce_dims) if reduce_dims else err

    # ------------------------------------------------------------------ reverse process
    def step(
        self,
        xt: torch.Tensor,
        t: torch.Tensor | int,
        s: torch.Tensor | int,
        eps_pred: torch.Tensor,
        generator: torch.Generator | None = None,
        eta: float = 1.0,
        clip_x0: float | None = None,
    ) -> torch.Tensor:
        """One reverse step from ``x_t`` to ``x_s`` (``0 <= s < t`` per row).

        With ``x0_hat`` from :meth:`predict_x0` and ``eps_hat = eps_pred``::

            var   = (1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)        # posterior variance of q(x_s | x_t, x_0)
            x_s   = sqrt(ab_s) x0_hat + sqrt(1 - ab_s - eta^2 var) eps_hat + eta sqrt(var) z

        with ``z`` one ``torch.randn(xt.shape, generator=generator)`` draw (always drawn, also when
        ``eta = 0``, so the generator advances the same way). ``eta = 1`` samples the exact posterior
        ``q(x_s | x_t, x_0 = x0_hat)`` for any jump (for ``s = t - 1`` the DDPM ancestral step with
        variance ``beta~_t``); ``eta = 0`` is deterministic DDIM. At ``s = 0`` (``ab_0 = 1``, ``var =
        0``) the result is exactly ``x0_hat``, the model's clean estimate.

        Parameters
        ----------
        xt, eps_pred : (B, ...) float tensors
        t : (B,) integer tensor in ``1..T`` (or an int); s : (B,) integer tensor with ``0 <= s < t``
        eta : float in [0, 1]
        clip_x0 : float, optional
            Clamp ``x0_hat`` to ``[-clip_x0, clip_x0]`` (then ``eps_hat`` is recomputed from it), as
            DDPM does for images; off by default.
        """
        xt = check_data("xt", xt)
        check_same_shape("eps_pred", eps_pred, "xt", xt)
        eta = check_float("eta", eta, low=0.0, high=1.0)
        steps_t, ab_t = self._coeffs(t, xt, low=1)
        steps_s, ab_s = self._coeffs(s, xt, name="s", low=0)
        check_before(steps_t, steps_s)
        generator = check_generator(generator, xt.device)
        var = (1.0 - ab_s) / (1.0 - ab_t) * (1.0 - ab_t / ab_s)
        keep = (1.0 - ab_s - eta * eta * var).clamp(min=0.0)
        abt, abs_ = expand_like(ab_t, xt), expand_like(ab_s, xt)
        eps_hat = eps_pred.to(xt.dtype)
        x0_hat = (xt - (1.0 - abt).sqrt() * eps_hat) / abt.sqrt()
        if clip_x0 is not None:
            clip_x0 = check_float("clip_x0", clip_x0, low=0.0, open_low=True)
            x0_hat = x0_hat.clamp(-clip_x0, clip_x0)
            eps_hat = (xt - abt.sqrt() * x0_hat) / (1.0 - abt).sqrt()
        z = torch.randn(xt.shape, generator=generator, dtype=xt.dtype, device=xt.device)
        return abs_.sqrt() * x0_hat + expand_like(keep.sqrt(), xt) * eps_hat + expand_like(eta * var.sqrt(), xt) * z

    def _draw_prior(self, shape, generator, dtype, device) -> torch.Tensor:
        """Standard normal ``x_T`` (the prior; ``alpha_bar[T]`` is ~2e-9 for the cosine schedule)."""
        return torch.randn(shape, generator=generator, dtype=self._float_dtype(dtype), device=device)

"""Training-time step sampling and sampler step grids.

Steps are integers ``1..T`` (``T = num_steps``); ``0`` is clean data. During training each row of a
batch gets a step drawn uniformly from ``1..T`` (Ho et al. 2020); the ``antithetic`` option draws the
batch as one randomly offset stratified sweep over ``[1, T]`` (every row still uniform, the batch
covering the range evenly; a low-variance estimator in the spirit of the stratified time sampling of
Kingma et al. 2021, "Variational Diffusion Models"). At sampling time :func:`sampling_schedule` gives
the ``(t, s)`` pairs of a reverse chain with fewer steps than ``T`` (the strided sampling of Nichol &
Dhariwal 2021 and Song et al. 2021, DDIM; "quadratic" spacing as in DDIM's experiments).

Examples
--------
>>> sampling_schedule(10, 4)
[(10, 8), (8, 5), (5, 3), (3, 0)]
>>> sampling_schedule(3, 3)
[(3, 2), (2, 1), (1, 0)]
>>> g = torch.Generator().manual_seed(0)
>>> t = sample_timesteps(8, 1000, generator=g)
>>> t.dtype, bool(((t >= 1) & (t <= 1000)).all())
(torch.int64, True)
"""

from __future__ import annotations

import math

import torch

from td_models.diffusion.schedules import check_generator, check_int
from td_models.exceptions import ConfigError

__all__ = ["sample_timesteps", "sampling_schedule", "SPACINGS"]

SPACINGS = ("linear", "quadratic")


def sample_timesteps(
    batch_size: int,
    num_steps: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    antithetic: bool = False,
) -> torch.Tensor:
    """Training steps, ``(batch_size,)`` ``torch.long`` uniform on ``1..num_steps``.

    Parameters
    ----------
    batch_size : int >= 0
    num_steps : int >= 1
    generator : torch.Generator, optional
        Must live on ``device`` (default CPU).
    antithetic : bool
        If true, draw one offset ``u0 ~ U[0, 1)`` and set ``u_i = (u0 + i / B) mod 1``, ``t_i = 1 +
        floor(T u_i)``, then shuffle the rows with one random permutation. Each ``t_i`` is still
        uniform on ``1..T``; the batch is an evenly spaced sweep (with ``B >= T`` every step appears
        ``floor(B / T)`` or ``ceil(B / T)`` times).
    """
    batch_size = check_int("batch_size", batch_size, 0)
    num_steps = check_int("num_steps", num_steps, 1)
    if not isinstance(antithetic, bool):
        raise ConfigError(f"antithetic must be a bool, got {antithetic!r}")
    device = torch.device(device) if device is not None else torch.device("cpu")
    generator = check_generator(generator, device)
    if not antithetic:
        return torch.randint(1, num_steps + 1, (batch_size,), generator=generator, device=device)
    offset = torch.rand((), generator=generator, dtype=torch.float64, device=device)
    u = torch.remainder(offset + torch.arange(batch_size, dtype=torch.float64, device=device) / max(batch_size, 1), 1.0)
    steps = (1 + torch.floor(u * num_steps).long()).clamp(1, num_steps)
    return steps[torch.randperm(batch_size, generator=generator, device=device)]


def sampling_schedule(num_steps: int, num_sampling_steps: int, spacing: str = "linear") -> list[tuple[int, int]]:
    """``(t, s)`` pairs of a reverse chain from ``T`` down to 0.

    The chain visits ``tau_0 = T > tau_1 > ... > tau_n = 0`` (``n = num_sampling_steps``, distinct
    integers) and returns ``[(tau_0, tau_1), ..., (tau_{n-1}, tau_n)]``:

    - ``"linear"``: ``tau_i = floor(T (n - i) / n + 1/2)`` (evenly spaced);
    - ``"quadratic"``: ``tau_i = floor(T ((n - i) / n)^2 + 1/2)``, denser near 0, then raised where
      needed so that the ``tau`` stay distinct (``tau_i >= tau_{i+1} + 1``).

    ``num_sampling_steps == num_steps`` gives every step ``(T, T-1), ..., (1, 0)`` for both spacings.
    """
    num_steps = check_int("num_steps", num_steps, 1)
    n = check_int("num_sampling_steps", num_sampling_steps, 1)
    if n > num_steps:
        raise ConfigError(f"num_sampling_steps must be <= num_steps ({num_steps}), got {n}")
    if spacing == "linear":
        taus = [(2 * num_steps * (n - i) + n) // (2 * n) for i in range(n + 1)]
    elif spacing == "quadratic":
        taus = [math.floor(num_steps * ((n - i) / n) ** 2 + 0.5) for i in range(n + 1)]
        taus[0], taus[n] = num_steps, 0
        for i in range(n - 1, -1, -1):
            taus[i] = max(taus[i], taus[i + 1] + 1)
    else:
        raise ConfigError(f"spacing must be one of {SPACINGS}, got {spacing!r}")
    if taus[0] != num_steps or any(a <= b for a, b in zip(taus, taus[1:])):  # pragma: no cover - cannot happen
        raise RuntimeError(f"internal error: sampling steps {taus} are not strictly decreasing from {num_steps}")
    return list(zip(taus[:-1], taus[1:]))

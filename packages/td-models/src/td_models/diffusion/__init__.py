"""Generic diffusion processes on tensors: the core that the crystal model builds on.

Nothing here knows about crystals. Three processes share one convention (integer steps ``t`` in
``1..T``, ``t = 0`` clean data, one step per leading row, randomness only through an optional
``torch.Generator``, reverse steps from ``t`` to any ``0 <= s < t``):

- :class:`VPProcess`: variance-preserving Gaussian diffusion (DDPM / DDIM), e.g. for a lattice;
- :class:`WrappedNormalProcess`: wrapped-normal score diffusion on ``[0, 1)^d`` (DiffCSP), e.g. for
  fractional coordinates;
- :class:`DiscreteProcess`: absorbing or uniform categorical diffusion (D3PM), e.g. for species.

:func:`sample_timesteps` draws training steps; :func:`sampling_schedule` gives the ``(t, s)`` pairs of
a (possibly strided) reverse chain.
"""

from __future__ import annotations

from td_models.diffusion.continuous import VPProcess
from td_models.diffusion.discrete import DISCRETE_KINDS, DISCRETE_SCHEDULES, DiscreteProcess
from td_models.diffusion.schedules import BETA_KINDS, as_steps, beta_schedule, expand_like, sigma_schedule
from td_models.diffusion.timesteps import SPACINGS, sample_timesteps, sampling_schedule
from td_models.diffusion.torus import WrappedNormalProcess, wrap01, wrapped_normal_score

__all__ = [
    "VPProcess",
    "WrappedNormalProcess",
    "DiscreteProcess",
    "beta_schedule",
    "sigma_schedule",
    "sample_timesteps",
    "sampling_schedule",
    "wrapped_normal_score",
    "wrap01",
    "expand_like",
    "as_steps",
    "BETA_KINDS",
    "DISCRETE_KINDS",
    "DISCRETE_SCHEDULES",
    "SPACINGS",
]

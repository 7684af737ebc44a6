"""Noise schedules and the small helpers shared by the diffusion processes.

Time is discrete: integer steps ``t`` in ``1..T`` (``T = num_steps``); ``t = 0`` is clean data. Every
table here has ``T + 1`` entries indexed by ``t`` and is built in float64; the processes cast the
entries they look up to the dtype of the tensor they act on.

- :func:`beta_schedule` gives ``alpha_bar[t] = prod_{i <= t} (1 - beta_i)`` of a variance-preserving
  process: the linear schedule of Ho et al. (2020, "Denoising Diffusion Probabilistic Models") or the
  cosine schedule of Nichol & Dhariwal (2021, "Improved Denoising Diffusion Probabilistic Models"),
  whose betas are clipped at 0.999.
- :func:`sigma_schedule` gives the geometric noise levels of a variance-exploding process, as used by
  DiffCSP (Jiao et al. 2023, "Crystal Structure Prediction by Joint Equivariant Diffusion", NeurIPS)
  for fractional coordinates, following Song et al. (2021, "Score-Based Generative Modeling through
  Stochastic Differential Equations").

Examples
--------
>>> ab = beta_schedule("cosine", 1000)
>>> ab.shape, ab.dtype, float(ab[0])
(torch.Size([1001]), torch.float64, 1.0)
>>> bool((ab[1:] < ab[:-1]).all())
True
>>> sig = sigma_schedule(1000)
>>> float(sig[0]), round(float(sig[1]), 6), round(float(sig[-1]), 6)
(0.0, 0.005, 0.5)
"""

from __future__ import annotations

import math
from typing import Any

import torch

from td_models.exceptions import ConfigError

__all__ = ["beta_schedule", "sigma_schedule", "expand_like", "as_steps", "BETA_KINDS"]

BETA_KINDS = ("linear", "cosine")
_MAX_BETA = 0.999


def check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int, or :class:`ConfigError` if it is not an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_float(name: str, value: Any, *, low: float | None = None, high: float | None = None, open_low=False) -> float:
    """``value`` as a finite float in ``[low, high]`` (``(low, high]`` if ``open_low``), else :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    value = float(value)
    if low is not None and (value < low or (open_low and value == low)):
        rule = ">" if open_low else ">="
        raise ConfigError(f"{name} must be {rule} {low}, got {value}")
    if high is not None and value > high:
        raise ConfigError(f"{name} must be <= {high}, got {value}")
    return value


def beta_schedule(
    kind: str,
    num_steps: int,
    beta_start: float = 1e-4,
    beta_end: float = 2e-2,
    cosine_s: float = 0.008,
) -> torch.Tensor:
    """Cumulative signal fractions ``alpha_bar`` of a variance-preserving schedule.

    Parameters
    ----------
    kind : {"linear", "cosine"}
        ``"linear"``: ``beta_t`` evenly spaced from ``beta_start`` to ``beta_end`` (Ho et al. 2020; the
        defaults are theirs for ``T = 1000``; they are not rescaled for other ``T``, so with ``T``
        much below 1000 ``alpha_bar[T]`` stays far from 0). ``"cosine"``:
        ``alpha_bar(t) = f(t) / f(0)`` with ``f(t) = cos^2(pi/2 (t/T + s) / (1 + s))``, betas
        ``1 - alpha_bar[t] / alpha_bar[t-1]`` clipped at 0.999 and ``alpha_bar`` recomputed as their
        cumulative product (Nichol & Dhariwal 2021).
    num_steps : int
        ``T >= 1``.

    Returns
    -------
    torch.Tensor
        Shape ``(T + 1,)``, float64, CPU; ``alpha_bar[0] = 1``, strictly decreasing, all entries in
        ``(0, 1]``.
    """
    num_steps = check_int("num_steps", num_steps, 1)
    if kind == "linear":
        beta_start = check_float("beta_start", beta_start, low=0.0, high=_MAX_BETA, open_low=True)
        beta_end = check_float("beta_end", beta_end, low=0.0, high=_MAX_BETA, open_low=True)
        if beta_end < beta_start:
            raise ConfigError(f"beta_end must be >= beta_start ({beta_start}), got {beta_end}")
        betas = torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)
    elif kind == "cosine":
        cosine_s = check_float("cosine_s", cosine_s, low=0.0, open_low=True)
        f = cosine_alpha_bar(num_steps, cosine_s, squared=True)
        betas = (1.0 - f[1:] / f[:-1]).clamp(min=0.0, max=_MAX_BETA)
    else:
        raise ConfigError(f"kind must be one of {BETA_KINDS}, got {kind!r}")
    return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1.0 - betas, dim=0)])


def cosine_alpha_bar(num_steps: int, s: float = 0.008, *, squared: bool = True) -> torch.Tensor:
    """``g(t) / g(0)`` for ``t = 0..T`` with ``g(t) = cos(pi/2 (t/T + s) / (1 + s))`` (squared or not); float64.

    The squared form is the cosine schedule of Nichol & Dhariwal (2021); the unsquared form is the one
    Hoogeboom et al. (2021, "Argmax Flows and Multinomial Diffusion") and Austin et al. (2021, D3PM)
    use for uniform categorical diffusion. The last entry is ``cos(pi/2) ~ 6e-17``, not exactly 0.
    """
    steps = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    g = torch.cos((steps + s) / (1.0 + s) * (math.pi / 2.0))
    if squared:
        g = g * g
    return (g / g[0]).clamp(min=0.0)


def sigma_schedule(num_steps: int, sigma_min: float = 0.005, sigma_max: float = 0.5) -> torch.Tensor:
    """Geometric noise levels of a variance-exploding process (Song et al. 2021; DiffCSP, Jiao et al. 2023).

    Returns
    -------
    torch.Tensor
        Shape ``(T + 1,)``, float64, CPU: ``sigma[0] = 0`` and, for ``t = 1..T``,
        ``sigma[t] = sigma_min * (sigma_max / sigma_min) ** ((t - 1) / (T - 1))``, so ``sigma[1] =
        sigma_min`` and ``sigma[T] = sigma_max`` (``sigma[1] = sigma_max`` when ``T = 1``). Units are
        those of the data (fractions of a cell edge for fractional coordinates).
    """
    num_steps = check_int("num_steps", num_steps, 1)
    sigma_min = check_float("sigma_min", sigma_min, low=0.0, open_low=True)
    sigma_max = check_float("sigma_max", sigma_max, low=0.0, open_low=True)
    if sigma_max < sigma_min:
        raise ConfigError(f"sigma_max must be >= sigma_min ({sigma_min}), got {sigma_max}")
    if num_steps == 1:
        levels = torch.tensor([sigma_max], dtype=torch.float64)
    else:
        frac = torch.arange(num_steps, dtype=torch.float64) / (num_steps - 1)
        levels = torch.exp(math.log(sigma_min) + frac * (math.log(sigma_max) - math.log(sigma_min)))
        levels[0], levels[-1] = sigma_min, sigma_max
    return torch.cat([torch.zeros(1, dtype=torch.float64), levels])


def expand_like(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-row ``values`` ``(B,)`` reshaped to ``(B, 1, ..., 1)`` in ``x``'s dtype and device (broadcasts to ``x``)."""
    return values.to(device=x.device, dtype=x.dtype).reshape(values.shape[0], *([1] * (x.dim() - 1)))


def as_steps(
    t: Any, batch_size: int, device: torch.device | str | None, *, name: str = "t", low: int, high: int
) -> torch.Tensor:
    """Steps as a ``(batch_size,)`` ``torch.long`` tensor on ``device``, checked to lie in ``[low, high]``.

    ``t`` may be a Python int or a 0-d integer tensor (used for every row) or an integer tensor of
    shape ``(batch_size,)`` (one step per row). Checking the range reads one value back from the
    device.
    """
    if isinstance(t, bool):
        raise ConfigError(f"{name} must be an integer or an integer tensor, got {t!r}")
    if isinstance(t, int):
        steps = torch.full((batch_size,), t, dtype=torch.long, device=device)
    elif isinstance(t, torch.Tensor):
        if t.dtype == torch.bool or t.dtype.is_floating_point or t.dtype.is_complex:
            raise ConfigError(f"{name} must be an integer tensor (torch.long), got dtype {t.dtype}")
        if t.dim() == 0:
            steps = t.to(device=device, dtype=torch.long).expand(batch_size)
        elif t.dim() == 1 and t.shape[0] == batch_size:
            steps = t.to(device=device, dtype=torch.long)
        else:
            raise ConfigError(
                f"{name} must have shape ({batch_size},) (one step per row of the data), got {tuple(t.shape)}"
            )
    else:
        raise ConfigError(f"{name} must be an integer or an integer tensor, got {type(t).__name__}")
    bad = (steps < low) | (steps > high)
    if bool(bad.any()):
        value = int(steps[bad][0])
        raise ConfigError(f"{name} must lie in [{low}, {high}], got {value}")
    return steps


def check_before(t: torch.Tensor, s: torch.Tensor) -> None:
    """:class:`ConfigError` unless ``0 <= s < t`` in every row (both already checked ``(B,)`` long tensors)."""
    bad = s >= t
    if bool(bad.any()):
        i = int(torch.nonzero(bad)[0, 0])
        raise ConfigError(
            f"s must be < t in every row (reverse steps go back in time), got s={int(s[i])}, t={int(t[i])}"
        )


def check_data(name: str, x: Any, *, floating: bool = True) -> torch.Tensor:
    """``x`` if it is a tensor with a leading batch dimension (floating point unless ``floating=False``)."""
    if not isinstance(x, torch.Tensor):
        raise ConfigError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 1:
        raise ConfigError(f"{name} must have a leading batch dimension, got a 0-d tensor")
    if floating and not x.dtype.is_floating_point:
        raise ConfigError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def check_same_shape(name: str, value: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    """:class:`ConfigError` unless ``value`` has the shape of ``ref``."""
    if not isinstance(value, torch.Tensor):
        raise ConfigError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.shape != ref.shape:
        raise ConfigError(f"{name} must have the shape of {ref_name} {tuple(ref.shape)}, got {tuple(value.shape)}")


def check_generator(generator: Any, device: torch.device) -> torch.Generator | None:
    """``generator`` if it is ``None`` or a :class:`torch.Generator` on ``device``'s type."""
    if generator is None:
        return None
    if not isinstance(generator, torch.Generator):
        raise ConfigError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    if torch.device(generator.device).type != torch.device(device).type:
        raise ConfigError(f"generator must live on the data's device ({device}), got one on {generator.device}")
    return generator


def noise_like(
    x: torch.Tensor, noise: torch.Tensor | None, generator: torch.Generator | None, name: str = "x0"
) -> torch.Tensor:
    """The forward-process noise for data ``x``: ``noise`` (same shape, cast to ``x``'s dtype) or, when it is
    None, one ``torch.randn(x.shape, generator=generator)`` draw in ``x``'s dtype and device."""
    if noise is None:
        generator = check_generator(generator, x.device)
        return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    check_same_shape("noise", noise, name, x)
    return noise.to(dtype=x.dtype)


def row_mean(x: torch.Tensor) -> torch.Tensor:
    """Per-row mean ``(B,)`` over every dimension but the first (``x`` itself when it is ``(B,)``)."""
    return x.mean(dim=tuple(range(1, x.dim()))) if x.dim() > 1 else x


class TableModule(torch.nn.Module):
    """A module holding float64 lookup tables as non-persistent buffers.

    The tables follow the module across devices (``.to(device)``, ``.cuda()``) but always stay float64:
    ``.to(dtype)``, ``.float()`` or ``.half()`` on an enclosing model do not round them (an exact CPU
    copy is kept and re-sent). They are not written to ``state_dict`` (they are rebuilt from the
    constructor arguments).
    """

    def __init__(self) -> None:
        super().__init__()
        self._table_masters: dict[str, torch.Tensor] = {}

    def _register_table(self, name: str, table: torch.Tensor) -> None:
        master = table.detach().to(device="cpu", dtype=torch.float64).clone()
        self._table_masters[name] = master
        self.register_buffer(name, master.clone(), persistent=False)

    def _apply(self, fn, *args, **kwargs):  # type: ignore[override]
        super()._apply(fn, *args, **kwargs)
        for name, master in self._table_masters.items():
            current = self._buffers.get(name)
            if current is not None:
                self._buffers[name] = master.to(current.device)
        return self

    def _table_at(self, name: str, t: Any, high: int) -> torch.Tensor:
        """``table[t]`` (float64, ``t``'s shape and device; the tables' device for an int) for ``t`` in ``0..high``."""
        device = t.device if isinstance(t, torch.Tensor) else self.table_device
        steps = torch.as_tensor(t, device=device)
        flat = as_steps(steps.reshape(-1), steps.numel(), device, low=0, high=high)
        return self._lookup(name, flat).reshape(steps.shape)

    def _lookup(self, name: str, steps: torch.Tensor) -> torch.Tensor:
        """``table[steps]`` in float64 on ``steps``' device."""
        table = self._buffers[name]
        if table.device != steps.device:
            table = table.to(steps.device)
        return table[steps]

    def prior_sample(
        self,
        shape: tuple[int, ...] | torch.Size,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """A draw of ``x_T`` of ``shape`` from the process's prior (each process's ``_draw_prior`` says which).

        ``dtype`` is the floating-point dtype of a continuous prior (default: torch's default dtype);
        ``device`` defaults to the device of the tables; ``generator`` must live on that device.
        """
        device = torch.device(device) if device is not None else self.table_device
        return self._draw_prior(tuple(shape), check_generator(generator, device), dtype, device)

    def _draw_prior(
        self, shape: tuple[int, ...], generator: torch.Generator | None, dtype: torch.dtype | None, device: torch.device
    ) -> torch.Tensor:
        """The prior draw of a process; every process class defines its own."""
        raise NotImplementedError(f"{type(self).__name__} defines no prior")

    @staticmethod
    def _float_dtype(dtype: torch.dtype | None) -> torch.dtype | None:
        """``dtype`` if it is None or floating point; :class:`ConfigError` otherwise."""
        if dtype is not None and not dtype.is_floating_point:
            raise ConfigError(f"dtype must be a floating-point dtype, got {dtype}")
        return dtype

    @property
    def table_device(self) -> torch.device:
        """Device the tables currently live on."""
        return next(iter(self._buffers.values())).device

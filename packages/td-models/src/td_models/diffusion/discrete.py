"""Discrete (categorical) diffusion with absorbing or uniform transitions (D3PM, Austin et al. 2021).

Austin et al. (2021, "Structured Denoising Diffusion Models in Discrete State-Spaces") corrupt a
categorical variable with transition matrices ``Q_t``; here the two standard families are used in
closed form (no dense ``T x K x K`` tables):

- ``"absorbing"``: each token is replaced by a mask state (index ``num_classes``) and stays masked.
  ``q(x_t | x_0) = alpha_bar_t [x_t = x_0] + (1 - alpha_bar_t) [x_t = mask]``. Default schedule
  ``"jsd"``: ``alpha_bar_t = 1 - t / T``, i.e. ``beta_t = 1 / (T - t + 1)`` (Sohl-Dickstein et al. 2015;
  D3PM), so every token is masked at ``t = T``.
- ``"uniform"``: a token is resampled uniformly among the ``num_classes`` classes.
  ``q(x_t | x_0) = alpha_bar_t [x_t = x_0] + (1 - alpha_bar_t) / K``. Default schedule ``"cosine"``:
  ``alpha_bar_t = cos(pi/2 (t/T + 0.008) / 1.008)`` (not squared), betas clipped at 0.999 (Hoogeboom
  et al. 2021, "Argmax Flows and Multinomial Diffusion"; D3PM).

A jump from step ``s`` to ``t > s`` has the same form with ``alpha_bar_t / alpha_bar_s``.

Reverse process. The network predicts ``p(x_0 | x_t)`` (logits over the ``num_classes`` data classes,
never the mask). The reverse step marginalises the exact posterior over that prediction::

    p(x_s | x_t) = sum_{x_0} q(x_s | x_t, x_0) p(x_0 | x_t)

which is the exact reverse process when the prediction is the true ``q(x_0 | x_t)``, and equals the
prediction itself at ``s = 0``. (D3PM's eq. 4 instead normalises ``sum_{x_0} q(x_s, x_t | x_0) p(x_0 |
x_t)``, which additionally weights the prediction by ``q(x_t | x_0)``; both agree for absorbing
diffusion and for a one-hot prediction.)

Shapes: tokens ``x`` are ``(B, ...)`` long; steps ``t``, ``s`` are ``(B,)`` integer tensors (or Python
ints used for every row); probabilities and logits carry one extra trailing axis of size
``num_states`` (``num_classes + 1`` for absorbing, ``num_classes`` for uniform) or, for predictions of
``x_0``, ``num_classes``.

Examples
--------
>>> proc = DiscreteProcess(num_classes=4, num_steps=10, kind="absorbing")
>>> proc.num_states, proc.mask_index
(5, 4)
>>> x0 = torch.tensor([0, 1, 2, 3])
>>> proc.q_probs(x0, torch.full((4,), 10))[:, proc.mask_index].tolist()  # all masked at t = T
[1.0, 1.0, 1.0, 1.0]
"""

from __future__ import annotations

import math

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
    cosine_alpha_bar,
    row_mean,
)
from td_models.exceptions import ConfigError

__all__ = ["DiscreteProcess", "DISCRETE_KINDS", "DISCRETE_SCHEDULES"]

DISCRETE_KINDS = ("absorbing", "uniform")
DISCRETE_SCHEDULES = ("jsd", "cosine")
_MAX_BETA = 0.999


def _keep_schedule(schedule: str, num_steps: int) -> torch.Tensor:
    """``alpha_bar`` (probability that a token is still untouched after ``t`` steps), ``(T + 1,)`` float64."""
    if schedule == "jsd":
        return 1.0 - torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    if schedule == "cosine":
        g = cosine_alpha_bar(num_steps, 0.008, squared=False)
        betas = (1.0 - g[1:] / g[:-1]).clamp(min=0.0, max=_MAX_BETA)
        return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1.0 - betas, dim=0)])
    raise ConfigError(f"schedule must be one of {DISCRETE_SCHEDULES} or None, got {schedule!r}")


def _safe_log(p: torch.Tensor) -> torch.Tensor:
    """``log p`` with exact ``-inf`` where ``p == 0`` and no NaN gradients there."""
    tiny = torch.finfo(p.dtype).tiny
    return torch.where(p > 0, p.clamp(min=tiny).log(), torch.full_like(p, -math.inf))


class DiscreteProcess(TableModule):
    """D3PM categorical diffusion with absorbing (mask) or uniform transitions.

    Parameters
    ----------
    num_classes : int
        ``K >= 1`` data classes ``0..K-1`` (``>= 2`` for uniform).
    num_steps : int
        ``T``; steps ``1..T``, ``t = 0`` is clean data.
    kind : {"absorbing", "uniform"}
    schedule : {"jsd", "cosine"}, optional
        Defaults to ``"jsd"`` for absorbing and ``"cosine"`` for uniform (see the module docstring).
    """

    def __init__(self, num_classes: int, num_steps: int = 1000, kind: str = "absorbing", schedule: str | None = None):
        super().__init__()
        if kind not in DISCRETE_KINDS:
            raise ConfigError(f"kind must be one of {DISCRETE_KINDS}, got {kind!r}")
        self.num_classes = check_int("num_classes", num_classes, 2 if kind == "uniform" else 1)
        self.num_steps = check_int("num_steps", num_steps, 1)
        self.kind = kind
        if schedule is None:
            schedule = "jsd" if kind == "absorbing" else "cosine"
        self.schedule = schedule
        self._register_table("alpha_bars", _keep_schedule(schedule, num_steps))

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, num_steps={self.num_steps}, kind={self.kind!r}, "
            f"schedule={self.schedule!r}"
        )

    @property
    def absorbing(self) -> bool:
        return self.kind == "absorbing"

    @property
    def mask_index(self) -> int | None:
        """Index of the mask state (``num_classes``) for absorbing diffusion, ``None`` for uniform."""
        return self.num_classes if self.absorbing else None

    @property
    def num_states(self) -> int:
        """Size of the state space of ``x_t``: ``num_classes + 1`` (absorbing) or ``num_classes`` (uniform)."""
        return self.num_classes + 1 if self.absorbing else self.num_classes

    def alpha_bar(self, t: torch.Tensor | int) -> torch.Tensor:
        """Probability that a token is untouched after ``t`` steps (float64, ``t``'s shape)."""
        return self._table_at("alpha_bars", t, self.num_steps)

    # ------------------------------------------------------------------ checks and look-ups
    def _tokens(self, name: str, x, high: int) -> torch.Tensor:
        x = check_data(name, x, floating=False)
        if x.dtype == torch.bool or x.dtype.is_floating_point or x.dtype.is_complex:
            raise ConfigError(f"{name} must be an integer tensor (torch.long), got dtype {x.dtype}")
        bad = (x < 0) | (x >= high)
        if bool(bad.any()):
            raise ConfigError(f"{name} must hold states in [0, {high - 1}], got {int(x[bad][0])}")
        return x.long()

    def _keep(self, t, x: torch.Tensor, dtype: torch.dtype, *, name: str = "t", low: int = 0):
        """Checked steps and ``alpha_bar`` shaped ``(B, 1, ..., 1)`` to broadcast against ``x``'s shape."""
        steps = as_steps(t, x.shape[0], x.device, name=name, low=low, high=self.num_steps)
        keep = self._lookup("alpha_bars", steps).reshape(x.shape[0], *([1] * (x.dim() - 1)))
        return steps, keep.to(dtype)

    def _check_logits(self, name: str, logits, xt: torch.Tensor) -> torch.Tensor:
        logits = check_data(name, logits)
        if logits.shape != (*xt.shape, self.num_classes):
            raise ConfigError(
                f"{name} must have shape {(*xt.shape, self.num_classes)} (the tokens' shape plus num_classes), "
                f"got {tuple(logits.shape)}"
            )
        if torch.finfo(logits.dtype).bits < 32:
            logits = logits.float()
        return logits

    # ------------------------------------------------------------------ forward process
    def q_probs(self, x0: torch.Tensor, t: torch.Tensor | int, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``q(x_t | x_0)`` as probabilities ``(B, ..., num_states)`` (``dtype`` defaults to torch's default).

        ``x0``: ``(B, ...)`` long in ``0..num_classes-1``; ``t``: ``(B,)`` in ``0..T``.
        """
        x0 = self._tokens("x0", x0, self.num_classes)
        dtype = dtype or torch.get_default_dtype()
        _, keep = self._keep(t, x0, dtype)
        keep = keep.unsqueeze(-1)
        onehot = torch.nn.functional.one_hot(x0, self.num_states).to(dtype)
        if self.absorbing:
            mask = torch.nn.functional.one_hot(torch.full_like(x0, self.num_classes), self.num_states).to(dtype)
            return keep * onehot + (1.0 - keep) * mask
        return keep * onehot + (1.0 - keep) / self.num_classes

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor | int, generator: torch.Generator | None = None):
        """Sample ``x_t ~ q(x_t | x_0)``: long ``(B, ...)`` in ``0..num_states-1``.

        Draws ``u = torch.rand(x0.shape)`` and, for uniform, ``torch.randint(K, x0.shape)`` (in that order):
        a token is kept when ``u < alpha_bar_t`` and otherwise masked / replaced by the uniform draw.
        """
        x0 = self._tokens("x0", x0, self.num_classes)
        generator = check_generator(generator, x0.device)
        _, keep = self._keep(t, x0, torch.float64)
        u = torch.rand(x0.shape, generator=generator, dtype=torch.float64, device=x0.device)
        if self.absorbing:
            other = torch.full_like(x0, self.num_classes)
        else:
            other = torch.randint(0, self.num_classes, x0.shape, generator=generator, device=x0.device)
        return torch.where(u < keep, x0, other)

    # ------------------------------------------------------------------ reverse process
    def _posterior_log(self, xt, t, s, log_p0: torch.Tensor) -> torch.Tensor:
        """Log ``p(x_s | x_t)``, ``(B, ..., num_states)``, from log-probabilities ``log_p0`` ``(B, ..., K)`` of x_0."""
        dtype = log_p0.dtype
        steps_t, keep_t = self._keep(t, xt, dtype, low=1)
        steps_s, keep_s = self._keep(s, xt, dtype, name="s", low=0)
        check_before(steps_t, steps_s)
        keep_t, keep_s = keep_t.unsqueeze(-1), keep_s.unsqueeze(-1)
        neg_inf = torch.tensor(-math.inf, dtype=dtype, device=log_p0.device)
        if self.absorbing:
            # masked x_t: x_s = mask w.p. (1 - ab_s)/(1 - ab_t), else x_s = x_0 ~ p; unmasked x_t never changes
            log_unmask = torch.log((keep_s - keep_t) / (1.0 - keep_t))
            log_mask = _safe_log((1.0 - keep_s) / (1.0 - keep_t)).expand(*xt.shape, 1)
            masked = torch.cat([log_unmask + log_p0, log_mask], dim=-1)
            onehot = torch.nn.functional.one_hot(xt, self.num_states).bool()
            unmasked = torch.where(onehot, torch.zeros((), dtype=dtype, device=xt.device), neg_inf)
            return torch.where((xt == self.num_classes).unsqueeze(-1), masked, unmasked)
        k = self.num_classes
        onehot = torch.nn.functional.one_hot(xt, k).to(dtype)
        ratio = keep_t / keep_s
        log_lik = torch.log(keep_t * onehot + (1.0 - keep_t) / k)  # log q(x_t | x_0) over x_0
        log_jump = torch.log(ratio * onehot + (1.0 - ratio) / k)  # log q(x_t | x_s) over x_s
        log_w = log_p0 - log_lik  # p(x_0) / q(x_t | x_0)
        log_m = torch.logaddexp(
            torch.log(keep_s) + log_w,
            _safe_log((1.0 - keep_s) / k) + torch.logsumexp(log_w, dim=-1, keepdim=True),
        )
        log_post = log_jump + log_m
        return log_post - torch.logsumexp(log_post, dim=-1, keepdim=True)

    def posterior_logits(
        self, xt: torch.Tensor, t: torch.Tensor | int, s: torch.Tensor | int, x0_probs: torch.Tensor
    ) -> torch.Tensor:
        """``log p(x_s | x_t) = log sum_{x_0} q(x_s | x_t, x_0) x0_probs(x_0)`` for ``0 <= s < t``.

        Parameters
        ----------
        xt : (B, ...) long in ``0..num_states-1``
        t : (B,) in ``1..T``; s : (B,) with ``0 <= s < t`` (any jump)
        x0_probs : (B, ..., num_classes) non-negative; normalised here along the last axis

        Returns
        -------
        (B, ..., num_states) normalised log-probabilities in ``x0_probs``' dtype, exact ``-inf`` for
        impossible states. At ``s = 0`` this is ``log x0_probs`` (``-inf`` at the mask). For absorbing
        diffusion an unmasked ``x_t`` gives a one-hot at ``x_t`` whatever ``x0_probs`` says.
        """
        xt = self._tokens("xt", xt, self.num_states)
        x0_probs = self._check_logits("x0_probs", x0_probs, xt)
        log_p0 = _safe_log(x0_probs / x0_probs.sum(dim=-1, keepdim=True))
        return self._posterior_log(xt, t, s, log_p0)

    def step(
        self,
        xt: torch.Tensor,
        t: torch.Tensor | int,
        s: torch.Tensor | int,
        x0_logits: torch.Tensor,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """Sample ``x_s ~ p(x_s | x_t)`` with ``p(x_0 | x_t) = softmax(x0_logits / temperature)``.

        Sampling is Gumbel-max with one ``torch.rand((*xt.shape, num_states))`` draw. At ``s = 0`` the
        result is a *sample* of ``softmax(x0_logits / temperature)`` (never the mask); take
        ``x0_logits.argmax(-1)`` yourself for a greedy final step. For absorbing diffusion unmasked
        tokens are returned unchanged.

        Parameters
        ----------
        xt : (B, ...) long; x0_logits : (B, ..., num_classes) float
        t : (B,) in ``1..T``; s : (B,) with ``0 <= s < t``
        temperature : float > 0
        """
        xt = self._tokens("xt", xt, self.num_states)
        x0_logits = self._check_logits("x0_logits", x0_logits, xt)
        temperature = check_float("temperature", temperature, low=0.0, open_low=True)
        generator = check_generator(generator, xt.device)
        log_post = self._posterior_log(xt, t, s, torch.log_softmax(x0_logits / temperature, dim=-1))
        u = torch.rand(log_post.shape, generator=generator, dtype=log_post.dtype, device=xt.device)
        gumbel = -torch.log(-torch.log(u.clamp(min=torch.finfo(u.dtype).tiny)))
        return torch.argmax(log_post + gumbel, dim=-1)

    def loss(
        self,
        x0_logits: torch.Tensor,
        x0: torch.Tensor,
        xt: torch.Tensor,
        t: torch.Tensor | int,
        hybrid_weight: float = 0.01,
    ) -> torch.Tensor:
        """D3PM hybrid loss per row ``(B,)``: ``CE(x0_logits, x0) + hybrid_weight * L_vb``.

        ``L_vb = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t))`` summed over states; at ``t = 1`` this
        is the decoder term ``-log p(x_0 | x_1)``. Both are averaged over the non-leading dimensions of
        ``x0`` (nothing to average when ``x0`` is ``(B,)``, e.g. one row per atom).

        For absorbing diffusion only masked positions carry signal: an unmasked ``x_t`` equals ``x_0``,
        its KL is exactly 0, and its cross-entropy is set to 0 (the average still counts it, so callers
        that want a per-masked-token mean divide by the masked fraction themselves).

        Parameters
        ----------
        x0_logits : (B, ..., num_classes) float; x0 : (B, ...) long; xt : (B, ...) long (from :meth:`q_sample`)
        t : (B,) in ``1..T``; hybrid_weight : float >= 0 (D3PM's lambda)
        """
        x0 = self._tokens("x0", x0, self.num_classes)
        xt = self._tokens("xt", xt, self.num_states)
        check_same_shape("xt", xt, "x0", x0)
        x0_logits = self._check_logits("x0_logits", x0_logits, x0)
        hybrid_weight = check_float("hybrid_weight", hybrid_weight, low=0.0)
        steps = as_steps(t, x0.shape[0], x0.device, low=1, high=self.num_steps)
        log_p0 = torch.log_softmax(x0_logits, dim=-1)
        ce = -log_p0.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
        if self.absorbing:
            ce = torch.where(xt == self.num_classes, ce, torch.zeros_like(ce))
        total = ce
        if hybrid_weight > 0:
            onehot = torch.nn.functional.one_hot(x0, self.num_classes).to(log_p0.dtype)
            log_q = self._posterior_log(xt, steps, steps - 1, _safe_log(onehot))
            log_p = self._posterior_log(xt, steps, steps - 1, log_p0)
            support = torch.isfinite(log_q)
            log_p = torch.where(support, log_p, torch.zeros_like(log_p))
            log_q_safe = torch.where(support, log_q, torch.zeros_like(log_q))
            kl = torch.where(support, log_q_safe.exp() * (log_q_safe - log_p), torch.zeros_like(log_q)).sum(dim=-1)
            total = ce + hybrid_weight * kl
        return row_mean(total)

    def _draw_prior(self, shape, generator, dtype, device) -> torch.Tensor:
        """``x_T``: all mask (absorbing; no randomness used) or uniform classes (uniform); long, so no ``dtype``."""
        if dtype is not None:
            raise ConfigError(f"dtype must be None for a discrete prior (long class indices), got {dtype}")
        if self.absorbing:
            return torch.full(shape, self.num_classes, dtype=torch.long, device=device)
        return torch.randint(0, self.num_classes, shape, generator=generator, device=device)

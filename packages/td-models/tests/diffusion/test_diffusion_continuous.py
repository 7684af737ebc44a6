"""VPProcess (DDPM / DDIM): forward marginals, exact posteriors, full reverse chains on Gaussian data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from td_models.diffusion import VPProcess, sampling_schedule
from td_models.exceptions import ConfigError


@pytest.fixture(scope="module")
def proc():
    return VPProcess(num_steps=1000, schedule="cosine")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_q_sample_marginal_mean_and_variance(proc):
    n = 50_000
    steps = torch.tensor([1, 50, 400, 800, 1000])
    x0 = torch.full((steps.numel(), n), 1.5, dtype=torch.float64)
    xt, noise = proc.q_sample(x0, steps, generator=_gen(0))
    assert xt.shape == x0.shape and xt.dtype == torch.float64 and noise.shape == x0.shape
    ab = proc.alpha_bar(steps).numpy()
    mean, var = xt.mean(dim=1).numpy(), xt.var(dim=1).numpy()
    expect_mean, expect_var = np.sqrt(ab) * 1.5, 1.0 - ab
    assert np.all(np.abs(mean - expect_mean) < 5.0 * np.sqrt(expect_var / n))
    assert np.all(np.abs(var - expect_var) < 5.0 * expect_var * math.sqrt(2.0 / (n - 1)))
    # the returned noise is the eps of the closed form, and predict_x0 inverts it
    ab_col = torch.from_numpy(ab)[:, None]
    torch.testing.assert_close(xt, ab_col.sqrt() * 1.5 + (1.0 - ab_col).sqrt() * noise)
    torch.testing.assert_close(proc.predict_x0(xt, steps, noise), x0)


def _posterior_closed_form(ab_t, ab_s, x0, xt):
    """q(x_s | x_t, x_0) by Gaussian conditioning of the joint (x_s, x_t) given x_0 (float64 numpy)."""
    cov = np.sqrt(ab_t / ab_s) * (1.0 - ab_s)  # Cov(x_s, x_t | x_0)
    mean = np.sqrt(ab_s) * x0 + cov / (1.0 - ab_t) * (xt - np.sqrt(ab_t) * x0)
    var = (1.0 - ab_s) - cov**2 / (1.0 - ab_t)
    return mean, var


def _ddpm_closed_form(ab_t, ab_prev, x0, xt):
    """Ho et al. (2020) eq. 7: the one-step posterior mean and beta-tilde."""
    beta = 1.0 - ab_t / ab_prev
    mean = np.sqrt(ab_prev) * beta / (1.0 - ab_t) * x0 + np.sqrt(1.0 - beta) * (1.0 - ab_prev) / (1.0 - ab_t) * xt
    return mean, beta * (1.0 - ab_prev) / (1.0 - ab_t)


@pytest.mark.parametrize("jump", ["ddpm", "strided"])
def test_step_with_true_noise_is_the_exact_posterior(proc, jump):
    t = torch.tensor([2, 10, 300, 999, 1000, 1000])
    s = t - 1 if jump == "ddpm" else torch.tensor([0, 3, 150, 500, 1, 999])
    x0 = torch.randn(6, 3, generator=_gen(1), dtype=torch.float64)
    xt, eps = proc.q_sample(x0, t, generator=_gen(2))
    out = proc.step(xt, t, s, eps, generator=_gen(3), eta=1.0)
    ab_t, ab_s = (proc.alpha_bar(v).numpy()[:, None] for v in (t, s))
    if jump == "ddpm":
        mean, var = _ddpm_closed_form(ab_t, ab_s, x0.numpy(), xt.numpy())
    else:
        mean, var = _posterior_closed_form(ab_t, ab_s, x0.numpy(), xt.numpy())
    z = torch.randn(xt.shape, generator=_gen(3), dtype=torch.float64).numpy()  # the documented single draw
    np.testing.assert_allclose(out.numpy(), mean + np.sqrt(var) * z, rtol=1e-9, atol=1e-9)


def test_step_posterior_statistics(proc):
    """The same, statistically (no reliance on how the noise is drawn)."""
    n = 40_000
    t, s = torch.tensor([5, 200, 700]), torch.tensor([4, 120, 10])
    x0 = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)[:, None].expand(3, n)
    xt = torch.tensor([0.5, 0.1, -0.7], dtype=torch.float64)[:, None].expand(3, n)
    ab_t, ab_s = (proc.alpha_bar(v).numpy()[:, None] for v in (t, s))
    eps = (xt - torch.from_numpy(np.sqrt(ab_t)) * x0) / torch.from_numpy(np.sqrt(1.0 - ab_t))
    out = proc.step(xt, t, s, eps, generator=_gen(4)).numpy()
    mean, var = _posterior_closed_form(ab_t, ab_s, x0[:, :1].numpy(), xt[:, :1].numpy())
    assert np.all(np.abs(out.mean(axis=1) - mean[:, 0]) < 5.0 * np.sqrt(var[:, 0] / n))
    assert np.all(np.abs(out.var(axis=1) / var[:, 0] - 1.0) < 5.0 * math.sqrt(2.0 / n))


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_step_with_true_noise_keeps_the_forward_marginal(proc, eta):
    """x_t ~ q(x_t | x_0) and the true eps: x_s ~ q(x_s | x_0) = N(sqrt(ab_s) x_0, 1 - ab_s) for every eta (DDIM)."""
    n = 40_000
    t, s = torch.tensor([700, 300, 999]), torch.tensor([300, 100, 600])
    x0 = torch.tensor([0.8, -0.4, 1.1], dtype=torch.float64)[:, None].expand(3, n)
    xt, eps = proc.q_sample(x0, t, generator=_gen(30))
    out = proc.step(xt, t, s, eps, generator=_gen(31), eta=eta)
    ab_s = proc.alpha_bar(s)
    assert bool(((out.mean(dim=1) - ab_s.sqrt() * x0[:, 0]).abs() < 5 * ((1 - ab_s) / n).sqrt()).all())
    assert bool(((out.var(dim=1) / (1 - ab_s) - 1).abs() < 5 * math.sqrt(2 / n)).all())


def test_ddim_eta0_is_deterministic_and_exact_for_true_noise(proc):
    t, s = torch.tensor([900, 400, 17]), torch.tensor([100, 399, 0])
    x0 = torch.randn(3, 4, generator=_gen(5), dtype=torch.float64)
    xt, eps = proc.q_sample(x0, t, generator=_gen(6))
    a = proc.step(xt, t, s, eps, generator=_gen(7), eta=0.0)
    b = proc.step(xt, t, s, eps, generator=_gen(8), eta=0.0)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    ab_s = proc.alpha_bar(s)[:, None]
    torch.testing.assert_close(a, ab_s.sqrt() * x0 + (1.0 - ab_s).sqrt() * eps)
    # s = 0 returns the clean estimate, whatever eta
    for eta in (0.0, 0.5, 1.0):
        out = proc.step(xt, t, torch.zeros(3, dtype=torch.long), eps, generator=_gen(9), eta=eta)
        torch.testing.assert_close(out, proc.predict_x0(xt, t, eps), rtol=0, atol=0)


def _gaussian_oracle_eps(proc, m: float, v: float):
    """E[eps | x_t] for data N(m, v): x_t ~ N(sqrt(ab) m, ab v + 1 - ab), Cov(eps, x_t) = sqrt(1 - ab)."""

    def eps(xt, t):
        ab = proc.alpha_bar(t).to(xt.dtype)
        return (1.0 - ab).sqrt() * (xt - ab.sqrt() * m) / (ab * v + 1.0 - ab)

    return eps


def _chain_moments(ab, pairs, m, v, eta):
    """Exact mean and variance after the discretised chain (each step is affine-Gaussian for Gaussian data).

    eta = 1: x_s = c0 x0_hat + ct x_t + sqrt(beta~) z with the posterior coefficients of Ho et al. (2020)
    generalised to jumps; eta = 0: DDIM, x_s = sqrt(ab_s) x0_hat + sqrt(1 - ab_s) eps_hat.
    """
    mean, var = 0.0, 1.0
    for t, s in pairs:
        at, as_ = ab[t], ab[s]
        k = math.sqrt(1.0 - at) / (at * v + 1.0 - at)  # eps_hat = k (x - sqrt(at) m)
        x0_a, x0_b = (1.0 - math.sqrt(1.0 - at) * k) / math.sqrt(at), math.sqrt(1.0 - at) * k * m  # x0_hat = a x + b
        if eta == 1.0:
            c0 = math.sqrt(as_) * (1.0 - at / as_) / (1.0 - at)
            ct = math.sqrt(at / as_) * (1.0 - as_) / (1.0 - at)
            a, b, noise_var = c0 * x0_a + ct, c0 * x0_b, (1.0 - as_) / (1.0 - at) * (1.0 - at / as_)
        else:
            a = math.sqrt(as_) * x0_a + math.sqrt(1.0 - as_) * k
            b = math.sqrt(as_) * x0_b - math.sqrt(1.0 - as_) * k * math.sqrt(at) * m
            noise_var = 0.0
        mean, var = a * mean + b, a * a * var + noise_var
    return mean, var


@pytest.mark.parametrize(
    ("schedule", "num_sampling_steps", "eta", "var_tol"),
    [
        ("cosine", 1000, 1.0, 0.015),
        ("cosine", 1000, 0.0, 0.015),
        ("linear", 1000, 1.0, 0.025),
        ("cosine", 50, 0.0, 0.08),
        ("cosine", 50, 1.0, 0.15),
    ],
)
def test_reverse_chain_recovers_gaussian_data(schedule, num_sampling_steps, eta, var_tol):
    """Oracle eps for data N(m, v); the samples match the chain's exact moments, which are close to (m, v).

    Plugging the posterior mean E[x0 | x_t] into q(x_s | x_t, x0) ignores Var[x0 | x_t], so the chain's
    variance falls short of v: by ~1% with every step, by ~12% with 50 strided ancestral steps.
    """
    m, v, n = 0.7, 0.25, 10_000
    proc = VPProcess(1000, schedule)
    oracle = _gaussian_oracle_eps(proc, m, v)
    pairs = sampling_schedule(1000, num_sampling_steps)
    gen = _gen(10)
    x = proc.prior_sample((n,), generator=gen, dtype=torch.float64)
    for t, s in pairs:
        steps = torch.full((n,), t)
        x = proc.step(x, steps, torch.full((n,), s), oracle(x, steps), generator=gen, eta=eta)
    mean, var = _chain_moments(proc.alpha_bars.numpy(), pairs, m, v, eta)
    assert abs(float(x.mean()) - mean) < 5.0 * math.sqrt(var / n)
    assert abs(float(x.var()) - var) < 5.0 * var * math.sqrt(2.0 / n)
    assert abs(mean - m) < 5e-3 and abs(var - v) < var_tol * v


def test_generator_determinism_and_global_rng_untouched(proc):
    x0 = torch.randn(5, 2, generator=_gen(11))
    t = torch.tensor([1, 10, 100, 500, 1000])
    state = torch.get_rng_state()
    a, _ = proc.q_sample(x0, t, generator=_gen(12))
    b, _ = proc.q_sample(x0, t, generator=_gen(12))
    c, _ = proc.q_sample(x0, t, generator=_gen(13))
    sa = proc.step(a, t, t - 1, torch.zeros_like(a), generator=_gen(14))
    sb = proc.step(a, t, t - 1, torch.zeros_like(a), generator=_gen(14))
    pa = proc.prior_sample((3, 2), generator=_gen(15))
    pb = proc.prior_sample((3, 2), generator=_gen(15))
    assert torch.equal(state, torch.get_rng_state())
    assert torch.equal(a, b) and not torch.equal(a, c) and torch.equal(sa, sb) and torch.equal(pa, pb)


def test_float32_matches_float64_and_tables_stay_float64():
    proc = VPProcess(200).to(torch.float32)  # would round the tables if they were ordinary buffers
    assert proc.alpha_bars.dtype == torch.float64 and proc.state_dict() == {}
    torch.testing.assert_close(proc.alpha_bars, VPProcess(200).alpha_bars, rtol=0, atol=0)
    x0 = torch.randn(4, 3, generator=_gen(16), dtype=torch.float64)
    t, s = torch.tensor([3, 50, 150, 200]), torch.tensor([0, 49, 20, 100])
    out = {}
    for dtype in (torch.float32, torch.float64):
        xt, eps = proc.q_sample(x0.to(dtype), t, generator=_gen(17))
        xs = proc.step(xt, t, s, eps * 0.9, generator=_gen(18))
        assert xt.dtype == xs.dtype == dtype
        out[dtype] = xs
    torch.testing.assert_close(out[torch.float32].double(), out[torch.float64], rtol=1e-4, atol=1e-4)


def test_int_steps_broadcast_and_loss(proc):
    x0 = torch.randn(3, 2, 2, generator=_gen(19), dtype=torch.float64)
    a, _ = proc.q_sample(x0, 100, generator=_gen(20))
    b, _ = proc.q_sample(x0, torch.full((3,), 100), generator=_gen(20))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    pred, noise = torch.randn(3, 2, 2, generator=_gen(21)), torch.randn(3, 2, 2, generator=_gen(22))
    loss = proc.loss(pred, noise)
    assert loss.shape == (3,)
    torch.testing.assert_close(loss, ((pred - noise) ** 2).reshape(3, -1).mean(dim=1))
    assert proc.loss(pred, noise, reduce_dims=(2,)).shape == (3, 2)
    assert proc.alpha_bar(0).item() == 1.0 and proc.alpha_bar(torch.tensor([[0, 1000]])).shape == (1, 2)


def test_clip_x0_bounds_the_clean_estimate(proc):
    xt = torch.tensor([[3.0, -3.0]], dtype=torch.float64)
    out = proc.step(xt, torch.tensor([1000]), torch.tensor([0]), torch.zeros_like(xt), clip_x0=1.0)
    torch.testing.assert_close(out, torch.tensor([[1.0, -1.0]], dtype=torch.float64))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p, x: p.q_sample(x, torch.tensor([0, 1001])), "t must lie in [0, 1000], got 1001"),
        (lambda p, x: p.q_sample(x, torch.tensor([0.5, 1.0])), "t must be an integer tensor"),
        (lambda p, x: p.q_sample(x, torch.tensor([1, 2, 3])), "t must have shape (2,)"),
        (lambda p, x: p.q_sample(x, 1, noise=torch.zeros(3)), "noise must have the shape of x0"),
        (lambda p, x: p.q_sample(x.long(), 1), "x0 must be a floating-point tensor"),
        (lambda p, x: p.step(x, torch.tensor([5, 5]), torch.tensor([4, 5]), x), "s must be < t in every row"),
        (lambda p, x: p.step(x, 0, 0, x), "t must lie in [1, 1000], got 0"),
        (lambda p, x: p.step(x, 5, -1, x), "s must lie in [0, 1000], got -1"),
        (lambda p, x: p.step(x, 5, 4, x, eta=1.5), "eta must be <= 1.0, got 1.5"),
        (lambda p, x: p.step(x, 5, 4, x, generator=3), "generator must be a torch.Generator"),
    ],
)
def test_bad_inputs_raise_config_error(proc, call, message):
    with pytest.raises(ConfigError, match=None) as info:
        call(proc, torch.zeros(2, 3))
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"num_steps": 0}, "num_steps must be >= 1, got 0"), ({"schedule": "sqrt"}, "kind must be one of")],
)
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ConfigError) as info:
        VPProcess(**kwargs)
    assert message in str(info.value)

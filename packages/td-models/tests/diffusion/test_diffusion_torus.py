"""WrappedNormalProcess (DiffCSP): wrapped-normal score, its normaliser, and predictor-corrector chains."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from td_models.diffusion import WrappedNormalProcess, sampling_schedule, wrap01, wrapped_normal_score
from td_models.exceptions import ConfigError


@pytest.fixture(scope="module")
def proc():
    return WrappedNormalProcess(num_steps=1000)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _circ(a, b):
    """Circular distance on the unit circle, elementwise."""
    d = (a - b) % 1.0
    return np.minimum(d, 1.0 - d) if isinstance(d, np.ndarray) else torch.minimum(d, 1.0 - d)


# ---------------------------------------------------------------------------- the score itself
def _fd_score(x: float, sigma: float, images: int = 25) -> float:
    """Five-point finite difference of log sum_k exp(-(x + k)^2 / (2 sigma^2)), numpy float64.

    The log-density differences are formed as logsumexp(a_k + b_k(u)) - logsumexp(a_k) with the
    per-image offsets b_k(u) = -(2 (x + k) u + u^2) / (2 sigma^2), so nothing of size 1/sigma^2 cancels.
    """
    y = x + np.arange(-images, images + 1, dtype=np.float64)
    a = -(y**2) / (2 * sigma**2)
    a -= a.max()

    def log_ratio(u):
        b = -(2 * y * u + u * u) / (2 * sigma**2)
        return np.logaddexp.reduce(a + b) - np.logaddexp.reduce(a)

    h = 1e-2 * min(sigma, sigma * sigma)
    return (-log_ratio(2 * h) + 8 * log_ratio(h) - 8 * log_ratio(-h) + log_ratio(-2 * h)) / (12 * h)


@settings(max_examples=300, deadline=None)
@given(delta=st.floats(-3.0, 3.0), log_sigma=st.floats(math.log(1e-3), 0.0))
def test_score_matches_finite_difference_of_the_log_density(delta, log_sigma):
    sigma = math.exp(log_sigma)
    got = float(wrapped_normal_score(torch.tensor(delta, dtype=torch.float64), sigma))
    want = _fd_score(delta, sigma)
    assert abs(got - want) <= 1e-6 * abs(want) + 1e-7 / sigma


def test_score_limits_and_batch_against_finite_difference():
    sigmas = np.array([1e-3, 5e-3, 0.05, 0.2, 0.5, 1.0])
    deltas = np.linspace(-1.7, 1.7, 61)
    got = wrapped_normal_score(torch.from_numpy(deltas)[:, None], torch.from_numpy(sigmas)[None, :]).numpy()
    want = np.array([[_fd_score(d, s) for s in sigmas] for d in deltas])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7 / sigmas.min())
    # small sigma: -d / sigma^2 on the wrapped displacement
    d = torch.tensor([-0.3, -0.01, 0.0, 0.02, 0.4], dtype=torch.float64)
    torch.testing.assert_close(wrapped_normal_score(d + 3.0, 1e-2), -d / 1e-4)
    # large sigma: tends to the derivative of the first Fourier mode, -4 pi q sin(2 pi d) / (1 + 2 q cos(2 pi d))
    q = math.exp(-2 * math.pi**2 * 1.0**2)
    fourier = -4 * math.pi * q * torch.sin(2 * math.pi * d) / (1 + 2 * q * torch.cos(2 * math.pi * d))
    torch.testing.assert_close(wrapped_normal_score(d, 1.0), fourier, rtol=1e-6, atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(delta=st.floats(-2.0, 2.0), log_sigma=st.floats(math.log(1e-3), 0.0), shift=st.integers(-3, 3))
def test_score_is_periodic_and_odd(delta, log_sigma, shift):
    sigma = math.exp(log_sigma)
    if abs(abs(delta % 1.0 - 0.5) - 0.0) < 1e-6 * sigma:  # the antipode: the score jumps through 0 there
        return
    x = torch.tensor(delta, dtype=torch.float64)
    base = float(wrapped_normal_score(x, sigma))
    tol = 1e-9 / sigma**2
    # delta + shift is rounded: compare with the score's slope times that rounding error in mind
    slope = 1.0 / sigma**2 * (1 + abs(delta) + abs(shift)) * 1e-15 / sigma**2
    assert abs(float(wrapped_normal_score(x + shift, sigma)) - base) <= tol + slope
    assert abs(float(wrapped_normal_score(-x, sigma)) + base) <= tol


def test_score_float32_close_to_float64():
    d = torch.linspace(-0.3, 0.3, 101, dtype=torch.float64)
    for sigma in (0.005, 0.05, 0.5):
        a = wrapped_normal_score(d.float(), sigma)
        assert a.dtype == torch.float32
        torch.testing.assert_close(a.double(), wrapped_normal_score(d, sigma), rtol=1e-4, atol=1e-4 / sigma)


# ---------------------------------------------------------------------------- schedule tables
def test_tables(proc):
    sig = proc.sigma(torch.arange(1001))
    assert sig[0] == 0 and math.isclose(sig[1], 0.005) and math.isclose(sig[-1], 0.5)
    ratios = sig[2:] / sig[1:-1]
    torch.testing.assert_close(ratios, torch.full_like(ratios, 100 ** (1 / 999)))
    assert proc.sigma_norm(0) == 1.0
    moved = WrappedNormalProcess(num_steps=1000).to(torch.float32)
    assert moved.sigmas.dtype == moved.sigmas_norm.dtype == torch.float64 and moved.state_dict() == {}
    torch.testing.assert_close(moved.sigmas_norm, proc.sigmas_norm, rtol=0, atol=0)


def _numpy_sigma_norm(sigma: float, nodes: int = 20_000, images: int = 12) -> float:
    """E[score^2] by brute force: plain (unshifted) image sums on a fine grid, DiffCSP's formula for the score."""
    x = (np.arange(nodes) + 0.5) / nodes - 0.5
    y = x[:, None] + np.arange(-images, images + 1)
    e = np.exp(-(y**2) / (2 * sigma**2))
    p = e.sum(axis=1)
    score = -(y * e).sum(axis=1) / sigma**2 / p
    return float((p * score**2).sum() / p.sum())


@pytest.mark.parametrize("t", [1, 120, 400, 600, 648, 700, 800, 1000])
def test_sigma_norm_against_quadrature_and_monte_carlo(proc, t):
    sigma, norm = float(proc.sigma(t)), float(proc.sigma_norm(t))
    if sigma >= 0.02:  # the plain sums underflow for smaller sigma; there the small-sigma limit applies
        assert math.isclose(norm, _numpy_sigma_norm(sigma), rel_tol=1e-12)
    else:
        assert math.isclose(norm, 1.0 / sigma**2, rel_tol=1e-9)
    n = 100_000
    delta = sigma * torch.randn(n, generator=_gen(t), dtype=torch.float64)
    sq = wrapped_normal_score(delta, sigma).square()
    assert abs(float(sq.mean()) - norm) < 5.0 * float(sq.std()) / math.sqrt(n)


# ---------------------------------------------------------------------------- forward process
def test_q_sample_range_target_and_normalisation(proc):
    n = 20_000
    steps = torch.tensor([1, 200, 600, 1000])
    f0 = torch.rand(4, n, generator=_gen(1), dtype=torch.float64) * 10 - 5
    noise = torch.randn(4, n, generator=_gen(2), dtype=torch.float64)
    ft, target = proc.q_sample(f0, steps, noise=noise)
    assert bool(((ft >= 0) & (ft < 1)).all())
    sig = proc.sigma(steps)[:, None]
    torch.testing.assert_close(ft, (f0 + sig * noise) % 1.0)
    torch.testing.assert_close(target, wrapped_normal_score(sig * noise, sig) / proc.sigma_norm(steps)[:, None].sqrt())
    mean_sq = target.square().mean(dim=1)  # normalised: unit mean square per dimension
    se = target.square().std(dim=1) / math.sqrt(n)
    assert bool(((mean_sq - 1.0).abs() < 5 * se).all())
    # drawn noise, float32, points just below 0
    ft32, t32 = proc.q_sample(torch.full((3, 2), -1e-9), torch.tensor([1, 1, 1]), generator=_gen(3))
    assert ft32.dtype == t32.dtype == torch.float32 and bool(((ft32 >= 0) & (ft32 < 1)).all())
    assert float(wrap01(torch.tensor([-1e-9]))) == 0.0  # -1e-9 mod 1 rounds to 1.0 in float32


def test_loss(proc):
    a, b = torch.randn(5, 3, generator=_gen(4)), torch.randn(5, 3, generator=_gen(5))
    torch.testing.assert_close(proc.loss(a, b), ((a - b) ** 2).mean(dim=1))


# ---------------------------------------------------------------------------- reverse process
def test_predictor_and_corrector_formulas(proc):
    ft = torch.rand(4, 3, generator=_gen(6), dtype=torch.float64)
    pred = torch.randn(4, 3, generator=_gen(7), dtype=torch.float64)
    t, s = torch.tensor([1000, 500, 20, 2]), torch.tensor([999, 100, 0, 1])
    sig_t, sig_s, norm = proc.sigma(t)[:, None], proc.sigma(s)[:, None], proc.sigma_norm(t)[:, None]
    score = pred * norm.sqrt()
    z = torch.randn(4, 3, generator=_gen(8), dtype=torch.float64)
    gap = sig_t**2 - sig_s**2
    want = (ft + gap * score + (sig_s**2 * gap / sig_t**2).sqrt() * z) % 1.0
    torch.testing.assert_close(proc.predictor_step(ft, t, s, pred, generator=_gen(8)), want)
    # s = 0: Tweedie's mean, no noise
    zero = torch.zeros(4, dtype=torch.long)
    torch.testing.assert_close(proc.predictor_step(ft, t, zero, pred, generator=_gen(9)), (ft + sig_t**2 * score) % 1)
    eps = 1e-5 * (sig_t / 0.005) ** 2
    want = (ft + eps * score + (2 * eps).sqrt() * z) % 1.0
    torch.testing.assert_close(proc.corrector_step(ft, t, pred, step_lr=1e-5, generator=_gen(8)), want)


def _mixture_score(proc, atoms, weights):
    """Exact normalised score of a mixture of point masses noised to level t: sum_j r_j score(x - f_j)."""
    atoms = torch.tensor(atoms, dtype=torch.float64)
    log_w = torch.log(torch.tensor(weights, dtype=torch.float64))
    k = torch.arange(-10, 11, dtype=torch.float64)

    def fn(x, t):
        sig = proc.sigma(t)[:, None]
        delta = x[:, None] - atoms  # (n, J)
        log_dens = torch.logsumexp(-((delta[..., None] + k) ** 2) / (2 * sig[..., None] ** 2), dim=-1)
        resp = torch.softmax(log_w + log_dens, dim=-1)
        score = (resp * wrapped_normal_score(delta, sig)).sum(dim=-1)
        return score / proc.sigma_norm(t).sqrt()

    return fn


def _point_score(proc, f_star):
    """Exact normalised score of a point mass at f_star noised to level t: WN(f_star, sigma_t)."""

    def fn(x, t):
        return wrapped_normal_score(x - f_star, proc.sigma(t)) / proc.sigma_norm(t).sqrt()

    return fn


def _run(proc, x, pairs, score_fn, gen, corrector=False, stop_at=None):
    n = x.shape[0]
    for t, s in pairs:
        steps = torch.full((n,), t)
        if corrector:
            x = proc.corrector_step(x, steps, score_fn(x, steps), step_lr=1e-5, generator=gen)
        x = proc.predictor_step(x, steps, torch.full((n,), s), score_fn(x, steps), generator=gen)
        if s == stop_at:
            break
    return x


@pytest.mark.parametrize(("num_sampling_steps", "corrector"), [(1000, False), (100, False), (100, True), (1000, True)])
def test_chain_concentrates_on_a_point_mass(proc, num_sampling_steps, corrector):
    n, f_star = 500, 0.3
    score_fn = _point_score(proc, f_star)
    x = _run(
        proc,
        proc.prior_sample((n,), _gen(10), torch.float64),
        sampling_schedule(1000, num_sampling_steps),
        score_fn,
        _gen(11),
        corrector,
    )
    assert float((_circ(x, f_star) < 0.01).double().mean()) >= 0.99


def test_chain_intermediate_noise_level_is_right(proc):
    """Without corrector the predictor samples the exact Gaussian posterior: at level s the spread is sigma_s."""
    n, f_star = 4000, 0.8
    pairs = sampling_schedule(1000, 100)
    stop = pairs[40][1]
    x = _run(
        proc,
        proc.prior_sample((n,), _gen(12), torch.float64),
        pairs,
        _point_score(proc, f_star),
        _gen(13),
        stop_at=stop,
    )
    dev = (x - f_star + 0.5) % 1.0 - 0.5
    sigma = float(proc.sigma(stop))
    assert abs(float(dev.std()) / sigma - 1.0) < 5.0 / math.sqrt(2 * n)
    assert abs(float(dev.mean())) < 5.0 * sigma / math.sqrt(n)


@pytest.mark.parametrize("corrector", [False, True])
def test_chain_recovers_mixture_weights(proc, corrector):
    n, atoms, weights = 2000, [0.15, 0.6], [0.3, 0.7]
    x = _run(
        proc,
        proc.prior_sample((n,), _gen(14), torch.float64),
        sampling_schedule(1000, 100),
        _mixture_score(proc, atoms, weights),
        _gen(15),
        corrector,
    )
    near = torch.stack([_circ(x, a) < 0.01 for a in atoms])
    assert float(near.any(dim=0).double().mean()) >= 0.99
    frac = float(near[0].double().mean())
    assert abs(frac - 0.3) < 5.0 * math.sqrt(0.21 / n) + 0.01


def test_translation_equivariance(proc):
    n, f_star, c = 500, 0.3, 0.4137
    pairs = sampling_schedule(1000, 100)
    prior = proc.prior_sample((n,), _gen(16), torch.float64)
    a = _run(proc, prior, pairs, _point_score(proc, f_star), _gen(17), corrector=True)
    b = _run(proc, wrap01(prior + c), pairs, _point_score(proc, f_star + c), _gen(17), corrector=True)
    assert float(_circ(b, a + c).max()) < 1e-9


def test_generator_determinism_and_global_rng_untouched(proc):
    f0 = torch.rand(6, 3, generator=_gen(18))
    t = torch.tensor([1, 2, 10, 100, 999, 1000])
    state = torch.get_rng_state()
    a = proc.q_sample(f0, t, generator=_gen(19))
    b = proc.q_sample(f0, t, generator=_gen(19))
    pa = proc.predictor_step(a[0], t, t - 1, a[1], generator=_gen(20))
    pb = proc.predictor_step(a[0], t, t - 1, a[1], generator=_gen(20))
    ca = proc.corrector_step(a[0], t, a[1], generator=_gen(21))
    cb = proc.corrector_step(a[0], t, a[1], generator=_gen(21))
    ua, ub = proc.prior_sample((4,), _gen(22)), proc.prior_sample((4,), _gen(22))
    assert torch.equal(state, torch.get_rng_state())
    assert all(torch.equal(x, y) for x, y in [(a[0], b[0]), (a[1], b[1]), (pa, pb), (ca, cb), (ua, ub)])
    assert not torch.equal(a[0], proc.q_sample(f0, t, generator=_gen(23))[0])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p, x: p.q_sample(x, 0), "t must lie in [1, 1000], got 0"),
        (lambda p, x: p.predictor_step(x, 5, 5, x), "s must be < t in every row"),
        (lambda p, x: p.corrector_step(x, 5, x, step_lr=0.0), "step_lr must be > 0.0, got 0.0"),
        (lambda p, x: p.loss(x, x[:1]), "target must have the shape of score_pred"),
        (lambda p, x: wrapped_normal_score([0.1], 0.1), "delta must be a torch.Tensor"),
    ],
)
def test_bad_inputs_raise_config_error(proc, call, message):
    with pytest.raises(ConfigError) as info:
        call(proc, torch.zeros(2, 3))
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sigma_min": 0.5, "sigma_max": 0.1}, "sigma_max must be >= sigma_min (0.5), got 0.1"),
        ({"sigma_min": 0.0}, "sigma_min must be > 0.0, got 0.0"),
        ({"num_norm_samples": 4}, "num_norm_samples must be >= 16, got 4"),
        ({"n_images": -1}, "n_images must be >= 0, got -1"),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ConfigError) as info:
        WrappedNormalProcess(num_steps=10, **kwargs)
    assert message in str(info.value)

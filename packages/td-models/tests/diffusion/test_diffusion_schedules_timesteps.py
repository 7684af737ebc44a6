"""Noise schedules, step helpers, training-step sampling and sampler step grids."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from td_models.diffusion import (
    as_steps,
    beta_schedule,
    expand_like,
    sample_timesteps,
    sampling_schedule,
    sigma_schedule,
)
from td_models.exceptions import ConfigError


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------- schedules
@pytest.mark.parametrize("num_steps", [1, 2, 10, 1000])
def test_linear_schedule(num_steps):
    ab = beta_schedule("linear", num_steps, beta_start=1e-4, beta_end=2e-2)
    betas = np.linspace(1e-4, 2e-2, num_steps)
    want = np.concatenate([[1.0], np.cumprod(1.0 - betas)])
    assert ab.shape == (num_steps + 1,) and ab.dtype == torch.float64
    np.testing.assert_allclose(ab.numpy(), want, rtol=1e-12)


@pytest.mark.parametrize("num_steps", [1, 5, 1000])
def test_cosine_schedule(num_steps):
    ab = beta_schedule("cosine", num_steps)
    s = 0.008
    f = [math.cos((t / num_steps + s) / (1 + s) * math.pi / 2) ** 2 for t in range(num_steps + 1)]
    betas = [min(1.0 - f[t] / f[t - 1], 0.999) for t in range(1, num_steps + 1)]
    want = np.concatenate([[1.0], np.cumprod(1.0 - np.array(betas))])
    np.testing.assert_allclose(ab.numpy(), want, rtol=1e-10)
    assert ab[0] == 1.0 and bool((ab[1:] < ab[:-1]).all()) and bool((ab > 0).all())
    # unclipped steps follow the cosine curve itself
    if num_steps == 1000:
        np.testing.assert_allclose(ab[:900].numpy(), np.array(f[:900]) / f[0], rtol=1e-10)
        assert 1e-10 < float(ab[-1]) < 1e-8  # last beta clipped at 0.999


def test_sigma_schedule():
    sig = sigma_schedule(1000, 0.005, 0.5)
    assert sig.shape == (1001,) and sig.dtype == torch.float64 and sig[0] == 0
    np.testing.assert_allclose(sig[1:].numpy(), np.geomspace(0.005, 0.5, 1000), rtol=1e-12)
    assert float(sig[1]) == 0.005 and float(sig[-1]) == 0.5
    assert sigma_schedule(1, 0.01, 0.2).tolist() == [0.0, 0.2]
    np.testing.assert_allclose(sigma_schedule(3, 0.1, 0.1).numpy(), [0.0, 0.1, 0.1, 0.1], rtol=1e-15)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: beta_schedule("quadratic", 10), "kind must be one of ('linear', 'cosine'), got 'quadratic'"),
        (lambda: beta_schedule("linear", 0), "num_steps must be >= 1, got 0"),
        (lambda: beta_schedule("linear", 10.0), "num_steps must be an integer, got 10.0"),
        (lambda: beta_schedule("linear", True), "num_steps must be an integer, got True"),
        (lambda: beta_schedule("linear", 10, beta_start=0.1, beta_end=0.01), "beta_end must be >= beta_start"),
        (lambda: beta_schedule("linear", 10, beta_end=1.0), "beta_end must be <= 0.999, got 1.0"),
        (lambda: beta_schedule("cosine", 10, cosine_s=-1.0), "cosine_s must be > 0.0, got -1.0"),
        (lambda: sigma_schedule(10, 0.0, 0.5), "sigma_min must be > 0.0, got 0.0"),
        (lambda: sigma_schedule(10, 0.5, 0.1), "sigma_max must be >= sigma_min (0.5), got 0.1"),
        (lambda: sigma_schedule(10, float("nan"), 0.1), "sigma_min must be a finite number, got nan"),
    ],
)
def test_schedule_errors(call, message):
    with pytest.raises(ConfigError) as info:
        call()
    assert message in str(info.value)


def test_as_steps_and_expand_like():
    assert as_steps(3, 4, "cpu", low=0, high=5).tolist() == [3, 3, 3, 3]
    assert as_steps(torch.tensor(2), 3, "cpu", low=0, high=5).tolist() == [2, 2, 2]
    steps = as_steps(torch.tensor([1, 2], dtype=torch.int32), 2, "cpu", low=0, high=5)
    assert steps.dtype == torch.long and steps.tolist() == [1, 2]
    for bad, message in [
        (True, "t must be an integer or an integer tensor, got True"),
        (1.0, "t must be an integer or an integer tensor, got float"),
        (torch.tensor([True, False]), "t must be an integer tensor (torch.long), got dtype torch.bool"),
        (torch.tensor([[1, 2]]), "t must have shape (2,)"),
        (torch.tensor([1, 6]), "t must lie in [0, 5], got 6"),
    ]:
        with pytest.raises(ConfigError) as info:
            as_steps(bad, 2, "cpu", low=0, high=5)
        assert message in str(info.value)
    x = torch.zeros(3, 4, 5, dtype=torch.float32)
    v = expand_like(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), x)
    assert v.shape == (3, 1, 1) and v.dtype == torch.float32 and (v * x).shape == x.shape


# ---------------------------------------------------------------------------- training steps
def test_sample_timesteps_uniform_range_and_determinism():
    n, num_steps = 100_000, 10
    t = sample_timesteps(n, num_steps, generator=_gen(0))
    assert t.dtype == torch.long and t.shape == (n,) and int(t.min()) == 1 and int(t.max()) == num_steps
    counts = torch.bincount(t, minlength=num_steps + 1)[1:].numpy()
    p = 1.0 / num_steps
    assert np.all(np.abs(counts / n - p) < 5 * math.sqrt(p * (1 - p) / n))
    state = torch.get_rng_state()
    a = sample_timesteps(64, 1000, generator=_gen(1))
    b = sample_timesteps(64, 1000, generator=_gen(1))
    c = sample_timesteps(64, 1000, generator=_gen(1), antithetic=True)
    d = sample_timesteps(64, 1000, generator=_gen(1), antithetic=True)
    assert torch.get_rng_state().equal(state) and torch.equal(a, b) and torch.equal(c, d)
    assert sample_timesteps(0, 5).shape == (0,) and sample_timesteps(0, 5, antithetic=True).shape == (0,)


@pytest.mark.parametrize(("batch_size", "num_steps"), [(1000, 1000), (300, 100), (37, 10), (5, 1000), (8, 1)])
def test_antithetic_timesteps_cover_the_range_evenly(batch_size, num_steps):
    for seed in range(5):
        t = sample_timesteps(batch_size, num_steps, generator=_gen(seed), antithetic=True)
        assert t.dtype == torch.long and int(t.min()) >= 1 and int(t.max()) <= num_steps
        counts = torch.bincount(t, minlength=num_steps + 1)[1:]
        lo, hi = batch_size // num_steps, -(-batch_size // num_steps)
        assert int(counts.min()) >= lo and int(counts.max()) <= hi
        if batch_size < num_steps:  # spacing of the sorted steps is T / B up to rounding
            gaps = torch.diff(torch.sort(t).values).double()
            assert float(gaps.min()) >= math.floor(num_steps / batch_size) - 1
    # the sweep is shuffled: rows are not in step order
    t = sample_timesteps(1000, 1000, generator=_gen(9), antithetic=True)
    assert int((torch.diff(t) < 0).sum()) > 250
    # each entry is marginally uniform on 1..T: the mean over many draws of a fixed row
    firsts = torch.stack([sample_timesteps(7, 20, generator=_gen(s), antithetic=True)[0] for s in range(4000)])
    assert abs(float(firsts.double().mean()) - 10.5) < 5 * math.sqrt((20**2 - 1) / 12 / 4000)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: sample_timesteps(-1, 10), "batch_size must be >= 0, got -1"),
        (lambda: sample_timesteps(4, 0), "num_steps must be >= 1, got 0"),
        (lambda: sample_timesteps(4, 10, antithetic=1), "antithetic must be a bool, got 1"),
        (lambda: sample_timesteps(4, 10, generator=np.random.default_rng(0)), "generator must be a torch.Generator"),
    ],
)
def test_sample_timesteps_errors(call, message):
    with pytest.raises(ConfigError) as info:
        call()
    assert message in str(info.value)


# ---------------------------------------------------------------------------- sampler grids
@pytest.mark.parametrize("spacing", ["linear", "quadratic"])
def test_sampling_schedule_exhaustive_small(spacing):
    for num_steps in range(1, 41):
        for n in range(1, num_steps + 1):
            pairs = sampling_schedule(num_steps, n, spacing=spacing)
            assert len(pairs) == n and pairs[0][0] == num_steps and pairs[-1][1] == 0
            assert all(type(t) is int and type(s) is int and 0 <= s < t for t, s in pairs)
            assert all(a[1] == b[0] for a, b in zip(pairs, pairs[1:]))
            if n == num_steps:
                assert pairs == [(t, t - 1) for t in range(num_steps, 0, -1)]
            gaps = [t - s for t, s in pairs]
            if spacing == "linear":
                assert max(gaps) - min(gaps) <= 1
            else:
                assert gaps[-1] <= gaps[0]


def test_sampling_schedule_values():
    assert sampling_schedule(1000, 4) == [(1000, 750), (750, 500), (500, 250), (250, 0)]
    assert sampling_schedule(10, 3) == [(10, 7), (7, 3), (3, 0)]
    quad = sampling_schedule(1000, 10, spacing="quadratic")
    assert [t for t, _ in quad] == [1000, 810, 640, 490, 360, 250, 160, 90, 40, 10]
    assert len(sampling_schedule(1000, 1000, "quadratic")) == 1000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((10, 11), "num_sampling_steps must be <= num_steps (10), got 11"),
        ((10, 0), "num_sampling_steps must be >= 1, got 0"),
        ((10, -3), "num_sampling_steps must be >= 1, got -3"),
        ((0, 1), "num_steps must be >= 1, got 0"),
        ((10, 2.0), "num_sampling_steps must be an integer, got 2.0"),
        ((10, 5, "cubic"), "spacing must be one of ('linear', 'quadratic'), got 'cubic'"),
    ],
)
def test_sampling_schedule_errors(args, message):
    with pytest.raises(ConfigError) as info:
        sampling_schedule(*args)
    assert message in str(info.value)

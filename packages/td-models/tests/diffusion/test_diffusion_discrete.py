"""DiscreteProcess (D3PM): closed forms against dense transition matrices, sampling, reverse chains, loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from td_models.diffusion import DiscreteProcess, sampling_schedule
from td_models.exceptions import ConfigError


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------- dense reference (numpy, float64)
def _betas(kind: str, num_steps: int) -> np.ndarray:
    """D3PM's schedules, written out: 'jsd' 1/(T - t + 1) for absorbing, Hoogeboom's cosine for uniform."""
    t = np.arange(1, num_steps + 1)
    if kind == "absorbing":
        return 1.0 / (num_steps - t + 1)
    f = np.cos((np.arange(num_steps + 1) / num_steps + 0.008) / 1.008 * np.pi / 2)
    return np.minimum(1.0 - f[1:] / f[:-1], 0.999)


def _one_step(kind: str, k: int, beta: float) -> np.ndarray:
    """Q_t[i, j] = q(x_t = j | x_{t-1} = i)."""
    if kind == "absorbing":
        q = (1.0 - beta) * np.eye(k + 1)
        q[:, k] += beta
        q[k] = 0.0
        q[k, k] = 1.0
        return q
    return (1.0 - beta) * np.eye(k) + beta / k


class Dense:
    """Cumulative products Q_1 ... Q_t of the one-step matrices, and brute-force Bayes posteriors."""

    def __init__(self, kind: str, k: int, num_steps: int):
        self.kind, self.k, self.T = kind, k, num_steps
        self.steps = [np.eye(k + 1 if kind == "absorbing" else k)]
        self.steps += [_one_step(kind, k, b) for b in _betas(kind, num_steps)]
        self.bar = [self.steps[0]]
        for q in self.steps[1:]:
            self.bar.append(self.bar[-1] @ q)

    def jump(self, s: int, t: int) -> np.ndarray:
        out = np.eye(self.steps[0].shape[0])
        for q in self.steps[s + 1 : t + 1]:
            out = out @ q
        return out

    def posterior(self, xt: int, t: int, s: int, p0: np.ndarray) -> np.ndarray:
        """sum_x0 p'(x0) q(x_s | x_t, x0) with q(x_s | x_t, x0) = q(x_t | x_s) q(x_s | x0) / q(x_t | x0).

        p' is p restricted to the x0 consistent with x_t (q(x_t | x0) > 0), renormalised.
        """
        lik = self.bar[t][: self.k, xt]
        if not np.any(lik > 0):  # x_t impossible at step t (an unmasked token at T, absorbing)
            return np.full(self.steps[0].shape[0], np.nan)
        p = np.where(lik > 0, p0, 0.0)
        if p.sum() == 0:  # the prediction rules out every x0 consistent with x_t: all of those equally
            p = (lik > 0).astype(np.float64)
        p = p / p.sum()
        jump = self.jump(s, t)[:, xt]
        out = np.zeros(self.steps[0].shape[0])
        for x0 in range(self.k):
            if lik[x0] > 0:
                out += p[x0] * jump * self.bar[s][x0] / lik[x0]
        return out


KINDS = [("absorbing", 3), ("uniform", 4)]


@pytest.mark.parametrize(("kind", "k"), KINDS)
def test_q_probs_match_products_of_one_step_matrices(kind, k):
    num_steps = 7
    proc, dense = DiscreteProcess(k, num_steps, kind), Dense(kind, k, num_steps)
    t = torch.arange(num_steps + 1).repeat_interleave(k)
    x0 = torch.arange(k).repeat(num_steps + 1)
    probs = proc.q_probs(x0, t, dtype=torch.float64)
    want = np.stack([dense.bar[ti][xi] for ti, xi in zip(t.tolist(), x0.tolist())])
    np.testing.assert_allclose(probs.numpy(), want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(probs.sum(-1).numpy(), 1.0, rtol=1e-14)
    # every token masked at T (absorbing); uniform mixes to ~uniform
    if kind == "absorbing":
        assert proc.num_states == k + 1 and proc.mask_index == k
        assert bool((probs[t == num_steps][:, k] == 1).all())
    else:
        assert proc.num_states == k and proc.mask_index is None
    # the same at T = 1000 (float64 products of 1000 matrices)
    big, dense_big = DiscreteProcess(k, 1000, kind), Dense(kind, k, 1000)
    ts = torch.tensor([1, 10, 500, 999, 1000])
    got = big.q_probs(torch.zeros(5, dtype=torch.long), ts, dtype=torch.float64).numpy()
    np.testing.assert_allclose(got, np.stack([dense_big.bar[i][0] for i in ts.tolist()]), rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize(("kind", "k"), KINDS)
def test_posterior_matches_brute_force_bayes(kind, k):
    num_steps = 6
    proc, dense = DiscreteProcess(k, num_steps, kind), Dense(kind, k, num_steps)
    rows = [(xt, t, s) for t in range(1, num_steps + 1) for s in range(t) for xt in range(proc.num_states)]
    xt, t, s = (torch.tensor(c) for c in zip(*rows))
    rng = np.random.default_rng(0)
    p0 = rng.dirichlet(np.ones(k), size=len(rows))
    p0[::5] = np.eye(k)[rng.integers(0, k, size=p0[::5].shape[0])]  # one-hot predictions too
    got = proc.posterior_logits(xt, t, s, torch.from_numpy(p0)).exp().numpy()
    want = np.stack([dense.posterior(*row, p0[i]) for i, row in enumerate(rows)])
    possible = ~np.isnan(want[:, 0])
    impossible = ((t == num_steps) & (xt < k)).numpy() if kind == "absorbing" else np.zeros(len(rows), dtype=bool)
    np.testing.assert_array_equal(possible, ~impossible)
    np.testing.assert_allclose(got[possible], want[possible], rtol=1e-10, atol=1e-12)
    # s = 0: the x0 distribution itself (never the mask); absorbing, unmasked x_t: a one-hot at x_t
    at0 = (s == 0) & ((xt == k) if kind == "absorbing" else torch.ones_like(s, dtype=torch.bool))
    np.testing.assert_allclose(got[at0.numpy(), :k], p0[at0.numpy()], rtol=1e-10, atol=1e-12)
    if kind == "absorbing":
        assert np.all(got[(s == 0).numpy(), k] == 0)
        unmasked = (xt < k).numpy()
        np.testing.assert_array_equal(got[unmasked], np.eye(k + 1)[xt.numpy()[unmasked]])


@pytest.mark.parametrize(("kind", "k"), KINDS)
def test_q_sample_frequencies_match_q_probs(kind, k):
    n, num_steps = 20_000, 100
    proc = DiscreteProcess(k, num_steps, kind)
    t = torch.tensor([1, 30, 70, 100])
    x0 = torch.tensor([0, 1, 2, 1])
    xt = proc.q_sample(x0[:, None].expand(4, n), t, generator=_gen(0))
    assert xt.dtype == torch.long and xt.shape == (4, n)
    freq = torch.nn.functional.one_hot(xt, proc.num_states).double().mean(dim=1).numpy()
    probs = proc.q_probs(x0, t, dtype=torch.float64).numpy()
    assert np.all(freq[probs == 0] == 0)
    assert np.all(np.abs(freq - probs) <= 5 * np.sqrt(probs * (1 - probs) / n) + 1e-12)


def _run_chain(proc, x, pairs, logits_fn, gen):
    n = x.shape[0]
    for t, s in pairs:
        steps = torch.full((n,), t)
        x = proc.step(x, steps, torch.full((n,), s), logits_fn(x, t), generator=gen)
    return x


@pytest.mark.parametrize(("kind", "k"), KINDS)
@pytest.mark.parametrize(("num_steps", "num_sampling_steps"), [(50, 50), (1000, 25)])
def test_chain_with_oracle_x0_recovers_the_data(kind, k, num_steps, num_sampling_steps):
    n = 2000
    proc = DiscreteProcess(k, num_steps, kind)
    x0 = torch.randint(0, k, (n,), generator=_gen(1))
    oracle = torch.nn.functional.one_hot(x0, k).double() * 50.0
    gen = _gen(2)
    x = proc.prior_sample((n,), generator=gen)
    seen_unmasked = torch.zeros(n, dtype=torch.bool)
    for t, s in sampling_schedule(num_steps, num_sampling_steps):
        x = proc.step(x, torch.full((n,), t), torch.full((n,), s), oracle, generator=gen)
        if kind == "absorbing":  # once unmasked a token is final
            unmasked = x != proc.mask_index
            assert bool((x[unmasked] == x0[unmasked]).all()) and bool(unmasked[seen_unmasked].all())
            seen_unmasked = unmasked
    assert torch.equal(x, x0)


@pytest.mark.parametrize(("kind", "k"), KINDS)
@pytest.mark.parametrize("num_sampling_steps", [50, 10])
def test_chain_with_ideal_denoiser_samples_the_data_distribution(kind, k, num_sampling_steps):
    """With p(x0 | x_t) = q(x0 | x_t) ∝ pi(x0) q(x_t | x0) the reverse chain is exact for any stride."""
    n, num_steps = 20_000, 50
    pi = np.array([0.5, 0.3, 0.15, 0.05][:k])
    pi /= pi.sum()
    proc, dense = DiscreteProcess(k, num_steps, kind), Dense(kind, k, num_steps)
    log_pi = torch.from_numpy(np.log(pi))

    def ideal(x, t):
        lik = torch.from_numpy(dense.bar[t][:k].T.copy())[x]  # (n, k): q(x_t = x | x0)
        return log_pi + torch.log(lik.clamp(min=1e-300))

    x = _run_chain(
        proc,
        proc.prior_sample((n,), generator=_gen(3)),
        sampling_schedule(num_steps, num_sampling_steps),
        ideal,
        _gen(4),
    )
    freq = np.bincount(x.numpy(), minlength=proc.num_states) / n
    assert freq.shape[0] == proc.num_states and (kind == "uniform" or freq[k] == 0)
    assert np.all(np.abs(freq[:k] - pi) <= 5 * np.sqrt(pi * (1 - pi) / n))


@pytest.mark.parametrize(("kind", "k"), KINDS)
def test_loss_terms(kind, k):
    num_steps, n, length = 20, 64, 5
    proc, dense = DiscreteProcess(k, num_steps, kind), Dense(kind, k, num_steps)
    gen = _gen(5)
    x0 = torch.randint(0, k, (n, length), generator=gen)
    t = torch.randint(1, num_steps + 1, (n,), generator=gen)
    t[:8] = 1
    xt = proc.q_sample(x0, t, generator=gen)
    logits = torch.randn(n, length, k, generator=gen, dtype=torch.float64)
    ce_only = proc.loss(logits, x0, xt, t, hybrid_weight=0.0)
    hybrid = proc.loss(logits, x0, xt, t, hybrid_weight=1.0)
    assert ce_only.shape == hybrid.shape == (n,)
    # cross-entropy (masked positions only for absorbing)
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, k), x0.reshape(-1), reduction="none").reshape(n, length)
    if kind == "absorbing":
        ce = ce * (xt == k)
    torch.testing.assert_close(ce_only, ce.mean(dim=1))
    # the KL term against the dense posteriors: KL(q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t))
    p0 = torch.softmax(logits, dim=-1).numpy()
    kl = np.zeros((n, length))
    for i in range(n):
        ti = int(t[i])
        for j in range(length):
            q = dense.posterior(int(xt[i, j]), ti, ti - 1, np.eye(k)[int(x0[i, j])])
            p = dense.posterior(int(xt[i, j]), ti, ti - 1, p0[i, j])
            kl[i, j] = np.sum(np.where(q > 0, q * (np.log(np.where(q > 0, q, 1)) - np.log(np.where(q > 0, p, 1))), 0))
    np.testing.assert_allclose((hybrid - ce_only).numpy(), kl.mean(axis=1), rtol=1e-9, atol=1e-12)
    # at t = 1 the KL term is the decoder NLL, i.e. the cross-entropy again
    torch.testing.assert_close(hybrid[:8], 2 * ce_only[:8])
    # the correct prediction scores lower than a wrong one, and a confident correct one ~0
    right = torch.nn.functional.one_hot(x0, k).double() * 6.0
    wrong = torch.nn.functional.one_hot((x0 + 1) % k, k).double() * 6.0
    signal = (xt == k).any(dim=1) if kind == "absorbing" else torch.ones(n, dtype=torch.bool)
    assert bool((proc.loss(right, x0, xt, t)[signal] < proc.loss(wrong, x0, xt, t)[signal]).all())
    assert float(proc.loss(right * 10, x0, xt, t).max()) < 1e-20
    # gradients are finite everywhere (no NaN from the impossible states)
    logits.requires_grad_(True)
    proc.loss(logits, x0, xt, t).sum().backward()
    assert bool(torch.isfinite(logits.grad).all())


def test_step_at_s0_never_emits_the_mask_and_keeps_unmasked_tokens():
    proc = DiscreteProcess(3, 10, "absorbing")
    xt = torch.tensor([3, 3, 3, 0, 2] * 200)
    logits = torch.randn(1000, 3, generator=_gen(6))
    out = proc.step(xt, torch.full((1000,), 4), torch.zeros(1000, dtype=torch.long), logits, generator=_gen(7))
    assert bool((out < 3).all()) and torch.equal(out[xt < 3], xt[xt < 3])
    # a low temperature concentrates the s = 0 sample on the argmax
    cold = proc.step(xt, 4, 0, logits, generator=_gen(8), temperature=1e-4)
    torch.testing.assert_close(cold[xt == 3], logits.argmax(-1)[xt == 3])


@pytest.mark.parametrize(("kind", "k"), KINDS)
def test_generator_determinism_and_global_rng_untouched(kind, k):
    proc = DiscreteProcess(k, 30, kind)
    x0 = torch.randint(0, k, (6, 4), generator=_gen(9))
    t = torch.tensor([1, 5, 10, 20, 29, 30])
    logits = torch.randn(6, 4, k, generator=_gen(10))
    state = torch.get_rng_state()
    a, b = proc.q_sample(x0, t, generator=_gen(11)), proc.q_sample(x0, t, generator=_gen(11))
    sa = proc.step(a, t, t - 1, logits, generator=_gen(12))
    sb = proc.step(a, t, t - 1, logits, generator=_gen(12))
    pa, pb = proc.prior_sample((5,), generator=_gen(13)), proc.prior_sample((5,), generator=_gen(13))
    assert torch.equal(state, torch.get_rng_state())
    assert torch.equal(a, b) and torch.equal(sa, sb) and torch.equal(pa, pb)
    assert proc.state_dict() == {} and proc.to(torch.float32).alpha_bars.dtype == torch.float64


def test_schedules():
    absorbing = DiscreteProcess(3, 10, "absorbing")
    torch.testing.assert_close(absorbing.alpha_bar(torch.arange(11)), 1 - torch.arange(11, dtype=torch.float64) / 10)
    uniform = DiscreteProcess(3, 1000, "uniform")
    ab = uniform.alpha_bar(torch.arange(1001))
    assert ab[0] == 1 and bool((ab[1:] < ab[:-1]).all()) and float(ab[-1]) < 1e-5
    assert math.isclose(
        float(ab[500]), math.cos((0.5 + 0.008) / 1.008 * math.pi / 2) / math.cos(0.008 / 1.008 * math.pi / 2)
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: p.q_probs(torch.tensor([0, 3]), 1), "x0 must hold states in [0, 2], got 3"),
        (lambda p: p.q_sample(torch.tensor([0.0, 1.0]), 1), "x0 must be an integer tensor"),
        (lambda p: p.q_sample(torch.tensor([0, 1]), torch.tensor([1, 11])), "t must lie in [0, 10], got 11"),
        (lambda p: p.step(torch.tensor([4, 0]), 2, 1, torch.zeros(2, 3)), "xt must hold states in [0, 3], got 4"),
        (lambda p: p.step(torch.tensor([3, 0]), 2, 1, torch.zeros(2, 4)), "x0_logits must have shape (2, 3)"),
        (lambda p: p.step(torch.tensor([3, 0]), 2, 2, torch.zeros(2, 3)), "s must be < t in every row"),
        (lambda p: p.step(torch.tensor([3, 0]), 2, 1, torch.zeros(2, 3), temperature=0), "temperature must be > 0.0"),
        (lambda p: p.loss(torch.zeros(2, 3), torch.tensor([0, 1]), torch.tensor([3, 3]), 0), "t must lie in [1, 10]"),
    ],
)
def test_bad_inputs_raise_config_error(call, message):
    with pytest.raises(ConfigError) as info:
        call(DiscreteProcess(3, 10, "absorbing"))
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 3, "kind": "gaussian"}, "kind must be one of ('absorbing', 'uniform'), got 'gaussian'"),
        ({"num_classes": 1, "kind": "uniform"}, "num_classes must be >= 2, got 1"),
        ({"num_classes": 3, "schedule": "linear"}, "schedule must be one of ('jsd', 'cosine') or None, got 'linear'"),
        ({"num_classes": 3, "num_steps": 0}, "num_steps must be >= 1, got 0"),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ConfigError) as info:
        DiscreteProcess(**kwargs)
    assert message in str(info.value)

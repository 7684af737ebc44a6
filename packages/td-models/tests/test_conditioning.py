"""Tests of ConditionEmbedding: null handling, independent dropping, errors."""

from __future__ import annotations

import math

import pytest
import torch

from td_models.conditioning import ConditionEmbedding
from td_models.exceptions import BatchError, ConfigError

NAN = float("nan")
NULL = ConditionEmbedding.NULL_CHERN


@pytest.fixture
def emb():
    torch.manual_seed(0)
    return ConditionEmbedding(cond_dim=16, num_topo_classes=4, max_abs_chern=2).double()


def _conds():
    topo = torch.tensor([0, 3, -1, 1])
    gap = torch.tensor([0.0, 1.5, NAN, 20.0], dtype=torch.float64)
    chern = torch.tensor([2, NULL, -2, 0])
    fe = torch.tensor([NAN, -0.3, 1.0, -9.0], dtype=torch.float64)
    return topo, gap, chern, fe


def test_shape_and_rows_independent(emb):
    topo, gap, chern, fe = _conds()
    out = emb(topo, gap, chern, fe)
    assert out.shape == (4, 16) and torch.isfinite(out).all()
    topo2 = topo.clone()
    topo2[0] = 2
    out2 = emb(topo2, gap, chern, fe)
    assert not torch.allclose(out2[0], out[0])
    torch.testing.assert_close(out2[1:], out[1:])


def test_each_condition_has_its_own_null(emb):
    topo, gap, chern, fe = emb.null_like(3, device="cpu")
    assert topo.tolist() == [-1] * 3 and chern.tolist() == [NULL] * 3
    assert gap.isnan().all() and fe.isnan().all() and gap.dtype == torch.float32
    out = emb(topo, gap.double(), chern, fe.double())
    torch.testing.assert_close(out, out[:1].expand(3, -1))  # all-null rows identical
    # Null scalars map to their learned vectors, whatever else is in the batch.
    torch.testing.assert_close(emb.band_gap(torch.tensor([NAN, 1.0], dtype=torch.float64))[0], emb.band_gap.null)
    torch.testing.assert_close(
        emb.formation_energy(torch.tensor([NAN], dtype=torch.float64))[0], emb.formation_energy.null
    )
    assert not torch.allclose(emb.band_gap.null, emb.formation_energy.null)
    # A null differs from every real value of the same condition.
    real = emb(
        torch.tensor([0, 1, 2, 3]),
        gap.new_full((4,), NAN).double(),
        torch.full((4,), NULL),
        fe.new_full((4,), NAN).double(),
    )
    null = emb(*(x[:1].double() if x.is_floating_point() else x[:1] for x in emb.null_like(1, device="cpu")))
    assert ((real - null).abs().amax(dim=1) > 1e-6).all()


def test_clamping_and_finite_gradients(emb):
    topo, gap, chern, fe = _conds()
    out = emb(topo, gap, chern, fe)
    clamped = emb(topo, torch.tensor([0.0, 1.5, NAN, 10.0], dtype=torch.float64), chern, fe.clamp(-5, 5))
    torch.testing.assert_close(out, clamped)  # gap 20 eV -> 10 eV, fe -9 -> -5
    out.square().sum().backward()
    grads = [p.grad for p in emb.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert emb.band_gap.null.grad.abs().sum() > 0 and emb.formation_energy.null.grad.abs().sum() > 0
    assert emb.topo.weight.grad[4].abs().sum() > 0  # the topo null row was used by crystal 2


def test_drop_statistics():
    emb = ConditionEmbedding(cond_dim=4)
    n, p = 20000, 0.3
    topo = torch.zeros(n, dtype=torch.long)
    gap = torch.ones(n)
    chern = torch.ones(n, dtype=torch.long)
    fe = torch.zeros(n)
    gen = torch.Generator().manual_seed(1)
    t2, g2, c2, f2 = emb.drop(topo, gap, chern, fe, p, generator=gen)
    nulls = torch.stack([t2 == -1, g2.isnan(), c2 == NULL, f2.isnan()])  # (4, n)
    sigma = math.sqrt(p * (1 - p) / n)
    for row in nulls:
        assert abs(float(row.float().mean()) - p) < 5 * sigma
    both = float((nulls[0] & nulls[2]).float().mean())  # independent conditions
    assert abs(both - p * p) < 5 * math.sqrt(p * p * (1 - p * p) / n)
    # Untouched entries keep their values; inputs unchanged; dtypes kept.
    assert bool((t2[~nulls[0]] == 0).all()) and bool((g2[~nulls[1]] == 1).all())
    assert topo.eq(0).all() and not gap.isnan().any() and t2.dtype == torch.long and g2.dtype == torch.float32
    # Reproducible with the same seed; p = 0 and p = 1 are exact.
    again = emb.drop(topo, gap, chern, fe, p, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(a.nan_to_num(-7.0), b.nan_to_num(-7.0)) for a, b in zip(again, (t2, g2, c2, f2)))
    kept = emb.drop(topo, gap, chern, fe, 0.0)
    assert torch.equal(kept[0], topo) and torch.equal(kept[1], gap)
    gone = emb.drop(topo, gap, chern, fe, 1.0)
    assert (gone[0] == -1).all() and gone[1].isnan().all() and (gone[2] == NULL).all() and gone[3].isnan().all()


def test_errors(emb):
    topo, gap, chern, fe = _conds()
    with pytest.raises(BatchError, match=r"topo_class must be in 0\.\.3 or -1 \(no condition\), got 4"):
        emb(torch.tensor([0, 4, 1, 1]), gap, chern, fe)
    with pytest.raises(BatchError, match=r"topo_class must be in 0\.\.3 or -1 \(no condition\), got -2"):
        emb(torch.tensor([0, -2, 1, 1]), gap, chern, fe)
    with pytest.raises(BatchError, match=r"chern must be in \[-2, 2\] or NULL_CHERN=-1000, got -3"):
        emb(topo, gap, torch.tensor([0, -3, 0, 0]), fe)
    with pytest.raises(BatchError, match="band_gap must be finite and >= 0 eV or NaN .*got -0.5"):
        emb(topo, gap.clone().fill_(-0.5), chern, fe)
    with pytest.raises(BatchError, match="formation_energy must be finite or NaN .*got inf"):
        emb(topo, gap, chern, fe.clone().fill_(math.inf))
    with pytest.raises(BatchError, match="topo_class must be an integer tensor"):
        emb(topo.double(), gap, chern, fe)
    with pytest.raises(BatchError, match="band_gap must be a float tensor"):
        emb(topo, topo, chern, fe)
    with pytest.raises(BatchError, match="share the batch size"):
        emb(topo[:2], gap, chern, fe)
    with pytest.raises(BatchError, match=r"shape \(B,\), got \(4, 1\)"):
        emb(topo, gap[:, None], chern, fe)
    with pytest.raises(ConfigError, match=r"drop probability p must be in \[0, 1\], got 1.5"):
        emb.drop(topo, gap, chern, fe, 1.5)
    with pytest.raises(ConfigError, match="cond_dim must be an integer >= 1, got 0"):
        ConditionEmbedding(cond_dim=0)
    with pytest.raises(ConfigError, match="gap_max_ev must be a finite number > 0, got -1"):
        ConditionEmbedding(cond_dim=4, gap_max_ev=-1)

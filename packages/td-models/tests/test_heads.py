"""Tests of the property heads: outputs, loss with missing targets, gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from td_models.exceptions import BatchError, ConfigError
from td_models.heads import PropertyHeads

NAN = float("nan")


@pytest.fixture
def heads():
    torch.manual_seed(0)
    return PropertyHeads(hidden_dim=8, num_topo_classes=3).double()


def test_outputs(heads):
    pred = heads(torch.randn(5, 8, dtype=torch.float64) * 10)
    assert pred.band_gap.shape == (5,) and pred.formation_energy.shape == (5,) and pred.topo_logits.shape == (5, 3)
    assert (pred.band_gap >= 0).all()
    with pytest.raises(BatchError, match=r"graph_features must have shape \(B, 8\), got \(5, 7\)"):
        heads(torch.randn(5, 7, dtype=torch.float64))
    with pytest.raises(ConfigError, match="dropout must be in"):
        PropertyHeads(8, dropout=1.0)


def test_loss_ignores_missing_targets(heads):
    x = torch.randn(4, 8, dtype=torch.float64, requires_grad=True)
    pred = heads(x)
    gap = torch.tensor([0.5, NAN, 3.0, NAN], dtype=torch.float64)
    fe = torch.tensor([NAN, -1.0, 0.2, NAN], dtype=torch.float64)
    topo = torch.tensor([2, -1, 0, -1])
    loss, parts = heads.loss(pred, gap, fe, topo, gap_weight=2.0)
    assert loss.shape == (4,) and torch.isfinite(loss).all()
    assert float(loss[3].detach()) == 0.0
    expected_gap = F.huber_loss(pred.band_gap[0], gap[0], delta=1.0)
    expected_topo = F.cross_entropy(pred.topo_logits[:1], topo[:1])
    torch.testing.assert_close(loss[0], 2.0 * expected_gap + expected_topo)
    torch.testing.assert_close(loss[1], F.huber_loss(pred.formation_energy[1], fe[1], delta=1.0))
    assert parts["band_gap_present"].tolist() == [True, False, True, False]
    assert parts["topo"][1] == 0 and parts["formation_energy"][0] == 0
    # Gradients are finite, flow to the parameters, and do not reach rows without targets.
    loss.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert float(x.grad[3].abs().sum()) == 0.0 and float(x.grad[0].abs().sum()) > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in heads.parameters())
    assert float(heads.out.weight.grad.abs().sum()) > 0
    # Missing targets: the prediction does not matter.
    shifted = pred._replace(band_gap=pred.band_gap.detach() + torch.tensor([0.0, 5.0, 0.0, 5.0], dtype=torch.float64))
    torch.testing.assert_close(heads.loss(shifted, gap, fe, topo, gap_weight=2.0)[0], loss.detach())


def test_loss_errors(heads):
    pred = heads(torch.randn(2, 8, dtype=torch.float64))
    gap = torch.zeros(2, dtype=torch.float64)
    with pytest.raises(BatchError, match=r"topo_class target must be in 0\.\.2 or -1 \(missing\), got 3"):
        heads.loss(pred, gap, gap, torch.tensor([0, 3]))
    with pytest.raises(BatchError, match=r"band_gap target must have shape \(2,\), got \(3,\)"):
        heads.loss(pred, torch.zeros(3), gap, torch.tensor([0, 1]))
    with pytest.raises(ConfigError, match="topo_weight must be a finite number >= 0, got -1"):
        heads.loss(pred, gap, gap, torch.tensor([0, 1]), topo_weight=-1)

"""Tests of the invariant crystal features (pair Fourier features, metric distance, lattice metric, embeddings)."""

from __future__ import annotations

import math

import pytest
import torch

from td_models.exceptions import BatchError, ConfigError
from td_models.features import (
    gaussian_rbf,
    lattice_metric_features,
    minimum_image_sq_distance,
    pair_feature_dim,
    periodic_pair_features,
    sinusoidal_embedding,
    wrapped_frac_difference,
)

DT = torch.float64


def _orthogonal(gen: torch.Generator, reflect: bool) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=DT))
    if (torch.det(q) < 0) != reflect:
        q[:, 0] = -q[:, 0]
    return q


@pytest.fixture
def crystal():
    gen = torch.Generator().manual_seed(0)
    frac = torch.rand(2, 5, 3, generator=gen, dtype=DT)
    lattice = 4.0 * torch.eye(3, dtype=DT) + torch.randn(2, 3, 3, generator=gen, dtype=DT)
    return gen, frac, lattice


def test_periodic_pair_features_values_and_shape():
    frac = torch.tensor([[[0.0, 0.0, 0.0], [0.25, 0.5, 0.0]]], dtype=DT)
    feats = periodic_pair_features(frac, 2)
    assert feats.shape == (1, 2, 2, 12) and pair_feature_dim(2, 5) == 12 + 5 + 6
    # entry [0, 1] is f_1 - f_0 = (0.25, 0.5, 0); layout: sin(axis, k) then cos(axis, k).
    sin, cos = feats[0, 0, 1, :6].view(3, 2), feats[0, 0, 1, 6:].view(3, 2)
    expected_sin = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]], dtype=DT)
    expected_cos = torch.tensor([[0.0, -1.0], [-1.0, 1.0], [1.0, 1.0]], dtype=DT)
    torch.testing.assert_close(sin, expected_sin, atol=1e-12, rtol=0)
    torch.testing.assert_close(cos, expected_cos, atol=1e-12, rtol=0)
    # Antisymmetric sines, symmetric cosines.
    torch.testing.assert_close(feats[0, 1, 0, :6], -feats[0, 0, 1, :6])
    torch.testing.assert_close(feats[0, 1, 0, 6:], feats[0, 0, 1, 6:])


def test_pair_features_invariant_to_origin_and_integer_shifts(crystal):
    gen, frac, lattice = crystal
    shifted = frac + torch.rand(1, 1, 3, generator=gen, dtype=DT) * 7 - 3
    shifted = shifted + torch.randint(-3, 4, frac.shape, generator=gen).to(DT)
    for fn in (lambda f: periodic_pair_features(f, 4), lambda f: minimum_image_sq_distance(f, lattice)):
        torch.testing.assert_close(fn(shifted), fn(frac), atol=1e-9, rtol=0)


def test_minimum_image_distance_known_value_and_rotation(crystal):
    gen, frac, lattice = crystal
    cubic = 4.0 * torch.eye(3, dtype=DT)[None]
    pair = torch.tensor([[[0.05, 0.5, 0.0], [0.95, 0.5, 0.0]]], dtype=DT)
    d2 = minimum_image_sq_distance(pair, cubic)
    assert math.isclose(float(d2[0, 0, 1]), 0.4**2, abs_tol=1e-12)
    assert float(d2[0, 0, 0]) == 0.0
    wrapped = wrapped_frac_difference(frac)
    assert float(wrapped.abs().max()) <= 0.5
    for reflect in (False, True):
        q = _orthogonal(gen, reflect)
        rotated = minimum_image_sq_distance(frac, lattice @ q.T)
        torch.testing.assert_close(rotated, minimum_image_sq_distance(frac, lattice), atol=1e-9, rtol=0)


def test_singular_lattice_is_fine(crystal):
    _, frac, _ = crystal
    singular = torch.zeros(2, 3, 3, dtype=DT)
    singular[:, 0, 0] = 1.0  # rank 1
    assert torch.isfinite(minimum_image_sq_distance(frac, singular)).all()
    assert torch.isfinite(lattice_metric_features(singular)).all()


def test_lattice_metric_features(crystal):
    gen, _, lattice = crystal
    cubic = 2.0 * torch.eye(3, dtype=DT)[None]
    torch.testing.assert_close(
        lattice_metric_features(cubic, log_scale=False), torch.tensor([[4.0, 0, 0, 4.0, 0, 4.0]], dtype=DT)
    )
    log4 = math.log(4.0)
    torch.testing.assert_close(lattice_metric_features(cubic), torch.tensor([[log4, 0, 0, log4, 0, log4]], dtype=DT))
    # Hexagonal: 120 degrees between a and b.
    hexagonal = torch.tensor([[[1.0, 0, 0], [-0.5, math.sqrt(3) / 2, 0], [0, 0, 2.0]]], dtype=DT)
    assert math.isclose(float(lattice_metric_features(hexagonal)[0, 1]), -0.5, abs_tol=1e-9)
    for reflect in (False, True):
        q = _orthogonal(gen, reflect)
        for log_scale in (True, False):
            torch.testing.assert_close(
                lattice_metric_features(lattice @ q.T, log_scale), lattice_metric_features(lattice, log_scale)
            )


def test_gaussian_rbf():
    r = torch.tensor([0.0, 2.0, 100.0], dtype=DT)
    rbf = gaussian_rbf(r, 5, 4.0)
    assert rbf.shape == (3, 5)
    assert float(rbf[0, 0]) == 1.0 and float(rbf[1, 2]) == 1.0  # centres 0, 1, 2, 3, 4
    assert float(rbf[2].max()) < 1e-100
    with pytest.raises(ConfigError, match="cutoff"):
        gaussian_rbf(r, 5, 0.0)


def test_sinusoidal_embedding():
    x = torch.tensor([0.0, 3.0, 500.0])
    emb = sinusoidal_embedding(x, 7)
    assert emb.shape == (3, 7)
    torch.testing.assert_close(emb[0, :3], torch.ones(3))
    torch.testing.assert_close(emb[0, 3:6], torch.zeros(3))
    assert bool((emb[:, 6] == 0).all())  # odd width: zero pad
    assert math.isclose(float(emb[1, 0]), math.cos(3.0), abs_tol=1e-6)  # first frequency is 1
    assert sinusoidal_embedding(torch.zeros(2, 4, dtype=torch.long), 8).shape == (2, 4, 8)
    with pytest.raises(ConfigError, match="dim must be an integer >= 1, got 0"):
        sinusoidal_embedding(x, 0)


def test_feature_errors(crystal):
    _, frac, lattice = crystal
    with pytest.raises(BatchError, match=r"frac_coords must have shape \(B, N, 3\), got \(2, 5\)"):
        periodic_pair_features(frac[..., 0], 2)
    with pytest.raises(ConfigError, match="num_frequencies must be an integer >= 1, got 0"):
        periodic_pair_features(frac, 0)
    with pytest.raises(BatchError, match="lattice must have shape"):
        minimum_image_sq_distance(frac, lattice[:, :2])
    with pytest.raises(BatchError, match="batch size"):
        minimum_image_sq_distance(frac, lattice[:1])

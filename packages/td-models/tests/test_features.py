"""Tests of the invariant crystal features (pair Fourier features, metric distance, lattice metric, embeddings)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from td_models.exceptions import BatchError, ConfigError
from td_models.features import (
    gaussian_rbf,
    lattice_metric_features,
    minimum_image_sq_distance,
    pair_feature_dim,
    periodic_image_features,
    periodic_pair_features,
    plane_spacings,
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


# ----------------------------------------------------------------------------------- periodic images
def _brute_images(frac, lattice, cutoff, num_rbf, num_vector_rbf, reach=4):
    """The image sums over every n in {-reach..reach}^3, each crystal with its own cutoff min(cutoff, 1.5 h)."""
    rng = torch.arange(-reach, reach + 1, dtype=DT)
    offsets = torch.cartesian_prod(rng, rng, rng)  # (M, 3)
    disp = (frac[:, None, :, :] - frac[:, :, None, :])[:, :, :, None, :] + offsets  # (B, N, N, M, 3), unwrapped
    dist = torch.einsum("bijmk,bkl->bijml", disp, lattice).norm(dim=-1)  # (B, N, N, M)
    limit = (1.5 * plane_spacings(lattice).amin(dim=1)).clamp(max=cutoff)[:, None, None, None]
    env = torch.where(dist < limit, 0.5 * (torch.cos(math.pi * dist / limit) + 1.0), torch.zeros_like(dist))
    rbf = (gaussian_rbf(dist, num_rbf, cutoff) * env[..., None]).sum(dim=3)
    radial = gaussian_rbf(dist, num_vector_rbf, cutoff) * env[..., None]  # (B, N, N, M, Rv)
    return rbf, torch.einsum("bijmr,bijmc->bijrc", radial, disp)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), skew=st.floats(0.0, 1.5), scale=st.floats(1.5, 5.0))
def test_periodic_image_sums_equal_a_brute_force_sum_over_many_images(seed, skew, scale):
    """The 27 images of the wrapped difference hold every image within each crystal's cutoff: the sums equal
    those over 729 images of the unwrapped difference, for skewed cells of 1.5-5 A whose planes may lie closer
    than the cutoff (where the cutoff shrinks to 1.5 plane spacings)."""
    gen = torch.Generator().manual_seed(seed)
    frac = torch.rand(3, 4, 3, generator=gen, dtype=DT) * 3 - 1  # coordinates outside [0, 1) too
    lattice = scale * torch.eye(3, dtype=DT) + skew * torch.randn(3, 3, 3, generator=gen, dtype=DT)
    rbf, vectors = periodic_image_features(frac, lattice, cutoff=3.0, num_rbf=12, num_vector_rbf=4)
    brute_rbf, brute_vectors = _brute_images(frac, lattice, 3.0, 12, 4)
    torch.testing.assert_close(rbf, brute_rbf, atol=1e-5, rtol=0)  # the r = 0 term's sqrt(eps) shifts it by 1e-6
    torch.testing.assert_close(vectors, brute_vectors, atol=1e-9, rtol=0)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), reflect=st.booleans())
def test_periodic_image_features_are_invariant_to_rotation_origin_integer_shifts_and_permutation(seed, reflect):
    gen = torch.Generator().manual_seed(seed)
    frac = torch.rand(2, 5, 3, generator=gen, dtype=DT)
    lattice = 2.5 * torch.eye(3, dtype=DT) + 0.6 * torch.randn(2, 3, 3, generator=gen, dtype=DT)
    rbf, vectors = periodic_image_features(frac, lattice, 3.0, 16, 8)
    q = _orthogonal(gen, reflect)
    moved = frac + torch.rand(1, 1, 3, generator=gen, dtype=DT) + torch.randint(-2, 3, frac.shape, generator=gen)
    rbf2, vectors2 = periodic_image_features(moved, lattice @ q.T, 3.0, 16, 8)
    torch.testing.assert_close(rbf2, rbf, atol=1e-9, rtol=0)
    torch.testing.assert_close(vectors2, vectors, atol=1e-9, rtol=0)
    perm = torch.randperm(5, generator=gen)
    rbf3, vectors3 = periodic_image_features(frac[:, perm], lattice, 3.0, 16, 8)
    torch.testing.assert_close(rbf3, rbf[:, perm][:, :, perm], atol=1e-12, rtol=0)
    torch.testing.assert_close(vectors3, vectors[:, perm][:, :, perm], atol=1e-12, rtol=0)
    torch.testing.assert_close(vectors.transpose(1, 2), -vectors, atol=1e-12, rtol=0)  # j seen from i: opposite


def test_periodic_images_see_the_neighbours_that_the_minimum_image_misses():
    """A chain of one atom in a 1.5 A cell: the minimum image sees only the atom itself (distance 0), the image
    sum its two neighbours at 1.5 A (and none at 3 A and beyond, past the 3 A cutoff: 1.5 plane spacings are 2.25 A
    along the chain). Two atoms half a cell apart along a 2.8 A axis have two images at 1.4 A, not one."""
    lattice = torch.diag(torch.tensor([1.5, 6.0, 6.0], dtype=DT))[None]
    frac = torch.zeros(1, 1, 3, dtype=DT)
    rbf, vectors = periodic_image_features(frac, lattice, cutoff=3.0, num_rbf=31, num_vector_rbf=2)
    limit = 2.25
    centres = torch.linspace(0.0, 3.0, 31, dtype=DT)
    expected = torch.exp(-0.5 * (centres / 0.1) ** 2) + 2 * 0.5 * (math.cos(math.pi * 1.5 / limit) + 1) * torch.exp(
        -0.5 * ((centres - 1.5) / 0.1) ** 2
    )
    torch.testing.assert_close(rbf[0, 0, 0], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(vectors[0, 0, 0], torch.zeros(2, 3, dtype=DT), atol=1e-12, rtol=0)  # +a and -a cancel
    assert float(minimum_image_sq_distance(frac, lattice)[0, 0, 0]) == 0.0
    pair = torch.tensor([[[0.0, 0.0, 0.0], [0.5, 0.0, 0.0]]], dtype=DT)
    lattice = torch.diag(torch.tensor([2.8, 6.0, 6.0], dtype=DT))[None]
    rbf, _ = periodic_image_features(pair, lattice, cutoff=3.0, num_rbf=31)
    one = 0.5 * (math.cos(math.pi * 1.4 / 3.0) + 1) * torch.exp(-0.5 * ((centres - 1.4) / 0.1) ** 2)
    torch.testing.assert_close(rbf[0, 0, 1], 2 * one, atol=1e-9, rtol=0)


def test_periodic_images_are_continuous_where_the_cutoff_shrinks_and_bounded_for_collapsed_cells():
    gen = torch.Generator().manual_seed(3)
    frac = torch.rand(1, 6, 3, generator=gen, dtype=DT)
    base = torch.diag(torch.tensor([2.0, 3.0, 3.0], dtype=DT))[None]  # 1.5 h = 3.0: the cutoff starts to shrink
    for delta in (1e-7, -1e-7):
        near = base.clone()
        near[0, 0, 0] += delta
        for a, b in zip(
            periodic_image_features(frac, base, 3.0, 16, 4), periodic_image_features(frac, near, 3.0, 16, 4)
        ):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    tiny = 1e-3 * torch.randn(4, 3, 3, generator=gen, dtype=DT)  # a late diffusion time's lattice
    rbf, vectors = periodic_image_features(torch.rand(4, 20, 3, generator=gen, dtype=DT), tiny, 3.0, 16, 4)
    assert bool(torch.isfinite(rbf).all() & torch.isfinite(vectors).all())
    assert float(rbf.sum(dim=-1).amax()) < 27 * 3.0  # at most 27 images, each basis sum below 3
    flat = torch.diag(torch.tensor([4.0, 4.0, 0.0], dtype=DT))[None]  # singular: every cutoff zero, nothing summed
    rbf, _ = periodic_image_features(frac, flat, 3.0, 16)
    assert float(rbf.abs().max()) == 0.0


def test_periodic_image_feature_errors(crystal):
    _, frac, lattice = crystal
    with pytest.raises(ConfigError, match="image cutoff must be a finite number > 0, got 0"):
        periodic_image_features(frac, lattice, 0, 8)
    with pytest.raises(ConfigError, match="num_vector_rbf must be an integer >= 0, got -1"):
        periodic_image_features(frac, lattice, 3.0, 8, -1)
    with pytest.raises(BatchError, match="share the batch size, got 1 and 2"):
        periodic_image_features(frac, lattice[:1], 3.0, 8)
    with pytest.raises(BatchError, match=r"atom_mask must be a bool tensor of shape \(2, 5\)"):
        periodic_image_features(frac, lattice, 3.0, 8, atom_mask=torch.ones(2, 5))
    assert torch.equal(plane_spacings(torch.diag(torch.tensor([2.0, 3.0, 4.0]))[None]), torch.tensor([[2.0, 3.0, 4.0]]))

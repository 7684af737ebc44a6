"""Tests of the denoiser: symmetries (float64), padding, batch independence, checkpointing, meta device, overfit."""

from __future__ import annotations

import copy
import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from td_models.denoiser import DenoiserOutput, TopologicalTransformer, count_parameters
from td_models.exceptions import BatchError, ConfigError

DT = torch.float64
TOL = {"atol": 1e-9, "rtol": 1e-9}
S = 10  # num_species in the small models
HYPO = settings(max_examples=8, deadline=None)


def _small(**kwargs) -> TopologicalTransformer:
    torch.manual_seed(0)
    model = TopologicalTransformer(num_species=S, hidden_dim=32, num_layers=2, num_heads=4, **kwargs).to(DT)
    # The output layers and adaLN modulations start at zero; perturb every parameter so the tests see the whole net.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


MODEL = _small().requires_grad_(False)  # shared by the symmetry tests


def _batch(seed: int, counts=(4, 6)):
    gen = torch.Generator().manual_seed(seed)
    b, n = len(counts), max(counts)
    lattice = torch.eye(3, dtype=DT) + 0.3 * torch.randn(b, 3, 3, generator=gen, dtype=DT)  # normalised scale
    frac = torch.rand(b, n, 3, generator=gen, dtype=DT)
    species = torch.randint(0, S + 1, (b, n), generator=gen)  # includes the mask token S
    mask = torch.arange(n)[None, :] < torch.tensor(counts)[:, None]
    t = torch.rand(b, generator=gen, dtype=DT)
    cond = torch.randn(b, 32, generator=gen, dtype=DT)
    return lattice, frac, species, mask, t, cond


def _close(a: DenoiserOutput, b: DenoiserOutput, skip=()):
    for name in DenoiserOutput._fields:
        if name not in skip:
            torch.testing.assert_close(getattr(a, name), getattr(b, name), **TOL, msg=name)


def test_output_shapes_zero_padding_and_init():
    lattice, frac, species, mask, t, cond = _batch(0)
    out = MODEL(lattice, frac, species, mask, t, cond)
    assert out.lattice_eps.shape == (2, 3, 3) and out.coord_score.shape == (2, 6, 3)
    assert out.species_logits.shape == (2, 6, S) and out.node_features.shape == (2, 6, 32)
    assert out.graph_features.shape == (2, 32)
    for field in (out.coord_score, out.species_logits, out.node_features):
        assert bool((field[0, 4:] == 0).all())  # padded positions
        assert bool((field[0, :4].abs().amax(dim=-1) > 0).all())
    fresh = TopologicalTransformer(num_species=S, hidden_dim=32, num_layers=2, num_heads=4)
    init = fresh(*(x.float() if x.is_floating_point() else x for x in _batch(0)))
    assert bool((init.lattice_eps == 0).all()) and bool((init.coord_score == 0).all())
    assert bool((init.species_logits == 0).all())  # uniform over real species


@pytest.mark.parametrize("reflect", [False, True])
def test_rotation(reflect):
    lattice, frac, species, mask, t, cond = _batch(1)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(5), dtype=DT))
    if (torch.det(q) < 0) != reflect:
        q[:, 0] = -q[:, 0]
    out = MODEL(lattice, frac, species, mask, t, cond)
    rot = MODEL(lattice @ q.T, frac, species, mask, t, cond)
    torch.testing.assert_close(rot.lattice_eps, out.lattice_eps @ q.T, **TOL)
    assert float(out.lattice_eps.abs().max()) > 1e-3
    _close(rot, out, skip=("lattice_eps",))


@HYPO
@given(seed=st.integers(0, 2**16), shift=st.lists(st.floats(-5, 5), min_size=3, max_size=3))
def test_origin_shift(seed, shift):
    lattice, frac, species, mask, t, cond = _batch(seed)
    out = MODEL(lattice, frac + torch.tensor(shift, dtype=DT), species, mask, t, cond)
    _close(out, MODEL(lattice, frac, species, mask, t, cond))


def test_integer_shifts_of_atoms():
    lattice, frac, species, mask, t, cond = _batch(2)
    shifts = torch.randint(-3, 4, frac.shape, generator=torch.Generator().manual_seed(3)).to(DT)
    _close(MODEL(lattice, frac + shifts, species, mask, t, cond), MODEL(lattice, frac, species, mask, t, cond))


@HYPO
@given(seed=st.integers(0, 2**16), data=st.data())
def test_permutation(seed, data):
    lattice, frac, species, mask, t, cond = _batch(seed)
    n = frac.shape[1]
    perm = torch.stack([torch.tensor(data.draw(st.permutations(range(n)))) for _ in range(2)])  # (B, N)
    take = lambda x: torch.gather(x, 1, perm.view(2, n, *([1] * (x.dim() - 2))).expand_as(x))  # noqa: E731
    out = MODEL(lattice, frac, species, mask, t, cond)
    permuted = MODEL(lattice, take(frac), take(species), take(mask), t, cond)
    for name in ("coord_score", "species_logits", "node_features"):
        torch.testing.assert_close(getattr(permuted, name), take(getattr(out, name)), **TOL, msg=name)
    torch.testing.assert_close(permuted.lattice_eps, out.lattice_eps, **TOL)
    torch.testing.assert_close(permuted.graph_features, out.graph_features, **TOL)


def test_padding_and_batch_independence():
    lattice, frac, species, mask, t, cond = _batch(4, counts=(3, 7))
    alone = MODEL(lattice[:1], frac[:1, :3], species[:1, :3], mask[:1, :3], t[:1], cond[:1])
    padded = MODEL(lattice, frac, species, mask, t, cond)
    for name in ("coord_score", "species_logits", "node_features"):
        torch.testing.assert_close(getattr(padded, name)[:1, :3], getattr(alone, name), **TOL, msg=name)
    for name in ("lattice_eps", "graph_features"):
        torch.testing.assert_close(getattr(padded, name)[:1], getattr(alone, name), **TOL, msg=name)
    # Whatever sits in the padding or in crystal 1 does not reach crystal 0.
    other = _batch(99, counts=(3, 7))
    frac2, species2 = frac.clone(), species.clone()
    frac2[0, 3:], species2[0, 3:] = other[1][0, 3:], other[2][0, 3:]
    frac2[1], species2[1] = other[1][1], other[2][1]
    lattice2, t2, cond2 = lattice.clone(), t.clone(), cond.clone()
    lattice2[1], t2[1], cond2[1] = other[0][1], other[4][1], other[5][1]
    changed = MODEL(lattice2, frac2, species2, mask, t2, cond2)
    _close(DenoiserOutput(*(x[:1] for x in changed)), DenoiserOutput(*(x[:1] for x in padded)))
    assert not torch.allclose(changed.coord_score[1], padded.coord_score[1])


def test_near_singular_lattice_is_finite():
    lattice, frac, species, mask, t, cond = _batch(6)
    lattice = lattice.clone()
    lattice[0] = 0.0
    lattice[1, 2] = lattice[1, 0] * 2.0  # rank 2
    model = _small().train()
    lattice.requires_grad_(True)
    out = model(lattice, frac, species, mask, t, cond)
    assert all(torch.isfinite(x).all() for x in out)
    sum(x.square().sum() for x in out).backward()
    assert torch.isfinite(lattice.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_gradient_checkpointing_matches():
    plain = _small().train()
    ckpt = copy.deepcopy(plain)
    ckpt.gradient_checkpointing = True
    batch = _batch(7)
    outs = []
    for model in (plain, ckpt):
        out = model(*batch)
        (out.coord_score.square().sum() + out.lattice_eps.sum() + out.species_logits.logsumexp(-1).sum()).backward()
        outs.append(out)
    _close(outs[0], outs[1])
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(a.grad, b.grad, **TOL, msg=name)


def test_meta_construction_and_parameter_count():
    with torch.device("meta"):  # the first meta init imports parts of torch (about 2 s, once per process)
        TopologicalTransformer(hidden_dim=32, num_layers=1, num_heads=4)
    start = time.perf_counter()
    with torch.device("meta"):
        big = TopologicalTransformer(hidden_dim=768, num_layers=12, num_heads=12)
    assert time.perf_counter() - start < 1.0
    assert all(p.is_meta for p in big.parameters())
    n = count_parameters(big)
    assert 120e6 < n < 140e6

    def formula(h, layers, heads, s=100, p=64, k=8, r=32, ratio=4):
        f = 6 * k + r + 6
        block = (10 + 2 * ratio) * h * h + (11 + ratio) * h + heads * (p + 1)
        rest = 5 * h * h + (2 * s + 4 * p + 282) * h + f * p + 3 * p * p + 7 * p + s + 15
        return layers * block + rest

    assert n == formula(768, 12, 12)
    assert count_parameters(MODEL) == formula(32, 2, 4, s=S)
    with torch.device("meta"):
        small = TopologicalTransformer(num_species=S, hidden_dim=32, num_layers=2, num_heads=4)
    small = small.to_empty(device="cpu").double()
    small.reset_parameters()
    out = small(*_batch(0))
    assert all(torch.isfinite(x).all() for x in out) and bool((out.coord_score == 0).all())
    frozen = _small()
    frozen.species_embed.weight.requires_grad_(False)
    assert count_parameters(frozen, trainable_only=True) == count_parameters(frozen) - (S + 1) * 32


def test_errors():
    with pytest.raises(ConfigError, match=r"hidden_dim must be divisible by num_heads \(512 % 7 = 1\)"):
        TopologicalTransformer(hidden_dim=512, num_heads=7)
    with pytest.raises(ConfigError, match="num_layers must be an integer >= 1, got 0"):
        TopologicalTransformer(num_layers=0)
    lattice, frac, species, mask, t, cond = _batch(8)
    bad = species.clone()
    bad[1, 2] = S + 1
    with pytest.raises(BatchError, match=rf"species must be in 0\.\.{S} \({S} = mask token\), got {S + 1}"):
        MODEL(lattice, frac, bad, mask, t, cond)
    empty = mask.clone()
    empty[1] = False
    with pytest.raises(BatchError, match="crystal 1 has 0"):
        MODEL(lattice, frac, species, empty, t, cond)
    with pytest.raises(BatchError, match=r"cond must have shape \(2, 32\), got \(2, 16\)"):
        MODEL(lattice, frac, species, mask, t, cond[:, :16])
    with pytest.raises(BatchError, match="mask must be a bool tensor"):
        MODEL(lattice, frac, species, mask.long(), t, cond)
    nan = frac.clone()
    nan[0, 0, 0] = float("nan")
    with pytest.raises(BatchError, match="must be finite"):
        MODEL(lattice, nan, species, mask, t, cond)


def test_overfit_smoke():
    torch.manual_seed(0)
    model = TopologicalTransformer(num_species=S, hidden_dim=32, num_layers=2, num_heads=4)
    lattice, frac, species, mask, t, cond = (x.float() if x.is_floating_point() else x for x in _batch(9, (5, 6)))
    target = torch.randn(frac.shape, generator=torch.Generator().manual_seed(1)) * mask[..., None]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        loss = (model(lattice, frac, species, mask, t, cond).coord_score - target).square().sum() / mask.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])


def test_one_pass_under_several_conditions_equals_one_pass_per_condition():
    lattice, frac, species, mask, t, cond = _batch(3)
    other = torch.randn_like(cond)
    together = MODEL(lattice, frac, species, mask, t, torch.cat([cond, other]))
    apart = [MODEL(lattice, frac, species, mask, t, c) for c in (cond, other)]
    for name in DenoiserOutput._fields:
        joined = torch.cat([getattr(apart[0], name), getattr(apart[1], name)])
        torch.testing.assert_close(getattr(together, name), joined, **TOL, msg=name)
    with pytest.raises(BatchError, match=r"cond must have shape \(2, 32\), got \(3, 32\)"):
        MODEL(lattice, frac, species, mask, t, torch.randn(3, 32, dtype=DT))


def test_pair_values_keep_the_symmetries_and_change_the_output():
    """With the pair state in the attention values: rotation, origin shift, permutation and padding as above."""
    model = _small(pair_values=True).requires_grad_(False)
    lattice, frac, species, mask, t, cond = _batch(7)
    out = model(lattice, frac, species, mask, t, cond)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(8), dtype=DT))
    rot = model(lattice @ q.T, frac + 0.37, species, mask, t, cond)  # rotated frame and shifted origin
    torch.testing.assert_close(rot.lattice_eps, out.lattice_eps @ q.T, **TOL)
    _close(rot, out, skip=("lattice_eps",))
    perm = torch.tensor([[2, 0, 3, 1, 4, 5], [5, 4, 3, 2, 1, 0]])
    take = lambda x: torch.gather(x, 1, perm.view(2, 6, *([1] * (x.dim() - 2))).expand_as(x))  # noqa: E731
    permuted = model(lattice, take(frac), take(species), take(mask), t, cond)
    torch.testing.assert_close(permuted.coord_score, take(out.coord_score), **TOL)
    torch.testing.assert_close(permuted.lattice_eps, out.lattice_eps, **TOL)
    alone = model(lattice[:1], frac[:1, :4], species[:1, :4], mask[:1, :4], t[:1], cond[:1])
    torch.testing.assert_close(out.coord_score[:1, :4], alone.coord_score, **TOL)
    plain = _small()  # the same seed: equal weights except the pair-value projections
    assert not torch.allclose(plain(lattice, frac, species, mask, t, cond).coord_score, out.coord_score)
    with pytest.raises(ConfigError, match="pair_values"):
        TopologicalTransformer(num_species=S, hidden_dim=32, num_layers=2, num_heads=4, pair_values=1)


def test_angstrom_pair_distances_see_the_physical_cell_and_keep_the_symmetries():
    """With ``pair_distances="angstrom"`` the network reads ``lattice * length_scale``: a normalised cell with its
    scale gives exactly what the physical cell with scale one gives, the lattice output stays equivariant in the
    normalised cell, the symmetries hold, and the scale changes the output (it is not ignored)."""
    model = _small(pair_distances="angstrom").requires_grad_(False)
    assert model.rbf_cutoff == 6.0  # the Angstrom default
    lattice, frac, species, mask, t, cond = _batch(9)
    scale = torch.tensor([1.8, 3.1], dtype=DT)
    out = model(lattice, frac, species, mask, t, cond, length_scale=scale)
    physical = model(lattice * scale[:, None, None], frac, species, mask, t, cond, length_scale=torch.ones(2, dtype=DT))
    _close(out, physical, skip=("lattice_eps",))
    rms = lambda x: torch.sqrt(x.pow(2).mean(dim=(1, 2)))[:, None, None]  # noqa: E731
    torch.testing.assert_close(out.lattice_eps, physical.lattice_eps, **TOL)  # M @ (L / rms(L)): scale-free
    assert bool((rms(out.lattice_eps) > 1e-3).all())
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(10), dtype=DT))
    rot = model(lattice @ q.T, frac + 0.21, species, mask, t, cond, length_scale=scale)
    torch.testing.assert_close(rot.lattice_eps, out.lattice_eps @ q.T, **TOL)
    _close(rot, out, skip=("lattice_eps",))
    alone = model(lattice[1:], frac[1:], species[1:], mask[1:], t[1:], cond[1:], length_scale=scale[1:])
    torch.testing.assert_close(out.coord_score[1:], alone.coord_score, **TOL)
    other = model(lattice, frac, species, mask, t, cond, length_scale=1.5 * scale)
    assert not torch.allclose(other.coord_score, out.coord_score)
    together = model(lattice, frac, species, mask, t, torch.cat([cond, -cond]), length_scale=scale)
    flipped = model(lattice, frac, species, mask, t, -cond, length_scale=scale)
    torch.testing.assert_close(together.coord_score, torch.cat([out.coord_score, flipped.coord_score]), **TOL)
    torch.testing.assert_close(together.lattice_eps, torch.cat([out.lattice_eps, flipped.lattice_eps]), **TOL)


def test_length_scale_is_required_exactly_when_distances_are_in_angstrom():
    lattice, frac, species, mask, t, cond = _batch(11)
    model = _small(pair_distances="angstrom").requires_grad_(False)
    with pytest.raises(BatchError, match='pair_distances="angstrom" needs length_scale'):
        model(lattice, frac, species, mask, t, cond)
    with pytest.raises(BatchError, match=r"length_scale must have shape \(2,\), got \(3,\)"):
        model(lattice, frac, species, mask, t, cond, length_scale=torch.ones(3, dtype=DT))
    with pytest.raises(BatchError, match="length_scale finite and > 0"):
        model(lattice, frac, species, mask, t, cond, length_scale=torch.tensor([1.0, 0.0], dtype=DT))
    with pytest.raises(BatchError, match='only read with pair_distances="angstrom"'):
        MODEL(lattice, frac, species, mask, t, cond, length_scale=torch.ones(2, dtype=DT))
    with pytest.raises(ConfigError, match=r"pair_distances must be one of \['normalised', 'angstrom'\], got 'bohr'"):
        TopologicalTransformer(num_species=S, hidden_dim=32, num_layers=2, num_heads=4, pair_distances="bohr")


def _check_symmetries_in_angstrom(model, seed: int, shift: float, perm: torch.Tensor):
    """Rotation, origin and integer shifts, permutations, padding and several conditions in one pass, for a model
    with ``pair_distances="angstrom"`` on a batch of cells about 2-3 A across; returns the batch, scales and output."""
    lattice, frac, species, mask, t, cond = _batch(seed)
    scale = torch.tensor([2.2, 2.9], dtype=DT)
    out = model(lattice, frac, species, mask, t, cond, length_scale=scale)
    q = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed + 1), dtype=DT))[0]
    moved = model(lattice @ q.T, (frac + shift) % 1.0 - 2.0, species, mask, t, cond, length_scale=scale)
    torch.testing.assert_close(moved.lattice_eps, out.lattice_eps @ q.T, **TOL)
    _close(moved, out, skip=("lattice_eps",))
    take = lambda x: torch.gather(x, 1, perm.view(2, 6, *([1] * (x.dim() - 2))).expand_as(x))  # noqa: E731
    permuted = model(lattice, take(frac), take(species), take(mask), t, cond, length_scale=scale)
    torch.testing.assert_close(permuted.coord_score, take(out.coord_score), **TOL)
    torch.testing.assert_close(permuted.species_logits, take(out.species_logits), **TOL)
    alone = model(lattice[:1], frac[:1, :4], species[:1, :4], mask[:1, :4], t[:1], cond[:1], length_scale=scale[:1])
    torch.testing.assert_close(out.coord_score[:1, :4], alone.coord_score, **TOL)
    together = model(lattice, frac, species, mask, t, torch.cat([cond, 2 * cond]), length_scale=scale)
    doubled = model(lattice, frac, species, mask, t, 2 * cond, length_scale=scale)
    torch.testing.assert_close(together.coord_score, torch.cat([out.coord_score, doubled.coord_score]), **TOL)
    return (lattice, frac, species, mask, t, cond), scale, out


def test_coord_vectors_keep_the_symmetries_start_at_zero_and_are_smooth_across_half_a_cell():
    """``coord_vectors``: the score gains sum_j w_ij sin(2 pi (f_j - f_i)) / (2 pi). Rotation, origin and integer
    shifts, permutations, padding and several conditions in one pass behave as without it; a fresh network still
    predicts zero; the term is continuous where the wrapped difference jumps (two atoms half a cell apart)."""
    model = _small(coord_vectors=True, pair_distances="angstrom").requires_grad_(False)
    perm = torch.tensor([[3, 1, 0, 2, 4, 5], [5, 0, 4, 1, 3, 2]])
    (lattice, frac, species, mask, t, cond), scale, out = _check_symmetries_in_angstrom(model, 12, 0.41, perm)
    plain = _small(pair_distances="angstrom")  # the same seed: equal weights but the pair-vector weights
    assert not torch.allclose(plain(lattice, frac, species, mask, t, cond, length_scale=scale).coord_score,
                              out.coord_score)  # fmt: skip
    fresh = TopologicalTransformer(num_species=S, hidden_dim=32, num_layers=2, num_heads=4, coord_vectors=True)
    init = fresh(*(x.float() if x.is_floating_point() else x for x in _batch(12)))
    assert bool((init.coord_score == 0).all())
    pair = torch.tensor([[[0.1, 0.2, 0.3], [0.6 - 1e-7, 0.2, 0.3]]], dtype=DT)  # half a cell apart along a
    across = pair.clone()
    across[0, 1, 0] += 2e-7
    args = (torch.eye(3, dtype=DT)[None], species[:1, :2], mask[:1, :2], t[:1], cond[:1])
    before = model(args[0], pair, *args[1:], length_scale=scale[:1]).coord_score
    after = model(args[0], across, *args[1:], length_scale=scale[:1]).coord_score
    torch.testing.assert_close(before, after, atol=1e-5, rtol=0)
    with pytest.raises(ConfigError, match="coord_vectors must be true or false, got 1"):
        TopologicalTransformer(num_species=S, hidden_dim=32, num_layers=2, num_heads=4, coord_vectors=1)


@pytest.mark.parametrize("coord_vectors", [False, True])
def test_image_cutoff_keeps_the_symmetries_and_changes_the_prediction(coord_vectors):
    """``image_cutoff``: the pair input also holds the basis summed over every periodic image within 3 A (and with
    ``coord_vectors`` the score sums the pair vectors over those images). Rotation, origin and integer shifts,
    permutations, padding and several conditions in one pass behave as without it; the image channels add weights
    and change the prediction; a fresh network predicts zero."""
    model = _small(image_cutoff=3.0, coord_vectors=coord_vectors, pair_distances="angstrom").requires_grad_(False)
    perm = torch.tensor([[2, 0, 3, 1, 4, 5], [4, 5, 0, 2, 1, 3]])
    batch, scale, out = _check_symmetries_in_angstrom(model, 21, 0.37, perm)  # cells of 2-3 A: images within 3 A
    plain = _small(coord_vectors=coord_vectors, pair_distances="angstrom")
    assert count_parameters(model) > count_parameters(plain)  # the image channels' weights
    assert not torch.allclose(plain(*batch, length_scale=scale).coord_score, out.coord_score)
    fresh = TopologicalTransformer(
        num_species=S, hidden_dim=32, num_layers=2, num_heads=4, pair_distances="angstrom", image_cutoff=3.0,
        coord_vectors=coord_vectors,
    )  # fmt: skip
    args = [x.float() if x.is_floating_point() else x for x in _batch(21)]
    assert bool((fresh(*args, length_scale=scale.float()).coord_score == 0).all())


def test_image_cutoff_errors():
    kwargs = {"num_species": S, "hidden_dim": 32, "num_layers": 2, "num_heads": 4}
    with pytest.raises(ConfigError, match='image_cutoff is in Angstrom and needs pair_distances="angstrom"'):
        TopologicalTransformer(**kwargs, image_cutoff=3.0)
    for bad in (0.0, -1.0, float("inf"), True, "3"):
        with pytest.raises(ConfigError, match="image_cutoff must be null or a finite number > 0"):
            TopologicalTransformer(**kwargs, pair_distances="angstrom", image_cutoff=bad)

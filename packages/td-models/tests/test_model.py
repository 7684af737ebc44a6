"""TopologicalDiffusionModel end to end: losses, overfitting one batch, sampling, conditioning, I/O."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from td_models.batch import collate, crystal_item
from td_models.config import ExperimentConfig, ModelConfig, PhysicsConfig, TrainingConfig
from td_models.denoiser import count_parameters
from td_models.exceptions import BatchError, CheckpointError, ConfigError
from td_models.model import TopologicalDiffusionModel


def tiny_config(**model) -> ExperimentConfig:
    values = {"hidden_dim": 32, "num_layers": 2, "num_heads": 4, "num_steps": 50, "max_atoms": 8, **model}
    return ExperimentConfig(model_config=ModelConfig(**values), training_config=TrainingConfig())


def rocksalt(z_a: int, z_b: int, a: float, **labels):
    frac = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    frac = frac + [[x + 0.5 if i == 0 else x for i, x in enumerate(f)] for f in frac]
    return crystal_item(a * np.eye(3), np.mod(frac, 1.0), [z_a] * 4 + [z_b] * 4, **labels)


def cscl(z_a: int, z_b: int, a: float, **labels):
    return crystal_item(a * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5]], [z_a, z_b], **labels)


def dataset():
    return [
        rocksalt(11, 17, 5.64, topo_class="trivial", band_gap=5.0, formation_energy=-2.1),
        cscl(55, 17, 4.12, topo_class="trivial", band_gap=5.2),
        cscl(29, 30, 2.95, topo_class="semimetal_or_metal", band_gap=0.0),
        rocksalt(50, 52, 6.3, topo_class="z2_ti", band_gap=0.3, chern=0),
    ]


def test_losses_are_finite_and_every_part_has_gradients():
    model = TopologicalDiffusionModel(tiny_config())
    batch = collate(dataset())
    model.fit_normalisation(batch)
    losses = model.training_losses(batch, physics=True, generator=torch.Generator().manual_seed(0))
    expected = {"lattice", "coords", "species", "band_gap", "formation_energy", "topo", "properties"}
    assert expected | {"min_distance", "density", "charge", "total"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    losses["total"].backward()
    for name in ("denoiser", "heads"):
        grads = [p.grad for p in getattr(model, name).parameters() if p.grad is not None]
        assert grads and any(float(g.abs().sum()) > 0 for g in grads), name
    # adaLN-Zero: the gates start at zero, so the condition embedding gets gradient after one step
    torch.optim.SGD(model.parameters(), lr=1e-2).step()
    model.zero_grad()
    model.training_losses(batch, physics=True, generator=torch.Generator().manual_seed(0))["total"].backward()
    grads = [p.grad for p in model.conditions.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)


def test_structure_phase_leaves_the_heads_out():
    model = TopologicalDiffusionModel(tiny_config())
    losses = model.training_losses(collate(dataset()), physics=False, generator=torch.Generator().manual_seed(0))
    assert set(losses) == {"lattice", "coords", "species", "total"}


def test_one_batch_overfits():
    torch.manual_seed(0)
    model = TopologicalDiffusionModel(tiny_config(hidden_dim=64))
    batch = collate(dataset())
    model.fit_normalisation(batch)
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    history = []
    for _ in range(150):
        # the same noise and times every step: a fixed objective that the network can drive down
        losses = model.training_losses(batch, physics=True, generator=torch.Generator().manual_seed(1))
        optimiser.zero_grad()
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        history.append(float(losses["total"].detach()))
    assert history[-1] < 0.05 * history[0], (history[0], history[-1])


def test_sampling_is_deterministic_and_well_formed():
    model = TopologicalDiffusionModel(tiny_config())
    model.fit_normalisation(collate(dataset()))
    kwargs = {"topo_class": "TI", "band_gap_range": (0.1, 0.5), "steps": 8, "corrector_steps": 1}
    first = model.sample(5, seed=3, **kwargs)
    again = model.sample(5, seed=3, **kwargs)
    other = model.sample(5, seed=4, **kwargs)
    for a, b in zip(first, again):
        for key in ("lattice", "frac_coords", "atomic_numbers"):
            np.testing.assert_array_equal(a[key], b[key])
    assert any(not np.array_equal(a["frac_coords"], b["frac_coords"]) for a, b in zip(first, other))
    for crystal in first:
        n = len(crystal["atomic_numbers"])
        assert n in (2, 8)  # drawn from the training atom counts
        assert crystal["lattice"].shape == (3, 3) and np.isfinite(crystal["lattice"]).all()
        assert crystal["frac_coords"].shape == (n, 3)
        assert (crystal["frac_coords"] >= 0).all() and (crystal["frac_coords"] < 1).all()
        assert crystal["atomic_numbers"].min() >= 1 and crystal["atomic_numbers"].max() <= 100
        assert crystal["conditions"]["topo_class"] == 1 and 0.1 <= crystal["conditions"]["band_gap"] <= 0.5


def test_sampling_options_are_checked():
    model = TopologicalDiffusionModel(tiny_config())
    with pytest.raises(ConfigError, match="steps must be an integer in 1..50, got 51"):
        model.sample(1, steps=51)
    with pytest.raises(ConfigError, match="band_gap_range"):
        model.sample(1, band_gap_range=(0.5, 0.1), steps=2)
    with pytest.raises(BatchError, match="num_atoms must be one int or 3 ints"):
        model.sample(3, num_atoms=[2, 2], steps=2)


def test_conditioning_changes_what_is_sampled():
    """Train on two families told apart only by the class label; each request gets its own family."""
    torch.manual_seed(0)
    cfg = tiny_config(hidden_dim=64, cond_drop_prob=0.1)
    model = TopologicalDiffusionModel(cfg)
    sodium = [cscl(11, 17, 3.3 + 0.05 * i, topo_class="trivial") for i in range(8)]
    tin = [cscl(50, 52, 3.3 + 0.05 * i, topo_class="z2_ti") for i in range(8)]
    batch = collate(sodium + tin)
    model.fit_normalisation(batch)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(250):
        losses = model.training_losses(batch, generator=generator)
        optimiser.zero_grad()
        losses["total"].backward()
        optimiser.step()
    options = {"num_atoms": 2, "steps": 25, "seed": 0, "guidance_scale": 2.0, "physics_guidance": 0.0}
    trivial = np.concatenate([c["atomic_numbers"] for c in model.sample(16, topo_class="trivial", **options)])
    topological = np.concatenate([c["atomic_numbers"] for c in model.sample(16, topo_class="TI", **options)])
    share_na_cl = np.isin(trivial, [11, 17]).mean()
    share_sn_te = np.isin(topological, [50, 52]).mean()
    assert share_na_cl > 0.7 and share_sn_te > 0.7, (share_na_cl, share_sn_te)


def test_predict_properties_shapes_and_probabilities():
    model = TopologicalDiffusionModel(tiny_config())
    pred = model.predict_properties(dataset())
    assert pred.band_gap.shape == (4,) and (pred.band_gap >= 0).all()
    assert pred.formation_energy.shape == (4,)
    np.testing.assert_allclose(pred.topo_probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert len(pred.topo_class) == 4


def test_mc_dropout_spreads_the_heads_only_when_asked_and_leaves_the_mode_alone():
    model = TopologicalDiffusionModel(tiny_config(dropout=0.3))
    model.train()
    plain = [model.predict_properties(dataset()).band_gap for _ in range(2)]
    np.testing.assert_array_equal(plain[0], plain[1])  # eval mode: dropout off, the same answer
    torch.manual_seed(0)
    first = model.predict_properties(dataset(), dropout=True).band_gap
    second = model.predict_properties(dataset(), dropout=True).band_gap
    assert not np.allclose(first, second)  # MC dropout: another draw, another answer
    torch.manual_seed(0)
    np.testing.assert_array_equal(model.predict_properties(dataset(), dropout=True).band_gap, first)  # seeded
    assert model.training and all(m.training for m in model.modules())  # the caller's mode is restored
    model.eval()
    model.predict_properties(dataset(), dropout=True)
    assert not any(m.training for m in model.modules())


def test_predict_samples_leaves_out_what_cannot_be_featurised():
    model = TopologicalDiffusionModel(tiny_config())
    samples = [
        {"lattice": c["lattice"], "frac_coords": c["frac_coords"], "atomic_numbers": c["atomic_numbers"]}
        for c in dataset()
    ]
    samples[1] = {**samples[1], "lattice": np.zeros((3, 3))}  # a singular cell
    predictions, indices = model.predict_samples(samples)
    assert indices == (0, 2, 3)
    expected = model.predict_properties([samples[i] for i in indices])
    np.testing.assert_allclose(predictions.band_gap, expected.band_gap, rtol=1e-5)
    np.testing.assert_allclose(predictions.topo_probabilities, expected.topo_probabilities, rtol=1e-5)
    assert predictions.topo_class == expected.topo_class
    assert model.predict_samples([samples[1]]) == (None, ())


def test_save_load_round_trip(tmp_path):
    model = TopologicalDiffusionModel(tiny_config())
    model.fit_normalisation(collate(dataset()))
    for p in model.parameters():  # move away from the zero-initialised gates, so weights matter
        torch.nn.init.normal_(p, std=0.02)
    path = model.save(tmp_path / "model.pt")
    loaded = TopologicalDiffusionModel.load(path)
    assert loaded.config == model.config
    assert float(loaded.lattice_scale) == float(model.lattice_scale)
    a = model.sample(3, steps=5, seed=1)
    b = loaded.sample(3, steps=5, seed=1)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["atomic_numbers"], y["atomic_numbers"])
        np.testing.assert_allclose(x["lattice"], y["lattice"])
    assert not list(tmp_path.glob("*.tmp"))


def test_load_refuses_what_is_not_a_model(tmp_path):
    with pytest.raises(CheckpointError, match="must exist"):
        TopologicalDiffusionModel.load(tmp_path / "missing.pt")
    other = tmp_path / "other.pt"
    torch.save({"format": "something-else"}, other)
    with pytest.raises(CheckpointError, match="not a td-models model file"):
        TopologicalDiffusionModel.load(other)
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": "td-models/model", "object": PhysicsConfig()}, pickled)  # arbitrary class: needs pickle
    with pytest.raises(CheckpointError, match="weights_only=True"):
        TopologicalDiffusionModel.load(pickled)


@pytest.mark.parametrize(("preset", "target"), [("small", 128e6), ("medium", 512e6), ("large", 2e9)])
def test_preset_parameter_counts_on_the_meta_device(preset, target):
    with torch.device("meta"):
        model = TopologicalDiffusionModel(ExperimentConfig.preset(preset))
    count = count_parameters(model)
    assert 0.85 * target < count < 1.15 * target, f"{preset}: {count / 1e6:.1f}M parameters"


def test_cpu_demo_preset_is_small():
    model = TopologicalDiffusionModel(ExperimentConfig.preset("cpu-demo"))
    assert count_parameters(model) < 1_000_000


def test_sampling_keeps_to_the_training_elements_unless_told_otherwise():
    model = TopologicalDiffusionModel(tiny_config())
    for p in model.parameters():  # an untrained, non-trivial network spreads over all elements
        torch.nn.init.normal_(p, std=0.05)
    model.fit_normalisation(collate(dataset()))
    seen = {11, 17, 55, 29, 30, 50, 52}
    kept = np.concatenate([c["atomic_numbers"] for c in model.sample(8, steps=6, seed=0)])
    assert set(kept.tolist()) <= seen
    free = np.concatenate([c["atomic_numbers"] for c in model.sample(8, steps=6, seed=0, restrict_species=False)])
    assert not set(free.tolist()) <= seen


def test_the_denoiser_sees_the_physical_cell_whatever_the_atom_count(monkeypatch):
    """``pair_distances="angstrom"`` (the default): the pair distances are those of the crystal in Angstrom, for a
    2-atom and an 8-atom cell alike (normalised lattices differ by N^(1/3) and would put one bond on two RBF
    channels); ``"normalised"`` gives the network the unit-volume cell."""
    batch = collate(dataset())
    seen = {}
    for units in ("angstrom", "normalised"):
        model = TopologicalDiffusionModel(tiny_config(pair_distances=units))
        model.fit_normalisation(batch)
        original = model.denoiser._pair_state

        def spy(lattice, frac, mask, original=original, units=units):
            seen[units] = lattice.detach().clone()
            return original(lattice, frac, mask)

        monkeypatch.setattr(model.denoiser, "_pair_state", spy)
        lattice_n = model.normalise_lattice(batch.lattice, batch.num_atoms)
        t = torch.full((len(batch),), 3)
        cond = model.conditions(*model.conditions.null_like(len(batch)))
        model.denoise(lattice_n, batch.frac_coords, batch.atom_types - 1, batch.batch_index, batch.num_atoms, t, cond)
        expected = batch.lattice if units == "angstrom" else lattice_n
        torch.testing.assert_close(seen[units], expected.to(seen[units].dtype), rtol=1e-5, atol=1e-5)
    assert ModelConfig().pair_distances == "angstrom"
    with pytest.raises(ConfigError, match="model_config.pair_distances must be 'angstrom' or 'normalised', got 'bohr'"):
        ModelConfig(pair_distances="bohr")


def test_a_model_with_periodic_images_trains_samples_and_round_trips_its_file(tmp_path):
    """``image_cutoff``: the setting reaches the denoiser, a training step and the sampler run, and the saved file
    carries it (the same predictions after loading)."""
    batch = collate(dataset())
    model = TopologicalDiffusionModel(tiny_config(image_cutoff=3.0, coord_vectors=True))
    assert model.denoiser.image_cutoff == 3.0
    model.fit_normalisation(batch)
    losses = model.training_losses(batch, generator=torch.Generator().manual_seed(0))
    losses["total"].backward()
    assert bool(torch.isfinite(losses["total"])) and model.denoiser.pair_mlp[0].weight.grad is not None
    crystals = model.sample(3, steps=4, seed=0)
    assert len(crystals) == 3 and all(np.isfinite(c["lattice"]).all() for c in crystals)
    loaded = TopologicalDiffusionModel.load(model.save(tmp_path / "model.pt"))
    assert loaded.config.model_config.image_cutoff == 3.0
    again = loaded.sample(3, steps=4, seed=0)
    for a, b in zip(crystals, again):
        np.testing.assert_allclose(a["frac_coords"], b["frac_coords"], atol=1e-6)


def test_a_checkpoint_from_before_pair_distances_loads_as_normalised(tmp_path):
    """Files written before the option existed were trained on normalised distances: they load as such and sample
    exactly as a model built with ``pair_distances="normalised"``."""
    model = TopologicalDiffusionModel(tiny_config(pair_distances="normalised"))
    model.fit_normalisation(collate(dataset()))
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.02)
    path = model.save(tmp_path / "model.pt")
    payload = torch.load(path, weights_only=True)
    del payload["config"]["model_config"]["pair_distances"]
    torch.save(payload, tmp_path / "old.pt")
    loaded = TopologicalDiffusionModel.load(tmp_path / "old.pt")
    assert loaded.config.model_config.pair_distances == "normalised"
    for x, y in zip(model.sample(3, steps=5, seed=2), loaded.sample(3, steps=5, seed=2)):
        np.testing.assert_array_equal(x["atomic_numbers"], y["atomic_numbers"])
        np.testing.assert_allclose(x["lattice"], y["lattice"])
        np.testing.assert_allclose(x["frac_coords"], y["frac_coords"])


def test_element_volumes_fit_additive_cells_and_the_volume_penalty_is_zero_inside_the_tolerance():
    """fit_species_volumes recovers per-element volumes of cells built additively (and leaves unseen elements at the
    median); composition_volume_penalty is zero within [V / f, f V], symmetric in log, and grows outside."""
    from td_models.constraints import composition_volume_penalty, fit_species_volumes

    cells = [([14] * 2, 40.0), ([8] * 2, 24.0), ([14, 8, 8], 44.0), ([14, 14, 8], 52.0), ([14], 20.0), ([8], 12.0)]
    lattice = torch.stack([torch.eye(3, dtype=torch.float64) * v ** (1 / 3) for _, v in cells])
    types = torch.tensor([z for zs, _ in cells for z in zs])
    index = torch.tensor([i for i, (zs, _) in enumerate(cells) for _ in zs])
    volumes = fit_species_volumes(lattice, types, index, num_species=20, ridge=1e-6)
    assert float(volumes[13]) == pytest.approx(20.0, rel=1e-3) and float(volumes[7]) == pytest.approx(12.0, rel=1e-3)
    median = float(torch.tensor([v / len(zs) for zs, v in cells]).median())
    assert float(volumes[0]) == pytest.approx(median, rel=1e-3)  # hydrogen, never seen
    expected = torch.tensor([100.0, 100.0, 100.0, 100.0])
    scales = torch.tensor([1.0, 1.2, 1 / 1.2, 2.0]) ** (1 / 3)
    cells_v = torch.stack([torch.eye(3) * 100.0 ** (1 / 3) * s for s in scales])
    penalty = composition_volume_penalty(cells_v, expected, tolerance=1.25)
    assert penalty[:3].abs().max() < 1e-9 and float(penalty[3]) == pytest.approx((math.log(2.0) - math.log(1.25)) ** 2)
    down = composition_volume_penalty(torch.eye(3).expand(1, 3, 3) * 50.0 ** (1 / 3), expected[:1], 1.25)
    assert float(down[0]) == pytest.approx(float(penalty[3]), rel=1e-5)  # half the volume = twice the volume


def test_the_pair_penalty_is_the_squared_hinge_per_pair_and_the_radii_are_cordero_s():
    """pair_distance_penalty with one d_min per pair: zero above it, relu(d_min - d)^2 / d_min^2 below, padding and
    the lower triangle ignored; with a uniform d_min it is min_distance_penalty. covalent_radii: Cordero et al.
    2008 (H 0.31, C 0.76, O 0.66, Te 1.38, Bi 1.48), Cm's radius after Cm."""
    from td_models.constraints import covalent_radii, min_distance_penalty, pair_distance_penalty

    lattice = 10.0 * torch.eye(3, dtype=torch.float64).unsqueeze(0)
    frac = torch.tensor([[[0.0, 0.0, 0.0], [0.2, 0.0, 0.0], [0.0, 0.5, 0.0], [0.9, 0.9, 0.9]]], dtype=torch.float64)
    mask = torch.tensor([[True, True, True, False]])  # the fourth atom is padding
    d_min = torch.full((1, 4, 4), 1.0, dtype=torch.float64)
    d_min[0, 0, 1] = d_min[0, 1, 0] = 3.0  # the pair 2 A apart must be 3 A apart
    expected = (3.0 - 2.0) ** 2 / 3.0**2
    assert float(pair_distance_penalty(lattice, frac, mask, d_min)[0]) == pytest.approx(expected)
    uniform = torch.full((1, 4, 4), 2.5, dtype=torch.float64)
    assert float(pair_distance_penalty(lattice, frac, mask, uniform)[0]) == pytest.approx(
        float(min_distance_penalty(lattice, frac, mask, d_min=2.5)[0])
    )
    radii = covalent_radii(100)
    assert [round(float(radii[z - 1]), 2) for z in (1, 6, 8, 52, 83, 96, 100)] == [0.31, 0.76, 0.66, 1.38, 1.48,
                                                                                  1.69, 1.69]  # fmt: skip

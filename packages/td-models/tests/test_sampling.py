"""Sampling: Chern-number conditioning is real, order and options hold, progress is reported."""

from __future__ import annotations

import dataclasses
import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from td_models.batch import NULL_CHERN, collate, crystal_item, item_from_record
from td_models.config import ExperimentConfig, ModelConfig, PhysicsConfig
from td_models.exceptions import BatchError, ConfigError
from td_models.model import TopologicalDiffusionModel
from td_models.sampling import SamplingOptions, sample
from td_models.threads import torch_threads


def tiny_model(**physics) -> TopologicalDiffusionModel:
    torch.manual_seed(0)
    config = ExperimentConfig(
        model_config=ModelConfig(hidden_dim=16, num_layers=1, num_heads=2, num_steps=20, max_atoms=6),
        physics_config=PhysicsConfig(**physics),
    )
    return TopologicalDiffusionModel(config)


def spy_on_conditions(model) -> list[torch.Tensor]:
    """Record the Chern numbers every call of the condition embedding receives."""
    seen: list[torch.Tensor] = []
    real = model.conditions.forward

    def forward(topo, gap, chern, fe):
        seen.append(chern.clone())
        return real(topo, gap, chern, fe)

    model.conditions.forward = forward
    return seen


def test_training_feeds_the_records_chern_numbers():
    record = SimpleNamespace(
        id="haldane-1",
        lattice=4.0 * np.eye(3),
        frac_coords=np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]),
        atomic_numbers=np.array([6, 6]),
        labels={"topo_class": "chern", "chern": -1},
        properties={"band_gap": 0.2},
    )
    unlabelled = SimpleNamespace(**{**vars(record), "id": "plain", "labels": {}})
    batch = collate([item_from_record(record), item_from_record(unlabelled)])
    assert batch.chern.tolist() == [-1, NULL_CHERN]
    model = tiny_model()
    model.config = ExperimentConfig(
        model_config=model.config.model_config.replace(cond_drop_prob=0.0), physics_config=model.config.physics_config
    )
    seen = spy_on_conditions(model)
    model.training_losses(batch, generator=torch.Generator().manual_seed(0))
    assert seen[0].tolist() == [-1, NULL_CHERN]


def test_a_chern_label_the_model_cannot_hold_is_dropped_from_a_record_and_refused_in_an_item(caplog):
    record = SimpleNamespace(
        id="odd",
        lattice=4.0 * np.eye(3),
        frac_coords=np.zeros((1, 3)),
        atomic_numbers=np.array([6]),
        labels={"chern": 7},
        properties={},
    )
    with caplog.at_level(logging.WARNING, logger="td_models.batch"):
        assert item_from_record(record)["chern"] == NULL_CHERN
    assert "record odd: Chern number 7 is outside" in caplog.text
    with pytest.raises(BatchError, match=r"chern must be an integer in \[-4, 4\] or None, got 7"):
        crystal_item(4.0 * np.eye(3), np.zeros((1, 3)), [6], chern=7)


def test_sampling_class_chern_conditions_on_the_target_chern_number(caplog):
    model = tiny_model(target_chern_number=-2)
    seen = spy_on_conditions(model)
    with caplog.at_level(logging.INFO, logger="td_models.sampling"):
        crystals = model.sample(3, topo_class="chern", steps=2, seed=0, num_atoms=2)
    assert [c["conditions"]["chern"] for c in crystals] == [-2, -2, -2]
    assert [c["conditions"]["topo_class"] for c in crystals] == [2, 2, 2]
    assert seen[0].tolist() == [-2, -2, -2]  # the conditioned embedding got it ...
    assert seen[1].tolist() == [NULL_CHERN] * 3  # ... and the unconditioned one of guidance did not
    assert "target_chern_number = -2" in caplog.text and "no Chern head" in caplog.text
    # an explicit argument wins; another class without one carries no Chern number
    assert {c["conditions"]["chern"] for c in model.sample(2, topo_class="chern", chern=1, steps=2, num_atoms=2)} == {1}
    assert {c["conditions"]["chern"] for c in model.sample(2, topo_class="TI", steps=2, num_atoms=2)} == {None}
    with pytest.raises(ConfigError, match=r"chern must be an integer in \[-4, 4\] or None, got 9"):
        model.sample(1, topo_class="chern", chern=9, steps=2)


def test_the_chern_condition_changes_the_samples():
    model = tiny_model()
    for p in model.parameters():  # an untrained network with non-zero outputs
        torch.nn.init.normal_(p, std=0.1)
    a = model.sample(2, topo_class="chern", chern=1, steps=3, seed=0, num_atoms=3)
    b = model.sample(2, topo_class="chern", chern=-1, steps=3, seed=0, num_atoms=3)
    assert not np.allclose(a[0]["lattice"], b[0]["lattice"])


def test_crystals_come_back_in_the_requested_order_whatever_the_size_sorting():
    model = tiny_model()
    sizes = [5, 1, 3, 6, 2, 1, 4]
    crystals = model.sample(len(sizes), num_atoms=sizes, steps=2, seed=0, batch_size=3)
    assert [len(c["atomic_numbers"]) for c in crystals] == sizes
    again = model.sample(len(sizes), num_atoms=sizes, steps=2, seed=0, batch_size=3)
    for x, y in zip(crystals, again):  # the same request gives the same crystals
        np.testing.assert_array_equal(x["lattice"], y["lattice"])


def test_progress_callback_threads_and_default_steps():
    model = tiny_model()
    calls = []
    before = torch.get_num_threads()
    model.sample(5, steps=4, num_atoms=2, batch_size=2, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 12) for i in range(1, 13)]  # 3 batches x 4 steps
    model.sample(2, steps=2, num_atoms=2, threads=1)
    assert torch.get_num_threads() == before
    with pytest.raises(ConfigError, match="threads must be None or an integer >= 1, got 0"):
        model.sample(1, steps=2, threads=0)
    with pytest.raises(ConfigError, match="progress must be True, False or a callable"):
        model.sample(1, steps=2, progress="yes")
    # sampling_steps: the default number of reverse steps (the cpu-demo preset samples 100)
    assert ExperimentConfig.preset("cpu-demo").model_config.sampling_steps == 100
    short = TopologicalDiffusionModel(model.config.model_config.replace(sampling_steps=3))
    calls.clear()
    short.sample(1, num_atoms=2, progress=lambda done, total: calls.append(total))
    assert calls == [3, 3, 3]
    with pytest.raises(ConfigError, match="sampling_steps must be null or an integer in 1..num_steps"):
        ModelConfig(num_steps=20, sampling_steps=21)


def assert_same_crystals(first, second):
    assert len(first) == len(second)
    for x, y in zip(first, second):
        assert x["conditions"] == y["conditions"]
        for key in ("lattice", "frac_coords", "atomic_numbers"):
            np.testing.assert_array_equal(x[key], y[key])


def test_sampling_options_refuse_bad_values_naming_the_rule_and_the_value():
    cases = [
        ({"topo_class": "quantum"}, ConfigError, "topological_class must be one of"),
        ({"band_gap_range": (0.5, 0.1)}, ConfigError, r"band_gap_range must be a gap >= 0 .* got \(0.5, 0.1\)"),
        ({"band_gap_range": "wide"}, ConfigError, "band_gap_range must be a gap >= 0 .* got wide"),
        ({"chern": 1.5}, ConfigError, "chern must be an integer or None, got 1.5"),
        ({"formation_energy": float("nan")}, ConfigError, "formation_energy must be a finite number or None, got nan"),
        ({"num_atoms": 0}, BatchError, "num_atoms must be >= 1, got 0"),
        ({"num_atoms": [2, 2.5]}, BatchError, r"num_atoms must be None, an integer or a sequence of integers"),
        ({"steps": 0}, ConfigError, "steps must be None or an integer >= 1, got 0"),
        ({"guidance_scale": float("inf")}, ConfigError, "guidance_scale must be a finite number or None, got inf"),
        ({"corrector_steps": -1}, ConfigError, "corrector_steps must be >= 0, got -1"),
        ({"corrector_step_lr": 0.0}, ConfigError, "corrector_step_lr must be a finite number > 0, got 0.0"),
        ({"physics_guidance": -0.1}, ConfigError, r"physics_guidance must be a finite number >= 0 or None, got -0.1"),
        ({"min_distance": 0.0}, ConfigError, r"min_distance must be a finite number > 0 or None, got 0.0"),
        ({"volume_per_atom_range": (60.0, 5.0)}, ConfigError, r"volume_per_atom_range must be None or \(low, high\)"),
        ({"volume_per_atom_range": (5.0,)}, ConfigError, r"volume_per_atom_range must be None or \(low, high\)"),
        ({"property_guidance": -1.0}, ConfigError, "property_guidance must be a finite number >= 0, got -1.0"),
        ({"volume_guidance": -0.1}, ConfigError, "volume_guidance must be a finite number >= 0, got -0.1"),
        ({"volume_tolerance": 1.0}, ConfigError, "volume_tolerance must be a finite number > 1, got 1.0"),
        ({"covalent_guidance": -1.0}, ConfigError, "covalent_guidance must be a finite number >= 0, got -1.0"),
        ({"covalent_fraction": 0.0}, ConfigError, r"covalent_fraction must be a number in \(0, 1.5\] .* got 0.0"),
        ({"covalent_fraction": 2.0}, ConfigError, r"covalent_fraction must be a number in \(0, 1.5\] .* got 2.0"),
        ({"restrict_species": "yes"}, ConfigError, "restrict_species must be True or False, got 'yes'"),
        ({"seed": -1}, ConfigError, "seed must be an integer >= 0, got -1"),
        ({"batch_size": 0}, ConfigError, "batch_size must be >= 1, got 0"),
        ({"progress": "yes"}, ConfigError, "progress must be True, False or a callable"),
        ({"threads": 0}, ConfigError, "threads must be None or an integer >= 1, got 0"),
    ]
    for values, error, message in cases:
        with pytest.raises(error, match=message):
            SamplingOptions(**values)
    with pytest.raises(ConfigError, match=r"sampling options must be among .* got unknown \['temperature'\]"):
        SamplingOptions().replace(temperature=2.0)
    with pytest.raises(ConfigError, match=r"sampling options must be among .* got unknown \['temperature'\]"):
        tiny_model().sample(1, temperature=2.0)
    with pytest.raises(ConfigError, match="options must be a SamplingOptions or None, got dict"):
        tiny_model().sample(1, {"steps": 2})


def test_sampling_options_are_normalised_once_and_frozen():
    options = SamplingOptions(topo_class="TI", band_gap_range=0.2, num_atoms=np.array([2, 3]), seed=np.int64(4))
    assert options.topo_class == "z2_ti" and options.band_gap_range == (0.2, 0.2)
    assert options.num_atoms == (2, 3) and type(options.seed) is int
    assert options == SamplingOptions(topo_class="z2_ti", band_gap_range=(0.2, 0.2), num_atoms=(2, 3), seed=4)
    assert options.conditioned and not SamplingOptions().conditioned
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.seed = 5  # type: ignore[misc]
    assert options.replace(seed=5).seed == 5 and options.seed == 4


def test_options_and_keyword_overrides_give_the_same_crystals():
    model = tiny_model()
    for p in model.parameters():  # an untrained network with non-zero outputs
        torch.nn.init.normal_(p, std=0.1)
    keywords = {"topo_class": "TI", "band_gap_range": (0.1, 0.5), "steps": 3, "seed": 2, "num_atoms": [2, 3, 4]}
    by_keywords = model.sample(3, **keywords)
    assert_same_crystals(by_keywords, model.sample(3, SamplingOptions(**keywords)))
    assert_same_crystals(by_keywords, model.sample(3, options=SamplingOptions(**keywords)))
    base = SamplingOptions(topo_class="TI", steps=3, seed=9)  # overrides win over the options they are given with
    assert_same_crystals(by_keywords, model.sample(3, base, band_gap_range=(0.1, 0.5), seed=2, num_atoms=[2, 3, 4]))
    assert_same_crystals(
        by_keywords, sample(model, 3, base.replace(band_gap_range=(0.1, 0.5), seed=2, num_atoms=[2, 3, 4]))
    )


def test_default_options_are_what_sample_always_did():
    """Unset options take the model's configuration: full chain (or sampling_steps), guidance only when conditioned."""
    model = tiny_model()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)
    pc = model.config.physics_config
    explicit = {
        "steps": model.num_steps,
        "corrector_steps": 0,
        "corrector_step_lr": 1e-5,
        "physics_guidance": 0.01 * pc.constraint_weight,
        "property_guidance": 0.0,
        "restrict_species": True,
        "seed": 0,
        "batch_size": 256,
        "num_atoms": 3,
    }
    assert_same_crystals(model.sample(2, num_atoms=3), model.sample(2, **explicit))
    assert_same_crystals(model.sample(2, num_atoms=3), model.sample(2, **explicit, guidance_scale=1.0))
    # unconditioned, a guidance scale changes nothing; conditioned, unset means physics_config.guidance_scale
    assert_same_crystals(model.sample(2, num_atoms=3), model.sample(2, num_atoms=3, guidance_scale=4.0))
    conditioned = model.sample(2, num_atoms=3, topo_class="trivial")
    assert_same_crystals(conditioned, model.sample(2, **explicit, topo_class=0, guidance_scale=pc.guidance_scale))
    assert not np.allclose(
        conditioned[0]["lattice"], model.sample(2, num_atoms=3, topo_class="trivial", guidance_scale=1.0)[0]["lattice"]
    )


def test_the_physics_guidance_takes_its_bounds_from_the_options_or_the_model():
    """min_distance and volume_per_atom_range: unset, the model's physics_config (the same crystals as giving
    them); given, they move the crystals; guidance_defaults hands a PhysicsConfig's bounds to sample."""
    from td_models.config import PhysicsConfig
    from td_models.sampling import guidance_defaults

    model = tiny_model()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)
    pc = model.config.physics_config
    base = {"num_atoms": 3, "steps": 10, "physics_guidance": 0.5}
    unset = model.sample(2, **base)
    model_bounds = {"min_distance": pc.min_distance, "volume_per_atom_range": pc.volume_per_atom_range}
    assert_same_crystals(unset, model.sample(2, **base, **model_bounds))
    wider = model.sample(2, **base, min_distance=50.0)  # beyond every distance of these cells: the penalty acts
    assert not all(np.allclose(a["lattice"], b["lattice"]) for a, b in zip(unset, wider))
    other = PhysicsConfig(min_distance=1.25, volume_per_atom_range=(4.0, 30.0), constraint_weight=3.0)
    assert guidance_defaults(other) == {"guidance_scale": other.guidance_scale, "physics_guidance": 0.03,
                                        "min_distance": 1.25, "volume_per_atom_range": (4.0, 30.0)}  # fmt: skip


def test_torch_threads_restores_the_setting_even_when_the_block_raises():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="inside"):
        with torch_threads(1) as used:
            assert used == 1 == torch.get_num_threads()
            raise RuntimeError("inside")
    assert torch.get_num_threads() == before
    with torch_threads(None) as used:
        assert used == before
    with pytest.raises(ConfigError, match="threads must be None or an integer >= 1, got True"):
        with torch_threads(True):
            pass


def _fitted_tiny_model():
    """tiny_model with its normalisation fitted on cells of known composition: Si (20 A^3 per atom) and Au
    (17 A^3 per atom), one to four atoms, so that the element volumes are known."""
    model = tiny_model()
    items = []
    for z, per_atom in ((14, 20.0), (79, 17.0)):
        for n in (1, 2, 3, 4):
            a = (per_atom * n) ** (1 / 3)
            frac = [[k / n, 0.0, 0.0] for k in range(n)]
            items.append(crystal_item(a * np.eye(3), frac, [z] * n))
    model.fit_normalisation(items)
    return model


def test_the_volume_guidance_holds_cells_near_their_compositions_volume():
    """A model that has learnt nothing samples cells of any volume (here median e^6 times too large); the guidance
    (element volumes fitted on the training cells, held within the tolerance) brings them towards the volume their
    atoms should take, the same seed otherwise. Refused without fitted volumes (an old model file); 0 leaves it
    off."""
    model = _fitted_tiny_model()
    volumes = model.species_volume
    assert volumes[13] == pytest.approx(20.0, rel=0.02) and volumes[78] == pytest.approx(17.0, rel=0.02)

    def misfit(samples):
        out = []
        for s in samples:
            expected = float(volumes[np.asarray(s["atomic_numbers"]) - 1].sum())
            out.append(abs(np.log(abs(np.linalg.det(s["lattice"])) / expected)))
        return np.median(out)

    plain = model.sample(24, steps=20, seed=3)
    guided = model.sample(24, steps=20, seed=3, volume_guidance=2.0, volume_tolerance=1.1)
    # the untrained network's cells are e^6 times too large; 20 bounded steps (5% of the lattice each) take off e^1
    assert misfit(guided) < misfit(plain) - 0.8
    assert [s["atomic_numbers"].tolist() for s in plain] == [s["atomic_numbers"].tolist() for s in guided]
    off = model.sample(4, steps=5, seed=3, volume_guidance=0.0)
    assert all(np.allclose(a["lattice"], b["lattice"]) for a, b in zip(off, model.sample(4, steps=5, seed=3)))
    with pytest.raises(ConfigError, match="volume_guidance needs the element volumes fitted on the training crystals"):
        tiny_model().sample(2, steps=2, volume_guidance=0.2)


def test_the_covalent_guidance_pushes_apart_atoms_closer_than_their_radii_allow():
    """Two pairs 1.5 Angstrom apart in one 10 Angstrom cell: Bi-Bi (radii 1.48 + 1.48, so below 0.75 of their sum,
    2.22 A) and C-C (0.76 + 0.76: 1.14, so allowed). One guidance step on the clean estimate (t = 1, the network's
    outputs zero) moves the Bi atoms apart, symmetrically, and leaves the carbon atoms where they were."""
    from td_models.constraints import covalent_radii
    from td_models.sampling import _atom_radii, _physics_guidance

    model = tiny_model()
    radii_table = covalent_radii(model.config.model_config.num_species)
    frac = torch.tensor([[0.10, 0.1, 0.1], [0.25, 0.1, 0.1], [0.10, 0.6, 0.6], [0.25, 0.6, 0.6]], dtype=torch.float32)
    num_atoms = torch.tensor([4])
    batch_index = torch.zeros(4, dtype=torch.long)
    lattice = model.normalise_lattice(10.0 * torch.eye(3).unsqueeze(0), num_atoms)
    t = torch.ones(1, dtype=torch.long)
    t_atoms = t[batch_index]
    eps, score = torch.zeros_like(lattice), torch.zeros_like(frac)
    radii = radii_table[torch.tensor([82, 82, 5, 5])]  # Bi, Bi, C, C (atomic number - 1)
    bounds = (0.5, 1.0, 1e4)

    def clean(bonds):
        e, sc = _physics_guidance(model, lattice, frac, t, t_atoms, eps, score, num_atoms, batch_index, 0.0, bounds,
                                  None, bonds)  # fmt: skip
        return model.clean_estimate(lattice, frac, t, t_atoms, e, sc, num_atoms)[1]

    assert torch.allclose(clean(None), frac, atol=1e-6)  # no bond guidance, no penalty in the way: nothing moves
    moved = clean((radii, 0.75, 1.0)) - frac
    assert moved[0, 0] < -1e-3 and moved[1, 0] > 1e-3  # the Bi pair apart along x
    assert torch.allclose(moved[0], -moved[1], atol=1e-6)
    assert torch.allclose(moved[2:], torch.zeros(2, 3), atol=1e-7)  # C-C at 1.5 A is a bond
    assert moved.abs().max() <= 0.05 + 1e-6  # bounded like every guidance step

    # the radius of an unmasked atom is its element's; a masked atom's is expected under the predicted species
    mask_index = model.species_process.mask_index
    logits = torch.full((2, radii_table.shape[0]), -1e9)
    logits[:, 82] = 0.0
    logits[:, 5] = 0.0  # Bi or C with equal probability
    got = _atom_radii(model, torch.tensor([5, mask_index]), logits, radii_table)
    assert got.tolist() == pytest.approx([0.76, (0.76 + 1.48) / 2])


def test_the_covalent_guidance_off_leaves_the_samples_as_they_were():
    model = tiny_model()
    plain = model.sample(3, steps=4, seed=2)
    off = model.sample(3, steps=4, seed=2, covalent_guidance=0.0, covalent_fraction=0.9)
    on = model.sample(3, steps=4, seed=2, covalent_guidance=1.0)
    assert all(np.allclose(a["frac_coords"], b["frac_coords"]) for a, b in zip(plain, off))
    assert [s["atomic_numbers"].tolist() for s in on] == [s["atomic_numbers"].tolist() for s in plain]


def test_class_counts_draw_the_sizes_and_element_counts_of_the_asked_class(tmp_path, caplog):
    """fit_normalisation keeps (atoms, distinct elements) per class; class_counts samples with the class's own."""
    rng = np.random.default_rng(0)

    def item(species, topo_class):
        n = len(species)
        return crystal_item(4.0 * np.eye(3) * n ** (1 / 3), rng.random((n, 3)), species, topo_class=topo_class)

    items = [item([83, 83, 34, 34, 34], "z2_ti") for _ in range(3)] + [item([6, 6], "trivial") for _ in range(5)]
    items += [item([11, 17, 11, 17], None), item([83, 52, 52, 52], "z2_ti")]
    model = tiny_model()
    model.fit_normalisation(items)
    hist = model.class_element_count_weights
    assert hist.shape == (4, 7, 7) and float(hist.sum()) == 9.0  # the unlabelled crystal is in no class
    assert hist[1, 5, 2] == 3 and hist[1, 4, 2] == 1 and hist[0, 2, 1] == 5  # z2_ti is class 1, trivial 0
    crystals = model.sample(8, topo_class="z2_ti", class_counts=True, steps=2, charge_balance=False)
    sizes = sorted(len(c["atomic_numbers"]) for c in crystals)
    assert sizes == [4, 4, 5, 5, 5, 5, 5, 5]  # a stratified draw of 1:3 (4 and 5 atoms)
    assert all(len(set(c["atomic_numbers"].tolist())) == 2 for c in crystals)
    plain = model.sample(8, topo_class="z2_ti", steps=2, charge_balance=False)  # all training crystals' sizes
    assert {len(c["atomic_numbers"]) for c in plain} >= {2}
    with pytest.raises(ConfigError, match="class_counts .* needs a topo_class"):
        SamplingOptions(class_counts=True)
    with pytest.raises(BatchError, match="no training crystal labelled 'chern'"):
        model.sample(2, topo_class="chern", class_counts=True, steps=2)
    path = model.save(tmp_path / "model.pt")
    reloaded = TopologicalDiffusionModel.load(path)
    torch.testing.assert_close(reloaded.class_element_count_weights, hist)
    payload = torch.load(path, weights_only=True)  # a file from before the per-class histograms were kept
    del payload["state_dict"]["class_element_count_weights"]
    torch.save(payload, tmp_path / "old.pt")
    with caplog.at_level(logging.INFO, logger="td_models"):
        old = TopologicalDiffusionModel.load(tmp_path / "old.pt")
    assert "no per-class atom-count histograms" in caplog.text
    with pytest.raises(BatchError, match="no training crystal labelled 'z2_ti'"):
        old.sample(2, topo_class="z2_ti", class_counts=True, steps=2)

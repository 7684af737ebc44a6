"""Composition rules of sampling: element counts drawn with atom counts, the cap held, charge neutrality kept."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pytest
import torch

from td_models.batch import collate, crystal_item
from td_models.composition import (
    CompositionRule,
    draw_counts,
    element_count_histogram,
    stratified_draw,
)
from td_models.config import ExperimentConfig, ModelConfig
from td_models.constraints import common_oxidation_states, is_metal
from td_models.exceptions import ConfigError
from td_models.model import TopologicalDiffusionModel
from td_models.sampling import SamplingOptions

# Training cells: (atomic numbers); 1, 2 and 3 elements, 1 to 5 atoms.
TRAINING = [
    [11, 17],  # NaCl
    [12, 8],  # MgO
    [11, 11, 8],  # Na2O
    [26, 26, 8, 8, 8],  # Fe2O3
    [29],  # Cu
    [29, 29, 30, 30],  # Cu2Zn2 (metals only)
    [3, 26, 8, 8],  # LiFeO2
    [13, 13, 8, 8, 8],  # Al2O3
]


def crystals() -> list[dict]:
    rng = np.random.default_rng(0)
    return [crystal_item(4.0 * np.eye(3), rng.uniform(0, 1, (len(z), 3)), np.array(z)) for z in TRAINING]


def fitted_model(num_steps: int = 20) -> TopologicalDiffusionModel:
    torch.manual_seed(0)
    config = ExperimentConfig(
        model_config=ModelConfig(hidden_dim=16, num_layers=1, num_heads=2, num_steps=num_steps, max_atoms=6)
    )
    model = TopologicalDiffusionModel(config)
    for p in model.parameters():  # an untrained network with non-zero outputs: species nearly independent
        torch.nn.init.normal_(p, std=0.1)
    model.fit_normalisation(crystals())
    return model


def neutral(atomic_numbers) -> bool:
    """Brute-force neutrality: one element, metals only, or non-zero states (one per element) summing to 0."""
    zs, counts = np.unique(np.asarray(atomic_numbers), return_counts=True)
    if len(zs) == 1 or all(is_metal(z) for z in zs):
        return True
    table = common_oxidation_states()
    return any(
        sum(c * s for c, s in zip(counts, states)) == 0
        for states in itertools.product(*([s for s in table[int(z)] if s != 0] for z in zs))
    )


def test_the_histogram_counts_crystals_by_atoms_and_distinct_elements():
    hist = element_count_histogram(collate(crystals()), max_atoms=6)
    expected = np.zeros((7, 7))
    for z in TRAINING:
        expected[len(z), len(set(z))] += 1
    np.testing.assert_array_equal(hist.numpy(), expected)


def test_a_stratified_draw_keeps_every_cumulative_share_within_one_over_n():
    weights = np.array([0.0, 3.0, 10.0, 1.0, 0.0, 6.0])
    cdf = np.cumsum(weights) / weights.sum()
    for seed in range(20):
        n = 7 + seed
        drawn = stratified_draw(weights, n, np.random.default_rng(seed))
        assert drawn.shape == (n,) and set(drawn.tolist()) <= {1, 2, 3, 5}  # never a zero-weight value
        share = np.cumsum(np.bincount(drawn, minlength=len(weights))) / n
        assert np.all(np.abs(share - cdf) <= 1.0 / n + 1e-12)
    # unbiased: one crystal at a time follows the histogram
    singles = np.array([stratified_draw(weights, 1, np.random.default_rng(s))[0] for s in range(4000)])
    np.testing.assert_allclose(np.bincount(singles, minlength=6) / 4000, weights / weights.sum(), atol=0.03)


def test_element_counts_come_from_the_row_of_the_atom_count_and_never_exceed_it():
    hist = element_count_histogram(collate(crystals()), max_atoms=6).numpy()
    atoms = hist.sum(axis=1)
    n_atoms, n_elements = draw_counts(atoms, hist, 200, None, np.random.default_rng(1))
    assert all(hist[n, k] > 0 for n, k in zip(n_atoms, n_elements))
    for n in (5, 13, 64):  # the element counts' cumulative shares are within 1/n of the training data's
        _, n_elements = draw_counts(atoms, hist, n, None, np.random.default_rng(n))
        share = np.cumsum(np.bincount(n_elements, minlength=7)) / n
        assert np.all(np.abs(share - np.cumsum(hist.sum(axis=0)) / hist.sum()) <= 1 / n + 1e-12)
    given = np.array([5, 5, 5, 5, 6, 1])  # 6 atoms: no training cell; the element counts of cells up to 6 atoms
    n_atoms, n_elements = draw_counts(atoms, hist, 6, given, np.random.default_rng(1))
    np.testing.assert_array_equal(n_atoms, given)
    assert set(n_elements[:4].tolist()) <= {2, 3} and 1 <= n_elements[4] <= 3 and n_elements[5] == 1
    n_atoms, n_elements = draw_counts(atoms, None, 5, None, np.random.default_rng(1))
    assert (n_elements == 0).all() and all(atoms[n] > 0 for n in n_atoms)


def test_the_rule_holds_the_element_count_exactly():
    rule = CompositionRule(np.ones(100, dtype=bool), charge_balance=False)
    fe, o = 25, 7  # species indices (Z - 1)
    # two elements present, target 2: only they
    assert np.flatnonzero(rule.choices({fe: 1, o: 1}, remaining=3, target=2, charge=False)).tolist() == [o, fe]
    # one present, target 2, the last atom: must be new
    assert not rule.choices({fe: 2}, remaining=0, target=2, charge=False)[fe]
    assert rule.choices({fe: 2}, remaining=0, target=2, charge=False).sum() == 99
    # target 0: free
    assert rule.choices({fe: 1, o: 1}, remaining=0, target=0, charge=False).all()


def test_the_rule_keeps_a_neutral_completion_reachable():
    li, o, na, cl, fe, cu, zn = 2, 7, 10, 16, 25, 28, 29  # species indices (Z - 1)
    rule = CompositionRule(np.isin(np.arange(100), [o, na, cl, fe]), charge_balance=True)
    # Na2 + the last atom, two elements: Na2O, or the alloy Na2Fe (metals only pass, as in CDVAE); not Na2Cl
    assert np.flatnonzero(rule.choices({na: 2}, remaining=0, target=2, charge=True)).tolist() == [o, fe]
    assert rule.choices({na: 2}, remaining=0, target=2, charge=False)[cl]
    # Fe2O2 + the last atom: Fe2O3 (Fe3+), not Fe3O2
    assert np.flatnonzero(rule.choices({fe: 2, o: 2}, remaining=0, target=2, charge=True)).tolist() == [o]
    # looking ahead: Li then Fe leaves LiFeO2 reachable with two atoms left, not with one (LiFeO is not neutral)
    rule = CompositionRule(np.isin(np.arange(100), [li, o, fe]), charge_balance=True)
    assert rule.choices({li: 1}, remaining=2, target=3, charge=True)[fe]
    assert not rule.choices({li: 1}, remaining=1, target=3, charge=True).any()
    assert not rule.choices({}, remaining=2, target=3, charge=True).any()  # no neutral 3-atom, 3-element cell
    # metals only: Cu + Zn is an alloy
    rule = CompositionRule(np.isin(np.arange(100), [o, cu, zn]), charge_balance=True)
    assert np.flatnonzero(rule.choices({cu: 1}, remaining=0, target=2, charge=True)).tolist() == [o, zn]


def test_sampling_keeps_each_crystal_to_its_drawn_element_count_and_charge_neutral():
    model = fitted_model()
    samples = model.sample(48, steps=10, seed=3)
    largest = max(len(set(z)) for z in TRAINING)
    counts = [len(set(s["atomic_numbers"].tolist())) for s in samples]
    assert max(counts) <= largest
    seen = {z for cell in TRAINING for z in cell}
    assert all(set(s["atomic_numbers"].tolist()) <= seen for s in samples)
    assert all(neutral(s["atomic_numbers"]) for s in samples)
    # each crystal has exactly the element count drawn with its atom count (a stratified draw of the histogram)
    hist = model.element_count_weights.double().numpy()
    atoms, elements = draw_counts(hist.sum(axis=1), hist, 48, None, np.random.default_rng([3, 0x5EED]))
    np.testing.assert_array_equal([len(s["atomic_numbers"]) for s in samples], atoms)
    np.testing.assert_array_equal(counts, elements)


def test_the_network_alone_makes_more_elements_than_the_training_data():
    """The control: the same untrained model without the rules gives cells with more elements than any training cell."""
    model = fitted_model()
    free = model.sample(48, steps=10, seed=3, element_counts=False, charge_balance=False)
    assert max(len(set(s["atomic_numbers"].tolist())) for s in free) > max(len(set(z)) for z in TRAINING)


def test_composition_rules_are_deterministic_under_a_seed():
    model = fitted_model()
    a, b = model.sample(12, steps=8, seed=5), model.sample(12, steps=8, seed=5)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["atomic_numbers"], y["atomic_numbers"])
        np.testing.assert_allclose(x["lattice"], y["lattice"])
    c = model.sample(12, steps=8, seed=6)
    assert any(not np.array_equal(x["atomic_numbers"], y["atomic_numbers"]) for x, y in zip(a, c))


def _file_without(model, buffer: str, path):
    """``model`` saved at ``path`` without ``buffer``: a file written before td-models kept it."""
    model.save(path)
    payload = torch.load(path, weights_only=True)
    del payload["state_dict"][buffer]
    torch.save(payload, path)
    return path


def test_a_model_fitted_before_the_histogram_was_kept_loads_and_samples_with_free_element_counts(tmp_path, caplog):
    path = _file_without(fitted_model(), "element_count_weights", tmp_path / "model.pt")
    with caplog.at_level(logging.INFO, logger="td_models"):
        old = TopologicalDiffusionModel.load(path)
        samples = old.sample(6, steps=4, seed=0)
    assert float(old.element_count_weights.sum()) == 0
    assert "no element-count histogram" in caplog.text
    assert len(samples) == 6 and all(neutral(s["atomic_numbers"]) for s in samples)


def test_a_model_file_without_element_volumes_loads_and_refuses_the_volume_guidance(tmp_path, caplog):
    model = fitted_model()
    assert float(model.species_volume.max()) > 0
    with caplog.at_level(logging.INFO, logger="td_models"):
        old = TopologicalDiffusionModel.load(_file_without(model, "species_volume", tmp_path / "model.pt"))
    assert float(old.species_volume.abs().sum()) == 0 and "no fitted element volumes" in caplog.text
    assert model.has_element_volumes and not old.has_element_volumes
    assert len(old.sample(2, steps=2, seed=0)) == 2
    with pytest.raises(ConfigError, match="volume_guidance needs the element volumes fitted on the training crystals"):
        old.sample(2, steps=2, volume_guidance=0.2)


def test_the_new_options_are_checked():
    with pytest.raises(ConfigError, match="element_counts must be True or False, got 'yes'"):
        SamplingOptions(element_counts="yes")
    with pytest.raises(ConfigError, match="charge_balance must be True or False, got 1"):
        SamplingOptions(charge_balance=1)
    assert SamplingOptions(element_counts=np.bool_(False)).element_counts is False


def test_the_rule_agrees_with_a_brute_force_search_over_completions():
    allowed = [7, 8, 10, 16, 25, 29, 5, 9]  # O, F, Na, Cl, Fe, Zn, C, Ne (species indices)
    rule = CompositionRule(np.isin(np.arange(100), allowed), charge_balance=True)
    rng = np.random.default_rng(0)
    for _ in range(60):
        start = rng.choice(allowed, size=int(rng.integers(1, 4))).tolist()
        counts = {int(s): start.count(s) for s in set(start)}
        remaining = int(rng.integers(0, 3))
        for missing in range(remaining + 1):
            brute = any(
                len(set(start) | set(extra)) == len(counts) + missing and neutral([s + 1 for s in start + list(extra)])
                for extra in itertools.product(allowed, repeat=remaining)
            )
            assert rule.completable(counts, remaining, missing) == brute, (counts, remaining, missing)

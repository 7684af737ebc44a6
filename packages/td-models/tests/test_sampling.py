"""Sampling: Chern-number conditioning is real, order and options hold, progress is reported."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from td_models.batch import NULL_CHERN, collate, crystal_item, item_from_record
from td_models.config import ExperimentConfig, ModelConfig, PhysicsConfig
from td_models.exceptions import BatchError, ConfigError
from td_models.model import TopologicalDiffusionModel


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

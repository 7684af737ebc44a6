"""The model batch contract between td-data and td-models (the user guide's ``pytest tests/test_models.py``).

td-models never sees a pymatgen object: td-data records become model items (plain arrays and condition labels),
items become flat batches of the shapes in DESIGN.md ("Model batch"), a model shrunk from the real configuration
trains one batch through the real Trainer, and what it samples converts back into td-data records. td-models'
own unit tests live in ``packages/td-models/tests``.

Runs with pytest or as a script: ``python tests/test_models.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from topological_diffusion.models import TOPO_CLASSES, ExperimentConfig, TopologicalDiffusionModel

CLASSES_AND_CHERN = [("trivial", None), ("z2_ti", None), ("chern", 1), ("semimetal_or_metal", None), (None, None)]

# The real configuration blocks (conf/base/parameters_train.yml's names), shrunk: one layer, 16 channels, 10 steps.
SHRUNK = {
    "model_config": {"num_species": 100, "hidden_dim": 16, "num_topo_classes": 4, "num_layers": 1, "num_heads": 2,
                     "max_atoms": 8, "num_steps": 10},
    "physics_config": {"topological_class": "TI", "band_gap_range": [0.1, 0.5]},
    "training_config": {"batch_size": 8, "learning_rate": 1e-3, "max_epochs": 1, "warmup_epochs": 0,
                        "checkpoint_every": 1, "keep_checkpoints": 1, "seed": 0},
}  # fmt: skip


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one torch thread, immune to contention on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def records():
    """Eight synthetic td-data crystals, labelled as the label pipeline labels them (one of each class, some not)."""
    from td_data import SyntheticDatasetGenerator

    out = []
    for i, record in enumerate(SyntheticDatasetGenerator(seed=0, max_atoms=8).generate_dataset(8)):
        topo_class, chern = CLASSES_AND_CHERN[i % len(CLASSES_AND_CHERN)]
        if topo_class is not None:
            record = record.with_labels(topo_class=topo_class, chern=chern, confidence=1.0)
            record = record.with_properties(band_gap=0.0 if topo_class == "semimetal_or_metal" else 0.2 + 0.1 * i)
        out.append(record)
    return out


def test_records_become_items_with_their_conditions(records):
    from td_models.batch import NULL_CHERN, item_from_record

    for record in records:
        item = item_from_record(record)
        np.testing.assert_array_equal(item["lattice"], record.lattice)
        np.testing.assert_array_equal(item["frac_coords"], record.frac_coords)
        np.testing.assert_array_equal(item["atomic_numbers"], record.atomic_numbers)
        topo_class = record.labels.get("topo_class")
        assert item["topo_class"] == (-1 if topo_class is None else TOPO_CLASSES.index(topo_class))
        chern = record.labels.get("chern")
        assert item["chern"] == (NULL_CHERN if chern is None else chern)
        gap = record.properties.get("band_gap")
        assert (math.isnan(item["band_gap"]) and gap is None) or item["band_gap"] == gap
        assert math.isnan(item["formation_energy"])  # no property, no condition: never a made-up zero


def test_items_collate_into_the_design_batch(records):
    from td_models import collate
    from td_models.batch import item_from_record

    batch = collate([item_from_record(r) for r in records])
    n = [r.num_atoms for r in records]
    total = sum(n)
    assert batch.lattice.shape == (len(records), 3, 3) and batch.lattice.dtype.is_floating_point
    assert batch.frac_coords.shape == (total, 3)
    assert batch.atom_types.shape == (total,) and batch.num_atoms.tolist() == n
    assert batch.batch_index.tolist() == [i for i, k in enumerate(n) for _ in range(k)]
    assert torch.equal(batch.atom_types, torch.as_tensor(np.concatenate([r.atomic_numbers for r in records])))
    for name in ("topo_class", "band_gap", "formation_energy", "chern"):
        assert getattr(batch, name).shape == (len(records),), name
    assert batch.topo_class.tolist() == [
        -1 if r.labels.get("topo_class") is None else TOPO_CLASSES.index(r.labels["topo_class"]) for r in records
    ]


def test_a_record_outside_the_model_species_is_refused_by_name():
    from td_data import CrystalRecord
    from td_models.batch import item_from_record
    from td_models.exceptions import BatchError

    nobelium = CrystalRecord(4.0 * np.eye(3), [[0, 0, 0]], [102], id="No")  # a valid record, Z > num_species
    with pytest.raises(BatchError, match=r"atomic_numbers must be in 1\.\.100, got 102\.\.102"):
        item_from_record(nobelium, num_species=100)
    assert issubclass(BatchError, ValueError)


def test_shrunk_model_trains_one_batch_and_samples_crystals_that_become_records(records, tmp_path):
    from td_data import CrystalRecord
    from td_models.batch import item_from_record
    from td_models.training import Trainer

    config = ExperimentConfig.from_dict(SHRUNK)
    items = [item_from_record(r, config.model_config.num_species) for r in records]
    trainer = Trainer(config, items, output_dir=tmp_path / "run", progress_bar=False, tensorboard=False)
    result = trainer.fit()
    assert result.epochs_completed == 1 and result.global_step == 1  # 8 crystals, batch_size 8: one batch
    assert len(result.step_losses) == 1 and math.isfinite(result.step_losses[0]) and result.nonfinite_steps == 0
    model = TopologicalDiffusionModel.load(result.final_model)
    assert model.config == config  # the resolved configuration travels inside the checkpoint

    samples = model.sample(4, topo_class="TI", band_gap_range=(0.1, 0.5), steps=5, seed=0)
    again = model.sample(4, topo_class="TI", band_gap_range=(0.1, 0.5), steps=5, seed=0)
    assert len(samples) == 4
    back = []
    for i, (sample, repeat) in enumerate(zip(samples, again, strict=True)):
        n = len(sample["atomic_numbers"])
        assert sample["lattice"].shape == (3, 3) and sample["frac_coords"].shape == (n, 3)
        assert 1 <= n <= config.model_config.max_atoms
        assert sample["atomic_numbers"].min() >= 1 and sample["atomic_numbers"].max() <= 100
        assert sample["frac_coords"].min() >= 0 and sample["frac_coords"].max() < 1
        assert sample["conditions"]["topo_class"] in ("z2_ti", TOPO_CLASSES.index("z2_ti"))
        assert 0.1 <= sample["conditions"]["band_gap"] <= 0.5
        for key in ("lattice", "frac_coords", "atomic_numbers"):
            np.testing.assert_array_equal(sample[key], repeat[key])  # same seed, same crystals
        record = CrystalRecord(sample["lattice"], sample["frac_coords"], sample["atomic_numbers"], id=f"cand-{i}")
        item = item_from_record(record)  # and back: a generated crystal is a valid model item again
        np.testing.assert_allclose(item["lattice"], sample["lattice"])
        np.testing.assert_array_equal(item["atomic_numbers"], sample["atomic_numbers"])
        back.append(item)
    predictions = model.predict_properties(back)
    assert len(predictions.topo_class) == 4 and set(predictions.topo_class) <= set(TOPO_CLASSES)
    probabilities = np.asarray(predictions.topo_probabilities)
    assert probabilities.shape == (4, len(TOPO_CLASSES)) and np.allclose(probabilities.sum(axis=1), 1.0)


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-v"]))

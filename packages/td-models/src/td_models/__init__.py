"""td-models: a topology-conditioned crystal diffusion model with property heads.

Plain arrays in, plain arrays out: lattice rows in Angstrom, fractional coordinates, atomic numbers.
No pymatgen here; td-data turns the arrays into records and CIF files.

>>> from td_models import ExperimentConfig, TopologicalDiffusionModel
>>> model = TopologicalDiffusionModel(ExperimentConfig.preset("cpu-demo"))
>>> crystal = model.sample(1, topo_class="TI", band_gap_range=(0.1, 0.5), steps=4, seed=0)[0]
>>> sorted(crystal)
['atomic_numbers', 'conditions', 'frac_coords', 'lattice']
"""

from __future__ import annotations

__version__ = "0.1.0"

_EXPORTS = {
    "ExperimentConfig": "td_models.config",
    "ModelConfig": "td_models.config",
    "PhysicsConfig": "td_models.config",
    "TrainingConfig": "td_models.config",
    "TOPO_CLASSES": "td_models.config",
    "load_config": "td_models.config",
    "save_config": "td_models.config",
    "CrystalBatch": "td_models.batch",
    "CrystalDataset": "td_models.batch",
    "collate": "td_models.batch",
    "crystal_item": "td_models.batch",
    "save_crystals": "td_models.crystal_file",
    "load_crystals": "td_models.crystal_file",
    "TopologicalDiffusionModel": "td_models.model",
    "PropertyPredictions": "td_models.model",
    "SamplePredictions": "td_models.model",
    "SamplingOptions": "td_models.sampling",
    "torch_threads": "td_models.threads",
    "TopologicalTransformer": "td_models.denoiser",
    "PropertyHeads": "td_models.heads",
    "ConditionEmbedding": "td_models.conditioning",
    "Trainer": "td_models.training",
    "TrainingResult": "td_models.training",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    """Import on first use, so ``import td_models`` stays light."""
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'td_models' has no attribute {name!r}")

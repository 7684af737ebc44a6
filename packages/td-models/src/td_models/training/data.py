"""Small pieces between the data set and the loop: indexed loading, seeds, the DDP-facing loss module."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from td_models.batch import CrystalBatch, CrystalDataset, collate
from td_models.exceptions import ConfigError
from td_models.model import TopologicalDiffusionModel
from td_models.training.sampler import ShardedBatchSampler

__all__ = ["LossModule", "as_dataset", "derived_seed", "make_loader"]


class LossModule(nn.Module):
    """Makes ``training_losses`` the ``forward`` that DDP and Accelerate's autocast wrap.

    DDP synchronises gradients only for what runs through ``forward``, and Accelerate puts the
    mixed-precision autocast around ``forward``; the model's own API is ``training_losses``.
    """

    def __init__(self, model: TopologicalDiffusionModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, batch: CrystalBatch, physics: bool, conditioning: bool, generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        return self.model.training_losses(batch, physics=physics, conditioning=conditioning, generator=generator)


class _IndexedDataset(torch.utils.data.Dataset):
    def __init__(self, dataset: CrystalDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[int, dict[str, Any]]:
        return index, self.dataset[index]


def _collate_indexed(items: Sequence[tuple[int, dict[str, Any]]]) -> tuple[list[int], CrystalBatch]:
    return [i for i, _ in items], collate([item for _, item in items])


def make_loader(dataset: CrystalDataset, sampler: ShardedBatchSampler, num_workers: int, seed: int):
    """A DataLoader yielding ``(indices, CrystalBatch)`` in the sampler's order.

    It gets its own generator, so creating it never draws from the global torch RNG.
    """
    return torch.utils.data.DataLoader(
        _IndexedDataset(dataset),
        batch_sampler=sampler,
        collate_fn=_collate_indexed,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),
    )


def as_dataset(data: CrystalDataset | Sequence[dict[str, Any]], num_species: int, name: str) -> CrystalDataset:
    """``data`` as a validated, non-empty :class:`CrystalDataset`."""
    dataset = data if isinstance(data, CrystalDataset) else CrystalDataset(list(data), num_species=num_species)
    if len(dataset) == 0:
        raise ConfigError(f"{name} must hold at least one crystal, got none")
    return dataset


def derived_seed(*parts: int) -> int:
    """A 63-bit seed from integers (``SeedSequence``), e.g. ``(seed, rank, stream)``."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)

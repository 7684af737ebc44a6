"""Shared test settings for td-models."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: one intra-op thread is fastest and immune to OpenMP contention on busy machines
    (pytest-xdist already runs one worker per core)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

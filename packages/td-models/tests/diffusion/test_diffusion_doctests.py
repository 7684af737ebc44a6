"""Run the examples in the docstrings of td_models.diffusion."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "td_models.diffusion",
    "td_models.diffusion.schedules",
    "td_models.diffusion.continuous",
    "td_models.diffusion.torus",
    "td_models.diffusion.discrete",
    "td_models.diffusion.timesteps",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0

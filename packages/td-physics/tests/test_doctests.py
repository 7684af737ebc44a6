"""Run the examples in every td_physics docstring (kedro-plugins style: documented examples are tested)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import td_physics

MODULES = sorted(name for _, name, _ in pkgutil.walk_packages(td_physics.__path__, prefix="td_physics."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0

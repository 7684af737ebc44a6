"""Run the examples in every td_models docstring and in the README."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import td_models

MODULES = sorted(
    name
    for _, name, _ in pkgutil.walk_packages(td_models.__path__, prefix="td_models.")
    if not name.startswith("td_models.diffusion")  # tests/diffusion runs those
)


@pytest.mark.parametrize("name", ["td_models", *MODULES])
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_readme_example_runs():
    readme = Path(__file__).resolve().parents[1] / "README.md"
    test = doctest.DocTestParser().get_doctest(readme.read_text(), {}, "README", str(readme), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert test.examples and runner.failures == 0

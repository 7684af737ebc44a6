"""The examples in the README and the module docstrings run as doctests."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

MODULES = ["td_hpc", "td_hpc.validation", "td_hpc.presets", "td_hpc.scripts", "td_hpc.slurm", "td_hpc.chain"]


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_readme_doctests():
    readme = Path(__file__).resolve().parents[1] / "README.md"
    test = doctest.DocTestParser().get_doctest(readme.read_text(), {}, "README", str(readme), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    runner.run(test)
    assert runner.failures == 0 and runner.tries > 0


def test_importable_without_td_data(monkeypatch):
    import subprocess
    import sys

    code = "import sys; sys.modules['td_data'] = None; import td_hpc; print(td_hpc.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == importlib.import_module("td_hpc").__version__

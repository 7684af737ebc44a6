"""The user guide's ``topological_diffusion.models`` / ``.training`` imports are td_models' objects."""

from __future__ import annotations

import importlib

import pytest

import td_models
import td_models.training


def test_facade_re_exports_td_models():
    facade = importlib.import_module("topological_diffusion.models")
    assert sorted(facade.__all__) == sorted(td_models.__all__)
    for name in facade.__all__:
        assert getattr(facade, name) is getattr(td_models, name), name
    assert set(facade.__all__) <= set(dir(facade))
    assert facade.__doc__ and "user guide's import path for td_models" in facade.__doc__
    with pytest.raises(AttributeError, match="topological_diffusion.models"):
        facade.not_a_name  # noqa: B018


def test_training_facade_re_exports_td_models_training():
    facade = importlib.import_module("topological_diffusion.training")
    assert sorted(facade.__all__) == sorted(td_models.training.__all__)
    for name in facade.__all__:
        assert getattr(facade, name) is getattr(td_models.training, name), name
    assert facade.__doc__ and "user guide's import path for td_models.training" in facade.__doc__


def test_guide_imports_work():
    from topological_diffusion.models import ExperimentConfig, TopologicalDiffusionModel
    from topological_diffusion.training import Trainer

    assert TopologicalDiffusionModel is td_models.TopologicalDiffusionModel
    assert ExperimentConfig is td_models.ExperimentConfig
    assert Trainer is td_models.training.Trainer


def test_models_facade_stays_lazy():
    import subprocess
    import sys

    code = "import sys, topological_diffusion.models; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

"""The user guide's ``topological_diffusion.data`` imports are td_data's objects."""

from __future__ import annotations

import importlib

import pytest

import td_data


def test_guide_imports_work():
    from topological_diffusion.data import SyntheticDatasetGenerator, load_materials_database

    assert load_materials_database is td_data.load_materials_database
    assert SyntheticDatasetGenerator is td_data.SyntheticDatasetGenerator
    from td_data.readers import load_materials_database as direct
    from td_data.synthetic import SyntheticDatasetGenerator as direct_generator

    assert load_materials_database is direct
    assert SyntheticDatasetGenerator is direct_generator


def test_facade_re_exports_td_data():
    facade = importlib.import_module("topological_diffusion.data")
    assert sorted(facade.__all__) == sorted(td_data.__all__)
    for name in facade.__all__:
        assert getattr(facade, name) is getattr(td_data, name), name
    assert set(facade.__all__) <= set(dir(facade))
    assert facade.__doc__ and "user guide's import path for td_data" in facade.__doc__


def test_unknown_names_raise_attribute_error():
    facade = importlib.import_module("topological_diffusion.data")
    with pytest.raises(AttributeError, match="topological_diffusion.data"):
        facade.not_a_name  # noqa: B018

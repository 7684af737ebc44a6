"""Tests of the tight-binding data-set generator (random Haldane, Kane-Mele and BHZ models)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from td_physics.datasets import TBSample, TightBindingDatasetGenerator
from td_physics.exceptions import ModelDefinitionError


@pytest.fixture(scope="module")
def tb_samples():
    return TightBindingDatasetGenerator(seed=0).generate(60)


def _closed_form(s: TBSample) -> int:
    p = s.parameters
    if s.family == "haldane":
        mc = 3 * math.sqrt(3) * abs(p["t2"] * math.sin(p["phi"]))
        return int(-np.sign(math.sin(p["phi"]))) if abs(p["m"]) < mc else 0
    if s.family == "kane_mele":
        assert p["lambda_r"] == 0.0
        return int(abs(p["lambda_v"]) < 3 * math.sqrt(3) * p["lambda_so"])
    assert p["B"] == 1.0 and p["a"] == 1.0
    return int(0 < p["M"] < 8 and p["M"] != 4)


def test_tb_values_equal_closed_forms(tb_samples):
    assert {s.family for s in tb_samples} == {"haldane", "kane_mele", "bhz"}
    for s in tb_samples:
        assert s.converged, s
        assert s.expected == _closed_form(s)
        assert s.value == s.expected, s
        assert s.agrees is True
        assert s.min_gap > 0
        assert s.invariant == ("chern" if s.family == "haldane" else "z2")
    values = {(s.family, s.value) for s in tb_samples}
    assert {("haldane", 0), ("kane_mele", 0), ("kane_mele", 1), ("bhz", 0), ("bhz", 1)} <= values
    assert ("haldane", 1) in values or ("haldane", -1) in values


def test_tb_deterministic_and_margin(tb_samples):
    again = TightBindingDatasetGenerator(seed=0).generate(60)
    assert [(s.family, dict(s.parameters), s.value) for s in again] == [
        (s.family, dict(s.parameters), s.value) for s in tb_samples
    ]
    other = TightBindingDatasetGenerator(seed=1).generate(5)
    assert [dict(s.parameters) for s in other] != [dict(s.parameters) for s in tb_samples[:5]]
    for s in tb_samples:
        p = s.parameters
        if s.family == "kane_mele":
            crit = 3 * math.sqrt(3) * p["lambda_so"]
            assert abs(abs(p["lambda_v"]) - crit) >= 0.01 * crit
        elif s.family == "bhz":
            assert min(abs(p["M"]), abs(p["M"] - 4), abs(p["M"] - 8)) >= 0.04


def test_tb_sample_is_frozen_and_errors(tb_samples):
    s = tb_samples[0]
    with pytest.raises(AttributeError):
        s.value = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.parameters["m"] = 1.0  # type: ignore[index]
    with pytest.raises(ModelDefinitionError, match="families"):
        TightBindingDatasetGenerator(families=("qwz",))
    with pytest.raises(ModelDefinitionError, match="boundary_margin"):
        TightBindingDatasetGenerator(boundary_margin=0.7)

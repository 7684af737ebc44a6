"""td_physics.jsonable.to_jsonable: the one conversion to JSON values, strict (stored data) or not (reports)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from td_physics.exceptions import FileFormatError
from td_physics.jsonable import to_jsonable


class _OwnError(ValueError):
    pass


def test_numpy_scalars_arrays_and_tuples_become_plain_values():
    value = {"a": np.float32(0.5), "b": np.arange(3), "c": (1, np.int64(2)), "d": [True, None, "x"], "e": np.bool_(1)}
    out = to_jsonable(value)
    assert out == {"a": 0.5, "b": [0, 1, 2], "c": [1, 2], "d": [True, None, "x"], "e": True}
    assert type(out["a"]) is float and type(out["b"][0]) is int and type(out["e"]) is bool
    assert json.loads(json.dumps(out)) == out


def test_the_input_is_not_changed():
    value = {"k": [np.float64(1.0)]}
    to_jsonable(value)
    assert isinstance(value["k"][0], np.float64)


@pytest.mark.parametrize("bad", [math.nan, math.inf, np.float64(-np.inf)])
def test_strict_refuses_non_finite_numbers_naming_where(bad):
    with pytest.raises(FileFormatError, match=r"metadata\['gap'\]\[1\] must be a finite number .* got"):
        to_jsonable({"gap": [0.0, bad]}, where="metadata")


def test_strict_refuses_other_keys_and_types_with_the_callers_error():
    with pytest.raises(_OwnError, match=r"labels keys must be strings \(JSON objects\), got key 1"):
        to_jsonable({1: "a"}, where="labels", error=_OwnError)
    with pytest.raises(_OwnError, match=r"labels\['p'\] must hold JSON values .* got PosixPath"):
        to_jsonable({"p": Path("/tmp")}, where="labels", error=_OwnError)
    with pytest.raises(FileFormatError, match=r"value\[0\] must hold JSON values .* got complex"):
        to_jsonable(np.array([1 + 2j]))


def test_lenient_rules_for_reports():
    out = to_jsonable({1: math.nan, "loss": [np.float32("inf"), 0.25], "path": Path("a/b"), "t": (1,)}, strict=False)
    assert out == {"1": None, "loss": [None, 0.25], "path": "a/b", "t": [1]}
    with pytest.raises(FileFormatError, match="must hold JSON values .* got object"):
        to_jsonable({"x": object()}, strict=False)

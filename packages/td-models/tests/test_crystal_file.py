"""td_models.crystal_file: crystals in one pickle-free .npz, exact round trips and clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from td_models import ExperimentConfig, TopologicalDiffusionModel, crystal_item, load_crystals, save_crystals
from td_models.crystal_file import CrystalFileError

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
optional_number = st.one_of(st.none(), st.integers(-5, 5), finite)


@st.composite
def crystals(draw):
    n = draw(st.integers(1, 6))
    return {
        "lattice": np.array(draw(st.lists(finite, min_size=9, max_size=9))).reshape(3, 3),
        "frac_coords": np.array(
            draw(st.lists(st.floats(0, 1, exclude_max=True), min_size=3 * n, max_size=3 * n))
        ).reshape(n, 3),
        "atomic_numbers": np.array(draw(st.lists(st.integers(1, 100), min_size=n, max_size=n))),
    }


@settings(max_examples=40, deadline=None)
@given(st.lists(crystals(), min_size=1, max_size=5), st.data())
def test_round_trip_is_exact(tmp_path_factory, batch, data):
    kinds = {"gap": data.draw(st.sampled_from(["int", "float", "str"]))}
    for i, c in enumerate(batch):
        if kinds["gap"] == "int":
            c["gap"] = data.draw(st.one_of(st.none(), st.integers(-5, 5)))
        elif kinds["gap"] == "float":
            c["gap"] = data.draw(st.one_of(st.none(), finite))
        else:
            c["gap"] = data.draw(st.one_of(st.none(), st.text("abz_", min_size=1, max_size=5)))
        c["conditions"] = {"topo_class": data.draw(st.one_of(st.none(), st.integers(0, 3))), "flag": i % 2 == 0}
    path = save_crystals(tmp_path_factory.mktemp("cf") / "x.npz", batch, metadata={"n": len(batch)})
    back, meta = load_crystals(path)
    assert meta == {"n": len(batch)}
    assert len(back) == len(batch)
    for a, b in zip(batch, back):
        np.testing.assert_array_equal(a["lattice"], b["lattice"])
        np.testing.assert_array_equal(a["frac_coords"], b["frac_coords"])
        np.testing.assert_array_equal(a["atomic_numbers"], b["atomic_numbers"])
        assert b["conditions"] == a["conditions"]
        if a["gap"] is None:
            assert b["gap"] is None
        else:
            assert b["gap"] == a["gap"] and type(b["gap"]) is type(a["gap"])


def test_items_and_samples_of_the_model_round_trip(tmp_path):
    items = [
        crystal_item(np.eye(3) * 4.2, [[0, 0, 0], [0.5, 0.5, 0.5]], [11, 17], topo_class="trivial", band_gap=5.0),
        crystal_item(np.eye(3) * 3.0, [[0, 0, 0]], [29]),
    ]
    back, _ = load_crystals(save_crystals(tmp_path / "items.npz", items))
    assert back[0]["topo_class"] == items[0]["topo_class"] and back[0]["band_gap"] == 5.0
    assert back[1]["topo_class"] == -1 and math.isnan(items[1]["band_gap"]) and back[1]["band_gap"] is None
    # the item loader takes None where crystal_item wrote NaN: the round trip gives equal items
    again = [crystal_item(b["lattice"], b["frac_coords"], b["atomic_numbers"], band_gap=b["band_gap"]) for b in back]
    np.testing.assert_array_equal(again[0]["frac_coords"], items[0]["frac_coords"])

    model = TopologicalDiffusionModel(ExperimentConfig.preset("cpu-demo"))
    samples = model.sample(3, topo_class="z2_ti", steps=3, seed=0)
    loaded, _ = load_crystals(save_crystals(tmp_path / "samples.npz", samples))
    for s, b in zip(samples, loaded):
        assert b["conditions"] == s["conditions"]
        np.testing.assert_array_equal(b["atomic_numbers"], s["atomic_numbers"])


def test_the_file_holds_no_pickle(tmp_path):
    path = save_crystals(tmp_path / "x.npz", [{"lattice": np.eye(3), "frac_coords": [[0, 0, 0]],
                                               "atomic_numbers": [1], "name": "H"}])  # fmt: skip
    with np.load(path, allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)
    assert not list(tmp_path.glob(".*tmp*")), "the temporary file must be renamed into place"


@pytest.mark.parametrize(
    ("crystals", "message"),
    [
        ([], "at least one crystal"),
        ([{"lattice": np.eye(3), "frac_coords": [[0, 0, 0]]}], "must have key 'atomic_numbers'"),
        ([{"lattice": np.eye(2), "frac_coords": [[0, 0, 0]], "atomic_numbers": [1]}], "lattice (3, 3)"),
        ([{"lattice": np.eye(3), "frac_coords": [[0, 0, 0]], "atomic_numbers": [1.5]}], "must be integers"),
        ([{"lattice": np.eye(3), "frac_coords": [[0, 0, 0]], "atomic_numbers": [1], "x": [1, 2]}],
         "numbers, strings or None"),
        ([{"lattice": np.eye(3), "frac_coords": [[0, 0, 0]], "atomic_numbers": [1], "a.b": 1}], "'.' or '/'"),
    ],
)  # fmt: skip
def test_bad_input_names_the_rule(tmp_path, crystals, message):
    with pytest.raises(CrystalFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        save_crystals(tmp_path / "x.npz", crystals)


def test_bad_files_are_refused(tmp_path):
    with pytest.raises(CrystalFileError, match="must exist"):
        load_crystals(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(CrystalFileError, match="not a td-models crystal file"):
        load_crystals(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(CrystalFileError, match="could not read"):
        load_crystals(tmp_path / "junk.npz")
    with pytest.raises(CrystalFileError, match="JSON"):
        save_crystals(tmp_path / "y.npz", [{"lattice": np.eye(3), "frac_coords": [[0, 0, 0]], "atomic_numbers": [1]}],
                      metadata={"x": float("nan")})  # fmt: skip

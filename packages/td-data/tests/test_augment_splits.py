"""Tests of the augmentations (same crystal by StructureMatcher) and of the deterministic splits."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from td_data.augment import (
    OPERATIONS,
    augment,
    niggli_reduce,
    permute_atoms,
    primitive_cell,
    random_origin_shift,
    random_rotation,
    random_strain,
    supercell,
)
from td_data.exceptions import TDDataError
from td_data.record import CrystalRecord
from td_data.splits import Split, apply_split, composition_split, load_split, random_split, save_split
from td_data.synthetic import SyntheticDatasetGenerator

HYPO = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _hand_made() -> list[CrystalRecord]:
    fcc = np.array([[0.0, 2.82, 2.82], [2.82, 0.0, 2.82], [2.82, 2.82, 0.0]])
    conventional = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    na = np.array(conventional, dtype=float)
    return [
        CrystalRecord(fcc, [[0, 0, 0], [0.5, 0.5, 0.5]], ["Na", "Cl"], id="NaCl-prim", labels={"x": 1}),
        CrystalRecord(
            np.eye(3) * 5.64, np.vstack([na, na + 0.5]), ["Na"] * 4 + ["Cl"] * 4, id="NaCl-conv", properties={"e": 1.0}
        ),
        CrystalRecord(np.eye(3) * 4.11, [[0, 0, 0], [0.5, 0.5, 0.5]], ["Cs", "Cl"], id="CsCl"),
        # a skewed cell of simple cubic Po: needs Niggli reduction to look simple
        CrystalRecord([[3.35, 0, 0], [3.35, 3.35, 0], [6.7, 3.35, 3.35]], [[0.1, 0.2, 0.3]], ["Po"], id="Po-skew"),
    ]


BASE = (
    _hand_made()
    + [r for r in SyntheticDatasetGenerator(seed=11, max_atoms=8).generate_dataset(24) if r.num_atoms <= 8][:12]
)


def _matcher(**kwargs):
    from pymatgen.analysis.structure_matcher import StructureMatcher

    return StructureMatcher(**kwargs)


def _same(a: CrystalRecord, b: CrystalRecord, **kwargs) -> bool:
    return _matcher(**kwargs).fit(a.to_structure(), b.to_structure())


records_st = st.sampled_from(BASE)


def test_matcher_tells_different_crystals_apart():
    nacl, conventional, cscl, _ = BASE[:4]
    assert _same(nacl, conventional)
    assert not _same(nacl, cscl)
    assert not _same(cscl, random_strain(cscl, np.random.default_rng(0), 0.4))


rngs = st.integers(0, 2**32 - 1).map(np.random.default_rng)


# ------------------------------------------------------------------ augmentations
@HYPO
@given(records_st, rngs)
def test_origin_shift_and_permutation_keep_composition_and_volume_exactly(record, rng):
    for op in (random_origin_shift, permute_atoms):
        out = op(record, rng)
        assert out is not record
        assert out.composition == record.composition
        assert out.volume == record.volume
        assert out.id == record.id and dict(out.labels) == dict(record.labels)
        assert dict(out.properties) == dict(record.properties)
        assert _same(out, record)


@HYPO
@given(records_st, rngs)
def test_rotation_niggli_primitive_keep_the_crystal(record, rng):
    rotated = random_rotation(record, rng)
    assert rotated.volume == pytest.approx(record.volume, rel=1e-12)
    assert np.allclose(rotated.lattice @ rotated.lattice.T, record.lattice @ record.lattice.T)  # same metric
    reduced = niggli_reduce(record)
    assert reduced.volume == pytest.approx(record.volume, rel=1e-9)
    prim = primitive_cell(record)
    assert record.num_atoms % prim.num_atoms == 0
    assert prim.volume == pytest.approx(record.volume * prim.num_atoms / record.num_atoms, rel=1e-6)
    for out in (rotated, reduced, prim):
        assert out.formula == record.formula
        assert _same(out, record)


@HYPO
@given(records_st, st.tuples(st.integers(1, 3), st.integers(1, 2), st.integers(1, 2)))
def test_supercell_is_the_same_crystal(record, reps):
    big = supercell(record, reps)
    n = int(np.prod(reps))
    assert big.num_atoms == n * record.num_atoms
    assert big.volume == pytest.approx(n * record.volume, rel=1e-9)
    assert big.formula == record.formula
    assert _same(big, record)  # the matcher reduces both to primitive cells
    assert _same(primitive_cell(big), primitive_cell(record), primitive_cell=False)


def test_supercell_matrix_and_errors():
    record = BASE[2]
    big = supercell(record, [[1, 1, 0], [-1, 1, 0], [0, 0, 1]])
    assert big.num_atoms == 2 * record.num_atoms
    assert _same(big, record, attempt_supercell=True, primitive_cell=False)
    for bad in [(0, 1, 1), (1.5, 1, 1), [[1, 0, 0], [0, 1, 0], [0, 0, -1]], (1, 2)]:
        with pytest.raises(TDDataError, match="scaling"):
            supercell(record, bad)


@HYPO
@given(records_st, rngs, st.floats(0.0, 0.03))
def test_small_strain_keeps_the_crystal(record, rng, max_strain):
    out = random_strain(record, rng, max_strain)
    eps = np.linalg.solve(record.lattice, out.lattice) - np.eye(3)
    assert np.abs(np.linalg.eigvalsh(0.5 * (eps + eps.T))).max() <= max_strain + 1e-12
    assert np.array_equal(out.frac_coords, record.frac_coords)
    assert _same(out, record)


@HYPO
@given(records_st, st.integers(0, 1000))
def test_augment_chains_and_is_reproducible(record, seed):
    ops = ("origin_shift", "permute", "rotate", "niggli", "strain")
    a = augment(record, np.random.default_rng(seed), ops)
    b = augment(record, np.random.default_rng(seed), ops)
    assert a.to_dict() == b.to_dict()
    assert _same(a, record)


def test_augment_errors_and_callables():
    record = BASE[0]
    rng = np.random.default_rng(0)
    with pytest.raises(TDDataError, match="unknown augmentation 'flip'"):
        augment(record, rng, ops=("flip",))
    with pytest.raises(TDDataError, match="numpy.random.Generator"):
        augment(record, 0, ops=())  # type: ignore[arg-type]
    with pytest.raises(TDDataError, match="max_strain"):
        random_strain(record, rng, max_strain=0.9)
    out = augment(record, rng, ops=(lambda r, g: r.with_labels(tag="x"), "permute"))
    assert out.labels["tag"] == "x" and "x" not in record.labels.get("tag", "")
    assert set(OPERATIONS) == {"origin_shift", "permute", "rotate", "niggli", "primitive", "strain"}
    assert record.frac_coords.flags.writeable is False  # inputs are never mutated


# ------------------------------------------------------------------ splits
def _records(n: int, n_formulas: int = 7) -> list[CrystalRecord]:
    elements = ["Cu", "Ag", "Au", "Ni", "Pd", "Pt", "Fe", "Co", "Zn"][:n_formulas]
    return [
        CrystalRecord(np.eye(3) * 4.0, [[0, 0, 0]], [elements[i % len(elements)]], id=f"rec-{i:04d}") for i in range(n)
    ]


def _check_partition(split: Split, records: list[CrystalRecord]) -> None:
    ids = split.train + split.val + split.test
    assert len(ids) == len(set(ids)) == len(records)
    assert set(ids) == {r.id for r in records}


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 60),
    st.tuples(st.integers(0, 10), st.integers(0, 10), st.integers(0, 10)).filter(lambda t: sum(t) > 0),
    st.integers(0, 10_000),
)
def test_splits_are_disjoint_covering_and_deterministic(n, weights, seed):
    fractions = tuple(w / sum(weights) for w in weights)
    fractions = (fractions[0], fractions[1], 1.0 - fractions[0] - fractions[1])
    records = _records(n)
    for make in (random_split, composition_split):
        split = make(records, fractions, seed)
        _check_partition(split, records)
        assert split == make(list(reversed(records)), fractions, seed)  # order of arrival does not matter
        assert split.seed == seed and split.fractions == pytest.approx(fractions)
    split = random_split(records, fractions, seed)
    assert abs(len(split.train) - fractions[0] * n) <= 1
    assert abs(len(split.test) - fractions[2] * n) <= 2


def test_random_split_sizes_and_seed():
    records = _records(100)
    split = random_split(records, (0.8, 0.1, 0.1), seed=0)
    assert split.sizes == (80, 10, 10) and split.method == "random"
    assert random_split(records, (0.8, 0.1, 0.1), seed=1) != split


def test_composition_split_never_shares_a_formula():
    records = SyntheticDatasetGenerator(seed=2).generate_dataset(120)
    split = composition_split(records, (0.7, 0.15, 0.15), seed=3)
    _check_partition(split, records)
    formula = {r.id: r.formula for r in records}
    sets = [{formula[i] for i in ids} for ids in (split.train, split.val, split.test)]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert split.method == "composition"
    assert 0.55 < len(split.train) / len(records) < 0.85
    assert len(split.val) > 0 and len(split.test) > 0


@pytest.mark.parametrize(
    ("fractions", "message"),
    [
        ((0.8, 0.3, -0.1), "non-negative"),
        ((0.5, 0.2, 0.2), "sum to 1"),
        ((0.5, 0.5), "three numbers"),
        ((float("nan"), 0.5, 0.5), "non-negative"),
        (("a", 0.5, 0.5), "three numbers"),
    ],
)
def test_bad_fractions_name_the_value(fractions, message):
    for make in (random_split, composition_split):
        with pytest.raises(TDDataError, match=message) as err:
            make(_records(5), fractions)
        assert str(fractions[0]) in str(err.value) or repr(fractions) in str(err.value)


def test_duplicate_ids_are_refused():
    records = _records(3) + [_records(1)[0]]
    with pytest.raises(TDDataError, match="rec-0000"):
        random_split(records)
    with pytest.raises(TDDataError, match="rec-0000"):
        composition_split(records)
    with pytest.raises(TDDataError, match="unique"):
        Split(("a",), ("a",), (), "random", 0, (0.5, 0.5, 0.0))


def test_save_load_round_trip_is_atomic(tmp_path):
    records = _records(30)
    split = composition_split(records, (0.6, 0.2, 0.2), seed=7)
    path = save_split(split, tmp_path / "sub" / "split.json")
    assert load_split(path) == split
    assert sorted(os.listdir(path.parent)) == ["split.json"]  # no temporary file left behind
    data = json.loads(path.read_text())
    assert data["format"] == "td-data.split" and data["method"] == "composition" and data["seed"] == 7
    split2 = random_split(records, seed=8)
    save_split(split2, path)  # replaces the old file
    assert load_split(path) == split2
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(TDDataError, match="format"):
        load_split(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(TDDataError, match="JSON"):
        load_split(tmp_path / "broken.json")


def test_apply_split():
    records = _records(20)
    split = random_split(records, (0.5, 0.25, 0.25), seed=1)
    train, val, test = apply_split(records, split)
    assert [r.id for r in train] == list(split.train)
    assert [r.id for r in val] == list(split.val) and [r.id for r in test] == list(split.test)
    with pytest.raises(TDDataError, match="not among the records"):
        apply_split(records[:-1], split)
    with pytest.raises(TDDataError, match="in no set"):
        apply_split([*records, _records(21)[-1]], split)
    train, val, test = apply_split(records[:10], split, strict=False)
    assert len(train) + len(val) + len(test) == 10
    assert math.isclose(sum(split.fractions), 1.0)

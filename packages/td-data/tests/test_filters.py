"""Quality filters: each rule with its reason, the pipeline's bookkeeping, purity and determinism."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from td_data.exceptions import TDDataError
from td_data.filters import (
    CompositionValidityFilter,
    DuplicateFilter,
    FilterResult,
    QualityFilter,
    Rejection,
    SizeFilter,
    SpaceGroupFilter,
    StructureValidityFilter,
    apply_filters,
    spacegroup_number,
)
from td_data.record import CrystalRecord


def rocksalt(a: float = 5.64, id: str = "NaCl", species=("Na", "Cl")) -> CrystalRecord:
    """Primitive rock-salt cell (Fm-3m, 225)."""
    h = a / 2
    return CrystalRecord([[0, h, h], [h, 0, h], [h, h, 0]], [[0, 0, 0], [0.5, 0.5, 0.5]], list(species), id=id)


def cscl(a: float = 4.12, id: str = "CsCl") -> CrystalRecord:
    """CsCl type (Pm-3m, 221)."""
    return CrystalRecord(a * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5]], ["Cs", "Cl"], id=id)


def crushed(id: str = "crushed") -> CrystalRecord:
    """Two atoms 0.2 Angstrom apart."""
    return CrystalRecord(4.0 * np.eye(3), [[0, 0, 0], [0.05, 0, 0]], ["Na", "Cl"], id=id)


def test_structure_validity_rejects_close_atoms_with_the_distance():
    step = StructureValidityFilter().apply([rocksalt(), crushed()])
    assert [r.id for r in step.kept] == ["NaCl"] and step.kept_indices == (0,)
    ((idx, rule, reason),) = step.rejected
    assert (idx, rule) == (1, "min_distance")
    assert "0.200 A" in reason and "0.5 A" in reason


def test_structure_validity_rejects_tiny_volume():
    tiny = CrystalRecord(0.4 * np.eye(3), [[0, 0, 0]], ["H"], id="tiny")  # 0.064 A^3
    ((_, rule, reason),) = StructureValidityFilter().apply([tiny]).rejected
    assert rule == "volume" and "0.064" in reason


def test_composition_validity_names_the_formula():
    nacl2 = CrystalRecord(5 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0]], ["Na", "Cl", "Cl"], id="x")
    step = CompositionValidityFilter().apply([rocksalt(), nacl2])
    assert step.kept_indices == (0,)
    assert step.rejected[0][1] == "charge_balance" and "NaCl2" in step.rejected[0][2]


def test_size_filter_rules():
    big = CrystalRecord(10 * np.eye(3), np.arange(24).reshape(8, 3) / 30, ["Na"] * 4 + ["Cl"] * 4, id="big")
    ternary = CrystalRecord(6 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5], [0, 0.5, 0.5]], ["Na", "K", "Cl"], id="t")
    result = apply_filters([rocksalt(), big, ternary], [SizeFilter(max_atoms=4, max_elements=2)])
    assert [r.id for r in result.kept] == ["NaCl"]
    assert result.rejected[0] == Rejection("big", "size", "8 atoms in the cell is more than max_atoms=4")
    assert "3 distinct elements" in result.rejected[1].reason
    allowed = SizeFilter(allowed_elements={"Na", 17}).apply([rocksalt(), cscl()])
    assert allowed.kept_indices == (0,) and allowed.rejected[0][1] == "allowed_elements"
    assert "['Cs']" in allowed.rejected[0][2]


@pytest.mark.parametrize(
    "make", [lambda: SizeFilter(max_atoms=0), lambda: SizeFilter(max_elements=1.5), lambda: SpaceGroupFilter(0)]
)
def test_bad_settings_raise_value_errors(make):
    with pytest.raises(TDDataError):
        make()
    with pytest.raises(ValueError):  # TDDataError is a ValueError
        make()


def test_spacegroup_labels_and_restriction():
    result = apply_filters([rocksalt(), cscl()], [SpaceGroupFilter()])
    assert [dict(r.labels) for r in result.kept] == [
        {"spacegroup": 225, "symprec": 0.1},
        {"spacegroup": 221, "symprec": 0.1},
    ]
    only = apply_filters([rocksalt(), cscl()], [SpaceGroupFilter(symprec=0.01, allowed={221})])
    assert [r.id for r in only.kept] == ["CsCl"] and only.kept[0].labels["symprec"] == 0.01
    assert only.rejected == (
        Rejection("NaCl", "spacegroup", "space group 225 (symprec=0.01) is not in the allowed set"),
    )
    assert dict(only.counts) == {"spacegroup/spacegroup": 1}


def test_spacegroup_symprec_decides_a_distorted_cell():
    distorted = CrystalRecord(4.12 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.51]], ["Cs", "Cl"])  # Cl moved 0.04 A
    assert spacegroup_number(distorted, symprec=0.1) == 221
    assert spacegroup_number(distorted, symprec=0.01) == 99  # P4mm


def test_duplicates_keep_the_first_within_the_same_formula():
    shifted = CrystalRecord(cscl().lattice * 1.03, [[0.1, 0.2, 0.3], [0.6, 0.7, 0.8]], ["Cs", "Cl"], id="CsCl-2")
    csbr = CrystalRecord(4.12 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5]], ["Cs", "Br"], id="CsBr")
    records = [cscl(), rocksalt(species=("Cs", "Cl"), id="CsCl-rs"), shifted, csbr]
    result = apply_filters(records, [DuplicateFilter()])
    assert [r.id for r in result.kept] == ["CsCl", "CsCl-rs", "CsBr"]
    (rej,) = result.rejected
    assert rej.record_id == "CsCl-2" and rej.filter_name == "duplicate"
    assert "'CsCl'" in rej.reason and "ltol=0.2, stol=0.3, angle_tol=5.0" in rej.reason


def test_pipeline_bookkeeping_ids_counts_and_purity():
    records = [rocksalt(id=""), crushed(id=""), cscl(), rocksalt(id="")]
    before = [r.to_dict() for r in records]
    result = QualityFilter.default()(records)
    assert isinstance(result, FilterResult)
    assert [r.id for r in result.kept] == ["", "CsCl"]
    assert [(r.record_id, r.filter_name) for r in result.rejected] == [
        ("#1", "structure_validity"),
        ("#3", "duplicate"),
    ]
    assert "duplicate of record '#0'" in result.rejected[1].reason
    assert dict(result.counts) == {"structure_validity/min_distance": 1, "duplicate/duplicate": 1}
    assert result.num_kept + result.num_rejected == len(records)
    assert "kept 2 of 4" in result.summary()
    assert [r.to_dict() for r in records] == before  # the input is untouched
    assert "spacegroup" not in records[0].labels
    again = QualityFilter.default()(records)
    assert [r.to_dict() for r in again.kept] == [r.to_dict() for r in result.kept]
    assert again.rejected == result.rejected
    with pytest.raises(AttributeError):
        result.kept = ()  # frozen


def test_pipeline_rejects_non_records_and_non_filters():
    with pytest.raises(TDDataError, match="CrystalRecord"):
        apply_filters([object()], [SizeFilter()])
    with pytest.raises(TDDataError, match="apply"):
        apply_filters([rocksalt()], [lambda recs: recs])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=8), st.randoms(use_true_random=False))
def test_per_record_filters_do_not_depend_on_order(sizes, rnd):
    records = [
        CrystalRecord(8 * np.eye(3), np.linspace(0, 0.9, n)[:, None] * [1, 0.5, 0.25], ["Na"] * n, id=f"r{i}")
        for i, n in enumerate(sizes)
    ]
    shuffled = list(records)
    rnd.shuffle(shuffled)
    flt = [SizeFilter(max_atoms=3)]
    assert {r.id for r in apply_filters(records, flt).kept} == {r.id for r in apply_filters(shuffled, flt).kept}
    assert {r.id for r in apply_filters(records, flt).kept} == {f"r{i}" for i, n in enumerate(sizes) if n <= 3}


def test_composition_validity_search_equals_cdvae_product_loop():
    """The pruned search gives CDVAE's answer (itertools.product + smact.neutral_ratios) on random cells."""
    import itertools

    import smact
    from smact.screening import pauling_test

    from td_data.record import ELEMENTS
    from td_data.validity import _composition_valid

    def brute(elements, counts, use_pauling):
        symbols = tuple(ELEMENTS[z] for z in elements)
        if len(set(symbols)) == 1 or all(s in smact.metals for s in symbols):
            return True
        space = smact.element_dictionary(symbols)
        elems = [space[s] for s in symbols]
        combos = [e.oxidation_states or [] for e in elems]
        for ox in itertools.product(*combos):
            if not smact.neutral_ratios(ox, stoichs=[(c,) for c in counts], threshold=int(max(counts))):
                continue
            if not use_pauling:
                return True
            try:
                if pauling_test(ox, [e.pauling_eneg for e in elems]):
                    return True
            except TypeError:
                return True
        return False

    rng = np.random.default_rng(7)
    for _ in range(150):
        k = int(rng.integers(2, 5))
        elements = tuple(sorted(int(z) for z in rng.choice(np.arange(1, 84), size=k, replace=False)))
        counts = tuple(int(c) for c in rng.integers(1, 5, size=k))
        for use_pauling in (True, False):
            assert _composition_valid(elements, counts, use_pauling) == brute(elements, counts, use_pauling), (
                elements,
                counts,
            )


def test_composition_validity_of_a_ten_element_generated_cell():
    """A cell the old product loop spent minutes on (a generated candidate of the Kedro demo)."""
    from td_data.validity import composition_validity

    cell = [37, 71, 96, 12, 32, 32, 83, 83, 5, 52, 46, 82, 6, 6, 35, 17]
    ok, reason = composition_validity(cell)
    # neutral assignments exist, but none puts every anion above every cation in electronegativity
    assert not ok and reason.startswith("BC2MgClGe2BrRbPdTeLuPbBi2Cm is not charge-balanced")
    assert composition_validity([37, 71, 96, 12, 32, 32, 83, 83, 5, 52, 46, 82, 6, 6, 35, 17], use_pauling_test=False)[
        0
    ]


def test_quality_filter_without_arguments_uses_the_documented_defaults():
    from td_data import QualityFilter as Exported
    from td_data.filters import PlausibilityFilter

    default = Exported()
    assert [f.name for f in default.filters] == [f.name for f in QualityFilter.default().filters]
    result = default([rocksalt(), crushed(), cscl(), rocksalt(id="again")])
    assert [r.id for r in result.kept] == ["NaCl", "CsCl"]
    assert [(r.record_id, r.filter_name) for r in result.rejected] == [
        ("crushed", "structure_validity"),
        ("again", "duplicate"),
    ]
    assert result.kept[0].labels["spacegroup"] == 225
    with pytest.raises(TDDataError, match="filters need a name and an apply"):
        QualityFilter(("structure_validity",))
    flat = CrystalRecord([[4, 0, 0], [-2, 3.4641016, 0], [2, -3.4641016, 1e-7]], [[0, 0, 0]], ["Na"], id="flat")
    step = PlausibilityFilter().apply([flat, rocksalt()])
    assert step.kept_indices == (1,) and step.rejected[0][1] == "min_volume_per_atom"
    assert "below min_volume_per_atom 1.0 A^3" in step.rejected[0][2]

"""validate_known_materials: the user guide's names, model-level cases and the structure column."""

from __future__ import annotations

import json

import pytest

from td_physics.validation import CASES, KNOWN_MATERIALS, validate_known_materials


def test_user_guide_call_agrees_with_expected_values():
    table = validate_known_materials(["graphene", "bi2se3", "hgte_qw", "weyl_semimetal"])
    assert table.all_agree
    by_case = {r["case"]: r for r in table}
    assert set(by_case) == {"graphene", "bi2se3", "hgte_7.0nm", "hgte_5.5nm", "weyl_semimetal"}
    assert by_case["bi2se3"]["expected"] == "(1;000)"
    assert "Z2 = 1" in by_case["hgte_7.0nm"]["computed"] and "Z2 = 0" in by_case["hgte_5.5nm"]["computed"]
    assert "chirality [-1, 1]" in by_case["weyl_semimetal"]["computed"]
    assert by_case["graphene"]["structure_agrees"] is True
    assert by_case["bi2se3"]["structure_agrees"] is True  # the labeller on the R-3m crystal: (1;000)
    assert by_case["hgte_7.0nm"]["structure"] == "not applicable" and by_case["hgte_7.0nm"]["structure_agrees"] is None


def test_every_material_maps_to_known_cases_and_markdown_has_a_row_each():
    for cases, _ in KNOWN_MATERIALS.values():
        assert set(cases) <= set(CASES)
    table = validate_known_materials(["haldane", "kane_mele", "qwz"])
    md = table.to_markdown().splitlines()
    assert len(md) == 2 + len(table) == 5
    assert table.all_agree
    json.dumps(table.as_dicts())


def test_names_are_case_insensitive_and_unknown_names_are_refused():
    assert validate_known_materials(["Bi2Se3"]).rows[0]["case"] == "bi2se3"
    with pytest.raises(ValueError, match="unknown materials"):
        validate_known_materials(["unobtainium"])

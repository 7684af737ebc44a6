"""td_data.evaluation.relabel: who the labeller judges, why the others are not checked, the confusion tables."""

from __future__ import annotations

import numpy as np
import pytest

from td_data import CrystalRecord
from td_data.evaluation import (
    NOT_CHECKED,
    REFUSAL_KINDS,
    confusion_table,
    consistency_report,
    refusal_kind,
    relabel_candidates,
)
from td_data.exceptions import EvaluationError
from td_data.labels import LabelResult
from td_data.readers import Quarantined

FCC = np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]]) / 2
OPTIONS = {"gap_mesh": 4}


def zincblende(i: int, a: float = 5.65, species=(31, 33), **labels) -> CrystalRecord:
    return CrystalRecord(a * FCC, [[0, 0, 0], [0.25, 0.25, 0.25]], list(species), id=f"zb-{i}",
                         labels={"requested_class": "trivial", "predicted_class": "trivial", **labels})  # fmt: skip


def candidates() -> list[CrystalRecord]:
    big = CrystalRecord(8.0 * np.eye(3), np.random.default_rng(0).random((7, 3)) * 0.1 + np.arange(7)[:, None] / 7,
                        [14] * 7, id="big", labels={"requested_class": "trivial"})  # fmt: skip
    crushed = CrystalRecord(4.0 * np.eye(3), [[0, 0, 0], [0.01, 0, 0]], [11, 17], id="crushed",
                            labels={"requested_class": "trivial"})  # fmt: skip
    iron = CrystalRecord(2.87 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5]], [26, 26], id="fe",
                         labels={"requested_class": "trivial"})  # fmt: skip
    held = zincblende(0, passed_stability=False)  # first in sampling order, but held back by the stability filter
    return [held, zincblende(1), crushed, big, iron, zincblende(2, a=5.7)]


def test_each_candidate_is_checked_or_says_why_not():
    progress = []
    out, report, rows = relabel_candidates(candidates(), max_relabel=2, max_atoms=6, classify_options=OPTIONS,
                                           progress=lambda d, t: progress.append((d, t)))  # fmt: skip
    by_id = {r.id: r.labels for r in out}
    assert [r.id for r in out] == ["zb-0", "zb-1", "crushed", "big", "fe", "zb-2"]  # input order kept
    # the two relabelling slots go to the stable candidates; the held-back one comes after them
    assert by_id["zb-1"]["recomputed_class"] == by_id["zb-2"]["recomputed_class"] == "trivial"
    assert by_id["zb-0"]["not_checked_reason"] == "beyond max_relabel=2"
    assert by_id["crushed"]["not_checked_reason"].startswith("structurally invalid: shortest interatomic distance")
    assert by_id["big"]["not_checked_reason"] == "7 sites > max_relabel_atoms=6"
    assert by_id["fe"]["not_checked_reason"] == "elements ['Fe'] unknown to the labeller"
    for rid in ("zb-0", "crushed", "big", "fe"):
        assert by_id[rid]["recomputed_class"] == NOT_CHECKED and by_id[rid]["recomputed_confidence"] is None
    assert by_id["zb-1"]["not_checked_reason"] == "" and 0 < by_id["zb-1"]["recomputed_confidence"] <= 1
    assert by_id["crushed"]["struct_valid"] is False and by_id["zb-1"]["struct_valid"] is True
    assert progress[-1] == (2, 2) and [d for d, _ in progress] == list(range(1, len(progress) + 1))
    assert report == consistency_report(out)
    assert (report["n_candidates"], report["n_structurally_valid"], report["n_checked"]) == (6, 5, 2)
    assert report["n_as_requested"] == 2 and report["share_as_requested"] == 1.0
    assert report["confusion"] == [{"requested": "trivial", "recomputed": "trivial", "count": 2}]
    assert report["predicted_vs_recomputed_agree"] == 2 and report["requested_class"] == "trivial"
    assert [row["id"] for row in rows] == [r.id for r in out] and rows[1]["recomputed_class"] == "trivial"


def test_a_labeller_failure_is_not_checked_with_its_reason(monkeypatch):
    from td_data import labels

    def failing(records, **kwargs):
        rec = records[0]
        return LabelResult((), (Quarantined(rec.id, rec.source or rec.id, "timeout: no answer within 1 s"),), 0, 0, 0)

    monkeypatch.setattr(labels, "label_records", failing)
    out, report, _ = relabel_candidates([zincblende(1)], max_relabel=1, max_atoms=6)
    assert out[0].labels["not_checked_reason"] == "labelling failed: timeout: no answer within 1 s"
    assert report["n_checked"] == 0 and report["share_as_requested"] is None


def test_limits_must_be_counts():
    with pytest.raises(EvaluationError, match="max_relabel must be an integer >= 0, got -1"):
        relabel_candidates([], max_relabel=-1, max_atoms=6)
    with pytest.raises(EvaluationError, match="max_atoms must be an integer >= 0, got 2.5"):
        relabel_candidates([], max_relabel=1, max_atoms=2.5)


def test_refusal_kinds_cover_every_reason():
    reasons = [
        "structurally invalid: volume",
        "9 sites > max_relabel_atoms=8",
        "elements ['Fe'] unknown to the labeller",
        "beyond max_relabel=24",
        "labelling failed: timeout",
    ]
    assert [refusal_kind(r) for r in reasons] == list(REFUSAL_KINDS)


def _judged(rid: str, requested: str, got: str, reason: str = "") -> CrystalRecord:
    return zincblende(0).replace(id=rid).with_labels(requested_class=requested, recomputed_class=got,
                                                      not_checked_reason=reason, struct_valid=not reason)  # fmt: skip


def test_confusion_table_is_consistent():
    relabelled = {
        "z2_ti": [_judged("a", "z2_ti", "z2_ti"), _judged("b", "z2_ti", "trivial"),
                  _judged("c", "z2_ti", NOT_CHECKED, "structurally invalid: volume")],
        "trivial": [_judged("d", "trivial", "trivial"), _judged("e", "trivial", NOT_CHECKED, "beyond max_relabel=1")],
    }  # fmt: skip
    table = confusion_table(relabelled)
    assert table["classes"] == ["z2_ti", "trivial"]
    assert set(table["confusion"]["z2_ti"]) == {"trivial", "z2_ti", "chern", "semimetal_or_metal"}
    for cls in table["classes"]:
        row = table["per_class"][cls]
        assert row["n_checked"] + row["n_refused"] == row["n_records"]
        assert sum(table["confusion"][cls].values()) == row["n_checked"]
        assert sum(row["refusals"].values()) == row["n_refused"]
        assert row["n_as_requested"] == table["confusion"][cls][cls]
        assert row["share_as_requested"] == row["n_as_requested"] / row["n_checked"]
    assert (table["n_checked"], table["n_as_requested"], table["share_as_requested"]) == (3, 2, 2 / 3)
    assert table["refusals"] == {"structurally invalid": 1, "beyond max_relabel": 1} and table["n_refused"] == 2
    assert table["per_class"]["z2_ti"]["predicted_vs_recomputed_agree"] == 1  # zincblende() predicts trivial
    empty = confusion_table({"chern": []})
    assert empty["share_as_requested"] is None and empty["per_class"]["chern"]["share_as_requested"] is None

"""label_records: parallel, resumable, user labels first, failures quarantined."""

from __future__ import annotations

import numpy as np
import pytest

from td_data import CrystalRecord
from td_data.labels import label_records
from td_data.store import CrystalStore

SI = 0.5 * 5.431 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]])
OPTS = {"spin_orbit_constants": {"Si": 0.03, "C": 0.003}, "gap_mesh": 4}


def records() -> list[CrystalRecord]:
    si = CrystalRecord(SI, [[0, 0, 0], [0.25, 0.25, 0.25]], [14, 14], id="si")
    diamond = CrystalRecord(0.5 * 3.567 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]]), si.frac_coords, [6, 6], id="c")
    iron = CrystalRecord(2.87 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5]], [26, 26], id="fe", source="bcc.cif")
    user = si.replace(id="si-user", labels={"topo_class": "z2_ti", "label_source": "my DFT study"})
    return [si, diamond, iron, user]


def test_labels_user_precedence_and_quarantine(tmp_path):
    res = label_records(records(), workers=2, **OPTS)
    by_id = {r.id: r for r in res.records}
    assert by_id["si"].labels["topo_class"] == "trivial" and by_id["c"].labels["topo_class"] == "trivial"
    assert by_id["si"].labels["confidence"] == 1.0
    assert by_id["si-user"].labels == {"topo_class": "z2_ti", "label_source": "my DFT study"}
    assert "fe" not in by_id and len(res.quarantined) == 1
    assert "Fe" in res.quarantined[0].reason and res.quarantined[0].source == "bcc.cif"
    assert res.quarantined[0].record_id == "fe"  # the id is a field: nobody parses it out of the reason
    assert str(res.quarantined[0]).startswith("bcc.cif (record fe): ")
    assert (res.computed, res.reused, res.user_labelled) == (2, 0, 1)


def test_resume_from_the_store(tmp_path):
    path = tmp_path / "labelled.h5"
    first = label_records(records()[:2], workers=1, store_path=path, **OPTS)
    assert first.computed == 2
    second = label_records(records(), workers=1, store_path=path, **OPTS)
    assert second.reused == 2 and second.computed == 0
    with CrystalStore.open(path) as store:
        assert set(store.ids) == {"si", "c", "si-user"}
    # the same id with another crystal (a structure step redone in between) is labelled again, not reused;
    # a shift by a whole lattice vector is the same crystal
    si, diamond = records()[:2]
    moved = si.replace(frac_coords=si.frac_coords + [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    strained = diamond.replace(lattice=diamond.lattice * 1.02)
    third = label_records([moved, strained], workers=1, store_path=path, **OPTS)
    assert (third.reused, third.computed) == (1, 1)
    assert {r.id: r.labels["topo_class"] for r in third.records} == {"si": "trivial", "c": "trivial"}


def test_an_interrupted_run_keeps_its_labels_and_checkpoints_as_it_goes(tmp_path):
    path = tmp_path / "labelled.h5"

    def interrupt_after_the_first(done, total):
        if done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        label_records(records()[:2], workers=1, store_path=path, progress=interrupt_after_the_first, **OPTS)
    with CrystalStore.open(path) as store:
        assert list(store.ids) == ["si"]  # the finished record is kept, the interrupted one is not written
    seen = []

    def look_at_the_store(done, total):  # a checkpoint follows every record here
        if done == 2:
            with CrystalStore.open(path) as store:
                seen.append(sorted(store.ids))

    res = label_records(
        records()[:3], workers=1, store_path=path, progress=look_at_the_store, checkpoint_seconds=1e-9, **OPTS
    )
    assert (res.reused, res.computed, res.user_labelled, len(res.quarantined)) == (1, 1, 0, 1)  # fe: no tables
    assert seen == [["c", "si"]]  # written after diamond, before iron's answer came
    with pytest.raises(ValueError, match="checkpoint_seconds must be a number of seconds > 0 or None, got 0"):
        label_records(records()[:1], store_path=path, checkpoint_seconds=0, **OPTS)


def test_the_records_magnetic_moments_reach_the_labeller(monkeypatch):
    import td_physics.classify

    seen = []
    real = td_physics.classify.classify_structure

    def spy(*args, magnetic_moments=None, **kwargs):
        seen.append(None if magnetic_moments is None else np.asarray(magnetic_moments).tolist())
        return real(*args, magnetic_moments=magnetic_moments, **kwargs)

    monkeypatch.setattr(td_physics.classify, "classify_structure", spy)
    si = records()[0]
    collinear = si.replace(id="si-fm", magmoms=[0.5, 0.5])
    canted = si.replace(id="si-canted", magmoms=[[0.5, 0, 0], [0, 0, 0.5]])
    res = label_records([si, collinear, canted], workers=1, **OPTS)
    assert seen == [None, [0.5, 0.5], [[0.5, 0.0, 0.0], [0.0, 0.0, 0.5]]]
    assert len(res.records) == 3 and not res.quarantined


def test_a_user_model_takes_precedence_over_the_universal_tables():
    from td_physics.models import bi2se3

    rec = records()[0].replace(id="bi2se3-w90")
    res = label_records([rec], workers=1, models={"bi2se3-w90": bi2se3()}, **OPTS)
    labels = res.records[0].labels
    assert labels["topo_class"] == "z2_ti" and labels["label_source"].startswith("user model for bi2se3-w90")
    assert res.computed == 1


def _slow_for_bismuth(record, options):
    """Stands in for a generated cell on which the labeller runs for minutes."""
    import time

    from td_data import labels

    if 83 in record.atomic_numbers:
        time.sleep(30)
    return labels._real_classify_one(record, options)


@pytest.mark.parametrize("workers", [1, 2])
def test_timeout_quarantines_the_slow_record_and_keeps_the_rest(monkeypatch, workers):
    import time

    from td_data import labels

    monkeypatch.setattr(labels, "_real_classify_one", labels._classify_one, raising=False)
    monkeypatch.setattr(labels, "_classify_one", _slow_for_bismuth)  # inherited by forked workers
    fast = records()[0]
    slow = CrystalRecord(np.eye(3) * 4.0, [[0, 0, 0]], ["Bi"], id="bi")
    started = time.monotonic()
    result = label_records([slow, fast], workers=workers, timeout=1.0, **OPTS)
    assert time.monotonic() - started < 20
    assert [r.id for r in result.records] == ["si"]
    assert len(result.quarantined) == 1 and "timeout: no answer within 1 s" in result.quarantined[0].reason
    assert result.quarantined[0].record_id == "bi"


def test_timeout_must_be_positive():
    with pytest.raises(ValueError, match="timeout must be a number of seconds > 0"):
        label_records([], timeout=0)

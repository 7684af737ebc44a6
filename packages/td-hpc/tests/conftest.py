"""Shared fixtures: a tiny td-data input for labelling (Si, diamond, strained Si, and bcc Fe, which the
labeller quarantines), as in td-data's own tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def label_opts():
    return {"spin_orbit_constants": {"Si": 0.03, "C": 0.003}, "gap_mesh": 4}


@pytest.fixture
def tiny_records():
    td_data = pytest.importorskip("td_data")
    import numpy as np

    fcc = 0.5 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]])
    frac = [[0, 0, 0], [0.25, 0.25, 0.25]]
    rec = td_data.CrystalRecord
    return [
        rec(5.431 * fcc, frac, [14, 14], id="si"),
        rec(3.567 * fcc, frac, [6, 6], id="c"),
        rec(5.5 * fcc, frac, [14, 14], id="si2"),
        rec(2.87 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5]], [26, 26], id="fe"),
    ]

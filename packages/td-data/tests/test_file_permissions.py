"""Files td-data writes get the user's umask permissions (0644 under 022), not mkstemp's 0600 (issue 15)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from td_data.metrics import fingerprints
from td_data.record import CrystalRecord
from td_data.splits import random_split, save_split
from td_data.store import CrystalStore, write_store
from td_physics.files import current_umask

RECORDS = [CrystalRecord(4.0 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5]], ["Cs", "Cl"], id=f"r{i}") for i in range(6)]
MASKS = [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600), (0o002, 0o664)]


@pytest.fixture
def umask():
    """Set the process umask for one test, restored afterwards."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask, expected", MASKS)
def test_store_split_and_cache_files_follow_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    assert current_umask() == mask
    store = write_store(tmp_path / "crystals.h5", RECORDS)
    assert mode(store) == expected
    with CrystalStore.create(tmp_path / "other.h5") as created:
        created.append(RECORDS[:1])
    assert mode(tmp_path / "other.h5") == expected
    split = save_split(random_split(RECORDS, seed=0), tmp_path / "split.json")
    assert mode(split) == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crystals.h5", "other.h5", "split.json"]


@pytest.mark.parametrize("mask, expected", MASKS[:2])
def test_fingerprint_cache_follows_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    fingerprints(RECORDS[:1], cache=tmp_path / "fp.npz", n_jobs=1)
    assert mode(tmp_path / "fp.npz") == expected
    assert [p.name for p in tmp_path.iterdir()] == ["fp.npz"]

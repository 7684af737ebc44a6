"""Sharded labelling for job arrays: shard indices, label + merge on a tiny store, the command line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from td_data import CrystalRecord
from td_data.exceptions import TDDataError
from td_data.label_shard import label_shard, merge_label_shards, shard_indices

LABEL_OPTS = {"spin_orbit_constants": {"Si": 0.03, "C": 0.003}, "gap_mesh": 4}


@pytest.fixture
def tiny_records():
    """Si, diamond, strained Si, and bcc Fe, which the labeller quarantines."""
    fcc = 0.5 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]])
    frac = [[0, 0, 0], [0.25, 0.25, 0.25]]
    return [
        CrystalRecord(5.431 * fcc, frac, [14, 14], id="si"),
        CrystalRecord(3.567 * fcc, frac, [6, 6], id="c"),
        CrystalRecord(5.5 * fcc, frac, [14, 14], id="si2"),
        CrystalRecord(2.87 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5]], [26, 26], id="fe"),
    ]


def test_shards_partition_the_records():
    n, k = 11, 3
    shards = [shard_indices(n, i, k) for i in range(k)]
    assert sorted(i for s in shards for i in s) == list(range(n))
    with pytest.raises(TDDataError, match="shard must be a whole number in"):
        shard_indices(5, 3, 3)


def test_label_and_merge(tmp_path, tiny_records):
    from td_data.store import CrystalStore, write_store

    store = write_store(tmp_path / "in.h5", tiny_records)
    for shard in range(3):
        label_shard(store, shard, 3, tmp_path / "shards", **LABEL_OPTS)
    with pytest.raises(TDDataError, match="every shard must be present"):
        merge_label_shards(tmp_path / "shards", tmp_path / "x.h5", num_shards=4)
    out = merge_label_shards(tmp_path / "shards", tmp_path / "labelled.h5", num_shards=3)
    with CrystalStore.open(out) as merged:
        got = merged.read_all()
    assert sorted(r.id for r in got) == ["c", "si", "si2"]  # fe is quarantined
    assert all("topo_class" in r.labels for r in got)


def test_shard_summary_names_the_quarantined_record(tmp_path, tiny_records):
    import json

    from td_data.store import write_store

    store = write_store(tmp_path / "in.h5", tiny_records)
    label_shard(store, 0, 1, tmp_path / "shards", **LABEL_OPTS)
    summary = json.loads((tmp_path / "shards" / "shard_00000.json").read_text())
    assert (summary["records"], summary["labelled"]) == (4, 3)
    assert [q["record_id"] for q in summary["quarantined"]] == ["fe"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True)


def test_label_shard_cli_errors(tmp_path):
    proc = run("-m", "td_data.label_shard", "--out", str(tmp_path))
    assert proc.returncode == 2 and "--store, --shard and --num-shards are required" in proc.stderr
    proc = run("-m", "td_data.label_shard", "--merge", str(tmp_path), "--out", str(tmp_path / "m.h5"))
    assert proc.returncode == 2 and "shards_dir must hold shard_*.h5 files" in proc.stderr

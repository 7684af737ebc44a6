"""Shard indices, and label + merge on a tiny store (needs td-data)."""

from __future__ import annotations

import pytest

from td_hpc import HpcValueError, merge_label_shards, shard_indices
from td_hpc.labelling import label_shard


def test_shards_partition_the_records():
    n, k = 11, 3
    shards = [shard_indices(n, i, k) for i in range(k)]
    assert sorted(i for s in shards for i in s) == list(range(n))
    with pytest.raises(HpcValueError, match="shard must be a whole number in"):
        shard_indices(5, 3, 3)


def test_label_and_merge(tmp_path, label_opts, tiny_records):
    pytest.importorskip("td_data")
    from td_data.store import CrystalStore, write_store

    store = write_store(tmp_path / "in.h5", tiny_records)
    for shard in range(3):
        label_shard(store, shard, 3, tmp_path / "shards", **label_opts)
    with pytest.raises(HpcValueError, match="every shard must be present"):
        merge_label_shards(tmp_path / "shards", tmp_path / "x.h5", num_shards=4)
    out = merge_label_shards(tmp_path / "shards", tmp_path / "labelled.h5", num_shards=3)
    with CrystalStore.open(out) as merged:
        got = merged.read_all()
    assert sorted(r.id for r in got) == ["c", "si", "si2"]  # fe is quarantined
    assert all("topo_class" in r.labels for r in got)

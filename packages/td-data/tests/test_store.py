"""CrystalStore: layout, indexing, id look-up, chunks, schema refusal, duplicate ids, atomic writes."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from td_data.exceptions import StoreError
from td_data.record import CrystalRecord
from td_data.store import SCHEMA_VERSION, CrystalStore, write_store


def make_records(n: int, seed: int = 0, prefix: str = "r") -> list[CrystalRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = int(rng.integers(1, 7))
        lattice = np.diag(rng.uniform(3.0, 8.0, 3)) + rng.uniform(-0.5, 0.5, (3, 3))
        props = {"band_gap": float(rng.uniform(0, 3))} if i % 2 == 0 else {"formation_energy": -float(i)}
        labels = {"topo_class": "z2_ti", "z2_indices": [1, 0, 0, 1]} if i % 3 == 0 else {}
        out.append(
            CrystalRecord(
                lattice, rng.random((k, 3)), rng.integers(1, 119, k), props, labels, f"{prefix}{i}", f"src{i}"
            )
        )
    return out


def assert_same(a: CrystalRecord, b: CrystalRecord) -> None:
    assert a.id == b.id and a.source == b.source
    np.testing.assert_array_equal(a.lattice, b.lattice)
    np.testing.assert_array_equal(a.frac_coords, b.frac_coords)
    np.testing.assert_array_equal(a.atomic_numbers, b.atomic_numbers)
    assert dict(a.properties) == dict(b.properties)
    assert dict(a.labels) == dict(b.labels)


@pytest.fixture
def records():
    return make_records(40)


@pytest.fixture
def store_path(tmp_path, records):
    return write_store(tmp_path / "s.h5", records)


def test_layout_is_flat_arrays_plus_offsets(store_path, records):
    with h5py.File(store_path, "r") as f:
        assert f.attrs["schema_version"] == SCHEMA_VERSION
        assert f["lattices"].shape == (40, 3, 3)
        total = sum(r.num_atoms for r in records)
        assert f["frac_coords"].shape == (total, 3) and f["atomic_numbers"].shape == (total,)
        np.testing.assert_array_equal(f["offsets"][:], np.concatenate([[0], np.cumsum([r.num_atoms for r in records])]))
        assert f["lattices"].chunks is not None and f["lattices"].maxshape[0] is None
        # a record without a property holds NaN in that column
        assert (
            np.isnan(f["properties/band_gap"][1]) and f["properties/band_gap"][0] == records[0].properties["band_gap"]
        )


def test_read_all_round_trip_exact(store_path, records):
    with CrystalStore.open(store_path) as store:
        out = store.read_all()
        assert len(store) == 40
    for a, b in zip(records, out):
        assert_same(a, b)
    assert out[0].labels["z2_indices"] == [1, 0, 0, 1]
    assert out[0].atomic_numbers.dtype == np.int64 and out[0].frac_coords.dtype == np.float64
    with pytest.raises(ValueError):
        out[0].frac_coords[0, 0] = 0.5  # read-only like every record's arrays


def test_indexing(store_path, records):
    with CrystalStore.open(store_path) as store:
        assert_same(store[3], records[3])
        assert_same(store[-1], records[-1])
        assert [r.id for r in store[5:9]] == ["r5", "r6", "r7", "r8"]
        assert [r.id for r in store[::13]] == ["r0", "r13", "r26", "r39"]
        assert [r.id for r in store[[30, 2, 2, -1]]] == ["r30", "r2", "r2", "r39"]
        assert [r.id for r in store[np.array([1, 39, 0])]] == ["r1", "r39", "r0"]
        mask = np.zeros(40, bool)
        mask[[4, 7]] = True
        assert [r.id for r in store[mask]] == ["r4", "r7"]
        assert store[10:10] == [] and store[np.array([], dtype=int)] == []
        with pytest.raises(IndexError, match="got 40"):
            store[40]
        with pytest.raises(IndexError, match="got -41"):
            store[[0, -41]]
        with pytest.raises(IndexError):
            store[np.array([0.5])]


def test_get_by_id_and_contains(store_path, records):
    with CrystalStore.open(store_path) as store:
        assert_same(store.get("r17"), records[17])
        assert store.get("nope") is None and store.get("nope", 0) == 0
        assert "r3" in store and "zz" not in store
        assert store.ids == [r.id for r in records]


def test_iter_chunks(store_path):
    with CrystalStore.open(store_path) as store:
        chunks = list(store.iter_chunks(15))
        assert [len(c) for c in chunks] == [15, 15, 10]
        assert [r.id for c in chunks for r in c] == [r.id for r in store]
        with pytest.raises(StoreError, match="at least 1, got 0"):
            list(store.iter_chunks(0))


def test_append_in_place_and_new_property_columns(store_path):
    extra = [r.with_properties(heat_ref=1.5) for r in make_records(3, seed=1, prefix="x")]
    with CrystalStore.open(store_path, mode="a") as store:
        store.append(extra)
        assert len(store) == 43 and store.get("x2") is not None
    with CrystalStore.open(store_path) as store:
        assert store.property_names == ["band_gap", "formation_energy", "heat_ref"]
        assert "heat_ref" not in store[0].properties  # earlier rows: NaN, i.e. missing
        assert store[-1].properties["heat_ref"] == 1.5
        with pytest.raises(StoreError, match="read-only"):
            store.append(extra)


def test_duplicate_ids_refused_and_nothing_written(store_path, records):
    with CrystalStore.open(store_path, mode="a") as store:
        with pytest.raises(StoreError, match="duplicate id 'r5'"):
            store.append([records[5]])
        twice = make_records(2, seed=3, prefix="new")
        with pytest.raises(StoreError, match="duplicate id 'new1'"):
            store.append([twice[0], twice[1], twice[1]])
        with pytest.raises(StoreError, match="non-empty id"):
            store.append([twice[0].replace(id="")])
        with pytest.raises(StoreError, match="CrystalRecord objects, got dict"):
            store.append([{}])
        assert len(store) == 40
    with CrystalStore.open(store_path) as store:
        assert len(store) == 40


def test_schema_version_and_format_refused(tmp_path, store_path):
    with h5py.File(store_path, "a") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(StoreError, match="schema_version 1, got 99"):
        CrystalStore.open(store_path)
    junk = tmp_path / "junk.h5"
    with h5py.File(junk, "w") as f:
        f["x"] = 1
    with pytest.raises(StoreError, match="format must be 'td-data.crystal-store'"):
        CrystalStore.open(junk)
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    with pytest.raises(StoreError, match="must be an HDF5 file"):
        CrystalStore.open(text)
    with pytest.raises(StoreError, match="no store file"):
        CrystalStore.open(tmp_path / "missing.h5")
    with pytest.raises(StoreError, match="mode must be"):
        CrystalStore.open(store_path, mode="w")


def test_corrupt_values_refused_on_read(store_path):
    with h5py.File(store_path, "a") as f:
        f["frac_coords"][2, 1] = np.nan
    with CrystalStore.open(store_path) as store:
        with pytest.raises(StoreError, match=r"frac_coords must be finite and in \[0, 1\)"):
            store.read_all()


def test_rows_past_num_records_are_ignored_and_overwritten(store_path, records):
    # an append interrupted before its commit leaves rows past num_records: they do not count
    with h5py.File(store_path, "a") as f:
        f.attrs["num_records"] = 38
    with CrystalStore.open(store_path, mode="a") as store:
        assert len(store) == 38 and "r39" not in store
        store.append([records[39]])
    with CrystalStore.open(store_path) as store:
        assert len(store) == 39
        assert_same(store[-1], records[39])


def _no_temp_files(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == []


def test_atomic_write_no_file_after_failure(tmp_path, records):
    def exploding():
        yield from records[:10]
        raise RuntimeError("disk on fire")

    path = tmp_path / "new.h5"
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_store(path, exploding())
    assert not path.exists() and _no_temp_files(tmp_path)


def test_atomic_write_keeps_old_file(tmp_path, store_path, records):
    with pytest.raises(StoreError, match="overwrite=True"):
        write_store(store_path, records[:2])
    with pytest.raises(StoreError, match="duplicate id 'r0'"):
        write_store(store_path, records[:3] + records[:1], overwrite=True)
    assert _no_temp_files(tmp_path)
    with CrystalStore.open(store_path) as store:
        assert len(store) == 40  # the old file is intact
    write_store(store_path, records[:2], overwrite=True)
    with CrystalStore.open(store_path) as store:
        assert len(store) == 2


def test_create_renames_on_close_only(tmp_path, records):
    path = tmp_path / "c.h5"
    store = CrystalStore.create(path)
    store.append(records[:5])
    assert not path.exists()  # still under its temporary name
    store.close()
    assert path.exists() and _no_temp_files(tmp_path)
    with pytest.raises(StoreError, match="overwrite=True"):
        CrystalStore.create(path)
    with pytest.raises(KeyError):
        with CrystalStore.create(path, overwrite=True) as s:
            s.append(records[5:])
            raise KeyError("boom")
    assert _no_temp_files(tmp_path)
    with CrystalStore.open(path) as s:
        assert len(s) == 5
    empty = write_store(tmp_path / "empty.h5", [])
    with CrystalStore.open(empty) as s:
        assert len(s) == 0 and s.read_all() == [] and s.ids == []


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 12),
    seed=st.integers(0, 10_000),
    split=st.integers(0, 12),
)
def test_round_trip_any_batches(tmp_path_factory, n, seed, split):
    recs = make_records(n, seed=seed)
    path = tmp_path_factory.mktemp("h") / "s.h5"
    with CrystalStore.create(path) as store:
        store.append(recs[:split])
        store.append(recs[split:])
    with CrystalStore.open(path) as store:
        out = store.read_all()
        assert len(out) == n
        for a, b in zip(recs, out):
            assert_same(a, b)
        i = seed % n
        assert_same(store.get(recs[i].id), recs[i])

"""td-data as the pipelines use it (the user guide's ``pytest tests/test_data.py``): a folder of the user's CIF,
POSCAR and JSON files in, records out, the HDF5 store, and a split that is the same every time.

td-data's own unit tests live in ``packages/td-data/tests``; here the steps are chained as ingest -> store ->
split -> store run them, on files written the way users have them (pymatgen's CIF and POSCAR writers, td-data
record JSON and pymatgen Structure JSON), made from td-physics' reference crystals.

Runs with pytest or as a script: ``python tests/test_data.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def user_folder(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    from tests._crystal_files import write_user_folder  # imported here: a script run sets the root path first

    folder = tmp_path_factory.mktemp("user") / "crystals"
    return folder, write_user_folder(folder)


@pytest.fixture(scope="module")
def loaded(user_folder):
    from td_data import load_materials_database

    folder, _ = user_folder
    return load_materials_database(folder)


def _by_file(records) -> dict[str, object]:
    return {Path(r.source).name: r for r in records}


def test_every_file_of_the_folder_is_read_or_quarantined_with_its_reason(user_folder, loaded):
    from tests._crystal_files import BROKEN

    folder, written = user_folder
    on_disk = sorted(p.name for p in folder.iterdir())
    read = sorted(Path(r.source).name for r in loaded.records)
    quarantined = sorted(Path(q.source).name for q in loaded.quarantined)
    assert read == sorted(written.values())
    assert quarantined == sorted(BROKEN)
    assert sorted(read + quarantined) == on_disk  # nothing vanished
    assert all(q.reason for q in loaded.quarantined)
    assert len({r.id for r in loaded.records}) == len(loaded.records)  # ids unique across formats


def test_records_hold_the_crystals_that_were_written(user_folder, loaded):
    from tests._crystal_files import reference_record

    _, written = user_folder
    by_file = _by_file(loaded.records)
    for name, file_name in written.items():
        record, expected = by_file[file_name], reference_record(name)
        assert record.composition == expected.composition, name
        assert record.volume == pytest.approx(expected.volume, rel=1e-6), name
        assert np.allclose(sorted(record.lattice_parameters), sorted(expected.lattice_parameters), rtol=1e-6)
        assert record.frac_coords.min() >= 0 and record.frac_coords.max() < 1
    # the properties that a format carries are kept (record JSON), none are invented for the others
    for name, file_name in written.items():
        if file_name.endswith(".json") and not file_name.endswith(".structure.json"):
            assert set(by_file[file_name].properties) == {"band_gap"}
            assert by_file[file_name].id == name
        else:
            assert dict(by_file[file_name].properties) == {}


def test_hdf5_store_round_trip_keeps_records_in_order(loaded, tmp_path):
    from td_data.store import CrystalStore, write_store

    records = [r.with_labels(topo_class="trivial", confidence=1.0) for r in loaded.records]
    umask = os.umask(0o022)
    os.umask(umask)
    (tmp_path / "01_raw").mkdir()
    path = write_store(tmp_path / "01_raw" / "crystals.h5", records)
    assert sorted(p.name for p in path.parent.iterdir()) == ["crystals.h5"]  # no temporary file left behind
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # the user's umask, as any file they write
    with CrystalStore.open(path) as store:
        assert len(store) == len(records)
        back = store.read_all()
    assert [r.id for r in back] == [r.id for r in records]
    for original, restored in zip(records, back, strict=True):
        np.testing.assert_allclose(restored.lattice, original.lattice)
        np.testing.assert_allclose(restored.frac_coords, original.frac_coords)
        np.testing.assert_array_equal(restored.atomic_numbers, original.atomic_numbers)
        assert dict(restored.properties) == dict(original.properties)
        assert dict(restored.labels) == dict(original.labels)
        assert restored.source == original.source


@pytest.mark.parametrize("method", ["random", "composition"])
def test_split_is_reproducible_and_partitions_the_records(loaded, tmp_path, method):
    from td_data.splits import apply_split, composition_split, load_split, random_split, save_split
    from td_data.store import CrystalStore, write_store

    make = random_split if method == "random" else composition_split
    records = list(loaded.records)
    split = make(records, fractions=(0.8, 0.1, 0.1), seed=0)
    assert make(records, fractions=(0.8, 0.1, 0.1), seed=0) == split  # same inputs, same split
    assert make(list(reversed(records)), fractions=(0.8, 0.1, 0.1), seed=0) == split  # not the input order
    ids = [*split.train, *split.val, *split.test]
    assert sorted(ids) == sorted(r.id for r in records) and len(set(ids)) == len(ids)
    assert len(split.train) >= len(records) * 0.6 and split.sizes[1] + split.sizes[2] >= 1
    if method == "composition":
        formula = {r.id: r.formula for r in records}
        sets = [{formula[i] for i in part} for part in (split.train, split.val, split.test)]
        assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    # saved with the data and read back, it selects the same records from the store
    assert load_split(save_split(split, tmp_path / "split.json")) == split
    with CrystalStore.open(write_store(tmp_path / "crystals.h5", records)) as store:
        stored = store.read_all()
    train, val, test = apply_split(stored, split)
    assert [r.id for r in train] == list(split.train)
    assert [r.id for r in val] == list(split.val) and [r.id for r in test] == list(split.test)


def test_seeds_change_the_random_split(loaded):
    from td_data.splits import random_split

    splits = {random_split(list(loaded.records), fractions=(0.5, 0.25, 0.25), seed=s).train for s in range(4)}
    assert len(splits) > 1


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-v"]))

"""Generated candidates are read back as written: the readers' plausibility limits (issue 15) must not hide
the invalid ones from the evaluation, which counts them."""

from __future__ import annotations

import numpy as np

from pipelines.datasets import CifFolderDataset
from td_data import CrystalRecord, load_materials_database
from td_data.validity import structure_validity


def test_invalid_candidates_survive_the_cif_folder_round_trip(tmp_path):
    crushed = CrystalRecord(4.0 * np.eye(3), [[0, 0, 0], [0.01, 0, 0]], ["Na", "Cl"], id="cand-0000")
    fine = CrystalRecord(4.12 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5]], ["Cs", "Cl"], id="cand-0001")
    dataset = CifFolderDataset(path=tmp_path / "candidates")
    dataset.save([crushed, fine])
    loaded = dataset.load()
    assert [r.id for r in loaded] == ["cand-0000", "cand-0001"] and dataset.quarantined == []
    assert structure_validity(loaded[0]) == (False, "shortest interatomic distance 0.040 A is below 0.5 A")
    # a user's own folder, read with the defaults, refuses the same crystal
    result = load_materials_database(sorted((tmp_path / "candidates").glob("*.cif")))
    assert [q.reason for q in result.quarantined] == ["atoms 0 and 1 are 0.04 A apart, below min_distance 0.5 A"]
    assert [r.formula for r in result.records] == ["CsCl"]


def test_candidate_folder_gets_the_umask_permissions(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        dataset = CifFolderDataset(path=tmp_path / "candidates")
        dataset.save([CrystalRecord(4.12 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5]], ["Cs", "Cl"], id="c")])
        assert stat.S_IMODE((tmp_path / "candidates").stat().st_mode) == 0o755  # not mkdtemp's 0700
        assert {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "candidates").iterdir()} == {0o644}
    finally:
        os.umask(old)

"""td_data.evaluation.datasets: the benchmark split files, checked and read into records."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from td_data.evaluation import SPLIT_FILES, dataset_key, load_split, split_paths
from td_data.exceptions import BenchmarkDataError

CSCL = """data_CsCl
_cell_length_a 4.12
_cell_length_b 4.12
_cell_length_c 4.12
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 1'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
Cs1 Cs 0 0 0
Cl1 Cl 0.5 0.5 0.5
"""
SHARED = Path(__file__).resolve().parents[4] / "shared" / "data" / "benchmarks"


def _csv(path: Path, ids: list[str], broken: int = 0) -> Path:
    rows = ["material_id,formation_energy_per_atom,cif"]
    rows += [f'{i},-1.0,"{CSCL}"' for i in ids]
    rows += [f'bad-{k},-1.0,"not a cif"' for k in range(broken)]
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join(rows) + "\n")
    return path


def _perov5_folder(folder: Path) -> Path:
    folder.mkdir()
    _csv(folder / "val.csv.gz", ["v0", "v1"])
    _csv(folder / "train_first1024.csv.gz", ["t0"], broken=1)
    _csv(folder / "test.csv.gz", ["s0"])
    return folder


def test_split_paths_name_what_is_missing(tmp_path):
    with pytest.raises(BenchmarkDataError, match="Perov-5 data folder .* does not exist; pass the folder holding "
                       "val.csv.gz, train_first1024.csv.gz and test.csv.gz"):  # fmt: skip
        split_paths("perov5", tmp_path / "nowhere")
    (tmp_path / "carbon").mkdir()
    _csv(tmp_path / "carbon" / "val.csv.gz", ["c0"])
    with pytest.raises(BenchmarkDataError, match="Carbon-24 data folder .* lacks test.csv.gz"):
        split_paths("carbon_24", tmp_path / "carbon")
    with pytest.raises(BenchmarkDataError, match="must have split files"):
        split_paths("mp20", tmp_path)
    with pytest.raises(BenchmarkDataError, match="dataset must be one of"):
        dataset_key("qm9")


def test_load_split_reads_the_files_in_order_and_counts_quarantine(tmp_path):
    train, test = split_paths("perov_5", _perov5_folder(tmp_path / "perov_5"))
    assert [p.name for p in train] == list(SPLIT_FILES["perov_5"].train) and test.name == "test.csv.gz"
    records, n_quarantined = load_split(train, "training")
    assert [r.id for r in records] == ["v0", "v1", "t0"] and n_quarantined == 1
    assert [r.id for r in load_split(train, "training", limit=2).records] == ["v0", "v1"]
    with pytest.raises(BenchmarkDataError, match="limit must be an integer >= 1 or None, got 0"):
        load_split(train, "training", limit=0)
    empty = _csv(tmp_path / "empty.csv.gz", [], broken=2)
    with pytest.raises(BenchmarkDataError, match="the test files .* hold no readable crystal"):
        load_split([empty], "test")


@pytest.mark.skipif(not (SHARED / "perov_5" / "test.csv.gz").is_file(), reason="no benchmark data next to the repo")
def test_the_projects_perov5_copy_is_read_whole():
    _, test = split_paths("perov5", SHARED / "perov_5")
    records, n_quarantined = load_split([test], "test")
    assert len(records) == 3785 and n_quarantined == 0  # the CDVAE test split, as its README counts it

"""load_materials_database: every format, round trips, quarantine of bad input, the benchmark CSVs."""

from __future__ import annotations

import gzip
import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.io.cif import CifParser, CifWriter
from pymatgen.io.vasp import Poscar

from td_data.readers import PICKLE_REFUSED, LoadResult, Quarantined, _p1_arrays, load_materials_database
from td_data.record import CrystalRecord
from td_data.store import write_store

REPO_ROOT = Path(__file__).resolve().parents[3]
BENCHMARKS = REPO_ROOT.parent / "shared" / "data" / "benchmarks"
needs_benchmarks = pytest.mark.skipif(not BENCHMARKS.is_dir(), reason=f"benchmark data not found at {BENCHMARKS}")

CSCL = CrystalRecord(4.1 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5]], ["Cs", "Cl"], id="CsCl")
SKEWED = CrystalRecord(
    [[3.9, 0.0, 0.0], [1.1, 4.2, 0.0], [0.4, 0.7, 5.3]],
    [[0.1, 0.2, 0.3], [0.6, 0.25, 0.75], [0.9, 0.55, 0.05]],
    ["Sr", "Ti", "O"],
    {"band_gap": 1.25},
    {"topo_class": "trivial"},
    id="skewed",
)


def cif_text(rec: CrystalRecord) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CifWriter warns about noble gases' missing electronegativity
        return str(CifWriter(rec.to_structure()))


def assert_same_crystal(a: CrystalRecord, b: CrystalRecord, atol: float = 1e-6) -> None:
    """Same lattice parameters, species and fractional coordinates, in any site order."""
    np.testing.assert_allclose(a.lattice_parameters, b.lattice_parameters, atol=atol)
    assert sorted(a.atomic_numbers.tolist()) == sorted(b.atomic_numbers.tolist())
    for z, x in zip(a.atomic_numbers, a.frac_coords):
        d = b.frac_coords - x
        d -= np.round(d)
        assert np.any((b.atomic_numbers == z) & (np.abs(d).max(axis=1) < atol)), (z, x)


def reasons(result: LoadResult) -> str:
    return " | ".join(f"{q.source}: {q.reason}" for q in result.quarantined)


# ------------------------------------------------------------------------------------------ formats
def test_cif_single_and_multi_block(tmp_path):
    (tmp_path / "one.cif").write_text(cif_text(SKEWED))
    (tmp_path / "two.CIF").write_text(cif_text(CSCL) + "\n" + cif_text(SKEWED))
    result = load_materials_database(tmp_path)
    assert not result.quarantined, reasons(result)
    one, two_a, two_b = result.records
    assert one.id == "one-0" and one.source == str(tmp_path / "one.cif")
    assert_same_crystal(one, SKEWED)
    assert (two_a.id, two_b.id) == ("two-0", "two-1")
    assert two_a.source.endswith("two.CIF:entry 0") and two_b.source.endswith("two.CIF:entry 1")
    assert_same_crystal(two_a, CSCL)


@pytest.mark.filterwarnings("ignore::DeprecationWarning:spglib.*")
def test_cif_with_symmetry_goes_through_cifparser(tmp_path):
    # a conventional rock-salt cell written with its space group: the P1 fast path must decline it
    from pymatgen.core import Structure

    nacl = Structure.from_spacegroup("Fm-3m", 5.64 * np.eye(3), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    text = str(CifWriter(nacl, symprec=0.01))
    assert _p1_arrays(text) is None
    (tmp_path / "nacl.cif").write_text(text)
    (rec,) = load_materials_database(tmp_path / "nacl.cif").records
    assert rec.num_atoms == 8 and rec.composition == {"Na": 4, "Cl": 4}


def test_poscar_names(tmp_path):
    for name in ("POSCAR", "CONTCAR", "x.vasp", "y.poscar", "POSCAR_relaxed"):
        folder = tmp_path / name.replace(".", "_")
        folder.mkdir()
        Poscar(SKEWED.to_structure()).write_file(folder / name)
    result = load_materials_database(tmp_path)
    assert not result.quarantined, reasons(result)
    assert len(result.records) == 5
    for rec in result.records:
        np.testing.assert_allclose(rec.lattice, SKEWED.lattice, atol=1e-12)
        np.testing.assert_allclose(rec.frac_coords, SKEWED.frac_coords, atol=1e-12)
    # two files named POSCAR get distinct generated ids
    assert len({r.id for r in result.records}) == 5


def test_json_variants(tmp_path):
    s = SKEWED.to_structure()
    (tmp_path / "structure.json").write_text(json.dumps(s.as_dict()))
    (tmp_path / "structures.json").write_text(json.dumps([CSCL.to_structure().as_dict(), s.as_dict()]))
    (tmp_path / "records.json.gz").write_bytes(gzip.compress(json.dumps([SKEWED.to_dict()]).encode()))
    result = load_materials_database(tmp_path)
    assert not result.quarantined, reasons(result)
    by_source = {Path(r.source).name: r for r in result.records}
    expected = {"structure.json", "structures.json:entry 0", "structures.json:entry 1", "records.json.gz:entry 0"}
    assert set(by_source) == expected
    rec = by_source["records.json.gz:entry 0"]
    assert rec.id == "skewed" and rec.properties["band_gap"] == 1.25 and rec.labels["topo_class"] == "trivial"
    np.testing.assert_array_equal(rec.frac_coords, SKEWED.frac_coords)
    assert by_source["structure.json"].id == "structure-0"


def test_materials_project_export(tmp_path):
    docs = [
        {
            "material_id": "mp-22862",
            "structure": CSCL.to_structure().as_dict(),
            "band_gap": 5.1,
            "formation_energy_per_atom": -2.2,
            "energy_above_hull": 0.0,
            "is_metal": False,
        },
        {"material_id": "mp-5229", "structure": SKEWED.to_structure().as_dict(), "band_gap": None},
        {"material_id": "mp-bad", "structure": {"lattice": "nonsense"}},
    ]
    (tmp_path / "mp.json").write_text(json.dumps(docs))
    (tmp_path / "api.json").write_text(json.dumps({"data": docs[:1] + [dict(docs[1], material_id="mp-1")]}))
    result = load_materials_database(tmp_path)
    ids = [r.id for r in result.records]
    assert ids == ["mp-22862", "mp-1", "mp-5229"]  # api.json is read first; its mp-22862 wins
    first = result.records[0]
    assert dict(first.properties) == {"band_gap": 5.1, "formation_energy": -2.2, "e_above_hull": 0.0}
    assert dict(result.records[2].properties) == {}
    assert [q.source.split("/")[-1] for q in result.quarantined] == ["mp.json:entry 0", "mp.json:entry 2"]
    assert result.quarantined[0].reason.startswith("duplicate id 'mp-22862' (first read from")
    assert result.quarantined[0].record_id == "mp-22862"


def test_csv_rows_properties_and_bad_row(tmp_path):
    frame = pd.DataFrame(
        {
            "material_id": ["a", "b", "c"],
            "cif": [cif_text(CSCL), "data_x\n_cell_length_a 4\n", cif_text(SKEWED)],
            "formation_energy_per_atom": [-1.0, 0.0, np.nan],
            "band_gap": [0.5, 1.0, 2.0],
            "formula": ["CsCl", "?", "SrTiO"],
        }
    )
    frame.to_csv(tmp_path / "t.csv")  # with the leading unnamed index column, as CDVAE's files
    result = load_materials_database(tmp_path / "t.csv")
    assert [r.id for r in result.records] == ["a", "c"]
    a, c = result.records
    assert dict(a.properties) == {"formation_energy_per_atom": -1.0, "formation_energy": -1.0, "band_gap": 0.5}
    assert dict(c.properties) == {"band_gap": 2.0}  # NaN: missing, not stored
    assert a.source == f"{tmp_path / 't.csv'}:row 0" and c.source.endswith("t.csv:row 2")
    (q,) = result.quarantined
    assert q.source == f"{tmp_path / 't.csv'}:row 1" and "CIF" in q.reason
    pd.DataFrame({"x": [1]}).to_csv(tmp_path / "nocif.csv", index=False)
    (q,) = load_materials_database(tmp_path / "nocif.csv").quarantined
    assert "needs a 'cif' column" in q.reason


def test_store_source_and_ids(tmp_path):
    path = write_store(tmp_path / "s.hdf5", [CSCL, SKEWED])
    result = load_materials_database(path)
    assert [r.id for r in result.records] == ["CsCl", "skewed"]
    assert result.records[1].source == f"{path}:entry 1"
    assert result.records[1].labels["topo_class"] == "trivial"


def test_pickle_needs_trust(tmp_path):
    path = tmp_path / "recs.pkl"
    path.write_bytes(pickle.dumps([CSCL.to_dict(), SKEWED.to_structure()]))
    refused = load_materials_database(path)
    assert refused.records == [] and refused.quarantined == [Quarantined(None, str(path), PICKLE_REFUSED)]
    assert PICKLE_REFUSED == "pickle can run code when loaded; pass trusted=True only for files you trust"
    trusted = load_materials_database(path, trusted=True)
    assert not trusted.quarantined, reasons(trusted)
    assert [r.id for r in trusted.records] == ["CsCl", "recs-1"]


def test_untrusted_pickle_is_never_unpickled(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(pickle, "load", lambda *a, **k: calls.append(1))
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: calls.append(1))
    (tmp_path / "evil.pickle").write_bytes(b"\x80\x04junk")
    result = load_materials_database(tmp_path)
    assert calls == [] and result.quarantined[0].reason == PICKLE_REFUSED


# ------------------------------------------------------------------------------------------ round trips
def test_round_trip_every_format(tmp_path):
    rec = SKEWED
    (tmp_path / "a.cif").write_text(cif_text(rec))
    Poscar(rec.to_structure()).write_file(tmp_path / "b.vasp")
    (tmp_path / "c.json").write_text(json.dumps(rec.replace(id="c").to_dict()))
    write_store(tmp_path / "d.h5", [rec.replace(id="d")])
    result = load_materials_database(tmp_path)
    assert not result.quarantined, reasons(result)
    a, b, c, d = result.records
    matcher = StructureMatcher()
    for out in (a, b, c, d):
        assert matcher.fit(out.to_structure(), rec.to_structure())
        assert_same_crystal(out, rec)
    for exact in (c, d):
        np.testing.assert_array_equal(exact.lattice, rec.lattice)
        np.testing.assert_array_equal(exact.frac_coords, rec.frac_coords)
        np.testing.assert_array_equal(exact.atomic_numbers, rec.atomic_numbers)
        assert dict(exact.properties) == dict(rec.properties) and dict(exact.labels) == dict(rec.labels)


crystals = st.builds(
    lambda n, seed: _random_record(n, seed),
    st.integers(1, 6),
    st.integers(0, 2**31),
)


def _random_record(n: int, seed: int) -> CrystalRecord:
    rng = np.random.default_rng(seed)
    lattice = np.diag(rng.uniform(3, 7, 3)) + np.triu(rng.uniform(-1, 1, (3, 3)), 1)
    # coordinates on a grid of 0.1 so that no two sites sit within CifParser's merge tolerance
    grid = rng.choice(1000, size=n, replace=False)
    frac = np.stack([grid // 100, grid // 10 % 10, grid % 10], axis=1) / 10 + rng.uniform(0, 0.05, (n, 3))
    return CrystalRecord(lattice, frac, rng.integers(1, 95, n), id=f"h{seed}")


@settings(max_examples=15, deadline=None)
@given(rec=crystals)
def test_round_trip_property(tmp_path_factory, rec):
    folder = tmp_path_factory.mktemp("rt")
    (folder / "a.cif").write_text(cif_text(rec))
    Poscar(rec.to_structure()).write_file(folder / "b.vasp")
    (folder / "c.json").write_text(json.dumps(rec.replace(id="c").to_dict()))
    write_store(folder / "d.h5", [rec.replace(id="d")])
    result = load_materials_database(folder, min_distance=None)  # random sites may sit closer than 0.5 A
    assert len(result.records) == 4, reasons(result)
    for out in result.records:
        assert_same_crystal(out, rec, atol=1e-6)


# ------------------------------------------------------------------------------------------ quarantine
def _cscl_cif() -> str:
    return cif_text(CSCL)


BAD_CIFS = {
    "truncated.cif": _cscl_cif()[: len(_cscl_cif()) // 2],
    "unknown_element.cif": _cscl_cif().replace("Cl  Cl1", "Xx  Xx1"),
    "zero_volume.cif": _cscl_cif().replace("_cell_length_a   4.10000000", "_cell_length_a   0.0"),
    "nan_coords.cif": _cscl_cif().replace("0.50000000  0.50000000  0.50000000", "nan  0.5  0.5"),
    "empty.cif": "",
    "partial.cif": _cscl_cif().replace(
        "0.50000000  0.50000000  0.50000000  1", "0.50000000  0.50000000  0.50000000  0.5"
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_CIFS))
def test_bad_cif_quarantined(tmp_path, name):
    assert BAD_CIFS[name] != _cscl_cif()
    (tmp_path / name).write_text(BAD_CIFS[name])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warnings as errors: nothing escapes, nothing crashes
        result = load_materials_database(tmp_path / name)
    assert result.records == []
    (q,) = result.quarantined
    assert q.source == str(tmp_path / name) and q.reason
    expected = {
        "unknown_element.cif": "known element",
        "partial.cif": "partially occupied",
        "empty.cif": "must not be empty",
        "zero_volume.cif": "CIF cell lengths must be positive numbers (Angstrom), got _cell_length_a 0.0",
        "nan_coords.cif": "finite numbers",
    }.get(name, "")
    assert expected in q.reason


@pytest.mark.parametrize(
    "name, data, expected",
    [
        ("latin1.cif", _cscl_cif().replace("CsCl", "CsCl \xe9").encode("latin-1"), "not UTF-8 text"),
        ("junk.json", bytes(range(256)) * 4, "NUL bytes"),
        ("junk.csv", b"\xff\xfe\x00\x01" * 50, "NUL bytes"),
        ("empty.json", b"", "must not be empty"),
        ("bad.json", b'{"lattice": ', "JSONDecodeError"),
        ("other.json", b'{"hello": 1}', "Structure dict"),
        ("nan.json", json.dumps({**CSCL.to_dict(), "frac_coords": [[0, 0, 0], [np.nan, 0.5, 0.5]]}).encode(), "finite"),
        ("bad.vasp", b"not a poscar\n1.0\n", ""),
        ("bad.h5", b"not hdf5 at all", "HDF5"),
        ("notes.txt", b"hello", "unknown file type"),
        ("bad.json.gz", b"not gzip", "gzip"),
    ],
)
def test_bad_files_quarantined(tmp_path, name, data, expected):
    (tmp_path / name).write_bytes(data)
    result = load_materials_database(tmp_path / name)
    assert result.records == []
    (q,) = result.quarantined
    assert q.source == str(tmp_path / name) and expected in q.reason


def test_one_bad_file_among_many(tmp_path):
    for i in range(6):
        rec = SKEWED.replace(id=f"good{i}")
        (tmp_path / f"g{i}.json").write_text(json.dumps(rec.to_dict()))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "g.cif").write_text(cif_text(CSCL))
    (tmp_path / "sub" / "broken.cif").write_text(BAD_CIFS["truncated.cif"])
    (tmp_path / ".hidden.cif").write_text("junk")  # hidden files in folders are skipped
    result = load_materials_database([tmp_path])
    assert len(result.records) == 7 and len(result.quarantined) == 1
    assert result.quarantined[0].source == str(tmp_path / "sub" / "broken.cif")
    assert result.summary() == {"records": 7, "quarantined": 1, "duplicate_ids": 0, "files": 8, "parser_warnings": 1}
    flat = load_materials_database(tmp_path, recursive=False)
    assert len(flat.records) == 6 and not flat.quarantined


def test_duplicates_missing_paths_and_id_collisions(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x.json").write_text(json.dumps(CSCL.to_dict()))
    (tmp_path / "b" / "x.json").write_text(json.dumps(CSCL.to_dict()))
    (tmp_path / "a" / "s.cif").write_text(cif_text(SKEWED))
    (tmp_path / "b" / "s.cif").write_text(cif_text(SKEWED))
    result = load_materials_database([tmp_path / "a", tmp_path / "b", tmp_path / "nowhere"])
    assert [r.id for r in result.records] == ["s-0", "CsCl", "s-0.2"]
    dup, missing = result.quarantined
    assert dup.source == str(tmp_path / "b" / "x.json") and dup.reason.startswith("duplicate id 'CsCl'")
    assert missing.reason.startswith("no such file or directory")
    assert result.summary()["duplicate_ids"] == 1


# ------------------------------------------------------------------------------------------ benchmark CSVs
@pytest.fixture(scope="module")
def perov():
    return load_materials_database(BENCHMARKS / "perov_5" / "test.csv.gz")


@needs_benchmarks
def test_perov5_test_split(perov):
    assert len(perov.records) == 3785 and not perov.quarantined
    assert all(r.num_atoms == 5 for r in perov.records)
    assert {"heat_ref", "heat_all", "dir_gap", "ind_gap"} <= set(perov.records[0].properties)
    assert len({r.id for r in perov.records}) == 3785
    assert perov.records[10].source.endswith("perov_5/test.csv.gz:row 10")


@needs_benchmarks
def test_carbon24_and_mp20_sample():
    carbon = load_materials_database(BENCHMARKS / "carbon_24" / "test.csv.gz")
    assert len(carbon.records) == 2030 and not carbon.quarantined
    assert all(set(r.atomic_numbers.tolist()) == {6} and 6 <= r.num_atoms <= 24 for r in carbon.records)
    assert all(-155 < r.properties["energy_per_atom"] < -154 for r in carbon.records)
    mp = load_materials_database(BENCHMARKS / "mp_20_sample")
    assert mp.summary()["records"] == 847 + 123 + 142 + 243 and not mp.quarantined
    assert mp.summary()["files"] == 4
    rec = mp.records[0]
    assert rec.id.startswith(("mp-", "mvc-"))
    assert {"formation_energy", "formation_energy_per_atom", "band_gap", "e_above_hull"} <= set(rec.properties)
    assert rec.properties["formation_energy"] == rec.properties["formation_energy_per_atom"]
    assert max(r.num_atoms for r in mp.records) == 20


@needs_benchmarks
def test_p1_fast_path_agrees_with_cifparser():
    frames = [
        pd.read_csv(BENCHMARKS / "mp_20_sample" / "test_sample142.csv.gz"),
        pd.read_csv(BENCHMARKS / "perov_5" / "val.csv.gz", nrows=60),
        pd.read_csv(BENCHMARKS / "carbon_24" / "val.csv.gz", nrows=60),
    ]
    for cif in pd.concat(frames)["cif"]:
        lattice, frac, numbers = _p1_arrays(cif)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = CifParser.from_str(cif).parse_structures(primitive=False)[0]
        fast = CrystalRecord(lattice, frac, numbers)
        np.testing.assert_allclose(lattice, ref.lattice.matrix, atol=1e-9)
        # CifParser snaps coordinates within 1e-4 of 1/3, 2/3 and sorts the sites
        assert_same_crystal(fast, CrystalRecord.from_structure(ref), atol=2e-4)

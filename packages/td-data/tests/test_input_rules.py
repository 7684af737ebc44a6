"""Bad input costs only itself, impossible crystals are refused, every reason names the rule (issue 15).

Each test writes files to disk and calls :func:`load_materials_database` on them, as a user does.
"""

from __future__ import annotations

import errno
import gzip
import os
import re
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from td_data.plausibility import DEFAULT_MIN_DISTANCE, DEFAULT_MIN_VOLUME_PER_ATOM, Plausibility, closest_pair
from td_data.readers import load_materials_database
from td_data.record import CrystalRecord

BENCHMARKS = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "benchmarks"
needs_benchmarks = pytest.mark.skipif(not BENCHMARKS.is_dir(), reason=f"benchmark data not found at {BENCHMARKS}")

NACL_POSCAR = "NaCl\n1.0\n5.64 0 0\n0 5.64 0\n0 0 5.64\nNa Cl\n1 1\ndirect\n0 0 0\n0.5 0.5 0.5\n"


def p1_cif(a=4.0, b=4.0, c=4.0, alpha=90.0, beta=90.0, gamma=90.0, sites=(("Cs", 0, 0, 0), ("Cl", 0.5, 0.5, 0.5))):
    rows = "\n".join(f" {el} {el}{i} {x} {y} {z} 1" for i, (el, x, y, z) in enumerate(sites))
    return f"""data_test
_symmetry_space_group_name_H-M 'P 1'
_cell_length_a {a}
_cell_length_b {b}
_cell_length_c {c}
_cell_angle_alpha {alpha}
_cell_angle_beta {beta}
_cell_angle_gamma {gamma}
loop_
_symmetry_equiv_pos_as_xyz
 'x, y, z'
loop_
_atom_site_type_symbol
_atom_site_label
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
{rows}
"""


def only_reason(result, name: str) -> str:
    matching = [q for q in result.quarantined if Path(q.source.split(":")[0]).name == name]
    assert len(matching) == 1, result.quarantined
    return matching[0].reason


# ------------------------------------------------------------------------------------------ 1. CSV rows
def csv_row(material_id: str, cif: str, formation_energy: str, band_gap: str = "1.0", extra: str = "") -> str:
    quoted = '"' + cif.replace('"', '""') + '"'
    return f"{material_id},{formation_energy},{band_gap},{quoted}{extra}\n"


def test_csv_bad_rows_cost_one_row_each(tmp_path):
    header = "material_id,formation_energy_per_atom,band_gap,cif\n"
    good = p1_cif()
    text = (
        header
        + csv_row("m0", good, "-1.5")
        + csv_row("m1", good, "-1.6", extra=",surplus")  # one field too many
        + csv_row("m2", good, "abc")  # text in a numeric column
        + csv_row("m3", good, "-1.7")
        + csv_row("m4", good, "", band_gap="2.5")  # missing value: the record lacks it
        + csv_row("m5", good, "inf")
    )
    path = tmp_path / "table.csv"
    path.write_text(text)
    result = load_materials_database(path)
    assert [r.id for r in result.records] == ["m0", "m3", "m4"]
    assert [r.properties.get("formation_energy") for r in result.records] == [-1.5, -1.7, None]
    assert result.records[0].properties["formation_energy_per_atom"] == -1.5
    assert result.records[2].properties["band_gap"] == 2.5
    reasons = {q.source.rsplit(":", 1)[1]: q.reason for q in result.quarantined}
    assert set(reasons) == {"row 1", "row 2", "row 5"}
    assert "header's 4 fields, got 5 in data row 1" in reasons["row 1"]
    assert "column 'formation_energy_per_atom'" in reasons["row 2"] and "'abc'" in reasons["row 2"]
    assert "data row 2" in reasons["row 2"]
    assert "'inf'" in reasons["row 5"] and "finite" in reasons["row 5"]


def test_csv_text_columns_are_not_properties_and_gzip_works(tmp_path):
    text = "material_id,pretty_formula,e_above_hull,cif\n" + "".join(
        f'm{i},CsCl,0.0{i},"{p1_cif()}"\n' for i in range(3)
    )
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(text.encode()))
    result = load_materials_database(tmp_path / "t.csv.gz")
    assert not result.quarantined
    assert [dict(r.properties) for r in result.records] == [{"e_above_hull": i / 100} for i in range(3)]


# ------------------------------------------------------------------------------------------ 2. impossible crystals
def test_atoms_too_close_are_quarantined_with_rule_and_value(tmp_path):
    (tmp_path / "close.cif").write_text(p1_cif(sites=(("Na", 0, 0, 0), ("Cl", 0.01, 0, 0))))
    (tmp_path / "fine.cif").write_text(p1_cif())
    result = load_materials_database(tmp_path)
    assert [Path(r.source).name for r in result.records] == ["fine.cif"]
    assert only_reason(result, "close.cif") == "atoms 0 and 1 are 0.04 A apart, below min_distance 0.5 A"


def test_close_periodic_images_count(tmp_path):
    # the two atoms are 0.04 A apart only through the cell boundary (x = 0.005 and x = 0.995)
    (tmp_path / "wrap.cif").write_text(p1_cif(sites=(("Na", 0.005, 0.5, 0.5), ("Cl", 0.995, 0.5, 0.5))))
    result = load_materials_database(tmp_path)
    assert only_reason(result, "wrap.cif") == "atoms 0 and 1 are 0.04 A apart, below min_distance 0.5 A"


def test_collapsed_cell_is_quarantined_with_volume_per_atom(tmp_path):
    # alpha = beta = gamma = 120 degrees: the three vectors are coplanar, volume 1.9e-6 A^3 from rounding
    (tmp_path / "flat.cif").write_text(p1_cif(alpha=120, beta=120, gamma=120))
    result = load_materials_database(tmp_path)
    assert result.records == []
    reason = only_reason(result, "flat.cif")
    assert reason.startswith("cell volume 1.89e-06 A^3 for 2 atoms")
    assert "below min_volume_per_atom 1.0 A^3" in reason


def test_the_same_rules_apply_to_poscar_json_and_store(tmp_path):
    from td_data.store import write_store

    crushed = CrystalRecord(4.0 * np.eye(3), [[0, 0, 0], [0.01, 0, 0]], ["Na", "Cl"], id="crushed")
    (tmp_path / "c.vasp").write_text(NACL_POSCAR.replace("0.5 0.5 0.5", "0.007 0 0"))
    (tmp_path / "c.json").write_text(__import__("json").dumps(crushed.to_dict()))
    write_store(tmp_path / "c.h5", [crushed])
    result = load_materials_database(tmp_path)
    assert result.records == []
    assert len(result.quarantined) == 3
    assert all("below min_distance 0.5 A" in q.reason for q in result.quarantined)


def test_limits_can_be_changed_or_turned_off(tmp_path):
    (tmp_path / "close.cif").write_text(p1_cif(sites=(("Na", 0, 0, 0), ("Cl", 0.1, 0, 0))))  # 0.4 A
    assert load_materials_database(tmp_path).records == []
    assert len(load_materials_database(tmp_path, min_distance=0.3).records) == 1
    assert len(load_materials_database(tmp_path, min_distance=None).records) == 1
    (tmp_path / "close.cif").write_text(p1_cif(a=1.0, b=1.0, c=1.0, sites=(("H", 0, 0, 0),)))  # 1 A^3 per atom
    assert len(load_materials_database(tmp_path, min_volume_per_atom=0.9).records) == 1
    assert load_materials_database(tmp_path, min_volume_per_atom=1.1).records == []


def test_closest_pair_matches_brute_force_in_skewed_cells():
    rng = np.random.default_rng(3)
    for _ in range(20):
        lattice = np.diag(rng.uniform(3, 6, 3)) + rng.uniform(-4, 4, (3, 3)) * np.triu(np.ones((3, 3)), 1)
        frac = rng.uniform(0, 1, (int(rng.integers(1, 9)), 3))
        d, i, j = closest_pair(lattice, frac)
        images = np.array(np.meshgrid(*[np.arange(-6, 7)] * 3, indexing="ij")).reshape(3, -1).T  # (2197, 3)
        diff = (frac[None, :, None] - frac[:, None, None] + images[None, None]) @ lattice  # (N, N, 729, 3)
        dist = np.linalg.norm(diff, axis=-1)
        dist[np.arange(len(frac)), np.arange(len(frac)), len(images) // 2] = np.inf
        assert d == pytest.approx(dist.min(), rel=1e-9)
        assert dist[i, j].min() == pytest.approx(d, rel=1e-9) or dist[j, i].min() == pytest.approx(d, rel=1e-9)


def test_closest_pair_of_a_large_cell_is_chunked_and_exact():
    rng = np.random.default_rng(0)
    frac = rng.uniform(0, 1, (1200, 3))
    frac[700] = frac[11] + [0.001, 0, 0]
    d, i, j = closest_pair(30.0 * np.eye(3), frac)
    assert (i, j) == (11, 700) and d == pytest.approx(0.03)


def assert_all_kept(files: list[Path]) -> int:
    assert {f.parent.name for f in files} == {"perov_5", "carbon_24", "mp_20_sample"}
    result = load_materials_database(files)
    assert not result.quarantined, result.quarantined[:3]
    check = Plausibility()
    assert (check.min_distance, check.min_volume_per_atom) == (DEFAULT_MIN_DISTANCE, DEFAULT_MIN_VOLUME_PER_ATOM)
    return len(result.records)


@needs_benchmarks
def test_default_limits_keep_the_benchmark_crystals():
    # one file of each data set: Carbon-24 (shortest C-C 1.19 A), the MP-20 sample (O-H 0.97 A), Perov-5
    files = [BENCHMARKS / "carbon_24" / "test.csv.gz", BENCHMARKS / "perov_5" / "train_first1024.csv.gz"]
    files += sorted((BENCHMARKS / "mp_20_sample").glob("*.csv.gz"))
    assert assert_all_kept(files) == 2030 + 1024 + 1355


@needs_benchmarks
@pytest.mark.slow
def test_default_limits_keep_every_benchmark_crystal():
    assert assert_all_kept(sorted(BENCHMARKS.glob("*/*.csv.gz"))) == 14013


# ------------------------------------------------------------------------------------------ 3. oversized CIF
def big_cif(n: int, symmetric: bool = False) -> str:
    rng = np.random.default_rng(1)
    frac = rng.uniform(0, 1, (n, 3))
    sites = tuple(("C", *np.round(x, 6)) for x in frac)
    text = p1_cif(a=200.0, b=200.0, c=200.0, sites=sites)
    if symmetric:  # P -1: every general site has two images
        text = text.replace(" 'x, y, z'\n", " 'x, y, z'\n '-x, -y, -z'\n")
    return text


def test_oversized_cif_is_refused_before_parsing(tmp_path, monkeypatch):
    import pymatgen.io.cif

    def no_parse(*args, **kwargs):
        raise AssertionError("pymatgen must not parse an oversized CIF")

    monkeypatch.setattr(pymatgen.io.cif.CifParser, "from_str", no_parse)
    monkeypatch.setattr(pymatgen.io.cif.CifFile, "from_str", no_parse)
    (tmp_path / "huge.cif").write_text(big_cif(50_000))
    result = load_materials_database(tmp_path, max_atoms=20)
    assert result.records == []
    assert only_reason(result, "huge.cif") == (
        "ReaderError: the CIF has 50000 atom-site rows, more than max_atoms 20 (checked before parsing)"
    )
    result = load_materials_database(tmp_path)  # the default limit, 1000
    assert "50000 atom-site rows, more than max_atoms 1000" in only_reason(result, "huge.cif")


def test_symmetry_images_count_towards_max_atoms(tmp_path, monkeypatch):
    import pymatgen.io.cif

    (tmp_path / "sym.cif").write_text(big_cif(15, symmetric=True))
    monkeypatch.setattr(pymatgen.io.cif.CifParser, "from_str", lambda *a, **k: pytest.fail("parsed"))
    result = load_materials_database(tmp_path, max_atoms=20)
    reason = only_reason(result, "sym.cif")
    assert "the CIF has 30 atoms (15 atom-site rows and their images under 2 symmetry operations)" in reason
    assert "more than max_atoms 20" in reason
    monkeypatch.undo()
    assert [r.num_atoms for r in load_materials_database(tmp_path, max_atoms=30).records] == [30]


def test_max_atoms_applies_to_every_format(tmp_path):
    (tmp_path / "POSCAR").write_text(NACL_POSCAR)
    result = load_materials_database(tmp_path, max_atoms=1)
    assert only_reason(result, "POSCAR") == "2 atoms in the cell, more than max_atoms 1"


# ------------------------------------------------------------------------------------------ 4. links and reasons
def test_symlink_loop_and_broken_link_in_a_folder_are_quarantined(tmp_path):
    (tmp_path / "good.vasp").write_text(NACL_POSCAR)
    os.symlink("loop_b.cif", tmp_path / "loop_a.cif")
    os.symlink("loop_a.cif", tmp_path / "loop_b.cif")
    os.symlink("missing.cif", tmp_path / "broken.cif")
    (tmp_path / "sub").mkdir()
    os.symlink("..", tmp_path / "sub" / "up")  # a folder loop
    result = load_materials_database(tmp_path)
    assert [Path(r.source).name for r in result.records] == ["good.vasp"]
    assert only_reason(result, "loop_a.cif").startswith("symbolic link loop:")
    assert only_reason(result, "loop_b.cif").startswith("symbolic link loop:")
    assert only_reason(result, "broken.cif").startswith("broken symbolic link:")
    assert "missing.cif, which does not exist" in only_reason(result, "broken.cif")
    assert only_reason(result, "up").startswith("symbolic link loop:")


def test_link_to_a_folder_is_read(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "POSCAR").write_text(NACL_POSCAR)
    (tmp_path / "walk").mkdir()
    os.symlink(data, tmp_path / "walk" / "linked")
    result = load_materials_database(tmp_path / "walk")
    assert [r.formula for r in result.records] == ["NaCl"] and not result.quarantined


def test_a_loop_given_by_name_says_so(tmp_path):
    os.symlink("x.cif", tmp_path / "x.cif")
    (q,) = load_materials_database(tmp_path / "x.cif").quarantined
    assert q.reason.startswith("symbolic link loop:")
    assert errno.ELOOP  # the reason comes from resolving the link, which fails with ELOOP


def with_bom(text: str, encoding: str) -> bytes:
    """``text`` encoded, with a byte-order mark (``utf-16`` and ``utf-8-sig`` write one themselves)."""
    data = text.encode(encoding)
    return "\ufeff".encode(encoding) + data if encoding in ("utf-16-le", "utf-16-be") else data


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-8-sig"])
def test_utf16_and_utf8_bom_text_is_read(tmp_path, encoding):
    (tmp_path / "POSCAR").write_bytes(with_bom(NACL_POSCAR, encoding))
    (tmp_path / "t.cif").write_bytes(with_bom(p1_cif(), encoding))
    result = load_materials_database(tmp_path)
    assert sorted(r.formula for r in result.records) == ["CsCl", "NaCl"], result.quarantined


def test_utf16_without_bom_says_save_as_utf8(tmp_path):
    (tmp_path / "POSCAR").write_bytes(NACL_POSCAR.encode("utf-16-le"))
    reason = only_reason(load_materials_database(tmp_path), "POSCAR")
    assert "UTF-16" in reason and "save it as UTF-8" in reason


def test_division_by_zero_names_the_symmetry_operation(tmp_path):
    (tmp_path / "z.cif").write_text(p1_cif().replace(" 'x, y, z'\n", " 'x, y, z'\n 'x+1/0, y, z'\n"))
    reason = only_reason(load_materials_database(tmp_path), "z.cif")
    assert reason.startswith("ReaderError: CIF symmetry operations must be x,y,z expressions with finite numbers")
    assert "'x+1/0, y, z'" in reason


def test_infinite_coordinate_names_the_rule_not_overflow(tmp_path):
    (tmp_path / "o.cif").write_text(p1_cif(sites=(("Cs", 0, 0, 0), ("Cl", "1e400", 0.5, 0.5))))
    reason = only_reason(load_materials_database(tmp_path), "o.cif")
    assert reason == (
        "ReaderError: atom-site fractional coordinates must be finite numbers, got ['1e400', '0.5', '0.5'] in row 1"
    )


def test_zero_scale_poscar_names_the_volume_rule(tmp_path):
    (tmp_path / "POSCAR").write_text(NACL_POSCAR.replace("1.0\n", "0\n", 1))
    assert "cell volume must be positive" in only_reason(load_materials_database(tmp_path), "POSCAR")


def test_foreign_hdf5_files_name_the_store_layout(tmp_path):
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f["x"] = np.arange(3)
    with h5py.File(tmp_path / "array_attr.h5", "w") as f:
        f.attrs["format"] = np.arange(3)
    with h5py.File(tmp_path / "wrong_types.h5", "w") as f:
        f.attrs.update({"format": "td-data.crystal-store", "schema_version": 1, "num_records": 1})
        for name in ("lattices", "offsets", "frac_coords", "atomic_numbers", "ids", "sources", "labels"):
            f[name] = np.array([b"text", b"text"])
        f.create_group("properties")
    result = load_materials_database(tmp_path)
    assert result.records == [] and len(result.quarantined) == 3
    for q in result.quarantined:
        assert q.reason.startswith("StoreError: "), q.reason
        assert "TypeError" not in q.reason.split(":")[0]
    assert "format must be 'td-data.crystal-store'" in only_reason(result, "plain.h5")
    assert "lattices must be a float (n, 3, 3) dataset" in only_reason(result, "wrong_types.h5")


def test_reasons_for_arithmetic_errors_say_what_rule_was_broken():
    from td_data.readers import _reason

    assert "must not divide by zero" in _reason(ZeroDivisionError("float division by zero"))
    assert "must be finite" in _reason(OverflowError("cannot convert float infinity to integer"))


# ------------------------------------------------------------------------------------------ warnings stay quiet
def test_loading_shows_no_numpy_warnings_for_huge_numbers(tmp_path):
    (tmp_path / "big.cif").write_text(p1_cif(a="1e300"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        load_materials_database(tmp_path)


def _good_store(path: Path) -> Path:
    from td_data.store import write_store

    return write_store(path, [CrystalRecord(4 * np.eye(3), [[0, 0, 0]], ["Cu"], {"band_gap": 0.0}, id="a")])


def _replace(name, value):
    def change(f):
        del f[name]
        f[name] = value

    return change


FOREIGN_LAYOUTS = {
    "num_records text": (lambda f: f.attrs.__setitem__("num_records", "abc"), "num_records attribute must be"),
    "num_records array": (lambda f: f.attrs.__setitem__("num_records", np.arange(3)), "num_records attribute must"),
    "num_records negative": (lambda f: f.attrs.__setitem__("num_records", -1), "num_records attribute must be"),
    "num_records too large": (lambda f: f.attrs.__setitem__("num_records", 10), "must hold at least 10 rows"),
    "format array": (lambda f: f.attrs.__setitem__("format", np.arange(3)), "format must be 'td-data.crystal"),
    "schema array": (lambda f: f.attrs.__setitem__("schema_version", np.arange(2)), "schema_version 1, got"),
    "offsets text": (_replace("offsets", np.array([b"a", b"b"])), "offsets must be an integer (n + 1,) dataset"),
    "lattices shape": (_replace("lattices", np.zeros((1, 2, 2))), "lattices must be a float (n, 3, 3) dataset"),
    "lattices group": (lambda f: (f.__delitem__("lattices"), f.create_group("lattices")), "got a group"),
    "frac shape": (_replace("frac_coords", np.zeros((1, 2))), "frac_coords must be a float (atoms, 3)"),
    "numbers float": (_replace("atomic_numbers", np.array([1.5])), "atomic_numbers must be an integer"),
    "ids numbers": (_replace("ids", np.array([1])), "ids must be a UTF-8 string (n,) dataset"),
    "property text": (_replace("properties/band_gap", np.array([b"x"])), "property 'band_gap' must be a float"),
    "properties dataset": (_replace("properties", np.array([1.0])), "properties must be a group of float"),
}


@pytest.mark.parametrize("case", sorted(FOREIGN_LAYOUTS))
def test_store_files_of_another_layout_are_refused_with_the_rule(tmp_path, case):
    from td_data.exceptions import StoreError
    from td_data.store import CrystalStore

    change, expected = FOREIGN_LAYOUTS[case]
    path = _good_store(tmp_path / "x.h5")
    with h5py.File(path, "a") as f:
        change(f)
    with pytest.raises(StoreError, match=re.escape(expected)):
        with CrystalStore.open(path) as store:
            store.read_all()
    (q,) = load_materials_database(path).quarantined
    assert q.reason.startswith("StoreError: ") and expected in q.reason


def test_special_positions_are_counted_once(tmp_path):
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.cif import CifWriter

    silicon = Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.43), ["Si"], [[0, 0, 0]])  # 8 atoms, 192 ops
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = str(CifWriter(silicon, symprec=0.01))
    (tmp_path / "Si.cif").write_text(text)
    assert [r.num_atoms for r in load_materials_database(tmp_path, max_atoms=8).records] == [8]
    reason = only_reason(load_materials_database(tmp_path, max_atoms=7), "Si.cif")
    assert "the CIF has 8 atoms (1 atom-site rows and their images under 192 symmetry operations)" in reason


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"a": 0}, "CIF cell lengths must be positive numbers (Angstrom), got _cell_length_a 0"),
        ({"b": "-3.5(2)"}, "CIF cell lengths must be positive numbers (Angstrom), got _cell_length_b -3.5(2)"),
        (
            {"alpha": "1e308"},
            "CIF cell angles must be between 0 and 180 degrees (exclusive), got _cell_angle_alpha 1e308",
        ),
        ({"gamma": 180}, "CIF cell angles must be between 0 and 180 degrees (exclusive), got _cell_angle_gamma 180"),
    ],
)
def test_impossible_cif_cells_name_the_parameter(tmp_path, change, expected):
    (tmp_path / "cell.cif").write_text(p1_cif(**change))
    assert only_reason(load_materials_database(tmp_path), "cell.cif") == f"ReaderError: {expected}"


@pytest.mark.parametrize("shear", [37.0, 400.0, 4000.0])
def test_closest_pair_in_extremely_sheared_cells_agrees_with_niggli_reduction(shear):
    from td_data.validity import min_distance

    rng = np.random.default_rng(int(shear))
    lattice = np.array([[4.0, 0, 0], [shear, 4.1, 0], [0, 0, 4.2]])  # b nearly parallel to a: far images matter
    frac = rng.uniform(0, 1, (4, 3))
    record = CrystalRecord(lattice, frac, ["C"] * 4)
    d, i, j = closest_pair(lattice, frac)
    assert d == pytest.approx(min_distance(record), rel=1e-9)  # pymatgen's Niggli cell, 27 images

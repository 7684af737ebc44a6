"""Magnetic moments from input files are kept on the record and in the HDF5 store (issue 15)."""

from __future__ import annotations

import json
import warnings

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from td_data.augment import permute_atoms, primitive_cell, random_rotation, supercell
from td_data.exceptions import RecordValidationError, StoreError, TDDataError
from td_data.readers import load_materials_database
from td_data.record import CrystalRecord
from td_data.store import CrystalStore, write_store


def magnetic_record(n: int, seed: int, noncollinear: bool) -> CrystalRecord:
    rng = np.random.default_rng(seed)
    lattice = np.diag(rng.uniform(4, 7, 3)) + np.triu(rng.uniform(-1, 1, (3, 3)), 1)
    grid = rng.choice(27, size=n, replace=False)  # sites on a 3x3x3 grid: at least 1.3 A apart
    frac = np.stack([grid // 9, grid // 3 % 3, grid % 3], axis=1) / 3 + rng.uniform(0, 0.02, (n, 3))
    moments = np.round(rng.uniform(-5, 5, (n, 3) if noncollinear else n), 3)
    return CrystalRecord(lattice, frac, rng.choice([24, 25, 26, 27, 28], n), id=f"m{seed}", magmoms=moments)


magnetic = st.builds(magnetic_record, st.integers(1, 6), st.integers(0, 2**31), st.booleans())


def as_vectors(magmoms: np.ndarray) -> np.ndarray:
    """Collinear moments as vectors along z (pymatgen's and magCIF's reading of a number)."""
    return np.stack([np.zeros_like(magmoms), np.zeros_like(magmoms), magmoms], axis=1) if magmoms.ndim == 1 else magmoms


def magcif_text(rec: CrystalRecord) -> str:
    from pymatgen.electronic_structure.core import Magmom
    from pymatgen.io.cif import CifWriter

    structure = rec.to_structure()
    structure.add_site_property("magmom", [Magmom(m) for m in as_vectors(rec.magmoms)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return str(CifWriter(structure, write_magmoms=True))


def poscar_text(rec: CrystalRecord) -> str:
    from pymatgen.io.vasp import Poscar

    text = Poscar(rec.to_structure()).get_str()
    moments = " ".join(f"{x:.6f}" for x in rec.magmoms.ravel())
    return f"{rec.formula} MAGMOM = {moments}\n" + text.split("\n", 1)[1]


@settings(max_examples=15, deadline=None)
@given(rec=magnetic)
def test_moments_survive_every_format(tmp_path_factory, rec):
    folder = tmp_path_factory.mktemp("mag")
    (folder / "a.json").write_text(json.dumps(rec.replace(id="a").to_dict()))
    (folder / "b.json").write_text(json.dumps(rec.to_structure().as_dict()))  # pymatgen site property "magmom"
    write_store(folder / "c.h5", [rec.replace(id="c")])
    (folder / "d.vasp").write_text(poscar_text(rec))
    (folder / "e.cif").write_text(magcif_text(rec))
    result = load_materials_database(folder)
    assert not result.quarantined, result.quarantined
    by_file = {r.source.split(":")[0].rsplit("/", 1)[1]: r for r in result.records}
    for name in ("a.json", "b.json", "c.h5", "d.vasp"):
        out = by_file[name]
        assert out.magmoms.shape == rec.magmoms.shape
        np.testing.assert_allclose(out.magmoms, rec.magmoms, atol=1e-6)
    # magCIF: moments are vectors along the crystal axes, and the CIF's cell has pymatgen's standard
    # orientation, so compare crystal-axis components; CifParser may list the sites in another order
    out = by_file["e.cif"]
    assert out.magmoms.shape == (rec.num_atoms, 3)
    order = [
        int(np.argmin(np.linalg.norm(np.mod(rec.frac_coords - f + 0.5, 1) - 0.5, axis=1))) for f in out.frac_coords
    ]
    np.testing.assert_allclose(
        crystal_axes(out.magmoms, out.lattice), crystal_axes(as_vectors(rec.magmoms), rec.lattice)[order], atol=1e-5
    )


def crystal_axes(moments: np.ndarray, lattice: np.ndarray) -> np.ndarray:
    """Cartesian moments as components along the unit vectors of the cell (magCIF's crystalaxis_x/y/z)."""
    unit = lattice / np.linalg.norm(lattice, axis=1)[:, None]
    return moments @ np.linalg.inv(unit)


def test_cif_atom_site_moment_loop_is_read(tmp_path):
    text = """data_MnO
_cell_length_a 4.4
_cell_length_b 4.4
_cell_length_c 4.4
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
loop_
_space_group_symop_magn_operation.id
_space_group_symop_magn_operation.xyz
1 x,y,z,+1
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
Mn1 Mn 0 0 0 1
O1 O 0.5 0.5 0.5 1
loop_
_atom_site_moment.label
_atom_site_moment.crystalaxis_x
_atom_site_moment.crystalaxis_y
_atom_site_moment.crystalaxis_z
Mn1 0 0 4.6
"""
    (tmp_path / "MnO.mcif").write_text(text)  # magCIF's usual file name
    result = load_materials_database(tmp_path / "MnO.mcif")
    (rec,) = result.records
    np.testing.assert_allclose(rec.magmoms[[s == "Mn" for s in rec.species].index(True)], [0, 0, 4.6], atol=1e-9)
    np.testing.assert_allclose(rec.magmoms[[s == "O" for s in rec.species].index(True)], [0, 0, 0], atol=1e-9)


def test_poscar_magmom_line_with_repeats(tmp_path):
    (tmp_path / "POSCAR").write_text(
        "FeO MAGMOM = 2*3.5 2*0\n1.0\n4 0 0\n0 4 0\n0 0 4\nFe O\n2 2\ndirect\n0 0 0\n.5 .5 .5\n.5 0 0\n0 .5 .5\n"
    )
    (rec,) = load_materials_database(tmp_path).records
    np.testing.assert_array_equal(rec.magmoms, [3.5, 3.5, 0.0, 0.0])
    (tmp_path / "POSCAR").write_text((tmp_path / "POSCAR").read_text().replace("2*3.5 2*0", "1 2 3"))
    (q,) = load_materials_database(tmp_path).quarantined
    assert "MAGMOM in the POSCAR comment line must give 4 (collinear) or 12 (non-collinear) values" in q.reason
    assert "got 3" in q.reason


def test_materials_project_document_keeps_site_magmoms(tmp_path):
    rec = magnetic_record(2, 5, noncollinear=False)
    doc = {"material_id": "mp-1", "band_gap": 0.0, "structure": rec.to_structure().as_dict()}
    (tmp_path / "mp.json").write_text(json.dumps({"data": [doc]}))
    (out,) = load_materials_database(tmp_path).records
    np.testing.assert_allclose(out.magmoms, rec.magmoms)


def test_record_rules_for_moments():
    base = CrystalRecord(4 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5]], ["Fe", "Fe"])
    assert base.magmoms is None and "magmoms" not in base.to_dict()
    with pytest.raises(RecordValidationError, match=r"magmoms must have shape \(2,\) .* got \(3,\)"):
        base.replace(magmoms=[1, 2, 3])
    with pytest.raises(RecordValidationError, match="magmoms must contain finite numbers"):
        base.replace(magmoms=[1, np.nan])
    rec = base.replace(magmoms=[2.0, -2.0])
    assert not rec.magmoms.flags.writeable
    assert CrystalRecord.from_dict(json.loads(json.dumps(rec.to_dict()))).magmoms.tolist() == [2.0, -2.0]


def test_site_operations_carry_moments():
    rec = magnetic_record(3, 11, noncollinear=True)
    big = supercell(rec, (2, 1, 1))
    np.testing.assert_array_equal(big.magmoms, np.tile(rec.magmoms, (2, 1)))
    rng = np.random.default_rng(0)
    perm = permute_atoms(rec, np.random.default_rng(0))
    order = np.random.default_rng(0).permutation(3)
    np.testing.assert_array_equal(perm.magmoms, rec.magmoms[order])
    turned = random_rotation(rec, rng)
    rotation = np.linalg.solve(rec.lattice, turned.lattice)  # lattice @ R.T = turned
    np.testing.assert_allclose(turned.magmoms, rec.magmoms @ rotation, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(turned.magmoms, axis=1), np.linalg.norm(rec.magmoms, axis=1))
    with pytest.raises(TDDataError, match="primitive_cell needs a record without magnetic moments"):
        primitive_cell(rec)


def test_old_stores_without_moments_load_and_take_them_on_append(tmp_path):
    plain = CrystalRecord(4 * np.eye(3), [[0, 0, 0]], ["Cu"], id="plain")
    path = write_store(tmp_path / "old.h5", [plain])
    with h5py.File(path, "r") as f:  # the layout every store had before moments existed
        assert "magmoms" not in f and "magmom_kinds" not in f
    with CrystalStore.open(path) as store:
        assert store[0].magmoms is None
    magnetic = magnetic_record(2, 3, noncollinear=False)
    with CrystalStore.open(path, mode="a") as store:
        store.append([magnetic, magnetic_record(3, 4, noncollinear=True)])
    with CrystalStore.open(path) as store:
        first, second, third = store.read_all()
    assert first.magmoms is None
    np.testing.assert_array_equal(second.magmoms, magnetic.magmoms)
    assert third.magmoms.shape == (3, 3)


def test_store_refuses_corrupt_moments(tmp_path):
    path = write_store(tmp_path / "m.h5", [magnetic_record(2, 3, noncollinear=False)])
    with h5py.File(path, "a") as f:
        f["magmoms"][0] = np.nan
    with CrystalStore.open(path) as store, pytest.raises(StoreError, match="magmoms must be finite numbers"):
        store.read_all()
    with h5py.File(path, "a") as f:
        f["magmom_kinds"][0] = 2
    with CrystalStore.open(path) as store, pytest.raises(StoreError, match="magmom_kinds must be 0, 1 or 3, got 2"):
        store.read_all()


@pytest.mark.parametrize("noncollinear", [False, True])
def test_ase_round_trip_keeps_initial_moments(noncollinear):
    pytest.importorskip("ase")
    rec = magnetic_record(3, 7, noncollinear=noncollinear)
    atoms = rec.to_atoms()
    np.testing.assert_array_equal(atoms.get_initial_magnetic_moments(), rec.magmoms)
    np.testing.assert_array_equal(CrystalRecord.from_atoms(atoms).magmoms, rec.magmoms)
    assert CrystalRecord.from_atoms(rec.replace(magmoms=None).to_atoms()).magmoms is None

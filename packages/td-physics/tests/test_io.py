"""Tests of td_physics.io: native JSON / HDF5 files and Wannier90 files."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from td_physics.exceptions import FileFormatError, ModelDefinitionError
from td_physics.io import (
    BOHR_ANGSTROM,
    FORMAT_NAME,
    FORMAT_VERSION,
    load_model,
    model_from_dict,
    model_from_wannier90,
    model_to_dict,
    read_wannier90_centres,
    read_wannier90_hr,
    read_wannier90_unit_cell,
    save_model,
    write_wannier90_hr,
)
from td_physics.model import TightBindingModel

DATA = Path(__file__).parent / "data"
SUFFIXES = [".json", ".h5", ".hdf5"]


def random_model(seed: int = 0, *, dim_r: int = 3, dim_k: int = 2, spinful: bool = True) -> TightBindingModel:
    """A random hermitian model with R = 0 and both R and -R among its hopping matrices."""
    rng = np.random.default_rng(seed)
    nsite = 2
    norb = 2 * nsite if spinful else nsite
    lattice = np.eye(dim_r) + 0.1 * rng.standard_normal((dim_r, dim_r))
    a = rng.standard_normal((norb, norb)) + 1j * rng.standard_normal((norb, norb))
    onsite = a + a.conj().T
    keys = {(0,) * dim_k}
    while len(keys) < 5:
        keys.add(tuple(int(x) for x in rng.integers(-2, 3, dim_k)))
    keys.add(tuple(-x for x in sorted(keys)[-1]))
    hoppings = {r: rng.standard_normal((norb, norb)) + 1j * rng.standard_normal((norb, norb)) for r in keys}
    return TightBindingModel.from_hopping_matrices(
        lattice,
        rng.random((nsite, dim_r)),
        onsite,
        hoppings,
        dim_k=dim_k,
        spinful=spinful,
        labels=["Bi_p", "Se_p"],
        occupied=1,
        name="random",
    )


def inversion_model() -> TightBindingModel:
    """Real symmetric hoppings between orbitals at the origin: inversion with P = identity."""
    rng = np.random.default_rng(3)
    m = TightBindingModel(np.eye(2), [[0.0, 0.0], [0.0, 0.0]], name="inv")
    m.set_onsite([0.3, -0.3])
    for r in [(1, 0), (0, 1), (1, 1)]:
        s = rng.standard_normal((2, 2))
        for i in range(2):
            for j in range(2):
                m.add_hopping((s + s.T)[i, j] / 2, i, j, r)
    m.set_inversion([0, 1], [1, 1], check=True)
    return m


def assert_same_model(a: TightBindingModel, b: TightBindingModel, *, atol: float = 1e-12) -> None:
    k = np.random.default_rng(1).random((7, a.dim_k)) * 3 - 1.5
    np.testing.assert_allclose(a.hamiltonian(k), b.hamiltonian(k), rtol=0, atol=atol)
    np.testing.assert_array_equal(a.lattice, b.lattice)
    np.testing.assert_array_equal(a.site_positions, b.site_positions)
    assert (a.dim_k, a.spinful, a.site_labels, a.occupied, a.name) == (
        b.dim_k,
        b.spinful,
        b.site_labels,
        b.occupied,
        b.name,
    )
    assert a.inversion == b.inversion


# ------------------------------------------------------------------------------ native format
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_round_trip_keeps_model_inversion_and_metadata(tmp_path: Path, suffix: str) -> None:
    for model in (random_model(0), random_model(1, dim_r=1, dim_k=1, spinful=False), inversion_model()):
        model.metadata = {"source": "test", "params": {"t": 1.5, "ok": True, "list": (1, 2)}, "arr": np.arange(3)}
        path = tmp_path / f"model{suffix}"
        save_model(model, path)
        loaded = load_model(path)
        assert_same_model(model, loaded, atol=0.0)
        assert loaded.metadata == {"source": "test", "params": {"t": 1.5, "ok": True, "list": [1, 2]}, "arr": [0, 1, 2]}
    assert loaded.inversion is not None and loaded.inversion.permutation == (0, 1)


def test_model_to_dict_is_json_and_versioned() -> None:
    model = random_model(2)
    d = json.loads(json.dumps(model_to_dict(model), allow_nan=False))
    assert d["format"] == FORMAT_NAME and d["version"] == FORMAT_VERSION == 1
    assert {h["R"][0] for h in d["hoppings"]} <= {-2, -1, 0, 1, 2}
    assert len(d["onsite"]["real"]) == model.norb
    assert_same_model(model, model_from_dict(d), atol=0.0)


def test_save_and_load_methods(tmp_path: Path) -> None:
    model = random_model(4)
    model.metadata = {"notes": "x" * 100_000}  # above HDF5's 64 KiB attribute limit
    model.save(tmp_path / "m.h5")
    loaded = TightBindingModel.load(tmp_path / "m.h5")
    assert_same_model(model, loaded, atol=0.0)
    assert loaded.metadata == model.metadata


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_atomic_write_leaves_only_the_target(tmp_path: Path, suffix: str) -> None:
    save_model(random_model(0), tmp_path / f"m{suffix}")
    save_model(random_model(1), tmp_path / f"m{suffix}")  # overwrite
    assert [p.name for p in tmp_path.iterdir()] == [f"m{suffix}"]
    assert_same_model(random_model(1), load_model(tmp_path / f"m{suffix}"), atol=0.0)


@pytest.mark.parametrize("suffix", [".json", ".h5"])
def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str) -> None:
    path = tmp_path / f"m{suffix}"
    old = random_model(0)
    save_model(old, path)

    def disk_full(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", disk_full)  # fails after the new content went to the temporary file
    with pytest.raises(OSError, match="disk full"):
        save_model(random_model(1), path)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert_same_model(old, load_model(path), atol=0.0)


def test_unserialisable_metadata_is_refused_before_writing(tmp_path: Path) -> None:
    model = random_model(0)
    model.metadata = {"gap": float("nan")}
    with pytest.raises(FileFormatError, match=r"metadata\['gap'\] must be a finite number"):
        save_model(model, tmp_path / "m.json")
    model.metadata = {"obj": object()}
    with pytest.raises(FileFormatError, match=r"metadata\['obj'\].*got object"):
        save_model(model, tmp_path / "m.h5")
    assert list(tmp_path.iterdir()) == []


def test_native_format_errors(tmp_path: Path) -> None:
    good = model_to_dict(random_model(0))
    with pytest.raises(FileFormatError, match="format must be 'td-physics.tight-binding-model', got 'other'"):
        model_from_dict({**good, "format": "other"})
    with pytest.raises(FileFormatError, match="unsupported format version 2.*newer"):
        model_from_dict({**good, "version": 2})
    with pytest.raises(FileFormatError, match=r"onsite must be \(4, 4\) matrices.*got real \(3, 3\)"):
        model_from_dict({**good, "onsite": {"real": np.eye(3).tolist(), "imag": np.eye(3).tolist()}})
    with pytest.raises(FileFormatError, match=r"hoppings\[0\].R must be 2 integers"):
        model_from_dict({**good, "hoppings": [{**good["hoppings"][0], "R": [1, 0, 0]}]})
    with pytest.raises(FileFormatError, match="missing the required keys.*lattice"):
        model_from_dict({k: v for k, v in good.items() if k != "lattice"})
    with pytest.raises(FileFormatError, match="must end in .json, .h5 or .hdf5"):
        save_model(random_model(0), tmp_path / "m.txt")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(FileFormatError, match="not valid JSON"):
        load_model(tmp_path / "bad.json")
    (tmp_path / "bad.h5").write_text("not hdf5")
    with pytest.raises(FileFormatError, match="not a readable HDF5 file"):
        load_model(tmp_path / "bad.h5")


def test_hdf5_wrong_version(tmp_path: Path) -> None:
    import h5py

    path = tmp_path / "m.h5"
    save_model(random_model(0), path)
    with h5py.File(path, "a") as f:
        f.attrs["version"] = 7
    with pytest.raises(FileFormatError, match="unsupported format version 7"):
        load_model(path)


# ------------------------------------------------------------------------------ Wannier90
def expected_chain_h(k: np.ndarray) -> np.ndarray:
    """H(k) of tests/data/chain_hr.dat worked out by hand; R = +-2 carry degeneracy 2."""
    h0 = np.array([[0.5, 0.2 - 0.1j], [0.2 + 0.1j, -0.5]])
    t1 = np.array([[-1.0, 0.3], [0.0, 1.0]])
    e1 = np.exp(2j * np.pi * k)[:, None, None]
    return h0 + t1 * e1 + t1.T * e1.conj() + 0.2 * np.eye(2) * 2 * np.cos(4 * np.pi * k)[:, None, None]


def test_read_hand_written_hr() -> None:
    hr = read_wannier90_hr(DATA / "chain_hr.dat")
    assert hr.num_wann == 2 and hr.header == "written on 01Jan2024 at 12:00:00"
    assert hr.r_vectors[:, 0].tolist() == [-2, -1, 0, 1, 2] and hr.degeneracy.tolist() == [2, 1, 1, 1, 2]
    k = np.linspace(-0.5, 0.5, 9)
    k3 = np.stack([k, 0.3 * k, 0 * k], axis=1)
    np.testing.assert_allclose(hr.hamiltonian(k3), expected_chain_h(k), atol=1e-12)


def test_model_from_hand_written_files() -> None:
    lattice = read_wannier90_unit_cell(DATA / "chain.win")
    np.testing.assert_allclose(lattice, np.diag([2.0, 10.0, 10.0]), atol=1e-8)
    centres = read_wannier90_centres(DATA / "chain_centres.xyz")
    np.testing.assert_allclose(centres, [[0.5, 0, 0], [1.5, 0, 0]])
    model = TightBindingModel.from_wannier90(
        DATA / "chain_hr.dat", win_path=DATA / "chain.win", centres_path=DATA / "chain_centres.xyz", dim_k=1
    )
    assert model.dim_k == 1 and model.dim_r == 3 and model.name == "chain"
    np.testing.assert_allclose(model.site_positions, [[0.25, 0, 0], [0.75, 0, 0]], atol=1e-8)
    k = np.linspace(-0.5, 0.5, 9)
    np.testing.assert_allclose(model.hamiltonian(k[:, None]), expected_chain_h(k), atol=1e-12)
    assert sorted(model.hoppings) == [(1,), (2,)]  # one representative per pair R, -R
    np.testing.assert_allclose(model.hoppings[(2,)], 0.2 * np.eye(2))  # divided by deg(R) = 2
    assert model.metadata["source"]["format"] == "wannier90_hr"


def test_positions_default_to_origin_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="td_physics.wannier90"):
        model = model_from_wannier90(DATA / "chain_hr.dat", lattice=np.eye(3), dim_k=1)
    assert np.all(model.site_positions == 0)
    assert "origin" in caplog.text


@pytest.mark.parametrize(("dim_r", "dim_k", "spinful"), [(3, 3, True), (3, 2, False), (2, 2, True), (1, 1, False)])
def test_wannier90_round_trip(tmp_path: Path, dim_r: int, dim_k: int, spinful: bool) -> None:
    model = random_model(5, dim_r=dim_r, dim_k=dim_k, spinful=spinful)
    path = tmp_path / "m_hr.dat"
    write_wannier90_hr(model, path, header="round trip")
    rows = path.read_text().splitlines()
    assert rows[0] == "round trip" and int(rows[1]) == model.norb
    assert all(len(row.split()) == 7 for row in rows[3 + -(-int(rows[2]) // 15) :])
    hr = read_wannier90_hr(path)
    assert np.all(hr.r_vectors[:, dim_k:] == 0) and np.all(hr.degeneracy == 1)
    back = model_from_wannier90(
        path,
        lattice=model.lattice,
        positions=model.site_positions,
        spinful=spinful,
        occupied=1,
        dim_k=dim_k,
        name="random",
        hermiticity_tol=1e-14,
    )
    back.site_labels = model.site_labels
    assert_same_model(model, back, atol=1e-12)
    assert [p.name for p in tmp_path.iterdir()] == ["m_hr.dat"]


def write_variant(tmp_path: Path, edit) -> Path:
    lines = (DATA / "chain_hr.dat").read_text().splitlines()
    path = tmp_path / "bad_hr.dat"
    path.write_text("\n".join(edit(lines)) + "\n")
    return path


def replace_line(index: int, text: str):
    return lambda lines: lines[:index] + [text] + lines[index + 1 :]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (replace_line(1, "two"), r"line 2 must hold num_wann \(a positive integer\).*got 'two'"),
        (replace_line(2, "0"), r"line 3 must hold nrpts"),
        (replace_line(3, "    2    1    1    x    2"), r"line 4 must hold integer degeneracy weights"),
        (replace_line(3, "    2    1    0    1    2"), r"degeneracy weights must be positive"),
        (lambda lines: lines[:-1], r"must have nrpts \* num_wann\*\*2 = 5 \* 2\*\*2 = 20 matrix element lines"),
        (replace_line(5, "   -2    0    0    2    1    0.0"), r"line 6 must be 'R1 R2 R3 m n Re Im'"),
        (replace_line(5, "   -2    0    0    3    1    0.0    0.0"), r"m, n must be in 1..num_wann=2, got \(3, 1\)"),
        (replace_line(5, "   -2    0    0    1    1    0.0    0.0"), r"lists some \(R, m, n\) matrix element twice"),
        (replace_line(5, "   -2    0    0.5  2    1    0.0    0.0"), r"line 6 must start with 5 integers"),
        (replace_line(5, "   -3    0    0    2    1    0.0    0.0"), r"declares nrpts=5 lattice vectors but lists 6"),
    ],
)
def test_malformed_hr_files(tmp_path: Path, edit, message: str) -> None:
    with pytest.raises(FileFormatError, match=message):
        read_wannier90_hr(write_variant(tmp_path, edit))


def test_non_hermitian_hr_names_worst_r(tmp_path: Path) -> None:
    # H(-1)_{21} = 0.3 must equal conj(H(1)_{12}) = 0.3; break it by 0.01
    path = write_variant(tmp_path, replace_line(9, "   -1    0    0    2    1    0.310000    0.000000"))
    with pytest.raises(FileFormatError, match=r"not hermitian.*worst R=\(1, 0, 0\) deviates by 1\.000e-02"):
        model_from_wannier90(path, lattice=np.eye(3))
    loose = model_from_wannier90(path, lattice=np.eye(3), positions=np.zeros((2, 3)), hermiticity_tol=0.02)
    np.testing.assert_allclose(loose.hoppings[(1, 0, 0)][0, 1], 0.305)  # hermitian part of the file's H(k)
    unchecked = model_from_wannier90(path, lattice=np.eye(3), positions=np.zeros((2, 3)), hermiticity_tol=None)
    np.testing.assert_allclose(unchecked.hoppings[(1, 0, 0)], loose.hoppings[(1, 0, 0)])


def test_wannier90_argument_errors(tmp_path: Path) -> None:
    variant = write_variant(
        tmp_path, lambda lines: [line.replace("   -2    0    0", "   -2    0    1") for line in lines]
    )
    with pytest.raises(FileFormatError, match=r"with dim_k=2 the components of R beyond the first 2 must be zero"):
        read_wannier90_hr(variant, dim_k=2)
    with pytest.raises(ModelDefinitionError, match="spinful model needs an even number"):
        one = tmp_path / "one_hr.dat"  # a single Wannier function
        one.write_text("x\n1\n1\n    1\n    0    0    0    1    1    0.5    0.0\n")
        model_from_wannier90(one, lattice=np.eye(3), spinful=True)
    with pytest.raises(ModelDefinitionError, match="Wannier centres are Cartesian"):
        model_from_wannier90(DATA / "chain_hr.dat", centres_path=DATA / "chain_centres.xyz")
    with pytest.raises(ModelDefinitionError, match=r"positions must be \(2, 3\)"):
        model_from_wannier90(DATA / "chain_hr.dat", lattice=np.eye(3), positions=np.zeros((3, 3)))
    with pytest.raises(FileFormatError, match="lists R=.* but not -R"):
        model_from_wannier90(
            write_variant(tmp_path, lambda lines: ["x", "2", "4", "2 1 1 1"] + lines[8:]), lattice=np.eye(3)
        )


def test_win_and_centres_errors(tmp_path: Path) -> None:
    win = tmp_path / "a.win"
    win.write_text("num_wann = 2\n")
    with pytest.raises(FileFormatError, match="no 'begin unit_cell_cart' block"):
        read_wannier90_unit_cell(win)
    win.write_text("begin unit_cell_cart\nang\n1 0 0\n0 1 0\nend unit_cell_cart\n")
    with pytest.raises(FileFormatError, match="must hold 3 lattice vectors, got 2"):
        read_wannier90_unit_cell(win)
    win.write_text("begin unit_cell_cart\n1 0 0\n0 1 0\n0 0 1\n")
    with pytest.raises(FileFormatError, match="not closed"):
        read_wannier90_unit_cell(win)
    win.write_text("BEGIN UNIT_CELL_CART\n Bohr\n1 0 0\n0 1 0\n0 0 1\nEND UNIT_CELL_CART\n")
    np.testing.assert_allclose(read_wannier90_unit_cell(win), BOHR_ANGSTROM * np.eye(3))
    xyz = tmp_path / "a_centres.xyz"
    xyz.write_text("1\ncomment\nSi 0 0 0\n")
    with pytest.raises(FileFormatError, match="no Wannier centres"):
        read_wannier90_centres(xyz)
    xyz.write_text("1\ncomment\nX 0 zero 0\n")
    with pytest.raises(FileFormatError, match="line 3 must be 'X x y z'"):
        read_wannier90_centres(xyz)

"""The DFT k-point mesh: Gamma-centred, holding the eight TRIMs, and K on hexagonal axes (no GPAW needed)."""

from __future__ import annotations

import numpy as np
import pytest

from td_physics.dft import DFTSettings
from td_physics.dft.core import kpoint_mesh, mesh_steps, niggli_basis
from td_physics.structure.reference import reference_arrays


def _niggli(name: str) -> np.ndarray:
    lattice, _, _ = reference_arrays(name)
    return niggli_basis(np.asarray(lattice, dtype=float)) @ np.asarray(lattice, dtype=float)


def _holds(mesh, point) -> bool:
    return all(abs(n * x - round(n * x)) < 1e-9 for n, x in zip(mesh, point))


@pytest.mark.parametrize("spacing", [0.2, 0.35, 0.5, 1.5])
def test_graphene_mesh_holds_k_and_the_trims(spacing):
    lattice = _niggli("graphene")
    steps = mesh_steps(lattice)
    assert sorted(steps) == [2, 6, 6]
    mesh = kpoint_mesh(lattice, DFTSettings(kpt_spacing=spacing))
    inplane = [i for i in range(3) if steps[i] == 6]
    k_point = np.zeros(3)
    k_point[inplane] = 1 / 3
    assert _holds(mesh, k_point)  # the Dirac point that an even mesh misses
    assert all(_holds(mesh, np.array(corner) / 2) for corner in np.ndindex(2, 2, 2))  # the eight TRIMs
    confirm = kpoint_mesh(lattice, DFTSettings(kpt_spacing=spacing), refinements=1)
    assert _holds(confirm, k_point) and all(c > m for c, m in zip(confirm, mesh))


@pytest.mark.parametrize("name", ["Si", "Bi2Se3", "GaAs", "HgTe"])
def test_cells_without_a_hexagonal_pair_keep_even_meshes(name):
    """fcc (three axes at 60 degrees) and rhombohedral cells are not hexagonal pairs: the mesh is as before."""
    lattice = _niggli(name)
    assert mesh_steps(lattice) == (2, 2, 2)
    for spacing in (0.2, 0.35, 0.5, 1.5):
        mesh = kpoint_mesh(lattice, DFTSettings(kpt_spacing=spacing))
        assert all(n % 2 == 0 and n >= 2 for n in mesh)
        assert kpoint_mesh(lattice, DFTSettings(kpt_spacing=spacing), refinements=1) == tuple(n + 2 for n in mesh)


def test_the_mesh_cap_is_a_multiple_of_the_step():
    lattice = _niggli("graphene")
    mesh = kpoint_mesh(lattice, DFTSettings(kpt_spacing=0.01, min_kpts=2, max_kpts=8))
    assert sorted(mesh)[1:] == [12, 12]  # max_kpts 8 rounded up to the next multiple of 6, so K stays on it


def test_a_rotated_hexagonal_cell_is_still_recognised():
    a = 2.46
    lattice = np.array([[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, 15.0]])
    rotation = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
    assert mesh_steps(lattice @ rotation.T) == (6, 6, 2)
    # b 1% longer than a (the synthetic generator's strain): still a hexagonal pair, unless the tolerance is tighter
    assert mesh_steps(lattice * [[1.0], [1.01], [1.0]]) == (6, 6, 2)
    assert mesh_steps(lattice * [[1.0], [1.01], [1.0]], tolerance=1e-3) == (2, 2, 2)
    assert mesh_steps(lattice * [[1.0], [1.05], [1.0]]) == (2, 2, 2)  # 5%: not hexagonal


def test_a_strained_hexagonal_cell_keeps_k_on_the_mesh_and_the_setting_is_honoured():
    """The synthetic generator's cells carry a random strain of about 1%: a strained silicene sheet (its Dirac
    cones near K) gets a mesh that holds K; hexagonal_tolerance 0 asks for exact hexagons only."""
    a = 3.87
    lattice = np.array([[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, 18.0]])
    strain = np.eye(3) + np.array([[0.008, 0.004, 0.0], [0.004, -0.006, 0.0], [0.0, 0.0, 0.01]])
    strained = lattice @ strain
    mesh = kpoint_mesh(strained, DFTSettings(kpt_spacing=0.5))
    assert _holds(mesh, [1 / 3, 1 / 3, 0]) and mesh[2] == 2
    exact = kpoint_mesh(strained, DFTSettings(kpt_spacing=0.5, hexagonal_tolerance=0.0))
    assert not _holds(exact, [1 / 3, 1 / 3, 0])
    with pytest.raises(ValueError, match=r"hexagonal_tolerance out of range: 0.5"):
        DFTSettings(hexagonal_tolerance=0.5)

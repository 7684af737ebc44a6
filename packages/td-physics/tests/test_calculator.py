"""TopologicalInvariantCalculator: the user guide's facade over td_physics.invariants."""

from __future__ import annotations

import json

import numpy as np
import pytest

from td_physics import TightBindingModel
from td_physics.calculator import InvariantReport, TopologicalInvariantCalculator
from td_physics.exceptions import FileFormatError, KPointError, ModelDefinitionError, OccupationError
from td_physics.invariants import (
    InvariantResult,
    chern_number,
    spin_chern_number,
    weyl_nodes,
    z2_indices,
    z2_invariant,
)
from td_physics.io import write_wannier90_hr
from td_physics.models import fu_kane_mele, graphene, haldane, kane_mele, weyl_two_band
from td_physics.validation import haldane_closed_form

LSO = 0.06
KM_CRITICAL = 3 * np.sqrt(3) * LSO  # |lambda_v| at which the Kane-Mele gap closes


def compute(model, **kwargs) -> InvariantReport:
    return TopologicalInvariantCalculator(model).compute_all_invariants(**kwargs)


def same(a: InvariantResult, b: InvariantResult) -> None:
    assert (a.value, a.converged, a.min_gap, a.mesh, a.method) == (b.value, b.converged, b.min_gap, b.mesh, b.method)


# ---------------------------------------------------------------------------- 2D, broken time reversal
@pytest.mark.parametrize(
    ("phi", "m"),
    [(np.pi / 2, 0.1), (-np.pi / 2, 0.1), (0.7, -0.2), (-2.0, 0.3), (np.pi / 2, 1.0), (-0.4, 0.5)],
)
def test_haldane_chern_inside_and_outside_the_topological_region(phi, m):
    t2 = 0.15
    inside = abs(m) < 3 * np.sqrt(3) * abs(t2 * np.sin(phi))
    report = compute(haldane(t2=t2, phi=phi, m=m))
    res = report["chern_number"]
    assert res.converged
    assert res.value == (-int(np.sign(np.sin(phi))) if inside else 0)
    assert res.value == haldane_closed_form(np.array(m), np.array(phi), t2)
    assert report.dim_k == 2 and report.occupied == 1
    assert report.symmetries["time_reversal"] is False
    assert set(report.results) == {"chern_number"}
    assert report.skipped == {
        "z2_invariant": "model breaks time reversal (Z2 needs it)",
        "spin_chern_number": "spinless model (the spin Chern number needs spin)",
    }


# ---------------------------------------------------------------------------- 2D, time-reversal symmetric
@pytest.mark.parametrize("lambda_v", [0.0, 0.1, KM_CRITICAL - 0.05, KM_CRITICAL + 0.05, 0.45, -0.1, -0.45])
def test_kane_mele_z2_on_both_sides_of_the_transition(lambda_v):
    report = compute(kane_mele(lambda_so=LSO, lambda_v=lambda_v))
    expected = int(abs(lambda_v) < KM_CRITICAL)
    assert report["z2_invariant"].value == expected
    assert report["chern_number"].value == 0
    assert abs(report["spin_chern_number"].value) == expected
    assert report.converged
    assert report.skipped == {}
    assert report.symmetries == {"time_reversal": True, "inversion": lambda_v == 0.0, "spinful": True}


def test_kane_mele_with_exchange_skips_z2_but_keeps_spin_chern():
    report = compute(kane_mele(lambda_so=LSO, exchange=0.02))
    assert "z2_invariant" not in report
    assert report.skipped["z2_invariant"] == "model breaks time reversal (Z2 needs it)"
    assert report["chern_number"].value == 0
    assert abs(report["spin_chern_number"].value) == 1


def test_spinless_time_reversal_model_has_no_z2():
    report = compute(graphene())
    assert report.skipped["z2_invariant"].startswith("spinless model")
    assert report["chern_number"].converged is False  # gapless Dirac points: flagged, not hidden


# ---------------------------------------------------------------------------- 3D
@pytest.mark.parametrize(("dt", "expected"), [(0.4, (1, 1, 1, 1)), (-0.4, (0, 1, 1, 1))])
def test_fu_kane_mele_indices_and_plane_chern_numbers(dt, expected):
    report = compute(fu_kane_mele(dt=dt))
    assert report["z2_indices"].value == expected
    assert report["chern_number_k3=0"].value == 0
    assert report["chern_number_k3=0.5"].value == 0
    assert report.converged
    assert "weyl_nodes" not in report
    assert "time reversal and inversion" in report.skipped["weyl_nodes"]


def test_weyl_semimetal_nodes_and_planes():
    report = compute(weyl_two_band())
    nodes = report["weyl_nodes"].value
    assert sorted(n.chirality for n in nodes) == [-1, 1]
    assert report["weyl_nodes"].converged
    # the two nodes at k3 = 1/4 and 3/4 separate a trivial plane from a Chern plane
    assert report["chern_number_k3=0"].value == 0
    assert abs(report["chern_number_k3=0.5"].value) == 1
    assert report.skipped == {"z2_indices": "model breaks time reversal (Z2 needs it)"}


# ---------------------------------------------------------------------------- same as the functions
def test_results_equal_the_underlying_functions():
    hal = haldane(t2=0.15, phi=0.9, m=0.1)
    same(compute(hal)["chern_number"], chern_number(hal))
    same(compute(hal, k_grid=16)["chern_number"], chern_number(hal, mesh=16))

    km = kane_mele(lambda_so=LSO, lambda_v=0.1, lambda_r=0.05)
    report = compute(km, k_grid=(32, 32))
    same(report["chern_number"], chern_number(km, mesh=32))
    same(report["z2_invariant"], z2_invariant(km, n_string=32))
    same(report["spin_chern_number"], spin_chern_number(km, mesh=32))

    fkm = fu_kane_mele()
    report = compute(fkm)
    same(report["z2_indices"], z2_indices(fkm))
    same(report["chern_number_k3=0.5"], chern_number(fkm, plane=(0, 1), k_fixed=0.5))

    weyl = weyl_two_band()
    same(compute(weyl, k_grid=16)["weyl_nodes"], weyl_nodes(weyl, mesh=16))


def test_occupied_bands_and_large_k_grid_are_passed_through():
    report = compute(haldane(m=0.1), occupied_bands=1, k_grid=400)  # above chern_number's default max_mesh
    assert report.occupied == 1 and report.k_grid == 400
    assert report["chern_number"].mesh == (400, 400)
    assert report["chern_number"].value == -1


def test_to_dict_is_plain_json():
    d = compute(weyl_two_band(), k_grid=(16, 16, 16)).to_dict()
    text = json.dumps(d)
    assert json.loads(text) == d
    assert d["k_grid"] == 16 and d["dim_k"] == 3
    entry = d["invariants"]["weyl_nodes"]
    assert set(entry) == {"value", "converged", "min_gap", "method", "mesh"}
    assert sorted(node["chirality"] for node in entry["value"]) == [-1, 1]
    assert d["skipped"] == {"z2_indices": "model breaks time reversal (Z2 needs it)"}
    km = compute(kane_mele(lambda_so=LSO)).to_dict()["invariants"]
    assert km["z2_invariant"]["value"] == 1 and km["z2_invariant"]["converged"] is True


def test_report_is_read_only_and_names_skipped_entries():
    report = compute(haldane(m=0.1))
    with pytest.raises(TypeError):
        report.results["extra"] = None  # type: ignore[index]
    with pytest.raises(KeyError, match="z2_invariant was not computed: model breaks time reversal"):
        report["z2_invariant"]
    with pytest.raises(KeyError, match="unknown invariant 'z4'"):
        report["z4"]


def test_loads_saved_models(tmp_path):
    path = tmp_path / "km.json"
    kane_mele(lambda_so=LSO).save(path)
    assert compute(str(path))["z2_invariant"].value == 1
    assert compute(path)["chern_number"].value == 0


def test_loads_wannier90_hr_files(tmp_path):
    path = tmp_path / "weyl_hr.dat"
    write_wannier90_hr(weyl_two_band(), path)
    report = compute(path)
    assert sorted(n.chirality for n in report["weyl_nodes"].value) == [-1, 1]


# ---------------------------------------------------------------------------- bad inputs
def test_bad_hamiltonian_types():
    with pytest.raises(TypeError, match="needs a td_physics.TightBindingModel .* got numpy.ndarray"):
        TopologicalInvariantCalculator(np.eye(2))
    with pytest.raises(TypeError, match="got builtins.dict"):
        TopologicalInvariantCalculator({"t": 1.0})
    with pytest.raises(ModelDefinitionError, match="2 or 3 periodic directions .* got dim_k=1"):
        TopologicalInvariantCalculator(TightBindingModel([[1.0]], [[0.0], [0.5]]))


def test_bad_model_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model file at"):
        TopologicalInvariantCalculator(tmp_path / "missing.json")
    other = tmp_path / "model.txt"
    other.write_text("not a model")
    with pytest.raises(FileFormatError, match=r"or a Wannier90 \*_hr\.dat file, got 'model.txt'"):
        TopologicalInvariantCalculator(other)


@pytest.mark.parametrize(
    ("k_grid", "match"),
    [
        (2, r"k_grid must be an integer >= 4 .*, got 2$"),
        (24.0, r"k_grid must be an integer >= 4 .*, got 24.0$"),
        (True, r"got True$"),
        ("24", r"got '24'$"),
        ((24, 30), r"tuple of 2 equal such integers .* got unequal sizes \(24, 30\)"),
        ((24, 24, 24), r"the model has 2 periodic directions, got \(24, 24, 24\)"),
        ((3, 3), r"k_grid must be an integer >= 4"),
    ],
)
def test_bad_k_grid(k_grid, match):
    with pytest.raises(KPointError, match=match):
        compute(haldane(), k_grid=k_grid)


@pytest.mark.parametrize(
    ("occupied", "match"),
    [
        (2, r"occupied_bands must be between 1 and 1 \(the model has 2 bands\), got 2"),
        (0, r"between 1 and 1 .* got 0"),
        (1.0, r"occupied_bands must be an integer number of bands, got float 1.0"),
        (True, r"got bool True"),
    ],
)
def test_bad_occupied_bands(occupied, match):
    with pytest.raises(OccupationError, match=match):
        compute(haldane(), occupied_bands=occupied)


def test_odd_filling_of_a_time_reversal_model_skips_z2_and_spin_chern():
    report = compute(kane_mele(lambda_so=LSO), occupied_bands=1)
    assert report.skipped["z2_invariant"] == "needs an even number of occupied bands (Kramers pairs), got 1"
    assert report.skipped["spin_chern_number"] == "needs an even number of occupied bands, got 1"
    assert "chern_number" in report


def test_weyl_search_too_large_is_skipped_with_the_reason():
    report = compute(weyl_two_band(), k_grid=300)
    assert "weyl_nodes" not in report
    assert "use a smaller k_grid or call weyl_nodes directly" in report.skipped["weyl_nodes"]

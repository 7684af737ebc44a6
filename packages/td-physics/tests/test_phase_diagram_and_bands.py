"""Phase diagrams (vectorised across the grid), band structures, gaps, plots and the validation table."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from td_physics.bands import band_gap, band_structure, k_path
from td_physics.exceptions import KPointError, ModelDefinitionError
from td_physics.fields import electric_field
from td_physics.invariants import chern_number, wilson_loop, z2_invariant
from td_physics.models import graphene, haldane, kane_mele, qwz, silicene
from td_physics.options import ChernOptions, Z2Options
from td_physics.phase_diagram import phase_diagram
from td_physics.plotting import plot_band_structure, plot_berry_flux, plot_wcc_flow
from td_physics.validation import CASES, haldane_closed_form, silicene_critical_field, validate_known_models


def test_batched_chern_diagram_equals_model_by_model():
    ms = np.array([-0.9, -0.3, 0.0, 0.4, 0.95])
    phis = np.array([-2.0, -0.5, 0.5, 2.0])
    pd = phase_diagram(haldane, {"m": ms, "phi": phis}, "chern", fixed={"t2": 0.15})
    assert pd.values.shape == (5, 4) and pd.converged.all()
    for i, m in enumerate(ms):
        for j, phi in enumerate(phis):
            assert pd.values[i, j] == chern_number(haldane(t2=0.15, phi=phi, m=m)).value
    assert np.array_equal(pd.values, haldane_closed_form(ms[:, None], phis[None, :], 0.15))
    rows = pd.table()
    assert len(rows) == 20 and set(rows[0]) == {"m", "phi", "chern", "converged", "min_gap"}


def test_batched_z2_diagram_matches_closed_form():
    lvs = np.linspace(0.0, 0.6, 7) + 0.01
    pd = phase_diagram(kane_mele, {"lambda_v": lvs}, "z2", fixed={"lambda_so": 0.06})
    assert pd.values.tolist() == [int(v < 3 * np.sqrt(3) * 0.06) for v in lvs]
    assert pd.values.tolist() == [z2_invariant(kane_mele(lambda_so=0.06, lambda_v=v)).value for v in lvs]


def test_silicene_critical_field_matches_ezawa():
    got, expected = silicene_critical_field(n_fields=21)
    assert got == pytest.approx(expected, rel=1e-2)


def test_user_callable_and_gap_invariants():
    pd = phase_diagram(qwz, {"m": [0.5, 3.0]}, lambda model: chern_number(model).value)
    assert pd.values.tolist() == [-1, 0]
    gaps = phase_diagram(qwz, {"m": [3.0]}, "gap", mesh=2)
    assert gaps.values[0] == pytest.approx(2.0)  # 2|m - 2| at (pi, pi), on a 2x2 mesh
    with pytest.raises(ModelDefinitionError, match="invariant must be one of"):
        phase_diagram(qwz, {"m": [1.0]}, "bogus")


def test_phase_diagram_takes_the_invariants_options_objects():
    ms = {"m": [-1.0, 1.0, 3.0]}
    default = phase_diagram(qwz, ms, "chern")
    given = phase_diagram(qwz, ms, "chern", options=ChernOptions(mesh=12, max_mesh=48))
    assert given.values.tolist() == default.values.tolist() == [1, -1, 0]
    assert phase_diagram(qwz, ms, "chern", mesh=12, max_mesh=48).values.tolist() == given.values.tolist()
    lvs = {"lambda_v": [0.1, 0.5]}
    z2 = phase_diagram(kane_mele, lvs, "z2", fixed={"lambda_so": 0.06}, options=Z2Options(n_string=32))
    assert z2.values.tolist() == phase_diagram(kane_mele, lvs, "z2", fixed={"lambda_so": 0.06}).values.tolist()
    with pytest.raises(TypeError, match=r"unknown convergence options \['mesh'\]"):
        phase_diagram(kane_mele, lvs, "z2", mesh=12)
    with pytest.raises(TypeError, match="options must be a Z2Options, got ChernOptions"):
        phase_diagram(kane_mele, lvs, "z2", options=ChernOptions())
    with pytest.raises(TypeError, match="a callable invariant takes no convergence options"):
        phase_diagram(qwz, ms, lambda model: chern_number(model).value, mesh=12)


def test_phase_diagram_plots(tmp_path):
    pd = phase_diagram(haldane, {"m": np.linspace(-1, 1, 5), "phi": np.linspace(-3, 3, 5)}, "chern")
    fig = pd.plot(boundary=lambda m: m)
    fig.savefig(tmp_path / "pd.png")
    assert (tmp_path / "pd.png").stat().st_size > 1000


def test_band_structure_and_gaps():
    model = graphene()
    bands = band_structure(model, n_points=90)
    assert bands.energies.shape == (90, 2)
    assert bands.labels == tuple(model.metadata["k_path"]["labels"])
    assert np.all(np.diff(bands.distance) >= 0)
    assert band_gap(model).direct < 1e-8  # Dirac point found off the mesh by polishing
    gap = band_gap(qwz(3.0))
    assert gap.direct == pytest.approx(2.0, abs=1e-8) and gap.indirect == pytest.approx(2.0, abs=1e-8)
    assert gap.is_insulating
    with pytest.raises(KPointError, match="at least two nodes"):
        k_path(model, [[0.0, 0.0]])


def test_plots_render(tmp_path):
    model = kane_mele(lambda_so=0.06)
    for name, fig in {
        "bands": plot_band_structure(band_structure(model)),
        "wcc": plot_wcc_flow(wilson_loop(model, pump_range=(0, 0.5), n_pump=21)),
    }.items():
        fig.savefig(tmp_path / f"{name}.png")
    from td_physics.invariants import berry_flux_map

    plot_berry_flux(berry_flux_map(haldane(m=0.1), mesh=24)[0]).savefig(tmp_path / "flux.png")
    assert len(list(tmp_path.glob("*.png"))) == 3


def test_validation_table_all_agree():
    report = validate_known_models()
    assert [r.agrees for r in report.rows] == [True] * len(CASES), str(report)
    assert "Bi2Se3" in str(report)
    with pytest.raises(ValueError, match="unknown validation cases"):
        validate_known_models(["nope"])


def test_electric_field_breaks_silicene_topology():
    base = silicene()
    ec = base.metadata["critical_field_V_per_A"]
    assert z2_invariant(electric_field(base, (0, 0, 0.5 * ec))).value == 1
    assert z2_invariant(electric_field(base, (0, 0, 1.5 * ec))).value == 0

"""examples/superconductors.py --quick: the figures exist and every diagram agrees with its closed form."""

from __future__ import annotations

from tests._examples import run_quick

FIGURES = (
    "kitaev_phase_diagram.png",
    "kitaev_open_chain.png",
    "p_wave_phase_diagram.png",
    "p_wave_ribbon.png",
    "helical_z2.png",
)


def test_quick_run_writes_the_figures_and_agrees_with_the_closed_forms(tmp_path):
    stdout, summary = run_quick("superconductors", tmp_path / "sc", FIGURES)
    expected_points = {"kitaev": 21 * 11, "p_wave": 13 * 5, "helical": 13}
    for key, points in expected_points.items():
        row = summary[key]
        assert row["points"] == points and row["disagree"] == 0, row
        assert row["converged"] == points, row  # the quick grids stay off the phase boundaries
        assert f"{row['diagram']:<26}{points:>8}{points:>11}{0:>10}" in stdout
    chain = summary["open_chain"]
    assert max(chain["zero_mode_energies"]) < 1e-6  # two Majorana zero modes at mu = 0.5 t
    assert chain["weight_on_3_end_sites"] > 0.95  # localised at the two ends
    assert summary["p_wave_ribbon"]["lowest_abs_energy"] < 0.1  # edge modes fill the bulk gap (about 1.6 t)

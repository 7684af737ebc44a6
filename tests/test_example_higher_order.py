"""examples/higher_order.py --quick: the figures exist and every check agrees with its closed form or second method."""

from __future__ import annotations

from tests._examples import run_quick

FIGURES = ("quadrupole_phase_diagram.png", "wannier_bands.png", "corner_states.png", "edge_polarization.png")


def test_quick_run_writes_the_figures_and_agrees_with_the_closed_forms(tmp_path):
    stdout, summary = run_quick("higher_order", tmp_path / "hoti", FIGURES)
    rows = {row["check"]: row for row in summary["checks"]}
    # the quick grid: 11 x 11 points of (gamma, lam) in [-1.5, 1.5]^2, of which the 21 on the two diagonals
    # |gamma| = |lam| are gapless (not trusted)
    expected = {
        "q_xy vs |gamma| < |lam|": (121, 100),
        "flake (quadrupole): modes and charges": (1, 1),
        "flake (trivial): modes and charges": (1, 1),
        "edge polarisation vs q_xy": (4, 4),
        "z4 mod 2 vs nu0 (Wilson loops)": (5, 5),
    }
    for name, (points, trusted) in expected.items():
        row = rows[name]
        assert (row["points"], row["trusted"], row["disagree"]) == (points, trusted, 0), row
        assert f"{name:<42}{points:>8}{trusted:>9}{0:>10}" in stdout
    wannier = summary["wannier_sector_polarization"]
    assert abs(wannier["quadrupole"] - 0.5) < 1e-8 and abs(wannier["trivial"]) < 1e-8
    corners = summary["corner_charges"]
    assert all(abs(abs(q) - 0.5) < 1e-6 for row in corners["quadrupole"] for q in row)
    assert all(abs(q) < 1e-6 for row in corners["trivial"] for q in row)
    assert abs(summary["edge_polarization"]["quadrupole"] - 0.5) < 1e-6
    assert abs(summary["edge_polarization"]["trivial"]) < 1e-6
    z4 = {row["model"]: row["z4"] for row in summary["z4"]}
    assert z4 == {
        "Bi2Se3 (strong TI)": 3,
        "Bi2Se3, M < 0 (trivial)": 0,
        "2 x Bi2Se3 (doubled strong TI)": 2,
        "Fu-Kane-Mele, dt = +0.4": 1,
        "Fu-Kane-Mele, dt = -0.4": 0,
    }

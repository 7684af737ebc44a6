"""examples/magnetic.py --quick: the figures exist and every diagram agrees with its closed form."""

from __future__ import annotations

from tests._examples import run_quick

FIGURES = ("qah_phase_diagram.png", "qah_hall_cut.png", "qah_ribbon_bands.png", "afti_phase_diagram.png")


def test_quick_run_writes_the_figures_and_agrees_with_the_closed_forms(tmp_path):
    stdout, summary = run_quick("magnetic", tmp_path / "mag", FIGURES)
    rows = {row["diagram"]: row for row in summary["diagrams"]}
    # the quick grids: 9 x 9 QAH points off the boundaries, 7 Hall and ribbon points, 7 x 5 AFTI points of
    # which the one at (|m|, dt) = (0, 0) is the gapless parent (the Fu-Kane-Mele semimetal)
    expected = {
        "QAH Chern number": (81, 81),
        "QAH Hall conductivity": (7, 7),
        "QAH edge modes": (7, 7),
        "AFTI Z2": (35, 34),
    }
    for name, (points, trusted) in expected.items():
        row = rows[name]
        assert (row["points"], row["trusted"], row["disagree"]) == (points, trusted, 0), row
        assert f"{name:<24}{points:>8}{trusted:>9}{0:>10}" in stdout

"""``scripts/labeller_calibration_dft.py`` run as a user types it: the structure labeller against DFT on the
project's synthetic crystals, its reports, its refusals and its resume.

The crystals are the first ones of the synthetic generator (seed 0): with ``--max-atoms 1`` Al, Cu and Pb
(Al and Cu have an odd electron count, so DFT calls them metals without an SCF; Pb gets a real PBE+SOC
ground state on a coarse mesh), with ``--max-atoms 2`` CuAg and CsN.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("gpaw", reason="needs the td-physics[dft] extra (GPAW)")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "labeller_calibration_dft.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
CLASSES = {"trivial", "z2_ti", "chern", "semimetal_or_metal"}


def run(cwd: Path, *argv: str, expect: int = 0) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *argv], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=1500
    )
    assert done.returncode == expect, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def read(out: Path) -> dict:
    return json.loads((out / "calibration.json").read_text())


def test_dft_refusals_are_counted_by_reason_and_every_crystal_keeps_its_tb_label(tmp_path):
    out = tmp_path / "calib"
    done = run(tmp_path, "--output-dir", str(out), "--n", "2", "--max-atoms", "2", "--settings", '{"max_atoms": 1}')
    data = read(out)
    rows = data["rows"]
    assert [r["formula"] for r in rows] == ["CuAg", "CsN"] and [r["n_atoms"] for r in rows] == [2, 2]
    for row in rows:
        assert row["tb_class"] in CLASSES and 0 < row["tb_confidence"] <= 1 and row["tb_reason"] is None
        assert row["dft_done"] and row["dft_converged"] is False and row["dft_class"] is None
        assert row["dft_reason"] == "2 atoms exceed max_atoms 1 (the time limit of a verification)"
        assert not row["both"] and not row["agree"]
    summary = data["summary"]
    assert summary["n_dft_done"] == 2 and summary["n_both"] == 0 and summary["complete"]
    assert summary["dft_refused"] == {"# atoms exceed max_atoms #": 2}
    assert summary["agreement"] is None and summary["agreement_confident"] is None
    assert "DFT gave no class:\n  2 x # atoms exceed max_atoms # (e.g. '2 atoms exceed max_atoms 1" in done.stdout
    assert "this run: DFT computed 2, reused 0; TB computed 2, reused 0" in done.stdout
    confusion = (out / "confusion.md").read_text()
    assert "No crystal has a class from both judges yet." in confusion
    assert '- 2 x # atoms exceed max_atoms # (e.g. "2 atoms exceed max_atoms 1' in confusion
    assert (out / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    crystals = json.loads((out / "crystals.json").read_text())["crystals"]
    assert [c["id"] for c in crystals] == [r["id"] for r in rows]
    assert data["settings"]["dft_settings"]["max_atoms"] == 1 and data["settings"]["dft_settings"]["kpt_spacing"] == 0.5


def test_bad_options_are_refused_naming_the_rule_and_the_value(tmp_path):
    done = run(tmp_path, "--output-dir", str(tmp_path / "o"), "--n", "0", expect=2)
    assert "--n must be at least 1, got 0" in done.stderr
    done = run(tmp_path, "--output-dir", str(tmp_path / "o"), "--kpt-spacing", "-0.5", expect=2)
    assert "--kpt-spacing must be a positive number, got -0.5" in done.stderr
    done = run(tmp_path, "--output-dir", str(tmp_path / "o"), "--workers", "2", "--timeout", "0", expect=2)
    assert "--workers 2 runs each crystal in a child process, which needs a --timeout > 0" in done.stderr
    done = run(tmp_path, "--output-dir", str(tmp_path / "o"), "--screen-kpt-spacing", "0.4", expect=2)
    assert "screen_kpt_spacing out of range: 0.4 (must be larger than kpt_spacing" in done.stderr
    done = run(tmp_path, "--output-dir", str(tmp_path / "o"), "--settings", '{"smearing": 0}', expect=2)
    assert "DFTSettings.smearing out of range: 0" in done.stderr
    assert not (tmp_path / "o").exists()


def test_input_store_is_drawn_class_by_class_and_refused_when_missing(tmp_path):
    """``--input``: crystals of a store that carries TB classes (as the topological-families build writes
    them), the rare class first in turn with the others, too-large cells and unlabelled records set aside."""
    from td_data import CrystalRecord
    from td_data.store import write_store

    cubic = [[3.0, 0, 0], [0, 3.0, 0], [0, 0, 3.0]]
    pair = [[0, 0, 0], [0.5, 0.5, 0.5]]
    records = [
        CrystalRecord(cubic, pair, ["Na", "Cl"], id=f"triv-{i}", labels={"topo_class": "trivial"}) for i in range(4)
    ]
    records += [CrystalRecord(cubic, pair, ["Bi", "Se"], id="ti-0", labels={"topo_class": "z2_ti", "family": "x"})]
    records += [CrystalRecord(cubic, pair, ["Cs", "Cl"], id="unlabelled")]
    three = [[0, 0, 0], [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]]
    records += [CrystalRecord(cubic, three, ["Bi", "Se", "Se"], id="big", labels={"topo_class": "z2_ti"})]
    store = write_store(tmp_path / "families.h5", records)
    out = tmp_path / "calib"
    argv = ["--input", str(store), "--output-dir", str(out), "--n", "3", "--max-atoms", "2"]
    run(tmp_path, *argv, "--settings", '{"max_atoms": 1}')  # DFT refuses at once: the selection is the point
    data = read(out)
    rows = data["rows"]
    assert [r["tb_class"] is not None for r in rows] == [True] * 3
    assert rows[1]["id"] == "ti-0" and rows[1]["family"] == "x"  # classes in turn: trivial, z2_ti, trivial
    assert rows[0]["id"].startswith("triv-") and rows[2]["id"].startswith("triv-")
    selection = data["settings"]["selection"]
    assert selection["eligible_by_tb_class"] == {"trivial": 4, "z2_ti": 1, "chern": 0, "semimetal_or_metal": 0}
    assert selection["set_aside"] == {"no TB class": 1, "more than 2 sites": 1}
    done = run(tmp_path, "--input", str(tmp_path / "none.h5"), "--output-dir", str(out), expect=2)
    assert "--input must be a td-data crystal store file, got" in done.stderr and "none.h5" in done.stderr


@pytest.mark.slow
def test_calibration_reports_agree_with_the_rows_and_a_rerun_redoes_only_what_is_missing(tmp_path):
    out = tmp_path / "calib"
    argv = ["--output-dir", str(out), "--n", "3", "--max-atoms", "1", "--kpt-spacing", "0.8", "--no-confirm"]
    argv += ["--workers", "2"]  # two crystals in DFT at once, each in its own process
    done = run(tmp_path, *argv)
    data = read(out)
    rows = data["rows"]
    assert [r["formula"] for r in rows] == ["Al", "Cu", "Pb"]
    for row in rows:  # three metals: both judges must say so
        assert row["tb_class"] == "semimetal_or_metal" and row["tb_confidence"] == 1.0
        assert row["dft_converged"] and row["dft_class"] == "semimetal_or_metal" and row["agree"]
        assert row["dft_seconds"] >= 0
    # Al and Cu: an odd electron count in the cell is a metal without an SCF; Pb gets one on the screening mesh
    # (spacing 1.6, twice --kpt-spacing: 2x2x2), whose bands on the 4x4x4 gap mesh overlap by more than 0.5 eV
    assert [r["dft_method"] for r in rows] == ["electron_count", "electron_count", "gap"]
    assert [r["dft_screened"] for r in rows] == [False, False, True]
    assert rows[2]["dft_kpts"] == [2, 2, 2] and rows[2]["dft_indirect_gap"] < -0.5
    summary = data["summary"]
    assert summary["n_both"] == 3 and summary["agree"] == 3 and summary["agreement"] == 1.0
    assert summary["n_both_by_count"] == 2 and summary["n_both_band_structure"] == 1  # Al and Cu counted, Pb computed
    assert summary["agreement_band_structure"] == 1.0 and summary["n_dft_screened"] == 1
    assert data["settings"]["dft_settings"]["screen_kpt_spacing"] == 1.6
    assert summary["n_confident"] == 3 and summary["agreement_confident"] == 1.0 and summary["dft_refused"] == {}
    assert data["reliability"] == [{"lo": 0.9, "hi": 1.0, "n": 3, "agree": 3, "share": 1.0, "mean_confidence": 1.0}]
    assert data["agreement_by_tb_gap"] == [{"group": "TB metal or semimetal", "n": 3, "agree": 3, "share": 1.0,
                                            "mean_confidence": 1.0, "disagree": []}]  # fmt: skip
    assert "TB class = DFT class: 3/3 = 100%" in done.stdout
    assert "where DFT computed bands (not an odd electron count, 2 left out): 1/1 = 100%" in done.stdout
    assert "confident TB labels (confidence >= 0.8): 3/3 = 100%" in done.stdout
    confusion = (out / "confusion.md").read_text()
    assert "| semimetal_or_metal | **3** | 3 |" in confusion and "| total | 3 | 3 |" in confusion
    assert "(complete)" in confusion

    # an interrupted run: one DFT result is lost; the report says partial, a rerun computes that one alone
    results = sorted((out / "dft").glob("result-*.json"))
    tb_files = sorted((out / "tb").glob("tb-*.json"))
    assert len(results) == 3 and len(tb_files) == 3
    stamps = {p: p.stat().st_mtime_ns for p in results + tb_files}
    results[1].unlink()
    done = run(tmp_path, *argv, "--report-only")
    assert "DFT done on 2 of 3 crystals (partial: rerun the same command to go on)" in done.stdout
    assert read(out)["summary"]["complete"] is False and not read(out)["rows"][1]["dft_done"]
    done = run(tmp_path, *argv)
    assert "this run: DFT computed 1, reused 2; TB computed 0, reused 3" in done.stdout
    assert results[1].exists() and read(out)["summary"]["complete"] and read(out)["summary"]["agree"] == 3
    assert {p: p.stat().st_mtime_ns for p in stamps if p != results[1]} == {
        p: t for p, t in stamps.items() if p != results[1]
    }
    # another min_margin: no result used one (none needed Wilson loops), so all three still count; another
    # n_pump is another calculation, so none does
    done = run(tmp_path, *argv, "--report-only", "--settings", '{"min_margin": 0.1}')
    assert read(out)["summary"]["complete"] and read(out)["summary"]["agree"] == 3
    done = run(tmp_path, *argv, "--report-only", "--settings", '{"n_pump": 5}')
    assert "DFT done on 0 of 3 crystals" in done.stdout


def _script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("labeller_calibration_dft", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_the_agreement_by_tb_gap_groups_metals_and_insulators_by_their_gap():
    """The TB metals, then the TB insulators by their smallest direct gap ([lo, hi) eV); each group counts its DFT
    agreements and names its disagreements; crystals without both classes stay out."""
    script = _script()

    def row(i, tb, dft, gap, conf=1.0):
        return {"index": i, "formula": f"X{i}", "tb_class": tb, "dft_class": dft, "tb_direct_gap": gap,
                "tb_confidence": conf, "both": dft is not None, "agree": tb == dft}  # fmt: skip

    rows = [row(0, "semimetal_or_metal", "semimetal_or_metal", -0.5), row(1, "z2_ti", "trivial", 0.05),
            row(2, "trivial", "trivial", 0.1, conf=0.5), row(3, "trivial", "trivial", 2.0),
            row(4, "trivial", None, 0.2)]  # fmt: skip
    groups = {g["group"]: g for g in script.gap_bins(rows)}
    assert list(groups) == ["TB metal or semimetal", "TB gap 0-0.1 eV", "TB gap 0.1-0.3 eV", "TB gap >= 1 eV"]
    assert (groups["TB gap 0-0.1 eV"]["n"], groups["TB gap 0-0.1 eV"]["agree"]) == (1, 0)
    assert groups["TB gap 0-0.1 eV"]["disagree"] == ["X1 (#1: TB z2_ti, DFT trivial)"]
    assert groups["TB gap 0.1-0.3 eV"]["mean_confidence"] == 0.5 and groups["TB gap >= 1 eV"]["share"] == 1.0
    text = script.gap_markdown(script.gap_bins(rows))
    assert "| TB gap 0-0.1 eV | 1 | 0 (0%) | 1.00 | X1 (#1: TB z2_ti, DFT trivial) |" in text
    assert script.gap_markdown([]) == ""


def test_a_sheets_2d_index_is_compared_with_the_weak_index_of_its_stacking():
    """DFT computes a sheet with vacuum as a 3D stack: silicene's 2D Z2 = 1 is DFT's (0;001) (G = b3, the vacuum
    axis of the generator's sheets), not a disagreement; (0;100) would be one."""
    from td_data import CrystalRecord

    script = _script()
    sheet = CrystalRecord(
        [[3.87, 0, 0], [-1.935, 3.35, 0], [0, 0, 18.0]], [[1 / 3, 2 / 3, 0.49], [2 / 3, 1 / 3, 0.51]], [14, 14],
        labels={"dimensionality": 2}, id="sheet",
    )  # fmt: skip
    tb = {"labels": {"topo_class": "z2_ti", "z2_indices": [1], "confidence": 1.0}, "reason": None}

    def dft(z2):
        return {"topo_class": "z2_ti", "z2_indices": z2, "converged": True, "method": "parity", "wall_time": 1.0}

    row = script.make_row(0, sheet, tb, dft([0, 0, 0, 1]))
    assert row["agree"] and row["agree_z2"]
    row = script.make_row(0, sheet, tb, dft([0, 1, 0, 0]))
    assert row["agree"] and not row["agree_z2"]

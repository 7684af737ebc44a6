"""One source for the labeller's measured accuracy: the packaged sweep (td_physics/data/labeller_accuracy.json,
written by ``scripts/labeller_accuracy.py --sweep``), the sweep table of docs/labeller_accuracy.md and the
sentence of the pipeline report say the same."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipelines.report.nodes import limits_lines
from td_physics.structure.accuracy import SWEEP_OVERLAPS, measured_accuracy

DOC = Path(__file__).resolve().parents[1] / "docs" / "labeller_accuracy.md"
HEADER = "| max_band_overlap (eV) | accuracy | coverage (conf >= 0.8) | right among confident | wrong |"


def _doc_sweep() -> dict[float, list[str]]:
    """The sweep table of the document: ``max_band_overlap`` -> its five cells, emphasis removed."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index(HEADER) + 2  # past the header and the alignment row
    rows = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [c.strip().replace("*", "") for c in line.strip("|").split("|")]
        rows[float(cells[0].split()[0])] = cells
    return rows


def _run(overlap: float, spin_orbit: bool = True) -> dict:
    options = {"spin_orbit": spin_orbit, "max_band_overlap": overlap, "max_atoms": 6, "max_records": 40}
    empty = ("ingest_quarantine", "split", "training_summary", "generation_summary", "generation_metrics",
             "physics_consistency", "relax_summary", "verify_summary")  # fmt: skip
    return {**{name: {} for name in empty}, "label_summary": {"options": options}}


def test_the_packaged_sweep_is_the_documents_table():
    measured, doc = measured_accuracy(), _doc_sweep()
    assert tuple(sorted(measured)) == SWEEP_OVERLAPS == tuple(sorted(doc))
    for overlap, m in measured.items():
        _, accuracy, coverage, confident, wrong = doc[overlap]
        assert accuracy == f"{m.correct / m.materials:.0%}", overlap
        assert coverage == f"{m.confident / m.materials:.0%}", overlap
        assert confident == f"{m.confident_accuracy:.0%} ({m.confident_correct}/{m.confident})", overlap
        # the document annotates some names ("Sb2Te3 (metal)", "Bi (0.67)"): the names are the table's
        names = [n.strip() for n in re.sub(r"\s*\([^)]*\)", "", wrong).split(",")]
        assert names == list(m.wrong), overlap
        assert m.correct == m.materials - len(m.wrong)


@pytest.mark.parametrize("overlap", SWEEP_OVERLAPS)
def test_the_report_states_the_packaged_figures(overlap):
    m = measured_accuracy()[overlap]
    text = "\n".join(limits_lines(_run(overlap)))
    assert (
        f"right for {m.confident_correct} of its {m.confident} confident labels ({m.confident_accuracy:.0%}); "
        f"wrong there: {', '.join(m.wrong)}." in text
    )


def test_the_report_says_when_nothing_was_measured_for_the_runs_options():
    for text in ("\n".join(limits_lines(_run(0.3))), "\n".join(limits_lines(_run(0.5, spin_orbit=False)))):
        assert "not with this run's options" in text and "confident labels (" not in text
        assert f"max_band_overlap in {sorted(SWEEP_OVERLAPS)} eV" in text

"""``scripts/labeller_variants_vs_dft.py`` as a user runs it: per-variant agreement with DFT read from calibration
run folders, counted by hand on a small run, and the refusals of folders that are not such runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "labeller_variants_vs_dft.py"


def make_run(folder: Path, crystals: list[tuple[str, str | None, str, dict[str, str]]]) -> Path:
    """A calibration folder: (id, DFT class or None, ensemble class, variant classes) per crystal."""
    (folder / "tb").mkdir(parents=True)
    rows = []
    for i, (cid, dft, ensemble, variants) in enumerate(crystals):
        rows.append(
            {"index": i, "id": cid, "formula": cid, "dft_class": dft, "tb_class": ensemble, "both": dft is not None}
        )
        tb = {"id": cid, "labels": {"topo_class": ensemble, "variants": variants}}
        (folder / "tb" / f"tb-{i:06d}.json").write_text(json.dumps(tb))
    (folder / "calibration.json").write_text(json.dumps({"rows": rows}))
    return folder


def run(*argv: str, expect: int = 0) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == expect, done.stdout + done.stderr
    return done


def test_each_variant_and_the_ensemble_are_counted_against_dft(tmp_path):
    a = make_run(
        tmp_path / "a",
        [
            ("TI", "z2_ti", "z2_ti", {"v1": "z2_ti", "v2": "trivial"}),
            ("INS", "trivial", "trivial", {"v1": "z2_ti", "v2": "trivial"}),
            ("MET", "semimetal_or_metal", "semimetal_or_metal", {"v1": "semimetal_or_metal", "v2": "trivial"}),
            ("NODFT", None, "z2_ti", {"v1": "z2_ti", "v2": "z2_ti"}),  # DFT gave no class: left out
        ],
    )
    b = make_run(tmp_path / "b", [("TI2", "z2_ti", "trivial", {"v1": "trivial", "v2": "trivial"})])
    out = tmp_path / "table.md"
    done = run(str(a), str(b), "--output", str(out), "--json", str(tmp_path / "t.json"))
    table = {t["variant"]: t for t in json.loads((tmp_path / "t.json").read_text())["variants"]}
    assert list(table) == ["v1", "v2", "ensemble (the label)"]
    assert table["v1"] == {
        "variant": "v1",
        "n": 4,
        "agree": 2,  # TI, MET
        "n_dft_insulators": 3,
        "agree_dft_insulators": 1,
        "z2_true_positive": 1,
        "z2_false_positive": 1,  # INS
        "z2_missed": 1,  # TI2
    }
    assert (table["v2"]["agree"], table["v2"]["z2_true_positive"], table["v2"]["z2_missed"]) == (1, 0, 2)
    ens = table["ensemble (the label)"]
    assert (ens["agree"], ens["agree_dft_insulators"], ens["z2_false_positive"], ens["z2_missed"]) == (3, 2, 0, 1)
    assert "| v1 | 2 of 4 | 1 of 3 | 1 | 1 | 1 |" in done.stdout
    assert out.read_text() == done.stdout


def test_a_folder_that_is_no_calibration_run_is_refused_by_name(tmp_path):
    done = run(str(tmp_path), expect=2)
    assert f"{tmp_path / 'calibration.json'} does not exist" in done.stderr
    run_dir = make_run(tmp_path / "r", [("X", "trivial", "trivial", {"v1": "trivial"})])
    (run_dir / "tb" / "tb-000000.json").unlink()
    done = run(str(run_dir), expect=2)
    assert "tb-000000.json is missing or holds no variant classes for X" in done.stderr

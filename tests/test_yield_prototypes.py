"""``benchmarks/yield_prototypes.py``: which training family's framework each generated crystal takes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
FCC = np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])


def test_generated_crystals_are_matched_to_family_frameworks_whatever_their_species(tmp_path):
    """A rocksalt family with a z2_ti member and a zincblende family: an NaCl-framework sample of other elements and
    a zincblende one match, a cell with its two atoms 0.1 of the cell apart and a 3-site cell match nothing."""
    from td_data import CrystalRecord
    from td_data.store import write_store
    from td_models import save_crystals

    rocksalt = [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]
    zincblende = [[0.0, 0.0, 0.0], [0.25, 0.25, 0.25]]
    records = [
        CrystalRecord(6.4 * FCC, rocksalt, ["Sn", "Te"], id="fam-0-rocksalt-00000", labels={"topo_class": "z2_ti"}),
        CrystalRecord(5.6 * FCC, rocksalt, ["Na", "Cl"], id="fam-0-rocksalt-00001", labels={"topo_class": "trivial"}),
        CrystalRecord(
            6.5 * FCC, zincblende, ["Cd", "Te"], id="fam-0-zincblende-00000", labels={"topo_class": "trivial"}
        ),  # fmt: skip
    ]
    store = write_store(tmp_path / "families.h5", records)

    def crystal(lattice, frac, numbers):
        return {"lattice": np.asarray(lattice, float), "frac_coords": np.asarray(frac, float),
                "atomic_numbers": np.asarray(numbers)}  # fmt: skip

    run = tmp_path / "run"
    run.mkdir()
    conditioned = [crystal(6.0 * FCC, rocksalt, [83, 34]), crystal(4.0 * np.eye(3), [[0, 0, 0], [0.1, 0, 0]], [6, 6]),
                   crystal(5.0 * np.eye(3), [[0, 0, 0], [0.5, 0, 0], [0, 0.5, 0]], [11, 17, 17])]  # fmt: skip
    unconditioned = [crystal(6.1 * FCC, zincblende, [30, 16])]
    save_crystals(run / "samples_conditioned.npz", conditioned, {})
    save_crystals(run / "samples_unconditioned.npz", unconditioned, {})
    classes = ["z2_ti", "semimetal_or_metal", None, "trivial"]
    table = pd.DataFrame({"arm": ["conditioned"] * 3 + ["unconditioned"], "num_atoms": [2, 2, 3, 2],
                          "recomputed_class": classes})  # fmt: skip
    table.to_csv(run / "crystals.csv")
    out = tmp_path / "prototypes.json"
    args = [sys.executable, str(ROOT / "benchmarks" / "yield_prototypes.py"), "--run", str(run), "--store", str(store),
            "--json", str(out)]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    c, u = result["conditioned"], result["unconditioned"]
    assert (c["n"], c["on_family"], c["on_z2_ti_family"], c["families"]) == (3, 1, 1, {"rocksalt": 1})
    assert (c["labelled_on_family"], c["z2_ti_on_family"], c["labelled_off_family"], c["z2_ti_off_family"]) == (
        1, 1, 1, 0)  # fmt: skip
    assert (u["on_family"], u["on_z2_ti_family"], u["families"]) == (1, 0, {"zincblende": 1})
    assert "families with z2_ti members: rocksalt" in done.stdout

"""A user's folder of crystal files (CIF, POSCAR, JSON) made from td-physics' reference crystals, for the tests
that read files as a user would give them (``tests/test_data.py``, ``tests/test_integration.py``)."""

from __future__ import annotations

import json
from pathlib import Path

#: Reference crystals of at most 5 sites per primitive cell, with the class the literature gives them.
CRYSTALS = {
    "Si": "trivial",
    "Ge": "trivial",
    "C": "trivial",
    "GaAs": "trivial",
    "AlAs": "trivial",
    "GaP": "trivial",
    "InP": "trivial",
    "NaCl": "trivial",
    "KCl": "trivial",
    "LiF": "trivial",
    "MgO": "trivial",
    "Bi2Se3": "z2_ti",
}
FORMATS = ("cif", "poscar", "record-json", "structure-json")
BROKEN = {"broken.cif": "data_broken\n_cell_length_a 4.0\n", "notes.poscar": "not a POSCAR\n1.0\n"}


def reference_record(name: str, **fields):
    from td_data import CrystalRecord
    from td_physics.structure.reference import reference_structure

    lattice, frac, symbols = reference_structure(name)
    return CrystalRecord(lattice, frac, symbols, id=name, **fields)


def write_user_folder(folder: Path, names=tuple(CRYSTALS), broken: bool = True) -> dict[str, str]:
    """Write each crystal to ``folder`` in the next of :data:`FORMATS`; returns {crystal name: file name}.

    Record-JSON files carry a band gap property (the one format that has properties); ``broken`` adds two files
    that no reader can read (:data:`BROKEN`).
    """
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for i, name in enumerate(names):
        kind = FORMATS[i % len(FORMATS)]
        record = reference_record(name, properties={"band_gap": 0.1 * (i + 1)} if kind == "record-json" else {})
        structure = record.to_structure()
        if kind == "cif":
            path = folder / f"{name}.cif"
            structure.to(filename=str(path), fmt="cif")
        elif kind == "poscar":
            path = folder / f"{name}.poscar"
            path.write_text(structure.to(fmt="poscar"), encoding="utf-8")
        elif kind == "record-json":
            path = folder / f"{name}.json"
            path.write_text(json.dumps(record.to_dict()), encoding="utf-8")
        else:
            path = folder / f"{name}.structure.json"
            path.write_text(json.dumps(structure.as_dict()), encoding="utf-8")
        written[name] = path.name
    if broken:
        for file_name, text in BROKEN.items():
            (folder / file_name).write_text(text, encoding="utf-8")
    return written

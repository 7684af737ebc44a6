"""Regenerate td-models' table of common oxidation states from pymatgen's element data.

td-models does not depend on pymatgen; its soft charge-neutrality penalty reads this table instead.
Run ``python scripts/make_oxidation_table.py`` after a pymatgen upgrade; the output names the version.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

from pymatgen.core import Element

OUT = Path(__file__).resolve().parents[1] / "packages/td-models/src/td_models/data/oxidation_states.json"


def main() -> None:
    states = {}
    for z in range(1, 119):
        element = Element.from_Z(z)
        common = [int(s) for s in element.common_oxidation_states]
        states[str(z)] = {"symbol": element.symbol, "common": common or [0]}
    table = {
        "quantity": "common oxidation states per atomic number (noble gases and elements without any: [0])",
        "source": f"pymatgen {version('pymatgen')} Element.common_oxidation_states (periodic_table data)",
        "states": states,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

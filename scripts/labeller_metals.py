#!/usr/bin/env python
"""How often the structure labeller calls a metal an insulator: elemental and intermetallic cells.

    python scripts/labeller_metals.py --output outputs/labeller_metals.json [--max-atoms 4] [--intermetallics 150]

Builds one-element cells of simple metals (groups 1, 2, 11, 12, 13) in every AFLOW prototype of
pymatgen with at most ``--max-atoms`` sites (``td_data.synthetic.load_prototypes``, all sites one
element, the volume from ``td_data.synthetic.dls_length_scale``), and ``--intermetallics`` random
two-element cells of the same metals in the two-species prototypes, and labels each three ways:

* ``mesh``: band extrema read off the k-point mesh, no 8 - N rule (the labeller before both fixes);
* ``bands``: band extrema searched between the mesh points, no 8 - N rule;
* ``default``: ``classify_structure``'s defaults (both).

Every one of these crystals is a metal, so any other label is a false positive. Prints the class
counts per reading and writes every row to ``--output``.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
from collections import Counter
from pathlib import Path

import numpy as np

METALS = ("Na", "K", "Rb", "Mg", "Ca", "Cu", "Ag", "Au", "Zn", "Al", "Ga", "In")
READINGS = {
    "mesh": {"edge_levels": None, "valence_rule": False},
    "bands": {"valence_rule": False},
    "default": {},
}


def cells(elements: list[str], max_atoms: int, n_pairs: int, seed: int) -> list[dict]:
    """One-element cells of every prototype and ``n_pairs`` random two-element cells."""
    from td_data.record import atomic_number
    from td_data.synthetic import dls_length_scale, load_prototypes

    protos = {p.label: p for p in load_prototypes(max_atoms=max_atoms)}  # one per AFLOW label
    out = []

    def build(proto, symbols, kind):
        scale = dls_length_scale(proto.lattice, proto.frac_coords, symbols)
        return {
            "kind": kind,
            "prototype": proto.label,
            "species": symbols,
            "lattice": (proto.lattice * scale).tolist(),
            "frac_coords": proto.frac_coords.tolist(),
            "numbers": [atomic_number(s) for s in symbols],
        }

    for proto in protos.values():
        for element in elements:
            out.append(build(proto, [element] * len(proto.site_species), "elemental"))
    binary = [p for p in protos.values() if len(p.elements) == 2]
    rng = np.random.default_rng(seed)
    for _ in range(n_pairs):
        proto = binary[int(rng.integers(len(binary)))]
        pair = rng.choice(elements, size=2, replace=False)
        out.append(build(proto, [str(pair[i]) for i in proto.site_species], "intermetallic"))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=Path("outputs/labeller_metals.json"))
    parser.add_argument("--elements", nargs="*", default=list(METALS))
    parser.add_argument("--max-atoms", type=int, default=4)
    parser.add_argument("--intermetallics", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=int, default=60, help="seconds per classification (POSIX)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from tqdm.auto import tqdm

    from td_physics.classify import classify_structure
    from td_physics.exceptions import TDPhysicsError

    def give_up(signum, frame):
        raise TimeoutError

    signal.signal(signal.SIGALRM, give_up)
    rows = cells(args.elements, args.max_atoms, args.intermetallics, args.seed)
    for row in tqdm(rows, desc="classify"):
        for name, options in READINGS.items():
            signal.alarm(args.timeout)
            try:
                result = classify_structure(
                    np.array(row["lattice"]), np.array(row["frac_coords"]), row["numbers"], **options
                )
                row[name] = [result.topo_class, result.confidence, result.indirect_gap]
            except TDPhysicsError as exc:  # a cell the labeller refuses (reported, not counted)
                row[name] = ["refused", 0.0, None]
                row["error"] = str(exc)
            except TimeoutError:  # a slow Wannier-centre flow (reported, not counted)
                row[name] = ["timeout", 0.0, None]
            finally:
                signal.alarm(0)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(rows, indent=0))
    for kind in ("elemental", "intermetallic"):
        group = [r for r in rows if r["kind"] == kind]
        print(f"\n{kind}: {len(group)} cells")
        for name in READINGS:
            counts = Counter(r[name][0] for r in group)
            labelled = sum(n for c, n in counts.items() if c not in ("refused", "timeout"))
            wrong = labelled - counts["semimetal_or_metal"]
            share = wrong / max(1, labelled)
            print(f"  {name:8s} {dict(sorted(counts.items()))}  not a metal: {wrong}/{labelled} ({share:.1%})")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

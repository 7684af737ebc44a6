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

    python scripts/labeller_metals.py --dataset 300 --dataset-max-atoms 8 --gap-mesh 6

labels the project's default synthetic data set instead (``td_data.SyntheticDatasetGenerator`` with
the ingest defaults: seed 0, 20 sites at most, 10% 2D sheets, the labeller's elements), its cells of
at most ``--dataset-max-atoms`` sites, in the ``mesh`` and ``default`` readings (``--gap-mesh 6`` is
the label pipeline's mesh; without it, the density mesh): how the class counts of the data move.
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
    for _ in range(n_pairs if binary else 0):  # no two-species prototype that small: elemental cells only
        proto = binary[int(rng.integers(len(binary)))]
        pair = rng.choice(elements, size=2, replace=False)
        out.append(build(proto, [str(pair[i]) for i in proto.site_species], "intermetallic"))
    return out


def dataset_cells(n_samples: int, max_atoms: int, seed: int) -> list[dict]:
    """The default synthetic data set's cells of at most ``max_atoms`` sites (conf/base/parameters_ingest.yml)."""
    from td_data import SyntheticDatasetGenerator
    from td_data.record import atomic_number
    from td_physics.structure import supported_elements

    generator = SyntheticDatasetGenerator(
        seed=seed, max_atoms=20, fraction_2d=0.1, allowed_elements=supported_elements()
    )
    return [
        {
            "kind": "dataset",
            "id": r.id,
            "prototype": r.labels.get("prototype"),
            "species": list(r.species),
            "lattice": np.asarray(r.lattice).tolist(),
            "frac_coords": np.asarray(r.frac_coords).tolist(),
            "numbers": [atomic_number(s) for s in r.species],
        }
        for r in generator.generate_dataset(n_samples)
        if r.num_atoms <= max_atoms
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=Path("outputs/labeller_metals.json"))
    parser.add_argument("--elements", nargs="*", default=list(METALS))
    parser.add_argument("--max-atoms", type=int, default=4)
    parser.add_argument("--intermetallics", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=int, default=60, help="seconds per classification (POSIX)")
    parser.add_argument("--dataset", type=int, default=0, help="label this many default synthetic crystals instead")
    parser.add_argument("--dataset-max-atoms", type=int, default=8)
    parser.add_argument("--gap-mesh", type=int, default=None, help="k-points per axis (default: the density mesh)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from tqdm.auto import tqdm

    from td_physics.classify import classify_structure
    from td_physics.exceptions import TDPhysicsError

    def give_up(signum, frame):
        raise TimeoutError

    signal.signal(signal.SIGALRM, give_up)
    if args.dataset:
        rows, readings = dataset_cells(args.dataset, args.dataset_max_atoms, args.seed), ("mesh", "default")
    else:
        rows, readings = cells(args.elements, args.max_atoms, args.intermetallics, args.seed), tuple(READINGS)
    for row in tqdm(rows, desc="classify"):
        for name in readings:
            signal.alarm(args.timeout)
            try:
                result = classify_structure(
                    np.array(row["lattice"]),
                    np.array(row["frac_coords"]),
                    row["numbers"],
                    gap_mesh=args.gap_mesh,
                    **READINGS[name],
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
    for kind in ("dataset",) if args.dataset else ("elemental", "intermetallic"):
        group = [r for r in rows if r["kind"] == kind]
        note = " (not all metals: 'not a metal' is not a false positive here)" if kind == "dataset" else ""
        print(f"\n{kind}: {len(group)} cells{note}")
        for name in readings:
            counts = Counter(r[name][0] for r in group)
            labelled = sum(n for c, n in counts.items() if c not in ("refused", "timeout"))
            wrong = labelled - counts["semimetal_or_metal"]
            share = wrong / max(1, labelled)
            print(f"  {name:8s} {dict(sorted(counts.items()))}  not a metal: {wrong}/{labelled} ({share:.1%})")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The composition-volume guidance of the sampler, measured on a trained model: densities against the training set.

Samples the same crystals (same model, seed and condition) with each ``volume_guidance:volume_tolerance`` setting
given, ``0:...`` being the sampler without it, and prints per setting: structural validity (every distance at least
0.5 A), the share of crystals whose density lies outside the training set's range, the median, 95th percentile and
largest density, and the Wasserstein distance between the generated and the training densities, with its ratio to
the unguided row.

A model file written before td-models kept the element volumes has none; then they are fitted here on the training
store, as ``fit_normalisation`` does when a model is trained (the script says so).

    OMP_NUM_THREADS=1 python benchmarks/volume_guidance.py                      # the main job's model and data
    python benchmarks/volume_guidance.py --settings 0:1.25,0.2:1.25,0.3:1.15 --n 256
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np


def densities(lattices, numbers, mass: np.ndarray) -> np.ndarray:
    """g/cm^3 of each cell (inf for a collapsed cell)."""
    out = []
    for lattice, z in zip(lattices, numbers):
        volume = abs(np.linalg.det(np.asarray(lattice, dtype=float)))
        out.append(1.66054 * mass[np.asarray(z) - 1].sum() / volume if volume > 1e-9 else np.inf)
    return np.array(out)


def shortest_distance(lattice, frac) -> float:
    """The shortest interatomic distance (A), periodic images within one cell included."""
    lattice, frac = np.asarray(lattice, dtype=float), np.asarray(frac, dtype=float)
    best = np.inf
    for shift in itertools.product((-1, 0, 1), repeat=3):
        r = np.linalg.norm((frac[None, :, :] - frac[:, None, :] + np.array(shift)) @ lattice, axis=-1)
        if shift == (0, 0, 0):
            np.fill_diagonal(r, np.inf)
        best = min(best, float(r.min()))
    return best


def parse_settings(text: str) -> list[tuple[float, float]]:
    pairs = []
    for item in text.split(","):
        guidance, tolerance = item.split(":")
        pairs.append((float(guidance), float(tolerance)))
    return pairs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=Path("data/06_models/model.pt"))
    p.add_argument("--train", type=Path, default=Path("data/05_model_input/train.h5"), help="the training store")
    p.add_argument("--settings", default="0:1.25,0.1:1.25,0.2:1.25,0.3:1.15", help="volume_guidance:tolerance,...")
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    import torch
    import yaml
    from pymatgen.core import Element
    from scipy.stats import wasserstein_distance

    from td_data import CrystalStore
    from td_models import TopologicalDiffusionModel
    from td_models.batch import collate, item_from_record
    from td_models.config import PhysicsConfig
    from td_models.constraints import fit_species_volumes
    from td_models.sampling import guidance_defaults

    torch.set_num_threads(args.threads)
    model = TopologicalDiffusionModel.load(args.model)
    with CrystalStore.open(args.train) as store:
        train = store.read_all()
    if not model.has_element_volumes:
        batch = collate([item_from_record(r, model.num_species) for r in train])
        model.species_volume.copy_(fit_species_volumes(batch.lattice, batch.atom_types, batch.batch_index,
                                                       model.num_species))  # fmt: skip
        print(f"{args.model} has no element volumes (written before they were kept): fitted here on {args.train}")
    mass = np.array([Element.from_Z(z).atomic_mass for z in range(1, model.num_species + 1)], dtype=float)
    ref = densities([r.lattice for r in train], [r.atomic_numbers for r in train], mass)
    low, high = ref.min(), ref.max()
    fitted = model.species_volume.double().numpy()
    residual = [abs(np.log(abs(np.linalg.det(np.asarray(r.lattice))) / fitted[np.asarray(r.atomic_numbers) - 1].sum()))
                for r in train]  # fmt: skip
    print(f"training: {len(train)} crystals, density {low:.2f}-{high:.2f} g/cm^3 (median {np.median(ref):.2f}); "
          f"additive element volumes fit them with median |log residual| {np.median(residual):.3f}")  # fmt: skip
    physics = PhysicsConfig.from_dict(
        yaml.safe_load(Path("conf/base/parameters_train.yml").read_text())["physics_config"]
    )
    guidance = guidance_defaults(physics)
    condition = {"topo_class": physics.topological_class, "band_gap_range": tuple(physics.band_gap_range)}
    print(f"{args.n} crystals each, seed {args.seed}, condition {condition}, {guidance}\n")
    header = (
        "| volume_guidance | tolerance | struct. valid | outside training range | median | p95 | max | W(density) "
        "| vs unguided | s |"
    )
    print(header + "\n|" + "---:|" * 10)
    base = None
    for step, tolerance in parse_settings(args.settings):
        t0 = time.perf_counter()
        samples = model.sample(args.n, **condition, **guidance, seed=args.seed, volume_guidance=step,
                               volume_tolerance=tolerance, progress=True)  # fmt: skip
        seconds = time.perf_counter() - t0
        d = densities([s["lattice"] for s in samples], [s["atomic_numbers"] for s in samples], mass)
        finite = d[np.isfinite(d)]
        valid = np.mean([shortest_distance(s["lattice"], s["frac_coords"]) >= 0.5 for s in samples])
        w = wasserstein_distance(finite, ref)
        base = w if step == 0 and base is None else base
        ratio = f"{w / base:.2f}" if base else "n/a"
        print(f"| {step:g} | {tolerance:g} | {valid:.3f} | {np.mean((d < low) | (d > high)):.3f} | "
              f"{np.median(finite):.2f} | {np.percentile(finite, 95):.2f} | {finite.max():.2f} | {w:.3f} | {ratio} | "
              f"{seconds:.0f} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

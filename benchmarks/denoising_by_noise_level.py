#!/usr/bin/env python
"""What has a generator learnt? Its denoising error at each noise level, on held-out crystals, for models side by side.

    python benchmarks/denoising_by_noise_level.py --dataset carbon_24 \
        --model-path outputs/carbon24/model.pt outputs/carbon24_angstrom/model.pt

For each model and each diffusion step ``t`` of ``--levels``, the first ``--n`` crystals of the data set's test
split (``--split train``: of its training files, to see what a model learnt of its own crystals) are noised at ``t``
and denoised once:

* **coords**: the coordinates noised (wrapped normal, ``sigma_t`` in cell fractions), the lattice and the
  species clean; the mean squared error of the normalised score (the training target, unit mean square).
  It isolates the coordinate task: the loss a sampler's last steps depend on.
* **lattice**: the lattice noised (the model's VP schedule), coordinates and species clean; the mean squared
  error of the predicted noise.

1.0 is what a network that has learnt nothing scores (it predicts zero). Below it at small ``sigma_t`` the
network sees where an atom should sit to within ``sigma_t``: a Carbon-24 cell of 8 A has a C-C bond of 1.4 A
at about 0.18 of the cell and ``sigma`` = 0.005 is 0.04 A. The floor there is not 0: the noise's mean over a
crystal's atoms is a translation, which no translation-invariant data set can reveal, so the best possible
coordinate loss at small ``sigma`` is at least the mean of ``1 / N`` over the crystals (printed). At large
``sigma_t`` the wrapped normal is nearly uniform and 1.0 is the best there is.

The crystals, noise draws and steps are the same for every model (``--seed``). Nothing here is timed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SPLITS = ("perov_5", "carbon_24")
LEVELS = "1,50,150,300,500,700,900,1000"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_levels(text: str, num_steps: int) -> list[int]:
    try:
        levels = [int(x) for x in text.split(",")]
    except ValueError:
        raise SystemExit(f"--levels takes integers separated by commas, got {text!r}") from None
    bad = [t for t in levels if not 1 <= t <= num_steps]
    if bad:
        raise SystemExit(f"--levels must lie in 1..{num_steps} (the model's diffusion steps), got {bad}")
    return levels


def losses_at(model, batch, t_value: int, seed: int) -> tuple[float, float]:
    """(coordinate loss, lattice loss) of ``model`` on ``batch`` noised at step ``t_value``."""
    gen = torch.Generator().manual_seed(seed + t_value)
    n = len(batch)
    t = torch.full((n,), t_value, dtype=torch.long)
    species = batch.atom_types - 1
    with torch.no_grad():
        lattice0 = model.normalise_lattice(batch.lattice, batch.num_atoms)
        cond = model.conditions(*model.conditions.null_like(n))
        frac_t, target = model.coord_process.q_sample(batch.frac_coords, t[batch.batch_index], generator=gen)
        out, mask = model.denoise(lattice0, frac_t, species, batch.batch_index, batch.num_atoms, t, cond)
        coords = float(model.coord_process.loss(out.coord_score[mask], target).mean())
        lattice_t, noise = model.lattice_process.q_sample(lattice0, t, generator=gen)
        out, _ = model.denoise(lattice_t, batch.frac_coords, species, batch.batch_index, batch.num_atoms, t, cond)
        lattice = float(model.lattice_process.loss(out.lattice_eps, noise).mean())
    return coords, lattice


def split_options_parser(description: str, name: str, n: int, levels: str) -> argparse.ArgumentParser:
    """The options this script shares with ``recovery_from_noise.py``: models, data set ``name`` (its
    ``outputs/<name without _>/model.pt`` the default model), the first ``n`` test crystals, diffusion steps."""
    parser = argparse.ArgumentParser(description=description)
    default_model = ROOT / "outputs" / name.replace("_", "") / "model.pt"
    parser.add_argument("--model-path", nargs="+", default=[str(default_model)])
    parser.add_argument("--dataset", choices=SPLITS, default=name)
    parser.add_argument("--data-dir", default=None, help="folder of the CDVAE split files (default ../shared/...)")
    parser.add_argument("--n", type=int, default=n, help="crystals (the split's first N)")
    parser.add_argument(
        "--split",
        choices=("test", "train"),
        default="test",
        help="the held-out test split (default), or the training files, to ask whether a model trained on the "
        "first N of them (benchmark_options.max_train) has learnt those",
    )
    parser.add_argument("--levels", default=levels, help=f"diffusion steps t, comma separated (default {levels})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    return parser


def load_records(args: argparse.Namespace) -> list:
    """The first ``--n`` crystals of ``--split`` of ``--dataset`` (from ``--data-dir``)."""
    from td_data.evaluation import SPLIT_FILES, load_split

    data_dir = Path(args.data_dir) if args.data_dir else ROOT.parent / "shared" / "data" / "benchmarks" / args.dataset
    files = SPLIT_FILES[args.dataset]
    paths = [data_dir / f for f in files.train] if args.split == "train" else [data_dir / files.test]
    return load_split(paths, args.split, limit=args.n).records


def main() -> None:
    parser = split_options_parser(__doc__.split("\n")[0], "perov_5", 256, LEVELS)
    args = parser.parse_args()
    if args.n < 1:
        raise SystemExit(f"--n must be >= 1, got {args.n}")

    from td_models import TopologicalDiffusionModel
    from td_models.batch import collate, crystal_item

    torch.set_num_threads(args.threads)
    records = load_records(args)
    models = []
    for path in args.model_path:
        if not Path(path).is_file():
            raise SystemExit(f"no model at {path}")
        models.append(TopologicalDiffusionModel.load(path).eval())
    max_atoms = min(int(m.atom_count_weights.shape[0]) - 1 for m in models)
    records = [r for r in records if len(r.atomic_numbers) <= max_atoms]
    if not records:
        raise SystemExit(f"no {args.split} crystal has at most {max_atoms} atoms (the models' max_atoms)")
    batch = collate([crystal_item(np.asarray(r.lattice), np.asarray(r.frac_coords), list(r.atomic_numbers))
                     for r in records])  # fmt: skip
    levels = parse_levels(args.levels, min(m.num_steps for m in models))
    floor = float((1.0 / batch.num_atoms.double()).mean())
    load = os.getloadavg()[0]
    log(f"{len(records)} {args.split} crystals of {args.dataset}, {len(models)} model(s), load average {load:.1f}")
    rows = []
    for t_value in levels:
        sigma = float(models[0].coord_process.sigma(t_value))
        rows.append((t_value, sigma, [losses_at(m, batch, t_value, args.seed) for m in models]))
        log(f"t = {t_value} done")

    print(f"# Denoising error by noise level: {args.dataset}, {len(records)} {args.split} crystals, seed {args.seed}")
    print(f"# translation floor of the coordinate loss at small sigma: mean(1/N) = {floor:.3f}")
    for i, (path, model) in enumerate(zip(args.model_path, models)):
        mc = model.config.model_config
        print(f"# [{i}] {path}: {model.num_parameters() / 1e6:.2f}M parameters, pair_distances {mc.pair_distances}")
    head = " | ".join(f"coords [{i}]" for i in range(len(models))) + " | "
    head += " | ".join(f"lattice [{i}]" for i in range(len(models)))
    print(f"| t | sigma | {head} |")
    print("|---" * (2 + 2 * len(models)) + "|")
    for t_value, sigma, results in rows:
        cells = [f"{c:.3f}" for c, _ in results] + [f"{lat:.3f}" for _, lat in results]
        print(f"| {t_value} | {sigma:.4f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Physics consistency of a trained model: does it generate what it is asked for, and do its heads predict well?

    python scripts/test_physics_consistency.py --test-materials data/05_model_input/test.h5
    python scripts/test_physics_consistency.py --model-path outputs/training/best_model.pt \
        --test-materials test_set.json --output-dir physics_results/

Without ``--model-path`` the newest model training wrote under the working folder is used (as
``test_generation_quality.py``: a run's ``best_model.pt`` under ``outputs/``, or ``data/06_models/model.pt``),
and without ``--test-materials`` the data pipeline's test split ``data/05_model_input/test.h5``.

1. **Conditional generation**: ``--n-samples`` crystals conditioned on each class in turn (``--classes``; or
   only the class of the model's ``physics_config`` with ``--model-class``), re-labelled with the td-physics
   structure labeller (the ``evaluate`` pipeline's :func:`physics_consistency`). The labeller only runs
   where it can build a tight-binding model (structurally valid, at most ``--max-relabel-atoms`` sites,
   elements it knows); the others are refusals, counted by reason. Writes ``confusion.json``
   (requested x recomputed counts, share as requested per class and overall, refusals) and
   ``confusion.png``.
2. **Property heads** on held-out labelled crystals (``--test-materials``: a td-data HDF5 store, JSON, CIF
   folder or benchmark CSV): MAE of band gap and formation energy where the crystals carry them,
   classification accuracy where they carry ``topo_class``. Writes ``property_heads.json``.

Pickles (``test_set.pkl``) are refused unless ``--trusted`` is given: unpickling runs whatever code the file
holds, so pass it only for a file you made yourself.

The labeller takes about 0.1-20 s per crystal (more for large low-symmetry cells); ``--max-relabel`` caps it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _evaluation import (
    DEFAULT_REFERENCE,
    SAFE_FORMATS,
    ScriptError,
    StepProgress,
    default_steps,
    display_path,
    load_model,
    load_records,
    progress,
    pyplot,
    quiet_libraries,
    resolve_model_path,
    run_main,
    save_figure,
    write_json,
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="test_physics_consistency.py",
        description="Re-label class-conditioned samples with the physics labeller (confusion matrix) and measure "
        "the property heads on held-out labelled crystals.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model-path", default=None,
                   help="model file (or training output folder) written by training; default: the newest found "
                   "under the working folder (outputs/*/best_model.pt, data/06_models/model.pt)")  # fmt: skip
    p.add_argument(
        "--test-materials",
        default=None,
        help="held-out labelled crystals: td-data store (.h5), JSON, CIF folder, CSV; a pickle only with --trusted "
        "(default: data/05_model_input/test.h5 of the working folder, else of the repository)",
    )
    p.add_argument("--n-samples", type=int, default=32, help="crystals generated per requested class")
    p.add_argument("--output-dir", default="physics_results", help="where confusion.json/.png, property_heads.json go")
    p.add_argument("--classes", nargs="+", default=None,
                   help="classes to request in turn (default: every class the model knows)")  # fmt: skip
    p.add_argument("--model-class", action="store_true", help="request only the class of the model's physics_config")
    p.add_argument("--steps", type=int, default=None, help="reverse steps (default: model's sampling_steps, else all)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--max-relabel", type=int, default=24, help="at most this many crystals re-labelled per class")
    p.add_argument("--max-relabel-atoms", type=int, default=8, help="only cells with at most this many sites")
    p.add_argument("--gap-mesh", type=int, default=6, help="k-points per axis of the labeller's gap search")
    p.add_argument("--workers", type=int, default=1, help="labeller worker processes")
    p.add_argument("--max-test", type=int, default=None, help="use at most this many test crystals")
    p.add_argument("--device", default="cpu", help="torch device")
    p.add_argument("--trusted", action="store_true", help="allow pickles and full (non weights-only) checkpoints")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--verbose", action="store_true", help="library logs at INFO")
    return p


def conditional_generation(model: Any, classes: Sequence[str], args: argparse.Namespace) -> dict[str, Any]:
    """Generate per class (the generate pipeline's node), re-label (the evaluate pipeline's node), tabulate
    (:func:`td_data.evaluation.confusion_table`)."""
    from pipelines.evaluate.nodes import physics_consistency
    from pipelines.generate.nodes import generate_candidates
    from td_data.evaluation import confusion_table

    pc = model.config.physics_config.to_dict()
    label_options = {"workers": args.workers, "gap_mesh": args.gap_mesh, "max_atoms": args.max_relabel_atoms}
    evaluate_options = {"max_relabel": args.max_relabel, "max_relabel_atoms": args.max_relabel_atoms}
    relabelled = {}
    for k, cls in enumerate(progress(classes, desc="classes", disable=args.no_progress)):
        cands, _ = generate_candidates(
            model,
            {**pc, "topological_class": cls},
            {"n_candidates": args.n_samples, "steps": args.steps, "seed": args.seed + k},
        )
        bar = StepProgress(f"labelling {cls}", disable=args.no_progress, unit="crystal")
        try:
            checked = physics_consistency(cands, label_options, evaluate_options, progress=bar)[0] if cands else []
        finally:
            bar.close()
        relabelled[cls] = checked
    result = confusion_table(relabelled)
    for row in result["per_class"].values():
        row["n_generated"] = args.n_samples
    result["labeller_options"] = dict(label_options)
    result["steps"] = args.steps if args.steps is not None else default_steps(model)
    return result


def confusion_figure(result: dict[str, Any]):
    rows, cols = result["classes"], result["recomputed_classes"]
    counts = np.array([[result["confusion"][r].get(c, 0) for c in cols] for r in rows], dtype=float)
    fig, ax = pyplot().subplots(figsize=(6, 3.8), constrained_layout=True)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    im = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for i in range(len(rows)):
        for j in range(len(cols)):
            ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=9)
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels(cols, rotation=20, fontsize=8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows, fontsize=8)
    ax.set_xlabel("recomputed (structure labeller)")
    ax.set_ylabel("requested")
    share = result["share_as_requested"]
    ax.set_title(f"as requested: {'n/a' if share is None else f'{share:.2f}'} of {result['n_checked']} checked "
                 f"({result['n_refused']} refused)", fontsize=9)  # fmt: skip
    fig.colorbar(im, ax=ax, label="share of row")
    return fig


def property_heads(model: Any, records: Sequence[Any]) -> dict[str, Any]:
    """MAE of band gap and formation energy and class accuracy of the heads on labelled crystals
    (:func:`td_data.evaluation.property_head_metrics` of the model's predictions)."""
    from td_data.evaluation import property_head_metrics

    preds = model.predict_properties(
        [{"lattice": r.lattice, "frac_coords": r.frac_coords, "atomic_numbers": r.atomic_numbers} for r in records]
    )
    return property_head_metrics(records, preds.band_gap, preds.formation_energy, preds.topo_class)


def default_test_materials() -> Path:
    """The data pipeline's test split: in the working folder (where ``kedro run`` wrote it), else the repository's."""
    here = Path("data") / "05_model_input" / "test.h5"
    if here.exists():
        return here
    if DEFAULT_REFERENCE.exists():
        return DEFAULT_REFERENCE
    raise ScriptError(
        f"no --test-materials given and the data pipeline's test split exists neither at {str(here)!r} nor at "
        f"{str(DEFAULT_REFERENCE)!r}: run `kedro run` (make demo), or pass --test-materials: {SAFE_FORMATS}"
    )


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    quiet_libraries(args.verbose)
    if args.n_samples < 1:
        raise ScriptError(f"--n-samples must be >= 1, got {args.n_samples}")
    from td_models.config import TOPO_CLASSES, topo_class_index
    from td_models.exceptions import TDModelsError

    out = Path(args.output_dir)
    model_path, how = resolve_model_path(args.model_path)
    print(f"model: {display_path(model_path)} ({how})", flush=True)
    model = load_model(model_path, device=args.device, trusted=args.trusted)
    test_path = Path(args.test_materials) if args.test_materials else default_test_materials()
    test = load_records(test_path, "test materials", trusted=args.trusted, limit=args.max_test)
    try:
        if args.model_class:
            classes = [TOPO_CLASSES[topo_class_index(model.config.physics_config.topological_class)]]
        else:
            classes = [TOPO_CLASSES[topo_class_index(c)] for c in (args.classes or TOPO_CLASSES)]
    except TDModelsError as err:
        raise ScriptError(str(err)) from err
    classes = list(dict.fromkeys(classes))

    heads = property_heads(model, test)
    heads["test_materials"] = str(test_path)
    write_json(heads, out / "property_heads.json")
    try:
        result = conditional_generation(model, classes, args)
    except TDModelsError as err:
        raise ScriptError(str(err)) from err
    result["model_path"] = str(model_path)
    result["model_chosen_by"] = how
    write_json(result, out / "confusion.json")
    save_figure(confusion_figure(result), out / "confusion.png")

    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    print("conditional generation (requested -> recomputed by the structure labeller):")
    for cls, row in result["per_class"].items():
        print(f"  {cls:20s} {row['n_as_requested']}/{row['n_checked']} as requested "
              f"(share {fmt(row['share_as_requested'])}), {row['n_refused']} refused {row['refusals']}")  # fmt: skip
    print(f"  overall share as requested: {fmt(result['share_as_requested'])} of {result['n_checked']} checked")
    print(f"property heads on {heads['n_crystals']} test crystals: band gap MAE {fmt(heads['band_gap_mae'])} eV "
          f"({heads['band_gap_n_labelled']} labelled), formation energy MAE {fmt(heads['formation_energy_mae'])} "
          f"eV/atom ({heads['formation_energy_n_labelled']}), class accuracy {fmt(heads['class_accuracy'])} "
          f"({heads['class_n_labelled']})")  # fmt: skip
    print(f"wrote {out / 'confusion.json'}, {out / 'confusion.png'} and {out / 'property_heads.json'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the script with ``argv`` (``sys.argv[1:]`` when None); returns the exit status."""
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())

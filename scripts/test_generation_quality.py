#!/usr/bin/env python
"""Generation quality of a trained model: the CDVAE / DiffCSP metrics of td-data against a reference set.

    python scripts/test_generation_quality.py --n-samples 1000 --output-dir validation_results/
    python scripts/test_generation_quality.py --model-path outputs/training/best_model.pt --n-samples 1000

Without ``--model-path`` the newest model training wrote under the working folder is used (a run folder's
``best_model.pt`` of ``examples/training_example.py``, ``outputs/training/`` by default, or the Kedro
pipeline's ``data/06_models/model.pt``); the first line of output names it. Samples ``--n-samples`` crystals
(unconditioned unless ``--topo-class``), with progress bars on the reverse steps, the property predictions, the
fingerprints and the metrics, then writes to ``--output-dir`` (created):

* ``metrics.json``: validity (structural, compositional, both), COV-R / COV-P (cutoffs of ``--dataset`` or
  ``--cutoffs``), Wasserstein distances of density and number of elements, uniqueness, novelty against
  ``--train`` (None without it), and what was measured against what;
* ``samples/``: one CIF per generated crystal with ``index.json`` / ``index.csv`` of the predicted properties;
* ``histograms.png``: density, atoms, elements per cell and band gap, generated against the reference.

The reference defaults to the test split of the data pipeline (``data/05_model_input/test.h5`` in the working
folder, else in the repository). The structure fingerprints cost some milliseconds to a second per crystal;
``--n-jobs`` runs them in parallel.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from _evaluation import (
    DEFAULT_REFERENCE,
    ScriptError,
    StepProgress,
    default_steps,
    display_path,
    generation_metrics_with_progress,
    load_model,
    load_records,
    quiet_libraries,
    resolve_model_path,
    run_main,
    sample_with_progress,
    save_figure,
    write_cifs,
    write_json,
)

from td_data.evaluation import DATASET_NAMES, attach_predictions, samples_to_records

METRIC_KEYS = ("valid", "struct_valid", "comp_valid", "cov_recall", "cov_precision", "wdist_density",
               "wdist_num_elems", "uniqueness", "novelty")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="test_generation_quality.py",
        description="Sample a trained model and compute the td-data generation metrics against a reference set.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model-path", default=None,
                   help="model file (or training output folder) written by training; default: the newest found "
                   "under the working folder (outputs/*/best_model.pt, data/06_models/model.pt)")  # fmt: skip
    p.add_argument("--n-samples", type=int, default=1000, help="crystals to generate")
    p.add_argument("--output-dir", default="validation_results", help="where metrics.json, samples/ and figures go")
    p.add_argument(
        "--reference",
        default=None,
        help="reference crystals (td-data store, CIF folder, CSV, JSON; a pickle only with --trusted); default "
        "data/05_model_input/test.h5 of the working folder, else of the repository",
    )
    p.add_argument("--train", default=None, help="training crystals for novelty (omitted: novelty is null)")
    p.add_argument(
        "--dataset", choices=sorted(DATASET_NAMES), default="mp20", help="coverage cutoffs of this benchmark"
    )
    p.add_argument("--cutoffs", type=float, nargs=2, metavar=("STRUCT", "COMP"), default=None,
                   help="coverage cutoffs (structure, composition); overrides --dataset")  # fmt: skip
    p.add_argument("--steps", type=int, default=None, help="reverse steps (default: model's sampling_steps, else all)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--topo-class", default=None, help="condition on this class (default: unconditioned)")
    p.add_argument("--batch-size", type=int, default=256, help="most crystals per denoiser batch")
    p.add_argument("--max-reference", type=int, default=None, help="use at most this many reference crystals")
    p.add_argument("--n-jobs", type=int, default=1, help="worker processes for the fingerprints")
    p.add_argument("--device", default="cpu", help="torch device for sampling")
    p.add_argument("--trusted", action="store_true", help="allow pickles and full (non weights-only) checkpoints")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--verbose", action="store_true", help="library logs at INFO")
    return p


def histogram_figure(reference, generated, label: str):
    """The report pipeline's histograms (density, atoms, elements, band gap) against the reference set."""
    from pipelines.report.nodes import plot_property_histograms

    fig = plot_property_histograms(reference, generated, reference_label=label)
    fig.suptitle(f"{len(generated)} generated vs {len(reference)} {label} crystals")
    return fig


def default_reference() -> Path:
    """The data pipeline's test split: in the working folder (where ``kedro run`` wrote it), else the repository's."""
    here = Path("data") / "05_model_input" / "test.h5"
    return here if here.exists() else DEFAULT_REFERENCE


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    quiet_libraries(args.verbose)
    if args.n_samples < 1:
        raise ScriptError(f"--n-samples must be >= 1, got {args.n_samples}")
    if args.batch_size < 1:
        raise ScriptError(f"--batch-size must be >= 1, got {args.batch_size}")
    out = Path(args.output_dir)
    model_path, how = resolve_model_path(args.model_path)
    print(f"model: {display_path(model_path)} ({how})", flush=True)
    model = load_model(model_path, device=args.device, trusted=args.trusted)
    ref_path = Path(args.reference) if args.reference else default_reference()
    if args.reference is None and not ref_path.exists():
        raise ScriptError(
            f"no --reference given and the data pipeline's test split exists neither at "
            f"{str(Path('data/05_model_input/test.h5'))!r} nor at {str(DEFAULT_REFERENCE)!r}: run `kedro run` "
            "(make demo), or pass --reference (a td-data store, CIF folder, CSV or JSON)"
        )
    reference = load_records(ref_path, "reference", trusted=args.trusted, limit=args.max_reference)
    train = load_records(args.train, "training set", trusted=args.trusted) if args.train else None

    from td_models.exceptions import TDModelsError

    quiet = args.no_progress
    t0 = time.perf_counter()
    try:
        samples = sample_with_progress(model, args.n_samples, topo_class=args.topo_class, steps=args.steps,
                                       seed=args.seed, batch_size=args.batch_size, disable=quiet)  # fmt: skip
    except TDModelsError as err:
        raise ScriptError(str(err)) from err
    t_sample = time.perf_counter() - t0
    t0 = time.perf_counter()
    predicted: list = []
    bar = StepProgress("predicting properties", disable=quiet, unit="crystal")
    try:
        for start in range(0, len(samples), args.batch_size):
            chunk = samples[start : start + args.batch_size]
            predicted += attach_predictions(chunk, *model.predict_samples(chunk))
            bar(len(predicted), len(samples))
    finally:
        bar.close()
    generated, rejected = samples_to_records(predicted)
    t_predict = time.perf_counter() - t0
    if not generated:
        raise ScriptError(f"none of the {args.n_samples} samples is a valid crystal record")
    write_cifs(generated, out / "samples")

    dataset = DATASET_NAMES[args.dataset]
    t0 = time.perf_counter()
    metrics = generation_metrics_with_progress(
        generated, reference, dataset=dataset, train=train, cutoffs=tuple(args.cutoffs) if args.cutoffs else None,
        n_jobs=args.n_jobs, disable=quiet,
    )  # fmt: skip
    result = {
        **metrics,
        "model_path": str(model_path),
        "model_chosen_by": how,
        "n_requested": args.n_samples,
        "n_records": len(generated),
        "n_rejected_samples": len(rejected),
        "topo_class": args.topo_class,
        "steps": args.steps if args.steps is not None else default_steps(model),
        "seed": args.seed,
        "batch_size": args.batch_size,
        "reference": f"{ref_path} ({len(reference)} crystals)",
        "train": f"{args.train} ({len(train)} crystals)" if train is not None else None,
        "dataset": dataset,
        "sampling_seconds": round(t_sample, 2),
        "predict_seconds": round(t_predict, 2),
        "metrics_seconds": round(time.perf_counter() - t0, 2),
        **stability_note(model),
    }
    write_json(result, out / "metrics.json")
    save_figure(histogram_figure(reference, generated, "reference"), out / "histograms.png")

    print(f"{len(generated)} of {args.n_samples} samples are crystal records; metrics against {result['reference']}:")
    for key in METRIC_KEYS:
        value = result.get(key)
        print(f"  {key:16s} {'n/a' if value is None else f'{value:.4f}'}")
    if result["stability_filter"]:
        print(result["stability_filter"])
    print(f"wrote {out / 'metrics.json'}, {out / 'samples'}/ and {out / 'histograms.png'}")
    return 0


def stability_note(model) -> dict:
    """``stability_threshold`` of the model's physics_config and, when set, that this script did not apply it."""
    threshold = model.config.physics_config.stability_threshold
    note = ""
    if threshold is not None:
        note = (
            f"physics_config.stability_threshold = {threshold:g} eV/atom was NOT applied: these samples are not "
            "relaxed; the Kedro relax pipeline applies it (CHGNet relaxation and energy above the hull: "
            "kedro run --pipelines=relax)"
        )
    return {"stability_threshold": threshold, "stability_filter": note}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the script with ``argv`` (``sys.argv[1:]`` when None); returns the exit status."""
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())

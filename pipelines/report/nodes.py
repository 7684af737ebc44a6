"""Report: figures and a one-page Markdown report that a person opens first."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from td_data import CrystalRecord

logger = logging.getLogger(__name__)

#: A reduced-coordinate path through Gamma and the zone-face centres (exact for cubic cells; for others
#: a generic path that still crosses the zone).
DEFAULT_K_PATH = ([0, 0, 0], [0.5, 0, 0], [0.5, 0.5, 0], [0, 0, 0], [0.5, 0.5, 0.5])
DEFAULT_K_LABELS = ("G", "X", "M", "G", "R")


def _figure(ncols: int = 1, width: float = 5.0):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(width * ncols, 3.8), constrained_layout=True)


def plot_training_curves(training_metrics: pd.DataFrame):
    """Losses against the optimiser step: per step (train), per epoch mean (epoch) and validation (val).

    ``training_metrics`` is the Trainer's ``metrics.csv``: a ``kind`` column (``train``, ``epoch``, ``val``),
    ``step`` and one column per loss part.
    """
    fig, ax = _figure()
    df = training_metrics
    for kind, column, style in (
        ("train", "total", "-"),
        ("epoch", "total", "o-"),
        ("epoch", "diffusion", "s--"),
        ("val", "total", "^-"),
        ("val", "diffusion", "v--"),
    ):
        if column not in df or "kind" not in df:
            continue
        rows = df[(df["kind"] == kind) & df[column].notna()]
        if len(rows):
            alpha = 0.35 if kind == "train" else 1.0
            ax.plot(rows["step"], rows[column], style, lw=1, ms=3, alpha=alpha, label=f"{kind} {column}")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    ax.set_title("Training curves")
    return fig


def plot_class_distribution(labelled: Sequence[CrystalRecord], checked: Sequence[CrystalRecord]):
    """Classes of the training data (labeller), and of the candidates: requested, predicted, recomputed."""
    fig, ax = _figure(width=7)
    groups = {
        "data (labeller)": Counter(r.labels.get("topo_class", "unlabelled") for r in labelled),
        "candidates: predicted": Counter(r.labels.get("predicted_class", "?") for r in checked),
        "candidates: recomputed": Counter(r.labels.get("recomputed_class", "?") for r in checked),
    }
    classes = sorted({c for g in groups.values() for c in g})
    x = np.arange(len(classes))
    for i, (name, counts) in enumerate(groups.items()):
        total = max(sum(counts.values()), 1)
        ax.bar(x + (i - 1) * 0.27, [counts.get(c, 0) / total for c in classes], 0.27, label=name)
    ax.set_xticks(x)
    ax.set_xticklabels(classes, rotation=20, fontsize=8)
    ax.set_ylabel("share")
    requested = checked[0].labels.get("requested_class") if checked else "?"
    ax.set_title(f"Topological classes (requested: {requested})")
    ax.legend(fontsize=8)
    return fig


def plot_property_histograms(
    train: Sequence[CrystalRecord], candidates: Sequence[CrystalRecord], reference_label: str = "training"
):
    """Density, atoms per cell, elements per cell and band gap: generated against reference (training) crystals."""
    fig, axes = _figure(ncols=4, width=3.6)
    panels = (
        ("density (g/cm^3)", lambda r: r.density),
        ("atoms per cell", lambda r: r.num_atoms),
        ("elements per cell", lambda r: len(r.composition)),
    )
    for ax, (name, f) in zip(axes, panels):
        a = [f(r) for r in train]
        b = [f(r) for r in candidates]
        bins = np.histogram_bin_edges(np.concatenate([a, b]) if b else a, bins=20)
        ax.hist(a, bins=bins, alpha=0.6, density=True, label=reference_label)
        ax.hist(b, bins=bins, alpha=0.6, density=True, label="generated")
        ax.set_xlabel(name)
    gaps_train = [r.labels["indirect_gap"] for r in train if r.labels.get("indirect_gap") not in (None, -np.inf)]
    gaps_gen = [r.properties["predicted_band_gap"] for r in candidates if "predicted_band_gap" in r.properties]
    ax = axes[3]
    if gaps_train:
        ax.hist(np.clip(gaps_train, 0, None), bins=20, alpha=0.6, density=True, label=f"{reference_label} (labeller)")
    if gaps_gen:
        ax.hist(gaps_gen, bins=20, alpha=0.6, density=True, label="generated (predicted)")
    ax.set_xlabel("band gap (eV)")
    axes[0].legend(fontsize=8)
    ax.legend(fontsize=7)
    return fig


def _rank(rec: CrystalRecord) -> tuple:
    lab = rec.labels
    return (
        lab.get("recomputed_class") != lab.get("requested_class"),
        lab.get("recomputed_class") == "not_checked",
        -(lab.get("recomputed_confidence") or 0.0),
        rec.id,
    )


def plot_best_band_structures(checked: Sequence[CrystalRecord], label_options: Mapping[str, Any], n_best: int = 2):
    """Band structures (first labeller variant) of the best candidates the labeller could build.

    Best = recomputed class equal to the requested one, then checked, then highest confidence.
    """
    from pipelines.label.nodes import LabelConfig
    from td_physics.bands import band_structure
    from td_physics.plotting import plot_band_structure
    from td_physics.structure import DEFAULT_VARIANTS, tight_binding_from_structure

    cfg = LabelConfig.from_dict(label_options)
    variant = cfg.classify_options()["variants"][0] if DEFAULT_VARIANTS else None
    built = []
    for rec in sorted((r for r in checked if r.labels.get("recomputed_class") != "not_checked"), key=_rank):
        try:
            model = tight_binding_from_structure(rec.lattice, rec.frac_coords, rec.atomic_numbers, variant=variant)
            nodes = [k[: model.dim_k] for k in DEFAULT_K_PATH]
            built.append((rec, band_structure(model, nodes, DEFAULT_K_LABELS, n_points=120)))
        except Exception as err:  # noqa: BLE001 - a candidate that cannot be built is skipped, and logged
            logger.info("no band structure for %s: %s", rec.id, err)
        if len(built) >= n_best:
            break
    fig, axes = _figure(ncols=max(len(built), 1))
    axes = np.atleast_1d(axes)
    if not built:
        axes[0].text(0.5, 0.5, "no candidate could be built\nby the tight-binding labeller", ha="center", va="center")
        axes[0].set_axis_off()
    for ax, (rec, bands) in zip(axes, built):
        title = f"{rec.id} {rec.formula}: {rec.labels.get('recomputed_class')}"
        plot_band_structure(bands, ax=ax, title=title)
    return fig


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "n/a" if value is None else str(value)


def write_report(
    ingest_quarantine: Mapping[str, Any],
    label_summary: Mapping[str, Any],
    split: Mapping[str, Any],
    training_summary: Mapping[str, Any],
    generation_summary: Mapping[str, Any],
    generation_metrics: Mapping[str, Any],
    physics_consistency: Mapping[str, Any],
    candidate_table: pd.DataFrame,
) -> str:
    """The one-page Markdown report: what ran, what came out, where to look, and the limits."""
    gm, pc = generation_metrics, physics_consistency
    losses = training_summary.get("last_losses", {})
    cfg = training_summary.get("config", {})
    lines = [
        "# topological-diffusion: run report",
        "",
        "Open this first. Figures are next to it in `data/08_reporting/`; candidates as CIF files with an",
        "index of their predicted labels in `data/07_model_output/candidates/`; the table of predicted and",
        "recomputed labels in `data/08_reporting/candidates.csv`.",
        "",
        "## What ran",
        "",
        f"- **Data**: {ingest_quarantine['source']}: {ingest_quarantine['counts']['kept']} crystals kept, "
        f"{ingest_quarantine['counts']['quarantined']} quarantined (`data/01_raw/quarantine.json`).",
        f"- **Labels**: {label_summary['n_labelled']} of {label_summary['n_attempted']} attempted crystals labelled "
        f"by the td-physics structure labeller ({label_summary['n_failed']} failed); classes "
        f"{label_summary['class_counts']}.",
        f"- **Split**: {split['method']}, seed {split['seed']}: {len(split['train'])} train, {len(split['val'])} val, "
        f"{len(split['test'])} test (`data/05_model_input/split.json`).",
        f"- **Training**: {training_summary['epochs_completed']} epochs, {training_summary['global_step']} steps, "
        f"{training_summary['num_parameters']:,} parameters (hidden_dim "
        f"{cfg.get('model_config', {}).get('hidden_dim')}); last losses "
        + ", ".join(f"{k} {_fmt(v)}" for k, v in losses.items() if k in ("total", "diffusion", "val", "val_diffusion"))
        + " (`training_curves.png`).",
        f"- **Generation**: {generation_summary['n_records']} of {generation_summary['n_requested']} samples asked "
        f"for class `{generation_summary['requested_class']}`, band gap {generation_summary['band_gap_range']} eV, "
        f"{generation_summary['steps']} sampler steps.",
        "",
        "## Results",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    for key in ("valid", "struct_valid", "comp_valid", "cov_recall", "cov_precision", "wdist_density",
                "wdist_num_elems", "uniqueness", "novelty"):  # fmt: skip
        if key in gm:
            lines.append(f"| {key} | {_fmt(gm[key])} |")
    if "error" in gm:
        lines.append(f"| generation metrics | failed: {gm['error']} |")
    if "candidates_used" in gm:
        lines.append(f"| metrics computed on | {gm['candidates_used']}, against the {gm.get('reference', '?')} |")
    lines += [
        f"| structurally valid candidates | {pc['n_structurally_valid']} of {pc['n_candidates']} |",
        f"| relabelled by the physics labeller | {pc['n_checked']} |",
        f"| recomputed class = requested (`{pc['requested_class']}`) | {pc['n_as_requested']} "
        f"({_fmt(pc['share_as_requested'])}) |",
        f"| recomputed classes | {pc['recomputed_class_counts']} |",
        "",
        "Confusion of requested against recomputed class: "
        + (", ".join(f"{c['requested']} -> {c['recomputed']}: {c['count']}" for c in pc["confusion"]) or "none"),
        "",
    ]
    if len(candidate_table):
        cols = [c for c in ("id", "formula", "num_atoms", "predicted_class", "recomputed_class",
                            "predicted_band_gap", "recomputed_indirect_gap") if c in candidate_table]  # fmt: skip
        head = candidate_table[cols].head(8)
        lines += ["First candidates:", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in head.itertuples(index=False)]
        lines.append("")
    lines += [
        "## Limits (read before trusting anything above)",
        "",
        "- This is the `cpu-demo` preset: a tiny model trained for a few minutes on a few hundred synthetic",
        "  crystals. Its samples show that the pipeline works end to end; they are not materials predictions.",
        "- The physics labels come from a universal-parameter tight-binding ensemble (this run:",
        f"  spin_orbit={label_summary['options'].get('spin_orbit')}). On the literature reference table of",
        "  docs/labeller_accuracy.md it is right for 92% of its confident labels (Bi2Se3 yes; Bi2Te3, Sb2Te3,",
        "  HgTe, Bi and Sb not), with a band-overlap tolerance chosen on that same table. Treat every `z2_ti`",
        "  here (training labels and recomputed candidate classes alike) as a candidate for a DFT check, not a",
        "  fact. No label was invented or edited.",
        f"- Only small cells are labelled (at most {label_summary['options'].get('max_atoms')} sites, "
        f"{label_summary['options'].get('max_records')} crystals): the labeller costs seconds per cell. The rest",
        "  train without a class condition.",
        "- Coverage, Wasserstein distances and novelty are measured against the small test split and training",
        "  split of this run, with the MP-20 cutoffs: they are not comparable with published tables.",
        "- The synthetic crystals carry no band gap or formation energy, so the property heads and the band-gap",
        "  condition have nothing to learn from: predicted band gaps are close to a constant, and asking for",
        "  0.1-0.5 eV does not steer the samples. Feed data with properties (a Materials Project export) for that.",
        "- Only a few small candidates are re-labelled (`evaluate_options.max_relabel`): the labeller takes",
        "  10-20 s per low-symmetry generated cell on two cores.",
        "",
    ]
    return "\n".join(lines)

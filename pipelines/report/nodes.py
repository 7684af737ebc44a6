"""Report: figures and a one-page Markdown report that a person opens first."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from td_data import CrystalRecord
from td_physics.structure.accuracy import measured_accuracy

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
    requested = checked[0].labels.get("requested_class", "?") if checked else "?"
    ax.set_title(f"Topological classes (requested: {requested or 'none, unconditioned'})")
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
    from pipelines.config import LabelConfig
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


def _text_figure(message: str):
    fig, ax = _figure()
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    ax.set_axis_off()
    return fig


def best_verified(dft_results: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The converged DFT result to show: DFT class equal to the requested one first, then insulators before
    metals, then verification rank."""
    done = [r for r in dft_results if r.get("converged")]
    if not done:
        return None
    return min(
        done,
        key=lambda r: (
            r.get("topo_class") != r.get("requested_class"),
            r.get("topo_class") == "semimetal_or_metal",
            r.get("rank", 0),
        ),
    )


def _band_structure_child(conn: Any, crystal: dict[str, Any], spin_orbit: bool, settings: dict, n_points: int) -> None:
    """Body of the child process of :func:`dft_bands_with_limit`: the bands go back as JSON text."""
    try:
        from td_physics.dft import DFTSettings, dft_band_structure

        bands = dft_band_structure(
            crystal["lattice"], crystal["frac_coords"], crystal["atomic_numbers"], spin_orbit=spin_orbit,
            settings=DFTSettings.from_dict(settings), n_points=n_points,
        )  # fmt: skip
        message = {"bands": bands.to_dict()}
    except Exception as err:  # noqa: BLE001 - sent back to the parent, which logs it
        message = {"error": f"{type(err).__name__}: {err}"}
    conn.send_bytes(json.dumps(message).encode())
    conn.close()


def dft_bands_with_limit(
    rec: CrystalRecord, *, spin_orbit: bool, settings: Mapping[str, Any], n_points: int, timeout: float | None
) -> tuple[dict[str, Any] | None, str]:
    """``(DFTBandStructure.to_dict() or None, why not)``: td-physics' ``dft_band_structure`` in a spawned child
    process stopped (SIGTERM, then SIGKILL) after ``timeout`` seconds (None: no limit)."""
    import multiprocessing
    import time

    crystal = {"lattice": rec.lattice.tolist(), "frac_coords": rec.frac_coords.tolist(),
               "atomic_numbers": [int(z) for z in rec.atomic_numbers]}  # fmt: skip
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_band_structure_child, args=(send, crystal, spin_orbit, dict(settings), n_points),
                       name="td-dft-bands", daemon=True)  # fmt: skip
    start = time.perf_counter()
    proc.start()
    send.close()  # the child holds the only write end: EOF when it dies
    payload = None
    try:
        if receive.poll(timeout):
            try:
                payload = receive.recv_bytes()
            except EOFError:
                payload = None
    finally:
        receive.close()
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
            if proc.is_alive():
                proc.kill()
        proc.join()
    if payload is None:
        if timeout is not None and time.perf_counter() - start >= timeout:
            return None, f"over the time limit of {timeout:g} s (verify_options.timeout_per_crystal)"
        return None, f"the band-structure process died (exit code {proc.exitcode})"
    message = json.loads(payload)
    return message.get("bands"), message.get("error", "")


def plot_dft_band_structure(
    dft_results: Sequence[Mapping[str, Any]],
    checked: Sequence[CrystalRecord],
    verify_summary: Mapping[str, Any],
    n_points: int = 40,
):
    """The DFT band structure (td-physics' ``dft_band_structure``, along the standard path of the cell) of the
    best verified candidate (:func:`best_verified`), with the settings, spin-orbit choice and per-crystal time
    limit of the verification; energies relative to the valence band maximum. Without a converged verified
    candidate, or past the time limit, the figure says why."""
    best = best_verified(dft_results)
    if best is None:
        why = verify_summary.get("reason") or "no verified candidate converged"
        return _text_figure(f"No DFT band structure:\n{why}")
    rec = next((r for r in checked if r.id == best["id"]), None)
    if rec is None:
        return _text_figure(f"No DFT band structure:\ncandidate {best['id']} is not among the checked candidates")
    bands, why = dft_bands_with_limit(
        rec, spin_orbit=bool(verify_summary.get("spin_orbit", True)), settings=verify_summary.get("settings") or {},
        n_points=n_points, timeout=verify_summary.get("timeout_per_crystal"),
    )  # fmt: skip
    if bands is None:
        logger.warning("no DFT band structure for %s: %s", rec.id, why)
        return _text_figure(f"No DFT band structure for {rec.id}:\n{why}")
    fig, ax = _figure()
    distances = np.asarray(bands["distances"])  # (nk,) 1/Angstrom along the path
    energies = np.asarray(bands["energies"])  # (nk, nbands) eV, relative to the valence band maximum
    for b in range(energies.shape[1]):
        occupied = b < bands.get("n_occupied", 0)
        ax.plot(distances, energies[:, b], color="C0" if occupied else "C3", lw=1.2)
    ticks = [d for d, _ in bands["labels"]]
    for t in ticks:
        ax.axvline(t, color="0.7", lw=0.8)
    ax.axhline(0.0, color="0.4", ls="--", lw=0.8)
    ax.set_xticks(ticks)
    ax.set_xticklabels([r"$\Gamma$" if name in ("G", "Gamma") else name for _, name in bands["labels"]])
    ax.set_xlim(distances[0], distances[-1])
    ax.set_ylim(max(energies.min(), -4.0), min(energies.max(), 4.0))
    ax.set_ylabel("E - VBM (eV)")
    z2 = best.get("z2_indices")
    soc = "PBE+SOC" if bands.get("spin_orbit") else "PBE"
    title = f"{rec.id} {rec.formula}: DFT {best.get('topo_class')}" + (f" Z2 {z2}" if z2 is not None else "")
    ax.set_title(f"{title} ({soc})", fontsize=9)
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
    relax_summary: Mapping[str, Any],
    verify_summary: Mapping[str, Any],
    dft_results: Sequence[Mapping[str, Any]],
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
        _generation_line(generation_summary),
        _relax_line(relax_summary),
        _verify_line(verify_summary),
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
    lines += _composition_rows(gm.get("composition"))
    lines += [
        f"| structurally valid candidates | {pc['n_structurally_valid']} of {pc['n_candidates']} |",
        f"| relabelled by the physics labeller | {pc['n_checked']} |",
        f"| recomputed class = requested (`{pc['requested_class']}`) | {pc['n_as_requested']} "
        f"({_fmt(pc['share_as_requested'])}) |"
        if pc["requested_class"] is not None
        else "| recomputed class = requested | no class requested (unconditioned generation) |",
        f"| recomputed classes | {pc['recomputed_class_counts']} |",
        "",
        "Confusion of requested against recomputed class: "
        + (", ".join(f"{c['requested']} -> {c['recomputed']}: {c['count']}" for c in pc["confusion"]) or "none"),
        "",
    ]
    lines += candidate_lines(candidate_table, dft_results, verify_summary)
    lines += [
        "## Limits (read before trusting anything above)",
        "",
        *limits_lines(
            {
                "ingest_quarantine": ingest_quarantine,
                "label_summary": label_summary,
                "split": split,
                "training_summary": training_summary,
                "generation_summary": generation_summary,
                "generation_metrics": generation_metrics,
                "physics_consistency": physics_consistency,
                "relax_summary": relax_summary,
                "verify_summary": verify_summary,
            }
        ),
        "",
    ]
    return "\n".join(lines)


def _composition_rows(comp: Mapping[str, Any] | None) -> list[str]:
    """The composition rows of the results table: all candidates against the training split."""
    if not comp or "error" in comp:
        return [] if not comp else [f"| composition | not computed: {comp['error']} |"]
    low, high = comp["density_range"]
    train_low, train_high = comp["train_density_range"]
    return [
        f"| composition of all {comp['n_candidates']} candidates vs the training split | W(#elements) "
        f"{_fmt(comp['wdist_num_elems'])}, W(#atoms) {_fmt(comp['wdist_num_atoms'])}; charge-balanced (SMACT) "
        f"{_fmt(comp['charge_balanced'])} (training {_fmt(comp['train_charge_balanced'])}); at most "
        f"{comp['max_num_elems']} elements per cell (training {comp['train_max_num_elems']}); density "
        f"{low:.2f}-{high:.2f} g/cm^3 (training {train_low:.2f}-{train_high:.2f}; "
        f"{_fmt(comp['density_in_train_range'])} of the candidates inside it) |",
    ]


def _model_limits(quarantine: Mapping[str, Any], training: Mapping[str, Any]) -> list[str]:
    mc = training.get("config", {}).get("model_config", {})
    lines = [
        f"- The model has {training.get('num_parameters', 0):,} parameters (hidden_dim {mc.get('hidden_dim')}, "
        f"{mc.get('num_layers')} layers), trained for {training.get('epochs_completed')} epochs on "
        f"{training.get('n_train')} crystals from {quarantine.get('source')}."
    ]
    if quarantine.get("data_source") == "synthetic":
        lines.append(
            "  They are synthetic (substituted prototypes): its samples show that the pipeline works end to end; "
            "they are not materials predictions."
        )
    return lines


def _labeller_limits(options: Mapping[str, Any]) -> list[str]:
    spin_orbit, overlap = options.get("spin_orbit"), options.get("max_band_overlap")
    lines = [
        "- The physics labels come from a universal-parameter tight-binding ensemble (this run: "
        f"spin_orbit={spin_orbit}, max_band_overlap={overlap} eV)."
    ]
    sweep = measured_accuracy()  # the packaged table that docs/labeller_accuracy.md quotes
    measured = sweep.get(overlap) if spin_orbit else None
    if measured is None:
        lines.append(
            "  Its accuracy on the reference table of docs/labeller_accuracy.md was measured with spin-orbit "
            f"coupling on and max_band_overlap in {sorted(sweep)} eV, not with this run's options."
        )
    else:
        right, confident = measured.confident_correct, measured.confident
        lines.append(
            f"  On the literature reference table of docs/labeller_accuracy.md, with these options, it is right for "
            f"{right} of its {confident} confident labels ({right / confident:.0%}); wrong there: "
            f"{', '.join(measured.wrong)}."
        )
    lines += [
        "  Treat every `z2_ti` here (training labels and recomputed candidate classes alike) as a candidate for a",
        "  DFT check, not a fact. No label was invented or edited.",
        f"- Only small cells are labelled (at most {options.get('max_atoms')} sites, {options.get('max_records')} "
        "crystals): the labeller costs seconds per cell. The rest train without a class condition.",
    ]
    return lines


def _property_limits(training: Mapping[str, Any], generation: Mapping[str, Any]) -> list[str]:
    gaps, energies = training.get("n_train_with_band_gap"), training.get("n_train_with_formation_energy")
    if gaps is None:
        return []
    if gaps == 0:
        gap_range = generation.get("band_gap_range", ("?", "?"))
        asked = (
            "and this run asked for no band gap"
            if gap_range is None
            else f"and asking for {gap_range[0]}-{gap_range[1]} eV does not steer the samples"
        )
        return [
            f"- None of the training crystals carries a band gap ({energies} a formation energy), so the band-gap "
            "head and the band-gap condition have nothing to learn from: predicted band gaps are close to a "
            f"constant, {asked}. Feed data with properties (a Materials Project export) for that."
        ]
    return [
        f"- {gaps} training crystals carry a band gap and {energies} a formation energy: the property heads learn "
        "from those."
    ]


def limits_lines(run: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The report's limits, each sentence built from this run's parameters and measured numbers.

    ``run`` maps the catalog's names to what the pipelines wrote: ``ingest_quarantine``, ``label_summary``,
    ``split``, ``training_summary``, ``generation_summary``, ``generation_metrics``, ``physics_consistency``,
    ``relax_summary`` and ``verify_summary``.
    """
    training_summary, verify_summary = run["training_summary"], run["verify_summary"]
    dataset = run["generation_metrics"].get("coverage_dataset", "n/a")
    pc = run["physics_consistency"]
    limits = pc.get("relabel_limits", {})
    lines = _model_limits(run["ingest_quarantine"], training_summary)
    lines += _labeller_limits(run["label_summary"].get("options", {}))
    lines += [
        "- Coverage, Wasserstein distances and novelty are measured against this run's test split "
        f"({len(run['split'].get('test', []))} crystals) and training split, with the {dataset} coverage "
        "cutoffs: a split of this run, so they are not comparable with published tables.",
        *_property_limits(training_summary, run["generation_summary"]),
        f"- {pc.get('n_checked')} of {pc.get('n_candidates')} candidates were re-labelled "
        f"(`evaluate_options.max_relabel` {limits.get('max_relabel')}, `max_relabel_atoms` "
        f"{limits.get('max_relabel_atoms')}): the labeller is the slow step.",
        f"- Energies above the hull are an {run['relax_summary'].get('hull', 'estimate')}.",
    ]
    if verify_summary.get("n_verified"):
        settings = verify_summary.get("settings") or {}
        soc = "non-self-consistent spin-orbit coupling" if verify_summary.get("spin_orbit") else "no spin-orbit"
        lines += [
            f"- DFT here is LCAO ({settings.get('basis')} basis), {settings.get('xc')}, {soc}: its Z2 indices are the",
            "  verdict the TB labels are checked against, but its gaps are not quantitative (LCAO and plane-wave gaps",
            "  at Gamma differ by ~0.7 eV on Bi2Se3), and PBE underestimates gaps and can invert bands that are not",
            "  inverted in experiment.",
        ]
    return lines


def _generation_line(summary: Mapping[str, Any]) -> str:
    """The report's sentence on generation: what was asked (or that nothing was), steps and guidance."""
    head = f"- **Generation**: {summary['n_records']} of {summary['n_requested']} samples "
    if summary.get("requested_class") is None:
        return head + (f"generated without a condition (`generate_options.conditioned: false`: no class or band gap "
                       f"asked, no classifier-free guidance), {summary['steps']} sampler steps.")  # fmt: skip
    w = _fmt(summary["guidance_scale"])
    return head + (f"asked for class `{summary['requested_class']}`, band gap {summary['band_gap_range']} eV, "
                   f"{summary['steps']} sampler steps, classifier-free guidance w = {w}.")  # fmt: skip


def _relax_line(rs: Mapping[str, Any]) -> str:
    threshold = rs.get("stability_threshold")
    filt = "no stability_threshold (every relaxed candidate passes)" if threshold is None else (
        f"stability_threshold {threshold:g} eV/atom"
    )  # fmt: skip
    if rs.get("note"):
        return (
            f"- **Relaxation**: {rs['note']}; {filt}: {rs.get('n_passed_stability', 0)} of "
            f"{rs.get('n_candidates', 0)} candidates pass on to verification (`relax_table.csv`)."
        )
    o = rs.get("options", {})
    return (
        f"- **Relaxation** (CHGNet, fmax {o.get('fmax')} eV/Angstrom, at most {o.get('max_steps')} steps, "
        f"relax_cell {o.get('relax_cell')}{_limits(o)}): {rs.get('n_relaxed', 0)} of {rs.get('n_candidates', 0)} "
        f"relaxed, {rs.get('n_converged', 0)} converged, "
        f"{rs.get('n_with_e_above_hull', 0)} with an energy above the hull; {filt}: "
        f"{rs.get('n_passed_stability', 0)} pass on to verification (`relax_table.csv`, relaxed CIFs in "
        "`data/07_model_output/relaxed_candidates/`)."
    )


def _limits(o: Mapping[str, Any]) -> str:
    """The relax_options limits in words ('' when there are none)."""
    k, m = o.get("max_candidates"), o.get("max_atoms")
    if k and m:
        return f"; only the first {k} candidates of at most {m} sites"
    if k:
        return f"; only the first {k} candidates"
    return f"; only cells of at most {m} sites" if m else ""


def _verify_line(vs: Mapping[str, Any]) -> str:
    slurm = (
        "The selected crystals are in `data/07_model_output/dft_crystals.json`, the input of "
        "`python -m td_physics.dft run` (one crystal per SLURM array task)."
    )
    if not vs.get("enabled"):
        return f"- **DFT verification**: not run: {vs.get('reason')}. {slurm}"
    if vs.get("available") is False:
        return (
            f"- **DFT verification: NOT RUN. {vs.get('reason')}.** Every class in this report is the tight-binding "
            f"labeller's only; install the extra and rerun `kedro run --pipelines=evaluate,report`. {slurm}"
        )
    if not vs.get("n_verified"):
        return f"- **DFT verification**: nothing verified: {vs.get('reason') or 'no candidate selected'}. {slurm}"
    soc = "with" if vs.get("spin_orbit") else "WITHOUT"
    return (
        f"- **DFT verification** (GPAW, PBE {soc} spin-orbit coupling, top {vs.get('top_n')} candidates of at most "
        f"{vs.get('max_atoms')} sites that passed the stability filter, {_fmt(vs.get('timeout_per_crystal'))} s "
        f"each at most): {vs.get('n_converged')} of {vs.get('n_verified')} converged (`dft_results.json`; the band "
        f"structure of the best, or why there is none, in `dft_band_structure.png`). {slurm}"
    )


def _pair(a: Any, b: Any) -> str:
    return f"{_fmt(a)} / {_fmt(b)}"


def candidate_lines(
    candidate_table: pd.DataFrame, dft_results: Sequence[Mapping[str, Any]], verify_summary: Mapping[str, Any]
) -> list[str]:
    """The per-candidate Markdown table: the verified candidates (rank order), then the TB-checked ones, then the
    rest, at most 10 rows (all of them in ``candidates.csv``)."""
    if not len(candidate_table):
        return []
    dft = {r["id"]: r for r in dft_results}
    if verify_summary.get("available") is False:
        not_verified = "not run (DFT extra absent)"
    elif not verify_summary.get("enabled"):
        not_verified = "not run (disabled)"
    else:
        not_verified = "not selected"
    table = candidate_table.copy()
    checked = table.get("recomputed_class", pd.Series("not_checked", index=table.index)) != "not_checked"
    table["_order"] = [
        (0, dft[i]["rank"]) if i in dft else (1 if ok else 2, n) for n, (i, ok) in enumerate(zip(table["id"], checked))
    ]
    table = table.sort_values("_order", kind="stable")
    head = table.head(max(10, len(dft)))
    lines = [
        "Candidates (verified first; all of them in `candidates.csv`, relaxation in `relax_table.csv`):",
        "",
        "| id | formula | requested | TB class (confidence) | DFT class | Z2 | DFT converged / reason "
        "| DFT gap direct / indirect (eV) | e_above_hull (eV/atom) | RMSD (Angstrom) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in head.to_dict("records"):
        res = dft.get(row["id"])
        tb = f"{row.get('recomputed_class', 'n/a')} ({_fmt(_value(row.get('recomputed_confidence')))})"
        if res is None:
            dft_cells = [not_verified, "", "", ""]
        else:
            status = "yes" if res.get("converged") else f"no: {res.get('reason')}"
            z2 = res.get("z2_indices")
            dft_cells = [
                _fmt(res.get("topo_class")),
                "n/a" if z2 is None else str(z2).replace("|", "/"),
                status.replace("|", "/"),
                _pair(res.get("band_gap_direct"), res.get("band_gap_indirect")),
            ]
        cells = [row["id"], row.get("formula", ""), _fmt(row.get("requested_class")), tb, *dft_cells,
                 _fmt(_value(row.get("e_above_hull"))), _fmt(_value(row.get("rmsd")))]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines.append("")
    return lines


def _value(v: Any) -> Any:
    """None for a pandas missing value (NaN), the value otherwise."""
    if v is None or (isinstance(v, float) and v != v):
        return None
    return v

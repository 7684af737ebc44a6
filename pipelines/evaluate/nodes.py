"""Evaluate: generation quality (CDVAE/DiffCSP metrics) and physics consistency of the candidates.

Physics consistency re-runs the structure labeller (the same options as the ``label`` pipeline) on
the structurally valid candidates and compares the recomputed class with the class that was asked
for: a confusion table and the share that are what was asked.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from td_data import CrystalRecord

logger = logging.getLogger(__name__)


def generation_quality(
    candidates: Sequence[CrystalRecord],
    test: Sequence[CrystalRecord],
    train: Sequence[CrystalRecord],
    evaluate_options: Mapping[str, Any],
) -> dict[str, Any]:
    """Validity, COV-R/COV-P, Wasserstein distances, uniqueness and novelty (against ``train``).

    ``evaluate_options.coverage_dataset`` picks the coverage cutoffs (``mp_20`` for MP-20-like data, the
    default for the synthetic set of at most 20 sites). The test split is the reference set.
    """
    from td_data.metrics import generation_metrics

    if not candidates:
        return {"n_generated": 0, "error": "no candidate was a valid record"}
    dataset = str(evaluate_options.get("coverage_dataset", "mp_20"))
    n_max = int(evaluate_options.get("max_metric_candidates", 24))
    # CrystalNN fingerprints cost about a second per crystal here (more for the huge cells of an undertrained
    # model), so the metrics use the first n_max candidates (in sampling order, no selection)
    used = list(candidates)[:n_max]
    metrics = generation_metrics(used, list(test), dataset=dataset, train=list(train), n_jobs=1)
    metrics = {k: (v.item() if hasattr(v, "item") else v) for k, v in metrics.items()}
    metrics["reference"] = f"test split ({len(test)} crystals), coverage cutoffs of {dataset}"
    metrics["candidates_used"] = f"first {len(used)} of {len(candidates)} candidates"
    return metrics


def physics_consistency(
    candidates: Sequence[CrystalRecord],
    label_options: Mapping[str, Any],
    evaluate_options: Mapping[str, Any],
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[CrystalRecord], dict[str, Any], pd.DataFrame]:
    """``(candidates with recomputed labels, consistency report, one table row per candidate)``.

    Only structurally valid candidates with at most ``max_relabel_atoms`` sites and elements the
    labeller knows are relabelled (at most ``max_relabel``); the others get ``recomputed_class`` =
    ``not_checked`` with the reason. ``progress(done, total)`` is called as labels arrive (td-data's
    ``label_records``; the evaluation scripts draw a bar with it).
    """
    from pipelines.ingest.nodes import LABELLER_ELEMENTS
    from pipelines.label.nodes import LabelConfig
    from td_data.labels import label_records
    from td_data.validity import structure_validity

    cfg = LabelConfig.from_dict(label_options)
    max_atoms = int(evaluate_options.get("max_relabel_atoms", cfg.max_atoms))
    max_n = int(evaluate_options.get("max_relabel", 24))
    why: dict[str, str] = {}
    valid: dict[str, bool] = {}
    todo = []
    for rec in candidates:
        # compositional validity (SMACT) is left to generation_quality: it enumerates oxidation states and
        # takes minutes on the many-element cells an undertrained model makes
        s_ok, s_reason = structure_validity(rec)
        valid[rec.id] = s_ok
        if not s_ok:
            why[rec.id] = f"structurally invalid: {s_reason}"
        elif rec.num_atoms > max_atoms:
            why[rec.id] = f"{rec.num_atoms} sites > max_relabel_atoms={max_atoms}"
        elif not set(rec.species) <= set(LABELLER_ELEMENTS):
            why[rec.id] = f"elements {sorted(set(rec.species) - set(LABELLER_ELEMENTS))} unknown to the labeller"
        elif len(todo) >= max_n:
            why[rec.id] = f"beyond max_relabel={max_n}"
        else:
            todo.append(rec.replace(labels={}))  # no topo_class: the labeller must compute it
    result = label_records(todo, workers=cfg.workers, progress=progress, **cfg.classify_options()) if todo else None
    recomputed = {r.id: r.labels for r in result.records} if result else {}
    for q in result.quarantined if result else ():
        rid = q.reason.split(" ")[1] if q.reason.startswith("labelling ") else q.source
        why[rid.rstrip(":")] = q.reason
    out, rows = [], []
    for rec in candidates:
        lab = recomputed.get(rec.id)
        extra = {
            "recomputed_class": lab["topo_class"] if lab else "not_checked",
            "recomputed_confidence": lab["confidence"] if lab else None,
            "recomputed_indirect_gap": lab["indirect_gap"] if lab else None,
            "not_checked_reason": "" if lab else why.get(rec.id, "labelling failed"),
            "struct_valid": valid[rec.id],
        }
        out.append(rec.with_labels(**extra))
        rows.append({"id": rec.id, "formula": rec.formula, "num_atoms": rec.num_atoms, **rec.properties,
                     **{k: v for k, v in rec.labels.items()}, **extra})  # fmt: skip
    checked = [r for r in out if r.labels["recomputed_class"] != "not_checked"]
    requested = candidates[0].labels.get("requested_class") if candidates else None
    confusion = Counter((r.labels.get("requested_class"), r.labels["recomputed_class"]) for r in checked)
    matches = sum(r.labels["recomputed_class"] == r.labels.get("requested_class") for r in checked)
    report = {
        "requested_class": requested,
        "n_candidates": len(candidates),
        "n_structurally_valid": sum(valid.values()),
        "n_checked": len(checked),
        "n_as_requested": matches,
        "share_as_requested": matches / len(checked) if checked else None,
        "confusion": [{"requested": a, "recomputed": b, "count": n} for (a, b), n in sorted(confusion.items())],
        "recomputed_class_counts": dict(Counter(r.labels["recomputed_class"] for r in out)),
        "predicted_vs_recomputed_agree": sum(
            r.labels.get("predicted_class") == r.labels["recomputed_class"] for r in checked
        ),
        "labeller_options": {"spin_orbit": cfg.spin_orbit, "gap_mesh": cfg.gap_mesh},
    }
    logger.info("evaluate: %d of %d checked candidates are %s", matches, len(checked), requested)
    return out, report, pd.DataFrame(rows)

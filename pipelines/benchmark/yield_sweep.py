"""The guidance sweep of the yield benchmark: one conditioned arm per ``(guidance_scale, property_guidance)``
point, each against the same unconditioned arm.

:func:`sweep_summary` gives each point's yield (share of labelled and of generated crystals that the labeller
calls ``z2_ti``, Wilson intervals), its enrichment over the unconditioned arm (Katz interval, zeros handled),
validity and diversity, and picks the **headline** point whose numbers go to the top of ``metrics.json``: the
only point, or with several the one with the highest lower 95% bound of the enrichment of labelled crystals
(then the highest ratio, then the earliest point). That choice looks at the data, so the headline interval is
optimistic by the number of points tried; the file says so. :func:`sweep_figure` draws yield and validity
against the guidance scale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from td_data.evaluation import enrichment, enrichment_for_json, share

#: what each sweep point keeps of its arm's summary
POINT_KEYS = ("n_generated", "n_labelled", "share_over_labelled", "share_over_generated", "class_counts",
              "quality", "relaxation")  # fmt: skip


def _rank(e: Mapping[str, Any]) -> tuple[float, float]:
    low = e["ci_low"] if e["ci_low"] is not None else -1.0
    ratio = e["ratio"] if e["ratio"] is not None else -1.0
    return low, ratio


def headline_point(enrichments: Sequence[Mapping[str, Any]]) -> int:
    """The index of the point with the highest lower bound of its enrichment (then ratio; the first on ties)."""
    return max(range(len(enrichments)), key=lambda k: (*_rank(enrichments[k]), -k))


def sweep_summary(
    points: Sequence[Mapping[str, Any]], unconditioned: Mapping[str, Any], target: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(sweep, enrichments)``: the ``sweep`` block of ``metrics.json`` and each point's enrichment of labelled
    crystals (as computed, infinities kept). ``points``: ``{"sampling", "summary"}`` per point (the arm summary
    of :func:`pipelines.benchmark.yields.arm_summary` with ``quality`` and ``relaxation``)."""
    u = unconditioned
    rows, enrichments = [], []
    for k, point in enumerate(points):
        c = point["summary"]
        over_labelled = enrichment(c[f"n_{target}"], c["n_labelled"], u[f"n_{target}"], u["n_labelled"])
        over_generated = enrichment(c[f"n_{target}"], c["n_generated"], u[f"n_{target}"], u["n_generated"])
        enrichments.append(over_labelled)
        rows.append({
            "point": k,
            "guidance_scale": point["sampling"]["guidance_scale"],
            "property_guidance": point["sampling"].get("property_guidance", 0.0),
            f"n_{target}": c[f"n_{target}"],
            **{key: c.get(key) for key in POINT_KEYS},
            "enrichment_over_labelled": enrichment_for_json(over_labelled),
            "enrichment_over_generated": enrichment_for_json(over_generated),
        })  # fmt: skip
    best = headline_point(enrichments)
    rule = ("the only point" if len(points) == 1 else
            f"the highest lower 95% bound of the enrichment of labelled crystals among {len(points)} points; "
            "chosen after seeing the data, so its interval is optimistic (not corrected for the choice)")  # fmt: skip
    sweep = {
        "points": rows,
        "unconditioned": {f"n_{target}": u[f"n_{target}"], **{key: u.get(key) for key in POINT_KEYS}},
        "headline": best,
        "headline_rule": rule,
    }
    return sweep, enrichments


def _share_bars(stats: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Values and (2, n) error bars of Wilson shares (0 where a share is undefined)."""
    vals = np.array([s["share"] if s["share"] is not None else np.nan for s in stats])
    lo = np.array([s["share"] - s["ci_low"] if s["share"] is not None else 0.0 for s in stats])
    hi = np.array([s["ci_high"] - s["share"] if s["share"] is not None else 0.0 for s in stats])
    return vals, np.vstack([lo, hi])


def sweep_figure(sweep: Mapping[str, Any], target: str):
    """Yield of labelled crystals (left), structural and compositional validity, the share of distinct
    compositions and, with relaxation on, the share that relaxed (right) against the classifier-free guidance
    scale; one line per property-guidance scale, the unconditioned arm as a dashed line with its interval shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    u = sweep["unconditioned"]
    by_property: dict[float, list[Mapping[str, Any]]] = {}
    for row in sweep["points"]:
        by_property.setdefault(row["property_guidance"], []).append(row)
    for p, rows in sorted(by_property.items()):
        rows = sorted(rows, key=lambda r: r["guidance_scale"])
        w = np.array([r["guidance_scale"] for r in rows], dtype=float)
        suffix = f", property guidance {p:g}" if len(by_property) > 1 or p else ""
        vals, err = _share_bars([r["share_over_labelled"] for r in rows])
        left.errorbar(w, vals, yerr=err, marker="o", capsize=3, label=f"conditioned on {target}{suffix}")
        for key, style in (("structural_validity", "o-"), ("compositional_validity", "s--"),
                           ("unique_compositions", "^:")):  # fmt: skip
            vals, err = _share_bars([r["quality"][key] for r in rows])
            right.errorbar(w, vals, yerr=err, fmt=style, capsize=3, label=f"{key.replace('_', ' ')}{suffix}")
        if all((r.get("relaxation") or {}).get("enabled") for r in rows):
            vals, err = _share_bars([share(r["relaxation"]["n_relaxed"], r["n_generated"]) for r in rows])
            right.errorbar(w, vals, yerr=err, fmt="d-.", capsize=3, label=f"relaxed (CHGNet converged){suffix}")
    base = u["share_over_labelled"]
    if base["share"] is not None:
        left.axhline(base["share"], color="grey", ls="--", label=f"unconditioned ({base['count']}/{base['n']})")
        left.axhspan(base["ci_low"], base["ci_high"], color="grey", alpha=0.15)
    best = sweep["points"][sweep["headline"]]
    left.set_title(f"{target} share of labelled crystals (headline: w={best['guidance_scale']:g})", fontsize=10)
    right.set_title("validity and diversity of the conditioned arm", fontsize=10)
    for ax in (left, right):
        ax.set_xlabel("classifier-free guidance scale w")
        ax.legend(fontsize=7)
    left.set_ylim(bottom=0)
    right.set_ylim(0, 1.02)
    left.set_ylabel("share (Wilson 95%)")
    fig.tight_layout()
    return fig

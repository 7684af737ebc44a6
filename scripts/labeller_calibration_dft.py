#!/usr/bin/env python
"""The tight-binding labeller's confidence calibrated against DFT on the project's own synthetic crystals.

    nice -n 10 python scripts/labeller_calibration_dft.py --output-dir outputs/labeller_calibration_dft --n 200

The crystals come from ``td_data.SyntheticDatasetGenerator`` (the generator ``kedro run`` ingests, seed and
share of 2D sheets from ``conf/base/parameters_ingest.yml``), kept when both judges can label them: elements
the structure labeller knows, at most ``--max-atoms`` sites, atoms at least 0.5 A apart and 1 A^3 per atom,
no duplicates (pymatgen's StructureMatcher); the first ``--n`` in the generator's seeded order. With
``--input families.h5`` they come from a td-data crystal store that carries TB classes instead (the
topological-families build's output), drawn class by class so that ``z2_ti`` crystals are well represented:

    python scripts/labeller_calibration_dft.py --input outputs/topological_families/families.h5 \
        --max-atoms 5 --n 50 --output-dir outputs/families_dft

Each is
labelled by the structure labeller (``td_data.labels.label_records`` with the ``label_options`` of
``conf/base/parameters_label.yml``) and by DFT (PBE + spin-orbit, GPAW LCAO:
``td_physics.dft.run_crystals``, the function behind ``python -m td_physics.dft run``), ``--workers``
crystals in DFT at once (each in its own process; the TB labeller runs meanwhile). Clear metals are
decided on a coarse screening mesh first (``--screen-kpt-spacing``, ``DFTSettings.screen_kpt_spacing``).
Written in ``--output-dir``:

* ``crystals.json``: the crystals (the input format of ``python -m td_physics.dft run``);
* ``tb/tb-IIIIII.json`` and ``dft/result-IIIIII.json``: one result per crystal and judge, written as it
  finishes; a rerun reuses every one (a DFT result made with other settings is redone), so an interrupted
  run resumes where it stopped;
* ``calibration.json``: one row per crystal (id, formula, sites, TB class, confidence and Z2, DFT class
  and Z2, whether DFT converged and why not, gaps, seconds), the summary, the reliability bins and the agreement
  by TB gap (``agreement_by_tb_gap``: the TB metals, then the TB insulators by their smallest direct gap);
* ``confusion.md``: TB class against DFT class, crystals where DFT converged, and the agreement by TB gap;
* ``reliability.png``: share of TB labels that DFT confirms per confidence bin, with counts, and beside it the
  same share by TB gap (the confidence, a share of agreeing variants, hardly varies).

The three reports are rewritten after every crystal, so they describe a stopped run too (as partial:
the summary says how many of ``--n`` were done). ``--max-minutes`` stops starting new crystals after that
long; ``--report-only`` computes nothing and writes the reports from the results there.

Needs the ``td-physics[dft]`` extra (GPAW). DFT takes minutes per crystal on two cores.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import sys
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from td_physics.classes import TOPO_CLASSES
from td_physics.files import atomic_write, write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
LABEL_PARAMETERS = ROOT / "conf" / "base" / "parameters_label.yml"
INGEST_PARAMETERS = ROOT / "conf" / "base" / "parameters_ingest.yml"
CLASSES = TOPO_CLASSES
TB_FORMAT = "td-calibration.tb-label"


# ----------------------------------------------------------------------------------------------------
# files


def _write_text(path: Path, text: str) -> None:
    write_text_atomic(path, text)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        logging.getLogger(__name__).warning("%s is unreadable (%s): redone", path, err)
        return None


# ----------------------------------------------------------------------------------------------------
# the crystals


def _yaml_block(path: Path, block: str) -> dict[str, Any]:
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    value = data.get(block)
    if not isinstance(value, dict):
        raise SystemExit(f"error: {path} must have a {block!r} mapping")
    return value


def select_crystals(n: int, max_atoms: int, seed: int, fraction_2d: float) -> tuple[list[Any], dict[str, Any]]:
    """The first ``n`` synthetic crystals both judges can label, in the generator's seeded order, and what
    was set aside. Prefix-stable: a larger ``n`` with the same seed starts with the same crystals."""
    from td_data import SyntheticDatasetGenerator
    from td_data.filters import DuplicateFilter, PlausibilityFilter, apply_filters
    from td_physics.structure import supported_elements

    generator = SyntheticDatasetGenerator(
        seed=seed, max_atoms=max_atoms, fraction_2d=fraction_2d, allowed_elements=supported_elements()
    )
    pool = 3 * n + 30
    while True:
        records = generator.generate_dataset(pool)
        result = apply_filters(
            records,
            [PlausibilityFilter(min_distance=0.5, min_volume_per_atom=1.0, max_atoms=max_atoms), DuplicateFilter()],
        )
        if len(result.kept) >= n or pool >= 50 * n + 1000:
            break
        pool *= 2
    kept = list(result.kept[:n])
    if len(kept) < n:
        raise SystemExit(f"error: only {len(kept)} distinct crystals in {pool} synthetic draws; lower --n")

    def draw(record_id: str) -> int:  # synth-SEED-IIIIII: the generator's running number
        return int(record_id.rsplit("-", 1)[1])

    last = draw(kept[-1].id)
    set_aside = Counter(r.filter_name for r in result.rejected if draw(r.record_id) <= last)
    return kept, {"generated": last + 1, "set_aside": dict(set_aside), "seed": seed, "fraction_2d": fraction_2d}


def select_from_store(path: Path, n: int, max_atoms: int, seed: int) -> tuple[list[Any], dict[str, Any]]:
    """``n`` crystals of a td-data crystal store that carry a TB class (``labels["topo_class"]``, as the
    topological-families build writes them), at most ``max_atoms`` sites, elements the structure labeller
    knows, drawn class by class in turn (each class in a seeded order) so that a rare class such as ``z2_ti``
    is not swamped. Prefix-stable: a larger ``n`` with the same seed starts with the same crystals."""
    import random

    from td_data.store import CrystalStore
    from td_physics.structure import supported_elements

    known = set(supported_elements())
    with CrystalStore.open(path) as store:
        pool = list(store.read_all())
    by_class: dict[str, list[Any]] = {c: [] for c in CLASSES}
    set_aside: Counter[str] = Counter()
    for record in pool:
        cls = record.labels.get("topo_class")
        if cls not in by_class:
            set_aside["no TB class"] += 1
        elif record.num_atoms > max_atoms:
            set_aside[f"more than {max_atoms} sites"] += 1
        elif not set(record.species) <= known:
            set_aside["element the labeller does not know"] += 1
        else:
            by_class[cls].append(record)
    rng = random.Random(seed)
    for cls in CLASSES:
        by_class[cls].sort(key=lambda r: r.id)
        rng.shuffle(by_class[cls])
    order: list[Any] = []
    for depth in range(max((len(v) for v in by_class.values()), default=0)):
        order += [by_class[c][depth] for c in CLASSES if depth < len(by_class[c])]
    if len(order) < n:
        raise SystemExit(f"error: only {len(order)} crystals of {path} qualify (at most {max_atoms} sites); lower --n")
    kept = order[:n]
    return kept, {
        "input": str(path),
        "pool": len(pool),
        "eligible_by_tb_class": {c: len(v) for c, v in by_class.items()},
        "selected_by_tb_class": dict(Counter(r.labels["topo_class"] for r in kept)),
        "set_aside": dict(set_aside),
        "seed": seed,
    }


def _dft_crystal(record: Any) -> dict[str, Any]:
    return {
        "id": record.id,
        "lattice": record.lattice.tolist(),
        "frac_coords": record.frac_coords.tolist(),
        "atomic_numbers": [int(z) for z in record.atomic_numbers],
    }


# ----------------------------------------------------------------------------------------------------
# the two judges


def tb_label(
    index: int, record: Any, options: dict[str, Any], fingerprint: dict[str, Any], folder: Path, timeout: float | None
) -> dict[str, Any]:
    """The structure labeller's answer on ``record`` (reused from ``folder`` when it is there)."""
    from td_data.labels import label_records

    path = folder / f"tb-{index:06d}.json"
    saved = _read_json(path)
    if isinstance(saved, dict) and saved.get("id") == record.id and saved.get("options") == fingerprint:
        saved["reused"] = True
        return saved
    start = time.perf_counter()
    result = label_records([record], workers=1, timeout=timeout, **options)
    seconds = time.perf_counter() - start
    if result.records:
        labels = dict(result.records[0].labels)
        entry = {
            "labels": {
                k: labels.get(k)
                for k in (
                    "topo_class",
                    "z2_indices",
                    "chern",
                    "confidence",
                    "flagged",
                    "direct_gap",
                    "indirect_gap",
                    "label_source",
                    "variants",
                )
            },
            "reason": None,
        }
    else:
        entry = {"labels": None, "reason": result.quarantined[0].reason if result.quarantined else "no label"}
    out = {
        "format": TB_FORMAT,
        "index": index,
        "id": record.id,
        "options": fingerprint,
        **entry,
        "seconds": round(seconds, 2),
    }
    _write_text(path, json.dumps(out, indent=1) + "\n")
    out["reused"] = False
    return out


def _z2(indices: Any) -> str:
    if not indices:
        return ""
    return f"({indices[0]};{''.join(str(i) for i in indices[1:])})"


def reason_kind(reason: str | None) -> str:
    """A DFT refusal reason with its numbers and parenthesised details left out, to count alike reasons."""
    if not reason:
        return "unknown"
    text = re.sub(r"\s*\(.*", "", reason.strip())
    text = re.sub(r"-?\d+(\.\d+)?(e-?\d+)?", "#", text)
    return text.strip() or reason.strip()


def _same_settings(result: dict[str, Any], settings: dict[str, Any]) -> bool:
    """Whether a DFT result is the one ``settings`` give, compared on the settings both know: a td-physics that
    added a setting while the run went on (the child process of each crystal imports it afresh) leaves
    the others' meaning alone. ``run_crystals`` is stricter and redoes such results when it runs again. A
    ``min_margin`` that differs counts as the same where the result shows no step depended on it
    (``td_physics.dft.cli.settings_change_problem``, the rule ``run_crystals`` applies too)."""
    from td_physics.dft.cli import settings_change_problem

    made = result.get("settings")
    if not isinstance(made, dict):
        return False
    shared = {k: v for k, v in settings.items() if k in made}
    return settings_change_problem({**result, "settings": {k: made[k] for k in shared}}, shared) is None


def make_row(index: int, record: Any, tb: dict[str, Any] | None, dft: dict[str, Any] | None) -> dict[str, Any]:
    labels = (tb or {}).get("labels") or {}
    row: dict[str, Any] = {
        "index": index,
        "id": record.id,
        "formula": record.formula,
        "n_atoms": int(record.num_atoms),
        "prototype": record.labels.get("prototype"),
        "family": record.labels.get("family"),
        "dimensionality": record.labels.get("dimensionality"),
        "tb_class": labels.get("topo_class"),
        "tb_confidence": labels.get("confidence"),
        "tb_z2": labels.get("z2_indices"),
        "tb_chern": labels.get("chern"),
        "tb_direct_gap": labels.get("direct_gap"),
        "tb_indirect_gap": labels.get("indirect_gap"),
        "tb_reason": None if tb is None else tb.get("reason"),
        "tb_seconds": None if tb is None else tb.get("seconds"),
        "dft_done": dft is not None,
        "dft_class": None,
        "dft_z2": None,
        "dft_chern": None,
        "dft_method": None,
        "dft_converged": None,
        "dft_reason": None,
        "dft_direct_gap": None,
        "dft_indirect_gap": None,
        "dft_kpts": None,
        "dft_seconds": None,
        "dft_screened": None,
    }
    if dft is not None:
        row.update(
            dft_class=dft.get("topo_class") if dft.get("converged") else None,
            dft_z2=dft.get("z2_indices"),
            dft_chern=dft.get("chern_number"),
            dft_method=dft.get("method"),
            dft_converged=bool(dft.get("converged")),
            dft_reason=dft.get("reason"),
            dft_direct_gap=dft.get("band_gap_direct"),
            dft_indirect_gap=dft.get("band_gap_indirect"),
            dft_kpts=dft.get("kpts"),
            dft_seconds=None if dft.get("wall_time") is None else round(float(dft["wall_time"]), 1),
            # decided a clear metal by the coarse screening ground state (DFTSettings.screen_kpt_spacing)
            dft_screened=bool(((dft.get("details") or {}).get("screen") or {}).get("clear_metal")),
        )
    both = row["tb_class"] is not None and row["dft_class"] is not None
    row["both"] = both
    row["agree"] = both and row["tb_class"] == row["dft_class"]
    tb_z2, dft_z2 = list(row["tb_z2"] or []), list(row["dft_z2"] or [])
    if row["dimensionality"] == 2 and len(tb_z2) == 1 and len(dft_z2) == 4:
        # a sheet (the generator puts its vacuum along the third lattice vector): DFT sees the stack of sheets, whose
        # only index is the weak one of G = b3, equal to the sheet's 2D Z2
        tb_z2 = [0, 0, 0, tb_z2[0]]
    same_z2 = tb_z2 == dft_z2
    row["agree_z2"] = row["agree"] and (row["tb_class"] != "z2_ti" or same_z2)
    return row


# ----------------------------------------------------------------------------------------------------
# reports


def summarise(rows: list[dict[str, Any]], n: int, threshold: float) -> dict[str, Any]:
    done = [r for r in rows if r["dft_done"]]
    both = [r for r in rows if r["both"]]
    confident = [r for r in both if (r["tb_confidence"] or 0.0) >= threshold]
    refused = [r for r in done if not r["dft_converged"]]
    scf = [r for r in both if r["dft_method"] != "electron_count"]
    seconds = [r["dft_seconds"] for r in done if r["dft_seconds"] is not None]
    converged_seconds = [r["dft_seconds"] for r in done if r["dft_converged"] and r["dft_seconds"] is not None]

    def share(k: int, m: int) -> float | None:
        return None if m == 0 else round(k / m, 4)

    return {
        "n_target": n,
        "n_crystals": len(rows),
        "n_dft_done": len(done),
        "n_tb_labelled": sum(1 for r in rows if r["tb_class"] is not None),
        "n_tb_failed": sum(1 for r in rows if r["tb_reason"]),
        "n_dft_converged": len(done) - len(refused),
        "n_dft_screened": sum(1 for r in done if r["dft_screened"]),
        "n_both": len(both),
        "complete": len(done) == n and len(rows) == n,
        "agree": sum(r["agree"] for r in both),
        "agreement": share(sum(r["agree"] for r in both), len(both)),
        "agree_with_z2": sum(r["agree_z2"] for r in both),
        "both_z2_ti": sum(r["tb_class"] == r["dft_class"] == "z2_ti" for r in both),
        "both_z2_ti_same_indices": sum(r["tb_class"] == r["dft_class"] == "z2_ti" and r["agree_z2"] for r in both),
        # odd electron count: both judges call it a metal by counting, without a band structure
        "n_both_by_count": len(both) - len(scf),
        "n_both_band_structure": len(scf),
        "agree_band_structure": sum(r["agree"] for r in scf),
        "agreement_band_structure": share(sum(r["agree"] for r in scf), len(scf)),
        "threshold": threshold,
        "n_confident": len(confident),
        "agree_confident": sum(r["agree"] for r in confident),
        "agreement_confident": share(sum(r["agree"] for r in confident), len(confident)),
        "n_not_confident": len(both) - len(confident),
        "agreement_not_confident": share(
            sum(r["agree"] for r in both) - sum(r["agree"] for r in confident), len(both) - len(confident)
        ),
        "dft_refused": dict(Counter(reason_kind(r["dft_reason"]) for r in refused).most_common()),
        "dft_refused_example": {reason_kind(r["dft_reason"]): r["dft_reason"] for r in reversed(refused)},
        "tb_failed": dict(Counter(reason_kind(r["tb_reason"]) for r in rows if r["tb_reason"]).most_common()),
        "dft_seconds_total": round(sum(seconds), 1),
        "dft_seconds_median": None if not seconds else round(float(sorted(seconds)[len(seconds) // 2]), 1),
        "dft_seconds_median_converged": None
        if not converged_seconds
        else round(float(sorted(converged_seconds)[len(converged_seconds) // 2]), 1),
        "dft_seconds_max": None if not seconds else round(max(seconds), 1),
    }


def confusion_markdown(rows: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    both = [r for r in rows if r["both"]]
    counts = Counter((r["tb_class"], r["dft_class"]) for r in both)
    tb_classes = [c for c in CLASSES if any(k[0] == c for k in counts)] + sorted({k[0] for k in counts} - set(CLASSES))
    dft_classes = [c for c in CLASSES if any(k[1] == c for k in counts)] + sorted({k[1] for k in counts} - set(CLASSES))
    state = "complete" if summary["complete"] else f"partial: {summary['n_dft_done']} of {summary['n_target']} done"
    lines = [
        f"TB labeller (rows) against DFT PBE+SOC (columns), {len(both)} crystals where both gave a class ({state}).",
        "",
        "| TB \\ DFT | " + " | ".join(dft_classes) + " | total |",
        "|---|" + "---:|" * (len(dft_classes) + 1),
    ]
    if not both:
        lines[2:] = ["No crystal has a class from both judges yet."]
    for t in tb_classes:
        cells = [counts.get((t, d), 0) for d in dft_classes]
        lines.append(
            f"| {t} | "
            + " | ".join(f"**{c}**" if t == d else str(c) for c, d in zip(cells, dft_classes))
            + f" | {sum(cells)} |"
        )
    totals = [sum(counts.get((t, d), 0) for t in tb_classes) for d in dft_classes]
    if both:
        lines.append("| total | " + " | ".join(str(c) for c in totals) + f" | {len(both)} |")
    lines.append("")
    z2_rows = [r for r in both if r["tb_class"] == "z2_ti" and r["dft_class"] == "z2_ti"]
    if z2_rows:
        lines.append(f"Both z2_ti: {len(z2_rows)}, same Z2 indices in {sum(r['agree_z2'] for r in z2_rows)}.")
    if summary["dft_refused"]:
        lines.append("")
        lines.append("DFT gave no class (left out above):")
        lines.append("")
        lines += [
            f'- {v} x {k} (e.g. "{summary["dft_refused_example"][k]}")' for k, v in summary["dft_refused"].items()
        ]
    return "\n".join(lines) + "\n"


def gap_markdown(by_gap: list[dict[str, Any]]) -> str:
    """The agreement by TB gap (:func:`gap_bins`) as a Markdown table, with the disagreements named."""
    if not by_gap:
        return ""
    lines = [
        "",
        "Agreement by what the TB labeller saw (its metals; its insulators by their smallest direct gap):",
        "",
        "| TB group | crystals | DFT agrees | mean TB confidence | disagreements |",
        "|---|---:|---:|---:|---|",
    ]
    for g in by_gap:
        lines.append(f"| {g['group']} | {g['n']} | {g['agree']} ({100 * g['share']:.0f}%) | "
                     f"{g['mean_confidence']:.2f} | {'; '.join(g['disagree']) or '-'} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def reliability_bins(rows: list[dict[str, Any]], width: float = 0.1) -> list[dict[str, Any]]:
    """Crystals with both classes binned by TB confidence: [lo, hi), the last bin closed at 1."""
    both = [r for r in rows if r["both"] and r["tb_confidence"] is not None]
    n_bins = int(round(1.0 / width))
    out = []
    for b in range(n_bins):
        lo, hi = b * width, (b + 1) * width
        members = [r for r in both if min(int(r["tb_confidence"] / width + 1e-9), n_bins - 1) == b]
        if not members:
            continue
        out.append(
            {
                "lo": round(lo, 3),
                "hi": round(hi, 3),
                "n": len(members),
                "agree": sum(r["agree"] for r in members),
                "share": sum(r["agree"] for r in members) / len(members),
                "mean_confidence": sum(r["tb_confidence"] for r in members) / len(members),
            }
        )
    return out


#: TB direct-gap bins (eV, [lo, hi)) of the agreement by gap: where a band inversion is a few tenths of an eV away,
#: the tight-binding variants (one s/p basis, one scaling) can all be wrong together
GAP_EDGES = (0.0, 0.1, 0.3, 1.0, math.inf)


def gap_bins(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Crystals with both classes grouped by what the TB labeller saw: its metals, then its insulators by the
    smallest direct gap on its mesh (:data:`GAP_EDGES`); per group the count, the DFT agreements and the TB
    confidences. The labeller's confidence is the share of variants that agree, so it hardly varies; the gap is
    what tells a reliable label from a fragile one."""
    both = [r for r in rows if r["both"]]
    groups: list[tuple[str, list[dict[str, Any]]]] = [
        ("TB metal or semimetal", [r for r in both if r["tb_class"] == "semimetal_or_metal"])
    ]
    insulators = [r for r in both if r["tb_class"] != "semimetal_or_metal" and r["tb_direct_gap"] is not None]
    for lo, hi in zip(GAP_EDGES[:-1], GAP_EDGES[1:]):
        name = f"TB gap >= {lo:g} eV" if math.isinf(hi) else f"TB gap {lo:g}-{hi:g} eV"
        groups.append((name, [r for r in insulators if lo <= r["tb_direct_gap"] < hi]))
    out = []
    for name, members in groups:
        if not members:
            continue
        agree = sum(r["agree"] for r in members)
        out.append({"group": name, "n": len(members), "agree": agree, "share": agree / len(members),
                    "mean_confidence": sum(r["tb_confidence"] or 0.0 for r in members) / len(members),
                    "disagree": [f"{r['formula']} (#{r['index']}: TB {r['tb_class']}, DFT {r['dft_class']})"
                                 for r in members if not r["agree"]]})  # fmt: skip
    return out


def reliability_png(
    path: Path, bins: list[dict[str, Any]], summary: dict[str, Any], by_gap: list[dict[str, Any]] | None = None
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, gx) = plt.subplots(1, 2, figsize=(10.4, 4.6), gridspec_kw={"width_ratios": [1, 1.1]})
    ax.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1, label="perfect calibration")
    if bins:
        x = [b["mean_confidence"] for b in bins]
        y = [b["share"] for b in bins]
        ax.plot(x, y, "o-", color="C0", label="share DFT confirms")
        for b in bins:
            ax.annotate(
                f"{b['agree']}/{b['n']}",
                (b["mean_confidence"], b["share"]),
                textcoords="offset points",
                xytext=(0, 7),
                ha="center",
                fontsize=8,
            )
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.08)
    ax.set_xlabel("TB labeller confidence (bins of 0.1, plotted at the bin's mean)")
    ax.set_ylabel("share of TB classes equal to DFT's")
    state = "" if summary["complete"] else f", partial: {summary['n_dft_done']} of {summary['n_target']}"
    ax.set_title(f"TB labeller vs DFT PBE+SOC, {summary['n_both']} crystals{state}", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    groups = by_gap or []
    gx.bar(range(len(groups)), [g["share"] for g in groups], color="C1")
    for k, g in enumerate(groups):
        gx.annotate(f"{g['agree']}/{g['n']}", (k, g["share"]), textcoords="offset points", xytext=(0, 3),
                    ha="center", fontsize=8)  # fmt: skip
    gx.set_xticks(range(len(groups)), [g["group"].replace("TB ", "").replace(" eV", "\neV") for g in groups],
                  fontsize=8)  # fmt: skip
    gx.set_ylim(0, 1.12)
    gx.set_ylabel("share of TB classes equal to DFT's")
    gx.set_title("by what the TB labeller saw: a metal, or its smallest direct gap", fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def write_reports(out: Path, rows: list[dict[str, Any]], n: int, threshold: float, meta: dict[str, Any]) -> dict:
    summary = summarise(rows, n, threshold)
    bins, by_gap = reliability_bins(rows), gap_bins(rows)
    data = {"summary": summary, "reliability": bins, "agreement_by_tb_gap": by_gap, "settings": meta, "rows": rows}
    _write_text(out / "calibration.json", json.dumps(data, indent=1) + "\n")
    _write_text(out / "confusion.md", confusion_markdown(rows, summary) + gap_markdown(by_gap))
    reliability_png(out / "reliability.png", bins, summary, by_gap)
    return summary


def summary_text(summary: dict[str, Any]) -> str:
    def pct(k: int, m: int) -> str:
        return "n/a" if m == 0 else f"{k}/{m} = {100.0 * k / m:.0f}%"

    lines = [
        f"DFT done on {summary['n_dft_done']} of {summary['n_target']} crystals"
        + ("" if summary["complete"] else " (partial: rerun the same command to go on)")
        + f"; labelled by both: {summary['n_both']} (DFT converged on {summary['n_dft_converged']}, "
        f"TB labelled {summary['n_tb_labelled']} of {summary['n_crystals']})",
        f"TB class = DFT class: {pct(summary['agree'], summary['n_both'])} "
        f"(both say z2_ti: {summary['both_z2_ti']}, with the same Z2 indices: {summary['both_z2_ti_same_indices']})",
        f"where DFT computed bands (not an odd electron count, {summary['n_both_by_count']} left out): "
        f"{pct(summary['agree_band_structure'], summary['n_both_band_structure'])}",
        f"among confident TB labels (confidence >= {summary['threshold']}): "
        f"{pct(summary['agree_confident'], summary['n_confident'])}; below: "
        f"{pct(summary['agree'] - summary['agree_confident'], summary['n_not_confident'])}",
    ]
    if summary["dft_refused"]:
        examples = summary["dft_refused_example"]
        lines.append("DFT gave no class:")
        lines += [f"  {v} x {k} (e.g. {examples[k]!r})" for k, v in summary["dft_refused"].items()]
    else:
        lines.append("DFT gave no class: none")
    if summary["tb_failed"]:
        lines.append("TB labeller failed: " + "; ".join(f"{k}: {v}" for k, v in summary["tb_failed"].items()))
    if summary["dft_seconds_median"] is not None:
        lines.append(
            f"DFT seconds per crystal: median {summary['dft_seconds_median']} (converged: "
            f"{summary['dft_seconds_median_converged']}), max {summary['dft_seconds_max']}, "
            f"total {summary['dft_seconds_total']}"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------
# command line


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--output-dir", type=Path, default=Path("outputs/labeller_calibration_dft"))
    p.add_argument("--n", type=int, default=200, help="number of crystals (default 200)")
    p.add_argument(
        "--input",
        type=Path,
        default=None,
        help="a td-data crystal store with TB classes (e.g. the topological-families build's families.h5) to draw "
        "the crystals from, class by class, instead of the synthetic generator",
    )
    p.add_argument("--max-atoms", type=int, default=4, help="largest cell, in sites (default 4)")
    p.add_argument("--seed", type=int, default=None, help="generator seed (default: parameters_ingest.yml's)")
    p.add_argument(
        "--fraction-2d", type=float, default=None, help="share of 2D sheets (default: parameters_ingest.yml's)"
    )
    p.add_argument("--kpt-spacing", type=float, default=0.5, help="DFT k-point spacing, 1/A with 2 pi (default 0.5)")
    p.add_argument("--no-confirm", action="store_true", help="DFT on one k-mesh (no denser confirmation mesh)")
    p.add_argument(
        "--screen-kpt-spacing",
        type=float,
        default=None,
        help="k-point spacing of the screening ground state that decides clear metals (DFTSettings."
        "screen_kpt_spacing; default twice --kpt-spacing, 0: no screening)",
    )
    p.add_argument(
        "--workers", type=int, default=1, help="crystals in DFT at once, one process each (default 1; needs --timeout)"
    )
    p.add_argument("--settings", default=None, help="further DFTSettings as a JSON object or a JSON file")
    p.add_argument(
        "--timeout",
        type=float,
        default=1200.0,
        help="seconds of DFT per crystal; over it the crystal counts as refused (default 1200; 0: none)",
    )
    p.add_argument("--tb-timeout", type=float, default=600.0, help="seconds of TB labelling per crystal (default 600)")
    p.add_argument("--retry-failed", action="store_true", help="redo DFT results that did not converge")
    p.add_argument("--threads", type=int, default=None, help="BLAS/OpenMP threads (default: the environment's)")
    p.add_argument("--nice", type=int, default=0, help="add this to the process's niceness (default 0)")
    p.add_argument("--threshold", type=float, default=0.8, help="confidence of a confident TB label (default 0.8)")
    p.add_argument("--max-minutes", type=float, default=None, help="start no new crystal after this many minutes")
    p.add_argument("--report-only", action="store_true", help="compute nothing; report the results there")
    return p


def _check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.n < 1:
        p.error(f"--n must be at least 1, got {args.n}")
    if args.max_atoms < 1:
        p.error(f"--max-atoms must be at least 1, got {args.max_atoms}")
    if not (args.kpt_spacing > 0 and math.isfinite(args.kpt_spacing)):
        p.error(f"--kpt-spacing must be a positive number, got {args.kpt_spacing}")
    if not (args.timeout >= 0 and math.isfinite(args.timeout)):
        p.error(f"--timeout must be a number of seconds >= 0, got {args.timeout}")
    if not (args.tb_timeout > 0 and math.isfinite(args.tb_timeout)):
        p.error(f"--tb-timeout must be a positive number of seconds, got {args.tb_timeout}")
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads must be at least 1, got {args.threads}")
    screen = args.screen_kpt_spacing
    if screen is not None and not (screen >= 0 and math.isfinite(screen)):
        p.error(f"--screen-kpt-spacing must be a number >= 0 (0: no screening), got {args.screen_kpt_spacing}")
    if args.workers < 1:
        p.error(f"--workers must be at least 1, got {args.workers}")
    if args.workers > 1 and not args.timeout:
        p.error(f"--workers {args.workers} runs each crystal in a child process, which needs a --timeout > 0")
    if not 0 <= args.threshold <= 1:
        p.error(f"--threshold must be between 0 and 1, got {args.threshold}")
    if args.fraction_2d is not None and not 0 <= args.fraction_2d <= 1:
        p.error(f"--fraction-2d must be between 0 and 1, got {args.fraction_2d}")
    if args.input is not None and not args.input.is_file():
        p.error(f"--input must be a td-data crystal store file, got {str(args.input)!r} (no such file)")
    if args.max_minutes is not None and not args.max_minutes > 0:
        p.error(f"--max-minutes must be positive, got {args.max_minutes}")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    started = time.monotonic()
    if args.threads:  # before numpy and GPAW load their thread pools; the DFT child processes inherit them
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    if args.nice:
        os.nice(args.nice)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from tqdm.auto import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from pipelines.config import LabelConfig
    from td_physics import __version__ as td_physics_version
    from td_physics.dft import DFTSettings, dft_available, read_crystals_file, write_crystals_file
    from td_physics.dft.cli import result_file_name, run_crystals

    raw: dict[str, Any] = {}
    if args.settings:
        text = Path(args.settings).read_text() if Path(args.settings).is_file() else args.settings
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as err:
            parser.error(f"--settings must be a JSON object or a JSON file, got {args.settings!r} ({err})")
        if not isinstance(raw, dict):
            parser.error(f"--settings must be a JSON object, got {type(raw).__name__}")
    raw.setdefault("kpt_spacing", args.kpt_spacing)
    screen = 2 * raw["kpt_spacing"] if args.screen_kpt_spacing is None else args.screen_kpt_spacing
    raw.setdefault("screen_kpt_spacing", screen or None)
    if args.no_confirm:
        raw["confirm"] = False
    try:
        settings = DFTSettings.from_dict(raw)
    except (TypeError, ValueError) as err:
        parser.error(str(err))
    if not args.report_only:
        ok, why = dft_available()
        if not ok:
            print(f"error: DFT is not available (pip install 'td-physics[dft]'): {why}", file=sys.stderr)
            return 3

    ingest = _yaml_block(INGEST_PARAMETERS, "data_config")
    seed = int(ingest.get("seed", 0)) if args.seed is None else args.seed
    fraction_2d = float(ingest.get("fraction_2d", 0.1)) if args.fraction_2d is None else args.fraction_2d
    label_options = _yaml_block(LABEL_PARAMETERS, "label_options")
    label_cfg = LabelConfig.from_dict(label_options)
    classify_options = label_cfg.classify_options()
    fingerprint = {
        **{k: v for k, v in label_options.items() if k not in ("workers", "max_records", "max_atoms")},
        "td_physics": td_physics_version,
    }

    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    if args.input is not None:
        print(f"selecting {args.n} crystals of {args.input} (seed {seed}, at most {args.max_atoms} sites) ...")
        records, selection = select_from_store(args.input, args.n, args.max_atoms, seed)
    else:
        print(f"selecting {args.n} synthetic crystals (seed {seed}, at most {args.max_atoms} sites) ...", flush=True)
        records, selection = select_crystals(args.n, args.max_atoms, seed, fraction_2d)
    crystals_path = out / "crystals.json"
    crystals = [_dft_crystal(r) for r in records]
    previous = None
    if crystals_path.exists():
        try:
            previous = read_crystals_file(crystals_path)
        except ValueError:
            previous = None
    if previous != crystals:
        write_crystals_file(crystals_path, crystals)
    crystals = read_crystals_file(crystals_path)
    meta = {
        "command": "python scripts/labeller_calibration_dft.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "n": args.n,
        "max_atoms": args.max_atoms,
        "selection": selection,
        "label_options": label_options,
        "dft_settings": settings.to_dict(),
        "dft_timeout_s": args.timeout or None,
        "threshold": args.threshold,
        "td_physics": td_physics_version,
    }

    settings_json = json.loads(json.dumps(settings.to_dict()))
    tb_dir, dft_dir = out / "tb", out / "dft"

    def load_row(j: int) -> dict[str, Any]:
        """Crystal ``j``'s row from the result files there (a result for another crystal or settings is no
        result)."""
        record = records[j]
        tb = _read_json(tb_dir / f"tb-{j:06d}.json")
        if not (isinstance(tb, dict) and tb.get("id") == record.id and tb.get("options") == fingerprint):
            tb = None
        dft = _read_json(dft_dir / result_file_name(j))
        if not (isinstance(dft, dict) and dft.get("id") == record.id and _same_settings(dft, settings_json)):
            dft = None  # not computed yet, or with other settings or for another crystal
        return make_row(j, record, tb, dft)

    stopped = None
    counts: Counter[str] = Counter()
    inflight: dict[Future, int] = {}

    def settle(done: set[Future], bar: Any) -> None:
        for future in sorted(done, key=inflight.__getitem__):
            i = inflight.pop(future)
            run = future.result()
            counts["dft_computed"] += len(run.computed)
            counts["dft_reused"] += len(run.skipped)
            row = load_row(i)
            if row["dft_done"]:
                verdict = row["dft_class"] if row["dft_converged"] else f"no class ({row['dft_reason']})"
                bar.write(
                    f"{i:4d} {row['id']} {row['formula']:<10} TB {row['tb_class']} {_z2(row['tb_z2'])} "
                    f"({row['tb_confidence']}) | DFT {verdict} {_z2(row['dft_z2'])} {row['dft_seconds']} s"
                    + (" (reused)" if run.skipped else "")
                )
            bar.update(1)
        write_reports(out, [load_row(j) for j in range(len(records))], args.n, args.threshold, meta)

    with logging_redirect_tqdm(), ThreadPoolExecutor(max_workers=args.workers, thread_name_prefix="dft") as pool:
        bar = tqdm(total=len(records), desc="TB + DFT", unit="crystal", dynamic_ncols=True)
        for i, record in enumerate(records):
            if args.report_only or stopped:
                break
            # TB in this process while earlier crystals are in DFT (each DFT crystal in its own child process
            # when a --timeout is set; a thread here only waits for it)
            tb = tb_label(i, record, classify_options, fingerprint, tb_dir, args.tb_timeout)
            counts["tb_reused" if tb.get("reused") else "tb_computed"] += 1
            future = pool.submit(
                run_crystals,
                crystals,
                dft_dir,
                indices=[i],
                settings=settings,
                spin_orbit=True,
                timeout=args.timeout or None,
                retry_failed=args.retry_failed,
            )
            inflight[future] = i
            if len(inflight) >= args.workers:
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                settle(done, bar)
            if args.max_minutes is not None and time.monotonic() - started > 60 * args.max_minutes:
                stopped = f"--max-minutes {args.max_minutes:g} reached after starting crystal {i}"
                bar.write(f"stopping: {stopped}; rerun the same command to go on")
        if inflight:
            done, _ = wait(inflight)
            settle(done, bar)
        bar.close()
    rows = [load_row(j) for j in range(len(records))]
    summary = write_reports(out, rows, args.n, args.threshold, meta)
    print(summary_text(summary))
    if not args.report_only:
        print(
            f"this run: DFT computed {counts['dft_computed']}, reused {counts['dft_reused']}; "
            f"TB computed {counts['tb_computed']}, reused {counts['tb_reused']}"
            + (f"; stopped early ({stopped})" if stopped else "")
        )
    print(f"wrote {out}/calibration.json, confusion.md, reliability.png (results in {tb_dir} and {dft_dir})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

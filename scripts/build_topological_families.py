#!/usr/bin/env python
"""Build the topological-families data set: expand, relax, filter by the hull, label, write.

    python scripts/build_topological_families.py --n 300 --output-dir outputs/topological_families

Stages (each writes its output under ``<output-dir>/stages/`` and is skipped when that output exists, so an
interrupted build resumes; the labelling also resumes record by record). ``stages/options.json`` records the
options each stage depends on (``STAGE_OPTIONS``); resuming a stage with other options is refused, naming them:

1. **expand**: ``td_data.families.expand_families(n_total=N)``: the families' parents and their chemically
   guided substitutions at the DLS volume (``stages/expanded.h5``); ``--weights tetradymite=3,septuple=3`` gives
   those families three turns for every one of the others until they run out.
2. **relax** (``--no-relax`` skips it): CHGNet relaxation of cell and positions (``td_data.relax.relax_records``)
   and the energy above the hull of the phases at hand (``td_data.relax.energy_above_hull``) with every
   converged crystal of the set as a reference phase next to the elements (``stages/relaxed.h5``,
   ``stages/relax.json``). A crystal that does not converge is quarantined with the reason. A bulk crystal
   above ``--max-e-above-hull`` is filtered out, a 2D sheet above ``--max-e-above-hull-2d``: a free-standing
   sheet lies above the bulk hull by construction (germanene above diamond Ge), so it has its own threshold.
   The thresholds are applied after the stage, so a resumed build can change them without relaxing again.
   So is the **prototype check** (``--no-prototype-check`` turns it off): a relaxed crystal that pymatgen's
   StructureMatcher (default tolerances, volume scaled) no longer matches to its unrelaxed self has left its
   family's structure (CHGNet turns the low-buckled stanene sheet into a high-buckled one, a = 3.5 instead of
   4.7 A, and removes A7 Bi's Peierls pairing); a substituted crystal is dropped (``left_prototype``), a
   family's literature parent is kept as published, unrelaxed (``kept_unrelaxed``): its structure is
   measured, the potential's is not.
3. **label**: relaxed crystals are first idealised to their spglib primitive cell (``td_data.relax.idealised``,
   ``--symprec``: a relaxation
   leaves float32 noise on symmetric sites, which makes the labeller hundreds of times slower), then the TB
   ensemble (``td_data.labels.label_records`` with the label pipeline's defaults,
   ``pipelines.config.LabelConfig``), ``--label-timeout`` seconds per crystal at most
   (``stages/labelled.h5``); a crystal the labeller fails on is quarantined with the reason.

Outputs: ``families.h5`` (the labelled crystals, a td-data crystal store written atomically),
``summary.json`` (counts per family and stage, classes per family, the ``z2_ti`` share overall and among bulk
crystals, space groups, the seconds of each stage, every quarantined crystal with its stage and reason, and
``parents``: each family's literature parent with its class in the sources beside its TB label) and
``families.png`` (class share per family; space-group histogram).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from td_physics.classes import TOPO_CLASSES as CLASSES


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300, help="crystals to expand, all families together")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--families", default=None, help="comma-separated family names (default: all)")
    parser.add_argument(
        "--weights",
        type=_weights,
        default=None,
        help="family=weight,...: relative share of --n per family (default 1 each; td_data.families.expand_families)",
    )
    parser.add_argument("--substitution-temperature", type=float, default=1.0)
    parser.add_argument("--no-relax", action="store_true", help="label the crystals at their DLS volume")
    parser.add_argument(
        "--max-e-above-hull", type=float, default=0.2, help="eV/atom: bulk crystals above it are filtered out"
    )
    parser.add_argument(
        "--max-e-above-hull-2d",
        type=float,
        default=0.6,
        help="eV/atom: the same for 2D sheets, which sit above the bulk hull by construction",
    )
    parser.add_argument(
        "--no-prototype-check",
        dest="prototype_check",
        action="store_false",
        help="keep relaxed crystals that left their family's structure (StructureMatcher)",
    )
    parser.add_argument("--fmax", type=float, default=0.1, help="eV/Angstrom: relaxation force threshold")
    parser.add_argument("--max-steps", type=int, default=300, help="relaxation steps per crystal")
    parser.add_argument(
        "--symprec",
        type=float,
        default=1e-3,
        help="Angstrom: relaxed crystals are idealised by spglib at this tolerance before labelling (0: not)",
    )
    parser.add_argument("--n-jobs", type=int, default=2, help="worker processes of the relaxation and the labeller")
    parser.add_argument("--label-timeout", type=float, default=120.0, help="seconds per crystal for the labeller")
    parser.add_argument("--output-dir", type=Path, default=Path("outputs/topological_families"))
    return parser.parse_args(argv)


def _weights(text: str) -> dict[str, float]:
    """``family=weight,...`` as a dict (expand_families checks the names and the values)."""
    out = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = (part.strip() for part in item.partition("="))
        try:
            out[name] = float(value)  # an item without "=" has an empty value, which float refuses
        except ValueError:
            name = ""
        if not name:
            raise argparse.ArgumentTypeError(f"each item must be family=weight, got {item!r}")
    return out


#: The options each stage's output depends on (with those of the stages before it): a resumed build whose options
#: differ from those its stages were built with is refused (stages/options.json), not silently given the old stage.
STAGE_OPTIONS = {
    "expand": ("n", "seed", "families", "weights", "substitution_temperature"),
    "relax": ("no_relax", "fmax", "max_steps"),
    "label": ("symprec", "label_timeout"),
}
STAGE_FILES = {"expand": "expanded.h5", "relax": "relaxed.h5", "label": "labelled.h5"}


def check_resume(args: argparse.Namespace, stages: Path) -> None:
    """Refuse to resume stages built with other options (naming the option and both values); record this run's."""
    current, upstream = {}, {}
    for stage, keys in STAGE_OPTIONS.items():  # a stage depends on its own options and on every earlier stage's
        upstream.update({k: getattr(args, k) for k in keys})
        current[stage] = dict(upstream)
    path = stages / "options.json"
    if path.exists():
        saved = json.loads(path.read_text())
        for stage, options in saved.items():
            if not (stages / STAGE_FILES[stage]).exists():
                continue
            for key, value in options.items():
                asked = current[stage].get(key)
                if asked != value:
                    raise SystemExit(
                        f"{stages}: the {stage} stage was built with --{key.replace('_', '-')} {value!r}, this run "
                        f"asks {asked!r}; give another --output-dir, or remove {stages / STAGE_FILES[stage]} and the "
                        "later stages to rebuild"
                    )
    _write_json(path, current)


def _bar(desc: str, total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="crystal")


def _callback(bar: Any):
    def update(done: int, total: int) -> None:
        bar.update(done - bar.n)

    return update


def _write_json(path: Path, data: Any) -> None:
    from td_physics.files import write_text_atomic

    write_text_atomic(path, json.dumps(data, indent=1, sort_keys=False) + "\n")


def _read_store(path: Path) -> list:
    from td_data.store import CrystalStore

    with CrystalStore.open(path) as store:
        return list(store.read_all())


def expand_stage(args: argparse.Namespace, stages: Path) -> tuple[list, float | None]:
    """The expanded crystals (from ``stages/expanded.h5`` when it exists) and the seconds it took."""
    from td_data.families import expand_families
    from td_data.store import write_store

    path = stages / "expanded.h5"
    if path.exists():
        return _read_store(path), None
    families = [f.strip() for f in args.families.split(",") if f.strip()] if args.families else None
    start = time.perf_counter()
    bar = _bar("expand", args.n)
    records = expand_families(
        n_total=args.n,
        seed=args.seed,
        families=families,
        weights=args.weights,
        substitution_temperature=args.substitution_temperature,
        progress=_callback(bar),
    )
    bar.close()
    write_store(path, records, overwrite=True)
    return records, time.perf_counter() - start


def relax_stage(args: argparse.Namespace, records: list, stages: Path) -> tuple[list, dict[str, Any]]:
    """The relaxed crystals that converged and have an energy above the hull (properties ``energy_per_atom``,
    ``e_above_hull``, ``rmsd``) and the stage's table (one row per crystal: status ``relaxed`` or
    ``quarantined`` with the reason). The hull threshold is applied afterwards (:func:`hull_filter`), so a
    resumed build may change it without relaxing again."""
    from td_data.relax import Relaxer, energy_above_hull, relax_records
    from td_data.store import write_store

    path, table_path = stages / "relaxed.h5", stages / "relax.json"
    if path.exists() and table_path.exists():
        return _read_store(path), json.loads(table_path.read_text())
    relaxer = Relaxer(threads=1 if args.n_jobs > 1 else None)
    start = time.perf_counter()
    results = relax_records(
        records, fmax=args.fmax, max_steps=args.max_steps, progress=True, relaxer=relaxer, workers=args.n_jobs
    )
    relax_seconds = time.perf_counter() - start
    converged = [res.record for res in results if res.converged]
    start = time.perf_counter()
    hulls = energy_above_hull(
        results, references=converged, relaxer=relaxer, progress=True, fmax=args.fmax, max_steps=args.max_steps
    )
    hull_seconds = time.perf_counter() - start
    rows, kept = [], []
    for res, hull in zip(results, hulls):
        row = {
            "id": res.initial.id,
            "family": res.initial.labels.get("family"),
            "formula": res.initial.formula,
            "converged": res.converged,
            "energy_per_atom": res.energy_per_atom,
            "rmsd": res.rmsd,
            "n_steps": res.n_steps,
            "e_above_hull": hull.e_above_hull,
            "reference_phases": list(hull.reference_phases),
        }
        if not res.converged:
            row.update(status="quarantined", reason=f"relaxation: {res.reason}")
        elif hull.e_above_hull is None:
            row.update(status="quarantined", reason=f"hull: {hull.reason}")
        else:
            row.update(status="relaxed", reason="", dimensionality=int(res.initial.labels.get("dimensionality", 3)))
            props = {"energy_per_atom": res.energy_per_atom, "e_above_hull": hull.e_above_hull}
            if res.rmsd is not None:
                props["rmsd"] = res.rmsd
            kept.append(res.record.with_properties(**props))
        rows.append(row)
    table = {
        "model": relaxer.name,
        "relax_seconds": relax_seconds,
        "hull_seconds": hull_seconds,
        "rows": rows,
    }
    write_store(path, kept, overwrite=True)
    _write_json(table_path, table)
    return kept, table


def hull_filter(
    args: argparse.Namespace, relaxed: list, table: dict[str, Any], expanded: list
) -> tuple[list, list[dict[str, Any]]]:
    """The crystals to label and the table's rows with a status in place of ``relaxed``: ``left_prototype`` (the
    prototype check, module docstring), ``kept_unrelaxed`` (a literature parent that left it, kept as published),
    ``above_hull`` (beyond the threshold of its dimensionality) or ``kept``."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    limit = {3: args.max_e_above_hull, 2: args.max_e_above_hull_2d}
    matcher = StructureMatcher() if args.prototype_check else None
    after = {r.id: r for r in relaxed}
    before = {r.id: r for r in expanded}
    rows, out = [], []
    for row in table["rows"]:
        row = dict(row)
        if row["status"] == "relaxed":
            start, end = before[row["id"]], after[row["id"]]
            if matcher is not None and not matcher.fit(start.to_structure(), end.to_structure()):
                left = "the relaxation left the family's structure (StructureMatcher finds no match with the input)"
                if start.labels.get("is_parent"):
                    row.update(status="kept_unrelaxed", reason=f"{left}; the literature parent is kept as published")
                    out.append(start)
                else:
                    row.update(status="left_prototype", reason=left)
                rows.append(row)
                continue
            above = row["e_above_hull"] > limit[row["dimensionality"]]
            row["status"] = "above_hull" if above else "kept"
            row["reason"] = f"{row['e_above_hull']:.3f} eV/atom above the hull" if above else ""
            if not above:
                out.append(end)
        rows.append(row)
    return out, rows


def label_stage(args: argparse.Namespace, records: list, stages: Path) -> tuple[list, list[dict[str, str]], float]:
    """The labelled crystals, the quarantined ones ``{"id", "reason"}`` and the seconds spent labelling."""
    from pipelines.config import LabelConfig
    from td_data.labels import label_records
    from td_data.relax import idealised

    timing = stages / "label_seconds.json"
    seconds = json.loads(timing.read_text())["seconds"] if timing.exists() else 0.0
    bar = _bar("label", len(records))
    start = time.perf_counter()
    if not args.no_relax and args.symprec > 0:
        records = [idealised(r, args.symprec) for r in records]
    result = label_records(
        records,
        workers=args.n_jobs,
        store_path=stages / "labelled.h5",
        progress=_callback(bar),
        timeout=args.label_timeout,
        **LabelConfig().classify_options(),
    )
    bar.close()
    if result.computed:  # seconds add up over resumed runs; a run that labels nothing adds none
        seconds += time.perf_counter() - start
        _write_json(timing, {"seconds": seconds})
    quarantined = [{"id": q.record_id, "reason": f"labeller: {q.reason}"} for q in result.quarantined]
    return list(result.records), quarantined, seconds


def summarise(
    args: argparse.Namespace,
    expanded: list,
    relax_table: dict[str, Any] | None,
    labelled: list,
    quarantined: list[dict[str, Any]],
    seconds: dict[str, float | None],
) -> dict[str, Any]:
    """The ``summary.json`` content (see the module docstring)."""
    from td_data.synthetic import diversity_report

    family_of = {r.id: r.labels["family"] for r in expanded}
    families = list(dict.fromkeys(family_of.values()))
    per_family: dict[str, dict[str, Any]] = {f: {"expanded": 0} for f in families}
    for r in expanded:
        per_family[r.labels["family"]]["expanded"] += 1
    if relax_table is not None:
        for f in families:
            rows = [row for row in relax_table["rows"] if row["family"] == f]
            per_family[f]["relaxed"] = sum(row["converged"] for row in rows)
            per_family[f]["kept_by_hull"] = sum(row["status"] == "kept" for row in rows)
            per_family[f]["above_hull"] = sum(row["status"] == "above_hull" for row in rows)
            per_family[f]["left_prototype"] = sum(row["status"] == "left_prototype" for row in rows)
            per_family[f]["kept_unrelaxed"] = sum(row["status"] == "kept_unrelaxed" for row in rows)
    for f in families:
        mine = [r for r in labelled if r.labels["family"] == f]
        per_family[f]["labelled"] = len(mine)
        per_family[f]["classes"] = {c: sum(r.labels.get("topo_class") == c for r in mine) for c in CLASSES}
        per_family[f]["z2_ti_share"] = per_family[f]["classes"]["z2_ti"] / len(mine) if mine else None
    parents = parents_check(expanded, labelled, quarantined, relax_table)
    bulk = [r for r in labelled if int(r.labels.get("dimensionality", 3)) == 3]
    z2 = [r for r in labelled if r.labels.get("topo_class") == "z2_ti"]
    z2_bulk = [r for r in bulk if r.labels.get("topo_class") == "z2_ti"]
    groups = diversity_report(labelled)["space_groups"]  # spglib, symprec 0.1 Angstrom
    n_relaxed = len(expanded) if relax_table is None else sum(row["converged"] for row in relax_table["rows"])
    per_crystal = {
        "relax": seconds["relax"] / len(expanded) if seconds.get("relax") and expanded else None,
        "label": seconds["label"] / len(labelled) if seconds.get("label") and labelled else None,
    }
    return {
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "stages": {
            "expanded": len(expanded),
            "relaxed": None if relax_table is None else n_relaxed,
            "kept_by_hull": None if relax_table is None else sum(r["status"] == "kept" for r in relax_table["rows"]),
            "left_prototype": None if relax_table is None else _count(relax_table, "left_prototype"),
            "kept_unrelaxed": None if relax_table is None else _count(relax_table, "kept_unrelaxed"),
            "labelled": len(labelled),
        },
        "per_family": per_family,
        "parents": parents,
        "parents_agree": [sum(p["agree"] is True for p in parents), sum(p["agree"] is not None for p in parents)],
        "classes": {c: sum(r.labels.get("topo_class") == c for r in labelled) for c in CLASSES},
        "z2_ti_share": len(z2) / len(labelled) if labelled else None,
        "n_bulk": len(bulk),
        "z2_ti_share_bulk": len(z2_bulk) / len(bulk) if bulk else None,
        "z2_ti_bulk_fraction": len(z2_bulk) / len(z2) if z2 else None,
        "n_space_groups": len([g for g in groups if g]),  # 0: spglib found none
        "space_groups": {str(k): v for k, v in groups.items()},
        "seconds": seconds,
        "seconds_per_crystal": per_crystal,
        "relax_model": None if relax_table is None else relax_table["model"],
        "n_quarantined": len(quarantined),
        "quarantined": [{**q, "family": family_of.get(q["id"])} for q in quarantined],
        "left_prototype": []
        if relax_table is None
        else [
            {
                "id": row["id"],
                "family": row["family"],
                "formula": row["formula"],
                "status": row["status"],
                "rmsd": row["rmsd"],
            }
            for row in relax_table["rows"]
            if row["status"] in ("left_prototype", "kept_unrelaxed")
        ],  # fmt: skip
        "above_hull": []
        if relax_table is None
        else [
            {"id": row["id"], "family": row["family"], "e_above_hull": row["e_above_hull"]}
            for row in relax_table["rows"]
            if row["status"] == "above_hull"
        ],
    }


def _count(table: dict[str, Any], status: str) -> int:
    return sum(row["status"] == status for row in table["rows"])


def parents_check(
    expanded: list, labelled: list, quarantined: list[dict[str, Any]], relax_table: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Each family's parent (the literature compound itself): its class in the cited sources (``parent_label``,
    None where they do not settle it) beside the TB ensemble's label of it after the build's relaxation (or as
    published, ``relaxed: false``, where the relaxation left its structure), or why it has none (above the
    hull, quarantined). A check of the labeller on crystals whose answer is known."""
    labels = {r.id: r.labels.get("topo_class") for r in labelled}
    status = {row["id"]: row for row in relax_table["rows"]} if relax_table is not None else {}
    filtered = ("above_hull", "left_prototype")
    why = {i: f"relax: {row['reason']}" for i, row in status.items() if row["status"] in filtered}
    why.update({q["id"]: f"{q['stage']}: {q['reason']}" for q in quarantined})
    rows = []
    for r in expanded:
        if not r.labels.get("is_parent"):
            continue
        tb = labels.get(r.id)
        literature = r.labels.get("parent_label")
        rows.append(
            {
                "family": r.labels["family"],
                "parent": r.formula,
                "literature": literature,
                "tb": tb,
                "agree": None if literature is None or tb is None else tb == literature,
                "relaxed": r.id in status and status[r.id]["status"] == "kept",
                "why_no_label": None if tb is not None else why.get(r.id, "not labelled"),
            }
        )
    return rows


def plot(summary: dict[str, Any], path: Path) -> None:
    """Class share per family (stacked bars) and the space-group histogram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fams = [f for f, v in summary["per_family"].items() if v["labelled"]]
    width = max(13.0, 6.0 + 0.35 * len(fams))  # room for every family's name
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(width, 5.0), gridspec_kw={"width_ratios": [3, 2]})
    bottom = np.zeros(len(fams))
    for cls in CLASSES:
        share = np.array(
            [summary["per_family"][f]["classes"][cls] / summary["per_family"][f]["labelled"] for f in fams]
        )
        ax1.bar(fams, share, bottom=bottom, label=cls)
        bottom += share
    ax1.set_ylabel("share of the labelled crystals")
    ax1.set_title("TB-ensemble class per family")
    ax1.set_xticks(range(len(fams)), [f"{f} ({summary['per_family'][f]['labelled']})" for f in fams])
    ax1.tick_params(axis="x", rotation=90, labelsize=8)
    ax1.set_xlim(-0.6, len(fams) - 0.4)
    ax1.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    groups = summary["space_groups"]
    ax2.bar(range(len(groups)), list(groups.values()))
    ax2.set_xticks(range(len(groups)), list(groups), rotation=90, fontsize=7)
    ax2.set_xlabel("space group (spglib, symprec 0.1 A)")
    ax2.set_ylabel("crystals")
    ax2.set_title(f"{summary['n_space_groups']} space groups")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.n < 1 or args.n_jobs < 1 or args.label_timeout <= 0:
        raise SystemExit(
            f"--n, --n-jobs and --label-timeout must be positive, got {args.n}, {args.n_jobs}, {args.label_timeout}"
        )
    from td_data.store import write_store

    out: Path = args.output_dir
    stages = out / "stages"
    stages.mkdir(parents=True, exist_ok=True)
    check_resume(args, stages)
    seconds: dict[str, float | None] = {}
    expanded, seconds["expand"] = expand_stage(args, stages)
    quarantined: list[dict[str, Any]] = []
    relax_table = None
    to_label = expanded
    if not args.no_relax:
        relaxed, relax_table = relax_stage(args, expanded, stages)
        to_label, rows = hull_filter(args, relaxed, relax_table, expanded)
        relax_table = {**relax_table, "rows": rows}
        seconds["relax"] = relax_table["relax_seconds"]
        seconds["hull"] = relax_table["hull_seconds"]
        quarantined += [
            {"id": row["id"], "stage": "relax", "reason": row["reason"]}
            for row in relax_table["rows"]
            if row["status"] == "quarantined"
        ]
    labelled, failed, seconds["label"] = label_stage(args, to_label, stages)
    quarantined += [{**q, "stage": "label"} for q in failed]
    write_store(out / "families.h5", labelled, overwrite=True)
    summary = summarise(args, expanded, relax_table, labelled, quarantined, seconds)
    _write_json(out / "summary.json", summary)
    plot(summary, out / "families.png")
    print(
        f"{len(labelled)} labelled crystals of {len(expanded)} expanded; z2_ti share {summary['z2_ti_share']}, "
        f"bulk {summary['z2_ti_share_bulk']}; {summary['n_space_groups']} space groups; parents labelled as the "
        f"literature says: {summary['parents_agree'][0]} of {summary['parents_agree'][1]}; "
        f"{summary['n_quarantined']} quarantined; wrote {out / 'families.h5'}, summary.json, families.png"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

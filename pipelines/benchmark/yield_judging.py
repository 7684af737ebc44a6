"""How the yield benchmark judges a generated crystal beyond the TB labeller: relaxation first, DFT on the top.

* :func:`relax_for_judging`: CHGNet (``td_data.relax.relax_records``) on the crystals about to be labelled, so
  that a crystal is judged as it would sit, not as sampled. Each crystal ends ``relaxed`` (converged: it is
  labelled in its relaxed form), ``failed`` (a structure came back but did not converge within
  ``relax_max_steps``, or relaxed into an implausible one), ``exploded`` (the relaxation started and gave no
  structure: CHGNet broke down, or the cell collapsed or fell apart) or ``refused`` (no step was taken: the
  potential could not start on the input, e.g. an atom with no neighbour within CHGNet's 6 A graph cutoff, or
  the input broke the plausibility limits). Only relaxed crystals are labelled; the others stay in the
  denominators of the shares of generated crystals.
* :func:`dft_top_k`: GPAW (PBE + spin-orbit, ``td_physics.dft``) on the ``dft_top_k`` best labelled crystals of
  an arm, ranked by the TB class (``z2_ti`` first), the labeller's confidence, then the model's class-head
  probability; each crystal in a child process stopped at ``dft_timeout`` seconds; a crystal without a
  converged answer is quarantined with its reason.
* :func:`generation_quality`: structural and compositional validity and diversity (the share of distinct
  compositions; the mean pairwise distance of CrystalNN structure fingerprints) of one set of samples.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pipelines.benchmark.options import YieldOptions
from pipelines.dft import dft_crystal, dft_settings, run_dft
from td_data.evaluation import share

logger = logging.getLogger(__name__)

RELAX_OUTCOMES = ("relaxed", "failed", "exploded", "refused")
DFT_INSTALL_HINT = "pip install 'td-physics[dft]'"


# ---------------------------------------------------------------------------------------------- relaxation
def relax_outcome(result: Any) -> str:
    """``relaxed``, ``failed``, ``exploded`` or ``refused`` for one ``td_data.relax.RelaxResult`` (see the module
    docstring), from its fields: converged, an energy, the steps taken."""
    if result.converged:
        return "relaxed"
    if result.energy_per_atom is not None:
        return "failed"
    return "exploded" if result.n_steps > 0 else "refused"


def relax_for_judging(records: Sequence[Any], options: YieldOptions, relaxer: Any = None) -> dict[str, dict]:
    """``{id: {"outcome", "record", "energy_per_atom", "rmsd", "n_steps", "reason"}}`` for every record: the
    relaxed record where the outcome is ``relaxed``, else None. ``relaxer``: a loaded ``td_data.relax.Relaxer``
    to reuse (one is loaded here otherwise); with ``workers`` > 1, batches of 32 crystals relax in that many
    processes."""
    from td_data.relax import Relaxer, relax_records

    if not records:
        return {}
    relaxer = relaxer if relaxer is not None else Relaxer(threads=1)
    results = relax_records(list(records), fmax=options.relax_fmax, max_steps=options.relax_max_steps,
                            relaxer=relaxer, workers=options.workers, progress=False)  # fmt: skip
    out = {}
    for rec, res in zip(records, results, strict=True):
        outcome = relax_outcome(res)
        out[rec.id] = {
            "outcome": outcome,
            "record": res.record.replace(labels=dict(rec.labels)) if outcome == "relaxed" else None,
            "energy_per_atom": res.energy_per_atom,
            "rmsd": res.rmsd,
            "n_steps": res.n_steps,
            "reason": res.reason or "",
        }
    return out


def relax_counts(rows: Sequence[Mapping[str, Any]], enabled: bool) -> dict[str, Any]:
    """Per arm: how many crystals went to the relaxation and how each ended; the mean RMSD of the relaxed ones."""
    outcomes = [r.get("relax_outcome") for r in rows if r.get("relax_outcome")]
    rmsd = [r["relax_rmsd"] for r in rows if r.get("relax_outcome") == "relaxed" and r.get("relax_rmsd") is not None]
    return {
        "enabled": enabled,
        "n_attempted": len(outcomes),
        **{f"n_{k}": outcomes.count(k) for k in RELAX_OUTCOMES},
        "mean_rmsd": float(np.mean(rmsd)) if rmsd else None,
    }


# ---------------------------------------------------------------------------------------------- DFT
def _rank(row: Mapping[str, Any], target: str) -> tuple:
    predicted = row.get("predicted_class_probability") if row.get("predicted_class") == target else 0.0
    return (row.get("recomputed_class") != target, -(row.get("confidence") or 0.0), -(predicted or 0.0), row["id"])


def top_k(rows: Sequence[Mapping[str, Any]], k: int, target: str) -> list[Mapping[str, Any]]:
    """The ``k`` labelled rows most likely ``target``: TB class ``target`` first, then the labeller's confidence,
    then the class head's probability of ``target`` (highest first), then the id."""
    return sorted((r for r in rows if r.get("status") == "labelled"), key=lambda r: _rank(r, target))[:k]


def dft_top_k(
    rows_by_arm: Mapping[str, Sequence[Mapping[str, Any]]],
    judged: Mapping[str, Any],
    options: YieldOptions,
    target: str,
) -> dict[str, Any]:
    """DFT on the top ``dft_top_k`` labelled crystals of each arm (``judged``: id -> the record that was
    labelled, relaxed where relaxation is on). ``{"skipped": reason or None, "confirmed": {arm: count or None},
    "results": [...], "quarantined": [...], ...}``; ``confirmed`` counts the converged DFT answers ``target``."""
    arms = list(rows_by_arm)
    out: dict[str, Any] = {
        "top_k": options.dft_top_k,
        "timeout_per_crystal": options.dft_timeout,
        "spin_orbit": True,
        "ranking": f"TB class {target} first, then labeller confidence, then the class head's {target} probability",
        "skipped": None,
        "selected": {arm: [] for arm in arms},
        "confirmed": dict.fromkeys(arms),
        "n_converged": dict.fromkeys(arms),
        "confirmed_share_of_converged": dict.fromkeys(arms),
        "results": [],
        "quarantined": [],
    }
    if options.dft_top_k == 0:
        out["skipped"] = "yield_options.dft_top_k is 0"
        return out
    settings = dft_settings(options.dft_settings, "yield_options.dft_settings")
    out["settings"] = settings.to_dict()
    from td_physics.dft import dft_available

    available, why = dft_available()
    if not available:
        out["skipped"] = f"the DFT extra is not installed ({DFT_INSTALL_HINT}): {why}"
        logger.warning("yield: no DFT: %s", out["skipped"])
        return out
    chosen = [(arm, row) for arm in arms for row in top_k(rows_by_arm[arm], options.dft_top_k, target)]
    for arm, row in chosen:
        out["selected"][arm].append(row["id"])
    crystals = [dft_crystal(judged[row["id"]]) for _, row in chosen]
    logger.info("yield: DFT on %d crystals (%s)", len(crystals),
                ", ".join(f"{arm} {len(ids)}" for arm, ids in out["selected"].items()))  # fmt: skip
    answers = run_dft(crystals, settings, spin_orbit=True, timeout=options.dft_timeout, prefix="td-yield-dft-")
    for (arm, row), res in zip(chosen, answers, strict=True):
        dft = {k: v for k, v in res.items() if k not in ("id", "index", "formula", "settings", "details")}
        entry = {"arm": arm, "rank": out["selected"][arm].index(row["id"]) + 1, "id": row["id"],
                 "formula": row["formula"], "num_atoms": row["num_atoms"], "tb_class": row.get("recomputed_class"),
                 "tb_confidence": row.get("confidence"), "predicted_class": row.get("predicted_class"),
                 **dft}  # fmt: skip
        out["results"].append(entry)
        if not res.get("converged"):
            out["quarantined"].append({"arm": arm, "id": row["id"], "reason": res.get("reason") or "not converged"})
    for arm in arms:
        mine = [r for r in out["results"] if r["arm"] == arm and r.get("converged")]
        hits = sum(r.get("topo_class") == target for r in mine)
        out["confirmed"][arm], out["n_converged"][arm] = hits, len(mine)
        out["confirmed_share_of_converged"][arm] = share(hits, len(mine))
    return out


# ---------------------------------------------------------------------------------------------- quality
def generation_quality(records: Sequence[Any], n_generated: int) -> dict[str, Any]:
    """Validity and diversity of one set of samples (``records``: those that are valid records, as sampled).

    ``structural_validity`` and ``compositional_validity``: shares of the ``n_generated`` samples (Wilson
    intervals; CDVAE's rules, ``td_data.validity``); ``unique_compositions``: the share of distinct reduced
    formulas among the records; ``mean_fingerprint_distance``: the mean Euclidean distance between the CrystalNN
    structure fingerprints of every pair of records (None with fewer than two fingerprints)."""
    from scipy.spatial.distance import pdist

    from td_data.fingerprint import structure_fingerprint
    from td_data.validity import record_validity

    flags = [record_validity(r) for r in records]
    formulas = {r.formula for r in records}
    prints = []
    for rec in records:
        try:
            prints.append(structure_fingerprint(rec.lattice, rec.frac_coords, rec.atomic_numbers))
        except (ValueError, ArithmeticError) as err:  # a site CrystalNN cannot place: left out of the mean
            logger.debug("no fingerprint for %s: %s", rec.id, err)
    distance = float(pdist(np.asarray(prints)).mean()) if len(prints) >= 2 else None
    return {
        "structural_validity": share(sum(s for s, _ in flags), n_generated),
        "compositional_validity": share(sum(c for _, c in flags), n_generated),
        "unique_compositions": share(len(formulas), len(records)),
        "mean_fingerprint_distance": distance,
        "n_fingerprints": len(prints),
    }

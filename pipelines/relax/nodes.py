"""Relax: every candidate relaxed with CHGNet (td-data's ``relax_records``), its energy above the hull, and
``physics_config.stability_threshold`` applied.

The hull of a candidate is built from the same model's energies of the reference phases at hand: the
elements and the compounds of its chemical system among the training crystals (``energy_above_hull``). A
candidate passes on to DFT verification when its relaxation converged and, with a threshold set, its energy
above that hull is at most the threshold; the table says of every candidate whether it passed and why not.
A candidate left unrelaxed on purpose (``relax_options.enabled`` false, CHGNet not installed, over
``max_atoms`` or ``max_candidates``) has no energy above the hull: it passes only when no threshold is set.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

from pipelines._options import OptionsBlock
from pipelines.exceptions import ParameterError
from td_data import CrystalRecord

logger = logging.getLogger(__name__)

#: What the hull of a candidate means; the report and the summary quote it.
HULL_CAVEAT = (
    "energy above a hull of CHGNet energies of the reference phases at hand (elements and compounds of the "
    "candidate's chemical system among the training crystals), not the Materials Project hull: a missing "
    "reference phase makes a candidate look more stable than it is, and CHGNet's errors (~30 meV/atom) enter twice"
)
INSTALL_HINT = "pip install 'td-data[relax]'"


#: eV/A^2: BFGS's initial Hessian when relax_options.bfgs_alpha is null (ASE's is 70; README, benchmarks/README.md)
DEFAULT_BFGS_ALPHA = 35.0


@dataclass(frozen=True)
class RelaxOptions(OptionsBlock):
    """The ``relax_options`` block of ``parameters_relax.yml``."""

    block: ClassVar[str] = "relax_options"

    enabled: bool = True  # false: candidates pass through unrelaxed (no energy above the hull)
    fmax: float = 0.1  # eV/Angstrom: a relaxation converged when every force is below it
    max_steps: int = 200  # optimiser steps per crystal; more is 'not converged'
    relax_cell: bool = True  # relax the cell too (cell filter), not only the positions
    batch_size: int = 32  # crystals per CHGNet batch
    # "fire" (CHGNet's StructOptimizer default) or "bfgs" (ASE's BFGS: about 30% fewer steps on small cells, the
    # same minima; benchmarks/relaxation_throughput.py measures both)
    optimizer: str = "bfgs"
    # BFGS's initial Hessian, eV/A^2, set only with optimizer bfgs; null: DEFAULT_BFGS_ALPHA (35), a softer start
    # than ASE's 70 that takes about a quarter fewer steps (benchmarks/relaxation_throughput.py --bfgs-alpha prints
    # the steps and the minima against ASE's start and FIRE's)
    bfgs_alpha: float | None = None
    # worker processes, one torch thread each; more than one only pays when there are more crystals than
    # batch_size (each worker loads its own CHGNet, a few seconds)
    workers: int = 2
    # The hull relaxes every reference phase of a candidate's chemical system, so the two limits below bound the
    # cost; null lifts them.
    max_atoms: int | None = 6  # larger cells are not relaxed (verification takes small cells only; None: no limit)
    max_candidates: int | None = 12  # relax at most this many, in sampling order (None: all)
    # Angstrom: a converged relaxation is put on its symmetric sites (td_data.relax.idealised, spglib's idealised
    # primitive cell) within this tolerance: CHGNet's float32 noise hides the symmetry from the labeller, which
    # then labels the cell hundreds of times slower with the same answer. None keeps CHGNet's positions.
    symprec: float | None = 1e-3

    def __post_init__(self) -> None:
        for name in ("enabled", "relax_cell"):
            if not isinstance(getattr(self, name), bool):
                raise ParameterError(f"relax_options.{name} must be true or false, got {getattr(self, name)!r}")
        fmax = self.fmax
        if isinstance(fmax, bool) or not isinstance(fmax, (int, float)) or not fmax > 0:
            raise ParameterError(f"relax_options.fmax must be a number > 0 (eV/Angstrom), got {fmax!r}")
        from td_data.relax.relaxer import OPTIMIZERS  # numpy and threadpoolctl only: no CHGNet needed to check

        if self.optimizer not in OPTIMIZERS:
            allowed = " or ".join(map(repr, OPTIMIZERS))
            raise ParameterError(f"relax_options.optimizer must be {allowed}, got {self.optimizer!r}")
        alpha = self.bfgs_alpha
        if alpha is not None:
            if (
                isinstance(alpha, bool)
                or not isinstance(alpha, (int, float))
                or not (math.isfinite(alpha) and alpha > 0)
            ):
                raise ParameterError(f"relax_options.bfgs_alpha must be a number > 0 (eV/A^2) or null, got {alpha!r}")
            if self.optimizer != "bfgs":
                raise ParameterError(
                    f"relax_options.bfgs_alpha={alpha!r} needs relax_options.optimizer: bfgs (it is "
                    f"{self.optimizer!r}, which has no initial Hessian); set it to null or choose bfgs"
                )
        for name in ("max_steps", "batch_size", "workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParameterError(f"relax_options.{name} must be an integer >= 1, got {value!r}")
        for name in ("max_atoms", "max_candidates"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ParameterError(f"relax_options.{name} must be an integer >= 1 or null, got {value!r}")
        prec = self.symprec
        if prec is not None and (isinstance(prec, bool) or not isinstance(prec, (int, float)) or not prec > 0):
            raise ParameterError(f"relax_options.symprec must be a number > 0 (Angstrom) or null, got {prec!r}")

    @property
    def bfgs_start(self) -> float | None:
        """BFGS's initial Hessian (eV/A^2) this block asks for; None with FIRE."""
        if self.optimizer != "bfgs":
            return None
        return float(self.bfgs_alpha) if self.bfgs_alpha is not None else DEFAULT_BFGS_ALPHA

    def why_not_relaxed(self, rec: CrystalRecord, n_chosen: int) -> str:
        """Why ``rec`` is not relaxed ('' when it is), given ``n_chosen`` candidates chosen before it."""
        if not self.enabled:
            return "not relaxed: relax_options.enabled is false"
        if self.max_atoms is not None and rec.num_atoms > self.max_atoms:
            return f"not relaxed: {rec.num_atoms} sites > relax_options.max_atoms={self.max_atoms}"
        if self.max_candidates is not None and n_chosen >= self.max_candidates:
            return f"not relaxed: beyond relax_options.max_candidates={self.max_candidates}"
        return ""


def stability_decision(
    relaxed: bool, relax_reason: str, e_above_hull: float | None, hull_reason: str, threshold: float | None
) -> tuple[bool, str]:
    """``(passed on to verification, why not)`` for one candidate; the reason is empty when it passed.

    ``relaxed``: False when a relaxation ran and failed (``relax_reason`` says why); a candidate that was not
    relaxed on purpose (relax disabled, no CHGNet, over a limit) counts as relaxed here: only the threshold,
    which needs an energy above the hull, holds it back.
    """
    if not relaxed:
        return False, f"relaxation failed: {relax_reason or 'no reason given'}"
    if threshold is None:
        return True, ""
    if e_above_hull is None:
        return False, f"no energy above the hull ({hull_reason or 'not computed'}), stability_threshold={threshold:g}"
    if e_above_hull > threshold:
        return False, f"e_above_hull {e_above_hull:.3f} eV/atom > stability_threshold {threshold:g} eV/atom"
    return True, ""


def relax_candidates(
    candidates: Sequence[CrystalRecord],
    train_crystals: Sequence[CrystalRecord],
    physics_config: Mapping[str, Any],
    relax_options: Mapping[str, Any],
    relaxer: Any = None,
) -> tuple[list[CrystalRecord], pd.DataFrame, dict[str, Any]]:
    """``(relaxed candidates, one table row per candidate, summary)``.

    Every candidate comes out, in input order: the relaxed structure when the relaxation ran (the last one
    when it did not converge; a converged one on its symmetric sites within ``relax_options.symprec``), else
    the input. Properties ``energy_per_atom`` (eV/atom, CHGNet), ``rmsd``
    (Angstrom, input to relaxed) and ``e_above_hull`` (eV/atom) where known; labels ``relax_converged``,
    ``relax_reason``, ``hull_reason``, ``passed_stability`` and ``stability_reason``. ``relaxer``: a loaded
    ``td_data.relax.Relaxer`` to reuse (tests); by default one is loaded here.
    """
    from td_models.config import PhysicsConfig

    opts = RelaxOptions.from_dict(relax_options)
    threshold = PhysicsConfig.from_dict(dict(physics_config)).stability_threshold
    candidates = list(candidates)
    note = ""
    if opts.enabled and relaxer is None and importlib.util.find_spec("chgnet") is None:
        note = f"not relaxed: CHGNet is not installed ({INSTALL_HINT})"
        logger.warning("relax: %s; the candidates pass through unrelaxed", note)
    elif not opts.enabled:
        note = "not relaxed: relax_options.enabled is false"
    skipped: dict[int, str] = {}  # position in candidates -> why not relaxed
    chosen: list[int] = []
    for i, rec in enumerate(candidates):
        why = note or opts.why_not_relaxed(rec, len(chosen))
        if why:
            skipped[i] = why
        else:
            chosen.append(i)
    done = _relax([candidates[i] for i in chosen], list(train_crystals), opts, relaxer) if chosen else []
    facts = dict(zip(chosen, done, strict=True))
    out, rows = [], []
    for i, rec in enumerate(candidates):
        attempted = i in facts
        if attempted:
            rec, info = facts[i]
        else:
            info = {"converged": False, "reason": skipped[i], "hull_reason": skipped[i], "n_steps": 0}
        e_hull = info.get("e_above_hull")
        relaxed_ok = bool(info["converged"]) or not attempted
        passed, why = stability_decision(relaxed_ok, info["reason"], e_hull, info.get("hull_reason", ""), threshold)
        props = {k: info[k] for k in ("energy_per_atom", "rmsd", "e_above_hull") if info.get(k) is not None}
        labels = {
            "relax_converged": bool(info["converged"]),
            "relax_reason": info["reason"],
            "hull_reason": info.get("hull_reason", ""),
            "passed_stability": passed,
            "stability_reason": why,
        }
        out.append(rec.replace(properties={**rec.properties, **props}, labels={**rec.labels, **labels}))
        rows.append({
            "id": rec.id, "formula": rec.formula, "num_atoms": rec.num_atoms, "relax_converged": info["converged"],
            "n_steps": info.get("n_steps"), "relax_reason": info["reason"],
            "energy_per_atom": info.get("energy_per_atom"), "rmsd": info.get("rmsd"),
            "rmsd_reason": info.get("rmsd_reason", ""), "e_above_hull": e_hull,
            "hull_reason": info.get("hull_reason", ""), "reference_phases": info.get("reference_phases", ""),
            "passed_stability": passed, "stability_reason": why,
        })  # fmt: skip
    n_passed = sum(r["passed_stability"] for r in rows)
    summary = {
        "enabled": opts.enabled,
        "note": note,
        "options": {
            "fmax": opts.fmax,
            "max_steps": opts.max_steps,
            "relax_cell": opts.relax_cell,
            "batch_size": opts.batch_size,
            "optimizer": opts.optimizer,
            "bfgs_alpha": opts.bfgs_start,
            "workers": opts.workers,
            "max_atoms": opts.max_atoms,
            "max_candidates": opts.max_candidates,
            "symprec": opts.symprec,
        },
        "stability_threshold": threshold,
        "n_candidates": len(candidates),
        "n_relaxed": len(facts),
        "n_converged": sum(bool(r["relax_converged"]) for r in rows),
        "n_with_e_above_hull": sum(r["e_above_hull"] is not None for r in rows),
        "n_passed_stability": n_passed,
        "n_references": len(train_crystals),
        "hull": HULL_CAVEAT,
    }
    logger.info("relax: %d of %d candidates pass on to verification (stability_threshold=%s)",
                n_passed, len(candidates), threshold)  # fmt: skip
    columns = list(rows[0]) if rows else ["id", "relax_converged", "relax_reason", "e_above_hull", "passed_stability"]
    return out, pd.DataFrame(rows, columns=columns), summary


def _relax(
    candidates: list[CrystalRecord], references: list[CrystalRecord], opts: RelaxOptions, relaxer: Any
) -> list[tuple[CrystalRecord, dict[str, Any]]]:
    """CHGNet relaxation and hull of every candidate: ``(record to pass on, facts)`` in input order."""
    from td_data.relax import BfgsSettings, Relaxer, energy_above_hull, idealised, relax_records

    start = f", alpha {opts.bfgs_start:g} eV/A^2" if opts.bfgs_start is not None else ""
    logger.info(
        "relax: %d candidates with CHGNet (%s%s, fmax %g eV/A, at most %d steps, %d process(es)), then the hull of "
        "%d training crystals",
        len(candidates), opts.optimizer, start, opts.fmax, opts.max_steps, opts.workers, len(references),
    )  # fmt: skip
    if relaxer is None:
        relaxer = Relaxer()
    bfgs = BfgsSettings(alpha=opts.bfgs_start) if opts.bfgs_start is not None else None
    results = relax_records(
        candidates, fmax=opts.fmax, max_steps=opts.max_steps, relax_cell=opts.relax_cell,
        batch_size=opts.batch_size, progress=False, relaxer=relaxer, optimizer=opts.optimizer, workers=opts.workers,
        bfgs=bfgs,
    )  # fmt: skip
    # the reference phases relax with the same settings (and the relaxer caches them)
    hulls = energy_above_hull(results, references, relaxer=relaxer, progress=False, fmax=opts.fmax,
                              max_steps=opts.max_steps, batch_size=opts.batch_size, optimizer=opts.optimizer,
                              workers=opts.workers, bfgs=bfgs)  # fmt: skip
    out = []
    for cand, res, hull in zip(candidates, results, hulls, strict=True):
        converged, reason = bool(res.converged), res.reason or ""
        try:  # the relaxed structure keeps the candidate's id, properties and labels
            final = res.record if res.record is not None else cand
            record = cand.replace(
                lattice=final.lattice, frac_coords=final.frac_coords, atomic_numbers=final.atomic_numbers
            )
        except ValueError as err:  # a cell the relaxation collapsed: the candidate is kept as sampled
            record, converged, reason = cand, False, f"the relaxed structure is not a valid crystal: {err}"
        if converged and opts.symprec is not None:
            record = idealised(record, opts.symprec)
        phases = getattr(hull, "reference_phases", None) or ()
        out.append((record, {
            "converged": converged, "reason": reason, "n_steps": res.n_steps,
            "energy_per_atom": _finite(res.energy_per_atom), "rmsd": _finite(res.rmsd),
            "rmsd_reason": getattr(res, "rmsd_reason", None) or "",
            "e_above_hull": _finite(hull.e_above_hull), "hull_reason": hull.reason or "",
            "reference_phases": " ".join(str(p) for p in phases),
        }))  # fmt: skip
    return out


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None

"""Evaluate: generation quality (CDVAE/DiffCSP metrics), physics consistency and DFT verification.

Generation quality judges the generator on its samples as sampled (``candidates``). Physics consistency
re-runs the structure labeller (the same options as the ``label`` pipeline) on the relaxed candidates
(``relaxed_candidates``) and compares the recomputed class with the class that was asked for: a confusion
table and the share that are what was asked. Verification computes the topological class with DFT
(td-physics' ``dft_invariants``: PBE, spin-orbit coupling, Fu-Kane parities or Wilson loops) for the top
``verify_options.top_n`` candidates that passed the stability filter of the ``relax`` pipeline.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from pipelines._options import OptionsBlock, is_int, is_number
from pipelines.dft import dft_crystal, dft_settings, run_dft
from pipelines.exceptions import ParameterError
from td_data import CrystalRecord

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluateOptions(OptionsBlock):
    """The ``evaluate_options`` block of ``parameters_evaluate.yml`` (the benchmarks' environments set their own)."""

    block: ClassVar[str] = "evaluate_options"

    coverage_dataset: str = "mp_20"  # coverage cutoffs of td_data.metrics.COVERAGE_CUTOFFS (perov_5, carbon_24, mp_20)
    # the metrics take the first N candidates (CrystalNN fingerprints are slow); None: all of them
    max_metric_candidates: int | None = 24
    max_relabel: int = 6  # candidates re-labelled by the physics labeller
    max_relabel_atoms: int | None = 4  # larger candidates are not re-labelled; None: label_options.max_atoms
    cutoffs: tuple[float, float] | None = None  # coverage (structure, composition); None: coverage_dataset's
    n_wdist: int = 1000  # valid crystals drawn for the published protocol's Wasserstein distances (DiffCSP's)
    seed: int = 0  # that draw's seed
    n_jobs: int = 1  # worker processes of the fingerprints
    # crystals drawn (with seed) for uniqueness and novelty, StructureMatcher pairs within a formula and cell size;
    # None: all
    match_sample: int | None = None
    reference_cache: str | None = None  # the test crystals' fingerprints (.npz), reused by a later run; None: none
    # the generated crystals' fingerprints (.npz), written every minute while they are computed, so an
    # interrupted run resumes; None: none
    generated_cache: str | None = None

    def __post_init__(self) -> None:
        from td_data.metrics import COVERAGE_CUTOFFS

        b = self.block
        if self.coverage_dataset not in COVERAGE_CUTOFFS:
            raise ParameterError(
                f"{b}.coverage_dataset must be one of {sorted(COVERAGE_CUTOFFS)}, got {self.coverage_dataset!r}"
            )
        if self.max_metric_candidates is not None and (
            not is_int(self.max_metric_candidates) or self.max_metric_candidates < 0
        ):
            raise ParameterError(
                f"{b}.max_metric_candidates must be an integer >= 0 or null, got {self.max_metric_candidates!r}"
            )
        if not is_int(self.max_relabel) or self.max_relabel < 0:
            raise ParameterError(f"{b}.max_relabel must be an integer >= 0, got {self.max_relabel!r}")
        atoms = self.max_relabel_atoms
        if atoms is not None and (not is_int(atoms) or atoms < 1):
            raise ParameterError(f"{b}.max_relabel_atoms must be an integer >= 1 or null, got {atoms!r}")
        if self.cutoffs is not None:
            cutoffs = tuple(self.cutoffs) if isinstance(self.cutoffs, (list, tuple)) else ()
            if len(cutoffs) != 2 or not all(is_number(c) and math.isfinite(c) and c > 0 for c in cutoffs):
                raise ParameterError(
                    f"{b}.cutoffs must be [structure, composition] (numbers > 0) or null, got {self.cutoffs!r}"
                )
            object.__setattr__(self, "cutoffs", tuple(float(c) for c in cutoffs))
        for name in ("n_wdist", "n_jobs"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise ParameterError(f"{b}.{name} must be an integer >= 1, got {value!r}")
        if self.match_sample is not None and (not is_int(self.match_sample) or self.match_sample < 1):
            raise ParameterError(f"{b}.match_sample must be an integer >= 1 or null, got {self.match_sample!r}")
        if not is_int(self.seed) or self.seed < 0:
            raise ParameterError(f"{b}.seed must be an integer >= 0, got {self.seed!r}")
        for name in ("reference_cache", "generated_cache"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.endswith(".npz")):
                raise ParameterError(f"{b}.{name} must be a path to an .npz file or null, got {value!r}")

    def coverage_cutoffs(self) -> tuple[float, float]:
        """``cutoffs``, or the published ones of ``coverage_dataset`` (CDVAE's ``COV_Cutoffs``)."""
        from td_data.metrics import COVERAGE_CUTOFFS

        return self.cutoffs if self.cutoffs is not None else tuple(COVERAGE_CUTOFFS[self.coverage_dataset])


def score_generated(
    generated: Sequence[CrystalRecord],
    test: Sequence[CrystalRecord],
    train: Sequence[CrystalRecord],
    options: EvaluateOptions,
    checks: Any = None,
) -> dict[str, Any]:
    """:func:`td_data.metrics.generation_metrics` of a generated set (candidates, benchmark samples or a
    baseline's crystals) with ``options``: both protocols, the published one at the top level. ``checks``: the
    set's :func:`td_data.metrics.check_generated`, when already made."""
    from td_data.metrics import generation_metrics

    return generation_metrics(list(generated), list(test), dataset=options.coverage_dataset, train=list(train),
                              cutoffs=options.coverage_cutoffs(), protocol="published", n_wdist=options.n_wdist,
                              seed=options.seed, n_jobs=options.n_jobs, reference_cache=options.reference_cache,
                              checks=checks, generated_cache=options.generated_cache,
                              match_sample=options.match_sample)  # fmt: skip


def generation_quality(
    candidates: Sequence[CrystalRecord],
    test: Sequence[CrystalRecord],
    train: Sequence[CrystalRecord],
    evaluate_options: Mapping[str, Any],
) -> dict[str, Any]:
    """Validity, COV-R/COV-P, Wasserstein distances, uniqueness and novelty (against ``train``) of the first
    ``max_metric_candidates`` candidates (:func:`score_generated`), and the composition statistics of all of them
    against the training crystals (:func:`composition_statistics`); ``seconds``: how long it took.

    ``evaluate_options.coverage_dataset`` picks the coverage cutoffs (``mp_20`` for MP-20-like data, the
    default for the synthetic set of at most 20 sites). The test split is the reference set. The benchmarks'
    evaluate stages run this node on their generated crystals, with their environment's ``evaluate_options``.
    """
    if not candidates:
        return {"n_generated": 0, "error": "no candidate was a valid record"}
    started = time.perf_counter()
    opts = EvaluateOptions.from_dict(evaluate_options)
    dataset, n_max = opts.coverage_dataset, opts.max_metric_candidates
    # CrystalNN fingerprints cost about a second per crystal here (more for the huge cells of an undertrained
    # model), so the main job's metrics use the first n_max candidates (in sampling order, no selection)
    used = list(candidates)[:n_max] if n_max is not None else list(candidates)
    metrics = score_generated(used, test, train, opts)
    metrics = {k: (v.item() if hasattr(v, "item") else v) for k, v in metrics.items()}
    metrics["reference"] = f"test split ({len(test)} crystals), coverage cutoffs of {dataset}"
    metrics["coverage_dataset"] = dataset
    metrics["candidates_used"] = f"first {len(used)} of {len(candidates)} candidates"
    metrics["composition"] = composition_statistics(candidates, train)
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    return metrics


def composition_statistics(candidates: Sequence[CrystalRecord], train: Sequence[CrystalRecord]) -> dict[str, Any]:
    """How the candidates' compositions compare with the training split's, over all candidates.

    Keys: ``n_candidates``; ``wdist_num_elems`` and ``wdist_num_atoms``, the Wasserstein-1 distances of
    distinct elements and of atoms per cell to the training split's; ``charge_balanced`` and
    ``train_charge_balanced``, the shares that pass CDVAE's compositional validity (SMACT charge neutrality
    and the Pauling test, ``td_data.validity``); ``max_num_elems`` and ``train_max_num_elems``;
    ``num_elems_counts`` (distinct elements -> candidates); ``density_range`` and ``train_density_range``
    (g/cm^3, min and max) and ``density_in_train_range``, the share of candidates inside the training range.

    >>> from td_data import CrystalRecord
    >>> nacl = CrystalRecord(5.64 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5]], ["Na", "Cl"], id="nacl")
    >>> stats = composition_statistics([nacl], [nacl])
    >>> stats["wdist_num_elems"], stats["charge_balanced"], stats["max_num_elems"], stats["train_max_num_elems"]
    (0.0, 1.0, 2, 2)
    """
    from scipy.stats import wasserstein_distance

    from td_data.validity import composition_validity

    def elements(records: Sequence[CrystalRecord]) -> list[int]:
        return [len(set(r.atomic_numbers.tolist())) for r in records]

    def balanced(records: Sequence[CrystalRecord]) -> float:
        return float(np.mean([composition_validity(r.atomic_numbers)[0] for r in records]))

    def densities(records: Sequence[CrystalRecord]) -> list[float]:
        values = [r.density for r in records]
        return [float(min(values)), float(max(values))]

    if not candidates or not train:
        return {"n_candidates": len(candidates), "error": "no candidates or no training crystals"}
    counts, train_counts = elements(candidates), elements(train)
    return {
        "n_candidates": len(candidates),
        "wdist_num_elems": float(wasserstein_distance(counts, train_counts)),
        "wdist_num_atoms": float(wasserstein_distance([r.num_atoms for r in candidates], [r.num_atoms for r in train])),
        "charge_balanced": balanced(candidates),
        "train_charge_balanced": balanced(train),
        "max_num_elems": max(counts),
        "train_max_num_elems": max(train_counts),
        "num_elems_counts": {int(k): v for k, v in sorted(Counter(counts).items())},
        "density_range": densities(candidates),
        "train_density_range": (train_range := densities(train)),
        "density_in_train_range": float(np.mean([train_range[0] <= r.density <= train_range[1] for r in candidates])),
    }


def physics_consistency(
    candidates: Sequence[CrystalRecord],
    label_options: Mapping[str, Any],
    evaluate_options: Mapping[str, Any],
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[CrystalRecord], dict[str, Any], pd.DataFrame]:
    """``(candidates with recomputed labels, consistency report, one table row per candidate)``.

    Only structurally valid candidates with at most ``max_relabel_atoms`` sites and elements the
    labeller knows are relabelled (at most ``max_relabel``, those that passed the ``relax`` pipeline's
    stability filter first: they are the ones verification may take); the others get ``recomputed_class``
    = ``not_checked`` with the reason (:func:`td_data.evaluation.relabel_candidates`). ``progress(done, total)``
    is called as labels arrive (the evaluation scripts draw a bar with it).
    """
    from pipelines.config import LABELLER_ELEMENTS, LabelConfig
    from td_data.evaluation import relabel_candidates

    cfg = LabelConfig.from_dict(label_options)
    opts = EvaluateOptions.from_dict(evaluate_options)
    max_atoms = cfg.max_atoms if opts.max_relabel_atoms is None else opts.max_relabel_atoms
    # compositional validity (SMACT) is left to generation_quality: it enumerates oxidation states and takes
    # minutes on the many-element cells an undertrained model makes
    out, report, rows = relabel_candidates(
        candidates,
        max_relabel=opts.max_relabel,
        max_atoms=max_atoms,
        workers=cfg.workers,
        classify_options=cfg.classify_options(),
        allowed_elements=LABELLER_ELEMENTS,
        progress=progress,
    )
    report = {
        **report,
        "labeller_options": {"spin_orbit": cfg.spin_orbit, "gap_mesh": cfg.gap_mesh},
        "relabel_limits": {"max_relabel": opts.max_relabel, "max_relabel_atoms": max_atoms},
    }
    if report["requested_class"] is None:
        logger.info("evaluate: %d candidates checked (unconditioned: no class requested): %s", report["n_checked"],
                    report["recomputed_class_counts"])  # fmt: skip
    else:
        logger.info("evaluate: %d of %d checked candidates are %s", report["n_as_requested"], report["n_checked"],
                    report["requested_class"])  # fmt: skip
    return out, report, pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------ verify

DFT_INSTALL_HINT = "pip install 'td-physics[dft]'"
#: The input format of ``python -m td_physics.dft run`` (td_physics.dft.cli), written as ``dft_crystals``.
DFT_CRYSTALS_FORMAT = "td-physics.dft-crystals"


@dataclass(frozen=True)
class VerifyOptions(OptionsBlock):
    """The ``verify_options`` block of ``parameters_evaluate.yml``."""

    block: ClassVar[str] = "verify_options"

    enabled: bool = True  # false: no DFT here; dft_crystals still lists the top_n (for SLURM)
    top_n: int = 2  # candidates verified: matching the requested class first, then TB confidence, then e_above_hull
    max_atoms: int = 6  # larger cells are not verified here (DFT cost grows ~N^3)
    spin_orbit: bool = True  # PBE + spin-orbit coupling (off: the control, a TI comes out trivial)
    timeout_per_crystal: float | None = 120.0  # seconds (band-structure plot too); over it: stopped, converged=False
    settings: dict[str, Any] = field(default_factory=dict)  # td_physics.dft.DFTSettings keys; {} = its defaults

    def __post_init__(self) -> None:
        for name in ("enabled", "spin_orbit"):
            if not isinstance(getattr(self, name), bool):
                raise ParameterError(f"verify_options.{name} must be true or false, got {getattr(self, name)!r}")
        if isinstance(self.top_n, bool) or not isinstance(self.top_n, int) or self.top_n < 0:
            raise ParameterError(f"verify_options.top_n must be an integer >= 0, got {self.top_n!r}")
        if isinstance(self.max_atoms, bool) or not isinstance(self.max_atoms, int) or self.max_atoms < 1:
            raise ParameterError(f"verify_options.max_atoms must be an integer >= 1, got {self.max_atoms!r}")
        t = self.timeout_per_crystal
        if t is not None and (
            isinstance(t, bool) or not isinstance(t, (int, float)) or not (t > 0 and math.isfinite(t))
        ):
            raise ParameterError(f"verify_options.timeout_per_crystal must be seconds > 0 or null, got {t!r}")
        if self.settings is None:
            object.__setattr__(self, "settings", {})
        if not isinstance(self.settings, Mapping):
            raise ParameterError(
                f"verify_options.settings must be a mapping of DFTSettings keys, got {self.settings!r}"
            )

    def dft_settings(self) -> Any:
        """The ``td_physics.dft.DFTSettings`` of ``settings``; a bad key or value is a :class:`ParameterError`."""
        return dft_settings(self.settings, "verify_options.settings")


def _verify_rank(rec: CrystalRecord) -> tuple:
    lab = rec.labels
    e_hull = rec.properties.get("e_above_hull")
    return (
        lab.get("recomputed_class") != lab.get("requested_class"),
        -(lab.get("recomputed_confidence") or 0.0),
        math.inf if e_hull is None else e_hull,
        rec.id,
    )


def select_for_verification(
    candidates: Sequence[CrystalRecord], opts: VerifyOptions
) -> tuple[list[CrystalRecord], dict[str, str]]:
    """``(the top_n candidates to verify, in rank order; {id: why not} for every other candidate)``.

    Eligible: passed the stability filter (``passed_stability``, set by the ``relax`` pipeline; a candidate
    without it, relax not run, is eligible) and at most ``max_atoms`` sites. Rank: the TB class equal to the
    requested one first, then the TB confidence (highest first), then the energy above the hull (lowest first).
    """
    why: dict[str, str] = {}
    eligible = []
    for rec in candidates:
        if rec.labels.get("passed_stability") is False:
            why[rec.id] = f"held back by the stability filter: {rec.labels.get('stability_reason', '')}"
        elif rec.num_atoms > opts.max_atoms:
            why[rec.id] = f"{rec.num_atoms} sites > verify_options.max_atoms={opts.max_atoms}"
        else:
            eligible.append(rec)
    ranked = sorted(eligible, key=_verify_rank)
    for rec in ranked[opts.top_n :]:
        why[rec.id] = f"beyond verify_options.top_n={opts.top_n}"
    return ranked[: opts.top_n], why


def verify_candidates(
    checked_candidates: Sequence[CrystalRecord], verify_options: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """``(dft_results, dft_crystals, verify_summary)`` for the top candidates (:func:`select_for_verification`).

    ``dft_results``: one dict per verified candidate, rank order: ``id``, ``rank``, ``formula``,
    ``requested_class``, ``tb_class``, ``tb_confidence``, ``e_above_hull``, ``rmsd`` and the fields of
    ``DFTResult.to_dict()`` (``topo_class``, ``z2_indices``, ``band_gap_direct``/``_indirect``, ``converged``,
    ``reason``, ...). A crystal that fails (no gap, no setup, over ``timeout_per_crystal``) has
    ``converged=False`` and the reason; the others go on. ``dft_crystals``: the selected crystals in the
    input format of ``python -m td_physics.dft run`` (SLURM arrays). When the DFT extra is not installed,
    or ``enabled`` is false, nothing is computed and ``verify_summary`` says so.
    """
    opts = VerifyOptions.from_dict(verify_options)
    selected, not_selected = select_for_verification(list(checked_candidates), opts)
    crystals = {"format": DFT_CRYSTALS_FORMAT, "version": 1, "crystals": [dft_crystal(r) for r in selected]}
    summary: dict[str, Any] = {
        "enabled": opts.enabled,
        "available": None,
        "reason": "",
        "top_n": opts.top_n,
        "max_atoms": opts.max_atoms,
        "spin_orbit": opts.spin_orbit,
        "timeout_per_crystal": opts.timeout_per_crystal,
        "settings": dict(opts.settings),
        "n_candidates": len(checked_candidates),
        "selected": [r.id for r in selected],
        "not_selected_counts": dict(Counter(_reason_kind(w) for w in not_selected.values())),
        "n_verified": 0,
        "n_converged": 0,
    }
    if not opts.enabled:
        summary["reason"] = "verification disabled (verify_options.enabled is false)"
        return [], crystals, summary
    from td_physics.dft import dft_available

    available, why = dft_available()
    summary["available"] = bool(available)
    if not available:
        summary["reason"] = f"the DFT extra is not installed ({DFT_INSTALL_HINT}): {why}"
        logger.warning("verify: no DFT verification: %s", summary["reason"])
        return [], crystals, summary
    if not selected:
        summary["reason"] = "no candidate is eligible (see not_selected_counts)"
        return [], crystals, summary
    settings = opts.dft_settings()
    computed = run_dft(
        crystals["crystals"],
        settings,
        spin_orbit=opts.spin_orbit,
        timeout=opts.timeout_per_crystal,
        prefix="td-verify-",
    )
    results = []
    for rank, (rec, res) in enumerate(zip(selected, computed, strict=True), start=1):
        lab = rec.labels
        results.append({
            "id": rec.id, "rank": rank, "formula": rec.formula, "num_atoms": rec.num_atoms,
            "requested_class": lab.get("requested_class"), "tb_class": lab.get("recomputed_class"),
            "tb_confidence": lab.get("recomputed_confidence"), "e_above_hull": rec.properties.get("e_above_hull"),
            "rmsd": rec.properties.get("rmsd"), **{k: v for k, v in res.items() if k not in ("id", "index")},
        })  # fmt: skip
    summary["n_verified"] = len(results)
    summary["n_converged"] = sum(bool(r.get("converged")) for r in results)
    summary["settings"] = settings.to_dict()
    logger.info("verify: %d of %d candidates verified by DFT", summary["n_converged"], len(results))
    return results, crystals, summary


def _reason_kind(reason: str) -> str:
    """The rule of a not-selected reason, for counting: 'stability filter', 'max_atoms', 'top_n'."""
    if reason.startswith("held back"):
        return "stability filter"
    return "top_n" if "top_n" in reason else "max_atoms"

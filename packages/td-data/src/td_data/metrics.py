"""Generation and structure-prediction metrics after CDVAE and DiffCSP.

The protocol of Xie et al., "Crystal Diffusion Variational Autoencoder for Periodic Material
Generation" (ICLR 2022; ``scripts/compute_metrics.py`` and ``scripts/eval_utils.py`` in
txie-93/cdvae), reused by Jiao et al., "Crystal Structure Prediction by Joint Equivariant
Diffusion" (DiffCSP, NeurIPS 2023; jiaor17/DiffCSP). Written from their definitions, not copied.

Definitions
-----------
Validity (fractions of *all* generated crystals)
    ``struct_valid``: shortest interatomic distance (periodic images included) at least 0.5
    Angstrom and cell volume at least 0.1 Angstrom^3. ``comp_valid``: SMACT charge neutrality
    with the Pauling test (single elements and all-metal alloys pass). ``valid``: both, *and*
    the CrystalNN fingerprint could be computed: as in the reference code, a crystal whose
    fingerprint raises is counted invalid (tests in :mod:`td_data.validity`).
Fingerprints
    Structure: matminer ``CrystalNNFingerprint.from_preset("ops")`` of every site, averaged over
    the sites (61 numbers). By default it is computed by :mod:`td_data.fingerprint.crystalnn`, a
    vectorised reimplementation that agrees with matminer to floating-point rounding (tested to 1e-6
    per feature and site on Perov-5, Carbon-24 and MP-20 crystals); ``structure_fingerprint="matminer"``
    (or the default :data:`td_data.fingerprint.featurise.STRUCTURE_FINGERPRINT`) calls matminer site by
    site instead. :func:`fingerprints` (from :mod:`td_data.fingerprint`) featurises many crystals.
    Composition: matminer ``ElementProperty.from_preset("magpie")`` of the cell's composition
    (132 numbers).
Composition normalisation
    The Magpie vectors are standardised before the composition distance, feature by feature; missing
    values become 0 after scaling (CDVAE's ``replace_nan_token=0``). Under ``protocol="published"`` the
    means and standard deviations are CDVAE's fixed ``CompScalerMeans`` / ``CompScalerStds`` (the numbers
    of ``cdvae/common/constants.py`` in txie-93/cdvae, shipped as ``td_data/data/cdvae_composition_scaler.json``
    with their source; :func:`cdvae_composition_scaler`); DiffCSP's ``scripts/eval_utils.py`` scales with
    the same lists, copied in its ``diffcsp/common/constants.py``. The composition cutoffs were chosen for
    this scaling. Under ``protocol="legacy"`` each feature is
    standardised with the mean and standard deviation (ddof 0) of the *reference set*, a zero or undefined
    spread becoming 1 (:func:`fit_composition_scaler`); a near-constant feature of the test set then blows
    up composition distances, so legacy COV numbers are not comparable to published ones. ``comp_scaler=
    (means, stds)`` replaces the scaling of both protocols.
Coverage
    Euclidean distances (``scipy.spatial.distance.cdist``, in chunks of generated rows, so 10,000 x 3,785
    crystals never hold a full distance matrix) between generated and reference fingerprints.
    ``cov_recall`` (COV-R): fraction of reference crystals whose nearest generated
    structure fingerprint is within the structure cutoff *and* whose nearest generated
    composition fingerprint is within the composition cutoff. ``cov_precision`` (COV-P): the
    same test from each generated crystal to the reference set, counted and divided by the
    number of *all* generated crystals. As in the reference code, the two nearest neighbours
    may be different crystals (the minima are thresholded separately). Exact handling in
    the reference code, followed here: the generated crystals that enter the distances are
    those whose fingerprints could be computed (CDVAE's ``filter_fps`` drops the others); it
    does *not* drop crystals that fail the distance or SMACT test. COV-P still divides by all
    generated crystals, so featurisation failures count as misses. ``cov_recall_valid_only`` /
    ``cov_precision_valid_only`` restrict the distances to fully valid crystals (a stricter reading;
    ``coverage_valid_only=True`` makes it the main ``cov_*`` too).
    ``amsd_*`` / ``amcd_*`` are the mean minimum structure / composition distances (recall:
    over reference crystals, precision: over the generated crystals used).
    Cutoffs (structure, composition): ``mp_20`` (0.4, 10), ``perov_5`` and ``carbon_24`` (0.2, 4).
Joint coverage (ours; no published table has it)
    ``cov_recall_joint``: fraction of reference crystals for which ONE generated crystal is within both
    cutoffs; ``cov_precision_joint``: generated crystals for which one reference crystal is within both,
    over all generated crystals. Always at most the separate-minima COV-R / COV-P.
Wasserstein distances (``scipy.stats.wasserstein_distance``)
    Between valid generated crystals and *all* reference crystals: ``wdist_density``
    (g/cm^3), ``wdist_num_elems`` (number of distinct elements per cell) and, with a
    ``property_fn``, ``wdist_prop`` of the predicted property. ``published``: ``n_wdist`` (1,000) valid
    crystals drawn at random without replacement (``numpy.random.default_rng(seed)``), as CDVAE's and
    DiffCSP's ``GenEval``; when fewer are valid, all of them (the reference code stops with an error
    instead), and ``wdist_sample`` says so. ``legacy``: every valid crystal.
Uniqueness and novelty (not in CDVAE's script; the definitions of later papers)
    ``uniqueness``: fraction of all generated crystals that no *earlier* generated crystal
    matches. ``novelty``: fraction of valid generated crystals that no training crystal matches.
    Both use pymatgen ``StructureMatcher(ltol=0.2, stol=0.3, angle_tol=5)`` (its defaults,
    with ``primitive_cell=True, scale=True``) and compare only crystals with the same reduced
    formula.
Structure prediction (CSP)
    ``StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)``; a prediction counts only when it
    and its target are both valid (structure and composition; DiffCSP checks both, CDVAE only
    the prediction). ``match_rate``: matched pairs over *all* pairs. ``rms_dist``: mean over
    matched pairs of pymatgen's ``get_rms_dist`` RMS displacement, which is normalised by
    (V/N)^(1/3). **Deviation**: the reference code also counts a prediction invalid when its
    CrystalNN fingerprint fails; we do not featurise for CSP.

Protocols
    ``protocol="published"`` (the default) is CDVAE's and DiffCSP's ``compute_metrics.py``: CDVAE's scaling
    constants, coverage over every featurised generated crystal, Wasserstein distances over ``n_wdist``
    valid crystals drawn at random. (DiffCSP's tables score 10,000 generated crystals; the number generated
    is the caller's.) ``protocol="legacy"`` is this module's earlier reading: reference-set scaling and every
    valid crystal for the Wasserstein distances. Both are always computed from the same fingerprints: the
    chosen one fills the top-level keys, ``result["protocols"][name]`` holds each protocol's own keys.

Remaining deviations (both protocols)
    The random draw for the Wasserstein distances is seeded (``seed``; the reference code's
    ``np.random.choice`` is not), so the same draw cannot be reproduced, only its distribution.
    Densities use :attr:`CrystalRecord.density` (IUPAC 2021 masses) instead of pymatgen's. A
    reference crystal whose fingerprint fails (CDVAE would crash) is left out of coverage, counted
    in ``n_reference_featurisation_failed`` and logged.

Speed: the fingerprints dominate the cost. :func:`fingerprints` runs a process pool (``n_jobs``,
results in input order) and can keep an ``.npz`` cache keyed by a content hash of each crystal, so a
fixed reference set is featurised once; ``python benchmarks/data_metrics.py`` times the whole set of
metrics (its numbers are in ``benchmarks/README.md``).

Examples
--------
>>> from td_data.record import CrystalRecord
>>> nacl = CrystalRecord([[0, 2.8, 2.8], [2.8, 0, 2.8], [2.8, 2.8, 0]], [[0, 0, 0], [0.5, 0.5, 0.5]], ["Na", "Cl"])
>>> bad = CrystalRecord(4 * np.eye(3), [[0, 0, 0], [0.05, 0, 0]], ["Na", "Na"])
>>> validity_fractions([nacl, bad])
{'struct_valid': 0.5, 'comp_valid': 1.0, 'valid': 0.5}
>>> m = structure_prediction_metrics([nacl, bad], [nacl, nacl])
>>> m["match_rate"], round(m["rms_dist"], 6)
(0.5, 0.0)
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from td_data.exceptions import TDDataError
from td_data.fingerprint import Fingerprints, content_hash, fingerprints
from td_data.record import CrystalRecord
from td_data.validity import composition_validity, structure_validity

__all__ = [
    "COVERAGE_CUTOFFS",
    "PROTOCOLS",
    "N_WDIST",
    "MATCHER_TOLERANCES",
    "CSP_MATCHER_TOLERANCES",
    "Fingerprints",
    "fingerprints",
    "content_hash",
    "cdvae_composition_scaler",
    "cdvae_composition_scaler_source",
    "fit_composition_scaler",
    "validity_flags",
    "GeneratedChecks",
    "check_generated",
    "validity_fractions",
    "coverage",
    "wasserstein_metrics",
    "uniqueness",
    "novelty",
    "generation_metrics",
    "structure_prediction_metrics",
]

log = logging.getLogger(__name__)

# (structure cutoff, composition cutoff) per data set, from CDVAE's COV_Cutoffs.
COVERAGE_CUTOFFS: dict[str, tuple[float, float]] = {
    "mp_20": (0.4, 10.0),
    "perov_5": (0.2, 4.0),
    "carbon_24": (0.2, 4.0),
}
#: The metric protocols of :func:`generation_metrics` (the module docstring defines them).
PROTOCOLS = ("published", "legacy")
#: Valid crystals drawn for the published protocol's Wasserstein distances (``n_samples`` of CDVAE's and
#: DiffCSP's ``GenEval``).
N_WDIST = 1000
#: Distance-matrix entries computed at once by :func:`coverage` (two float64 blocks of 32 MB).
COVERAGE_CHUNK_ELEMENTS = 4_000_000
_CDVAE_SCALER_FILE = "data/cdvae_composition_scaler.json"
# StructureMatcher tolerances for uniqueness, novelty and duplicates (pymatgen's defaults).
MATCHER_TOLERANCES: dict[str, float] = {"ltol": 0.2, "stol": 0.3, "angle_tol": 5.0}
# StructureMatcher tolerances of CDVAE / DiffCSP for structure prediction (reconstruction).
CSP_MATCHER_TOLERANCES: dict[str, float] = {"stol": 0.5, "angle_tol": 10.0, "ltol": 0.3}


# ---------------------------------------------------------------------------------------------- validity
def validity_flags(
    records: Sequence[CrystalRecord], progress: Callable[[int, int], None] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(structurally valid, compositionally valid), two (n,) bool arrays; ``progress(done, total)`` after each."""
    struct, comp = [], []
    for done, rec in enumerate(records, 1):
        struct.append(structure_validity(rec)[0])
        comp.append(composition_validity(rec.atomic_numbers)[0])
        if progress is not None:
            progress(done, len(records))
    return np.array(struct, dtype=bool), np.array(comp, dtype=bool)


def validity_fractions(records: Sequence[CrystalRecord], featurised: np.ndarray | None = None) -> dict[str, float]:
    """``struct_valid``, ``comp_valid`` and ``valid`` (both, and featurised when ``featurised`` is given)
    as fractions of all records."""
    if len(records) == 0:
        raise TDDataError("validity needs at least one crystal, got an empty set")
    struct, comp = validity_flags(records)
    valid = struct & comp
    if featurised is not None:
        valid &= np.asarray(featurised, dtype=bool)
    return {"struct_valid": float(struct.mean()), "comp_valid": float(comp.mean()), "valid": float(valid.mean())}


def _stage(progress: Callable[[str, int, int], None] | None, name: str) -> Callable[[int, int], None] | None:
    """``progress`` bound to one stage's name (None when there is no progress callback)."""
    return None if progress is None else (lambda done, total: progress(name, done, total))


@dataclass(frozen=True, eq=False)
class GeneratedChecks:
    """What :func:`generation_metrics` checks per generated crystal, in input order: ``struct_ok`` and
    ``comp_ok`` (n,) bool arrays and the ``fingerprints``; ``valid`` is all three (CDVAE's ``valid``)."""

    struct_ok: np.ndarray
    comp_ok: np.ndarray
    fingerprints: Fingerprints

    @property
    def valid(self) -> np.ndarray:
        return self.struct_ok & self.comp_ok & np.asarray(self.fingerprints.ok, dtype=bool)

    def __len__(self) -> int:
        return len(self.struct_ok)


def check_generated(
    generated: Sequence[CrystalRecord],
    *,
    n_jobs: int | None = None,
    structure_fingerprint: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    cache: str | os.PathLike | None = None,
) -> GeneratedChecks:
    """Validity flags and fingerprints of ``generated`` (``progress`` as :func:`generation_metrics`'s, stages
    ``"validity"`` and ``"fingerprints (generated)"``; ``cache`` as :func:`fingerprints`'): pass them to
    :func:`generation_metrics` as ``checks`` to score one set twice, or to plot its valid crystals, without
    checking it again."""

    struct_ok, comp_ok = validity_flags(generated, _stage(progress, "validity"))
    fp = fingerprints(generated, n_jobs=n_jobs, structure_fingerprint=structure_fingerprint, cache=cache,
                      progress=_stage(progress, "fingerprints (generated)"))  # fmt: skip
    return GeneratedChecks(struct_ok, comp_ok, fp)


# ---------------------------------------------------------------------------------------------- coverage
def _cdvae_scaler_document() -> dict[str, Any]:
    text = resources.files("td_data").joinpath(_CDVAE_SCALER_FILE).read_text(encoding="utf-8")
    return json.loads(text)


def cdvae_composition_scaler() -> tuple[np.ndarray, np.ndarray]:
    """CDVAE's fixed (means, stds) of the 132 Magpie features, two (132,) arrays in matminer's
    ``ElementProperty.from_preset("magpie")`` feature order; :func:`cdvae_composition_scaler_source` cites them.

    >>> means, stds = cdvae_composition_scaler()
    >>> means.shape, stds.shape, bool((stds > 0).all())
    ((132,), (132,), True)
    """
    doc = _cdvae_scaler_document()
    return np.array(doc["means"], dtype=float), np.array(doc["stds"], dtype=float)


def cdvae_composition_scaler_source() -> dict[str, Any]:
    """Where :func:`cdvae_composition_scaler`'s numbers come from: repository, path, commit, names, paper.

    >>> cdvae_composition_scaler_source()["path"]
    'cdvae/common/constants.py'
    """
    return dict(_cdvae_scaler_document()["source"])


def fit_composition_scaler(composition: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(means, stds) of Magpie vectors (n, 132), ignoring NaN; a zero or undefined std becomes 1."""
    comp = np.asarray(composition, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        mean = np.nanmean(comp, axis=0)
        std = np.nanstd(comp, axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    return mean, std


def _scale(comp: np.ndarray, scaler: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    out = (comp - scaler[0]) / scaler[1]
    return np.where(np.isfinite(out), out, 0.0)  # CDVAE's replace_nan_token=0


def coverage(
    generated: Fingerprints,
    reference: Fingerprints,
    *,
    struct_cutoff: float,
    comp_cutoff: float,
    comp_scaler: tuple[np.ndarray, np.ndarray] | None = None,
    generated_mask: np.ndarray | None = None,
) -> dict[str, float]:
    """COV-R, COV-P, the joint coverage and the mean minimum distances (see the module docstring).

    Generated rows used: ``generated.ok`` (and ``generated_mask`` when given); COV-P divides by
    ``len(generated)``. Reference rows used: ``reference.ok``; COV-R divides by their number.
    ``comp_scaler`` defaults to :func:`fit_composition_scaler` of the reference rows used. The distances are
    computed for blocks of generated rows (:data:`COVERAGE_CHUNK_ELEMENTS` entries at a time).
    """
    from scipy.spatial.distance import cdist

    use_gen = np.asarray(generated.ok, dtype=bool).copy()
    if generated_mask is not None:
        use_gen &= np.asarray(generated_mask, dtype=bool)
    use_ref = np.asarray(reference.ok, dtype=bool)
    if not use_ref.any():
        raise TDDataError(f"coverage needs at least one featurised reference crystal, got 0 of {len(reference)}")
    if comp_scaler is None:
        comp_scaler = fit_composition_scaler(reference.composition[use_ref])
    n_gen = len(generated)
    if not use_gen.any():
        nan = float("nan")
        keys = ("amsd_recall", "amsd_precision", "amcd_recall", "amcd_precision")
        zero = ("cov_recall", "cov_precision", "cov_recall_joint", "cov_precision_joint")
        return {**dict.fromkeys(zero, 0.0), **dict.fromkeys(keys, nan)}
    gen_s, ref_s = generated.structure[use_gen], reference.structure[use_ref]
    gen_c = _scale(generated.composition[use_gen], comp_scaler)
    ref_c = _scale(reference.composition[use_ref], comp_scaler)
    n_used, n_ref = len(gen_s), len(ref_s)
    recall_s, recall_c = np.full(n_ref, np.inf), np.full(n_ref, np.inf)  # nearest generated, per reference
    recall_joint = np.zeros(n_ref, dtype=bool)  # one generated crystal within both cutoffs
    prec_s, prec_c = np.empty(n_used), np.empty(n_used)  # nearest reference, per generated
    prec_joint = np.empty(n_used, dtype=bool)
    rows = max(1, COVERAGE_CHUNK_ELEMENTS // n_ref)
    for lo in range(0, n_used, rows):
        hi = min(lo + rows, n_used)
        struct_d = cdist(gen_s[lo:hi], ref_s)  # (rows, n_ref)
        comp_d = cdist(gen_c[lo:hi], ref_c)  # (rows, n_ref)
        np.minimum(recall_s, struct_d.min(axis=0), out=recall_s)
        np.minimum(recall_c, comp_d.min(axis=0), out=recall_c)
        prec_s[lo:hi], prec_c[lo:hi] = struct_d.min(axis=1), comp_d.min(axis=1)
        both = (struct_d <= struct_cutoff) & (comp_d <= comp_cutoff)  # (rows, n_ref)
        recall_joint |= both.any(axis=0)
        prec_joint[lo:hi] = both.any(axis=1)
    # As CDVAE: the nearest structure and the nearest composition are thresholded separately, so
    # the two cutoffs may be met by two different partners (the joint coverage asks for one partner).
    return {
        "cov_recall": float(np.mean((recall_s <= struct_cutoff) & (recall_c <= comp_cutoff))),
        "cov_precision": float(np.sum((prec_s <= struct_cutoff) & (prec_c <= comp_cutoff)) / n_gen),
        "cov_recall_joint": float(recall_joint.mean()),
        "cov_precision_joint": float(prec_joint.sum() / n_gen),
        "amsd_recall": float(recall_s.mean()),
        "amsd_precision": float(prec_s.mean()),
        "amcd_recall": float(recall_c.mean()),
        "amcd_precision": float(prec_c.mean()),
    }


# ---------------------------------------------------------------------------------------------- distributions
def wasserstein_metrics(
    generated: Sequence[CrystalRecord],
    reference: Sequence[CrystalRecord],
    property_fn: Callable[[Sequence[CrystalRecord]], Sequence[float]] | None = None,
) -> dict[str, float | None]:
    """Wasserstein-1 distances of density (g/cm^3), number of distinct elements and, with
    ``property_fn`` (records -> one number each), the property. Pass the *valid* generated set."""
    from scipy.stats import wasserstein_distance

    if len(generated) == 0 or len(reference) == 0:
        nan = float("nan")
        return {"wdist_density": nan, "wdist_num_elems": nan, "wdist_prop": None if property_fn is None else nan}
    out: dict[str, float | None] = {
        "wdist_density": float(wasserstein_distance([r.density for r in generated], [r.density for r in reference])),
        "wdist_num_elems": float(
            wasserstein_distance(
                [len(set(r.atomic_numbers.tolist())) for r in generated],
                [len(set(r.atomic_numbers.tolist())) for r in reference],
            )
        ),
        "wdist_prop": None,
    }
    if property_fn is not None:
        gen_p = np.asarray(property_fn(list(generated)), dtype=float)
        ref_p = np.asarray(property_fn(list(reference)), dtype=float)
        if gen_p.shape != (len(generated),) or ref_p.shape != (len(reference),):
            raise TDDataError(
                f"property_fn must return one number per crystal, got shapes {gen_p.shape} and {ref_p.shape} "
                f"for {len(generated)} and {len(reference)} crystals"
            )
        out["wdist_prop"] = float(wasserstein_distance(gen_p, ref_p))
    return out


# ---------------------------------------------------------------------------------------------- matching
def _matcher(tolerances: dict[str, float]):
    from pymatgen.analysis.structure_matcher import StructureMatcher

    return StructureMatcher(**tolerances)


def _match_key(matcher: Any, record: CrystalRecord, structure: Any) -> tuple[str, int]:
    """(reduced formula, sites of the reduced cell): two crystals StructureMatcher can fit share it.

    With ``attempt_supercell=False`` (the default, and MATCHER_TOLERANCES') ``fit`` reduces both structures to
    their primitive Niggli cells and returns no match when the two hold different numbers of sites (its site mask
    must be square). The reduction is StructureMatcher's own, cached by it, so the later ``fit`` calls reuse it.
    """
    if getattr(matcher, "_supercell", False) or getattr(matcher, "_subset", False):
        return record.formula, 0  # supercell or subset matching: sizes may differ, group by formula only
    reduced = matcher._get_reduced_structure(structure, matcher._primitive_cell, True)
    return record.formula, len(reduced)


def _match_sample(n: int, sample: int | None, seed: int) -> np.ndarray:
    """Indices (sorted) of the crystals uniqueness and novelty look at: all, or ``sample`` drawn at random."""
    if sample is None or sample >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=sample, replace=False))


def uniqueness(records: Sequence[CrystalRecord], *, tolerances: dict[str, float] | None = None) -> float:
    """Fraction of ``records`` that no earlier record matches (same reduced formula,
    ``StructureMatcher(ltol=0.2, stol=0.3, angle_tol=5)`` by default).

    Only crystals with the same reduced formula and the same number of sites in their reduced cells are compared
    (an exact filter: StructureMatcher matches no others), so a set of one element costs pairs per cell size, not
    per set; the pairs within a group are still all compared (n^2 / 2 ``fit`` calls).
    """
    if len(records) == 0:
        raise TDDataError("uniqueness needs at least one crystal, got an empty set")
    matcher = _matcher(tolerances or MATCHER_TOLERANCES)
    seen: dict[tuple[str, int], list[Any]] = {}
    unique = 0
    for rec in records:
        s = rec.to_structure()
        earlier = seen.setdefault(_match_key(matcher, rec, s), [])
        if not any(matcher.fit(e, s) for e in earlier):
            unique += 1
        earlier.append(s)  # compared against *every* earlier crystal, duplicates included
    return unique / len(records)


def novelty(
    records: Sequence[CrystalRecord], train: Sequence[CrystalRecord], *, tolerances: dict[str, float] | None = None
) -> float:
    """Fraction of ``records`` that no ``train`` crystal matches (same reduced formula, same tolerances as
    :func:`uniqueness`, the same exact filter on reduced-cell sizes). :func:`generation_metrics` passes the valid
    generated crystals."""
    if len(records) == 0:
        return float("nan")
    matcher = _matcher(tolerances or MATCHER_TOLERANCES)
    formulas = {r.formula for r in records}
    train_by_key: dict[tuple[str, int], list[Any]] = {}
    for t in train:
        if t.formula in formulas:  # a training crystal of another formula can match nothing
            ts = t.to_structure()
            train_by_key.setdefault(_match_key(matcher, t, ts), []).append(ts)
    known = {key[0] for key in train_by_key}
    novel = 0
    for rec in records:
        if rec.formula not in known:
            novel += 1
            continue
        s = rec.to_structure()
        novel += not any(matcher.fit(t, s) for t in train_by_key.get(_match_key(matcher, rec, s), ()))
    return novel / len(records)


def _wasserstein_sample(
    valid_records: list[CrystalRecord], n_wdist: int | None, seed: int
) -> tuple[list[CrystalRecord], str]:
    """(the valid crystals the Wasserstein distances use, a sentence saying which): ``n_wdist`` drawn at random
    without replacement, or all of them (``n_wdist`` None, or fewer valid crystals than that)."""
    n = len(valid_records)
    if n_wdist is None:
        return valid_records, f"all {n} valid crystals"
    if n <= n_wdist:
        return valid_records, f"all {n} valid crystals: not more than n_wdist={n_wdist}"
    picked = np.random.default_rng(seed).choice(n, size=n_wdist, replace=False)
    return [valid_records[i] for i in sorted(picked)], f"{n_wdist} of {n} valid crystals drawn at random (seed {seed})"


def _protocol_metrics(
    protocol: str,
    gen_fp: Fingerprints,
    ref_fp: Fingerprints,
    valid: np.ndarray,
    valid_records: list[CrystalRecord],
    reference: list[CrystalRecord],
    property_fn: Callable[[Sequence[CrystalRecord]], Sequence[float]] | None,
    *,
    cutoffs: tuple[float, float],
    comp_scaler: tuple[np.ndarray, np.ndarray] | None,
    coverage_valid_only: bool,
    n_wdist: int,
    seed: int,
) -> dict[str, Any]:
    """The keys of one protocol (coverage, joint coverage, Wasserstein distances and what they used)."""
    if comp_scaler is not None:
        scaler, scaling = comp_scaler, "given (comp_scaler)"
    elif protocol == "published":
        src = cdvae_composition_scaler_source()
        scaler = cdvae_composition_scaler()
        scaling = f"CDVAE's CompScalerMeans / CompScalerStds ({src['repository']} {src['path']} @ {src['commit']})"
    else:
        scaler = fit_composition_scaler(ref_fp.composition[np.asarray(ref_fp.ok, dtype=bool)])
        scaling = "the reference set's mean and standard deviation"
    struct_cutoff, comp_cutoff = cutoffs
    kw = {"struct_cutoff": struct_cutoff, "comp_cutoff": comp_cutoff, "comp_scaler": scaler}
    strict = coverage(gen_fp, ref_fp, generated_mask=valid, **kw)
    out: dict[str, Any] = dict(strict) if coverage_valid_only else coverage(gen_fp, ref_fp, **kw)
    out["cov_recall_valid_only"] = strict["cov_recall"]
    out["cov_precision_valid_only"] = strict["cov_precision"]
    used, sample = _wasserstein_sample(valid_records, n_wdist if protocol == "published" else None, seed)
    out.update(wasserstein_metrics(used, reference, property_fn))
    out["n_wdist"], out["wdist_sample"], out["comp_scaling"] = len(used), sample, scaling
    return out


# ---------------------------------------------------------------------------------------------- entry points
def generation_metrics(
    generated: Sequence[CrystalRecord],
    reference: Sequence[CrystalRecord],
    dataset: str = "perov_5",
    train: Sequence[CrystalRecord] | None = None,
    property_fn: Callable[[Sequence[CrystalRecord]], Sequence[float]] | None = None,
    *,
    protocol: str = "published",
    n_wdist: int = N_WDIST,
    seed: int = 0,
    cutoffs: tuple[float, float] | None = None,
    comp_scaler: tuple[np.ndarray, np.ndarray] | None = None,
    coverage_valid_only: bool = False,
    n_jobs: int | None = None,
    reference_cache: str | os.PathLike | None = None,
    structure_fingerprint: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    checks: GeneratedChecks | None = None,
    generated_cache: str | os.PathLike | None = None,
    match_sample: int | None = None,
) -> dict[str, Any]:
    """The CDVAE / DiffCSP generation metrics of ``generated`` against ``reference`` (the test set).

    Parameters
    ----------
    dataset:
        ``"perov_5"``, ``"carbon_24"`` or ``"mp_20"``: picks the coverage cutoffs
        (:data:`COVERAGE_CUTOFFS`) unless ``cutoffs=(structure, composition)`` is given.
    train:
        Training crystals for ``novelty`` (``None`` reports ``novelty: None``).
    property_fn:
        ``records -> one number each`` (a property predictor) for ``wdist_prop``.
    protocol:
        ``"published"`` (CDVAE's scaling constants, Wasserstein distances over ``n_wdist`` valid crystals
        drawn at random) or ``"legacy"`` (reference-set scaling, every valid crystal): which of
        :data:`PROTOCOLS` fills the top-level keys. Both are computed; ``result["protocols"]`` holds each one's.
    n_wdist, seed:
        The published protocol's Wasserstein sample size (default :data:`N_WDIST`) and its random seed.
    comp_scaler:
        ``(means, stds)`` for the Magpie vectors, replacing both protocols' scaling.
    coverage_valid_only:
        False (the reference code): every featurised generated crystal enters the coverage
        distances; True: only fully valid ones (``cov_*_valid_only`` are reported either way).
    n_jobs, reference_cache, structure_fingerprint:
        Passed to :func:`fingerprints` (``reference_cache`` for the reference set).
    generated_cache:
        :func:`fingerprints`' cache for the generated set (kept while it is computed: an interrupted run resumes);
        unused when ``checks`` is given.
    match_sample:
        ``uniqueness`` and ``novelty`` (StructureMatcher, pairs within a formula and cell size) over this many
        generated crystals drawn at random with ``seed`` (``None``: all). A set of one element (Carbon-24) puts all
        its crystals in few groups: 10,000 cost tens of millions of matches. No published table has these two
        numbers; ``n_match_sample`` says how many crystals they used.
    checks:
        :func:`check_generated` of ``generated``, when already computed (then not computed again).
    progress:
        ``progress(stage, done, total)`` as the work goes on, for progress bars; the stages are
        ``"validity"`` and ``"fingerprints (generated)"`` (per generated crystal), ``"fingerprints
        (reference)"`` (per reference crystal not in the cache) and ``"metrics"`` (coverage and
        Wasserstein of each protocol, uniqueness, novelty). It only watches: the numbers are the same without it.

    Returns
    -------
    dict with ``protocol``, ``n_generated``, ``n_valid``, ``struct_valid``, ``comp_valid``, ``valid``,
    ``uniqueness``, ``novelty``, ``n_featurisation_failed``, ``n_reference_featurisation_failed``,
    ``struct_cutoff``, ``comp_cutoff``, ``n_match_sample``; the chosen protocol's ``cov_recall``, ``cov_precision``,
    ``cov_recall_joint``, ``cov_precision_joint``, ``cov_recall_valid_only``, ``cov_precision_valid_only``,
    ``amsd_recall``, ``amsd_precision``, ``amcd_recall``, ``amcd_precision``, ``wdist_density``,
    ``wdist_num_elems``, ``wdist_prop``, ``n_wdist`` (crystals the Wasserstein distances used),
    ``wdist_sample`` (which, in words) and ``comp_scaling`` (which constants); and ``protocols``:
    ``{name: those protocol keys}`` for every name in :data:`PROTOCOLS`. Fractions are in [0, 1]
    (published tables use percent).
    """
    generated, reference = list(generated), list(reference)
    if protocol not in PROTOCOLS:
        raise TDDataError(f"protocol must be one of {list(PROTOCOLS)}, got {protocol!r}")
    if isinstance(n_wdist, bool) or not isinstance(n_wdist, (int, np.integer)) or n_wdist < 1:
        raise TDDataError(f"n_wdist (valid crystals for the Wasserstein distances) must be an integer >= 1, "
                          f"got {n_wdist!r}")  # fmt: skip
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TDDataError(f"seed must be an integer, got {seed!r}")
    if match_sample is not None and (
        isinstance(match_sample, bool) or not isinstance(match_sample, (int, np.integer)) or match_sample < 1
    ):
        raise TDDataError(f"match_sample must be None or an integer >= 1, got {match_sample!r}")
    if cutoffs is None:
        if dataset not in COVERAGE_CUTOFFS:
            raise TDDataError(f"dataset must be one of {sorted(COVERAGE_CUTOFFS)} (or give cutoffs), got {dataset!r}")
        cutoffs = COVERAGE_CUTOFFS[dataset]
    struct_cutoff, comp_cutoff = (float(c) for c in cutoffs)
    if not generated:
        raise TDDataError("generation_metrics needs at least one generated crystal, got 0")
    if not reference:
        raise TDDataError("generation_metrics needs at least one reference crystal, got 0")

    if checks is None:
        checks = check_generated(generated, n_jobs=n_jobs, structure_fingerprint=structure_fingerprint,
                                 progress=progress, cache=generated_cache)  # fmt: skip
    elif len(checks) != len(generated):
        raise TDDataError(f"checks must be those of the {len(generated)} generated crystals, got {len(checks)}")
    struct_ok, comp_ok, gen_fp = checks.struct_ok, checks.comp_ok, checks.fingerprints
    method = structure_fingerprint
    ref_fp = fingerprints(reference, n_jobs=n_jobs, cache=reference_cache, structure_fingerprint=method,
                          progress=_stage(progress, "fingerprints (reference)"))  # fmt: skip
    steps = _stage(progress, "metrics")
    n_steps = len(PROTOCOLS) + (2 if train is not None else 1)
    valid = checks.valid  # a failed fingerprint makes a crystal invalid, as in CDVAE
    n_ref_failed = int((~ref_fp.ok).sum())
    if n_ref_failed:
        msg = "%d of %d reference crystals could not be featurised; left out of coverage"
        log.warning(msg, n_ref_failed, len(reference))
    valid_records = [r for r, v in zip(generated, valid) if v]
    per_protocol: dict[str, dict[str, Any]] = {}
    for done, name in enumerate(PROTOCOLS, 1):
        per_protocol[name] = _protocol_metrics(
            name, gen_fp, ref_fp, valid, valid_records, reference, property_fn,
            cutoffs=(struct_cutoff, comp_cutoff), comp_scaler=comp_scaler,
            coverage_valid_only=coverage_valid_only, n_wdist=int(n_wdist), seed=int(seed),
        )  # fmt: skip
        if steps:
            steps(done, n_steps)
    out: dict[str, Any] = {
        "protocol": protocol,
        "n_generated": len(generated),
        "n_valid": int(valid.sum()),
        "struct_valid": float(struct_ok.mean()),
        "comp_valid": float(comp_ok.mean()),
        "valid": float(valid.mean()),
        **per_protocol[protocol],
    }
    picked = _match_sample(len(generated), match_sample, int(seed))
    out["n_match_sample"] = len(picked)
    out["uniqueness"] = uniqueness([generated[i] for i in picked])
    if steps:
        steps(len(PROTOCOLS) + 1, n_steps)
    picked_valid = [generated[i] for i in picked if valid[i]]
    out["novelty"] = None if train is None else novelty(picked_valid, list(train))
    if steps and train is not None:
        steps(n_steps, n_steps)
    out["n_featurisation_failed"] = int((~gen_fp.ok).sum())
    out["n_reference_featurisation_failed"] = n_ref_failed
    out["struct_cutoff"], out["comp_cutoff"] = struct_cutoff, comp_cutoff
    out["protocols"] = per_protocol
    return out


def structure_prediction_metrics(
    predicted: Sequence[CrystalRecord],
    targets: Sequence[CrystalRecord],
    *,
    stol: float = 0.5,
    angle_tol: float = 10.0,
    ltol: float = 0.3,
) -> dict[str, float | int]:
    """Match rate and RMS distance of predictions against their targets (pair i with i).

    A pair counts only if both crystals are valid (structure and composition); ``match_rate`` is
    matched pairs over all pairs, ``rms_dist`` the mean normalised RMS displacement over matched
    pairs (NaN when none matched). Also returns ``n``, ``n_valid_pairs`` and ``n_matched``.
    """
    predicted, targets = list(predicted), list(targets)
    if len(predicted) != len(targets):
        raise TDDataError(f"predicted and targets must have the same length, got {len(predicted)} and {len(targets)}")
    if not predicted:
        raise TDDataError("structure_prediction_metrics needs at least one pair, got 0")
    matcher = _matcher({"stol": stol, "angle_tol": angle_tol, "ltol": ltol})
    p_struct, p_comp = validity_flags(predicted)
    t_struct, t_comp = validity_flags(targets)
    pair_valid = p_struct & p_comp & t_struct & t_comp
    rms: list[float] = []
    for pred, target, ok in zip(predicted, targets, pair_valid):
        if not ok:
            continue
        try:
            result = matcher.get_rms_dist(pred.to_structure(), target.to_structure())
        except Exception as err:  # the reference code counts matcher errors as no match
            log.warning("StructureMatcher failed on %r vs %r: %s", pred, target, err)
            result = None
        if result is not None:
            rms.append(float(result[0]))
    return {
        "match_rate": len(rms) / len(predicted),
        "rms_dist": float(np.mean(rms)) if rms else float("nan"),
        "n": len(predicted),
        "n_valid_pairs": int(pair_valid.sum()),
        "n_matched": len(rms),
    }

"""How often the structure labeller is right, and whether its ``confidence`` means what it says.

:func:`labeller_accuracy` classifies every material of the reference table
(:mod:`td_physics.structure.reference`) with :func:`td_physics.classify.classify_structure`, at the
tabulated lattice and under small isotropic strains, and compares the label with the literature.
The report gives the accuracy, the share labelled with ``confidence >= threshold`` (coverage), the
accuracy among those, and the calibration: for each confidence value the variants produced, the
share of labels that were right. :func:`overlap_sweep` repeats the measurement for several
``max_band_overlap`` tolerances; its result is the packaged table ``td_physics/data/labeller_accuracy.json``
(written by ``scripts/labeller_accuracy.py --sweep``), which :func:`measured_accuracy` reads and which
``docs/labeller_accuracy.md`` and the pipeline report quote.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from td_physics.structure.reference import reference_materials, reference_structure, strained

__all__ = [
    "AccuracyRow",
    "AccuracyReport",
    "MeasuredAccuracy",
    "SWEEP_OVERLAPS",
    "labeller_accuracy",
    "measured_accuracy",
    "overlap_sweep",
]

#: the ``max_band_overlap`` tolerances (eV) of the packaged sweep
SWEEP_OVERLAPS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)
#: the packaged sweep (a table of :mod:`td_physics.data`)
SWEEP_TABLE = "labeller_accuracy"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AccuracyRow:
    """One material at one strain."""

    material: str
    strain: float
    expected: str
    expected_indices: tuple[int, ...] | None
    computed: str
    confidence: float
    z2_indices: tuple[int, ...] | None
    indirect_gap: float
    votes: dict[str, int]
    seconds: float
    error: str | None = None

    @property
    def correct(self) -> bool:
        """The class matches and, where the literature gives Z2 indices, the indices match too."""
        if self.error is not None or self.computed != self.expected:
            return False
        return self.expected_indices is None or tuple(self.z2_indices or ()) == self.expected_indices


@dataclass
class AccuracyReport:
    """Rows plus the summary figures."""

    rows: list[AccuracyRow]
    threshold: float = 0.8
    summary: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.summary = self._summarise()

    def _summarise(self) -> dict[str, Any]:
        base = [r for r in self.rows if r.strain == 0.0]
        confident = [r for r in base if r.error is None and r.confidence >= self.threshold]
        calibration = {}
        for conf in sorted({round(r.confidence, 3) for r in base if r.error is None}):
            group = [r for r in base if r.error is None and round(r.confidence, 3) == conf]
            calibration[f"{conf:.3f}"] = {"n": len(group), "correct": sum(r.correct for r in group)}
        unstable = sorted(
            {
                r.material
                for r in self.rows
                if r.strain != 0.0 and any(b.material == r.material and (b.computed != r.computed) for b in base)
            }
        )
        return {
            "materials": len(base),
            "refused": [r.material for r in base if r.error is not None],
            "accuracy": _share(sum(r.correct for r in base), len(base)),
            "coverage": _share(len(confident), len(base)),
            "confident": len(confident),
            "confident_correct": sum(r.correct for r in confident),
            "confident_accuracy": _share(sum(r.correct for r in confident), len(confident)),
            "threshold": self.threshold,
            "calibration": calibration,
            "changed_under_strain": unstable,
            "wrong": [r.material for r in base if not r.correct],
        }

    def markdown(self) -> str:
        """The per-material table (tabulated lattice) as Markdown, strain results in the last column."""
        head = "| material | expected | computed | confidence | variant votes | Z2 | indirect gap (eV) | +-1% strain |"
        lines = [head, "|---|---|---|---:|---|---|---:|---|"]
        for r in (r for r in self.rows if r.strain == 0.0):
            others = [o for o in self.rows if o.material == r.material and o.strain != 0.0]
            strain = ", ".join(f"{o.strain:+.0%}: {o.computed}" for o in others if o.computed != r.computed) or "same"
            votes = ", ".join(f"{k} {v}" for k, v in sorted(r.votes.items(), key=lambda kv: -kv[1]))
            z2 = _z2(r.z2_indices)
            mark = "" if r.correct else " **x**"
            computed = f"refused: {r.error}" if r.error else r.computed + mark
            gap = "" if r.error else f"{r.indirect_gap:.3f}"
            expected = r.expected + (f" {_z2(r.expected_indices)}" if r.expected_indices else "")
            lines.append(
                f"| {r.material} | {expected} | {computed} | {r.confidence:.2f} | {votes} | {z2} | {gap} | {strain} |"
            )
        return "\n".join(lines)


def _z2(indices: tuple[int, ...] | None) -> str:
    """``(1;000)`` for 3D indices, ``(1)`` for a 2D invariant, empty for none."""
    if indices is None:
        return ""
    head, rest = str(indices[0]), "".join(map(str, indices[1:]))
    return f"({head};{rest})" if rest else f"({head})"


def _share(num: int, den: int) -> float:
    return float(num) / den if den else float("nan")


def labeller_accuracy(
    materials: Iterable[str] | None = None,
    *,
    strains: Sequence[float] = (0.0,),
    threshold: float = 0.8,
    progress: Any = None,
    **classify_kwargs: Any,
) -> AccuracyReport:
    """Classify the reference materials and compare with the literature.

    ``materials`` defaults to the whole reference table; ``strains`` are isotropic strains (0.01 is
    +1%) applied to each lattice, ``0.0`` must be among them; ``classify_kwargs`` go to
    :func:`~td_physics.classify.classify_structure` (for example ``variants=``).
    ``progress`` wraps the iterable of work items (for example ``tqdm``). A material the labeller
    refuses is a row with its error, counted as wrong.
    """
    from td_physics.classify import classify_structure

    table = reference_materials()
    names = list(table) if materials is None else list(materials)
    if 0.0 not in strains:
        raise ValueError(f"strains must include 0.0 (the tabulated lattice), got {tuple(strains)}")
    work = [(name, float(s)) for name in names for s in strains]
    rows = []
    for name, strain in progress(work) if progress is not None else work:
        lattice, frac, species = reference_structure(name)
        expected = table[name].expected
        given = table[name].parameters.get("z2_indices")
        indices = None if given is None else tuple(int(v) for v in given)
        t0 = time.perf_counter()
        try:
            res = classify_structure(strained(lattice, strain), frac, species, **classify_kwargs)
        except Exception as err:  # noqa: BLE001 - a refusal is a result of the measurement
            rows.append(AccuracyRow(name, strain, expected, indices, "", 0.0, None, np.nan, {}, 0.0, str(err)))
            continue
        votes: dict[str, int] = {}
        for answer in res.variants:
            key = answer.topo_class + (
                "" if answer.z2_indices is None or answer.topo_class != "z2_ti" else _z2(answer.z2_indices)
            )
            votes[key] = votes.get(key, 0) + 1
        rows.append(
            AccuracyRow(
                name,
                strain,
                expected,
                indices,
                res.topo_class,
                float(res.confidence),
                res.z2_indices,
                float(res.indirect_gap),
                votes,
                time.perf_counter() - t0,
            )
        )
        logger.info("%s (strain %+.3f): %s (%.2f)", name, strain, res.topo_class, res.confidence)
    return AccuracyReport(rows, threshold=threshold)


@dataclass(frozen=True)
class MeasuredAccuracy:
    """The labeller on the whole reference table at one ``max_band_overlap`` (spin-orbit coupling on)."""

    max_band_overlap: float
    materials: int
    correct: int
    confident: int  # labels with confidence >= threshold
    confident_correct: int
    wrong: tuple[str, ...]  # every material labelled wrongly, confident or not, in table order

    @property
    def confident_accuracy(self) -> float:
        return _share(self.confident_correct, self.confident)


def overlap_sweep(
    overlaps: Sequence[float] = SWEEP_OVERLAPS, *, threshold: float = 0.8, progress: Any = None
) -> dict[str, Any]:
    """The labeller's accuracy on the whole reference table per ``max_band_overlap`` (eV), as the JSON table
    :func:`measured_accuracy` reads (default variants, spin-orbit coupling on, the tabulated lattices)."""
    from td_physics.exceptions import ModelDefinitionError

    if not overlaps or any(x < 0 for x in overlaps):
        raise ModelDefinitionError(f"overlaps must be one or more tolerances >= 0 eV, got {tuple(overlaps)}")
    points = []
    for overlap in overlaps:
        report = labeller_accuracy(threshold=threshold, progress=progress, max_band_overlap=float(overlap))
        s = report.summary
        points.append(
            {
                "max_band_overlap": float(overlap),
                "materials": s["materials"],
                "correct": s["materials"] - len(s["wrong"]),
                "confident": s["confident"],
                "confident_correct": s["confident_correct"],
                "wrong": s["wrong"],
            }
        )
    return {
        "about": "the structure labeller on td_physics/data/reference_materials.json per max_band_overlap (eV): "
        "labels right, labels with confidence >= threshold and those right, materials labelled wrongly",
        "command": "python scripts/labeller_accuracy.py --sweep",
        "spin_orbit": True,
        "threshold": threshold,
        "sweep": points,
    }


def measured_accuracy() -> dict[float, MeasuredAccuracy]:
    """The packaged sweep (``td_physics/data/labeller_accuracy.json``) by ``max_band_overlap`` (eV)."""
    from td_physics.structure.parameters import load_table

    return {
        float(p["max_band_overlap"]): MeasuredAccuracy(
            max_band_overlap=float(p["max_band_overlap"]),
            materials=int(p["materials"]),
            correct=int(p["correct"]),
            confident=int(p["confident"]),
            confident_correct=int(p["confident_correct"]),
            wrong=tuple(p["wrong"]),
        )
        for p in load_table(SWEEP_TABLE)["sweep"]
    }

"""Relabelling and confusion tables: is a generated crystal the class it was asked for?

:func:`relabel_candidates` re-runs the structure labeller (:func:`td_data.labels.label_records`) on the
candidates it can judge and writes the recomputed class next to the requested one; the others get
``recomputed_class = "not_checked"`` with the reason. :func:`consistency_report` and
:func:`confusion_table` tabulate the result (requested x recomputed counts, the share as requested).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from td_data.exceptions import EvaluationError
from td_data.record import CrystalRecord
from td_physics.classes import TOPO_CLASSES

__all__ = [
    "NOT_CHECKED",
    "REFUSAL_KINDS",
    "Relabelled",
    "confusion_table",
    "consistency_report",
    "refusal_kind",
    "relabel_candidates",
]

#: ``recomputed_class`` of a candidate the labeller did not judge
NOT_CHECKED = "not_checked"
#: the kinds of ``not_checked_reason``, in the order :func:`relabel_candidates` checks them
REFUSAL_KINDS = (
    "structurally invalid",
    "too many sites",
    "elements unknown to labeller",
    "beyond max_relabel",
    "labeller failed",
)


class Relabelled(NamedTuple):
    """``records`` (the candidates, input order, with the recomputed labels), ``report``
    (:func:`consistency_report`) and ``rows`` (one flat dict per candidate, for a table)."""

    records: list[CrystalRecord]
    report: dict[str, Any]
    rows: list[dict[str, Any]]


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise EvaluationError(f"{name} must be an integer >= 0, got {value!r}")
    return value


def relabel_candidates(
    candidates: Sequence[CrystalRecord],
    *,
    max_relabel: int,
    max_atoms: int,
    workers: int = 1,
    classify_options: Mapping[str, Any] | None = None,
    allowed_elements: Iterable[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Relabelled:
    """The candidates with their class recomputed by the structure labeller where it can judge them.

    Relabelled: structurally valid candidates (:func:`td_data.validity.structure_validity`) with at most
    ``max_atoms`` sites and only ``allowed_elements`` (default: those td-physics' tight-binding builder
    knows), at most ``max_relabel`` of them; those that passed the stability filter come first
    (``passed_stability`` not False; otherwise sampling order). Their labels are cleared before labelling,
    so the labeller computes the class instead of keeping a given one. ``classify_options`` go to
    :func:`td_physics.classify.classify_structure`; ``progress(done, total)`` is called as labels arrive.

    Every candidate gets the labels ``recomputed_class`` (a class, or :data:`NOT_CHECKED`),
    ``recomputed_confidence``, ``recomputed_indirect_gap``, ``not_checked_reason`` ("" when checked) and
    ``struct_valid``. Compositional validity (SMACT) is not checked here: it belongs to the generation
    metrics.
    """
    from td_data.labels import label_records
    from td_data.validity import structure_validity

    max_relabel = _positive("max_relabel", max_relabel)
    max_atoms = _positive("max_atoms", max_atoms)
    if allowed_elements is None:
        from td_physics.structure import supported_elements

        allowed_elements = supported_elements()
    allowed = set(allowed_elements)
    why: dict[str, str] = {}
    valid: dict[str, bool] = {}
    todo = []
    # candidates held back by the stability filter come last (a stable sort: sampling order otherwise)
    for rec in sorted(candidates, key=lambda r: r.labels.get("passed_stability") is False):
        s_ok, s_reason = structure_validity(rec)
        valid[rec.id] = s_ok
        if not s_ok:
            why[rec.id] = f"structurally invalid: {s_reason}"
        elif rec.num_atoms > max_atoms:
            why[rec.id] = f"{rec.num_atoms} sites > max_relabel_atoms={max_atoms}"
        elif not set(rec.species) <= allowed:
            why[rec.id] = f"elements {sorted(set(rec.species) - allowed)} unknown to the labeller"
        elif len(todo) >= max_relabel:
            why[rec.id] = f"beyond max_relabel={max_relabel}"
        else:
            todo.append(rec.replace(labels={}))  # no topo_class: the labeller must compute it
    options = dict(classify_options or {})
    result = label_records(todo, workers=workers, progress=progress, **options) if todo else None
    recomputed = {r.id: r.labels for r in result.records} if result else {}
    for q in result.quarantined if result else ():
        why[q.record_id] = f"labelling failed: {q.reason}"
    out, rows = [], []
    for rec in candidates:
        lab = recomputed.get(rec.id)
        extra = {
            "recomputed_class": lab["topo_class"] if lab else NOT_CHECKED,
            "recomputed_confidence": lab["confidence"] if lab else None,
            "recomputed_indirect_gap": lab["indirect_gap"] if lab else None,
            "not_checked_reason": "" if lab else why.get(rec.id, "labelling failed"),
            "struct_valid": valid[rec.id],
        }
        out.append(rec.with_labels(**extra))
        rows.append({"id": rec.id, "formula": rec.formula, "num_atoms": rec.num_atoms, **rec.properties,
                     **rec.labels, **extra})  # fmt: skip
    return Relabelled(out, consistency_report(out), rows)


def refusal_kind(reason: str) -> str:
    """The rule behind a ``not_checked_reason``: one of :data:`REFUSAL_KINDS`.

    >>> refusal_kind("7 sites > max_relabel_atoms=6"), refusal_kind("labelling failed: timeout")
    ('too many sites', 'labeller failed')
    """
    for prefix, kind in (("structurally invalid", REFUSAL_KINDS[0]), ("elements", REFUSAL_KINDS[2]),
                         ("beyond max_relabel", REFUSAL_KINDS[3]), ("labelling", REFUSAL_KINDS[4])):  # fmt: skip
        if reason.startswith(prefix):
            return kind
    return REFUSAL_KINDS[1] if "max_relabel_atoms" in reason else REFUSAL_KINDS[4]


def consistency_report(relabelled: Sequence[CrystalRecord]) -> dict[str, Any]:
    """Counts of relabelled candidates (:func:`relabel_candidates`): checked, as requested, the confusion.

    ``requested_class`` is that of the first candidate (the generate pipeline asks for one class per
    run, or none: unconditioned generation); ``confusion`` lists ``{"requested", "recomputed", "count"}`` of
    the checked candidates; ``n_as_requested`` and ``share_as_requested`` are None when no class was requested,
    the share also when none was checked.
    """
    checked = [r for r in relabelled if r.labels["recomputed_class"] != NOT_CHECKED]
    requested = relabelled[0].labels.get("requested_class") if relabelled else None
    confusion = Counter((r.labels.get("requested_class"), r.labels["recomputed_class"]) for r in checked)
    matches = sum(r.labels["recomputed_class"] == r.labels.get("requested_class") for r in checked)
    if requested is None:
        matches = None
    return {
        "requested_class": requested,
        "n_candidates": len(relabelled),
        "n_structurally_valid": sum(bool(r.labels["struct_valid"]) for r in relabelled),
        "n_checked": len(checked),
        "n_as_requested": matches,
        "share_as_requested": matches / len(checked) if checked and matches is not None else None,
        "confusion": [
            {"requested": a, "recomputed": b, "count": n}
            for (a, b), n in sorted(confusion.items(), key=lambda item: (str(item[0][0]), item[0][1]))
        ],
        "recomputed_class_counts": dict(Counter(r.labels["recomputed_class"] for r in relabelled)),
        "predicted_vs_recomputed_agree": sum(
            r.labels.get("predicted_class") == r.labels["recomputed_class"] for r in checked
        ),
    }


def confusion_table(
    relabelled: Mapping[str, Sequence[CrystalRecord]],
    classes: Sequence[str] = TOPO_CLASSES,
) -> dict[str, Any]:
    """Requested x recomputed counts over several requests: ``{requested class: relabelled candidates}``.

    Returns ``classes`` (the requested ones, in order), ``recomputed_classes``, ``confusion``
    (``{requested: {recomputed: count}}``, every recomputed class present), ``per_class`` (``n_records``,
    ``n_structurally_valid``, ``n_checked``, ``n_as_requested``, ``share_as_requested``, ``n_refused``,
    ``refusals`` by :func:`refusal_kind`, ``predicted_vs_recomputed_agree``) and the totals ``n_checked``,
    ``n_as_requested``, ``share_as_requested``, ``n_refused``, ``refusals``.

    >>> from td_data import CrystalRecord
    >>> rec = CrystalRecord([[4, 0, 0], [0, 4, 0], [0, 0, 4]], [[0, 0, 0]], ["Si"], id="a")
    >>> got = rec.with_labels(recomputed_class="trivial", not_checked_reason="", struct_valid=True)
    >>> table = confusion_table({"trivial": [got]})
    >>> table["confusion"]["trivial"]["trivial"], table["share_as_requested"]
    (1, 1.0)
    """
    columns = list(classes)
    matrix: dict[str, dict[str, int]] = {}
    per_class: dict[str, dict[str, Any]] = {}
    refusals_total: Counter = Counter()
    for cls, records in relabelled.items():
        row = matrix.setdefault(cls, dict.fromkeys(columns, 0))
        refusals = Counter(refusal_kind(r.labels["not_checked_reason"]) for r in records
                           if r.labels["recomputed_class"] == NOT_CHECKED)  # fmt: skip
        refusals_total.update(refusals)
        checked = [r for r in records if r.labels["recomputed_class"] != NOT_CHECKED]
        for r in checked:
            got = r.labels["recomputed_class"]
            row[got] = row.get(got, 0) + 1
        n_as = sum(r.labels["recomputed_class"] == cls for r in checked)
        per_class[cls] = {
            "n_records": len(records),
            "n_structurally_valid": sum(bool(r.labels.get("struct_valid")) for r in records),
            "n_checked": len(checked),
            "n_as_requested": n_as,
            "share_as_requested": n_as / len(checked) if checked else None,
            "n_refused": sum(refusals.values()),
            "refusals": dict(refusals),
            "predicted_vs_recomputed_agree": sum(
                r.labels.get("predicted_class") == r.labels["recomputed_class"] for r in checked
            ),
        }
    n_checked = sum(v["n_checked"] for v in per_class.values())
    n_as = sum(v["n_as_requested"] for v in per_class.values())
    return {
        "classes": list(relabelled),
        "recomputed_classes": columns,
        "confusion": matrix,
        "per_class": per_class,
        "n_checked": n_checked,
        "n_as_requested": n_as,
        "share_as_requested": n_as / n_checked if n_checked else None,
        "n_refused": sum(refusals_total.values()),
        "refusals": dict(refusals_total),
    }

"""Validation users can run: the canonical models against their published answers.

:func:`validate_known_models` computes each case with the library and compares it with the value
from the literature or a closed-form phase boundary. Where two independent methods exist (Wannier
centres and parities, Fukui-Hatsugai-Suzuki and the closed form) both appear.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from td_physics import models
from td_physics.bands import band_gap
from td_physics.fields import electric_field
from td_physics.invariants import parity_z2, weyl_nodes, z2_indices, z2_invariant
from td_physics.phase_diagram import phase_diagram

__all__ = [
    "ValidationRow",
    "ValidationReport",
    "validate_known_models",
    "KNOWN_MATERIALS",
    "KnownMaterialsTable",
    "validate_known_materials",
    "CASES",
    "haldane_closed_form",
    "qwz_closed_form",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ValidationRow:
    """One check: what the literature says, what we computed, whether they agree."""

    name: str
    expected: str
    computed: str
    agrees: bool
    reference: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "agrees", bool(self.agrees))


@dataclass(frozen=True)
class ValidationReport:
    rows: tuple[ValidationRow, ...]

    @property
    def all_agree(self) -> bool:
        return all(r.agrees for r in self.rows)

    def as_dicts(self) -> list[dict[str, Any]]:
        """JSON-ready rows."""
        return [{**r.__dict__, "agrees": bool(r.agrees)} for r in self.rows]

    def __str__(self) -> str:
        head = ("case", "expected", "computed", "agrees")
        body = [(r.name, r.expected, r.computed, "yes" if r.agrees else "NO") for r in self.rows]
        widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
        lines += [fmt.format(*row) for row in body]
        return "\n".join(lines)


def haldane_closed_form(m: np.ndarray, phi: np.ndarray, t2: float) -> np.ndarray:
    """Lower-band Chern number of :func:`td_physics.models.haldane`.

    ``-sign(sin phi)`` inside ``|m| < 3 sqrt(3) |t2 sin phi|``, zero outside.
    """
    return np.where(np.abs(m) < 3 * np.sqrt(3) * np.abs(t2 * np.sin(phi)), -np.sign(np.sin(phi)), 0).astype(int)


def qwz_closed_form(m: np.ndarray) -> np.ndarray:
    """Lower-band Chern number of :func:`td_physics.models.qwz`: -sign(m) for 0 < |m| < 2, else 0.

    From the degree of d/|d|: the Dirac points with d_z > 0 each add the sign of their Jacobian.
    """
    return np.where((np.abs(m) < 2) & (m != 0), -np.sign(m), 0).astype(int)


def _graphene() -> ValidationRow:
    gap = band_gap(models.graphene())
    k = gap.k_direct
    at_k = min(np.linalg.norm(np.mod(k - np.array(p) + 0.5, 1) - 0.5) for p in ((1 / 3, 2 / 3), (2 / 3, 1 / 3)))
    ok = gap.direct < 1e-6 and at_k < 1e-4
    return ValidationRow(
        "graphene",
        "gapless Dirac points at K",
        f"gap {gap.direct:.1e} eV at k={np.round(k, 4).tolist()}",
        ok,
        "Castro Neto et al., RMP 81, 109 (2009)",
    )


def _kane_mele() -> ValidationRow:
    m = models.kane_mele(lambda_so=0.06)
    wcc = z2_invariant(m)
    par = parity_z2(m)
    ok = wcc.value == 1 and par.value == 1 and wcc.converged
    return ValidationRow(
        "graphene + Kane-Mele SOC",
        "Z2 = 1",
        f"Z2 = {wcc.value} (WCC), {par.value} (parity)",
        ok,
        "Kane & Mele, PRL 95, 226801 (2005)",
    )


def _bi2se3() -> ValidationRow:
    res = z2_indices(models.bi2se3())
    par = res.details.get("parity")
    ok = res.value == (1, 0, 0, 0) and tuple(par) == (1, 0, 0, 0) and res.converged
    return ValidationRow(
        "Bi2Se3 (4-band)",
        "(1;000)",
        f"({res.value[0]};{''.join(map(str, res.value[1:]))}), parity {tuple(par)}",
        ok,
        "Zhang et al., Nature Phys. 5, 438 (2009)",
    )


def _hgte(d: float, expected: int) -> ValidationRow:
    res = z2_invariant(models.hgte_quantum_well(d))
    ok = res.value == expected and res.converged
    return ValidationRow(
        f"HgTe well {d} nm",
        f"Z2 = {expected}",
        f"Z2 = {res.value} (gap {res.min_gap * 1e3:.1f} meV)",
        ok,
        "Konig et al., Science 318, 766 (2007)",
    )


def _weyl() -> ValidationRow:
    res = weyl_nodes(models.weyl_two_band())
    chir = sorted(n.chirality for n in res.value)
    ok = chir == [-1, 1] and res.converged
    return ValidationRow(
        "Weyl semimetal (2-band)",
        "2 nodes, chirality +1 and -1",
        f"{len(chir)} nodes, chirality {chir}",
        ok,
        "Armitage, Mele, Vishwanath, RMP 90, 015001 (2018)",
    )


def _fkm() -> ValidationRow:
    plus = z2_indices(models.fu_kane_mele(dt=0.4)).value
    minus = z2_indices(models.fu_kane_mele(dt=-0.4)).value
    ok = plus == (1, 1, 1, 1) and minus == (0, 1, 1, 1)
    return ValidationRow(
        "Fu-Kane-Mele diamond",
        "(1;111) for dt>0, (0;111) for dt<0",
        f"{plus} / {minus}",
        ok,
        "Fu, Kane, Mele, PRL 98, 106803 (2007)",
    )


def silicene_critical_field(n_fields: int = 41) -> tuple[float, float]:
    """Critical perpendicular field of silicene from a Z2 scan: (computed, expected = lambda_SO / l), V/Angstrom."""
    base = models.silicene()
    expected = float(base.metadata["critical_field_V_per_A"])
    fields = np.linspace(0.0, 2.0 * expected, n_fields)
    diagram = phase_diagram(lambda e_z: electric_field(base, (0.0, 0.0, e_z)), {"e_z": fields}, "z2")
    z = diagram.values
    change = np.flatnonzero(np.diff(z) != 0)
    if len(change) != 1:
        return float("nan"), expected
    i = int(change[0])
    lo, hi = fields[i], fields[i + 1]
    for _ in range(30):  # bisection on the gap-closing field between the last 1 and the first 0
        mid = 0.5 * (lo + hi)
        if z2_invariant(electric_field(base, (0.0, 0.0, mid))).value == z[i]:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi), expected


def _silicene() -> ValidationRow:
    got, expected = silicene_critical_field()
    ok = bool(np.isfinite(got) and abs(got - expected) < 0.01 * expected)
    return ValidationRow(
        "silicene critical field",
        f"E_c = {expected * 1e3:.2f} mV/A (lambda_SO/l)",
        f"E_c = {got * 1e3:.2f} mV/A",
        ok,
        "Ezawa, New J. Phys. 14, 033003 (2012)",
    )


def _haldane_diagram(n: int = 13) -> ValidationRow:
    t2 = 0.15
    ms = np.linspace(-1.0, 1.0, n) * 3 * np.sqrt(3) * t2 * 1.2
    phis = np.linspace(-np.pi, np.pi, n + 2)[1:-1]
    pd = phase_diagram(models.haldane, {"m": ms, "phi": phis}, "chern", fixed={"t2": t2})
    expected = haldane_closed_form(ms[:, None], phis[None, :], t2)
    edge = np.abs(np.abs(ms[:, None]) - 3 * np.sqrt(3) * np.abs(t2 * np.sin(phis[None, :]))) < 1e-3
    match = (pd.values == expected) | edge
    return ValidationRow(
        "Haldane phase diagram",
        "C = -sign(sin phi) iff |M| < 3 sqrt3 |t2 sin phi|",
        f"{int(match.sum())}/{match.size} grid points agree",
        bool(match.all()),
        "Haldane, PRL 61, 2015 (1988)",
    )


def _qwz_diagram() -> ValidationRow:
    ms = np.linspace(-3.0, 3.0, 25) + 0.01
    pd = phase_diagram(models.qwz, {"m": ms}, "chern")
    match = pd.values == qwz_closed_form(ms)
    return ValidationRow(
        "QWZ phase diagram",
        "C = -sign(m) for 0 < |m| < 2, else 0",
        f"{int(match.sum())}/{match.size} agree",
        bool(match.all()),
        "Qi, Wu, Zhang, PRB 74, 085308 (2006)",
    )


CASES: dict[str, Callable[[], ValidationRow]] = {
    "graphene": _graphene,
    "kane_mele": _kane_mele,
    "bi2se3": _bi2se3,
    "hgte_7.0nm": lambda: _hgte(7.0, 1),
    "hgte_5.5nm": lambda: _hgte(5.5, 0),
    "weyl_semimetal": _weyl,
    "fu_kane_mele": _fkm,
    "silicene_critical_field": _silicene,
    "haldane_phase_diagram": _haldane_diagram,
    "qwz_phase_diagram": _qwz_diagram,
}


def validate_known_models(cases: Sequence[str] | None = None) -> ValidationReport:
    """Run the known-answer checks (all of :data:`CASES` by default) and return the table.

    Examples
    --------
    >>> report = validate_known_models(["graphene", "bi2se3"])
    >>> report.all_agree
    True
    """
    names = list(CASES) if cases is None else list(cases)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise ValueError(f"unknown validation cases {unknown}; valid: {sorted(CASES)}")
    rows = []
    for name in names:
        row = CASES[name]()
        logger.info("validation %s: %s", name, "agrees" if row.agrees else "DISAGREES")
        rows.append(row)
    return ValidationReport(tuple(rows))


# ---------------------------------------------------------------------------------------------- known materials
def _reference_structure_check(name: str, **kwargs: Any) -> Callable[[], tuple[str, str, bool]]:
    """A structure-level check: the labeller on a literature reference crystal against its expected label."""

    def check() -> tuple[str, str, bool]:
        from td_physics.classify import classify_structure
        from td_physics.structure.reference import reference_materials, reference_structure

        material = reference_materials()[name]
        expected = material.expected
        given = material.parameters.get("z2_indices")
        res = classify_structure(*reference_structure(name), **kwargs)
        right = res.topo_class == expected and (given is None or tuple(res.z2_indices or ()) == tuple(given))
        indices = "" if res.z2_indices is None or res.topo_class != "z2_ti" else f" {tuple(res.z2_indices)}"
        computed = f"{res.topo_class}{indices} (confidence {res.confidence:.2f})"
        return expected + ("" if given is None else f" {tuple(given)}"), computed, right

    return check


#: The user guide's material names -> (model-level cases of :data:`CASES`, structure-level check or None).
#: Structure-level checks run :func:`td_physics.classify.classify_structure` on the material's crystal
#: structure from the literature reference table (:mod:`td_physics.structure.reference`); model-only cases
#: (quantum wells, toy models) have none.
KNOWN_MATERIALS: dict[str, tuple[tuple[str, ...], Callable[[], tuple[str, str, bool]] | None]] = {
    "graphene": (("graphene",), _reference_structure_check("graphene")),
    "bi2se3": (("bi2se3",), _reference_structure_check("Bi2Se3")),
    "hgte_qw": (("hgte_7.0nm", "hgte_5.5nm"), None),
    "weyl_semimetal": (("weyl_semimetal",), None),
    "kane_mele": (("kane_mele",), None),
    "haldane": (("haldane_phase_diagram",), None),
    "qwz": (("qwz_phase_diagram",), None),
    "fu_kane_mele": (("fu_kane_mele",), None),
    "silicene": (("silicene_critical_field",), None),
}

NOT_APPLICABLE = "not applicable"


@dataclass(frozen=True)
class KnownMaterialsTable:
    """Rows of expected versus computed, one per model-level case (and the structure-level answer)."""

    rows: tuple[dict[str, Any], ...]

    @property
    def all_agree(self) -> bool:
        """True when every model-level and every applicable structure-level check agrees."""
        return all(r["agrees"] and r["structure_agrees"] in (True, None) for r in self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def as_dicts(self) -> list[dict[str, Any]]:
        """JSON-ready rows."""
        return [dict(r) for r in self.rows]

    def to_markdown(self) -> str:
        """A Markdown table: material, case, expected, computed, agrees, structure, reference."""
        head = ("material", "case", "expected", "computed", "agrees", "structure", "reference")
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.rows:
            cells = (r["material"], r["case"], r["expected"], r["computed"], "yes" if r["agrees"] else "NO",
                     r["structure"], r["reference"])  # fmt: skip
            lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_markdown()


def validate_known_materials(materials: Sequence[str] | None = None) -> KnownMaterialsTable:
    """Expected versus computed physics of known materials (the user guide's ``validate_known_materials``).

    Each name of :data:`KNOWN_MATERIALS` maps to model-level checks of :data:`CASES` (closed forms and
    published invariants); ``structure`` holds the structure labeller's answer on a crystal structure of
    the material where it applies, ``"not applicable"`` otherwise. ``None`` runs every material.

    Examples
    --------
    >>> table = validate_known_materials(["graphene", "bi2se3", "hgte_qw", "weyl_semimetal"])
    >>> [(r["material"], r["case"], r["agrees"]) for r in table]  # doctest: +NORMALIZE_WHITESPACE
    [('graphene', 'graphene', True), ('bi2se3', 'bi2se3', True), ('hgte_qw', 'hgte_7.0nm', True),
     ('hgte_qw', 'hgte_5.5nm', True), ('weyl_semimetal', 'weyl_semimetal', True)]
    >>> table.rows[0]["structure"]
    'expected semimetal_or_metal, computed semimetal_or_metal (confidence 1.00)'
    >>> table.rows[1]["structure"]
    'expected z2_ti (1, 0, 0, 0), computed z2_ti (1, 0, 0, 0) (confidence 1.00)'
    >>> table.rows[2]["structure"]
    'not applicable'
    >>> table.all_agree
    True
    >>> print(table.to_markdown().splitlines()[0])
    | material | case | expected | computed | agrees | structure | reference |
    """
    names = list(KNOWN_MATERIALS) if materials is None else [str(m).lower() for m in materials]
    unknown = [n for n in names if n not in KNOWN_MATERIALS]
    if unknown:
        raise ValueError(f"unknown materials {unknown}; valid: {sorted(KNOWN_MATERIALS)}")
    rows = []
    for name in names:
        cases, structure_check = KNOWN_MATERIALS[name]
        structure, structure_ok = NOT_APPLICABLE, None
        if structure_check is not None:
            try:
                expected, computed, structure_ok = structure_check()
                structure = f"expected {expected}, computed {computed}"
            except Exception as err:  # noqa: BLE001 - a failing labeller is reported in the table, not raised
                structure, structure_ok = f"labeller failed: {err}", False
        for case in cases:
            row = CASES[case]()
            logger.info("known material %s (%s): %s", name, case, "agrees" if row.agrees else "DISAGREES")
            rows.append({"material": name, "case": case, "description": row.name, "expected": row.expected,
                         "computed": row.computed, "agrees": bool(row.agrees), "reference": row.reference,
                         "structure": structure, "structure_agrees": structure_ok})  # fmt: skip
    return KnownMaterialsTable(tuple(rows))

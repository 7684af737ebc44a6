"""Parameter sets of the structure labeller: variants, data tables, distance laws and cutoffs.

Every number used here is read from the JSON tables in :mod:`td_physics.data`, each with its
reference or, for computed tables, its method, generator and validation; nothing is fitted. The tables:

* ``hopping_coefficients.json``: Harrison's universal coefficients ``eta`` of
  ``V = eta hbar^2 / (m d^2)`` (``hbar^2/m = 7.62 eV A^2``), the 1980 set ("Electronic Structure
  and the Properties of Solids") and the revised 1999 set ("Elementary Electronic Structure").
* ``term_values_scrlda.json`` (the default): scalar-relativistic LDA valence s and p eigenvalues of
  the neutral atoms, computed by :mod:`td_physics.atomic` (``scripts/make_atomic_tables.py``) with
  NIST SRD 141's conventions and validated against NIST's published ScRLDA/RLDA/LDA eigenvalues to
  about 1e-6 Hartree. It includes the Darwin and mass-velocity shifts of heavy elements (Bi 6s:
  -3.1 eV against the non-relativistic value) and, for groups 1, 2, 11 and 12, the unoccupied
  valence p level in the atom's own potential.
* ``term_values_nist_lda.json``: NIST SRD 141 non-relativistic LDA eigenvalues (Kotochigova et al.,
  Phys. Rev. A 55, 191 (1997)); H and the p-block H..Bi; kept for comparison.
* ``term_values_harrison1980.json``: Harrison's 1980 Solid State Table term values
  (Herman-Skillman); a subset of the p-block plus Be, Mg, Zn, Cd, Hg; no Bi or Tl.
* ``valence_electrons.json``: valence s and p electron counts (filled d10 shells are core).
* ``spin_orbit_p.json``: p-shell spin-orbit constants ``lambda`` (``H_SO = lambda L.S``), two thirds
  of the p1/2-p3/2 splitting of the Dirac-LDA atom from the same solver (Bi 1.30 eV, Pb 0.99 eV,
  Te 0.54 eV, Se 0.26 eV); the solver reproduces NIST's RLDA p splittings of Ne..Rn to 2e-4.

Honest limits. The on-site energies are free-atom eigenvalues: they carry no crystal-field or
charge-transfer correction, and the universal couplings are nearest-neighbour-like (a cutoff in
units of the shortest bond). Band energies of such models are good to a few tenths of an eV at
best, often worse (see ``docs/labeller_accuracy.md``). ``sp3s*`` (Vogl et al. 1983) is refused: no
universal s* on-site energy was sourced, and the excited s level of the atom is not Vogl's fitted s*.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

from td_physics.exceptions import ModelDefinitionError, StructureError, UnsupportedElementError

__all__ = [
    "Variant",
    "DEFAULT_VARIANTS",
    "load_table",
    "element_symbol",
    "supported_elements",
    "hopping_integrals",
    "cutoff_weight",
]


_HOPPING_SETS = ("harrison1980", "harrison1999")
_DISTANCE_LAWS = ("inverse_square", "exponential")
_TERM_TABLES = ("scrlda", "nist_lda", "harrison1980")
_BASES = ("sp3",)


@dataclass(frozen=True)
class Variant:
    """One equally defensible choice of universal parameters.

    Attributes
    ----------
    hopping:
        Harrison coefficient set: ``"harrison1980"`` (-1.40, 1.84, 3.24, -0.81) or
        ``"harrison1999"`` (-1.32, 1.42, 2.22, -0.63).
    distance_law:
        ``"inverse_square"``: Harrison's ``V = eta hbar^2/(m d^2)`` at the actual bond length
        ``d``. ``"exponential"``: ``V = eta hbar^2/(m d_ref^2) exp(-decay (d/d_ref - 1))``, equal
        to Harrison's value at the reference nearest-neighbour distance ``d_ref`` of the bond and
        falling off faster beyond it (``decay=3`` against the ``2`` of the power law).
    decay:
        Exponent of the exponential law (dimensionless, per ``d/d_ref``); a model choice, not data.
    cutoff:
        ``(inner, outer)`` in units of ``d_ref``: full strength below ``inner``, a cosine taper to
        zero at ``outer``. ``d_ref = max(d_nn(i), d_nn(j))``, with ``d_nn`` an atom's shortest
        bond, so a bond counts when it is (nearly) nearest-neighbour for one of its atoms.
    term_values:
        On-site table: ``"scrlda"`` (computed scalar-relativistic LDA; H, groups 1, 2, 11-17 up to
        Bi), ``"nist_lda"`` (non-relativistic NIST SRD 141; H and the p-block) or ``"harrison1980"``.
    basis:
        Orbital basis; only ``"sp3"`` (one s and three p per atom; s only for H) is supported.
    spin_orbit:
        Whether the atomic ``lambda L.S`` term is added on p shells (needs the constants).
    """

    hopping: str = "harrison1980"  # Harrison's 1980 Solid State Table, the most quoted set
    distance_law: str = "inverse_square"  # Harrison's own d^-2 law
    decay: float = 3.0  # only used by the exponential law
    cutoff: tuple[float, float] = (1.15, 1.35)  # keeps first neighbours, drops second (1.63 d_nn in diamond)
    term_values: str = "scrlda"  # scalar-relativistic: the Bi/Pb/Tl 6s levels need it
    basis: str = "sp3"  # sp3s* refused: no sourced s* on-site energy
    spin_orbit: bool = True  # atomic lambda L.S on p shells, from spin_orbit_p.json

    def __post_init__(self) -> None:
        checks = (
            ("hopping", self.hopping, _HOPPING_SETS),
            ("distance_law", self.distance_law, _DISTANCE_LAWS),
            ("term_values", self.term_values, _TERM_TABLES),
        )
        for field_name, value, allowed in checks:
            if value not in allowed:
                raise ModelDefinitionError(f"Variant.{field_name} must be one of {allowed}, got {value!r}")
        if self.basis not in _BASES:
            raise ModelDefinitionError(
                f"Variant.basis must be one of {_BASES}, got {self.basis!r} (sp3s* needs an s* on-site energy "
                "that no sourced table provides)"
            )
        inner, outer = (float(x) for x in self.cutoff)
        if not 1.0 <= inner < outer:
            raise ModelDefinitionError(
                f"Variant.cutoff must be (inner, outer) with 1 <= inner < outer, got {self.cutoff}"
            )
        if not np.isfinite(self.decay) or self.decay <= 0:
            raise ModelDefinitionError(f"Variant.decay must be a positive number, got {self.decay!r}")
        object.__setattr__(self, "cutoff", (inner, outer))

    @property
    def name(self) -> str:
        """A short unique label, for example ``"harrison1980-d2-lda-c1.15-1.35-so"``."""
        law = "d2" if self.distance_law == "inverse_square" else f"exp{self.decay:g}"
        terms = {"scrlda": "srlda", "nist_lda": "lda", "harrison1980": "hs1980"}[self.term_values]
        so = "so" if self.spin_orbit else "noso"
        return f"{self.hopping}-{law}-{terms}-c{self.cutoff[0]:g}-{self.cutoff[1]:g}-{so}"

    def as_dict(self) -> dict[str, Any]:
        """The fields and the name, JSON-friendly."""
        out = asdict(self)
        out["cutoff"] = list(self.cutoff)
        out["name"] = self.name
        return out


DEFAULT_VARIANTS: tuple[Variant, ...] = (
    Variant("harrison1980", "inverse_square"),
    Variant("harrison1999", "inverse_square"),
    Variant("harrison1980", "exponential"),
    Variant("harrison1999", "exponential"),
    Variant("harrison1980", "inverse_square", cutoff=(1.25, 1.45)),
    Variant("harrison1999", "inverse_square", cutoff=(1.25, 1.45)),
)
"""Six variants: two coefficient sets x two distance laws, plus a wider cutoff for each set."""


@cache
def load_table(name: str) -> dict[str, Any]:
    """A data table of :mod:`td_physics.data` by file stem (``"term_values_nist_lda"``...)."""
    path = resources.files("td_physics") / "data" / f"{name}.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ModelDefinitionError(f"no parameter table named {name!r} in td_physics/data") from exc
    return json.loads(text)


@cache
def _symbols_by_z() -> dict[int, str]:
    return {int(v["Z"]): k for k, v in load_table("valence_electrons")["elements"].items()}


_KNOWN_SYMBOLS = (
    "H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br Kr "
    "Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb "
    "Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn"
).split()


def supported_elements() -> tuple[str, ...]:
    """Symbols of every element the builder accepts, by atomic number (``valence_electrons.json``).

    Each has an on-site energy in the default term-value table and, with a p shell, a spin-orbit
    constant (a test of this package holds the tables to that).
    """
    return tuple(_symbols_by_z()[z] for z in sorted(_symbols_by_z()))


def element_symbol(number: Any) -> str:
    """The symbol of a supported element given its atomic number or symbol.

    Raises :class:`UnsupportedElementError` naming the element when it has no valence data.
    """
    supported = _symbols_by_z()
    if isinstance(number, str):
        symbol = number.strip().capitalize()
        if symbol in supported.values():
            return symbol
        label = symbol
    else:
        try:
            z = int(number)
        except (TypeError, ValueError) as exc:
            raise StructureError(f"atomic numbers must be integers or element symbols, got {number!r}") from exc
        if z in supported:
            return supported[z]
        label = f"{_KNOWN_SYMBOLS[z - 1]} (Z={z})" if 1 <= z <= len(_KNOWN_SYMBOLS) else f"Z={z}"
    raise UnsupportedElementError(
        f"unsupported element {label}: td_physics.structure builds s/p-valence main-group elements only "
        f"({', '.join(sorted(supported.values(), key=lambda s: _KNOWN_SYMBOLS.index(s)))})"
    )


def term_values(symbol: str, table: str) -> tuple[float, float | None]:
    """``(eps_s, eps_p)`` in eV from ``table``; ``eps_p`` is ``None`` for s-only atoms (H)."""
    entry = load_table(f"term_values_{table}")["elements"].get(symbol)
    if entry is None:
        raise UnsupportedElementError(
            f"unsupported element {symbol}: the term-value table {table!r} has no sourced value for it"
        )
    return float(entry["eps_s"]), (float(entry["eps_p"]) if "eps_p" in entry else None)


def valence_counts(symbol: str) -> tuple[int, int]:
    """Electrons in the valence s and p shells."""
    entry = load_table("valence_electrons")["elements"][symbol]
    return int(entry["n_s"]), int(entry["n_p"])


def spin_orbit_constant(symbol: str, overrides: dict[str, float] | None) -> float:
    """``lambda_p`` (eV) from ``overrides`` or the table; raises if neither has it."""
    if overrides and symbol in overrides:
        return float(overrides[symbol])
    entry = load_table("spin_orbit_p")["elements"].get(symbol)
    if entry is None:
        raise UnsupportedElementError(
            f"unsupported element {symbol} with spin_orbit=True: no sourced p-shell spin-orbit constant in "
            f"td_physics/data/spin_orbit_p.json; pass spin_orbit_constants={{'{symbol}': lambda_eV}} or use a "
            "Variant with spin_orbit=False"
        )
    return float(entry["lambda"])


def hopping_integrals(variant: Variant, d: np.ndarray, d_ref: np.ndarray) -> np.ndarray:
    """Two-centre integrals ``(V_sss, V_sps, V_pps, V_ppp)`` (eV) per bond, shape (nbond, 4).

    ``d`` and ``d_ref`` are bond lengths and reference nearest-neighbour distances (Angstrom).
    """
    table = load_table("hopping_coefficients")
    coeff = table["sets"][variant.hopping]
    eta = np.array([coeff["sss"], coeff["sps"], coeff["pps"], coeff["ppp"]])
    scale = float(table["hbar2_over_m_eV_A2"])
    if variant.distance_law == "inverse_square":
        radial = scale / d**2
    else:
        radial = scale / d_ref**2 * np.exp(-variant.decay * (d / d_ref - 1.0))
    return radial[:, None] * eta[None, :]


def cutoff_weight(ratio: np.ndarray, cutoff: tuple[float, float]) -> np.ndarray:
    """Smooth cosine cutoff of ``ratio = d / d_ref``: 1 below ``inner``, 0 above ``outer``."""
    inner, outer = cutoff
    x = np.clip((ratio - inner) / (outer - inner), 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * x))


def references(variant: Variant) -> list[str]:
    """The citations of every table a variant uses."""
    out = [load_table("hopping_coefficients")["references"][variant.hopping]]
    out += list(load_table(f"term_values_{variant.term_values}")["references"].values())
    out += list(load_table("valence_electrons")["references"].values())
    if variant.spin_orbit:
        out += list(load_table("spin_orbit_p")["references"].values())
    return out

"""Topological class of a crystal structure, with an honest confidence.

:func:`classify_structure` builds the universal-parameter tight-binding model of
:mod:`td_physics.structure` once per variant of an ensemble of equally defensible choices
(parameter set, distance law, neighbour cutoff), classifies each, and reports the majority class
with ``confidence`` = the share of variants that agree with it. A structure whose variants
disagree is flagged (``flagged=True``), not guessed: band inversions such as Bi2Se3's depend on
details that no universal table settles (DESIGN.md, "honest limits").

Per variant:

0. a one-element crystal of an element with fewer than four valence electrons (groups 1, 2, 11,
   12 and 13 but boron; hydrogen is molecular) is ``semimetal_or_metal`` by the 8 - N rule
   (:func:`electron_deficient_element`), whatever its bands;
1. the gap above the filling (``n_electrons`` bands, spinful) on a Gamma-centred mesh of fixed
   k-point density (:func:`td_physics.bands.density_mesh`, 0.25 1/Angstrom spacing, so a
   supercell gets proportionally fewer points), reduced to its irreducible points, batched over
   k and over all variants in ``eigvalsh``, then with the band extrema searched between the mesh
   points (:func:`td_physics.bands.refine_band_edges`); no gap (indirect gap <= ``metal_gap``) is
   ``semimetal_or_metal``, and so is an odd electron count without magnetic moments (Kramers);
2. with magnetic moments: the Chern number (2D cells; the k_3 = 0 plane of 3D cells) gives
   ``chern`` or ``trivial``;
3. without: Fu-Kane parities at the TRIMs when the crystal has inversion (the operator from
   spglib's symmetry operation, :func:`td_physics.structure.inversion_operator`), Wannier-centre
   flow on the TRIM planes otherwise; any nonzero index (strong or weak) is ``z2_ti``, except
   in a model with full spin-rotation symmetry (no spin-orbit coupling), where an odd band
   inversion means a gap closing that the mesh missed (nodal line or Dirac point):
   ``semimetal_or_metal``, with the method marked ``+no-soc``.

The variants are built together from one neighbour list; variants whose Hamiltonians coincide
(to 1e-12 eV, common for crystals with nearest-neighbour bonds only) are computed once and
reported each under its own name.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from td_physics.bands import (
    GAP_KPOINT_DENSITY,
    band_edges,
    batched_band_gaps,
    density_mesh,
    irreducible_mesh,
    refine_band_edges,
    uniform_mesh,
)
from td_physics.classes import TOPO_CLASSES
from td_physics.exceptions import KPointError, ModelDefinitionError
from td_physics.invariants import ChernOptions, Z2Options, chern_number, parity_z2, z2_indices, z2_invariant
from td_physics.invariants.parity import batched_parity_deltas, parity_result, trim_points
from td_physics.model import TightBindingModel

__all__ = [
    "TOPO_CLASSES",
    "WCC_OPTIONS",
    "CHERN_OPTIONS",
    "VariantAnswer",
    "StructureClassification",
    "classify_structure",
    "classify_model",
    "structure_arrays",
    "spin_rotation_symmetric",
    "electron_deficient_element",
]

logger = logging.getLogger(__name__)

WCC_OPTIONS = Z2Options(n_pump=6, max_string=384, max_pump=101)
"""Resolution of the labeller's Wannier-centre flow (crystals without inversion). Each TRIM plane
starts with 6 pumping lines over [0, 1/2] and 24 points per Wilson loop, and is refined only where
:func:`td_physics.invariants.z2_indices` finds the flow ambiguous: lines are inserted up to 101,
strings are doubled up to 384 points. The acceptance criteria (``margin_tol``, ``pos_tol``,
``gap_tol``) are the library's defaults; only the starting and largest resolutions differ. How
this setting compares with the defaults is measured in ``benchmarks/README.md``."""

CHERN_OPTIONS = ChernOptions(mesh=16, max_mesh=64)
"""Resolution of the labeller's Chern numbers (crystals with magnetic moments): a 16 x 16 mesh,
doubled up to 64 x 64; the acceptance criteria are the library's defaults."""

EDGE_CANDIDATES = 2
"""Mesh points per band edge (the highest of the top valence band, the lowest of the bottom
conduction band) from which :func:`td_physics.bands.refine_band_edges` searches between the mesh
points."""

COVALENT_EXCEPTIONS = frozenset({"H", "B"})
"""Elements with fewer than four valence electrons that the 8 - N rule does not make metals: hydrogen
(one bond closes its shell: molecular H2) and boron (three-centre bonds in its icosahedra)."""


@dataclass(frozen=True)
class VariantAnswer:
    """The answer of one parameter variant."""

    variant: str
    topo_class: str
    z2_indices: tuple[int, ...] | None
    chern: int | None
    direct_gap: float
    indirect_gap: float
    method: str
    converged: bool


@dataclass(frozen=True)
class StructureClassification:
    """Consensus of the variants: class, invariants of the majority, gaps (eV) and confidence in [0, 1]."""

    topo_class: str
    z2_indices: tuple[int, ...] | None
    chern: int | None
    direct_gap: float
    indirect_gap: float
    confidence: float
    flagged: bool
    variants: tuple[VariantAnswer, ...]
    labeller: str = field(default="td-physics universal tight binding")

    def as_labels(self) -> dict[str, Any]:
        """JSON-ready labels for a crystal record."""
        from td_physics import __version__

        return {
            "topo_class": self.topo_class,
            "z2_indices": list(self.z2_indices) if self.z2_indices is not None else None,
            "chern": self.chern,
            "confidence": self.confidence,
            "flagged": self.flagged,
            "direct_gap": self.direct_gap,
            "indirect_gap": self.indirect_gap,
            "label_source": f"{self.labeller} {__version__}",
            "variants": {v.variant: v.topo_class for v in self.variants},
        }


def structure_arrays(structure: Any, frac_coords: Any = None, atomic_numbers: Any = None) -> tuple:
    """(lattice, frac_coords, atomic_numbers) from arrays, a CrystalRecord or a pymatgen Structure.

    Duck-typed, so td-physics needs neither td-data nor pymatgen: a record has ``lattice`` as an
    array, a pymatgen Structure has ``lattice.matrix``.
    """
    if frac_coords is not None and atomic_numbers is not None:
        return np.asarray(structure, dtype=float), np.asarray(frac_coords, dtype=float), np.asarray(atomic_numbers)
    lattice = getattr(structure, "lattice", None)
    if lattice is None or not hasattr(structure, "frac_coords"):
        raise ModelDefinitionError(
            "give (lattice, frac_coords, atomic_numbers) arrays, a CrystalRecord or a pymatgen Structure; "
            f"got {type(structure).__name__}"
        )
    matrix = getattr(lattice, "matrix", lattice)
    numbers = getattr(structure, "atomic_numbers", None)
    return np.asarray(matrix, dtype=float), np.asarray(structure.frac_coords, dtype=float), np.asarray(numbers)


def primitive_cell(
    lattice: np.ndarray, frac: np.ndarray, numbers: np.ndarray, symprec: float = 1e-3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The primitive cell of a crystal given as a supercell (spglib), or the input when it is primitive,
    in a Niggli-reduced basis when the given basis is badly skewed (:func:`_reduced_basis`).

    The classification of a supercell folds its bands: a band overlap between two k-points that
    fold onto one becomes a crossing, so a supercell could read as a metal where its primitive cell
    has separated bands. Classifying the primitive cell makes the answer independent of the cell.
    """
    import warnings

    import spglib

    from td_physics.structure.parameters import element_symbol, load_table

    table = load_table("valence_electrons")["elements"]
    z = np.array([table[element_symbol(n)]["Z"] for n in np.atleast_1d(numbers)], dtype=np.intc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        found = spglib.standardize_cell((lattice, frac, z), to_primitive=True, no_idealize=True, symprec=symprec)
    if found is not None and len(found[2]) < len(z):
        prim_lattice, prim_frac, prim_z = found
        by_z = {int(zz): n for zz, n in zip(z, np.atleast_1d(numbers))}
        logger.info("classifying the %d-atom primitive cell of a %d-atom cell", len(prim_z), len(z))
        lattice, frac = np.asarray(prim_lattice), np.asarray(prim_frac)
        numbers = np.array([by_z[int(zz)] for zz in prim_z])
    return _reduced_basis(lattice, frac, numbers, symprec)


def _reduced_basis(
    lattice: np.ndarray, frac: np.ndarray, numbers: np.ndarray, symprec: float, factor: float = 1.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Niggli-reduced basis of a badly skewed cell (longest vector ``factor`` times the reduced one's).

    A skewed basis of the same lattice (generated cells can have 40 A vectors around a 45 A^3
    volume) makes the neighbour search and the k-point density mesh tens of times larger for the
    same crystal. Well-formed cells keep their basis, so their weak Z2 indices stay in the user's
    reciprocal basis.
    """
    import warnings

    import spglib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        reduced = spglib.niggli_reduce(np.asarray(lattice, dtype=float), eps=symprec)
    if reduced is None:
        return lattice, frac, numbers
    longest, longest_reduced = np.linalg.norm(lattice, axis=1).max(), np.linalg.norm(reduced, axis=1).max()
    if longest <= factor * longest_reduced:
        return lattice, frac, numbers
    transform = np.rint(reduced @ np.linalg.inv(lattice))  # reduced = T @ lattice, T unimodular
    logger.info("classifying the Niggli-reduced basis (longest vector %.1f A, not %.1f A)", longest_reduced, longest)
    return transform @ lattice, np.mod(frac @ np.linalg.inv(transform), 1.0), numbers


def spin_rotation_symmetric(model: TightBindingModel, tol: float = 1e-10) -> bool:
    """True when a spinful model has full SU(2) spin symmetry: no spin-orbit coupling, no exchange.

    That is, every block ``<i s|H|j s'>`` is ``delta_{s s'} h_ij`` with the same ``h`` for both spins,
    on site and in every hopping matrix.
    """
    if not model.spinful:
        return False
    for matrix in (model.onsite, *model.hoppings.values()):
        up, down = matrix[0::2, 0::2], matrix[1::2, 1::2]
        if np.abs(matrix[0::2, 1::2]).max(initial=0.0) > tol or np.abs(matrix[1::2, 0::2]).max(initial=0.0) > tol:
            return False
        if np.abs(up - down).max(initial=0.0) > tol:
            return False
    return True


def electron_deficient_element(atomic_numbers: Any) -> str | None:
    """The element of a one-element crystal that the 8 - N rule makes a metal, or ``None``.

    An element with ``N`` valence s and p electrons closes its shell in a covalent solid with
    ``8 - N`` two-electron bonds per atom, one electron of its own in each, which needs
    ``8 - N <= N``: ``N >= 4`` (Pearson's 8 - N rule, W. B. Pearson, Acta Cryst. 17, 1 (1964)).
    With fewer (groups 1, 2, 11, 12 and 13, filled d shells counted as core) no arrangement of the
    atoms closes the shell, and the element is a metal (or a semimetal) in every structure; the
    exceptions are :data:`COVALENT_EXCEPTIONS`. The universal s/p model does not know this: in
    low-coordinated or distorted cells its s and p bands of such an element can open hybridisation
    gaps, some with inverted parities (fcc Ca: a 0.2 eV gap on the default mesh, an overlap on a
    dense one; Rb in the NaCrS2 cell: a 0.3 eV overlap, within ``max_band_overlap``). Harrison's
    universal parameters are made for covalent and ionic solids; simple metals are outside them.
    ``atomic_numbers`` holds numbers or symbols.

    >>> electron_deficient_element([20]), electron_deficient_element(["Sb", "Sb"]), electron_deficient_element([5])
    ('Ca', None, None)
    """
    from td_physics.structure.parameters import element_symbol, valence_counts

    symbols = {element_symbol(z) for z in np.atleast_1d(atomic_numbers)}
    if len(symbols) != 1:
        return None
    (symbol,) = symbols
    return symbol if sum(valence_counts(symbol)) < 4 and symbol not in COVALENT_EXCEPTIONS else None


def _label(
    indices: tuple[int, ...], method: str, converged: bool, spin_symmetric: bool
) -> tuple[str, tuple[int, ...], None, str, bool]:
    """The class of a time-reversal-invariant gapped variant from its Z2 indices."""
    if any(indices) and spin_symmetric:
        # With SU(2) spin symmetry (no spin-orbit coupling) an odd band inversion cannot open a gap:
        # with inversion and time reversal it forces nodal lines in 3D and Dirac points in 2D (Fang,
        # Chen, Kee, Fu, PRB 92, 081201 (2015); Kim et al., PRL 115, 036806 (2015)). The mesh missed
        # the closing, so the crystal is a semimetal, not a Z2 insulator.
        return "semimetal_or_metal", indices, None, f"{method}+no-soc", converged
    return ("z2_ti" if any(indices) else "trivial"), indices, None, method, converged


def _as_indices(value: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in (value if isinstance(value, tuple) else (value,)))


def _classify_gapped(
    model: TightBindingModel, nocc: int, magnetic: bool
) -> tuple[str, tuple[int, ...] | None, int | None, str, bool]:
    if magnetic:
        res = chern_number(model, nocc, options=CHERN_OPTIONS)
        return ("chern" if res.value else "trivial"), None, int(res.value), "chern", res.converged
    if model.inversion is not None:  # set by the builder from spglib's inversion operation
        res = parity_z2(model, nocc, model.inversion)
        method = "parity"
    elif model.dim_k == 3:
        res = z2_indices(model, nocc, method="wcc", options=WCC_OPTIONS)
        method = "wcc"
    else:
        res = z2_invariant(model, nocc, method="wcc", options=WCC_OPTIONS)
        method = "wcc"
    indices = _as_indices(res.value)
    spin_symmetric = bool(any(indices)) and spin_rotation_symmetric(model)
    return _label(indices, method, res.converged, spin_symmetric)


def _stack_spin_symmetric(stack: Any, v: int, tol: float = 1e-10) -> bool:
    """:func:`spin_rotation_symmetric` of a stack's variant: its hoppings are ``t_R x 1_2`` by construction."""
    onsite = stack.onsite[v]
    up, down = onsite[0::2, 0::2], onsite[1::2, 1::2]
    mixing = max(np.abs(onsite[0::2, 1::2]).max(initial=0.0), np.abs(onsite[1::2, 0::2]).max(initial=0.0))
    return bool(mixing <= tol and np.abs(up - down).max(initial=0.0) <= tol)


def _classify_stack(
    stack: Any,
    names: Sequence[str],
    lattice: np.ndarray,
    frac: np.ndarray,
    numbers: np.ndarray,
    *,
    magnetic: bool,
    electric_field: float | None,
    gap_mesh: int | Sequence[int] | None,
    gap_density: float,
    metal_gap: float,
    max_band_overlap: float = 0.0,
    edge_levels: int | None = None,
    electron_deficient: bool = False,
) -> list[VariantAnswer]:
    """The answers of the variants of one :class:`~td_physics.structure.builder.VariantStack`.

    Variants with the same Hamiltonian are computed once. Gaps: one batched ``eigvalsh`` per
    chunk of k-points for all distinct variants, then the band extrema of the variants that the
    mesh leaves insulating searched between the mesh points (``edge_levels`` zoom levels of
    :func:`~td_physics.bands.refine_band_edges`, one variant at a time; ``None``: the mesh only);
    ``electron_deficient``: every variant is a metal (:func:`electron_deficient_element`), its gaps are
    the mesh's; parities: the even and odd blocks of ``H`` at the
    eight TRIMs of all gapped variants with inversion, in batched ``eigvalsh`` calls
    (:func:`~td_physics.invariants.parity.batched_parity_deltas`); Wannier-centre flow or Chern number
    per gapped variant.
    """
    nocc, norb, dim_k = stack.n_electrons, stack.norb, stack.dim_k
    if not 0 < nocc < norb:
        return [VariantAnswer(n, "semimetal_or_metal", None, None, 0.0, -np.inf, "filling", True) for n in names]
    same = stack.duplicates()
    reps = sorted(set(same))
    mesh = density_mesh(lattice, gap_density, dim_k) if gap_mesh is None else gap_mesh
    if not magnetic and electric_field is None and dim_k == 3:
        # the variants share the crystal's symmetry: the irreducible points of the mesh suffice
        kpoints = irreducible_mesh(lattice, frac, numbers, mesh)
    else:
        kpoints = uniform_mesh(mesh, dim_k)

    def no_gap(d: float, i: float) -> bool:  # closed, or bands that overlap by more than the tolerance
        overlapping = max_band_overlap > 0 and d > metal_gap and -max_band_overlap <= i <= metal_gap
        return i <= metal_gap and not overlapping

    edges = band_edges(lambda k: stack.hamiltonian(k, reps), kpoints, nocc, len(reps), norb, n_best=EDGE_CANDIDATES)
    metal_by_count = bool(nocc % 2 and not magnetic)  # Kramers: a band is half filled
    if edge_levels and not (metal_by_count or electron_deficient):
        spacing = 1.0 / np.broadcast_to(np.asarray(mesh, dtype=float), (dim_k,))  # reduced mesh step per axis
        insulating = [m for m, (d, i) in enumerate(zip(edges.direct, edges.indirect)) if not no_gap(d, i)]
        edges = refine_band_edges(
            lambda k, m: stack.hamiltonian(k, [reps[m]])[0], edges, nocc, spacing, models=insulating, levels=edge_levels
        )
    found: dict[int, tuple[str, tuple[int, ...] | None, int | None, float, float, str, bool]] = {}
    gapped = []
    for r, d, i in zip(reps, edges.direct, edges.indirect):
        if electron_deficient:
            found[r] = ("semimetal_or_metal", None, None, float(d), float(i), "electron-deficient", True)
        elif metal_by_count or no_gap(d, i):
            found[r] = ("semimetal_or_metal", None, None, float(d), float(i), "gap", True)
        else:
            gapped.append((r, float(d), float(i)))
    with_parity = [g for g in gapped if not magnetic and stack.inversion[g[0]] is not None]
    if with_parity:  # Fu-Kane parities of every gapped variant with inversion: one eigh at the TRIMs
        op = stack.inversion[with_parity[0][0]]
        trims = trim_points(dim_k)
        idx = [g[0] for g in with_parity]
        deltas, gaps = batched_parity_deltas(stack.hamiltonian(trims, idx), trims, op, nocc, method="blocks")
        for (r, d, i), delta, gap in zip(with_parity, deltas, gaps):
            res = parity_result(delta, trims, float(gap))
            indices = _as_indices(res.value)
            cls, z2, chern, method, ok = _label(
                indices, "parity", res.converged, bool(any(indices)) and _stack_spin_symmetric(stack, r)
            )
            found[r] = (cls, z2, chern, d, i, method, ok)
    for r, d, i in gapped:
        if r not in found:  # magnetic (Chern number) or without inversion (Wannier-centre flow)
            cls, z2, chern, method, ok = _classify_gapped(stack.model(r), nocc, magnetic)
            found[r] = (cls, z2, chern, d, i, method, ok)
    for r, d, i in gapped:  # bands separated at every k, overlapping in energy within the tolerance
        if i <= metal_gap and found[r][0] != "semimetal_or_metal":
            cls, z2, chern, d, i, method, ok = found[r]
            found[r] = (cls, z2, chern, d, i, method + "+overlap", ok)
    return [VariantAnswer(name, *found[same[v]]) for v, name in enumerate(names)]


def classify_structure(
    structure: Any,
    frac_coords: Any = None,
    atomic_numbers: Any = None,
    *,
    variants: Sequence[Any] | None = None,
    magnetic_moments: Any = None,
    electric_field: float | None = None,
    dimension: int | None = None,
    spin_orbit_constants: dict[str, float] | None = None,
    gap_mesh: int | Sequence[int] | None = None,
    gap_density: float = GAP_KPOINT_DENSITY,
    metal_gap: float = 1e-3,
    max_band_overlap: float = 0.5,
    reduce_to_primitive: bool = True,
    edge_levels: int | None = 4,
    valence_rule: bool = True,
) -> StructureClassification:
    """Classify a crystal as ``trivial``, ``z2_ti``, ``chern`` or ``semimetal_or_metal``.

    ``structure`` is a (3, 3) lattice (rows, Angstrom) with ``frac_coords`` and
    ``atomic_numbers``, or a CrystalRecord, or a pymatgen Structure. ``variants`` defaults to
    :data:`td_physics.structure.DEFAULT_VARIANTS`. ``metal_gap`` (eV) is the smallest gap counted
    as open.

    Band overlap. A variant is a ``semimetal_or_metal`` when the electron count is odd (without
    moments), when the direct gap at the filling closes somewhere on the mesh, or when the bands,
    though separated at every k, overlap in energy (negative indirect gap) by more than
    ``max_band_overlap`` (eV). An overlap within that tolerance is below the energy resolution of
    a universal-parameter model (its gaps are off by tenths of an eV to eV, see
    ``docs/labeller_accuracy.md``): the occupied bands are still a well-defined set, their Z2 or
    Chern invariant is computed and reported as the class, the method gets ``+overlap`` and
    ``indirect_gap`` stays negative, so such labels can be filtered. ``max_band_overlap=0`` is the
    strict reading (any overlap is a metal); with it the Bi2Se3 family comes out as semimetals with
    Z2-odd valence bands. The default 0.5 eV was chosen from a sweep over the reference table (no
    held-out set exists), see ``docs/labeller_accuracy.md``.

    Metals. The gap and the overlap are those of the band extrema, searched between the mesh
    points (``edge_levels`` zoom levels around the two best mesh points of each band edge,
    :func:`td_physics.bands.refine_band_edges`; ``None`` reads them off the mesh alone): a coarse
    mesh misses the sharp peak of a band at an anticrossing and can turn a metal's overlap into a
    gap. With ``valence_rule`` (default) a one-element crystal of an element with fewer than four
    valence electrons is a metal by the 8 - N rule (:func:`electron_deficient_element`), with
    method ``electron-deficient``; ``valence_rule=False`` leaves it to its bands.

    Cell. With ``reduce_to_primitive`` (default) a supercell is replaced by its primitive cell
    (:func:`primitive_cell`, spglib) unless moments, a field or a 2D cell are given: the class does
    not depend on the cell, and the Z2 indices then refer to the primitive cell's reciprocal basis.
    A badly skewed basis (longest vector more than 1.5 times the Niggli-reduced one's) is replaced
    by the Niggli basis, with the same consequence for the indices.

    The gap is searched on a Gamma-centred mesh of ``gap_density``
    points per 1/Angstrom along each reciprocal vector (:func:`td_physics.bands.density_mesh`:
    8x8x8 for the 5-atom cell of Bi2Se3, 4x4x8 for its 2x2x1 supercell), reduced to its
    irreducible points when the models share the crystal's symmetry; ``gap_mesh`` (points per
    periodic axis, an int or one per axis) overrides it. ``spin_orbit_constants`` ({symbol:
    lambda_p in eV}) are passed to the builder and take precedence over the shipped table (see
    :mod:`td_physics.structure.parameters`).

    The variants are built together from one neighbour list
    (:func:`td_physics.structure.builder.tight_binding_variants`), variants with identical
    Hamiltonians are computed once, the gaps of all variants come from batched ``eigvalsh``
    calls and their parities from the parity blocks of ``H`` at the TRIMs, batched likewise.
    """
    from td_physics import structure as tb
    from td_physics.structure.builder import variant_stacks

    if edge_levels is not None and (
        isinstance(edge_levels, bool) or not isinstance(edge_levels, int) or edge_levels < 1
    ):
        raise KPointError(
            f"edge_levels must be a whole number of zoom levels >= 1 or None (the mesh only), got {edge_levels!r}"
        )
    lattice, frac, numbers = structure_arrays(structure, frac_coords, atomic_numbers)
    variants = list(variants) if variants is not None else list(tb.DEFAULT_VARIANTS)
    magnetic = magnetic_moments is not None and bool(np.any(np.asarray(magnetic_moments) != 0))
    if reduce_to_primitive and magnetic_moments is None and electric_field is None and dimension != 2:
        lattice, frac, numbers = primitive_cell(lattice, frac, numbers)
    # the inversion operation belongs to the crystal: found once (spglib) and checked on every variant
    groups = variant_stacks(
        lattice,
        frac,
        numbers,
        variants,
        magnetic_moments=magnetic_moments,
        electric_field=electric_field,
        dimension=dimension,
        spin_orbit_constants=spin_orbit_constants,
        find_inversion=electric_field is None,
    )
    deficient = valence_rule and electron_deficient_element(numbers) is not None
    answers: list[VariantAnswer | None] = [None] * len(variants)
    for idx, stack in groups:
        names = [getattr(variants[n], "name", str(variants[n])) for n in idx]
        group_answers = _classify_stack(
            stack,
            names,
            lattice,
            frac,
            numbers,
            magnetic=magnetic,
            electric_field=electric_field,
            gap_mesh=gap_mesh,
            gap_density=gap_density,
            metal_gap=metal_gap,
            max_band_overlap=max_band_overlap,
            edge_levels=edge_levels,
            electron_deficient=deficient,
        )
        for n, answer in zip(idx, group_answers):
            answers[n] = answer
    return _consensus([a for a in answers if a is not None])


def _answer_key(a: VariantAnswer) -> tuple:
    """What two variants must share to agree: the class, and for Z2 and Chern classes the invariant."""
    if a.topo_class == "z2_ti":
        return (a.topo_class, a.z2_indices)
    if a.topo_class == "chern":
        return (a.topo_class, a.chern)
    return (a.topo_class,)


def _consensus(answers: list[VariantAnswer]) -> StructureClassification:
    """The majority answer; a variant agrees when its class and invariant (Z2 indices, Chern number) match.

    Ties are broken towards the more conservative answer: metal, then trivial, then Z2 (weak indices
    before strong, i.e. the smaller index tuple), then Chern.
    """
    votes = Counter(_answer_key(a) for a in answers)
    top = max(votes.values())
    order = {"semimetal_or_metal": 0, "trivial": 1, "z2_ti": 2, "chern": 3}

    def rank(key: tuple) -> tuple:
        rest = key[1] if len(key) > 1 and key[1] is not None else ()
        return (order[key[0]], tuple(rest) if isinstance(rest, tuple) else (abs(rest),))

    winner = min((k for k, n in votes.items() if n == top), key=rank)
    majority = [a for a in answers if _answer_key(a) == winner]
    confidence = top / len(answers)
    result = StructureClassification(
        topo_class=winner[0],
        z2_indices=majority[0].z2_indices,
        chern=majority[0].chern,
        direct_gap=float(np.median([a.direct_gap for a in majority])),
        indirect_gap=float(np.median([a.indirect_gap for a in majority])),
        confidence=float(confidence),
        flagged=confidence < 1.0 or not all(a.converged for a in majority),
        variants=tuple(answers),
    )
    if result.flagged:
        logger.info("classification flagged: %s", {a.variant: _answer_key(a) for a in answers})
    return result


def classify_model(
    model: TightBindingModel,
    occupied: int | None = None,
    *,
    magnetic: bool | None = None,
    gap_mesh: int | Sequence[int] = 8,
    metal_gap: float = 1e-3,
    source: str = "user model",
) -> StructureClassification:
    """Classify a model the user trusts (for example a Wannier90 ``_hr.dat`` from DFT).

    One model, so ``confidence`` is 1 when the calculation converged and 0.5 otherwise; the
    label records ``source`` (say "wannier90:Bi2Se3_hr.dat"). ``magnetic`` defaults to "the
    model breaks time reversal". Such labels take precedence over the universal-table ensemble.
    """
    nocc = model.check_occupied(occupied)
    magnetic = (not model.is_time_reversal_symmetric()) if magnetic is None else magnetic
    direct, indirect = batched_band_gaps([model], nocc, gap_mesh)
    if indirect[0] <= metal_gap or (nocc % 2 and not magnetic):
        answer = VariantAnswer(
            source, "semimetal_or_metal", None, None, float(direct[0]), float(indirect[0]), "gap", True
        )
    else:
        cls, z2, chern, method, ok = _classify_gapped(model, nocc, magnetic)
        answer = VariantAnswer(source, cls, z2, chern, float(direct[0]), float(indirect[0]), method, ok)
    return StructureClassification(
        topo_class=answer.topo_class,
        z2_indices=answer.z2_indices,
        chern=answer.chern,
        direct_gap=answer.direct_gap,
        indirect_gap=answer.indirect_gap,
        confidence=1.0 if answer.converged else 0.5,
        flagged=not answer.converged,
        variants=(answer,),
        labeller=source,
    )

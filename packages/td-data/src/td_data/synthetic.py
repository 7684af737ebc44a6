"""The project's embedded default data: crystals built from real prototypes.

Nothing is downloaded; the crystal generator uses only data files that pymatgen ships.

:class:`SyntheticDatasetGenerator` (3D crystals and 2D sheets)

* **Prototypes**: the AFLOW Library of Crystallographic Prototypes as shipped with
  :mod:`pymatgen.analysis.prototypes` (``aflow_prototypes.json.gz``, 288 ordered structures with
  their AFLOW labels, Pearson symbols and mineral names; Mehl et al., Comput. Mater. Sci. 136,
  S1 (2017)). We read that file directly (plain JSON, so loading takes ~0.1 s rather than the
  ~3 s that deserialising its ``StructureNL`` objects costs), keep structures with at most
  ``max_atoms`` sites, leave out eleven molecular solids (N2, O2, Cl2, I2, CO, NH3, cubane, CNCl),
  whose intermolecular gaps make no sense after substitution, and ten entries whose stored
  geometry disagrees with their own volume by more than a factor 2 (see :func:`load_prototypes`),
  and Niggli-reduce each cell once. With ``max_atoms = 20`` that leaves 228 prototypes.
* **Substitution**: each element of a prototype (one AFLOW letter, A, B, C, ...; all its Wyckoff
  sites together, so the AFLOW label stays exact) is replaced by a species drawn from the
  data-mined substitution probabilities of Hautier et al., Inorg. Chem. 50, 656 (2011)
  (:class:`td_data.substitution.Substituter`; the seed chemistry is the prototype's own elements
  with a charge-balanced choice of the table's oxidation states). A candidate is kept only if its
  elements are distinct, allowed, and pass :func:`td_data.validity.composition_validity` (SMACT
  charge neutrality plus the Pauling test).
* **Volume**: the data-mined lattice scaling (DLS) of pymatgen's ``DLSVolumePredictor`` without its
  clamp to 0.5-1.5 times the prototype volume (:func:`td_data.substitution.dls_length_scale`; the
  clamp is meant for structures already at a sensible volume, which a prototype with substituted
  elements is not). On the library's own compositions the predicted volume has a median ratio of
  about 1 to the AFLOW volume (checked in the tests).
* A random symmetric strain with principal strains at most ``max_strain`` follows, and the record
  is kept only if it passes :func:`td_data.validity.structure_validity`.
* **2D sheets** (``fraction_2d`` of the samples): graphene and h-BN (planar honeycomb),
  silicene, germanene and stanene (buckled honeycomb; a and buckling of the td_physics models,
  from Ezawa's tables) and rock-salt (001) monolayers of PbTe, SnTe, PbSe and PbS (checkerboard
  square lattice, a = a_bulk / sqrt 2), as 3D cells with 15-20 Angstrom of vacuum along c and the
  label ``{"dimensionality": 2}``. These are idealised sheets, not AFLOW prototypes.

The tight-binding data sets (random Haldane, Kane-Mele and BHZ models) are in :mod:`td_physics.datasets`.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import logging
import math
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from td_data.exceptions import TDDataError
from td_data.record import ELEMENTS, CrystalRecord, atomic_number
from td_data.substitution import Substituter, dls_length_scale
from td_data.validity import composition_validity, structure_validity

__all__ = [
    "Prototype",
    "load_prototypes",
    "SyntheticDatasetGenerator",
    "diversity_report",
    "DEFAULT_ELEMENTS",
    "MOLECULAR_PROTOTYPES",
]

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]

_NOBLE_GASES = {"He", "Ne", "Ar", "Kr", "Xe", "Rn"}
#: Elements substitution may introduce: H..Bi without the noble gases and the radioactive Tc and Pm.
DEFAULT_ELEMENTS: tuple[str, ...] = tuple(s for s in ELEMENTS[1:84] if s not in _NOBLE_GASES and s not in {"Tc", "Pm"})
#: (AFLOW label, the prototype's reduced formula) of the molecular solids left out by default. The
#: label alone is ambiguous: A_oC8_64_f is also alpha-Ga and black P, A_hR2_166_c rhombohedral C.
MOLECULAR_PROTOTYPES: frozenset[tuple[str, str]] = frozenset(
    {
        ("A_tP16_138_j", "Cl2"),
        ("A_hR2_166_c", "O2"),
        ("A_mC4_12_i", "O2"),
        ("A_cP8_205_c", "N2"),
        ("A_cP8_198_2a", "N2"),
        ("A_tP4_136_f", "N2"),
        ("AB_cP8_198_a_a", "CO"),
        ("A3B_cP16_198_b_a", "H3N"),
        ("AB_hR16_148_cf_cf", "HC"),
        ("ABC_oP6_59_a_a_a", "CNCl"),
        ("A_oC8_64_f", "I"),
    }
)

# 2D sheets: (name, elements of sites 0 and 1, lattice constant a (A), vertical separation of the two
# sites (A)). Honeycomb: graphene a = 2.46 A, h-BN 2.50 A. Buckled: a and 2 * l of td_physics'
# silicene / germanene / stanene (Ezawa, New J. Phys. 14, 033003 (2012); J. Phys. Soc. Jpn. 84,
# 121003 (2015)). Square: rock-salt (001) monolayers, a = a_bulk / sqrt 2 with the room-temperature
# bulk constants 6.46 (PbTe), 6.32 (SnTe), 6.12 (PbSe), 5.94 (PbS) A.
_SHEETS: tuple[tuple[str, tuple[str, str], float, float], ...] = (
    ("2D-honeycomb", ("C", "C"), 2.46, 0.0),
    ("2D-honeycomb", ("B", "N"), 2.50, 0.0),
    ("2D-buckled-honeycomb", ("Si", "Si"), 3.86, 0.46),
    ("2D-buckled-honeycomb", ("Ge", "Ge"), 4.02, 0.66),
    ("2D-buckled-honeycomb", ("Sn", "Sn"), 4.70, 0.80),
    ("2D-square", ("Pb", "Te"), 6.46 / math.sqrt(2), 0.0),
    ("2D-square", ("Sn", "Te"), 6.32 / math.sqrt(2), 0.0),
    ("2D-square", ("Pb", "Se"), 6.12 / math.sqrt(2), 0.0),
    ("2D-square", ("Pb", "S"), 5.94 / math.sqrt(2), 0.0),
)


# ---------------------------------------------------------------------------------------------- prototypes
@dataclass(frozen=True, eq=False)
class Prototype:
    """One AFLOW prototype structure, Niggli-reduced.

    ``elements`` are the prototype's own elements, one per AFLOW letter (Wyckoff-distinct species);
    ``site_species`` (N,) indexes them for each site; ``lattice`` (3, 3) rows in Angstrom;
    ``frac_coords`` (N, 3).
    """

    label: str
    formula: str
    mineral: str
    lattice: np.ndarray
    frac_coords: np.ndarray
    site_species: np.ndarray
    elements: tuple[str, ...]

    @property
    def counts(self) -> tuple[int, ...]:
        return tuple(int(c) for c in np.bincount(self.site_species, minlength=len(self.elements)))


def _library_path() -> Path:
    """The AFLOW prototype file that pymatgen ships (location moved in pymatgen 2025)."""
    spec = importlib.util.find_spec("pymatgen.analysis")
    if spec is None or not spec.submodule_search_locations:
        raise TDDataError("pymatgen.analysis was not found: install pymatgen to use the prototype library")
    base = Path(next(iter(spec.submodule_search_locations)))
    for rel in ("prototypes/aflow_prototypes.json.gz", "aflow_prototypes.json.gz", "aflow_prototypes.json"):
        if (base / rel).is_file():
            return base / rel
    raise TDDataError(f"pymatgen's aflow_prototypes.json(.gz) was not found under {base}")


@lru_cache(maxsize=1)
def _library() -> tuple[Prototype, ...]:
    from pymatgen.core import Structure

    path = _library_path()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        entries = json.load(fh)
    out = []
    for entry in entries:
        structure = Structure.from_dict(entry["snl"])
        if not structure.is_ordered:
            continue
        structure = structure.get_reduced_structure("niggli")
        symbols = [site.specie.symbol for site in structure]
        elements = tuple(dict.fromkeys(symbols))  # first-appearance order: deterministic
        tags = entry.get("tags", {})
        out.append(
            Prototype(
                label=str(tags.get("aflow", "")),
                formula=structure.composition.reduced_formula,
                mineral=str(tags.get("mineral", "") or ""),
                lattice=_readonly(structure.lattice.matrix),
                frac_coords=_readonly(np.mod(structure.frac_coords, 1.0)),
                site_species=_readonly(np.array([elements.index(s) for s in symbols])),
                elements=elements,
            )
        )
    logger.info("loaded %d ordered AFLOW prototypes from %s", len(out), path)
    return tuple(out)


def load_prototypes(
    max_atoms: int = 20, exclude_molecular: bool = True, max_volume_error: float | None = 2.0
) -> tuple[Prototype, ...]:
    """The ordered AFLOW prototypes that pymatgen ships, with at most ``max_atoms`` sites.

    ``exclude_molecular`` leaves out :data:`MOLECULAR_PROTOTYPES`. ``max_volume_error`` keeps only
    prototypes whose DLS volume for their own elements lies within that factor of the stored
    volume (``None``: keep all). The default 2 drops ten entries: some with unphysical stored
    geometries (a 1.43 A Si-Si contact in BC8 Si, 1.03 A in ullmannite NiSbS, 4.09 A In-In in tI2
    In), where scaling by the shortest contact would give absurd volumes, and a few where the DLS
    rule itself is far off (Mg2Ni, B5Mo2, alpha-Np).

    Examples
    --------
    >>> protos = load_prototypes(max_atoms=2)
    >>> sorted({p.formula for p in protos if p.label == "AB_cF8_225_a_b"})
    ['NaCl']
    """
    if max_atoms < 1:
        raise TDDataError(f"max_atoms must be at least 1, got {max_atoms}")
    protos = [p for p in _library() if len(p.site_species) <= max_atoms]
    if exclude_molecular:
        protos = [p for p in protos if (p.label, p.formula) not in MOLECULAR_PROTOTYPES]
    if max_volume_error is not None:
        if not max_volume_error >= 1.0:
            raise TDDataError(f"max_volume_error must be at least 1 (a factor), got {max_volume_error}")
        protos = [p for p in protos if 1.0 / max_volume_error <= _own_volume_ratio(p) <= max_volume_error]
    return tuple(protos)


@lru_cache(maxsize=512)
def _own_volume_ratio(proto: Prototype) -> float:
    """DLS volume of the prototype with its own elements over its stored volume."""
    symbols = [proto.elements[i] for i in proto.site_species]
    return dls_length_scale(proto.lattice, proto.frac_coords, symbols) ** 3


def _readonly(arr: Any) -> np.ndarray:
    out = np.array(arr, dtype=float if np.asarray(arr).dtype.kind == "f" else None)
    out.setflags(write=False)
    return out


def _random_strain(rng: np.random.Generator, max_strain: float, dims: int = 3) -> np.ndarray:
    """(3, 3) deformation I + eps, eps symmetric with principal strains at most ``max_strain``.

    ``dims = 2`` strains only the first two (in-plane) directions.
    """
    eps = np.zeros((3, 3))
    raw = rng.uniform(-1.0, 1.0, size=(dims, dims))
    raw = 0.5 * (raw + raw.T)
    largest = float(np.abs(np.linalg.eigvalsh(raw)).max())
    if largest > 0:
        eps[:dims, :dims] = raw * (max_strain * rng.uniform() / largest)
    return np.eye(3) + eps


# ---------------------------------------------------------------------------------------------- generator
class SyntheticDatasetGenerator:
    """Crystals from real AFLOW prototypes with data-mined substitutions, plus 2D sheets.

    Parameters
    ----------
    seed:
        Seed of the numpy Generator: the same seed gives the same records, byte for byte.
    max_atoms:
        Largest prototype cell used (20 sites keeps the set close to MP-20 and CDVAE's data).
    fraction_2d:
        Share of the samples that are 2D sheets (0.1: enough sheets for the field-effect work).
    max_strain:
        Largest principal strain of the random strain (0.01 = 1%; larger strains lower more cells' symmetry
        at spglib's symprec 0.1, so a symmetry-based split or filter sees more triclinic cells).
    substitution_temperature:
        ``T`` in ``exp(lambda / T)``; 1 is Hautier's probability, larger values substitute more freely.
    allowed_elements:
        Elements the generator may use (default :data:`DEFAULT_ELEMENTS`: H..Bi, no noble gases, Tc, Pm).
    max_tries:
        Substitution attempts per prototype draw before another prototype is drawn.
    exclude_molecular:
        Leave out the molecular solids of :data:`MOLECULAR_PROTOTYPES`.

    Examples
    --------
    >>> gen = SyntheticDatasetGenerator(seed=1)
    >>> records = gen.generate_dataset(3)
    >>> [r.id for r in records]
    ['synth-1-000000', 'synth-1-000001', 'synth-1-000002']
    >>> all(r.source.startswith("synthetic:") and "prototype" in r.labels for r in records)
    True
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        max_atoms: int = 20,
        fraction_2d: float = 0.1,
        max_strain: float = 0.01,
        substitution_temperature: float = 1.0,
        allowed_elements: Iterable[str] | None = None,
        max_tries: int = 25,
        exclude_molecular: bool = True,
    ) -> None:
        if not 0.0 <= fraction_2d <= 1.0:
            raise TDDataError(f"fraction_2d must be between 0 and 1, got {fraction_2d}")
        if not 0.0 <= max_strain < 0.5:
            raise TDDataError(f"max_strain must be between 0 and 0.5, got {max_strain}")
        if max_tries < 1:
            raise TDDataError(f"max_tries must be at least 1, got {max_tries}")
        self.seed = int(seed)
        self.max_atoms = int(max_atoms)
        self.fraction_2d = float(fraction_2d)
        self.max_strain = float(max_strain)
        self.substitution_temperature = float(substitution_temperature)
        self.max_tries = int(max_tries)
        allowed = DEFAULT_ELEMENTS if allowed_elements is None else tuple(allowed_elements)
        for s in allowed:
            atomic_number(s)  # raises on unknown symbols
        self.allowed_elements = frozenset(allowed)
        self.prototypes = load_prototypes(self.max_atoms, exclude_molecular)
        if not self.prototypes:
            raise TDDataError(f"no prototype has at most max_atoms={max_atoms} sites")
        self._substituter = Substituter(self.allowed_elements, self.substitution_temperature)

    # ------------------------------------------------------------------ substitution
    def _substitute(self, p_index: int, rng: np.random.Generator) -> tuple[str, ...] | None:
        """New elements, one per AFLOW letter of the prototype, or None if no try was accepted."""
        proto = self.prototypes[p_index]
        for _ in range(self.max_tries):
            new = self._substituter.draw(proto.elements, proto.counts, rng)
            if len(set(new)) != len(new) or not all(e in self.allowed_elements for e in new):
                continue
            numbers = np.array([atomic_number(e) for e in new])[proto.site_species]
            if composition_validity(numbers)[0]:
                return tuple(new)
        return None

    # ------------------------------------------------------------------ records
    def _bulk_record(self, index: int, rng: np.random.Generator) -> CrystalRecord | None:
        p_index = int(rng.integers(len(self.prototypes)))
        proto = self.prototypes[p_index]
        elements = self._substitute(p_index, rng)
        if elements is None:
            return None
        symbols = [elements[i] for i in proto.site_species]
        scale = dls_length_scale(proto.lattice, proto.frac_coords, symbols)
        lattice = proto.lattice * scale @ _random_strain(rng, self.max_strain)
        record = CrystalRecord(
            lattice,
            proto.frac_coords,
            symbols,
            labels={
                "prototype": proto.label,
                "prototype_formula": proto.formula,
                "generator_seed": self.seed,
                "dimensionality": 3,
            },
            id=f"synth-{self.seed}-{index:06d}",
            source=f"synthetic:{proto.label}",
        )
        return record

    def _sheet_record(self, index: int, rng: np.random.Generator) -> CrystalRecord:
        name, pair, a, height = _SHEETS[int(rng.integers(len(_SHEETS)))]
        if pair[0] != pair[1] and rng.uniform() < 0.5:
            pair = (pair[1], pair[0])
        c = height + rng.uniform(15.0, 20.0)  # vacuum of 15-20 Angstrom between periodic images
        if name == "2D-square":
            inplane = np.array([[a, 0.0, 0.0], [0.0, a, 0.0]])
            xy = np.array([[0.0, 0.0], [0.5, 0.5]])
        else:
            inplane = np.array([[a, 0.0, 0.0], [0.5 * a, 0.5 * math.sqrt(3) * a, 0.0]])
            xy = np.array([[1.0 / 3.0, 1.0 / 3.0], [2.0 / 3.0, 2.0 / 3.0]])
        lattice = np.vstack([inplane @ _random_strain(rng, self.max_strain, dims=2), [0.0, 0.0, c]])
        z = np.array([0.5 + 0.5 * height / c, 0.5 - 0.5 * height / c])
        record = CrystalRecord(
            lattice,
            np.column_stack([xy, z]),
            list(pair),
            labels={
                "prototype": name,
                "prototype_formula": "".join(dict.fromkeys(pair)),
                "generator_seed": self.seed,
                "dimensionality": 2,
                "vacuum_angstrom": round(c - height, 6),
            },
            id=f"synth-{self.seed}-{index:06d}",
            source=f"synthetic:{name}",
        )
        return record

    def generate_dataset(self, n_samples: int, progress: ProgressCallback | None = None) -> list[CrystalRecord]:
        """``n_samples`` records; ``progress(done, total)`` is called after each record if given."""
        if n_samples < 0:
            raise TDDataError(f"n_samples must be non-negative, got {n_samples}")
        rng = np.random.default_rng(self.seed)
        records: list[CrystalRecord] = []
        rejected: Counter[str] = Counter()
        draws = 0
        while len(records) < n_samples:
            draws += 1
            if draws > 50 * n_samples + 100:
                raise TDDataError(
                    f"only {len(records)} of {n_samples} records after {draws} draws "
                    f"(rejections {dict(rejected)}): relax allowed_elements or max_atoms"
                )
            index = len(records)
            if rng.uniform() < self.fraction_2d:
                record = self._sheet_record(index, rng)
            else:
                record = self._bulk_record(index, rng)
                if record is None:
                    rejected["composition"] += 1
                    continue
            ok, reason = structure_validity(record)
            if not ok:
                rejected["structure"] += 1
                logger.debug("rejected %s: %s", record.source, reason)
                continue
            records.append(record)
            if progress is not None:
                progress(len(records), n_samples)
        logger.info("generated %d synthetic records in %d draws (rejections %s)", n_samples, draws, dict(rejected))
        return records


def diversity_report(records: Sequence[CrystalRecord], symprec: float = 0.1) -> dict[str, Any]:
    """How varied a set of records is: prototypes, space groups (spglib, ``symprec`` A), elements, formulas.

    Examples
    --------
    >>> rec = CrystalRecord([[4, 0, 0], [0, 4, 0], [0, 0, 4]], [[0, 0, 0], [0.5, 0.5, 0.5]], ["Cs", "Cl"])
    >>> report = diversity_report([rec])
    >>> report["space_groups"], report["compositions"]
    ({221: 1}, {'CsCl': 1})
    """
    import spglib

    prototypes: Counter[str] = Counter()
    groups: Counter[int] = Counter()
    elements: Counter[str] = Counter()
    formulas: Counter[str] = Counter()
    dims: Counter[int] = Counter()
    for r in records:
        prototypes[str(r.labels.get("prototype", r.source))] += 1
        cell = (np.asarray(r.lattice), np.asarray(r.frac_coords), np.asarray(r.atomic_numbers))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # spglib 2.5+: OLD_ERROR_HANDLING notice
                data = spglib.get_symmetry_dataset(cell, symprec=symprec)
        except Exception:  # spglib >= 2.5 may raise SpglibError instead of returning None
            data = None
        groups[int(data.number) if data is not None else 0] += 1  # 0: spglib found no space group
        elements.update(set(r.species))
        formulas[r.formula] += 1
        dims[int(r.labels.get("dimensionality", 3))] += 1
    return {
        "n_records": len(records),
        "n_prototypes": len(prototypes),
        "n_space_groups": len(groups),
        "n_elements": len(elements),
        "n_compositions": len(formulas),
        "prototypes": dict(prototypes.most_common()),
        "space_groups": dict(sorted(groups.items())),
        "elements": dict(elements.most_common()),
        "compositions": dict(formulas.most_common()),
        "dimensionality": dict(sorted(dims.items())),
    }

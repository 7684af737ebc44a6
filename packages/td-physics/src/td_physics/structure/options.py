"""The options of the structure -> tight-binding builder: :class:`TightBindingOptions`.

Frozen and validated once. :func:`~td_physics.structure.tight_binding_from_structure`,
:func:`~td_physics.structure.tight_binding_variants` and :func:`~td_physics.structure.builder.variant_stacks`
take ``options=`` plus overrides by field name, so ``tight_binding_from_structure(lat, frac, z,
dimension=2)`` equals ``tight_binding_from_structure(lat, frac, z, options=TightBindingOptions(dimension=2))``.
``None`` means "not given": no extra spin-orbit constants, no moments, no field, the dimension
detected from the cell.

>>> TightBindingOptions(dimension=2).vacuum_gap
7.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from td_physics._options import check_number
from td_physics.structure.parameters import StructureError

__all__ = ["TightBindingOptions"]


@dataclass(frozen=True)
class TightBindingOptions:
    """Everything the builder takes besides the crystal and the parameter variant."""

    spin_orbit_constants: Mapping[str, float] | None = None  # {symbol: lambda_p (eV)} before the sourced table
    magnetic_moments: Sequence[float] | None = None  # one per atom, Bohr magnetons along +z; breaks time reversal
    exchange_per_moment: float = 1.0  # J (eV per Bohr magneton), a Stoner-type model parameter: splitting J m
    dimension: int | None = None  # 2 or 3; None: 2 when a vacuum gap of vacuum_gap lies along a3
    electric_field: float | None = None  # perpendicular field (V/Angstrom) along a1 x a2; 2D cells only
    vacuum_gap: float = 7.0  # smallest empty slab (Angstrom) along a3 that makes a cell 2D
    min_distance: float = 0.5  # atoms closer than this (Angstrom) are refused as overlapping
    find_inversion: bool = True  # look for inversion with spglib and declare it on the model
    name: str = ""  # free text stored on the model (default: the element symbols)

    def __post_init__(self) -> None:
        owner = "TightBindingOptions"
        if self.spin_orbit_constants is not None:
            if not isinstance(self.spin_orbit_constants, Mapping):
                raise StructureError(
                    f"{owner}.spin_orbit_constants must map element symbols to lambda_p in eV, "
                    f"got {type(self.spin_orbit_constants).__name__}"
                )
            constants = {
                str(sym): check_number(StructureError, owner, f"spin_orbit_constants[{sym!r}]", lam)
                for sym, lam in self.spin_orbit_constants.items()
            }
            object.__setattr__(self, "spin_orbit_constants", MappingProxyType(constants))
        if self.magnetic_moments is not None:
            try:
                moments = np.asarray(self.magnetic_moments, dtype=float)
            except (TypeError, ValueError):
                moments = np.full(1, np.nan)
            if moments.ndim != 1 or not np.all(np.isfinite(moments)):
                raise StructureError(
                    f"{owner}.magnetic_moments must be finite values, one per atom (Bohr magnetons along z), "
                    f"got {self.magnetic_moments!r}"
                )
            object.__setattr__(self, "magnetic_moments", tuple(moments.tolist()))
        check_number(StructureError, owner, "exchange_per_moment", self.exchange_per_moment)
        if self.dimension not in (None, 2, 3) or isinstance(self.dimension, bool):
            raise StructureError(f"dimension must be 2 or 3 (or None to detect), got {self.dimension!r}")
        if self.electric_field is not None:
            check_number(StructureError, owner, "electric_field", self.electric_field)
        check_number(StructureError, owner, "vacuum_gap", self.vacuum_gap, minimum=0.0, strict=True)
        check_number(StructureError, owner, "min_distance", self.min_distance, minimum=0.0)
        if not isinstance(self.find_inversion, (bool, np.bool_)):
            raise StructureError(f"{owner}.find_inversion must be True or False, got {self.find_inversion!r}")
        if not isinstance(self.name, str):
            raise StructureError(f"{owner}.name must be a string, got {type(self.name).__name__}")

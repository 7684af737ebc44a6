"""DFT verification of topology (optional extra ``td-physics[dft]``: GPAW, LCAO, PBE + spin-orbit).

Nothing else in td-physics imports this package, and this package imports GPAW only when a calculation
runs, so ``import td_physics`` works without the extra.
"""

from td_physics.dft._gpaw import DFTUnavailableError
from td_physics.dft.bands import DFTBandStructure, dft_band_structure
from td_physics.dft.cli import read_crystals_file, write_crystals_file
from td_physics.dft.core import DFTInputError, DFTResult, DFTSettings, dft_available, dft_invariants

__all__ = [
    "DFTBandStructure",
    "DFTInputError",
    "DFTResult",
    "DFTSettings",
    "DFTUnavailableError",
    "dft_available",
    "dft_band_structure",
    "dft_invariants",
    "read_crystals_file",
    "write_crystals_file",
]

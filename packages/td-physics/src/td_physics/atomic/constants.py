"""Physical constants of the atomic solver, in the values NIST SRD 141 uses."""

__all__ = ["SPEED_OF_LIGHT", "HARTREE_TO_EV"]

SPEED_OF_LIGHT = 137.0359895
"""Speed of light in atomic units, the value used by NIST SRD 141."""

HARTREE_TO_EV = 27.211386245988
"""1 Hartree in eV (CODATA 2018)."""

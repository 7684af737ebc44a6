"""Self-consistent spherical atomic LDA solver: non-relativistic, scalar-relativistic and Dirac.

The solver reproduces the conventions of NIST Standard Reference Database 141, "Atomic Reference
Data for Electronic Structure Calculations" (S. Kotochigova, Z. H. Levine, E. L. Shirley,
M. D. Stiles and C. W. Clark, Phys. Rev. A 55, 191 (1997)):

* a neutral, spherically averaged atom with a point nucleus; open shells carry (possibly
  fractional) occupations averaged over the shell, no spin polarisation;
* LDA exchange (Kohn-Sham, ``alpha = 2/3``) and Vosko-Wilk-Nusair correlation (VWN5, the
  paramagnetic fit to Ceperley-Alder);
* three kinetic-energy treatments, selected by ``relativity``:

  ``"none"`` (NIST "LDA")
      the radial Schroedinger equation ``-P''/2 + [l(l+1)/(2 r^2) + V] P = eps P``;
  ``"scalar"`` (NIST "ScRLDA")
      the Koelling-Harmon scalar-relativistic equation (mass-velocity and Darwin terms, no
      spin-orbit), in Hartree units with ``M = 1 + (eps - V) / (2 c^2)``::

          P' = 2 M Q + P / r
          Q' = -Q / r + [l(l+1) / (2 M r^2) + V - eps] P

      as in NIST's ScRLDA tables, orbitals are normalised on the large component,
      ``int P^2 dr = 1``, and the density is ``sum_i f_i P_i^2 / (4 pi r^2)`` (adding the small
      component ``Q / c`` moves the Kr 1s eigenvalue by 0.08 Ha away from NIST's value);
  ``"dirac"`` (NIST "RLDA")
      the radial Dirac equation for each ``kappa`` (``kappa = l`` for ``j = l - 1/2``,
      ``kappa = -(l+1)`` for ``j = l + 1/2``)::

          P' = -kappa P / r + (2 c + (eps - V) / c) Q
          Q' =  kappa Q / r - ((eps - V) / c) P

      the occupation of an ``l > 0`` shell is shared between its two ``j`` subshells in
      proportion to ``2j + 1`` and the density is ``(P^2 + Q^2) / (4 pi r^2)``.

* in both relativistic modes the exchange energy density and potential carry the MacDonald-Vosko
  relativistic correction (A. H. MacDonald and S. H. Vosko, J. Phys. C 12, 2977 (1979)), with
  ``beta = (3 pi^2 n)^(1/3) / c`` and ``eta = sqrt(1 + beta^2)``::

      e_x -> e_x * (1 - 3/2 * ((beta eta - asinh(beta)) / beta^2)^2)
      v_x -> v_x * (-1/2 + 3/2 * asinh(beta) / (beta eta))

  (the potential factor is the density derivative of the energy factor); correlation stays
  non-relativistic. Eigenvalues exclude the rest energy; ``c = 137.0359895`` a.u. (NIST's value).

Modules: :mod:`~td_physics.atomic.configuration` (configurations, orbitals per mode),
:mod:`~td_physics.atomic.grid` (radial grid, quadrature), :mod:`~td_physics.atomic.xc` (LDA),
:mod:`~td_physics.atomic.radial` (the three radial equations, shooting),
:mod:`~td_physics.atomic.scf` (self-consistency, :func:`solve_atom`); ``scripts/make_atomic_tables.py``
computes the labeller's term-value and spin-orbit tables with it.

Numerics: a logarithmic radial grid ``r_i = r_min exp(i h)``; each radial equation is written as a
first-order linear system in the grid index and integrated with the fourth-order implicit
Adams-Moulton formula. Because the system is linear, one integration is a unit lower-triangular
banded linear system, solved by LAPACK ``dtbtrs`` (forward substitution, no Python loop over grid
points). Eigenvalues are found by shooting: outward integration from the origin (power-series
start) to the outermost classical turning point, inward integration from a WKB-estimated practical
infinity, node counting with bisection and a first-order perturbative energy correction from the
mismatch of the small component. The Hartree potential comes from sixth-order cumulative
quadrature of the radial Poisson integrals; the self-consistency loop mixes ``r V_Hxc`` with
Anderson's method and, when an extrapolated potential loses an occupied level (open 4f/5f
shells), steps back to the last good potential with a shorter linear step.

Accuracy (default grid, ``h = 0.004``, ``r_min = 1e-7/Z``, ``r_max = 60``; asserted in
``tests/test_atomic.py`` of this package): hydrogenic levels to 1e-8 relative; the NIST SRD 141
LDA valence eigenvalues of H and B..Bi to 5.2e-7 Ha (NIST prints 6 decimals); every ScRLDA and
RLDA eigenvalue of Ne, Ar, Kr, Xe, Au, Hg, Rn and U to 2.8e-6 Ha (1.3e-6 Ha but for Kr 4p+) and
their total energies to 2.1e-6 Ha.

Examples
--------
>>> from td_physics.atomic import solve_atom
>>> res = solve_atom(1, "1s1")
>>> round(res.eigenvalues["1s"], 5)  # NIST SRD 141 LDA: -0.233471
-0.23347
"""

from td_physics.atomic.configuration import NOBLE_GAS_CORES, RELATIVITY_MODES, parse_configuration
from td_physics.atomic.constants import HARTREE_TO_EV, SPEED_OF_LIGHT
from td_physics.atomic.grid import RadialGrid
from td_physics.atomic.radial import coulomb_eigenvalue
from td_physics.atomic.scf import AtomResult, solve_atom
from td_physics.atomic.xc import lda_xc
from td_physics.exceptions import AtomicInputError, BoundStateError, SCFConvergenceError

__all__ = [
    "SPEED_OF_LIGHT",
    "HARTREE_TO_EV",
    "NOBLE_GAS_CORES",
    "RELATIVITY_MODES",
    "AtomicInputError",
    "BoundStateError",
    "SCFConvergenceError",
    "RadialGrid",
    "AtomResult",
    "parse_configuration",
    "solve_atom",
    "coulomb_eigenvalue",
    "lda_xc",
]

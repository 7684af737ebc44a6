"""GPAW (LCAO, PBE) ground states and spinor Bloch states in the LCAO basis.

Everything that touches GPAW lives here; the invariants (:mod:`.parity`, :mod:`.wilson`) work on the
plain arrays this module returns. GPAW's LCAO Bloch sums are ``phi_Mk(r) = sum_R exp(2 pi i k.R)
phi_M(r - tau_M - R)`` (periodic gauge: ``S(k + G) = S(k)``, checked in the tests), with states
``psi_n = sum_M C_nM phi_Mk``; GPAW's ``S_MM`` is stored transposed with respect to that representation
(``conj(C) S_MM^T C^T = 1``, checked at general k in the tests), so the overlap used here is ``S_MM^T``.

Spin-orbit coupling is GPAW's non-self-consistent second variation (``gpaw.spinorbit.soc_eigenstates``)
over *all* LCAO bands (``nbands='nao'``), so the spinor states are exact eigenstates of the LCAO
Hamiltonian plus the PAW spin-orbit term projected on the LCAO space. A spinor state ``m`` is
``c_s[m] = v[m, s::2] @ C_s`` in the LCAO basis of spin ``s``.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


class DFTUnavailableError(ImportError):
    """GPAW (the ``td-physics[dft]`` extra) is not importable."""


def import_gpaw() -> Any:
    try:
        import gpaw  # noqa: F401
        from gpaw import GPAW  # noqa: F401
    except ImportError as exc:  # pragma: no cover - exercised in stand-alone installs
        raise DFTUnavailableError(
            "DFT verification needs GPAW: pip install 'td-physics[dft]' (it builds GPAW against libxc and "
            f"OpenBLAS; see the README's DFT section). Import failed with: {exc}"
        ) from exc
    return gpaw


def gpaw_version() -> str:
    import gpaw

    return str(gpaw.__version__)


@contextmanager
def blas_threads(n: int | None):
    """Limit BLAS threads to ``n`` for the calculation (None: leave as is)."""
    if not n:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        yield
        return
    with threadpool_limits(limits=int(n)):
        yield


def make_atoms(lattice: np.ndarray, frac_coords: np.ndarray, numbers: np.ndarray, magmoms: np.ndarray | None):
    from ase import Atoms

    atoms = Atoms(numbers=numbers, scaled_positions=frac_coords, cell=lattice, pbc=True)
    if magmoms is not None:
        atoms.set_initial_magnetic_moments(np.asarray(magmoms, dtype=float))
    return atoms


def valence_electrons(numbers: np.ndarray, xc: str) -> tuple[int, dict[int, float]]:
    """Total valence electrons of GPAW's PAW setups (``gpaw-data``), and the count per element.

    Raises :class:`MissingSetupError` for an element without a setup.
    """
    from ase.data import chemical_symbols
    from gpaw.setup import create_setup

    per: dict[int, float] = {}
    for z in sorted(set(int(z) for z in numbers)):
        try:
            per[z] = float(create_setup(chemical_symbols[z], xc).Nv)
        except Exception as exc:  # gpaw raises RuntimeError/FileNotFoundError/KeyError depending on the case
            raise MissingSetupError(
                f"no PAW setup for {chemical_symbols[z]} (Z={z}, {xc}) in gpaw-data: {str(exc).splitlines()[0]}"
            ) from exc
    total = sum(per[int(z)] for z in numbers)
    return int(round(total)), per


class MissingSetupError(RuntimeError):
    """GPAW has no PAW setup (or basis set) for an element."""


@dataclass(frozen=True)
class BasisLayout:
    """Which atom and angular momentum each LCAO basis function belongs to (M index)."""

    atom: np.ndarray  # (nao,)
    l: np.ndarray  # (nao,)

    @property
    def nao(self) -> int:
        return len(self.atom)


def basis_layout(calc: Any) -> BasisLayout:
    atom: list[int] = []
    ls: list[int] = []
    for a, setup in enumerate(calc.wfs.setups):
        functions = getattr(setup, "basis_functions_J", None)
        if functions is None:
            functions = setup.phit_j
        for phit in functions:
            l = int(phit.get_angular_momentum_number())
            atom += [a] * (2 * l + 1)
            ls += [l] * (2 * l + 1)
    layout = BasisLayout(np.array(atom), np.array(ls))
    if layout.nao != calc.wfs.setups.nao:
        raise RuntimeError(f"basis layout has {layout.nao} functions, GPAW reports {calc.wfs.setups.nao}")
    return layout


#: the fewest real-space grid points an axis (a multiple of 4, as GPAW's h2gpts gives)
MIN_GPTS = 12


def ground_state(atoms: Any, settings: Any, mesh: tuple[int, int, int], *, spinpol: bool) -> Any:
    """Self-consistent LCAO ground state on a Gamma-centred ``mesh`` (symmetry reduces k where the grid allows)."""
    from ase.units import Bohr
    from gpaw import GPAW, FermiDirac
    from gpaw.utilities import h2gpts

    # the grid from the spacing between lattice planes, divisible by 4 (GPAW's rule for ``h``), given
    # explicitly: left to GPAW, a grid compatible with every symmetry of a Niggli-reduced rhombohedral cell is
    # 48^3 for Bi2Se3 (16 x 16 x 48 here, ten times cheaper; same spacing)
    gpts = tuple(int(n) for n in h2gpts(settings.grid_spacing / Bohr, np.asarray(atoms.cell) / Bohr))
    # GPAW's density interpolation needs a coarse grid of more than 4 points an axis: a cell axis shorter than
    # about 1.6 A (8 points at 0.2 A) gets MIN_GPTS; every other grid is h2gpts' own
    gpts = tuple(max(n, MIN_GPTS) for n in gpts)
    calc = GPAW(
        mode="lcao",
        gpts=gpts,
        basis=settings.basis,
        xc=settings.xc,
        kpts={"size": tuple(int(n) for n in mesh), "gamma": True},
        occupations=FermiDirac(settings.smearing),
        convergence={"density": settings.density_tolerance},
        maxiter=settings.max_scf_iterations,
        spinpol=spinpol,
        symmetry={} if grid_compatible(atoms, gpts) else {"point_group": False, "time_reversal": True},
        txt=settings.gpaw_log,
    )
    atoms = atoms.copy()
    atoms.calc = calc
    atoms.get_potential_energy()
    return calc


def grid_compatible(atoms: Any, gpts: tuple[int, int, int], symprec: float = 1e-5) -> bool:
    """Whether every point-group operation of the crystal maps the real-space grid onto itself.

    An operation whose matrix (reduced coordinates) mixes axes ``i`` and ``j`` needs ``gpts[i] == gpts[j]``.
    GPAW symmetrises the density with the crystal's operations even when the grid (given explicitly) does
    not have them: on Bi2Se3's Niggli cell (grid 16 x 16 x 48) that broke the three-fold axis and inverted
    one of three equivalent TRIMs. Where an operation is incompatible, only time reversal is used.
    """
    import spglib

    magmoms = atoms.get_initial_magnetic_moments()
    types = atoms.numbers * 1000 + np.unique(np.round(magmoms, 3), return_inverse=True)[1]
    sym = spglib.get_symmetry((np.asarray(atoms.cell), atoms.get_scaled_positions(), types), symprec=symprec)
    if sym is None:
        return False
    n = np.asarray(gpts)
    for rot in sym["rotations"]:
        i, j = np.nonzero(rot)
        if np.any(n[i] != n[j]):
            return False
    return True


def nscf(calc: Any, kpts: np.ndarray | dict, settings: Any) -> Any:
    """Non-self-consistent states at ``kpts`` (explicit reduced k list or a mesh dict), all LCAO bands."""
    return calc.fixed_density(kpts=kpts, symmetry="off", nbands="nao", txt=settings.gpaw_log)


@dataclass(frozen=True)
class SpinorStates:
    """Spinor eigenstates at a list of k-points, in the LCAO basis."""

    kpts: np.ndarray  # (nk, 3) reduced
    energies: np.ndarray  # (nk, nstates) eV, ascending
    coeffs: np.ndarray  # (nk, nstates, 2, nao): c[k, m, s, M]
    overlap: np.ndarray  # (nk, nao, nao) S_MM(k)


def spinor_states(calc: Any, *, spin_orbit: bool, n_states: int | None = None) -> SpinorStates:
    """SOC (or, with ``spin_orbit=False``, spin-degenerate) spinor states of a symmetry-off calculation.

    ``n_states`` keeps the lowest states only (all when None).
    """
    from gpaw.spinorbit import soc_eigenstates

    wfs = calc.wfs
    kd = wfs.kd
    if kd.nibzkpts != kd.nbzkpts:
        raise RuntimeError("spinor_states needs a calculation with symmetry='off'")
    soc = soc_eigenstates(calc, scale=1.0 if spin_orbit else 0.0)
    nspins = wfs.nspins
    by_ks: dict[tuple[int, int], Any] = {(kpt.k, kpt.s): kpt for kpt in wfs.kpt_u}
    nk = kd.nbzkpts
    energies = soc.eigenvalues()  # (nk, 2 nbands) eV
    keep = energies.shape[1] if n_states is None else min(int(n_states), energies.shape[1])
    nao = wfs.setups.nao
    coeffs = np.empty((nk, keep, 2, nao), dtype=complex)
    overlap = np.empty((nk, nao, nao), dtype=complex)
    for k in range(nk):
        v = soc[k].v_mn[:keep]  # (keep, 2 nbands): index 2n + s
        c_up = by_ks[(k, 0)].C_nM
        c_dn = by_ks[(k, nspins - 1)].C_nM
        coeffs[k, :, 0] = v[:, 0::2] @ c_up
        coeffs[k, :, 1] = v[:, 1::2] @ c_dn
        # GPAW's S_MM is the transpose of <phi_M|phi_M'> in this representation: conj(C) S^T C^T = 1
        overlap[k] = by_ks[(k, 0)].S_MM.T
    return SpinorStates(np.array(kd.bzk_kc, dtype=float), np.asarray(energies[:, :keep], dtype=float), coeffs, overlap)


def plane_wave_parities(
    atoms: Any,
    settings: Any,
    mesh: tuple[int, int, int],
    trims: np.ndarray,
    centre: np.ndarray,
    nocc: int,
    *,
    spin_orbit: bool,
) -> tuple[np.ndarray, float]:
    """Number of negative parities among the lowest ``nocc`` spinor states at each TRIM, in plane-wave mode.

    An independent route to the parities: PBE plane-wave ground state (``settings.pw_ecut`` eV) on ``mesh``,
    spin-orbit states at the TRIMs, and inversion about ``centre`` (Cartesian, Angstrom) applied to the
    pseudo-wave-function coefficients (``k + G -> -(k + G)`` with the phase ``exp(2 i (k + G).centre)``).
    The PAW transformation commutes with inversion, so pseudo eigenstates have the true parities; the
    eigenvalues are read from ``P v = lambda N v`` with ``N`` the pseudo overlap. Returns (n_minus per TRIM,
    largest deviation of |lambda| from 1).
    """
    from ase.units import Bohr
    from gpaw import GPAW, PW, FermiDirac
    from gpaw.spinorbit import soc_eigenstates

    gs = GPAW(
        mode=PW(settings.pw_ecut),
        xc=settings.xc,
        kpts={"size": tuple(int(n) for n in mesh), "gamma": True},
        occupations=FermiDirac(settings.smearing),
        convergence={"density": settings.density_tolerance},
        maxiter=settings.max_scf_iterations,
        txt=settings.gpaw_log,
    )
    atoms = atoms.copy()
    atoms.calc = gs
    atoms.get_potential_energy()
    nbands = nocc // 2 + 8
    calc = gs.fixed_density(kpts=np.asarray(trims, dtype=float), symmetry="off", nbands=nbands, txt=settings.gpaw_log)
    soc = soc_eigenstates(calc, scale=1.0 if spin_orbit else 0.0)
    wfs = calc.wfs
    centre_bohr = np.asarray(centre, dtype=float) / Bohr
    n_minus, worst = [], 0.0
    for ik in range(len(trims)):
        psit = np.asarray(wfs.kpt_u[ik].psit_nG)[:nbands]  # (nb, nG)
        kg = wfs.pd.get_reciprocal_vectors(q=ik, add_q=True)  # (nG, 3) 1/Bohr
        # index of -(k + G) for every k + G
        order = {tuple(np.round(v, 6)): j for j, v in enumerate(kg)}
        partner = np.array([order[tuple(np.round(-v, 6))] for v in kg])
        phase = np.exp(2j * kg @ centre_bohr)
        v = soc[ik].v_mn[:nocc]  # (nocc, 2 nb)
        c = np.stack([v[:, 0::2] @ psit, v[:, 1::2] @ psit], axis=1)  # (nocc, 2, nG)
        ic = np.zeros_like(c)
        ic[..., partner] = c * phase  # (I psi) at -(k+G) = psi(k+G) exp(2 i (k+G).c)
        p = np.einsum("msG,nsG->mn", np.conj(c), ic)
        n = np.einsum("msG,nsG->mn", np.conj(c), c)
        w, u = np.linalg.eigh(n)
        half = u @ np.diag(w**-0.5) @ np.conj(u.T)
        lam = np.linalg.eigvalsh(half @ (0.5 * (p + np.conj(p.T))) @ half)
        worst = max(worst, float(np.max(np.abs(np.abs(lam) - 1.0))))
        n_minus.append(int((lam < 0).sum()))
    return np.array(n_minus), worst

"""Bogoliubov-de Gennes (BdG) models: a normal-state tight-binding model plus a pairing.

This module is where the particle-hole doubling, its basis and its factor 1/2 are defined; every
other part of td-physics (the superconductor factories, the Majorana number) refers here.

Basis and Hamiltonian
---------------------
A normal model with ``n`` orbitals, ``h(k) = H0 + sum_R [T_R exp(2 pi i k.R) + h.c.]`` (the
convention of :mod:`td_physics.model`), and real-space pair amplitudes ``D_R`` (``(D_R)_ij`` pairs
orbital ``i`` of cell 0 with orbital ``j`` of cell ``R``) give the many-body Hamiltonian::

    H = sum_k c_k^dagger (h(k) - mu) c_k + (1/2) sum_k [c_k^dagger Delta(k) (c_{-k}^dagger)^T + h.c.]
      = (1/2) sum_k Psi_k^dagger H_BdG(k) Psi_k + (1/2) sum_k Tr(h(k) - mu)

    Psi_k = (c_{k,1}, ..., c_{k,n}, c_{-k,1}^dagger, ..., c_{-k,n}^dagger)^T      (Nambu spinor)

    H_BdG(k) = [[ h(k) - mu,     Delta(k)           ],
                [ Delta(k)^dagger, -h(-k)^* + mu    ]],      Delta(k) = sum_R D_R exp(2 pi i k.R)

The factor 1/2 is the double counting of the Nambu doubling: every quasiparticle appears twice in
``H_BdG``, at ``E(k)`` and at ``-E(-k)``, so the 2n BdG bands describe n physical ones and the
ground state fills the ``n`` negative-energy bands (the BdG model's ``occupied``). Fermion
antisymmetry (``c_i^dagger c_j^dagger = -c_j^dagger c_i^dagger``) makes only the part of
``Delta(k)`` with ``Delta(-k)^T = -Delta(k)`` physical; :class:`Pairing` therefore requires
``D_{-R} = -D_R^T`` (so ``D_0`` is antisymmetric: on-site pairing of one spinless orbital is zero)
and fills in ``D_{-R}`` when only ``D_R`` is given.

The BdG model is an ordinary :class:`~td_physics.TightBindingModel` with ``2n`` orbitals: the
particle orbitals ``0..n-1`` and the hole orbitals ``n..2n-1``, hole ``n + i`` at the position of
orbital ``i`` (``c_{-k}^dagger`` carries the same Bloch phase as ``c_k``). A spinful normal model
gives a spinful BdG model with the sites listed twice (particles, then holes), so that
``time_reversal_matrix`` is ``i s_y`` on both blocks, the BdG time reversal ``diag(U_T, U_T^*) K``
for ``U_T = i s_y``; note that ``spin_z`` of the BdG model is ``+s_z`` on the hole block too,
while a hole of spin up carries spin down. Every invariant (``chern_number``, ``z2_invariant``,
...) applies to it unchanged.

Particle-hole symmetry: ``C = tau_x K`` with ``tau_x`` exchanging the particle and hole blocks,
``tau_x H_BdG(k)^* tau_x = -H_BdG(-k)`` (:func:`particle_hole_matrix`, :func:`particle_hole_error`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from td_physics.exceptions import ModelDefinitionError, SymmetryError
from td_physics.model import TightBindingModel, as_kpoints

__all__ = [
    "Pairing",
    "bdg_model",
    "s_wave",
    "chiral_p_wave",
    "d_wave",
    "particle_hole_matrix",
    "particle_hole_error",
    "check_particle_hole",
    "decoupled_block",
]

logger = logging.getLogger(__name__)

_ANTISYMMETRY_TOL = 1e-10
_ISY = np.array([[0.0, 1.0], [-1.0, 0.0]], dtype=complex)  # i s_y: the spin-singlet pair matrix


@dataclass(frozen=True, eq=False)
class Pairing:
    """Real-space pair amplitudes ``D_R`` (n, n) for every R, with ``D_{-R} = -D_R^T`` (module docstring).

    Build it with :meth:`from_matrices` (which checks the antisymmetry and completes the ``-R``
    partners) or with :func:`s_wave`, :func:`chiral_p_wave`, :func:`d_wave`.

    Attributes
    ----------
    matrices:
        Read-only mapping from the integer tuple R (length ``dim_k``) to ``D_R``; holds both R and -R.
    norb, dim_k:
        The orbitals and periodic directions of the normal model it belongs to.
    name:
        Free text (``"s-wave"``, ``"p+ip"``...).
    """

    matrices: Mapping[tuple[int, ...], np.ndarray]
    norb: int
    dim_k: int
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "matrices", MappingProxyType(dict(self.matrices)))

    @classmethod
    def from_matrices(cls, matrices: Mapping[Any, Any], *, norb: int, dim_k: int, name: str = "") -> Pairing:
        """A pairing from ``{R: D_R}``; ``D_{-R}`` is filled in as ``-D_R^T`` unless given.

        Raises :class:`ModelDefinitionError` when a matrix has the wrong shape or is not finite, when
        ``D_0`` is not antisymmetric, or when both ``D_R`` and ``D_{-R}`` are given and
        ``D_{-R} != -D_R^T`` (fermion antisymmetry).

        Examples
        --------
        >>> p = Pairing.from_matrices({(1,): [[0.5]]}, norb=1, dim_k=1)
        >>> sorted(p.matrices), p.matrices[(-1,)].tolist()
        ([(-1,), (1,)], [[(-0.5-0j)]])
        >>> p.delta([0.25]).round(6).tolist()  # Delta(k) = 0.5 (e^{ik} - e^{-ik}) = i sin k at k = pi/2
        [[[1j]]]
        """
        full: dict[tuple[int, ...], np.ndarray] = {}
        for r_vec, matrix in matrices.items():
            r = np.atleast_1d(np.asarray(r_vec))
            if r.ndim != 1 or len(r) != dim_k or not np.all(np.equal(np.round(r.astype(float)), r.astype(float))):
                raise ModelDefinitionError(f"a pairing's R must be {dim_k} integers, got {r_vec!r}")
            key = tuple(int(x) for x in np.round(r.astype(float)))
            d = np.array(matrix, dtype=complex)
            if d.shape != (norb, norb):
                raise ModelDefinitionError(
                    f"pair amplitude D_R for R={key} must have shape ({norb}, {norb}), got {d.shape}"
                )
            if not np.all(np.isfinite(d)):
                raise ModelDefinitionError(f"pair amplitude D_R for R={key} contains NaN or infinity")
            full[key] = d
        for key, d in list(full.items()):
            neg = tuple(-x for x in key)
            partner = -d.T
            if neg in full:
                deviation = float(np.max(np.abs(full[neg] - partner), initial=0.0))
                if deviation > _ANTISYMMETRY_TOL:
                    rule = (
                        "D_0 must be antisymmetric" if neg == key else f"D_R for R={neg} must equal -D_R^T of R={key}"
                    )
                    raise ModelDefinitionError(
                        f"fermion antisymmetry: {rule} (Delta(-k)^T = -Delta(k)), got max deviation {deviation:.3e}"
                    )
            else:
                full[neg] = partner
        for d in full.values():
            d.setflags(write=False)  # a frozen pairing: its matrices cannot be edited in place either
        return cls(full, int(norb), int(dim_k), name)

    def delta(self, k: Any) -> np.ndarray:
        """``Delta(k) = sum_R D_R exp(2 pi i k.R)`` at reduced k-points: (nk, norb, norb)."""
        kpts = as_kpoints(k, self.dim_k)
        if not self.matrices:
            return np.zeros((len(kpts), self.norb, self.norb), dtype=complex)
        rv = np.array(list(self.matrices), dtype=int).reshape(-1, self.dim_k)  # (nR, dim_k)
        mats = np.stack(list(self.matrices.values()))  # (nR, norb, norb)
        phases = np.exp(2j * np.pi * kpts @ rv.T)  # (nk, nR)
        return np.einsum("kr,rij->kij", phases, mats)


def _require(model: TightBindingModel, delta: Any, *, spinful: bool | None, dim_k: int | None, what: str) -> None:
    """Refuse a normal model of the wrong kind, or a pair amplitude that is not a finite real number."""
    if (
        isinstance(delta, bool)
        or not isinstance(delta, (int, float, np.integer, np.floating))
        or not np.isfinite(delta)
    ):
        raise ModelDefinitionError(f"the {what} amplitude delta must be a finite real number, got {delta!r}")
    if spinful is not None and model.spinful != spinful:
        need = "a spinful" if spinful else "a spinless"
        raise ModelDefinitionError(f"{what} needs {need} normal model, got spinful={model.spinful}")
    if dim_k is not None and model.dim_k != dim_k:
        raise ModelDefinitionError(f"{what} needs a normal model with dim_k={dim_k}, got dim_k={model.dim_k}")


def s_wave(model: TightBindingModel, delta: float) -> Pairing:
    """On-site spin-singlet pairing ``Delta c_up^dagger c_down^dagger + h.c.`` on every site.

    ``D_0 = delta * i s_y`` on each site's spin doublet, so ``Delta(k) = delta * i s_y`` for all k.
    Needs a spinful normal model (a spinless orbital cannot pair with itself).

    >>> from td_physics import TightBindingModel
    >>> s_wave(TightBindingModel([[1.0]], [[0.0]], spinful=True), 0.3).matrices[(0,)].real.tolist()
    [[0.0, 0.3], [-0.3, 0.0]]
    """
    _require(model, delta, spinful=True, dim_k=None, what="s-wave pairing")
    d0 = np.kron(np.eye(model.norb // 2), float(delta) * _ISY)
    return Pairing.from_matrices({(0,) * model.dim_k: d0}, norb=model.norb, dim_k=model.dim_k, name="s-wave")


def _bond(dim_k: int, axis: int) -> tuple[int, ...]:
    r = [0] * dim_k
    r[axis] = 1
    return tuple(r)


def chiral_p_wave(model: TightBindingModel, delta: float, chirality: int = 1) -> Pairing:
    """Spinless chiral p-wave pairing along the first two lattice vectors, each orbital with itself.

    ``Delta(k) = delta (sin k1 - i chirality sin k2)``, ``k_i = 2 pi k_reduced_i``: the lattice form of
    Read and Green's ``Delta_k = Delta (k_x - i k_y)`` (Phys. Rev. B 61, 10267 (2000)), their
    ``p_x + i p_y`` state for ``chirality = +1``. In real space ``D_a1 = -i delta / 2`` and
    ``D_a2 = -chirality delta / 2`` times the identity.
    """
    _require(model, delta, spinful=False, dim_k=2, what="chiral p-wave pairing")
    if chirality not in (1, -1):
        raise ModelDefinitionError(f"chirality must be +1 (p+ip) or -1 (p-ip), got {chirality!r}")
    eye = np.eye(model.norb)
    mats = {_bond(2, 0): -0.5j * delta * eye, _bond(2, 1): -0.5 * chirality * delta * eye}
    name = "p+ip" if chirality == 1 else "p-ip"
    return Pairing.from_matrices(mats, norb=model.norb, dim_k=2, name=name)


def d_wave(model: TightBindingModel, delta: float) -> Pairing:
    """Spin-singlet d_{x^2-y^2} pairing on the bonds along the first two lattice vectors.

    ``Delta(k) = delta (cos k1 - cos k2) i s_y`` on each site; nodal (gapless) wherever the Fermi
    surface crosses ``|k1| = |k2|``. Needs a spinful normal model with two periodic directions.
    """
    _require(model, delta, spinful=True, dim_k=2, what="d-wave pairing")
    singlet = np.kron(np.eye(model.norb // 2), _ISY)
    mats = {_bond(2, 0): 0.5 * delta * singlet, _bond(2, 1): -0.5 * delta * singlet}
    return Pairing.from_matrices(mats, norb=model.norb, dim_k=2, name="d-wave")


def bdg_model(
    normal: TightBindingModel, pairing: Pairing | Mapping[Any, Any], *, mu: float = 0.0, name: str | None = None
) -> TightBindingModel:
    """The BdG model (module docstring) of ``normal`` with ``pairing`` at chemical potential ``mu``.

    ``pairing`` is a :class:`Pairing` or a mapping ``{R: D_R}`` given to :meth:`Pairing.from_matrices`.
    The result has ``2 normal.norb`` orbitals, ``occupied = normal.norb`` (the negative-energy half),
    the normal model's lattice and k-path, and ``metadata["bdg"]`` (``normal_norb``, ``mu``,
    ``pairing``). The normal model's inversion operator is not carried over: on the holes it acts with the
    pairing's parity (``P = tau_z`` for odd-parity pairing), so declare it with
    :meth:`~td_physics.TightBindingModel.set_inversion`.

    Examples
    --------
    >>> import numpy as np
    >>> from td_physics import TightBindingModel
    >>> chain = TightBindingModel([[1.0]], [[0.0]])
    >>> chain.add_hopping(-1.0, 0, 0, (1,))
    >>> bdg = bdg_model(chain, {(1,): [[-0.5]]}, mu=0.5)
    >>> bdg.norb, bdg.occupied
    (2, 1)
    >>> np.round(bdg.eigvalsh([0.25]), 6)  # +-sqrt(xi^2 + (2 delta sin k)^2) with xi = -2t cos k - mu
    array([[-1.118034,  1.118034]])
    """
    if not isinstance(normal, TightBindingModel):
        raise ModelDefinitionError(f"normal must be a TightBindingModel, got {type(normal).__name__}")
    if not np.isfinite(mu) or np.iscomplexobj(np.asarray(mu)):
        raise ModelDefinitionError(f"the chemical potential mu must be a finite real number, got {mu!r}")
    if not isinstance(pairing, Pairing):
        pairing = Pairing.from_matrices(pairing, norb=normal.norb, dim_k=normal.dim_k)
    if (pairing.norb, pairing.dim_k) != (normal.norb, normal.dim_k):
        raise ModelDefinitionError(
            f"the pairing is for (norb, dim_k) = ({pairing.norb}, {pairing.dim_k}), the normal model has "
            f"({normal.norb}, {normal.dim_k})"
        )
    n = normal.norb
    onsite = np.zeros((2 * n, 2 * n), dtype=complex)
    h0 = normal.onsite - mu * np.eye(n)
    onsite[:n, :n] = h0
    onsite[n:, n:] = -h0.conj()
    hops: dict[tuple[int, ...], np.ndarray] = {}
    for r, t in normal.hoppings.items():
        block = np.zeros((2 * n, 2 * n), dtype=complex)
        block[:n, :n] = t
        block[n:, n:] = -t.conj()  # -h(-k)^*: T_R e^{ikR} -> -T_R^* e^{ikR}
        hops[r] = block
    zero = (0,) * normal.dim_k
    for r, d in pairing.matrices.items():
        if r == zero:
            # the on-site pair block is D_0; from_hopping_matrices adds the hermitian conjugate of H0 too
            onsite[:n, n:] += d
            onsite[n:, :n] += d.conj().T
            continue
        block = hops.setdefault(r, np.zeros((2 * n, 2 * n), dtype=complex))
        block[:n, n:] += d  # T'_R e^{ikR} + h.c. puts D_R e^{ikR} above and D_R^dagger e^{-ikR} below
    half = normal.site_positions
    labels = [f"e:{s}" for s in normal.site_labels] + [f"h:{s}" for s in normal.site_labels]
    model = TightBindingModel.from_hopping_matrices(
        normal.lattice,
        np.concatenate([half, half]),
        onsite,
        hops,
        dim_k=normal.dim_k,
        spinful=normal.spinful,
        labels=labels,
        occupied=n,
        name=name or f"BdG({normal.name or 'model'}, {pairing.name or 'pairing'})",
    )
    model.metadata.update(
        {key: normal.metadata[key] for key in ("k_path", "units") if key in normal.metadata},
        bdg={"normal_norb": n, "mu": float(mu), "pairing": pairing.name},
    )
    return model


def particle_hole_matrix(model: TightBindingModel) -> np.ndarray:
    """The unitary part ``tau_x`` of ``C = tau_x K`` for a model in the Nambu layout of :func:`bdg_model`.

    >>> particle_hole_matrix(bdg_model(TightBindingModel([[1.0]], [[0.0]]), {})).real.tolist()
    [[0.0, 1.0], [1.0, 0.0]]
    """
    if model.norb % 2:
        raise ModelDefinitionError(f"a BdG model has an even number of orbitals (particles, holes), got {model.norb}")
    n = model.norb // 2
    return np.kron(np.array([[0.0, 1.0], [1.0, 0.0]], dtype=complex), np.eye(n))


def particle_hole_error(model: TightBindingModel, k: Any = None) -> float:
    """``max |tau_x H(k)^* tau_x + H(-k)|`` at reduced ``k`` (default: 4 random points and the TRIMs).

    Zero (to rounding) for every model :func:`bdg_model` builds; a model that is not in the Nambu
    layout gives a large value.
    """
    if k is None:
        rand = np.random.default_rng(3).random((4, model.dim_k))
        trims = np.stack(np.meshgrid(*[[0.0, 0.5]] * model.dim_k, indexing="ij"), -1).reshape(-1, model.dim_k)
        k = np.concatenate([rand, trims])
    kpts = as_kpoints(k, model.dim_k)
    c = particle_hole_matrix(model)
    h = model.hamiltonian(np.concatenate([kpts, -kpts]))  # (2 nk, norb, norb)
    nk = len(kpts)
    return float(np.max(np.abs(c @ h[:nk].conj() @ c + h[nk:])))


def check_particle_hole(model: TightBindingModel, tol: float = 1e-8) -> None:
    """Raise :class:`SymmetryError` unless ``particle_hole_error(model) <= tol``."""
    err = particle_hole_error(model)
    if err > tol:
        raise SymmetryError(
            f"a BdG model must satisfy tau_x H(k)^* tau_x = -H(-k) (particle-hole symmetry, Nambu layout of "
            f"td_physics.bdg) within {tol:g}, got max deviation {err:.3e}"
        )


def decoupled_block(model: TightBindingModel, orbitals: Any, *, tol: float = 1e-10) -> TightBindingModel:
    """The model restricted to ``orbitals`` (indices into the model's orbitals), which H must not couple
    to the rest.

    For a spin-conserving BdG model, the particle and hole orbitals of one spin form such a block (the
    spin sectors of the helical superconductor). The block is spinless; ``occupied`` is half its size.
    Raises :class:`ModelDefinitionError` when a hopping or on-site term couples the block to the rest.
    """
    idx = np.asarray(orbitals, dtype=int)
    if idx.ndim != 1 or len(idx) == 0 or len(set(idx.tolist())) != len(idx) or idx.min() < 0 or idx.max() >= model.norb:
        raise ModelDefinitionError(f"orbitals must be distinct indices in 0..{model.norb - 1}, got {list(orbitals)}")
    rest = np.setdiff1d(np.arange(model.norb), idx)
    mats = {(0,) * model.dim_k: model.onsite, **model.hoppings}
    leak = max((float(np.max(np.abs(m[np.ix_(idx, rest)]), initial=0.0)) for m in mats.values()), default=0.0)
    if leak > tol:
        raise ModelDefinitionError(
            f"orbitals {idx.tolist()} must not be coupled to the other orbitals, got a coupling of {leak:.3e}"
        )
    hops = {r: t[np.ix_(idx, idx)] for r, t in model.hoppings.items()}
    return TightBindingModel.from_hopping_matrices(
        model.lattice,
        model.positions[idx],
        model.onsite[np.ix_(idx, idx)],
        hops,
        dim_k=model.dim_k,
        occupied=len(idx) // 2 if len(idx) > 1 else None,
        name=f"{model.name} [orbitals {idx.tolist()}]",
    )

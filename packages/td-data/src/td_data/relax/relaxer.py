"""The batched CHGNet relaxation: many crystals at once, and how far each moved.

A generated crystal is judged as it would sit, not as sampled: :func:`relax_records` relaxes the
atomic positions (and, by default, the cell) with the universal machine-learned potential CHGNet
(Deng et al., Nat. Mach. Intell. 5, 1031 (2023); its pretrained weights ship inside the ``chgnet``
wheel, nothing is downloaded) and returns, per record, the relaxed record, its energy per atom, the
RMSD between the input and the relaxed structure (MatterGen's metric) and whether it converged.
:func:`~td_data.relax.hull.energy_above_hull` places the relaxed crystals on a convex hull built from the
same model's energies.

How it is batched: every crystal gets its own FIRE optimiser (ASE's algorithm and defaults, as in
CHGNet's ``StructOptimizer``) over ASE's ``FrechetCellFilter`` coordinates (positions plus the logarithm
of the cell deformation), and all are stepped in lock-step. At each step the energies, forces and
stresses of every crystal still relaxing come from one CHGNet call over a batch of graphs, with one
backward pass for forces and stresses together (CHGNet's own forward makes two, and keeps the graph
for second derivatives); the cell forces of the whole batch come from one batched matrix exponential.
A crystal that converges or fails leaves the batch, and the next waiting crystal takes its place.

Bad input never stops the batch: atoms closer than ``min_distance``, an element CHGNet was not trained
on (it knows H..Pu, Z <= 94), an isolated atom, a non-finite or exploding energy, a cell that collapses
or falls apart, or no convergence within ``max_steps`` give a :class:`RelaxResult` with
``converged=False`` and the reason.

Needs the optional extra: ``pip install 'td-data[relax]'``.

Examples
--------
>>> from td_data.record import CrystalRecord
>>> from td_data.relax import Relaxer, relax_records
>>> nacl = CrystalRecord([[0, 2.85, 2.85], [2.85, 0, 2.85], [2.85, 2.85, 0]],
...                      [[0, 0, 0], [0.52, 0.5, 0.49]], ["Na", "Cl"], id="NaCl")
>>> [result] = relax_records([nacl], relaxer=Relaxer(threads=1))
>>> result.converged, result.record.id, result.rmsd < 0.1
(True, 'NaCl', True)
>>> -3.8 < result.energy_per_atom < -3.5
True
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from td_data.exceptions import TDDataError
from td_data.plausibility import Plausibility
from td_data.record import CrystalRecord, symbol

__all__ = [
    "Relaxer",
    "RelaxResult",
    "FireSettings",
    "BfgsSettings",
    "relax_records",
    "MAX_ATOMIC_NUMBER",
    "MIN_ENERGY_PER_ATOM",
    "OPTIMIZERS",
]

logger = logging.getLogger(__name__)

EXTRA = "pip install 'td-data[relax]'"
MAX_ATOMIC_NUMBER = 94  # CHGNet 0.3.0 embeds H..Pu (MPtrj holds no heavier element)
# No solid in the Materials Project lies below about -14 eV/atom (PBE total energies); an energy far
# below that means the potential left its training domain and its attraction runs away. The r2SCAN
# checkpoint's total energies run much lower (bcc W: -51 eV/atom), so its floor is lower too.
MIN_ENERGY_PER_ATOM = {"0.3.0": -20.0, "r2scan": -100.0}  # eV/atom, per checkpoint
MAX_VOLUME_PER_ATOM = 500.0  # Angstrom^3: a cell that grows past this has fallen apart (solids stay below 100)
MIN_VOLUME_PER_ATOM = 1.0  # Angstrom^3: the plausibility floor of td_data.plausibility
#: the optimisers relax_records runs: ASE's FIRE (CHGNet's StructOptimizer default) and ASE's BFGS
OPTIMIZERS = ("fire", "bfgs")


# MatterGen's RMSDStructureMatcher tolerances (loose, so that relaxed crystals still find their input)
_RMSD_MATCHER = {
    "ltol": 0.5,
    "stol": 0.5,
    "angle_tol": 10.0,
    "primitive_cell": True,
    "scale": False,
    "attempt_supercell": True,
    "allow_subset": False,
}


def _missing(what: str, err: ImportError) -> ImportError:
    return ImportError(f"{what} needs CHGNet and ASE, which are not installed: {EXTRA} ({err})")


class _LogStream(io.TextIOBase):
    """A text stream that sends each line to the module's logger (CHGNet prints on load)."""

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                logger.info("chgnet: %s", line.strip())
        return len(text)


class Relaxer:
    """A loaded CHGNet model that evaluates energies, forces and stresses of many crystals at once.

    Load it once and pass it to :func:`relax_records` and :func:`energy_above_hull`; it also caches the
    relaxed reference phases of the hull, so reuse it across calls.

    Parameters
    ----------
    model_name:
        CHGNet checkpoint shipped in the wheel: ``"0.3.0"`` (MPtrj, the default) or ``"r2scan"``.
    device:
        ``"cpu"`` (default) or ``"cuda"`` / ``"cuda:N"`` when a GPU is present.
    threads:
        Torch intra-op threads while this relaxer computes (``None`` leaves torch's setting alone);
        the previous setting is restored after each call.

    Examples
    --------
    >>> from td_data.record import CrystalRecord
    >>> relaxer = Relaxer(threads=1)
    >>> relaxer.name
    'CHGNet 0.3.0'
    >>> si = CrystalRecord([[0, 2.73, 2.73], [2.73, 0, 2.73], [2.73, 2.73, 0]], [[0, 0, 0], [0.25] * 3], ["Si"] * 2)
    >>> [out] = relaxer.predict([si])
    >>> sorted(out), out["forces"].shape, out["stress"].shape
    (['energy_per_atom', 'forces', 'stress'], (2, 3), (3, 3))
    """

    def __init__(self, model_name: str = "0.3.0", *, device: str = "cpu", threads: int | None = None) -> None:
        try:
            import torch
            from chgnet.model import CHGNet
        except ImportError as err:
            raise _missing("Relaxer", err) from err
        if model_name not in ("0.3.0", "r2scan"):
            raise TDDataError(
                f"model_name must be '0.3.0' or 'r2scan' (checkpoints in the chgnet wheel), got {model_name!r}"
            )
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise TDDataError(f"threads must be a positive integer or None, got {threads!r}")
        if not isinstance(device, str) or not (device == "cpu" or device.startswith("cuda")):
            raise TDDataError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise TDDataError(f"device {device!r} was asked for, but torch sees no CUDA GPU: use device='cpu'")
        self.threads = threads
        self.device = device
        self.model_name = model_name
        with contextlib.redirect_stdout(_LogStream()):
            model = CHGNet.load(model_name=model_name, use_device=device, verbose=False)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)  # only the inputs need gradients
        model.graph_converter.set_isolated_atom_response("error")
        self.model = model
        self.name = f"CHGNet {model.version}"
        self.min_energy_per_atom = MIN_ENERGY_PER_ATOM[model_name]  # below this the potential has exploded
        self._torch = torch
        # reference phases of the hull: (kind, key, fmax, max_steps, optimizer) -> (energy per atom, phase name) or None
        self.reference_cache: dict[tuple, tuple[float, str] | None] = {}

    def __repr__(self) -> str:
        return f"Relaxer({self.name!r}, device={self.device!r}, threads={self.threads})"

    @contextlib.contextmanager
    def _threads(self) -> Iterator[None]:
        if self.threads is None:
            yield
            return
        before = self._torch.get_num_threads()
        self._torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            self._torch.set_num_threads(before)

    def predict(self, records: Sequence[CrystalRecord], *, batch_size: int = 32) -> list[dict[str, Any]]:
        """Energy per atom (eV), forces (N, 3) (eV/Angstrom) and stress (3, 3) (eV/Angstrom^3, ASE's sign)
        of each record, without relaxing; a record CHGNet cannot take raises :class:`TDDataError`."""
        _check_batch_size(batch_size)
        out: list[dict[str, Any]] = []
        for lo in range(0, len(records), batch_size):
            chunk = [
                _structure(r.lattice, r.frac_coords @ r.lattice, r.atomic_numbers)
                for r in records[lo : lo + batch_size]
            ]
            for rec, got in zip(records[lo : lo + batch_size], self.evaluate(chunk)):
                if isinstance(got, str):
                    raise TDDataError(f"record {rec.id!r}: {got}")
                out.append({"energy_per_atom": got[0], "forces": got[1], "stress": got[2]})
        return out

    def evaluate(self, structures: Sequence[Any]) -> list[tuple[float, np.ndarray, np.ndarray] | str]:
        """One batched CHGNet call: per pymatgen Structure, ``(energy eV/atom, forces (N, 3) eV/A, stress
        (3, 3) eV/A^3)``, or a string saying why the structure could not be evaluated."""
        model = self.model
        graphs: list[Any] = []
        slots: list[int | str] = []
        for s in structures:
            problem = _unknown_element(s.atomic_numbers)
            if problem:
                slots.append(problem)
                continue
            try:
                graphs.append(model.graph_converter(s).to(self.device))
                slots.append(len(graphs) - 1)
            except (ValueError, RuntimeError) as err:  # isolated atoms, bond graph failures
                slots.append(f"CHGNet could not build the crystal graph: {err}")
        results: list[Any] = []
        if graphs:
            try:
                results = self._efs(graphs)
            except (RuntimeError, ValueError, IndexError) as err:
                if len(graphs) == 1:
                    results = [f"CHGNet failed on this crystal: {type(err).__name__}: {err}"]
                else:  # find the culprit: one crystal at a time, so the others still get their numbers
                    logger.info(
                        "batched CHGNet call failed (%s); evaluating the %d crystals one by one", err, len(graphs)
                    )
                    results = []
                    for g in graphs:
                        try:
                            results.extend(self._efs([g]))
                        except (RuntimeError, ValueError, IndexError) as one:
                            results.append(f"CHGNet failed on this crystal: {type(one).__name__}: {one}")
        return [results[s] if isinstance(s, int) else s for s in slots]

    def _efs(self, graphs: list[Any]) -> list[tuple[float, np.ndarray, np.ndarray]]:
        """Energies, forces and stresses of crystal graphs in one forward and one backward pass."""
        from chgnet.model.model import BatchedGraph

        torch = self._torch
        model = self.model
        with self._threads(), warnings.catch_warnings():
            # BatchedGraph.from_graphs turns volumes that need grad into a tensor (harmless; CHGNet's own warning)
            warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad", category=UserWarning)
            comp = model.composition_model(graphs)  # (B,) per-atom reference energies
            batch = BatchedGraph.from_graphs(
                graphs,
                bond_basis_expansion=model.bond_basis_expansion,
                angle_basis_expansion=model.angle_basis_expansion,
                compute_stress=True,
            )
            pred = model._compute(batch)  # energy only: forces and stresses come from one backward below
            per_atom = pred["e"] + comp  # (B,) eV/atom
            counts = pred["atoms_per_graph"]
            # one backward pass for forces and stresses (CHGNet's forward makes two, with create_graph)
            grads = torch.autograd.grad((per_atom * counts).sum(), [*batch.atom_positions, *batch.strains])
            k = len(graphs)
            energies = per_atom.detach().cpu().numpy().astype(float)
            out = []
            for i in range(k):
                forces = -grads[i].detach().cpu().numpy().astype(float)  # (N_i, 3) eV/A
                stress = (grads[k + i] / batch.volumes[i]).detach().cpu().numpy().astype(float)  # (3, 3) eV/A^3
                out.append((float(energies[i]), forces, stress))
        return out


def _unknown_element(numbers: Sequence[int]) -> str | None:
    high = sorted({int(z) for z in numbers if int(z) > MAX_ATOMIC_NUMBER})
    if high:
        names = ", ".join(f"{symbol(z)} (Z={z})" for z in high)
        return f"CHGNet knows elements H..Pu (Z <= {MAX_ATOMIC_NUMBER}), got {names}"
    return None


def _check_batch_size(batch_size: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise TDDataError(f"batch_size must be a positive integer, got {batch_size!r}")


def _structure(lattice: np.ndarray, cart: np.ndarray, numbers: np.ndarray) -> Any:
    from pymatgen.core import Lattice, Structure

    return Structure(Lattice(lattice), [int(z) for z in numbers], cart, coords_are_cartesian=True)


@dataclass(frozen=True)
class RelaxResult:
    """The outcome of relaxing one record.

    Attributes
    ----------
    record:
        The relaxed record (same id, source, labels; properties gain ``energy_per_atom``), or the last
        structure reached when the relaxation ran out of steps, or the input record when it failed.
    initial:
        The input record.
    energy_per_atom:
        CHGNet energy of ``record`` in eV/atom (MP-compatible PBE/PBE+U scale); ``None`` when it failed.
    rmsd:
        Angstrom: RMS displacement between ``initial`` and ``record`` after the best lattice, origin and
        site alignment (pymatgen ``StructureMatcher`` with MatterGen's tolerances: ltol 0.5, stol 0.5,
        angle_tol 10, primitive cell, no volume scaling); pymatgen's value is normalised by
        (V/N)^(1/3), here multiplied back with the mean volume per atom of the two structures.
        ``None`` when there is no relaxed structure or the two do not match (``rmsd_reason`` says why).
    converged:
        The largest force, the cell's generalised force included when the cell is relaxed (ASE's
        ``FrechetCellFilter``: virial / N, so the stress criterion is |sigma| V / N <= fmax, as in
        CHGNet's ``StructOptimizer``), fell to ``fmax`` within ``max_steps`` and the result is plausible.
    n_steps:
        Optimiser steps taken.
    reason:
        Why it did not converge or failed; ``None`` when converged.
    model:
        The potential that computed the energy (``"CHGNet 0.3.0"``); the hull refuses to mix models.
    rmsd_reason:
        Why ``rmsd`` is ``None`` when the relaxation itself gave a structure.
    """

    record: CrystalRecord
    initial: CrystalRecord
    energy_per_atom: float | None
    rmsd: float | None
    converged: bool
    n_steps: int
    reason: str | None
    model: str = ""
    rmsd_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary for a results table (the relaxed record in ``record``)."""
        return {
            "id": self.initial.id,
            "formula": self.initial.formula,
            "num_atoms": self.initial.num_atoms,
            "converged": self.converged,
            "energy_per_atom": self.energy_per_atom,
            "rmsd": self.rmsd,
            "n_steps": self.n_steps,
            "reason": self.reason,
            "rmsd_reason": self.rmsd_reason,
            "model": self.model,
            "record": self.record.to_dict(),
        }


@dataclass(frozen=True)
class FireSettings:
    """FIRE's parameters (Bitzek et al., PRL 97, 170201 (2006)); the defaults are ASE's, which CHGNet's
    ``StructOptimizer`` uses."""

    dt: float = 0.1  # initial time step (ASE units: Angstrom, eV, amu = 1)
    maxstep: float = 0.2  # Angstrom: the largest step of a crystal's whole coordinate vector
    dtmax: float = 1.0  # largest time step
    n_min: int = 5  # steps downhill before the time step may grow
    finc: float = 1.1  # time step growth factor
    fdec: float = 0.5  # time step cut after an uphill step
    astart: float = 0.1  # initial velocity mixing
    fa: float = 0.99  # mixing decay


@dataclass(frozen=True)
class BfgsSettings:
    """BFGS's parameters; the defaults are ASE's, which CHGNet's ``StructOptimizer`` uses.

    ``alpha`` is the initial Hessian, ``alpha`` times the identity in eV/A^2 (over ``FrechetCellFilter``
    coordinates). A smaller value makes the first steps longer: ``benchmarks/relaxation_throughput.py --bfgs-alpha``
    measures the step count and the energies reached against ASE's 70.
    """

    alpha: float = 70.0  # eV/A^2: ASE's initial Hessian
    maxstep: float = 0.2  # Angstrom: the largest move of one atom (or one cell row) per step

    def __post_init__(self) -> None:
        for name in ("alpha", "maxstep"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not (math.isfinite(value) and value > 0)
            ):
                unit = "eV/A^2" if name == "alpha" else "Angstrom"
                raise TDDataError(f"BfgsSettings.{name} must be a finite number > 0 ({unit}), got {value!r}")


def check_optimizer(optimizer: Any, *, fire: Any = None, bfgs: Any = None) -> None:
    """Refuse an optimiser name that is not in :data:`OPTIMIZERS`, naming the ones there are, and settings
    (``fire``: :class:`FireSettings`, ``bfgs``: :class:`BfgsSettings`) of the wrong type or of an optimiser
    that does not run."""
    if optimizer not in OPTIMIZERS:
        raise TDDataError(f"optimizer must be {' or '.join(map(repr, OPTIMIZERS))}, got {optimizer!r}")
    for given, kind, name in ((fire, FireSettings, "fire"), (bfgs, BfgsSettings, "bfgs")):
        if given is None:
            continue
        if not isinstance(given, kind):
            raise TDDataError(f"{name} must be a {kind.__name__}, got {type(given).__name__}")
        if optimizer != name:
            raise TDDataError(
                f"{name}={given!r} was given but optimizer is {optimizer!r}: settings of an optimiser that does not "
                "run would be ignored"
            )


@dataclass
class _Job:
    """One crystal in the lock-step relaxation, with its FIRE state.

    Generalised coordinates (ASE's ``FrechetCellFilter``): ``ru`` (N, 3) the positions with the cell
    deformation taken out, and ``u`` (3, 3) the logarithm of the deformation gradient F (cell = cell0 F^T,
    positions = ru F^T), scaled by N in the coordinate vector so that atoms and cell move alike.
    """

    index: int
    record: CrystalRecord
    cell0: np.ndarray  # (3, 3) input cell, rows are vectors
    ru: np.ndarray  # (N, 3) undeformed Cartesian positions
    u: np.ndarray  # (3, 3) log of the deformation gradient
    cell: np.ndarray  # (3, 3) current cell
    positions: np.ndarray  # (N, 3) current Cartesian positions
    velocity: np.ndarray | None = None  # FIRE
    hessian: np.ndarray | None = None  # BFGS: (ndof, ndof), with the previous coordinates and gradient
    x0: np.ndarray | None = None
    gradient0: np.ndarray | None = None
    dt: float = 0.1
    a: float = 0.1
    n_downhill: int = 0
    n_steps: int = 0
    energy: float | None = None
    fmax_now: float = math.inf

    @property
    def n(self) -> int:
        return len(self.ru)


def _frechet_forces(
    jobs: Sequence[_Job], forces: Sequence[np.ndarray], stresses: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """Generalised forces (N + 3, 3) of ASE's ``FrechetCellFilter`` for each job, the cell rows batched.

    The cell force is d E / d u: ASE sums nine directional derivatives ``expm_frechet(u, E_mn)``; the
    adjoint identity <L(u, E), G> = <E, L(u^T, G)> gives all nine from one Frechet derivative, itself the
    upper-right block of expm([[u^T, G], [0, u^T]]) (Higham, Functions of Matrices, eq. 3.16).
    """
    from scipy.linalg import expm

    k = len(jobs)
    u = np.stack([j.u for j in jobs])  # (k, 3, 3)
    f_grad = expm(u)  # (k, 3, 3) deformation gradients
    volumes = np.abs(np.linalg.det(np.stack([j.cell for j in jobs])))  # (k,)
    virial = -volumes[:, None, None] * np.stack(stresses)  # (k, 3, 3)
    g = virial @ np.linalg.inv(np.swapaxes(f_grad, 1, 2))  # (k, 3, 3) UnitCellFilter's cell gradient
    block = np.zeros((k, 6, 6))
    ut = np.swapaxes(u, 1, 2)
    block[:, :3, :3] = ut
    block[:, 3:, 3:] = ut
    block[:, :3, 3:] = g
    cell_force = expm(block)[:, :3, 3:]  # (k, 3, 3) = L(u^T, G)
    out = []
    for i, job in enumerate(jobs):
        out.append(np.concatenate([forces[i] @ f_grad[i], cell_force[i] / job.n]))  # (N + 3, 3)
    return out


def _fire_step(job: _Job, x: np.ndarray, force: np.ndarray, fire: FireSettings) -> np.ndarray:
    """One FIRE step of ASE's algorithm on the flat coordinates ``x`` with forces ``force``; returns new x."""
    if job.velocity is None:
        job.velocity = np.zeros_like(x)
    else:
        vf = float(force @ job.velocity)
        if vf > 0.0:
            norm_f = math.sqrt(float(force @ force))
            job.velocity = (1.0 - job.a) * job.velocity + job.a * force / norm_f * math.sqrt(
                float(job.velocity @ job.velocity)
            )
            if job.n_downhill > fire.n_min:
                job.dt = min(job.dt * fire.finc, fire.dtmax)
                job.a *= fire.fa
            job.n_downhill += 1
        else:
            job.velocity = np.zeros_like(x)
            job.a = fire.astart
            job.dt *= fire.fdec
            job.n_downhill = 0
    job.velocity = job.velocity + job.dt * force
    dr = job.dt * job.velocity
    norm = math.sqrt(float(dr @ dr))
    if norm > fire.maxstep:
        dr = fire.maxstep * dr / norm
    return x + dr


def _bfgs_step(job: _Job, x: np.ndarray, force: np.ndarray, bfgs: BfgsSettings) -> np.ndarray:
    """One step of ASE's BFGS (Hessian ``alpha`` times 1 to start, rank-two updates, the step scaled so
    that no row of three coordinates moves more than ``maxstep``); returns the new flat coordinates ``x``."""
    gradient = -force
    if job.hessian is None:
        job.hessian = bfgs.alpha * np.eye(len(x))
    else:
        dx = x - job.x0
        if np.abs(dx).max() >= 1e-7:
            dg = gradient - job.gradient0
            a = float(dx @ dg)
            hdx = job.hessian @ dx
            b = float(dx @ hdx)
            if a != 0.0 and b != 0.0:
                job.hessian = job.hessian + np.outer(dg, dg) / a - np.outer(hdx, hdx) / b
    job.x0, job.gradient0 = x.copy(), gradient.copy()
    omega, vectors = np.linalg.eigh(job.hessian)
    dx = -vectors @ (gradient @ vectors / np.fabs(omega))
    longest = float(np.sqrt((dx.reshape(-1, 3) ** 2).sum(axis=1)).max())
    if longest >= bfgs.maxstep:
        dx *= bfgs.maxstep / longest
    return x + dx


def _finish(job: _Job, relaxer: Relaxer, *, converged: bool, reason: str | None, failed: bool = False) -> RelaxResult:
    rec = job.record
    if failed:
        return RelaxResult(rec, rec, None, None, False, job.n_steps, reason, relaxer.name)
    try:
        relaxed = rec.replace(
            lattice=job.cell,
            frac_coords=job.positions @ np.linalg.inv(job.cell),
            properties={**rec.properties, "energy_per_atom": float(job.energy)},
        )
    except TDDataError as err:  # a degenerate cell the record refuses
        return RelaxResult(
            rec, rec, None, None, False, job.n_steps, f"the relaxed cell is invalid: {err}", relaxer.name
        )
    return RelaxResult(relaxed, rec, float(job.energy), None, converged, job.n_steps, reason, relaxer.name)


def with_rmsd(result: RelaxResult) -> RelaxResult:
    """``result`` with the RMSD between its initial and relaxed cells (pymatgen's StructureMatcher), or the reason
    there is none; a result without an energy (the relaxation failed) is returned as it is."""
    if result.energy_per_atom is None:
        return result
    from dataclasses import replace

    from pymatgen.analysis.structure_matcher import StructureMatcher

    a, b = result.initial, result.record
    try:
        found = StructureMatcher(**_RMSD_MATCHER).get_rms_dist(a.to_structure(), b.to_structure())
    except (ValueError, ArithmeticError, np.linalg.LinAlgError) as err:
        return replace(result, rmsd_reason=f"StructureMatcher failed: {err}")
    if found is None:
        return replace(
            result,
            rmsd_reason="StructureMatcher (MatterGen's tolerances: ltol 0.5, stol 0.5, angle_tol 10) finds no match "
            "between the input and the relaxed structure: the relaxation changed the crystal",
        )
    scale = (0.5 * (a.volume + b.volume) / a.num_atoms) ** (1.0 / 3.0)
    return replace(result, rmsd=float(found[0]) * scale)


def relax_records(
    records: Sequence[CrystalRecord],
    *,
    fmax: float = 0.1,
    max_steps: int = 200,
    relax_cell: bool = True,
    batch_size: int = 32,
    progress: bool = False,
    relaxer: Relaxer | None = None,
    plausibility: Plausibility | None = None,
    rmsd: bool = True,
    fire: FireSettings | None = None,
    optimizer: str = "fire",
    workers: int = 1,
    bfgs: BfgsSettings | None = None,
) -> list[RelaxResult]:
    """Relax many crystals with CHGNet at once; one :class:`RelaxResult` per record, in order.

    Parameters
    ----------
    records:
        The crystals. Bad ones give ``converged=False`` with the reason; the others go on.
    fmax:
        Convergence threshold, eV/Angstrom, on the largest force (and the cell's generalised force,
        virial / N, when ``relax_cell``): CHGNet's and MatterGen's default 0.1.
    max_steps:
        FIRE steps before a crystal is given up as not converged (its last structure is kept).
    relax_cell:
        Relax the lattice too (ASE's ``FrechetCellFilter`` coordinates); ``False`` moves the atoms only.
    batch_size:
        Crystals evaluated together in one CHGNet call; a finished crystal's place goes to the next.
    progress:
        Show a tqdm progress bar over the records.
    relaxer:
        A loaded :class:`Relaxer` (default: CHGNet 0.3.0 on the CPU, loaded for this call).
    plausibility:
        Limits checked before relaxing and on the result (default ``Plausibility()``: atoms 0.5 A
        apart at least, 1 A^3 per atom); a record that breaks them is not relaxed.
    rmsd:
        Compute the input-relaxed RMSD (pymatgen's StructureMatcher; ``False`` skips it: ``rmsd=None``).
    fire:
        FIRE's parameters (default :class:`FireSettings`, ASE's values); only with ``optimizer="fire"``.
    optimizer:
        ``"fire"`` (default; CHGNet's ``StructOptimizer`` default) or ``"bfgs"`` (ASE's BFGS, same
        coordinates: fewer steps on crystals near a minimum, each step a small eigen-decomposition).
    workers:
        Processes (default 1: this one). With more, the records are cut into chunks of ``batch_size``
        that worker processes relax, each with its own model of ``relaxer``'s checkpoint and device on
        one torch thread (start-up: a few seconds a worker to import torch and load CHGNet); results come
        back in order, the same as with one process up to float32 noise.
    bfgs:
        BFGS's parameters (default :class:`BfgsSettings`, ASE's values); only with ``optimizer="bfgs"``.
    """
    if isinstance(fmax, bool) or not isinstance(fmax, (int, float)) or not fmax > 0 or not math.isfinite(fmax):
        raise TDDataError(f"fmax must be a positive number of eV/Angstrom, got {fmax!r}")
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 0:
        raise TDDataError(f"max_steps must be a non-negative integer, got {max_steps!r}")
    _check_batch_size(batch_size)
    check_optimizer(optimizer, fire=fire, bfgs=bfgs)
    records = list(records)
    for i, r in enumerate(records):
        if not isinstance(r, CrystalRecord):
            raise TDDataError(f"records must be CrystalRecord objects, got {type(r).__name__} at position {i}")
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise TDDataError(f"workers must be a positive integer, got {workers!r}")
    fire = fire if fire is not None else FireSettings()
    bfgs = bfgs if bfgs is not None else BfgsSettings()
    if workers > 1 and len(records) > batch_size:
        options = {
            "fmax": fmax,
            "max_steps": max_steps,
            "relax_cell": relax_cell,
            "batch_size": batch_size,
            "plausibility": plausibility,
            "rmsd": rmsd,
            "fire": fire if optimizer == "fire" else None,
            "bfgs": bfgs if optimizer == "bfgs" else None,
            "optimizer": optimizer,
        }
        source = (relaxer.model_name, relaxer.device) if relaxer is not None else ("0.3.0", "cpu")
        return _relax_in_processes(records, options, source, workers, progress)
    step = partial(_bfgs_step, bfgs=bfgs) if optimizer == "bfgs" else partial(_fire_step, fire=fire)
    relaxer = relaxer if relaxer is not None else Relaxer()
    check = plausibility if plausibility is not None else Plausibility()

    results: list[RelaxResult | None] = [None] * len(records)
    queue: deque[_Job] = deque()
    bar = _progress_bar(len(records), progress)

    def done(job: _Job, result: RelaxResult) -> None:
        results[job.index] = result
        bar.update(1)
        if not result.converged:
            logger.info("record %r (%s): %s", job.record.id, job.record.formula, result.reason)

    for i, rec in enumerate(records):
        problem = check.problem(rec) or _unknown_element(rec.atomic_numbers)
        if problem:
            results[i] = RelaxResult(rec, rec, None, None, False, 0, problem, relaxer.name)
            bar.update(1)
            logger.info("record %r (%s) not relaxed: %s", rec.id, rec.formula, problem)
            continue
        cart = rec.frac_coords @ rec.lattice
        queue.append(
            _Job(
                i,
                rec,
                rec.lattice.copy(),
                cart.copy(),
                np.zeros((3, 3)),
                rec.lattice.copy(),
                cart,
                dt=fire.dt,
                a=fire.astart,
            )
        )

    active: list[_Job] = []
    # (3, 3) linear algebra in many small calls: BLAS threads only add overhead (and fight torch's)
    limits = threadpool_limits(1, user_api="blas")
    try:
        while queue or active:
            while len(active) < batch_size and queue:
                active.append(queue.popleft())
            evaluated = relaxer.evaluate([_structure(j.cell, j.positions, j.record.atomic_numbers) for j in active])
            ok: list[tuple[_Job, np.ndarray, np.ndarray]] = []
            for job, got in zip(active, evaluated):
                if isinstance(got, str):
                    done(job, _finish(job, relaxer, converged=False, reason=got, failed=True))
                    continue
                e, forces, stress = got
                bad = _exploded(e, forces, stress, relaxer.min_energy_per_atom)
                if bad:
                    done(job, _finish(job, relaxer, converged=False, reason=bad, failed=True))
                    continue
                job.energy = e
                ok.append((job, forces, stress))
            if not ok:
                active = []
                continue
            jobs = [j for j, _, _ in ok]
            if relax_cell:
                general = _frechet_forces(jobs, [f for _, f, _ in ok], [s for _, _, s in ok])
            else:
                general = [f for _, f, _ in ok]
            moved: list[_Job] = []
            for job, gforce in zip(jobs, general):
                job.fmax_now = float(np.sqrt((gforce**2).sum(axis=1)).max())
                if job.fmax_now <= fmax:
                    final = _final_check(job, check)
                    done(job, _finish(job, relaxer, converged=final is None, reason=final))
                    continue
                if job.n_steps >= max_steps:
                    reason = (
                        f"max force {job.fmax_now:.3g} eV/A{' (cell included)' if relax_cell else ''} after "
                        f"{job.n_steps} steps, above fmax {fmax} eV/A"
                    )
                    done(job, _finish(job, relaxer, converged=False, reason=reason))
                    continue
                if relax_cell:
                    x = np.concatenate([job.ru, job.u * job.n]).ravel()
                    x = step(job, x, gforce.ravel()).reshape(-1, 3)
                    job.ru, job.u = x[: job.n], x[job.n :] / job.n
                else:
                    job.positions = step(job, job.positions.ravel(), gforce.ravel()).reshape(-1, 3)
                job.n_steps += 1
                moved.append(job)
            if relax_cell and moved:
                from scipy.linalg import expm

                f_grad = expm(np.stack([j.u for j in moved]))  # (k, 3, 3)
                for job, fg in zip(moved, f_grad):
                    job.cell = job.cell0 @ fg.T
                    job.positions = job.ru @ fg.T
            active = []
            for job in moved:
                per_atom = abs(float(np.linalg.det(job.cell))) / job.n
                if not MIN_VOLUME_PER_ATOM <= per_atom <= MAX_VOLUME_PER_ATOM:
                    reason = (
                        f"the cell went to {per_atom:.3g} A^3 per atom (from {job.record.volume / job.n:.3g}) after "
                        f"{job.n_steps} steps, outside [{MIN_VOLUME_PER_ATOM}, {MAX_VOLUME_PER_ATOM}]: the structure "
                        "collapsed or fell apart"
                    )
                    done(job, _finish(job, relaxer, converged=False, reason=reason, failed=True))
                    continue
                active.append(job)
    finally:
        limits.restore_original_limits()
        bar.close()
    out = [r for r in results if r is not None]
    if rmsd:
        out = [with_rmsd(r) for r in out]
    return out


_WORKER_RELAXER: Relaxer | None = None


def _worker_start(model_name: str, device: str) -> None:
    global _WORKER_RELAXER
    _WORKER_RELAXER = Relaxer(model_name, device=device, threads=1)


def _worker_relax(records: list[CrystalRecord], options: dict[str, Any]) -> list[RelaxResult]:
    return relax_records(records, relaxer=_WORKER_RELAXER, **options)


def _relax_in_processes(
    records: list[CrystalRecord], options: dict[str, Any], source: tuple[str, str], workers: int, progress: bool
) -> list[RelaxResult]:
    """Chunks of ``batch_size`` records relaxed in ``workers`` spawned processes, results in input order."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    size = options["batch_size"]
    chunks = [records[lo : lo + size] for lo in range(0, len(records), size)]
    out: list[RelaxResult] = []
    bar = _progress_bar(len(records), progress)
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads
    try:
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_start, initargs=source) as pool:
            for got in pool.map(_worker_relax, chunks, [options] * len(chunks)):
                out.extend(got)
                bar.update(len(got))
    finally:
        bar.close()
    return out


def _exploded(e: float, forces: np.ndarray, stress: np.ndarray, floor: float) -> str | None:
    if not (math.isfinite(e) and np.all(np.isfinite(forces)) and np.all(np.isfinite(stress))):
        return f"CHGNet returned a non-finite energy, force or stress (energy {e} eV/atom): the potential broke down"
    if e < floor:
        return f"energy {e:.4g} eV/atom, below {floor} eV/atom (no known solid is that low): the potential exploded"
    return None


def _final_check(job: _Job, check: Plausibility) -> str | None:
    try:
        relaxed = CrystalRecord(job.cell, job.positions @ np.linalg.inv(job.cell), job.record.atomic_numbers)
    except TDDataError as err:
        return f"the relaxed cell is invalid: {err}"
    problem = check.problem(relaxed)
    return None if problem is None else f"relaxed into an implausible structure: {problem}"


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, progress: bool) -> Any:
    if not progress:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="relaxing (CHGNet)", unit="crystal")

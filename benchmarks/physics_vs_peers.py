"""td_physics invariants against PythTB and Z2Pack, and against the batched-``eigh`` floor.

Run with ``python benchmarks/physics_vs_peers.py [--repeat N] [--quick]``. Each timing is the best
of N runs (``time.perf_counter``) measured in this process; the script prints one table, the
ratios, every agreement check between our values and the peers', and the targets. It never
asserts on time. PythTB and Z2Pack are dev dependencies (requirements-dev.txt); nothing is
downloaded.

1. Haldane Chern number: ours (one FHS pass on an n x n mesh), PythTB (``wf_array`` with
   ``solve_on_grid`` + ``berry_flux`` on the same n x n points), and the floor: one batched
   ``np.linalg.eigh`` of the n^2 Hamiltonians (built outside the timer; "build+eigh" includes them).
2. Kane-Mele 2D Z2: ours (adaptive WCC flow), PythTB (Wilson loops from ``berry_phase`` with
   ``berry_evals`` on a uniform mesh of the size our run settled on, Z2 counted here with the
   largest-gap rule), Z2Pack's default ``surface.run``; floor = one ``eigh`` over as many k-points
   as our final mesh.
3. Fu-Kane-Mele 3D indices: ours (six planes in one batch) against six Z2Pack surface runs
   combined as nu0 = Z2(k_1=0) + Z2(k_1=1/2) mod 2, nu_i = Z2(k_i=1/2).
4. Labelling throughput (what the data pipeline does): Z2 of many Kane-Mele models at once
   (``phase_diagram``, every model in the same batched solves) against the same models one call
   at a time, and against the floor of one batched ``eigh`` over all the k-points used; values
   checked against the closed form |lambda_v| < 3 sqrt(3) lambda_so.

Gauge: our ``model.hamiltonian`` is the periodic gauge (orbital positions not in the phases).
Z2Pack names conventions after the PythTB formalism notes, where that gauge is *convention 2*
(its default: eigenvectors are multiplied by exp(-2 pi i k.tau) before the overlaps), so
``z2pack.hm.System(..., convention=2)`` is the matching choice; convention=1 would expect the
positions inside H(k).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

try:
    import pythtb
    import z2pack
except ImportError as err:  # dev dependencies, see requirements-dev.txt
    sys.exit(
        f"physics_vs_peers needs PythTB and Z2Pack (dev dependencies): {err}. "
        "Install them with: pip install -r requirements-dev.txt"
    )

from td_physics.invariants import chern_number, z2_indices, z2_invariant
from td_physics.model import TightBindingModel
from td_physics.models import fu_kane_mele, haldane, kane_mele
from td_physics.phase_diagram import phase_diagram

log = logging.getLogger("physics_vs_peers")
ROWS: list[tuple[str, str, float, int, str, str]] = []  # case, method, seconds, k-points, value, ratio
CHECKS: list[tuple[str, bool]] = []
RATIOS: list[tuple[str, float, str, bool | None]] = []  # name, value, target text, target met (None: no test)


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Smallest wall time over ``repeat`` calls, and the last result."""
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def check(name: str, ok: bool) -> None:
    CHECKS.append((name, bool(ok)))
    if not ok:
        log.warning("DISAGREEMENT: %s", name)


def ratio(name: str, value: float, target: str = "", met: bool | None = None) -> float:
    RATIOS.append((name, value, target, met))
    return value


# ----------------------------------------------------------------------------- PythTB model
def to_pythtb(model: TightBindingModel) -> Any:
    """The same Hamiltonian as a ``pythtb.tb_model``, every orbital listed explicitly (nspin=1)."""
    dim_k, dim_r = model.dim_k, model.dim_r
    zero = (0,) * dim_k
    onsite = model.onsite
    diag = np.real(np.diag(onsite)).copy()
    terms: dict[tuple[int, int, tuple[int, ...]], complex] = {}

    def add(i: int, j: int, r: tuple[int, ...], amp: complex) -> None:
        neg = tuple(-x for x in r)
        if (r, i, j) > (neg, j, i):  # one representative of the pair (i, j, R) ~ (j, i, -R)
            i, j, r, amp = j, i, neg, np.conj(amp)
        terms[(i, j, r)] = terms.get((i, j, r), 0.0) + amp

    for i, j in zip(*np.nonzero(np.triu(onsite, 1)), strict=True):
        add(int(i), int(j), zero, onsite[i, j])
    for r, mat in model.hoppings.items():
        for i, j in zip(*np.nonzero(mat), strict=True):
            if i == j and r == zero:  # T_0 and its conjugate both count: 2 Re on the diagonal
                diag[i] += 2 * mat[i, i].real
            else:
                add(int(i), int(j), r, mat[i, j])
    tb = pythtb.tb_model(dim_k, dim_r, model.lattice.tolist(), model.positions.tolist(), per=list(range(dim_k)))
    tb.set_onsite(diag.tolist())
    for (i, j, r), amp in terms.items():
        if amp != 0:
            tb.set_hop(amp, i, j, list(r) + [0] * (dim_r - dim_k))
    rng = np.random.default_rng(0)
    ks = rng.random((8, dim_k))
    same = np.allclose(tb.solve_all(ks).T, model.eigvalsh(ks), atol=1e-10)
    check(f"{model.name}: PythTB copy has our spectrum", same)
    return tb


def largest_gap_z2(wcc: np.ndarray) -> int:
    """Z2 from WCCs (n_pump, nocc) over k in [0, 1/2]: parity of the centres jumped by the largest-gap midpoint."""
    mids = []
    for row in np.sort(np.mod(wcc, 1.0), axis=1):
        ext = np.append(row, row[0] + 1.0)
        g = int(np.argmax(np.diff(ext)))
        mids.append(((ext[g] + ext[g + 1]) / 2) % 1.0)
    jumps = 0
    for z0, z1, nxt in zip(mids[:-1], mids[1:], np.mod(wcc[1:], 1.0), strict=True):
        lo, hi = min(z0, z1), max(z0, z1)
        jumps += int(np.sum((nxt > lo) & (nxt < hi)))
    return jumps % 2


def pythtb_z2(tb: Any, nocc: int, n_string: int, n_pump: int) -> int:
    """Hybrid WCCs along k_1 from PythTB Wilson loops at n_pump values of k_2 in [0, 1/2]."""
    wf = pythtb.wf_array(tb, [n_pump, n_string + 1])
    for i, k2 in enumerate(np.linspace(0.0, 0.5, n_pump)):
        for j in range(n_string):
            wf[i, j] = tb.solve_one([j / n_string, k2], eig_vectors=True)[1]
    wf.impose_pbc(1, 0)
    phases = wf.berry_phase(list(range(nocc)), dir=1, contin=False, berry_evals=True)
    return largest_gap_z2(np.asarray(phases) / (2 * np.pi))


# ----------------------------------------------------------------------------- Z2Pack
def z2pack_system(model: TightBindingModel, counter: list[int]) -> Any:
    def ham(k: Any) -> np.ndarray:
        counter[0] += 1
        return model.hamiltonian(k)[0]

    return z2pack.hm.System(
        ham, dim=model.dim_k, bands=model.n_occupied, pos=model.positions[:, : model.dim_k], convention=2
    )


def z2pack_2d(model: TightBindingModel, counter: list[int]) -> int:
    result = z2pack.surface.run(system=z2pack_system(model, counter), surface=lambda s, t: [t, s / 2])
    return int(z2pack.invariant.z2(result))


def z2pack_3d(model: TightBindingModel, counter: list[int]) -> tuple[tuple[int, ...], list[int]]:
    """(nu0, nu1, nu2, nu3) from the six TRIM planes, and nu0 from each axis (must agree)."""
    system = z2pack_system(model, counter)
    z = np.zeros((3, 2), dtype=int)
    for axis in range(3):
        for col, value in enumerate((0.0, 0.5)):

            def surface(s: float, t: float, axis: int = axis, value: float = value) -> list[float]:
                k = [0.0, 0.0, 0.0]
                k[axis], k[(axis + 1) % 3], k[(axis + 2) % 3] = value, t, s / 2
                return k

            z[axis, col] = z2pack.invariant.z2(z2pack.surface.run(system=system, surface=surface))
    nu0 = ((z[:, 0] + z[:, 1]) % 2).tolist()
    return (nu0[0], int(z[0, 1]), int(z[1, 1]), int(z[2, 1])), nu0


# ----------------------------------------------------------------------------- floor
def eigh_floor(model: TightBindingModel, kpts: np.ndarray, repeat: int) -> tuple[float, float]:
    """Best time of one batched eigh (H built outside the timer) and of build+eigh."""
    h = model.hamiltonian(kpts)
    t_eigh, _ = best_of(lambda: np.linalg.eigh(h), repeat)
    t_full, _ = best_of(lambda: np.linalg.eigh(model.hamiltonian(kpts)), repeat)
    return t_eigh, t_full


def add_floor_rows(case: str, t_eigh: float, t_full: float, nk: int) -> None:
    ROWS.append((case, "floor: eigh", t_eigh, nk, "", "1.0"))
    ROWS.append((case, "floor: build+eigh", t_full, nk, "", f"{t_full / t_eigh:.1f}"))


# ----------------------------------------------------------------------------- benchmarks
def bench_chern(n: int, repeat: int) -> None:
    model = haldane(t1=1.0, t2=0.15, phi=np.pi / 2, m=0.2)
    case = f"Haldane C, {n}x{n}"
    log.info("%s: ours", case)
    t_ours, ours = best_of(lambda: chern_number(model, mesh=n, max_mesh=n), repeat)
    tb = to_pythtb(model)
    occ = list(range(model.n_occupied))

    def run_pythtb() -> float:
        wf = pythtb.wf_array(tb, [n + 1, n + 1])  # n+1 points per side, the last one a periodic copy
        wf.solve_on_grid([0.0, 0.0])
        return float(wf.berry_flux(occ)) / (2 * np.pi)

    log.info("%s: PythTB", case)
    t_tb, c_tb = best_of(run_pythtb, repeat)
    axis = np.arange(n) / n
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    t_eigh, t_full = eigh_floor(model, grid, repeat)
    r_ours = ratio("Chern: ours / eigh floor", t_ours / t_eigh, "<= 3", t_ours / t_eigh <= 3)
    r_tb = ratio("Chern: PythTB / eigh floor", t_tb / t_eigh)
    ratio("Chern: PythTB / ours", t_tb / t_ours, "about 140")
    ROWS.append((case, "ours chern_number", t_ours, n * n, str(ours.value), f"{r_ours:.1f}"))
    ROWS.append((case, "PythTB wf_array+berry_flux", t_tb, n * n, f"{c_tb:+.6f}", f"{r_tb:.0f}"))
    add_floor_rows(case, t_eigh, t_full, n * n)
    check(f"{case}: ours {ours.value} == round(PythTB {c_tb:+.6f})", ours.value == round(c_tb))
    check(f"{case}: PythTB value is an integer", abs(c_tb - round(c_tb)) < 1e-6)
    check(f"{case}: ours converged", ours.converged)


def bench_z2_2d(lambda_v: float, repeat: int) -> None:
    model = kane_mele(t=1.0, lambda_so=0.06, lambda_r=0.0, lambda_v=lambda_v)
    case = f"Kane-Mele Z2, lv={lambda_v}"
    log.info("%s: ours", case)
    t_ours, ours = best_of(lambda: z2_invariant(model), repeat)
    t_wcc, _ = best_of(lambda: z2_invariant(model, method="wcc"), repeat)  # diagnostic: flow only, no parity check
    n_string, n_pump = ours.mesh
    tb = to_pythtb(model)
    log.info("%s: PythTB", case)
    t_tb, z_tb = best_of(lambda: pythtb_z2(tb, model.n_occupied, n_string, n_pump), repeat)
    log.info("%s: Z2Pack", case)
    calls = [0]
    t_zp, z_zp = best_of(lambda: z2pack_2d(model, calls), repeat)
    kp = np.stack(np.meshgrid(np.arange(n_string) / n_string, np.linspace(0, 0.5, n_pump), indexing="ij"), -1)
    t_eigh, t_full = eigh_floor(model, kp.reshape(-1, 2), repeat)
    r_ours = ratio(f"Z2 lv={lambda_v}: ours / eigh floor", t_ours / t_eigh, "<= 3", t_ours / t_eigh <= 3)
    r_tb = ratio(f"Z2 lv={lambda_v}: PythTB / eigh floor", t_tb / t_eigh)
    ratio(f"Z2 lv={lambda_v}: Z2Pack / ours", t_zp / t_ours)
    nk = n_string * n_pump
    ROWS.append((case, f"ours z2_invariant {n_string}x{n_pump}", t_ours, nk, str(ours.value), f"{r_ours:.1f}"))
    ROWS.append((case, "  same, method='wcc' (no parities)", t_wcc, nk, "", f"{t_wcc / t_eigh:.1f}"))
    ROWS.append((case, f"PythTB berry_phase {n_string}x{n_pump}", t_tb, nk, str(z_tb), f"{r_tb:.0f}"))
    ROWS.append((case, "Z2Pack surface.run", t_zp, calls[0] // repeat, str(z_zp), f"{t_zp / t_eigh:.0f}"))
    add_floor_rows(case, t_eigh, t_full, nk)
    check(f"{case}: ours {ours.value} == PythTB {z_tb}", ours.value == z_tb)
    check(f"{case}: ours {ours.value} == Z2Pack {z_zp}", ours.value == z_zp)
    check(f"{case}: ours converged", ours.converged)


def bench_z2_3d(dt: float, repeat: int) -> None:
    model = fu_kane_mele(t=1.0, lambda_so=0.125, dt=dt)
    case = f"Fu-Kane-Mele, dt={dt:+}"
    log.info("%s: ours", case)
    t_ours, ours = best_of(lambda: z2_indices(model), repeat)
    log.info("%s: Z2Pack (six planes)", case)
    calls = [0]
    t_zp, (z_zp, nu0s) = best_of(lambda: z2pack_3d(model, calls), repeat)
    r_zp = ratio(f"3D dt={dt:+}: Z2Pack / ours", t_zp / t_ours, ">= 10", t_zp / t_ours >= 10)
    n_string, n_pump = ours.mesh
    ROWS.append(
        (case, f"ours z2_indices {n_string}x<={n_pump} x6", t_ours, 6 * n_string * n_pump, str(ours.value), "1.0")
    )
    ROWS.append((case, "Z2Pack 6 x surface.run", t_zp, calls[0] // repeat, str(z_zp), f"{r_zp:.0f}"))
    check(f"{case}: ours {ours.value} == Z2Pack {z_zp}", tuple(ours.value) == z_zp)
    check(f"{case}: Z2Pack nu0 the same from all three axes {nu0s}", len(set(nu0s)) == 1)
    check(f"{case}: ours converged", ours.converged)


def bench_batch(n_models: int, repeat: int) -> None:
    lso = 0.06
    rng = np.random.default_rng(0)
    lvs = np.sort(rng.uniform(0.0, 0.6, n_models))
    lvs = lvs[np.abs(lvs - 3 * np.sqrt(3) * lso) > 0.01]  # keep clear of the gap closing
    case = f"{len(lvs)} Kane-Mele models, Z2"
    log.info("%s: batched", case)
    t_batch, diagram = best_of(
        lambda: phase_diagram(kane_mele, {"lambda_v": lvs}, "z2", fixed={"lambda_so": lso}), repeat
    )
    log.info("%s: one by one", case)
    t_loop, loop = best_of(lambda: [z2_invariant(kane_mele(lambda_so=lso, lambda_v=v)) for v in lvs], 1)
    n_string = max(r.mesh[0] for r in loop)
    n_pump = max(r.mesh[1] for r in loop)
    kp = np.stack(np.meshgrid(np.arange(n_string) / n_string, np.linspace(0, 0.5, n_pump), indexing="ij"), -1)
    hs = np.stack([kane_mele(lambda_so=lso, lambda_v=v).hamiltonian(kp.reshape(-1, 2)) for v in lvs])
    t_eigh, _ = best_of(lambda: np.linalg.eigh(hs), repeat)
    nk = len(lvs) * n_string * n_pump
    r_batch = ratio("batch Z2: ours batched / eigh floor", t_batch / t_eigh)
    ratio("batch Z2: one-by-one / batched", t_loop / t_batch)
    ROWS.append((case, "ours phase_diagram (batched)", t_batch, nk, "", f"{r_batch:.1f}"))
    ROWS.append((case, "ours z2_invariant one by one", t_loop, nk, "", f"{t_loop / t_eigh:.1f}"))
    ROWS.append((case, "floor: eigh", t_eigh, nk, "", "1.0"))
    log.info("%s: %.2f ms per model batched", case, 1e3 * t_batch / len(lvs))
    expected = (lvs < 3 * np.sqrt(3) * lso).astype(int)
    check(f"{case}: batched == closed form", bool(np.array_equal(diagram.values, expected)))
    check(f"{case}: one by one == closed form", [r.value for r in loop] == expected.tolist())
    check(f"{case}: all converged", bool(diagram.converged.all()))


# ----------------------------------------------------------------------------- report
def report() -> None:
    print(
        f"\nphysics_vs_peers  numpy {np.__version__}  pythtb {pythtb.__version__}  z2pack {z2pack.__version__}  "
        f"{time.strftime('%Y-%m-%d')}"
    )
    print("ratio column: time / eigh floor of the same case (Fu-Kane-Mele rows: time / ours)\n")
    print(f"{'case':<26} {'method':<34} {'time [ms]':>11} {'k-points':>9} {'value':>14} {'ratio':>7}")
    for case, method, sec, nk, value, rat in ROWS:
        print(f"{case:<26} {method:<34} {sec * 1e3:>11.2f} {nk:>9d} {value:>14} {rat:>7}")
    print("\nRatios (targets are goals, never asserted):")
    for name, value, target, met in RATIOS:
        status = f"  target {target}" if target else ""
        if met is not None:
            status += ": met" if met else ": MISSED"
        print(f"  {name:<34} {value:>9.1f}x{status}")
    bad = [name for name, ok in CHECKS if not ok]
    print(f"\nAgreement checks: {len(CHECKS) - len(bad)}/{len(CHECKS)} passed")
    for name, ok in CHECKS:
        print(f"  [{'ok' if ok else 'DISAGREE'}] {name}")
    if bad:
        print("\nDISAGREEMENTS (100% agreement required):\n  " + "\n  ".join(bad))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="best of N runs per timing (default 5)")
    parser.add_argument("--quick", action="store_true", help="40x40 Chern mesh, one parameter point per model")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("z2pack").setLevel(logging.WARNING)
    repeat = max(1, args.repeat)
    bench_chern(40 if args.quick else 100, repeat)
    for lambda_v in (0.1,) if args.quick else (0.1, 0.4):
        bench_z2_2d(lambda_v, max(repeat, 30))  # millisecond timings: more repeats tame the noise
    for dt in (0.4,) if args.quick else (0.4, -0.4):
        bench_z2_3d(dt, repeat)
    bench_batch(64 if args.quick else 256, repeat)
    report()
    return 0 if all(ok for _, ok in CHECKS) else 1


if __name__ == "__main__":
    sys.exit(main())

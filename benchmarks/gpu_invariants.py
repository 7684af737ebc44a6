#!/usr/bin/env python
"""Batched Chern numbers on a GPU against the numpy path in the same run: a Haldane phase diagram.

    python benchmarks/gpu_invariants.py                                  # CUDA if visible, else torch on CPU
    python benchmarks/gpu_invariants.py --grid 64 --mesh 48 --json out.json
    python benchmarks/gpu_invariants.py --grid 8 --mesh 12               # a quick check anywhere

A ``--grid`` x ``--grid`` grid of Haldane models (t1 = 1, t2 = 0.15, phi in (-pi, pi), m in
[-1.2, 1.2]; Haldane, PRL 61, 2015 (1988)) is labelled three ways on one ``--mesh`` x ``--mesh``
Fukui-Hatsugai-Suzuki mesh:

* **numpy**: ``td_physics.invariants.chern.chern_batch``, the batched path behind ``chern_number`` and
  ``phase_diagram`` (models in memory-bounded chunks, every k-point of a chunk in one ``eigh``);
* **torch**: :func:`td_physics.backend.torch_chern_numbers` on the device in complex128, then complex64.

Each answer is compared with the closed form (C = -sign(sin phi) inside |m| < 3 sqrt(3) t2 |sin phi|,
0 outside), leaving out models whose gap on the mesh is below ``--gap-tol`` (on the phase boundary). The
printed table gives the time of each path, the speed-up over numpy and the number of disagreements.
Nothing asserts on time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def models_on_grid(n: int) -> tuple[list, np.ndarray]:
    """Haldane models on an n x n (phi, m) grid and their closed-form Chern numbers."""
    from td_physics.models import haldane

    t2 = 0.15
    phis = np.linspace(-np.pi, np.pi, n + 2)[1:-1]
    ms = np.linspace(-1.2, 1.2, n)
    models, expected = [], []
    for phi in phis:
        for m in ms:
            models.append(haldane(t2=t2, phi=float(phi), m=float(m)))
            inside = abs(m) < 3 * np.sqrt(3) * t2 * abs(np.sin(phi))
            expected.append(int(-np.sign(np.sin(phi))) if inside else 0)
    return models, np.array(expected)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", type=int, default=64, help="models per axis of the (phi, m) grid")
    p.add_argument("--mesh", type=int, default=48, help="k-points per axis of the FHS mesh")
    p.add_argument("--gap-tol", type=float, default=1e-3, help="models with a smaller gap are not compared")
    p.add_argument("--device", default=None, help="torch device (default: cuda if visible, else cpu)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats of each path (the best is kept)")
    p.add_argument("--json", default=None, help="also write the results as JSON")
    args = p.parse_args(argv)
    for name in ("grid", "mesh", "repeats"):
        if getattr(args, name) < 2 - (name == "repeats"):
            p.error(f"--{name} must be >= {2 - (name == 'repeats')}, got {getattr(args, name)}")

    import torch

    from td_physics.backend import torch_chern_numbers
    from td_physics.invariants.chern import chern_batch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    models, expected = models_on_grid(args.grid)
    n = args.mesh

    def best(fn):
        fn()  # warm-up: CUDA context, kernels, caches
        times = []
        out = None
        for _ in range(args.repeats):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = fn()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        return min(times), out

    def numpy_path():
        raw, max_flux, gap, _ = chern_batch(models, 1, (0, 1), {}, n)
        return {"chern": np.rint(raw).astype(int), "min_gap": gap, "max_flux": max_flux}

    rows = []
    t_np, res_np = best(numpy_path)
    rows.append(("numpy (CPU)", t_np, res_np))
    for dtype in (torch.complex128, torch.complex64):
        t, res = best(lambda dtype=dtype: torch_chern_numbers(models, 1, mesh=n, device=device, dtype=dtype))
        rows.append((f"torch {str(dtype).split('.')[-1]} ({device})", t, res))

    gapped = res_np["min_gap"] > args.gap_tol
    hardware = torch.cuda.get_device_name(0) if device.startswith("cuda") else f"CPU, {os.cpu_count()} cores"
    print(f"\nHaldane phase diagram: {len(models)} models, {n}x{n} mesh, {int(gapped.sum())} with gap > "
          f"{args.gap_tol:g} compared with the closed form; {hardware}, torch {torch.__version__}\n")  # fmt: skip
    print(f"{'path':<34}{'time [s]':>10}{'models/s':>11}{'vs numpy':>10}{'wrong':>7}{'differs from numpy':>20}")
    result = []
    for name, t, res in rows:
        wrong = int((res["chern"][gapped] != expected[gapped]).sum())
        differs = int((res["chern"] != res_np["chern"]).sum())
        print(f"{name:<34}{t:>10.3f}{len(models) / t:>11.0f}{t_np / t:>9.1f}x{wrong:>7}{differs:>20}")
        result.append({"path": name, "seconds": t, "models_per_s": len(models) / t, "speedup_vs_numpy": t_np / t,
                       "wrong_vs_closed_form": wrong, "differs_from_numpy": differs})  # fmt: skip
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"models": len(models), "mesh": n, "compared": int(gapped.sum()), "hardware": hardware,
                       "torch": torch.__version__, "rows": result}, handle, indent=2)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

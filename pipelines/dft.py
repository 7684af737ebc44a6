"""The DFT judge as the pipelines call it: crystal records in, td-physics' ``DFTResult.to_dict()`` out.

Shared by the ``evaluate`` pipeline (verification of the top candidates) and the yield benchmark (DFT on the top
crystals of each arm); td-physics' resumable runner (``td_physics.dft.cli.run_crystals``) does the work, each
crystal in a child process stopped at the time limit. GPAW is imported only when a calculation runs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from pipelines.exceptions import ParameterError

__all__ = ["dft_crystal", "dft_settings", "run_dft"]


def dft_settings(values: Mapping[str, Any], key: str) -> Any:
    """The ``td_physics.dft.DFTSettings`` of ``values`` (the parameter ``key``, named in the error); a bad key or
    value is a :class:`~pipelines.exceptions.ParameterError`."""
    from td_physics.dft import DFTSettings

    try:
        return DFTSettings.from_dict(dict(values))
    except (ValueError, TypeError) as err:
        raise ParameterError(f"{key}: {err}") from err


def dft_crystal(rec: Any) -> dict[str, Any]:
    """A ``td_data.CrystalRecord`` in the input format of ``python -m td_physics.dft run`` (``id``, ``lattice``,
    ``frac_coords``, ``atomic_numbers`` and, where the record has them, ``magmoms``).

    td-physics' DFT takes right-handed cells only; a left-handed cell (sampled or relaxed crystals can have one)
    has its first two lattice vectors swapped, and the coordinates with them: the same crystal, whose weak Z2
    indices then come in the order (nu0; nu2 nu1 nu3) of the record's vectors."""
    lattice, frac = np.asarray(rec.lattice, dtype=float), np.asarray(rec.frac_coords, dtype=float)
    if np.linalg.det(lattice) < 0:
        lattice, frac = lattice[[1, 0, 2]], frac[:, [1, 0, 2]]
    crystal = {
        "id": rec.id,
        "lattice": lattice.tolist(),
        "frac_coords": frac.tolist(),
        "atomic_numbers": [int(z) for z in rec.atomic_numbers],
    }
    if rec.magmoms is not None:
        crystal["magmoms"] = [float(m) for m in rec.magmoms]
    return crystal


def run_dft(
    crystals: list[dict[str, Any]], settings: Any, *, spin_orbit: bool, timeout: float | None, prefix: str = "td-dft-"
) -> list[dict[str, Any]]:
    """``DFTResult.to_dict()`` of each crystal (:func:`dft_crystal`), in order, through td-physics' runner (each
    crystal in a child process stopped at ``timeout`` seconds; None: no limit) in a scratch folder removed
    afterwards; a crystal without a result gets ``converged=False`` and the reason."""
    from td_physics.dft.cli import merge_results, run_crystals

    with tempfile.TemporaryDirectory(prefix=prefix) as scratch:
        run_crystals(crystals, scratch, settings=settings, spin_orbit=spin_orbit, timeout=timeout)
        merged = merge_results(crystals, scratch)
    by_id = {r["id"]: r for r in merged["results"]}
    missing = "no result came back from the DFT runner"
    return [by_id.get(c["id"], {"converged": False, "reason": missing}) for c in crystals]

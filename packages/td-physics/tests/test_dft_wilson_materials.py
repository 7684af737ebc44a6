"""td_physics.dft without inversion: Wilson-loop flow on real crystals (against parities on Bi2Se3: in
test_dft_parity_materials.py, beside Bi2Se3's parity tests, whose ground state it shares).

The physics tests run real GPAW calculations (the ``td-physics[dft]`` extra, installed by ``make install``),
so the expensive ones are marked ``slow``.
"""

from __future__ import annotations

import pytest

from td_physics.dft import dft_invariants
from td_physics.structure.reference import reference_arrays as _reference

pytest.importorskip("gpaw", reason="the td-physics[dft] extra (GPAW) is not installed")

FAST = {"confirm": False}


# ----------------------------------------------------------------------------- physics (real GPAW)
@pytest.mark.slow
def test_gaas_without_inversion_is_trivial_by_wilson_loops():
    result = dft_invariants(*_reference("GaAs"), **FAST)
    assert result.converged, result.reason
    assert (result.topo_class, result.z2_indices, result.method) == ("trivial", (0, 0, 0, 0), "wilson")
    planes = result.details["meshes"][0]["plane_z2"]
    assert set(planes) == {"k1=0", "k1=0.5", "k2=0", "k2=0.5", "k3=0", "k3=0.5"}


@pytest.mark.slow
def test_hgte_is_a_semimetal_and_a_strong_ti_under_uniaxial_strain():
    """HgTe: inverted bands without an inversion centre. Cubic HgTe is a zero-gap semimetal (the Gamma8
    quadruplet sits at the Fermi level); 3% uniaxial compression opens a gap and makes it a strong TI
    (Fu and Kane 2007; Bruene et al., PRL 106, 126803 (2011)): the Wilson-loop branch must find (1;000)."""
    lattice, frac, numbers = _reference("HgTe")
    cubic = dft_invariants(lattice, frac, numbers, **FAST)
    assert cubic.converged, cubic.reason
    assert cubic.topo_class == "semimetal_or_metal" and cubic.band_gap_direct < 0.01
    strained = lattice.copy()
    strained[:, 2] *= 0.97
    result = dft_invariants(strained, frac, numbers, **FAST)
    assert result.converged, result.reason
    assert (result.topo_class, result.z2_indices, result.method) == ("z2_ti", (1, 0, 0, 0), "wilson")
    planes = result.details["meshes"][0]["plane_z2"]
    assert [planes[f"k{i}=0"] for i in (1, 2, 3)] == [1, 1, 1]  # all three readings of nu0 agree
    assert 0.01 < result.band_gap_direct < 0.2

"""Energy above the hull of the phases at hand (td_data.relax.hull), with real CHGNet energies."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

pytest.importorskip("chgnet")
pytest.importorskip("ase")

from td_data.exceptions import TDDataError  # noqa: E402
from td_data.record import CrystalRecord  # noqa: E402
from td_data.relax import BfgsSettings, HullResult, Relaxer, RelaxResult, energy_above_hull, relax_records  # noqa: E402
from td_data.relax.hull import elemental_prototypes  # noqa: E402

FCC = np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]]) / 2.0


def rock_salt(a: float = 5.6, id: str = "NaCl") -> CrystalRecord:
    return CrystalRecord(a * FCC, [[0, 0, 0], [0.5, 0.5, 0.5]], ["Na", "Cl"], id=id)


@pytest.fixture(scope="module")
def relaxer():
    return Relaxer(threads=1)  # one torch thread: steady on a shared machine (two oversubscribe it)


def test_ground_state_element_is_on_the_hull_and_a_strained_polymorph_above(relaxer):
    diamond = CrystalRecord(5.47 * FCC, [[0, 0, 0], [0.25, 0.25, 0.25]], ["Si", "Si"], id="Si-diamond")
    bcc = CrystalRecord(3.1 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5]], ["Si", "Si"], id="Si-bcc")
    squeezed = diamond.replace(lattice=0.93 * diamond.lattice, id="Si-squeezed")
    results = relax_records([diamond, bcc], relaxer=relaxer) + relax_records(
        [squeezed], relaxer=relaxer, relax_cell=False
    )
    hull = energy_above_hull(results, relaxer=relaxer)
    assert hull[0].e_above_hull == pytest.approx(0.0, abs=5e-3)
    assert hull[0].reference_phases == ("Si (diamond)",)
    assert hull[1].e_above_hull > 0.2  # bcc silicon: about 0.4 eV/atom above diamond with CHGNet
    # a squeezed diamond cell (atoms relaxed, cell kept) lies above by its elastic energy
    assert hull[2].e_above_hull == pytest.approx(results[2].energy_per_atom - results[0].energy_per_atom, abs=5e-3)
    assert hull[2].e_above_hull > 0.05


def test_compound_below_its_elements_is_on_the_hull(relaxer):
    [res] = relax_records([rock_salt()], relaxer=relaxer)
    [hull] = energy_above_hull([res], relaxer=relaxer)
    assert hull.reason is None and hull.e_above_hull == 0.0
    assert hull.hull_distance < -1.5 and hull.formation_energy_per_atom == pytest.approx(hull.hull_distance)
    assert all(name.startswith(("Na (", "Cl (")) for name in hull.reference_phases)


def test_training_compounds_enter_the_hull_of_their_chemical_system(relaxer):
    known = [rock_salt(5.5, id="mp-22862"), CrystalRecord(3.1 * np.eye(3), [[0, 0, 0]], ["K"], id="K-other-system")]
    cesium_chloride_type = CrystalRecord(3.3 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5]], ["Na", "Cl"], id="NaCl-B2")
    results = relax_records([rock_salt(5.7, id="candidate"), cesium_chloride_type], relaxer=relaxer)
    hull = energy_above_hull(results, known, relaxer=relaxer)
    # the candidate is the known rock salt: on the hull, not below it
    assert hull[0].hull_distance == pytest.approx(0.0, abs=2e-3)
    assert "mp-22862" in hull[0].reference_phases
    # the B2 polymorph lies above by the energy difference of the two polymorphs
    assert hull[1].reference_phases == ("mp-22862",)
    assert hull[1].e_above_hull == pytest.approx(results[1].energy_per_atom - results[0].energy_per_atom, abs=2e-3)
    assert hull[1].e_above_hull > 0.0


@pytest.mark.parametrize("change", ["permutation", "origin shift", "both"])
def test_energy_and_hull_do_not_depend_on_atom_order_or_origin(relaxer, change):
    rng = np.random.default_rng(3)
    base = CrystalRecord.from_structure(rock_salt(5.5).to_structure() * (2, 1, 1), id="NaCl-4")
    base = base.replace(frac_coords=base.frac_coords + rng.normal(scale=0.01, size=(4, 3)))
    other = base
    if change in ("permutation", "both"):
        order = np.array([2, 0, 3, 1])
        other = other.replace(frac_coords=other.frac_coords[order], atomic_numbers=other.atomic_numbers[order])
    if change in ("origin shift", "both"):
        other = other.replace(frac_coords=other.frac_coords + np.array([0.37, 0.11, 0.71]))
    results = relax_records([base, other], relaxer=relaxer, fmax=0.02)
    hull = energy_above_hull(results, relaxer=relaxer)
    assert all(r.converged for r in results)
    assert results[1].energy_per_atom == pytest.approx(results[0].energy_per_atom, abs=5e-4)
    assert hull[1].hull_distance == pytest.approx(hull[0].hull_distance, abs=5e-4)
    assert hull[1].e_above_hull == hull[0].e_above_hull == 0.0


def test_failed_or_unconverged_candidates_get_a_reason_and_the_others_a_value(relaxer):
    crushed = CrystalRecord(4.0 * np.eye(3), [[0, 0, 0], [0.025, 0, 0]], ["Na", "Cl"], id="crushed")
    results = relax_records([crushed, rock_salt()], relaxer=relaxer)
    [stuck] = relax_records([rock_salt(6.4)], relaxer=relaxer, max_steps=1)
    hull = energy_above_hull([*results, stuck], relaxer=relaxer)
    assert hull[0].e_above_hull is None and "no relaxed energy: atoms 0 and 1 are 0.1 A apart" in hull[0].reason
    assert hull[1].e_above_hull == 0.0
    assert hull[2].e_above_hull is None and "did not converge" in hull[2].reason
    json.dumps([h.to_dict() for h in hull])
    assert isinstance(hull[0], HullResult)


def test_reference_phases_are_cached_on_the_relaxer(relaxer, caplog):
    [res] = relax_records([rock_salt()], relaxer=relaxer)
    energy_above_hull([res], relaxer=relaxer)
    assert relaxer.reference_cache[("element", 11, 0.1, 200, "fire", None)][1].startswith("Na (")
    with caplog.at_level(logging.INFO, logger="td_data.hull"):
        energy_above_hull([res], relaxer=relaxer)
    assert "reference phases" not in caplog.text


def test_the_hull_relaxes_its_references_with_the_candidates_optimizer(relaxer):
    [fire] = relax_records([rock_salt()], relaxer=relaxer)
    [bfgs] = relax_records([rock_salt()], relaxer=relaxer, optimizer="bfgs")
    [by_fire] = energy_above_hull([fire], relaxer=relaxer)
    [by_bfgs] = energy_above_hull([bfgs], relaxer=relaxer, optimizer="bfgs")
    # a cache of its own: FIRE's reference energies are not reused for a BFGS hull
    assert ("element", 11, 0.1, 200, "bfgs", BfgsSettings()) in relaxer.reference_cache
    # and one per BFGS start: references relaxed from ASE's Hessian are not reused for a softer start
    soft = BfgsSettings(alpha=35.0)
    [by_soft] = energy_above_hull([bfgs], relaxer=relaxer, optimizer="bfgs", bfgs=soft)
    assert ("element", 11, 0.1, 200, "bfgs", soft) in relaxer.reference_cache
    assert by_soft.hull_distance == pytest.approx(by_bfgs.hull_distance, abs=5e-3)
    with pytest.raises(TDDataError, match="bfgs=BfgsSettings.* was given but optimizer is 'fire'"):
        energy_above_hull([fire], relaxer=relaxer, bfgs=soft)
    # the same minima: the two hulls agree to within the relaxations' convergence
    assert by_bfgs.hull_distance == pytest.approx(by_fire.hull_distance, abs=5e-3)
    with pytest.raises(TDDataError, match="optimizer must be 'fire' or 'bfgs', got 'lbfgs'"):
        energy_above_hull([fire], relaxer=relaxer, optimizer="lbfgs")


def test_energies_of_another_model_are_refused(relaxer):
    rec = rock_salt()
    foreign = RelaxResult(rec, rec, -3.0, 0.0, True, 3, None, model="another potential")
    with pytest.raises(TDDataError, match="has energies from 'another potential', the hull uses 'CHGNet 0.3.0'"):
        energy_above_hull([foreign], relaxer=relaxer)


def test_elemental_prototypes_put_neighbours_at_twice_the_covalent_radius():
    from ase.data import covalent_radii

    from td_data.plausibility import closest_pair

    for rec in elemental_prototypes("Cu"):
        d, _, _ = closest_pair(rec.lattice, rec.frac_coords)
        assert d == pytest.approx(2 * covalent_radii[29], rel=1e-9), rec.id

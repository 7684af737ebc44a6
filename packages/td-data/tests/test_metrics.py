"""CDVAE / DiffCSP metrics on cases known by hand (tiny cells, so CrystalNN stays fast)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

import td_data.fingerprint.featurise as featurise
from td_data.exceptions import TDDataError
from td_data.metrics import (
    Fingerprints,
    content_hash,
    coverage,
    fingerprints,
    fit_composition_scaler,
    generation_metrics,
    novelty,
    structure_prediction_metrics,
    uniqueness,
    validity_fractions,
    wasserstein_metrics,
)
from td_data.record import CrystalRecord

AVOGADRO = 6.02214076e23


def fcc_primitive(a: float) -> np.ndarray:
    h = a / 2
    return np.array([[0, h, h], [h, 0, h], [h, h, 0]])


def rocksalt(a: float = 5.64, species=("Na", "Cl"), id: str = "NaCl") -> CrystalRecord:
    return CrystalRecord(fcc_primitive(a), [[0, 0, 0], [0.5, 0.5, 0.5]], list(species), id=id)


def cscl_type(a: float = 4.12, species=("Cs", "Cl"), id: str = "CsCl") -> CrystalRecord:
    return CrystalRecord(a * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5]], list(species), id=id)


def zincblende(a: float = 5.41, id: str = "ZnS") -> CrystalRecord:
    return CrystalRecord(fcc_primitive(a), [[0, 0, 0], [0.25, 0.25, 0.25]], ["Zn", "S"], id=id)


def copper(a: float = 3.61, id: str = "Cu") -> CrystalRecord:
    return CrystalRecord(fcc_primitive(a), [[0, 0, 0]], ["Cu"], id=id)


def crushed() -> CrystalRecord:
    return CrystalRecord(4.0 * np.eye(3), [[0, 0, 0], [0.05, 0, 0]], ["Na", "Cl"], id="crushed")


def nacl2() -> CrystalRecord:
    return CrystalRecord(5.0 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0]], ["Na", "Cl", "Cl"], id="NaCl2")


@pytest.fixture(scope="module")
def reference():
    return [rocksalt(), cscl_type(), zincblende(), copper()]


@pytest.fixture(scope="module")
def reference_fp(reference):
    return fingerprints(reference, n_jobs=1)


def test_fingerprint_shapes_and_separation(reference, reference_fp):
    assert reference_fp.structure.shape == (4, 61) and reference_fp.composition.shape == (4, 132)
    assert reference_fp.ok.all()
    # Preconditions of the coverage tests below: every pair of different reference crystals is
    # farther apart than the perov_5 cutoffs in structure (0.2) or in scaled composition (4).
    struct_d = cdist(reference_fp.structure, reference_fp.structure)
    scaler = fit_composition_scaler(reference_fp.composition)
    comp_d = cdist(*(2 * [(reference_fp.composition - scaler[0]) / scaler[1]]))
    off = ~np.eye(4, dtype=bool)
    assert np.all((struct_d[off] > 0.2) | (comp_d[off] > 4.0))


def test_identical_sets_cover_each_other_fully(reference):
    m = generation_metrics(reference, reference, dataset="perov_5", n_jobs=1)
    assert m["cov_recall"] == 1.0 and m["cov_precision"] == 1.0
    assert m["amsd_recall"] == 0.0 and m["amcd_precision"] == 0.0
    assert m["wdist_density"] == 0.0 and m["wdist_num_elems"] == 0.0 and m["wdist_prop"] is None
    assert m["struct_valid"] == m["comp_valid"] == m["valid"] == 1.0
    assert m["uniqueness"] == 1.0 and m["novelty"] is None
    assert (m["struct_cutoff"], m["comp_cutoff"]) == (0.2, 4.0)


def test_copies_of_half_the_reference(reference):
    m = generation_metrics(reference[:2], reference, dataset="perov_5", n_jobs=1)
    assert m["cov_recall"] == 0.5
    assert m["cov_precision"] == 1.0


def test_failed_fingerprint_is_invalid_and_counts_against_cov_p(reference, monkeypatch):
    real = featurise._featurise_cell

    def fail_on_caesium(cell):
        return "RuntimeError: test" if 55 in cell[2] else real(cell)

    monkeypatch.setattr(featurise, "_featurise_cell", fail_on_caesium)
    m = generation_metrics([rocksalt(), cscl_type()], [rocksalt(), zincblende()], n_jobs=1)
    assert m["n_featurisation_failed"] == 1
    assert m["struct_valid"] == 1.0 and m["comp_valid"] == 1.0 and m["valid"] == 0.5
    assert m["cov_precision"] == 0.5  # one hit over both generated crystals
    assert m["cov_recall"] == 0.5


def test_coverage_by_hand():
    ref = Fingerprints(np.array([[0.0], [1.0]]), np.array([[0.0], [10.0]]), np.array([True, True]))
    gen = Fingerprints(
        np.array([[0.1], [5.0], [0.0], [0.9]]),
        np.array([[0.5], [10.0], [0.0], [9.0]]),
        np.array([True, True, False, True]),  # the third failed: out of the distances, in COV-P's denominator
    )
    unit = (np.zeros(1), np.ones(1))
    m = coverage(gen, ref, struct_cutoff=0.2, comp_cutoff=4.0, comp_scaler=unit)
    # ref0: gen0 (0.1, 0.5) -> covered; ref1: gen3 (0.1, 1.0) -> covered.
    assert m["cov_recall"] == 1.0
    # gen0 and gen3 are close to a reference crystal, gen1 is 4 away in structure, gen2 not featurised.
    assert m["cov_precision"] == 2 / 4
    assert m["amsd_recall"] == pytest.approx(0.1)
    assert m["amsd_precision"] == pytest.approx((0.1 + 4.0 + 0.1) / 3)
    mask = [True, True, True, False]
    masked = coverage(gen, ref, struct_cutoff=0.2, comp_cutoff=4.0, comp_scaler=unit, generated_mask=mask)
    assert masked["cov_recall"] == 0.5 and masked["cov_precision"] == 1 / 4
    # As CDVAE, the nearest structure and the nearest composition may belong to different crystals.
    # Here g0 matches ref0's structure only and g1 its composition only, yet ref0 counts as covered.
    split = Fingerprints(np.array([[0.0], [5.0]]), np.array([[10.0], [0.0]]), np.array([True, True]))
    assert coverage(split, ref, struct_cutoff=0.2, comp_cutoff=4.0, comp_scaler=unit)["cov_recall"] == 0.5


def test_composition_scaler_zero_spread_and_missing_values():
    comp = np.array([[1.0, 5.0, np.nan], [3.0, 5.0, np.nan]])
    mean, std = fit_composition_scaler(comp)
    np.testing.assert_allclose(mean, [2.0, 5.0, 0.0])
    np.testing.assert_allclose(std, [1.0, 1.0, 1.0])  # std 1 from data, 0 -> 1, NaN -> 1


def test_validity_fractions():
    assert validity_fractions([rocksalt(), crushed(), nacl2()]) == {
        "struct_valid": 2 / 3,
        "comp_valid": 2 / 3,
        "valid": 1 / 3,
    }
    assert validity_fractions([rocksalt(), copper()], featurised=[True, False])["valid"] == 0.5
    with pytest.raises(TDDataError):
        validity_fractions([])


def test_wasserstein_density_shift_by_hand():
    a, s = 5.64, 1.1
    volume = a**3 / 4  # primitive fcc cell, Angstrom^3
    rho = (22.990 + 35.45) / AVOGADRO / (volume * 1e-24)  # g/cm^3, about 2.16
    m = wasserstein_metrics([rocksalt(a * s)], [rocksalt(a)])
    assert m["wdist_density"] == pytest.approx(rho * (1 - 1 / s**3), rel=1e-9)
    assert m["wdist_num_elems"] == 0.0
    # two against two: the sorted pairs are shifted by the same amount
    m2 = wasserstein_metrics([rocksalt(a * s), rocksalt(a * s)], [rocksalt(a), rocksalt(a)])
    assert m2["wdist_density"] == pytest.approx(m["wdist_density"])
    m3 = wasserstein_metrics(
        [copper(), copper()], [rocksalt(), copper()], property_fn=lambda rs: [r.num_atoms for r in rs]
    )
    assert m3["wdist_num_elems"] == 0.5  # {1, 1} against {2, 1}
    assert m3["wdist_prop"] == 0.5
    with pytest.raises(TDDataError, match="one number per crystal"):
        wasserstein_metrics([copper()], [copper()], property_fn=lambda rs: [1.0, 2.0])


def test_uniqueness_with_one_duplicate():
    moved = CrystalRecord(fcc_primitive(5.70), [[0.3, 0.1, 0.2], [0.8, 0.6, 0.7]], ["Na", "Cl"], id="moved")
    assert uniqueness([rocksalt(), moved, cscl_type()]) == pytest.approx(2 / 3)
    # the same formula in another structure type is not a duplicate
    assert uniqueness([rocksalt(), cscl_type(species=("Na", "Cl"))]) == 1.0


def test_novelty_against_training_set():
    train = [CrystalRecord(fcc_primitive(5.60), [[0.5, 0.5, 0.5], [0, 0, 0]], ["Na", "Cl"]), copper()]
    generated = [rocksalt(), cscl_type(), zincblende()]
    assert novelty(generated, train) == pytest.approx(2 / 3)
    assert novelty(generated, []) == 1.0
    m = generation_metrics(generated + [crushed()], generated, train=train, n_jobs=1)
    assert m["valid"] == 0.75 and m["novelty"] == pytest.approx(2 / 3)  # over the three valid crystals


def conventional_rocksalt(a: float = 5.64, id: str = "NaCl-conventional") -> CrystalRecord:
    corners = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    edges = [[0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5], [0.5, 0.5, 0.5]]
    return CrystalRecord(a * np.eye(3), corners + edges, ["Na"] * 4 + ["Cl"] * 4, id=id)


def test_the_cell_size_filter_leaves_uniqueness_and_novelty_as_the_matcher_gives_them():
    from pymatgen.analysis.structure_matcher import StructureMatcher

    from td_data.metrics import MATCHER_TOLERANCES

    records = [
        rocksalt(),
        conventional_rocksalt(),  # 8 sites, the same crystal: reduced to 2 sites it matches the first
        cscl_type(species=("Na", "Cl")),  # same formula, 2 sites, another structure
        rocksalt(5.8).replace(frac_coords=[[0.1, 0.2, 0.3], [0.6, 0.7, 0.8]]),  # shifted and scaled: a duplicate
        zincblende(),
        copper(),
        CrystalRecord(3.61 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]], ["Cu"] * 4),  # fcc
    ]
    matcher = StructureMatcher(**MATCHER_TOLERANCES)
    structures = [r.to_structure() for r in records]
    naive = sum(not any(matcher.fit(structures[j], structures[i]) for j in range(i)) for i in range(len(records)))
    assert uniqueness(records) == pytest.approx(naive / len(records)) == pytest.approx(4 / 7)
    train = [conventional_rocksalt(5.5), copper(3.7)]
    naive_novel = sum(not any(matcher.fit(t.to_structure(), s) for t in train) for s in structures)
    # novel: only the CsCl-type NaCl and the zinc blende (the 4-site cubic Cu cell is fcc copper)
    assert novelty(records, train) == pytest.approx(naive_novel / len(records)) == pytest.approx(2 / 7)


def test_match_sample_draws_the_crystals_uniqueness_and_novelty_use():
    generated = [rocksalt(5.5 + 0.01 * i) for i in range(6)] + [cscl_type(), zincblende()]
    whole = generation_metrics(generated, generated, train=[rocksalt()], n_jobs=1)
    assert whole["n_match_sample"] == 8 and whole["uniqueness"] == pytest.approx(3 / 8)
    part = generation_metrics(generated, generated, train=[rocksalt()], n_jobs=1, match_sample=4, seed=1)
    assert part["n_match_sample"] == 4 and part["cov_recall"] == whole["cov_recall"]  # coverage keeps them all
    again = generation_metrics(generated, generated, train=[rocksalt()], n_jobs=1, match_sample=4, seed=1)
    assert (again["uniqueness"], again["novelty"]) == (part["uniqueness"], part["novelty"])
    with pytest.raises(TDDataError, match="match_sample must be None or an integer >= 1, got 0"):
        generation_metrics(generated, generated, n_jobs=1, match_sample=0)


def test_structure_prediction_match_and_rmse():
    rng = np.random.default_rng(0)
    corners = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    edges = [[0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5], [0.5, 0.5, 0.5]]
    target = CrystalRecord(5.64 * np.eye(3), corners + edges, ["Na"] * 4 + ["Cl"] * 4)  # conventional rock salt
    perturbed = target.replace(frac_coords=target.frac_coords + rng.normal(0, 0.002, (8, 3)))
    m = structure_prediction_metrics([target, perturbed], [target, target])
    assert m["match_rate"] == 1.0 and m["n_matched"] == 2
    assert 0 <= m["rms_dist"] < 0.01
    other = cscl_type(species=("Na", "Cl"))  # same formula, other structure type
    m = structure_prediction_metrics([other], [target])
    assert m["match_rate"] == 0.0 and np.isnan(m["rms_dist"])
    m = structure_prediction_metrics([crushed(), target], [target, target])  # invalid prediction: counted, no match
    assert m["match_rate"] == 0.5 and m["n_valid_pairs"] == 1
    with pytest.raises(TDDataError, match="same length"):
        structure_prediction_metrics([target], [])


def test_fingerprint_cache_featurises_once(tmp_path, reference, monkeypatch):
    path = tmp_path / "fp.npz"
    first = fingerprints(reference[:2], n_jobs=1, cache=path)
    assert path.exists()
    calls = []
    real = featurise._run_featurisation
    monkeypatch.setattr(featurise, "_run_featurisation", lambda cells, n: calls.append(len(cells)) or real(cells, n))
    again = fingerprints([r.replace(id="renamed") for r in reference[:2]], n_jobs=1, cache=path)  # id is not hashed
    assert calls == []
    np.testing.assert_array_equal(again.structure, first.structure)
    more = fingerprints(reference, n_jobs=1, cache=path)
    assert calls == [2]  # only the two new crystals
    np.testing.assert_array_equal(more.structure[:2], first.structure)
    assert content_hash(reference[0]) == content_hash(reference[0].replace(id="x", labels={"a": 1}))
    assert content_hash(reference[0]) != content_hash(rocksalt(5.65))


def test_an_interrupted_featurisation_keeps_what_it_computed_and_resumes(tmp_path, monkeypatch):
    records = [rocksalt(5.5 + 0.05 * i) for i in range(3)] + [copper(3.5 + 0.05 * i) for i in range(3)]
    path = tmp_path / "generated.npz"

    def stop_after_four(done, total):
        if done == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fingerprints(records, n_jobs=1, cache=path, progress=stop_after_four)
    totals = []
    resumed = fingerprints(records, n_jobs=1, cache=path, progress=lambda done, total: totals.append(total))
    assert set(totals) == {2}  # the four done before the interrupt were kept
    whole = fingerprints(records, n_jobs=1)
    np.testing.assert_array_equal(resumed.structure, whole.structure)
    np.testing.assert_array_equal(resumed.ok, whole.ok)


def test_the_cache_is_written_while_featurising(tmp_path, monkeypatch):
    import time as real_time

    clock = iter(range(0, 1000, 30))  # 30 s per look at the clock: every crystal crosses a 20 s checkpoint

    class FakeTime:  # only featurise's clock; the real time module stays untouched for everything else
        def __getattr__(self, name):
            return getattr(real_time, name)

        @staticmethod
        def monotonic():
            return next(clock)

    monkeypatch.setattr(featurise, "time", FakeTime())
    saved = []
    real_save = featurise._save_cache
    monkeypatch.setattr(
        featurise, "_save_cache", lambda p, entries, v: saved.append(len(entries)) or real_save(p, entries, v)
    )
    records = [rocksalt(5.5 + 0.05 * i) for i in range(3)]
    fingerprints(records, n_jobs=1, cache=tmp_path / "fp.npz", checkpoint_seconds=20)
    assert saved == [1, 2, 3]  # one write per crystal, none left for the end
    with pytest.raises(TDDataError, match="checkpoint_seconds must be a number of seconds > 0, got 0"):
        fingerprints(records, n_jobs=1, cache=tmp_path / "fp.npz", checkpoint_seconds=0)


def test_process_pool_gives_the_same_numbers_in_order():
    records = [rocksalt(5.5 + 0.05 * i) for i in range(4)] + [copper(3.5 + 0.05 * i) for i in range(4)]
    serial = fingerprints(records, n_jobs=1)
    pooled = fingerprints(records, n_jobs=2)
    np.testing.assert_array_equal(serial.structure, pooled.structure)
    np.testing.assert_array_equal(serial.composition, pooled.composition)


def test_bad_arguments():
    with pytest.raises(TDDataError, match="dataset"):
        generation_metrics([copper()], [copper()], dataset="mp20")
    with pytest.raises(TDDataError, match="n_jobs"):
        fingerprints([copper()], n_jobs=0)
    m = generation_metrics([copper()], [copper()], cutoffs=(0.0, 0.0), n_jobs=1)
    assert m["cov_recall"] == 1.0 and (m["struct_cutoff"], m["comp_cutoff"]) == (0.0, 0.0)

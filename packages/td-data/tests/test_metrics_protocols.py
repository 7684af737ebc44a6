"""The published and legacy metric protocols: CDVAE's composition scaling constants, the joint coverage, the
chunked distances and the Wasserstein sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import cdist

import td_data.metrics as metrics
from td_data.exceptions import TDDataError
from td_data.metrics import (
    N_WDIST,
    PROTOCOLS,
    Fingerprints,
    cdvae_composition_scaler,
    cdvae_composition_scaler_source,
    check_generated,
    coverage,
    fingerprints,
    fit_composition_scaler,
    generation_metrics,
)
from td_data.record import CrystalRecord

REPO_ROOT = Path(__file__).resolve().parents[3]
PEROV5 = REPO_ROOT.parent / "shared" / "data" / "benchmarks" / "perov_5"
needs_perov5 = pytest.mark.skipif(not PEROV5.is_dir(), reason=f"Perov-5 data not found at {PEROV5}")


def rocksalt(a: float, species=("Na", "Cl")) -> CrystalRecord:
    h = a / 2
    return CrystalRecord([[0, h, h], [h, 0, h], [h, h, 0]], [[0, 0, 0], [0.5, 0.5, 0.5]], list(species))


# ---------------------------------------------------------------------------------------------- CDVAE's constants
def test_cdvae_scaler_is_132_positive_numbers_with_its_source():
    means, stds = cdvae_composition_scaler()
    assert means.shape == stds.shape == (132,)
    assert np.isfinite(means).all() and (stds > 0).all()
    source = cdvae_composition_scaler_source()
    assert source["repository"] == "https://github.com/txie-93/cdvae"
    assert source["path"] == "cdvae/common/constants.py"
    assert source["commit"] == "73874c48a46b74fedaa161fdac512b0a75e2d336"
    assert source["names"] == ["CompScalerMeans", "CompScalerStds"]
    # the first and last numbers of each list as the file prints them
    assert (means[0], means[-1]) == (21.194441759304013, 136.4664572257129)
    assert (stds[0], stds[-1]) == (16.35781741152948, 85.980205895116)
    means[0] = -1.0  # a caller's copy: the next call reads the file again
    assert cdvae_composition_scaler()[0][0] == 21.194441759304013


def test_cdvae_scaler_order_is_matminers_magpie_order():
    """Each block of six is one Magpie property's (minimum, maximum, range, mean, avg_dev, mode), in the
    order of matminer's preset: the means obey the statistics' own relations and lie within the property's
    range over the elements, which a shifted or permuted order breaks."""
    from matminer.featurizers.composition.composite import ElementProperty

    featuriser = ElementProperty.from_preset("magpie")
    assert list(featuriser.stats) == ["minimum", "maximum", "range", "mean", "avg_dev", "mode"]
    assert len(featuriser.feature_labels()) == 132 == 6 * len(featuriser.features)
    means, stds = cdvae_composition_scaler()
    table = featuriser.data_source.all_elemental_props
    for p, prop in enumerate(featuriser.features):
        lo_, hi_, rng, mean, avg_dev, mode = means[6 * p : 6 * p + 6]
        assert rng == pytest.approx(hi_ - lo_, rel=1e-9, abs=1e-12), prop  # E[max - min] = E[max] - E[min]
        assert lo_ <= mean <= hi_ and lo_ <= mode <= hi_, prop
        values = np.array([v for v in table[prop].values() if v is not None], dtype=float)
        low, high = np.nanmin(values), np.nanmax(values)
        for value in (lo_, hi_, mean, mode):
            assert low <= value <= high, (prop, value, low, high)
        assert 0 <= avg_dev <= high - low and rng <= high - low, prop
        assert (stds[6 * p : 6 * p + 6] <= high - low).all(), prop  # a spread within the property's range


@needs_perov5
def test_memorised_perov5_crystals_are_near_under_cdvae_scaling():
    """The first 400 training crystals against the first 400 test crystals: under CDVAE's constants every
    training crystal has a test crystal within a few composition cutoffs; the test set's own scaling divides
    by the near-zero spread of "mode GSmagmom" and puts one of them hundreds of cutoffs away."""
    from td_data.evaluation import load_split, split_paths

    train_paths, test_path = split_paths("perov_5", PEROV5)
    train = load_split(train_paths, "training", limit=400).records
    test = load_split([test_path], "test", limit=400).records
    train_fp, test_fp = fingerprints(train, n_jobs=1), fingerprints(test, n_jobs=1)
    assert train_fp.ok.all() and test_fp.ok.all()

    def nearest(scaler):
        d = cdist(metrics._scale(train_fp.composition, scaler), metrics._scale(test_fp.composition, scaler))
        return d.min(axis=1)  # per training crystal, (400,)

    published, legacy = nearest(cdvae_composition_scaler()), nearest(fit_composition_scaler(test_fp.composition))
    assert np.median(published) < 4.0 and published.max() < 5 * 4.0
    assert legacy.max() > 100 * 4.0


@pytest.mark.slow
@needs_perov5
def test_memorisation_scores_the_issues_numbers():
    """1,000 training crystals drawn with seed 0 against the 3,785 test crystals: COV-R 89.2 / COV-P 98.1 under
    CDVAE's constants, 59.9 / 90.7 under the test set's scaling, joint COV-R 25.9 under the latter."""
    from td_data.evaluation import load_split, split_paths

    train_paths, test_path = split_paths("perov_5", PEROV5)
    train = load_split(train_paths, "training").records
    test = load_split([test_path], "test").records
    memorised = [train[i] for i in np.random.default_rng(0).choice(len(train), 1000, replace=False)]
    m = generation_metrics(memorised, test, dataset="perov_5", n_jobs=2)
    published, legacy = m["protocols"]["published"], m["protocols"]["legacy"]
    assert (round(published["cov_recall"], 3), round(published["cov_precision"], 3)) == (0.892, 0.981)
    assert (round(legacy["cov_recall"], 3), round(legacy["cov_precision"], 3)) == (0.599, 0.907)
    assert round(legacy["cov_recall_joint"], 3) == 0.259
    assert m["n_valid"] < N_WDIST and published["n_wdist"] == legacy["n_wdist"] == m["n_valid"]  # 982: all


# ---------------------------------------------------------------------------------------------- joint coverage
def test_joint_coverage_asks_for_one_partner():
    unit = (np.zeros(1), np.ones(1))
    ref = Fingerprints(np.array([[0.0], [1.0]]), np.array([[0.0], [10.0]]), np.array([True, True]))
    # g0 meets ref0's structure only, g1 its composition only; g2 meets ref1 in both; g3 failed featurisation
    gen = Fingerprints(
        np.array([[0.0], [5.0], [1.1], [0.0]]),
        np.array([[10.0], [0.0], [9.0], [0.0]]),
        np.array([True, True, True, False]),
    )
    m = coverage(gen, ref, struct_cutoff=0.2, comp_cutoff=4.0, comp_scaler=unit)
    assert m["cov_recall"] == 1.0  # separate minima: ref0 counts through g0 and g1
    assert m["cov_recall_joint"] == 0.5  # only ref1 has one crystal (g2) within both
    assert m["cov_precision"] == 2 / 4  # g0 (struct to ref0, comp to ref1) and g2; g3 counts as a miss
    assert m["cov_precision_joint"] == 1 / 4  # g2 only


def test_chunked_coverage_equals_the_whole_matrix(monkeypatch):
    rng = np.random.default_rng(3)
    n_gen, n_ref = 57, 23
    gen = Fingerprints(rng.random((n_gen, 4)) * 0.6, rng.random((n_gen, 3)) * 6, rng.random(n_gen) > 0.1)
    ref = Fingerprints(rng.random((n_ref, 4)) * 0.6, rng.random((n_ref, 3)) * 6, np.ones(n_ref, dtype=bool))
    unit = (np.zeros(3), np.ones(3))
    cut = {"struct_cutoff": 0.4, "comp_cutoff": 3.0, "comp_scaler": unit}
    monkeypatch.setattr(metrics, "COVERAGE_CHUNK_ELEMENTS", 5 * n_ref)  # blocks of 5 rows, the last one short
    chunked = coverage(gen, ref, **cut)
    s, c = cdist(gen.structure[gen.ok], ref.structure), cdist(gen.composition[gen.ok], ref.composition)
    both = (s <= 0.4) & (c <= 3.0)  # the whole (n_gen_used, n_ref) matrix, by hand
    assert chunked["cov_recall_joint"] == pytest.approx(both.any(axis=0).mean())
    assert chunked["cov_precision_joint"] == pytest.approx(both.any(axis=1).sum() / n_gen)
    assert chunked["cov_recall"] == pytest.approx(np.mean((s.min(0) <= 0.4) & (c.min(0) <= 3.0)))
    assert chunked["amcd_precision"] == pytest.approx(c.min(1).mean())
    monkeypatch.setattr(metrics, "COVERAGE_CHUNK_ELEMENTS", 10**9)  # one block
    assert coverage(gen, ref, **cut) == pytest.approx(chunked)
    assert chunked["cov_recall_joint"] <= chunked["cov_recall"]


# ---------------------------------------------------------------------------------------------- protocols
@pytest.fixture(scope="module")
def salts():
    """12 valid rock-salt crystals of growing lattice constant (so densities differ) and 2 references."""
    generated = [rocksalt(5.3 + 0.05 * i) for i in range(12)]
    return generated, [rocksalt(5.64), rocksalt(5.64, ("K", "Cl"))]


def test_both_protocols_in_one_result(salts):
    generated, reference = salts
    m = generation_metrics(generated, reference, n_jobs=1, n_wdist=5, seed=1)
    assert m["protocol"] == "published" and set(m["protocols"]) == set(PROTOCOLS)
    published, legacy = m["protocols"]["published"], m["protocols"]["legacy"]
    assert all(m[key] == value for key, value in published.items())  # the default fills the top level
    assert published["n_wdist"] == 5 and "5 of 12 valid crystals drawn at random (seed 1)" == published["wdist_sample"]
    assert legacy["n_wdist"] == 12 and legacy["wdist_sample"] == "all 12 valid crystals"
    assert "CompScalerMeans" in published["comp_scaling"] and "reference set" in legacy["comp_scaling"]
    # the structure distances do not depend on the composition scaling
    assert published["amsd_recall"] == legacy["amsd_recall"]
    for p in (published, legacy):
        assert p["cov_recall_joint"] <= p["cov_recall"] and p["cov_precision_joint"] <= p["cov_precision"]
    again = generation_metrics(generated, reference, n_jobs=1, n_wdist=5, seed=1)
    assert again["wdist_density"] == m["wdist_density"]  # the draw is seeded
    other = generation_metrics(generated, reference, n_jobs=1, n_wdist=5, seed=2, protocol="legacy")
    assert other["protocol"] == "legacy" and other["wdist_density"] == legacy["wdist_density"]
    assert other["protocols"]["published"]["wdist_density"] != published["wdist_density"]  # another draw


def test_fewer_valid_crystals_than_n_wdist_uses_all_and_says_so(salts):
    generated, reference = salts
    m = generation_metrics(generated, reference, n_jobs=1)
    assert m["n_wdist"] == 12 and m["wdist_sample"] == f"all 12 valid crystals: not more than n_wdist={N_WDIST}"
    assert m["wdist_density"] == m["protocols"]["legacy"]["wdist_density"]


def test_a_given_scaler_replaces_both_protocols_scaling(salts):
    generated, reference = salts
    unit = (np.zeros(132), np.ones(132))
    m = generation_metrics(generated, reference, n_jobs=1, comp_scaler=unit)
    published, legacy = m["protocols"]["published"], m["protocols"]["legacy"]
    assert published["comp_scaling"] == legacy["comp_scaling"] == "given (comp_scaler)"
    assert published["amcd_recall"] == legacy["amcd_recall"]


def test_checks_computed_once_give_the_same_numbers(salts, monkeypatch):
    generated, reference = salts
    crushed = CrystalRecord(4.0 * np.eye(3), [[0, 0, 0], [0.05, 0, 0]], ["Na", "Cl"])
    checks = check_generated([*generated, crushed], n_jobs=1)
    assert checks.valid.tolist() == [True] * 12 + [False]
    direct = generation_metrics([*generated, crushed], reference, n_jobs=1)

    def refuse(*args, **kwargs):
        raise AssertionError("checked twice")

    monkeypatch.setattr(metrics, "validity_flags", refuse)
    reused = generation_metrics([*generated, crushed], reference, n_jobs=1, checks=checks)
    assert reused == direct
    with pytest.raises(TDDataError, match="checks must be those of the 12 generated crystals, got 13"):
        generation_metrics(generated, reference, n_jobs=1, checks=checks)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"protocol": "diffcsp"}, "protocol must be one of ['published', 'legacy'], got 'diffcsp'"),
        ({"n_wdist": 0}, "n_wdist (valid crystals for the Wasserstein distances) must be an integer >= 1, got 0"),
        ({"n_wdist": 2.5}, "must be an integer >= 1, got 2.5"),
        ({"seed": "x"}, "seed must be an integer, got 'x'"),
    ],
)
def test_bad_protocol_arguments_name_the_rule_and_the_value(kwargs, message):
    with pytest.raises(TDDataError) as err:
        generation_metrics([rocksalt(5.6)], [rocksalt(5.6)], n_jobs=1, **kwargs)
    assert message in str(err.value)

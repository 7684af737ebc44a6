"""td_data.evaluation.baselines: memorisation, random PyXtal structures and the ideal perovskite."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from td_data.evaluation import BASELINES, baseline_records, load_split, perovskite_sites, random_structures
from td_data.exceptions import BaselineNotApplicableError, BenchmarkDataError, EvaluationError
from td_data.record import CrystalRecord
from td_data.validity import min_distance

SHARED = Path(__file__).resolve().parents[4] / "shared" / "data" / "benchmarks"
IDEAL = np.array([[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])


@pytest.fixture(scope="module")
def train() -> list[CrystalRecord]:
    """40 Perov-5 training crystals (the first rows of train_first1024.csv.gz)."""
    path = SHARED / "perov_5" / "train_first1024.csv.gz"
    if not path.is_file():
        pytest.skip(f"the Perov-5 files are not next to the repository ({path})")
    return load_split([path], "training", limit=40).records


def _srtio3(a: float = 3.9) -> CrystalRecord:
    return CrystalRecord(a * np.eye(3), IDEAL, ["Sr", "Ti", "O", "O", "O"], id="SrTiO3")


def _composition(record: CrystalRecord) -> tuple[int, ...]:
    return tuple(sorted(record.atomic_numbers.tolist()))


def _key(record: CrystalRecord) -> bytes:
    return record.lattice.tobytes() + record.frac_coords.tobytes() + record.atomic_numbers.tobytes()


def _same(a: list[CrystalRecord], b: list[CrystalRecord]) -> bool:
    return len(a) == len(b) and all(
        x.id == y.id
        and x.source == y.source
        and np.array_equal(x.atomic_numbers, y.atomic_numbers)
        and np.allclose(x.lattice, y.lattice)
        and np.allclose(x.frac_coords, y.frac_coords)
        for x, y in zip(a, b)
    )


N = {"memorise": 12, "prototype": 12, "random_structures": 4}


@pytest.mark.parametrize("kind", BASELINES)
def test_counts_ids_sources_and_compositions_drawn_from_training_without_replacement(kind, train):
    records = baseline_records(kind, train, N[kind], dataset="perov_5", seed=1)
    assert [r.id for r in records] == [f"{kind}-{i:04d}" for i in range(N[kind])]
    assert all(r.source.startswith(f"baseline {kind}: ") and "training crystal " in r.source for r in records)
    drawn, held = Counter(map(_composition, records)), Counter(map(_composition, train))
    assert all(held[c] >= k for c, k in drawn.items())  # a multiset of the training compositions


@pytest.mark.parametrize("kind", BASELINES)
def test_the_same_seed_gives_the_same_crystals_and_another_seed_others(kind, train):
    first = baseline_records(kind, train, N[kind], dataset="perov5", seed=7)
    assert _same(first, baseline_records(kind, train, N[kind], dataset="perov5", seed=7))
    assert not _same(first, baseline_records(kind, train, N[kind], dataset="perov5", seed=8))


def test_memorise_returns_training_crystals_and_takes_each_once_per_pass(train):
    n = 2 * len(train) + 5
    records = baseline_records("memorise", train, n, dataset="perov_5")
    index = {_key(t): t for t in train}
    assert len(index) == len(train)
    for r in records:
        t = index[_key(r)]
        assert dict(r.properties) == dict(t.properties)
        assert r.source == f"baseline memorise: training crystal {t.id}"
    assert sorted(Counter(map(_key, records)).values()) == [2] * (len(train) - 5) + [3] * 5


def test_random_structures_are_valid_at_the_mean_volume_per_atom_and_do_not_depend_on_n_jobs(train):
    one = random_structures(train, 8, seed=2)
    volume_per_atom = np.mean([t.volume / t.num_atoms for t in train])
    for r in one.records:
        assert min_distance(r) >= 0.5
        assert r.volume / r.num_atoms == pytest.approx(volume_per_atom, rel=1e-9)
    assert one.n_failed_tries >= 0
    assert _same(one.records, random_structures(train, 8, seed=2, n_jobs=2).records)


def test_random_structures_fall_back_to_p1_and_count_the_failed_tries(train):
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    records = random_structures(train, 2, seed=0, max_group_tries=0).records
    assert [SpacegroupAnalyzer(r.to_structure()).get_space_group_number() for r in records] == [1, 1]
    squeezed = [CrystalRecord(0.5 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5]], ["Cs", "Cl"], id="tiny")]
    with pytest.raises(
        EvaluationError, match=r"could not build .*'Cl': 1, 'Cs': 1.* in 5 random space groups .*10 tries"
    ):
        random_structures(squeezed, 1)


def test_prototype_is_the_ideal_cubic_perovskite_with_x_the_anions_and_a_the_larger_cation(train):
    from pymatgen.core import Element
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    records = baseline_records("prototype", train, len(train), dataset="perov_5", seed=3)
    constants = {round(float(np.cbrt(t.volume)), 9) for t in train}
    for r in records:
        a = r.lattice[0, 0]
        assert np.allclose(r.lattice, a * np.eye(3)) and round(a, 9) in constants
        assert np.allclose(r.frac_coords, IDEAL)
        chi = [Element.from_Z(z).X for z in r.atomic_numbers]
        assert min(chi[2:]) >= max(chi[:2])
        assert Element.from_Z(r.atomic_numbers[0]).atomic_radius >= Element.from_Z(r.atomic_numbers[1]).atomic_radius
    plain = next(r for r in records if len(set(r.atomic_numbers[2:].tolist())) == 1)
    assert SpacegroupAnalyzer(plain.to_structure()).get_space_group_number() == 221  # Pm-3m


def test_perovskite_sites_order_a_b_then_the_anions():
    # Ba (larger) on A, Ti on B; mixed anions O, O, N sorted by atomic number
    assert perovskite_sites(np.array([[8, 22, 7, 56, 8], [38, 8, 8, 8, 22]])).tolist() == [
        [56, 22, 7, 8, 8],
        [38, 22, 8, 8, 8],
    ]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"kind": "copy"},
            EvaluationError,
            r"kind must be one of \('memorise', 'random_structures', 'prototype'\), got 'copy'",
        ),
        ({"n": 0}, EvaluationError, "n must be an integer >= 1, got 0"),
        ({"n": True}, EvaluationError, "n must be an integer >= 1, got True"),
        ({"seed": -1}, EvaluationError, "seed must be an integer >= 0, got -1"),
        ({"kind": "random_structures", "n_jobs": 0}, EvaluationError, "n_jobs must be an integer >= 1, got 0"),
        ({"train_records": []}, EvaluationError, "the training set must hold at least one crystal, got 0"),
        ({"train_records": ["SrTiO3"]}, EvaluationError, "training crystals must be CrystalRecords, got str"),
        ({"dataset": "perov6"}, BenchmarkDataError, "dataset must be one of .* got 'perov6'"),
        ({"dataset": "carbon24"}, BaselineNotApplicableError, "Carbon-24 has no single prototype"),
        ({"dataset": "mp_20"}, BaselineNotApplicableError, "MP-20 has no single prototype"),
        (
            {"train_records": [CrystalRecord(4 * np.eye(3), [[0, 0, 0]], ["Cu"])]},
            EvaluationError,
            "5 atoms .* got \\[1\\]",
        ),
    ],
)
def test_bad_input_names_the_rule_and_the_value(kwargs, error, message):
    args = {"kind": "prototype", "train_records": [_srtio3()], "n": 2, "dataset": "perov_5", "seed": 0, **kwargs}
    with pytest.raises(error, match=message) as caught:
        baseline_records(args.pop("kind"), args.pop("train_records"), args.pop("n"), **args)
    assert isinstance(caught.value, ValueError)

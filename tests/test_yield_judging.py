"""The yield benchmark's options, training store, guidance sweep, relaxation outcomes and DFT selection, without a
trained model (the Kedro runs are in tests/test_conditional_yield.py)."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.benchmark.options import YieldOptions
from pipelines.benchmark.yield_judging import dft_top_k, relax_outcome, top_k
from pipelines.benchmark.yield_sweep import headline_point, sweep_figure, sweep_summary
from pipelines.exceptions import ParameterError
from td_data import CrystalRecord
from td_data.evaluation import enrichment, share

FCC = 5.431 / 2 * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
SI = CrystalRecord(FCC, [[0, 0, 0], [0.25, 0.25, 0.25]], [14, 14], id="si")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"guidance_scales": []},
            "yield_options.guidance_scales must be null or a non-empty list of distinct numbers > 0",
        ),
        ({"guidance_scales": [1.0, 0.0]}, "yield_options.guidance_scales must be null or a non-empty list"),
        ({"guidance_scales": [-2]}, "got [-2]"),
        ({"guidance_scales": [1.0, 1.0]}, "distinct"),
        ({"guidance_scales": "2"}, "yield_options.guidance_scales"),
        ({"property_guidance_scales": []}, "yield_options.property_guidance_scales must be null or a non-empty list"),
        ({"property_guidance_scales": [-0.5]}, "numbers >= 0, got [-0.5]"),
        ({"property_guidance": -1}, "yield_options.property_guidance must be a number >= 0, got -1"),
        ({"dft_top_k": -1}, "yield_options.dft_top_k must be an integer >= 0 (0: no DFT), got -1"),
        ({"dft_timeout": 0}, "yield_options.dft_timeout must be a number > 0"),
        ({"relax": "yes"}, "yield_options.relax must be true or false, got 'yes'"),
        ({"relax_max_steps": 0}, "yield_options.relax_max_steps must be an integer >= 1"),
        ({"train_data": ""}, "yield_options.train_data must be the path of a td-data crystal store or null"),
        ({"dft_settings": [1]}, "yield_options.dft_settings must be a mapping of DFTSettings keys"),
    ],
)
def test_bad_yield_options_name_the_key_and_the_value(values, message):
    with pytest.raises(ParameterError) as err:
        YieldOptions.from_dict(values)
    assert message in str(err.value)


def test_single_scale_means_what_it_meant_and_lists_make_a_grid():
    assert YieldOptions().sweep() == [(None, 0.0)]  # the model's own guidance scale, no class-head guidance
    assert YieldOptions.from_dict({"guidance_scale": 2.5, "property_guidance": 0.3}).sweep() == [(2.5, 0.3)]
    grid = YieldOptions.from_dict(
        {"guidance_scale": 9.0, "guidance_scales": [1, 4], "property_guidance_scales": [0, 2]}
    )
    assert grid.sweep() == [(1.0, 0.0), (1.0, 2.0), (4.0, 0.0), (4.0, 2.0)]
    assert YieldOptions.from_dict({"guidance_scales": [3]}).guidance_scales == (3.0,)


def test_bad_dft_settings_are_a_parameter_error_before_any_calculation():
    options = YieldOptions.from_dict({"dft_top_k": 1, "dft_settings": {"no_such_key": 1}})
    with pytest.raises(ParameterError, match="yield_options.dft_settings"):
        dft_top_k({"conditioned": [_row("si", "z2_ti")]}, {"si": SI}, options, "z2_ti")


def test_a_missing_or_unreadable_training_store_names_the_key(tmp_path):
    from pipelines.benchmark.yields import yield_training_items

    with pytest.raises(ParameterError, match=r"yield_options.train_data must name an existing td-data crystal store"):
        yield_training_items({"train_data": str(tmp_path / "absent.h5")}, {}, {})
    bad = tmp_path / "not_a_store.h5"
    bad.write_text("plain text")
    with pytest.raises(ParameterError, match=r"yield_options.train_data .* is not a readable td-data crystal store"):
        yield_training_items({"train_data": str(bad)}, {}, {})


def test_the_training_store_trains_with_its_own_labels(tmp_path):
    pytest.importorskip("td_models")
    from pipelines.benchmark.yields import yield_training_items
    from td_data.store import write_store

    rocksalt = 6.46 / 2 * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    records = [
        SI.replace(labels={"topo_class": "trivial"}),
        CrystalRecord(rocksalt, [[0, 0, 0], [0.5, 0.5, 0.5]], ["Sn", "Te"], id="snte", labels={"topo_class": "z2_ti"}),
        CrystalRecord(rocksalt, [[0, 0, 0], [0.5, 0.5, 0.5]], ["Pb", "Te"], id="pbte"),
    ]
    path = write_store(tmp_path / "families.h5", records)
    items, meta = yield_training_items({"train_data": str(path), "n_train": 1}, {}, {})
    labels = meta["training_labels"]
    assert labels["source"] == "store" and labels["path"] == str(path)
    assert (labels["n_records"], labels["n_labelled"], labels["n_unlabelled"]) == (3, 2, 1)
    assert labels["class_counts"] == {"trivial": 1, "z2_ti": 1, "chern": 0, "semimetal_or_metal": 0}
    assert labels["target_atom_counts"] == {"2": 1}  # JSON keys
    assert len(items) == meta["n_items"] == meta["n_train"] == 3 and meta["train_data"] == str(path)


def _relaxed(converged: bool, energy: float | None, steps: int):
    from td_data.relax import RelaxResult

    return RelaxResult(SI, SI, energy, None, converged, steps, None if converged else "why")


def test_relax_outcome_comes_from_the_fields():
    assert relax_outcome(_relaxed(True, -5.4, 12)) == "relaxed"
    assert relax_outcome(_relaxed(False, -5.1, 200)) == "failed"  # a structure, not converged
    assert relax_outcome(_relaxed(False, None, 7)) == "exploded"  # started, no structure came back
    assert relax_outcome(_relaxed(False, None, 0)) == "refused"  # no step taken


def _row(rid: str, cls: str | None, confidence: float = 1.0, predicted: str | None = None, p: float = 0.0) -> dict:
    status = "labelled" if cls else "labeller timeout"
    return {"id": rid, "status": status, "recomputed_class": cls, "confidence": confidence, "formula": "Si",
            "num_atoms": 2, "predicted_class": predicted, "predicted_class_probability": p}  # fmt: skip


def test_top_k_ranks_the_tb_class_then_confidence_then_the_class_head():
    rows = [_row("a", "trivial", 1.0, "z2_ti", 0.9), _row("b", "z2_ti", 0.5), _row("c", "z2_ti", 0.5, "z2_ti", 0.6),
            _row("d", "z2_ti", 0.8), _row("e", None)]  # fmt: skip
    assert [r["id"] for r in top_k(rows, 3, "z2_ti")] == ["d", "c", "b"]
    assert [r["id"] for r in top_k(rows, 10, "z2_ti")] == ["d", "c", "b", "a"]  # unlabelled crystals are never chosen


def test_no_dft_with_k_0_gives_nulls_and_the_reason():
    out = dft_top_k({"conditioned": [_row("a", "z2_ti")], "unconditioned": []}, {"a": SI},
                    YieldOptions.from_dict({"dft_top_k": 0}), "z2_ti")  # fmt: skip
    assert out["skipped"] == "yield_options.dft_top_k is 0"
    assert out["confirmed"] == {"conditioned": None, "unconditioned": None} and out["results"] == []


@pytest.mark.slow
def test_dft_on_the_top_crystal_answers_and_counts_it():
    """GPAW on Si at the coarsest settings (about 10 s): trivial, so it confirms no z2_ti."""
    pytest.importorskip("gpaw")
    options = YieldOptions.from_dict({"dft_top_k": 1, "dft_timeout": 120.0,
                                      "dft_settings": {"min_kpts": 2, "max_kpts": 2, "confirm": False}})  # fmt: skip
    rows = {"conditioned": [_row("si", "z2_ti", 0.9)], "unconditioned": [_row("absent", None)]}
    out = dft_top_k(rows, {"si": SI}, options, "z2_ti")
    assert out["skipped"] is None and out["selected"] == {"conditioned": ["si"], "unconditioned": []}
    [result] = out["results"]
    assert result["converged"] and result["topo_class"] == "trivial" and result["tb_class"] == "z2_ti"
    assert result["formula"] == "Si" and result["rank"] == 1 and out["quarantined"] == []
    assert out["confirmed"] == {"conditioned": 0, "unconditioned": 0}
    assert out["n_converged"] == {"conditioned": 1, "unconditioned": 0}


def _summary(hits: int, n: int) -> dict:
    quality = {k: share(n, n) for k in ("structural_validity", "compositional_validity", "unique_compositions")}
    return {"n_z2_ti": hits, "n_generated": n, "n_labelled": n, "share_over_labelled": share(hits, n),
            "share_over_generated": share(hits, n), "class_counts": {"z2_ti": hits},
            "quality": {**quality, "mean_fingerprint_distance": 0.5}, "relaxation": {"enabled": False}}  # fmt: skip


def test_headline_is_the_point_with_the_highest_lower_bound():
    # 40/100 against 2/100 has a higher lower bound than 2/4 (a higher ratio, a wider interval) against 2/100
    points = [{"sampling": {"guidance_scale": w, "property_guidance": 0.0}, "summary": _summary(x, n)}
              for w, x, n in ((1.0, 0, 100), (2.0, 40, 100), (4.0, 2, 4))]  # fmt: skip
    sweep, enrichments = sweep_summary(points, _summary(2, 100), "z2_ti")
    assert enrichments[2]["ratio"] > enrichments[1]["ratio"] and enrichments[1]["ci_low"] > enrichments[2]["ci_low"]
    assert sweep["headline"] == 1 and "optimistic" in sweep["headline_rule"]
    assert sweep["points"][0]["enrichment_over_labelled"]["status"] == "zero"
    assert sweep["points"][1]["enrichment_over_labelled"]["ratio"] == pytest.approx(20.0)
    assert headline_point([enrichment(0, 10, 0, 10), enrichment(0, 10, 0, 10)]) == 0  # undefined: the first
    assert headline_point([enrichment(0, 10, 3, 10), enrichment(2, 10, 0, 10)]) == 1  # infinite beats zero
    single, _ = sweep_summary(points[:1], _summary(2, 100), "z2_ti")
    assert single["headline"] == 0 and single["headline_rule"] == "the only point"


def test_sweep_figure_draws_each_property_scale(tmp_path):
    pytest.importorskip("matplotlib")
    points = [{"sampling": {"guidance_scale": w, "property_guidance": p}, "summary": _summary(3, 50)}
              for w in (1.0, 2.0) for p in (0.0, 1.0)]  # fmt: skip
    sweep, _ = sweep_summary(points, _summary(1, 50), "z2_ti")
    fig = sweep_figure(sweep, "z2_ti")
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert any("property guidance 1" in label for label in labels) and any("unconditioned" in la for la in labels)
    fig.savefig(tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").stat().st_size > 1000


@pytest.mark.slow
def test_relaxed_crystals_are_labelled_as_they_sit_and_the_others_are_counted():
    """relabel_arm with relaxation on: a strained Si cell relaxes (CHGNet) and is labelled in its relaxed form; a
    cell whose atoms have no neighbour within CHGNet's cutoff is refused and not labelled."""
    pytest.importorskip("chgnet")
    from pipelines.benchmark.yields import relabel_arm

    strained = SI.replace(lattice=FCC * 1.04, id="strained-si")
    gas = CrystalRecord(12.0 * np.eye(3), [[0, 0, 0]], ["Sn"], id="gas-sn")
    options = YieldOptions.from_dict({"relax": True, "relax_max_steps": 200, "label_timeout": 60.0})
    timings: dict = {}
    rows, summary, judged = relabel_arm([strained, gas], [], options, "conditioned", timings=timings)
    by_id = {r["id"]: r for r in rows}
    si, sn = by_id["strained-si"], by_id["gas-sn"]
    assert si["relax_outcome"] == "relaxed" and si["status"] == "labelled" and si["recomputed_class"] == "trivial"
    assert si["relax_rmsd"] is not None and si["relax_energy_per_atom"] < -4.0
    # judged as it sits: the relaxed cell shrank back towards silicon's 40 A^3 per 2 atoms
    assert judged["strained-si"].volume < strained.volume and set(judged) == {"strained-si"}
    assert sn["relax_outcome"] == "refused" and sn["status"] == "relaxation refused" and "isolated" in sn["detail"]
    relax = summary["relaxation"]
    assert (relax["n_attempted"], relax["n_relaxed"], relax["n_refused"]) == (2, 1, 1)
    assert summary["unlabelled_reasons"]["relaxation refused"] == 1 and summary["n_labelled"] == 1
    assert set(timings) == {"relax", "label_conditioned", "quality"}

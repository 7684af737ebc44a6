"""The conditional-yield benchmark as a Kedro run (``kedro run --env yield``): one tiny run in one process and
one as three stages, the GPU half with the materials stack blocked; the guidance sweep with relaxation on the tiny
run's model. Its statistics (Wilson, Katz, the zero cases) are td_data.evaluation.yields' and tested there; the
sweep, relaxation and DFT helpers in tests/test_yield_judging.py."""

from __future__ import annotations

import json
import subprocess
from collections import Counter

import pytest

from pipelines.benchmark.options import YieldOptions
from pipelines.exceptions import ParameterError
from tests.gpu_node import ROOT, kedro_run

#: one guidance scale, no relaxation and no DFT: the fast path (the sweep and relaxation: test_guidance_sweep_...)
SINGLE = "yield_options.guidance_scales=null,yield_options.relax=false,yield_options.dft_top_k=0"
TINY = ("yield_options.n_train=24,train_options.budget_minutes=0.2,training_config.max_epochs=2,"
        f"generate_options.n_candidates=6,generate_options.steps=5,{SINGLE}")  # fmt: skip


def _kedro(pipeline: str, params: str, blocked: bool = False) -> subprocess.CompletedProcess:
    return kedro_run("yield", pipeline, params, blocked)


def _ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def test_class_modes_draw_the_conditioned_arms_sizes_from_the_z2_ti_training_crystals():
    """num_atoms class-labellable: the conditioned arm takes the sizes of the model's z2_ti crystals (at most
    max_label_atoms sites), the unconditioned arm all training sizes; train-labellable: one draw for both."""
    import numpy as np

    from pipelines.benchmark.yields import atom_counts, sample_yield_arms
    from td_models import ExperimentConfig, ModelConfig, TopologicalDiffusionModel
    from td_models.batch import crystal_item

    rng = np.random.default_rng(0)

    def item(n, topo_class):
        return crystal_item(4.0 * np.eye(3), rng.random((n, 3)), [83, 34] * (n // 2) + [52] * (n % 2),
                            topo_class=topo_class)  # fmt: skip

    model = TopologicalDiffusionModel(ExperimentConfig(model_config=ModelConfig(
        hidden_dim=16, num_layers=1, num_heads=2, num_steps=5, max_atoms=8)))  # fmt: skip
    items = [item(5, "z2_ti")] * 3 + [item(7, "z2_ti")] * 2 + [item(2, "trivial")] * 6 + [item(3, None)] * 4
    model.fit_normalisation(items)
    options = YieldOptions.from_dict({"num_atoms": "class-labellable", "max_label_atoms": 6})
    conditioned, unconditioned, info = atom_counts(model, options, 40, seed=0)
    assert set(conditioned.tolist()) == {5}  # the 7-site z2_ti cells are over max_label_atoms
    assert set(unconditioned.tolist()) <= {2, 3, 5} and len(set(unconditioned.tolist())) == 3
    assert info["distribution_conditioned"] == {5: 1.0} and info["drawn_conditioned"] == {5: 40}
    assert info["distribution"] == {2: 0.4615, 3: 0.3077, 5: 0.2308}
    _, _, info = atom_counts(model, YieldOptions.from_dict({"num_atoms": "class"}), 400, seed=0)
    assert set(info["drawn_conditioned"]) == {5, 7}
    same = atom_counts(model, YieldOptions.from_dict({"num_atoms": "train-labellable"}), 40, seed=0)
    assert same[0] is same[1] and (same[1] == unconditioned).all() and "drawn_conditioned" not in same[2]
    model.class_element_count_weights.zero_()  # a model without z2_ti examples (or an older file)
    with pytest.raises(ParameterError, match="no z2_ti training crystal in its per-class histograms"):
        atom_counts(model, options, 4, seed=0)
    with pytest.raises(ParameterError, match="generate_options.class_counts is true, but the yield benchmark"):
        sample_yield_arms(model, {}, {}, {"class_counts": True})


def test_bad_option_names_the_rule_and_the_value():
    with pytest.raises(ParameterError) as err:
        YieldOptions.from_dict({"num_atoms": "lots"})
    assert str(err.value).startswith(
        "yield_options.num_atoms must be one of 'train-labellable', 'train', "
        "'class-labellable', 'class' or an integer, got 'lots'"
    )
    with pytest.raises(ParameterError, match="yield_options.label_timeout must be a number > 0"):
        YieldOptions.from_dict({"label_timeout": 0})
    with pytest.raises(ParameterError, match="yield_options.guidance_scale must be a number >= 0"):
        YieldOptions.from_dict({"guidance_scale": -1})


def test_missing_stage_inputs_name_the_stage_that_writes_them(tmp_path):
    done = _kedro("yield_evaluate", f"output_dir={tmp_path}")
    assert done.returncode != 0 and "MissingInputsError" in done.stderr
    assert "yield_samples_conditioned" in done.stderr and "yield_train" in done.stderr
    done = _kedro("yield_train", f"output_dir={tmp_path}")
    assert done.returncode != 0 and "yield_items" in done.stderr and "yield_prepare" in done.stderr
    assert not any(tmp_path.iterdir())  # nothing written


#: what each stage times (``timings_seconds`` keys)
PREPARE_PARTS = ("generate_training_data", "label_training_data")
TRAIN_PARTS = ("train_setup", "train", "sample_conditioned", "sample_unconditioned")
LABEL_PARTS = ("relax", "label_conditioned", "label_unconditioned", "quality", "dft", "figure")


def _check_timings(result: dict, walls: dict[str, float]) -> None:
    """``timings_seconds`` has exactly the phases that ran; each stage's parts fit in the stage, the stages in the
    measured wall time of the process(es) that ran them, and ``total`` is the sum of the stages. Every value is
    rounded to 0.01 s, hence the tolerances of half a hundredth per summand."""
    timings, stages = result["timings_seconds"], result["stage_seconds"]
    spans = {"prepare": PREPARE_PARTS, "train": TRAIN_PARTS, "evaluate": LABEL_PARTS}
    assert set(timings) == {*(p for parts in spans.values() for p in parts), "total"}
    assert all(v >= 0 for v in timings.values()), timings
    for stage, parts in spans.items():
        assert sum(timings[p] for p in parts) <= stages[stage] + 0.005 * (len(parts) + 1), (stage, timings)
    assert timings["total"] == pytest.approx(sum(stages.values()), abs=0.005 * (len(spans) + 1))
    assert 0 < timings["total"] <= sum(walls.values()), (timings, walls)
    if len(walls) > 1:  # one process per stage: each stage fits in its own process
        for stage in spans:
            assert stages[stage] <= walls[stage], (stage, stages, walls)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    pytest.importorskip("td_models")
    pytest.importorskip("matplotlib")
    out = tmp_path_factory.mktemp("conditional_yield")
    return out, _ok(_kedro("yield_benchmark", f"output_dir={out},{TINY}"))


@pytest.mark.slow
def test_tiny_run_writes_files_and_keys(tiny_run):
    from td_data.evaluation import enrichment, enrichment_for_json

    out, done = tiny_run
    for name in ("metrics.json", "yield.md", "yield.png", "guidance_sweep.png", "crystals.csv", "model.pt"):
        assert (out / name).is_file(), name
    assert (out / "yield.png").stat().st_size > 1000 and (out / "guidance_sweep.png").stat().st_size > 1000
    result = json.loads((out / "metrics.json").read_text())
    for key in ("arms", "enrichment_by_basis", "sweep", "relaxation", "dft", "training_labels", "training",
                "sampling", "config", "timings_seconds", "hardware", "notes", "num_atoms"):  # fmt: skip
        assert key in result, key
    tl = result["training_labels"]
    assert tl["n_records"] == 24 and set(tl["class_counts"]) == {"trivial", "z2_ti", "chern", "semimetal_or_metal"}
    assert tl["n_labelled"] == sum(tl["class_counts"].values()) <= tl["n_attempted"]
    for arm in ("conditioned", "unconditioned"):
        a = result["arms"][arm]
        assert a["n_generated"] == 6
        assert a["n_labelled"] + a["n_unlabelled"] == 6 == a["n_labelled"] + sum(a["unlabelled_reasons"].values())
        assert a["n_labelled"] == sum(a["class_counts"].values())
        assert a["share_over_generated"]["n"] == 6 and a["share_over_labelled"]["n"] == a["n_labelled"]
        assert a["n_z2_ti"] == a["class_counts"]["z2_ti"] == a["share_over_labelled"]["count"]
    assert result["sampling"]["conditioned"]["topo_class"] == "z2_ti"
    assert result["sampling"]["unconditioned"]["topo_class"] is None
    assert result["sampling"]["unconditioned"]["guidance_scale"] == 1.0
    assert result["sampling"]["unconditioned"]["property_guidance"] == 0.0
    c, u = result["arms"]["conditioned"], result["arms"]["unconditioned"]
    for basis, n in (("over_labelled", "n_labelled"), ("over_generated", "n_generated")):
        # the stored ratio and interval are those of the arms' own counts
        expected = enrichment_for_json(enrichment(c["n_z2_ti"], c[n], u["n_z2_ti"], u[n]))
        assert result["enrichment_by_basis"][basis] == json.loads(json.dumps(expected)), basis
    # the keys at the top: one guidance scale, so its enrichment; no DFT asked for, so null with the reason
    headline = result["enrichment_by_basis"]["over_labelled"]
    assert (result["enrichment"], result["enrichment_ci_low"], result["enrichment_ci_high"]) == (
        headline["ratio"], headline["ci_low"], headline["ci_high"])  # fmt: skip
    assert result["enrichment_from"]["guidance_scale"] == 2.0 and result["enrichment_from"]["rule"] == "the only point"
    assert result["dft_confirmed_conditioned"] is None and result["dft_confirmed_unconditioned"] is None
    assert result["dft"]["skipped"] == "yield_options.dft_top_k is 0" and result["dft"]["results"] == []
    assert [p["guidance_scale"] for p in result["sweep"]["points"]] == [2.0] and result["sweep"]["headline"] == 0
    assert result["relaxation"]["enabled"] is False and result["relaxation"]["conditioned"]["n_attempted"] == 0
    _check_timings(result, {"all": done.wall_seconds})
    log = done.stdout + done.stderr
    assert "enrichment (conditioned / unconditioned)" in log and "Training labels:" in log
    table = (out / "yield.md").read_text()
    assert "| conditioned on z2_ti (w=2) |" in table and "| unconditioned |" in table
    assert len((out / "crystals.csv").read_text().splitlines()) == 1 + 12


@pytest.mark.slow
def test_resampling_a_trained_model_skips_training(tiny_run, tmp_path):
    """The yield_train stage from its sampling node on: the model and its training summary as they are."""
    import shutil

    out, _ = tiny_run
    for name in ("model.pt", "training_summary.json"):
        shutil.copy2(out / name, tmp_path / name)
    before = (tmp_path / "model.pt").stat().st_mtime_ns
    params = (f"output_dir={tmp_path},generate_options.n_candidates=3,generate_options.steps=3,{SINGLE},"
              "yield_options.guidance_scale=1.0,yield_options.num_atoms=2,yield_options.label_timeout=8.0")  # fmt: skip
    _ok(kedro_run("yield", "yield_train", params, from_nodes="yield_sample_arms_node"))
    _ok(_kedro("yield_evaluate", params))
    assert (tmp_path / "model.pt").stat().st_mtime_ns == before and not (tmp_path / "train_items.npz").exists()
    result = json.loads((tmp_path / "metrics.json").read_text())
    trained = json.loads((out / "metrics.json").read_text())
    assert result["training"] == trained["training"] and result["training_labels"] == trained["training_labels"]
    assert result["sampling"]["conditioned"]["guidance_scale"] == 1.0
    assert result["num_atoms"] == {"mode": "fixed", "value": 2}
    assert result["arms"]["conditioned"]["n_generated"] == result["arms"]["unconditioned"]["n_generated"] == 3


@pytest.mark.slow
def test_stages_in_separate_processes(tmp_path):
    """yield_prepare, yield_train (materials stack unimportable, as on the GPU machine) and yield_evaluate, one
    process each."""
    pytest.importorskip("td_models")
    pytest.importorskip("matplotlib")
    from td_models import load_crystals
    from td_models.config import TOPO_CLASSES

    out = tmp_path / "run"
    prepared = _ok(_kedro("yield_prepare", f"output_dir={out},{TINY}"))
    assert "training labels:" in prepared.stdout + prepared.stderr
    assert sorted(p.name for p in out.iterdir()) == ["train_items.npz"]
    items, items_meta = load_crystals(out / "train_items.npz")
    assert len(items) == items_meta["n_items"] <= 24 and items_meta["training_labels"]["n_records"] == 24

    trained = _ok(_kedro("yield_train", f"output_dir={out},{TINY}", blocked=True))
    assert "training:" in trained.stdout + trained.stderr and "blocked:" not in trained.stderr
    for name in ("model.pt", "samples_conditioned.npz", "samples_unconditioned.npz"):
        assert (out / name).is_file(), name
    assert not (out / "metrics.json").exists()
    samples = {arm: load_crystals(out / f"samples_{arm}.npz") for arm in ("conditioned", "unconditioned")}
    assert {s["conditions"]["topo_class"] for s in samples["conditioned"][0]} == {TOPO_CLASSES.index("z2_ti")}
    assert {s["conditions"]["topo_class"] for s in samples["unconditioned"][0]} == {None}

    labelled = _ok(_kedro("yield_evaluate", f"output_dir={out},{SINGLE}"))
    assert "enrichment (conditioned / unconditioned)" in labelled.stdout + labelled.stderr
    result = json.loads((out / "metrics.json").read_text())
    for key in ("arms", "enrichment", "enrichment_ci_low", "enrichment_ci_high", "dft_confirmed_conditioned",
                "dft_confirmed_unconditioned", "sweep", "training_labels", "training", "sampling", "config",
                "timings_seconds", "hardware", "hardware_label", "notes", "num_atoms"):  # fmt: skip
        assert key in result, key
    assert result["training_labels"]["class_counts"] == items_meta["training_labels"]["class_counts"]
    assert result["training"]["n_train"] == len(items) and result["config"]["n_train"] == 24
    assert result["hardware"]["device"] == "cpu" and "torch" in result["hardware_label"]
    walls = {"prepare": prepared.wall_seconds, "train": trained.wall_seconds, "evaluate": labelled.wall_seconds}
    _check_timings(result, walls)
    rows = (out / "crystals.csv").read_text().splitlines()[1:]
    for arm, (crystals, meta) in samples.items():
        a = result["arms"][arm]
        assert a["n_generated"] == len(crystals) == 6 == meta["generate_options"]["n_candidates"]
        assert a["n_labelled"] + a["n_unlabelled"] == len(crystals) == sum(r.startswith(f"{arm},") for r in rows)
        assert a["n_labelled"] == sum(a["class_counts"].values())
        n_predicted = sum(c["predicted"]["topo_class"] is not None for c in crystals)
        assert sum(a["predicted_class_counts"].values()) <= n_predicted
        assert result["sampling"][arm] == (meta["sweep"][0]["sampling"] if arm == "conditioned" else meta["sampling"])
        drawn = Counter(str(len(c["atomic_numbers"])) for c in crystals)
        assert result["num_atoms"]["drawn"] == dict(drawn) == meta["num_atoms"]["drawn"]
    assert result["sampling"]["conditioned"]["topo_class"] == "z2_ti"
    assert result["sampling"]["unconditioned"]["topo_class"] is None


@pytest.mark.slow
def test_guidance_sweep_with_relaxation_on_the_tiny_model(tiny_run, tmp_path):
    """The tiny run's model sampled at four guidance points (two classifier-free scales, each with and without the
    class head's guidance), relaxed with CHGNet and labelled: one sweep row per point, each point's crystals
    counted once, every relaxation outcome accounted for."""
    import yaml

    from pipelines.benchmark.yields import sample_yield_arms, yield_report
    from pipelines.datasets import TorchCheckpointDataset

    out, _ = tiny_run
    model = TorchCheckpointDataset(filepath=str(out / "model.pt")).load()
    summary = json.loads((out / "training_summary.json").read_text())
    params = yaml.safe_load((ROOT / "conf" / "yield" / "parameters_benchmark.yml").read_text())
    generate = {**params["generate_options"], "n_candidates": 4, "steps": 5}
    options = {**params["yield_options"], "guidance_scales": [1.0, 3.0], "property_guidance_scales": [0.0, 1.0],
               "relax": True, "relax_max_steps": 30, "dft_top_k": 0, "label_timeout": 8.0}  # fmt: skip
    conditioned, unconditioned = sample_yield_arms(model, summary, options, generate)
    assert len(conditioned[0]) == 16 and len(unconditioned[0]) == 4
    assert [(p["sampling"]["guidance_scale"], p["sampling"]["property_guidance"]) for p in conditioned[1]["sweep"]] == [
        (1.0, 0.0), (1.0, 1.0), (3.0, 0.0), (3.0, 1.0)]  # fmt: skip
    result, _, _, crystals, sweep_figure = yield_report(conditioned, unconditioned, options)
    sweep = result["sweep"]
    assert [(p["guidance_scale"], p["property_guidance"]) for p in sweep["points"]] == [
        (1.0, 0.0), (1.0, 1.0), (3.0, 0.0), (3.0, 1.0)]  # fmt: skip
    headline = sweep["points"][sweep["headline"]]
    assert result["enrichment_from"]["guidance_scale"] == headline["guidance_scale"]
    assert result["enrichment"] == headline["enrichment_over_labelled"]["ratio"]
    assert "optimistic" in sweep["headline_rule"] and result["arms"]["conditioned"]["n_generated"] == 4
    for point in sweep["points"]:
        assert point["n_generated"] == 4 and 0 <= point["quality"]["structural_validity"]["count"] <= 4
    for arm in ("conditioned", "unconditioned"):
        relax, a = result["relaxation"][arm], result["arms"][arm]
        outcomes = ("relaxed", "failed", "exploded", "refused")
        assert relax["n_attempted"] == sum(relax[f"n_{k}"] for k in outcomes)
        for k in ("refused", "failed", "exploded"):
            assert a["unlabelled_reasons"][f"relaxation {k}"] == relax[f"n_{k}"]
        assert a["n_labelled"] + a["unlabelled_reasons"]["labeller error"] + a["unlabelled_reasons"][
            "labeller timeout"] == relax["n_relaxed"]  # fmt: skip
    assert len(crystals) == 20 and crystals["id"].is_unique
    assert sorted(crystals["point"][crystals["arm"] == "conditioned"].unique()) == [0, 1, 2, 3]
    sweep_figure.savefig(tmp_path / "guidance_sweep.png")
    assert (tmp_path / "guidance_sweep.png").stat().st_size > 1000


def test_the_yield_arms_refuse_an_unconditioned_generate_block():
    """The yield run samples both arms itself: generate_options.conditioned false would be ignored, so it is refused
    before any model is touched."""
    from pipelines.benchmark.yields import sample_yield_arms

    with pytest.raises(ParameterError, match="generate_options.conditioned is false, but the yield benchmark samples"):
        sample_yield_arms(None, {}, {}, {"conditioned": False})


@pytest.mark.parametrize(
    ("name", "max_epochs", "starts", "bucket_batches", "covalent_guidance"),
    [("yield_families.yml", 1200, [1, 121, 601], 0, 0.0), ("yield_families_bucket.yml", 2400, [1, 241, 1201], 20, 1.0)],
)
def test_the_families_run_configuration_is_a_valid_kedro_run_file(
    name, max_epochs, starts, bucket_batches, covalent_guidance
):
    """benchmarks/yield_families*.yml (``kedro run --config``): only keys ``kedro run`` takes, a registered
    pipeline, and params that, merged over conf/yield's the way Kedro merges runtime params, pass every block's
    checks; every phase starts within max_epochs (TrainingConfig does not refuse a phase that never runs)."""
    import yaml
    from kedro.framework.cli.project import run
    from omegaconf import OmegaConf

    from pipelines.generate.nodes import GenerateOptions
    from pipelines.pipeline_registry import register_pipelines
    from pipelines.train.nodes import TrainOptions
    from td_models import TrainingConfig

    section = yaml.safe_load((ROOT / "benchmarks" / name).read_text())["run"]
    assert set(section) <= {p.name for p in run.params} - {"config"}
    assert section["env"] == "yield" and section["pipelines"] in register_pipelines()
    base = yaml.safe_load((ROOT / "conf" / "yield" / "parameters_benchmark.yml").read_text())
    merged = OmegaConf.to_container(OmegaConf.merge(base, section["params"]))
    options = YieldOptions.from_dict(merged["yield_options"])
    assert options.train_data == "outputs/topological_families_w4/families.h5" and options.dft_top_k == 3
    assert options.sweep() == [(2.0, 0.0)] and options.num_atoms == "class-labellable"
    generate = GenerateOptions.from_dict(merged["generate_options"])
    assert generate.n_candidates == 150 and generate.covalent_guidance == covalent_guidance
    assert TrainOptions.from_dict(merged["train_options"]).fit_epochs_to_budget
    tc = TrainingConfig.from_dict(merged["training_config"])
    assert tc.max_epochs == max_epochs and [p.start_epoch for p in tc.phases] == starts
    assert tc.bucket_batches == bucket_batches
    assert all(p.start_epoch <= tc.max_epochs for p in tc.phases)

"""The Perov-5 and Carbon-24 benchmarks as Kedro runs (``kedro run --env perov5|carbon24``) on tiny subsets of
the shared CDVAE data (a few seconds of training), in one process and as three stages with the GPU half run
while the materials stack cannot be imported."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.benchmark.nodes import BASELINE_LABELS, METRIC_KEYS, PROTOCOL_ENTRY_KEYS, PROTOCOL_KEYS, TABLE_ROWS
from pipelines.benchmark.options import BenchmarkOptions
from pipelines.benchmark.published import PUBLISHED
from pipelines.evaluate.nodes import EvaluateOptions
from pipelines.exceptions import ParameterError
from pipelines.train.nodes import TrainOptions
from tests.gpu_node import BLOCKER, kedro_run

pytest.importorskip("td_models")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "benchmarks"
FILES = {"perov5": ("perov_5", ("val.csv.gz", "train_first1024.csv.gz", "test.csv.gz")),
         "carbon24": ("carbon_24", ("val.csv.gz", "test.csv.gz"))}  # fmt: skip
# the training options of the tiny runs: about six seconds of training (fit_epochs_to_budget fits the epochs to them)
TRAIN_TINY = ("train_options.budget_minutes=0.1,training_config.max_epochs=10000,"
              "generate_options.n_candidates=16,generate_options.steps=20")  # fmt: skip
DATA_TINY = "benchmark_options.max_train=64,benchmark_options.max_test=64"
#: table.md's table lines: each protocol's header and rows (the separator lines start with "|-")
TABLE_LINES = 1 + len(TABLE_ROWS) + 1 + len(PROTOCOL_KEYS)
#: the fractions and distances the issue's interface names (metrics.json["metrics"])
INTERFACE_KEYS = ("struct_valid", "comp_valid", "cov_recall", "cov_precision", "wdist_density", "wdist_num_elems",
                  "cov_recall_joint")  # fmt: skip


def _require_data(env: str = "perov5") -> None:
    folder, names = FILES[env]
    missing = [name for name in names if not (SHARED / folder / name).is_file()]
    if missing:
        pytest.skip(f"shared {env} data not available: {SHARED / folder} lacks {', '.join(missing)}")


def _ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(output folder, completed process) of one tiny run that the training budget stops."""
    _require_data()
    out = tmp_path_factory.mktemp("perov5")
    return out, _ok(kedro_run("perov5", "benchmark", f"output_dir={out},{TRAIN_TINY},{DATA_TINY}"))


#: the parts each stage times (``timings_seconds`` keys)
PREPARE_PARTS = ("prepare",)
TRAIN_PARTS = ("train_setup", "train", "sample", "predict")
EVALUATE_PARTS = ("load_data", "metrics", "figure", "baselines")


def _check_timings(result: dict, walls: dict[str, float]) -> None:
    """``timings_seconds`` holds exactly the phases that ran; each stage's parts fit in the stage's seconds, the
    stages in the measured wall time of their process(es), and ``total`` is the sum of the three stages. Values
    are rounded to 0.01 s, hence tolerances of half a hundredth per summand."""
    timings, stages = result["timings_seconds"], result["stages"]
    seconds = {name: stages[name]["seconds"] for name in ("prepare", "train", "evaluate")}
    assert set(timings) == {*PREPARE_PARTS, *TRAIN_PARTS, *EVALUATE_PARTS, "total"}
    assert all(v >= 0 for v in timings.values()), timings
    for stage, parts in (("prepare", PREPARE_PARTS), ("train", TRAIN_PARTS), ("evaluate", EVALUATE_PARTS)):
        assert sum(timings[p] for p in parts) <= seconds[stage] + 0.005 * (len(parts) + 1), (stage, timings, stages)
    assert timings["total"] == pytest.approx(sum(seconds.values()), abs=0.02)
    assert 0 < timings["total"] <= sum(walls.values()), (timings, walls)
    if len(walls) > 1:  # one process per stage: each stage fits in its own process
        for stage, wall in walls.items():
            assert seconds[stage] <= wall, (stage, seconds, walls)


@pytest.mark.slow
def test_writes_every_output(run):
    out, done = run
    for name in ("metrics.json", "table.md", "model.pt", "perov5.png", "samples/index.json", "training/metrics.csv"):
        assert (out / name).is_file(), name
    assert (out / "perov5.png").stat().st_size > 1000
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(list((out / "samples").glob("*.cif"))) == metrics["n_generated"] <= 16
    assert metrics["n_match_sample"] == metrics["n_generated"]  # conf/perov5: match_sample null, all of them
    from td_models import TopologicalDiffusionModel

    model = TopologicalDiffusionModel.load(out / "model.pt")
    assert model.num_parameters() == metrics["parameters"]
    table = (out / "table.md").read_text()
    assert "ours (this run)" in table and "DiffCSP (published)" in table
    assert "Not like for like" in table and "SUBSET" in table
    assert table.count("\n| ") == TABLE_LINES
    assert "## Published protocol" in table and "## Legacy protocol" in table
    assert all(label in table for label in BASELINE_LABELS.values())  # the baselines' columns
    assert "DiffCSP's table scores 10,000 generated crystals, this run 16" in table
    assert "ours (this run)" in done.stdout + done.stderr  # the table is logged too


@pytest.mark.slow
def test_metrics_are_finite_or_explained(run):
    out, done = run
    result = json.loads((out / "metrics.json").read_text())
    assert set(result["metrics"]) == set(METRIC_KEYS)
    for key, value in result["metrics"].items():
        if value is None:
            assert result["null_reasons"].get(key), f"{key} is null without a reason"
        else:
            assert isinstance(value, (int, float)) and math.isfinite(value), (key, value)
    assert result["null_reasons"]["wdist_prop"]  # no property predictor: always explained
    for key in INTERFACE_KEYS:
        assert result["metrics"][key] is not None, key
    _check_protocols(result)
    _check_baselines(result, n=16, kinds=("memorise", "random_structures", "prototype"))
    for row in result["table"]:
        if row["protocol"] == "published":
            assert row["CDVAE"] == PUBLISHED["perov_5"]["CDVAE"].get(row["key"])
            assert row["DiffCSP"] == PUBLISHED["perov_5"]["DiffCSP"].get(row["key"])
        else:
            assert row["protocol"] == "legacy" and row["key"] in PROTOCOL_KEYS and row["DiffCSP"] is None
        assert row["ours"] is None or math.isfinite(row["ours"])
    memorise = [r for r in result["table"] if r["key"] == "novelty"][0]["memorise"]
    assert memorise == 0.0  # training crystals are not novel
    assert result["cutoffs"] == [0.2, 4.0]  # CDVAE's COV_Cutoffs["perovskite"]
    assert result["data"]["n_train"] == result["data"]["n_test"] == 64
    assert result["data"]["train_atom_counts"] == {"5": 64}
    assert result["data"]["train_files"] == ["val.csv.gz", "train_first1024.csv.gz"]
    training = result["training"]
    _check_stopping(training)
    assert training["weights"] == "EMA"
    _check_timings(result, {"all": done.wall_seconds})
    assert result["hardware"]["cpu_count"] >= 1 and result["hardware"]["torch"]


def _check_stopping(training: dict) -> None:
    """conf/perov5 trains with ``train_options.fit_epochs_to_budget``: the probe fits the epochs into 92% of the
    budget, so the run ends at the fitted epochs, or at the budget when the machine got slower after the probe (a
    loaded CI machine does). Either way the epochs and steps must agree with what stopped it."""
    fit = training["budget_fit"]
    assert fit["epochs"] >= 1 and fit["probe_seconds_per_step"] > 0
    assert training["max_epochs"] == fit["epochs"]  # the fitted epochs are below the configured 10,000
    assert training["global_step"] >= 1
    if training["stopped_by"] == "max_epochs":
        assert training["epochs_completed"] == training["max_epochs"], training
        assert training["global_step"] == training["epochs_completed"] * training["steps_per_epoch"], training
    else:
        assert training["stopped_by"] == "budget", training
        assert training["epochs_completed"] < training["max_epochs"], training


def _check_protocols(result: dict) -> None:
    """metrics.json["metrics"] is the published protocol; ``protocols`` holds both, each saying what it used."""
    protocols = result["protocols"]
    assert set(protocols) == {"published", "legacy"}
    for name, entry in protocols.items():
        assert set(entry) == set(PROTOCOL_ENTRY_KEYS), name
        assert entry["cov_recall_joint"] <= entry["cov_recall"], name
        assert entry["struct_valid"] == result["metrics"]["struct_valid"]  # protocol-independent
    assert {k: protocols["published"][k] for k in METRIC_KEYS} == result["metrics"]
    assert "CompScalerMeans" in protocols["published"]["comp_scaling"]
    assert protocols["legacy"]["comp_scaling"] == "the reference set's mean and standard deviation"
    n_valid = result["n_valid"]
    assert protocols["published"]["n_wdist"] == protocols["legacy"]["n_wdist"] == n_valid  # fewer than 1,000


def _check_baselines(result: dict, n: int, kinds: tuple[str, ...]) -> None:
    """Each baseline has as many crystals as the model's samples and the model's keys, or a null reason."""
    baselines = result["baselines"]
    assert tuple(baselines) == kinds
    for kind, entry in baselines.items():
        if "null_reason" in entry:
            continue
        assert entry["n"] == n and set(entry["metrics"]) == set(METRIC_KEYS), kind
        assert set(entry["protocols"]) == {"published", "legacy"}, kind
        assert entry["metrics"]["struct_valid"] is not None and entry["seconds"] >= 0, kind


def test_missing_data_dir_names_the_dataset(tmp_path):
    done = kedro_run("perov5", "bench_prepare", f"output_dir={tmp_path / 'out'},data_dir={tmp_path / 'nowhere'}")
    assert done.returncode != 0
    assert "MissingInputsError" in done.stderr and "benchmark_train_split" in done.stderr
    assert not (tmp_path / "out").exists()


def test_the_blocker_blocks():
    """Without this, a passing staged run would prove nothing about the GPU node."""
    code = BLOCKER + "import numpy, td_models\ntry:\n    import pymatgen\nexcept ImportError as e:\n    print(e)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "blocked: pymatgen", done.stderr


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """(output folder, {stage: completed process}) of bench_prepare, bench_train (materials stack blocked) and
    bench_evaluate run as three processes into one folder, as on a GPU node without the materials stack."""
    _require_data()
    out = tmp_path_factory.mktemp("perov5_staged")
    runs = {
        "prepare": kedro_run("perov5", "bench_prepare", f"output_dir={out},{DATA_TINY}"),
        "train": kedro_run("perov5", "bench_train", f"output_dir={out},{TRAIN_TINY}", blocked=True),
        # uniqueness and novelty over 8 drawn crystals (evaluate_options.match_sample), as Carbon-24 runs them
        "evaluate": kedro_run(
            "perov5", "bench_evaluate", f"output_dir={out},{DATA_TINY},evaluate_options.match_sample=8"
        ),
    }
    for stage, done in runs.items():
        assert done.returncode == 0, (stage, done.stdout[-2000:] + done.stderr[-4000:])
    return out, runs


@pytest.mark.slow
def test_staged_run(staged):
    out, runs = staged
    assert "prepare: 64 training crystals" in runs["prepare"].stdout + runs["prepare"].stderr
    assert "blocked" not in runs["train"].stderr
    for name in ("train_items.npz", "model.pt", "samples.npz", "metrics.json", "table.md", "perov5.png",
                 "samples/index.json", "training/metrics.csv"):  # fmt: skip
        assert (out / name).is_file(), name

    result = json.loads((out / "metrics.json").read_text())
    for key in ("metrics", "null_reasons", "table", "data", "training", "sampling", "config", "parameters",
                "timings_seconds", "hardware", "stages", "caveats"):  # fmt: skip
        assert key in result, key
    assert set(result["metrics"]) == set(METRIC_KEYS)
    assert result["n_requested"] == 16 and 1 <= result["n_generated"] <= 16
    assert result["n_match_sample"] == min(8, result["n_generated"])
    drawn = [c for c in result["caveats"] if c.startswith("Uniqueness and novelty (no published table has them) use")]
    assert len(drawn) == (result["n_generated"] > 8)
    assert result["data"]["n_train"] == result["data"]["n_test"] == 64
    assert result["data"]["train_atom_counts"] == {"5": 64}
    _check_stopping(result["training"])
    assert result["training"]["weights"] == "EMA"
    assert result["sampling"]["steps"] == 20
    stages = result["stages"]
    assert stages["train"]["hardware"] == result["hardware"]
    assert stages["evaluate"]["hardware"]["cpu_count"] >= 1 and stages["prepare"]["hardware"]
    _check_timings(result, {stage: done.wall_seconds for stage, done in runs.items()})
    assert result["timings_seconds"]["prepare"] == stages["prepare"]["seconds"]
    assert (out / "table.md").read_text().count("\n| ") == TABLE_LINES
    _check_protocols(result)
    assert "Not like for like" in (out / "table.md").read_text()

    from td_models import TopologicalDiffusionModel, load_crystals

    samples, sampling = load_crystals(out / "samples.npz")  # the generate node's output: crystals and its summary
    assert len(samples) == 16 == sampling["n_requested"] and sampling["conditioned"] is False
    assert sampling == result["sampling"]
    assert len(list((out / "samples").glob("*.cif"))) == result["n_generated"]
    for s in samples:
        assert set(s["predicted"]) == {"band_gap", "formation_energy", "topo_class", "topo_class_probability"}
        assert all(v is None for v in s["conditions"].values())
        assert len(s["atomic_numbers"]) == len(s["frac_coords"]) == 5
    assert any(s["predicted"]["band_gap"] is not None for s in samples)
    meta = json.loads((out / "training_summary.json").read_text())
    assert meta["train_data"]["n_train"] == 64 and meta["train_data"]["max_train"] == 64
    assert meta["num_parameters"] == result["parameters"]
    assert TopologicalDiffusionModel.load(out / "model.pt").num_parameters() == meta["num_parameters"]
    items, prep = load_crystals(out / "train_items.npz")
    assert len(items) == prep["n_train"] == 64 and prep["train_files"] == ["val.csv.gz", "train_first1024.csv.gz"]


@pytest.mark.slow
def test_evaluate_refuses_other_training_crystals(staged):
    """Novelty needs the crystals the model trained on: another max_train is an error that says so."""
    out, _ = staged
    done = kedro_run("perov5", "bench_evaluate", f"output_dir={out},benchmark_options.max_train=32")
    assert done.returncode != 0 and "novelty needs the same training crystals" in done.stderr


def test_stage_without_its_input_names_the_stage_that_writes_it(tmp_path):
    done = kedro_run("perov5", "bench_evaluate", f"output_dir={tmp_path}")
    assert done.returncode != 0 and "MissingInputsError" in done.stderr
    assert "benchmark_samples" in done.stderr and "bench_train" in done.stderr
    done = kedro_run("perov5", "bench_train", f"output_dir={tmp_path}")
    assert done.returncode != 0 and "benchmark_items" in done.stderr and "bench_prepare" in done.stderr
    assert "`kedro run --env perov5 --pipelines=bench_prepare`" in done.stderr  # the command to type, env included
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize(
    ("block", "values", "message"),
    [
        (BenchmarkOptions, {"dataset": "mp_20"}, "benchmark_options.dataset must be one of"),
        (BenchmarkOptions, {"max_train": 0}, "benchmark_options.max_train must be an integer >= 1"),
        (EvaluateOptions, {"cutoffs": [0.2]}, "evaluate_options.cutoffs must be [structure, composition]"),
        (BenchmarkOptions, {"colour": "red"}, "benchmark_options has unknown keys ['colour']"),
        (BenchmarkOptions, {"baselines": ["memorise", "gan"]}, "benchmark_options.baselines must name each of"),
        (BenchmarkOptions, {"baselines": "memorise"}, "benchmark_options.baselines must be a list of baseline names"),
        (EvaluateOptions, {"n_wdist": 0}, "evaluate_options.n_wdist must be an integer >= 1, got 0"),
        (EvaluateOptions, {"seed": -1}, "evaluate_options.seed must be an integer >= 0, got -1"),
        (EvaluateOptions, {"max_metric_candidates": -1}, "evaluate_options.max_metric_candidates must be an integer"),
        (EvaluateOptions, {"generated_cache": "x.json"}, "evaluate_options.generated_cache must be a path to an .npz"),
        (
            BenchmarkOptions,
            {"n_wdist": 10, "seed": 1},
            "benchmark_options no longer holds the scoring (the evaluate node scores): n_wdist -> "
            "evaluate_options.n_wdist, seed -> evaluate_options.seed",
        ),
        (BenchmarkOptions, {"baseline_samples": 0}, "benchmark_options.baseline_samples must be an integer >= 1"),
        (TrainOptions, {"budget_minutes": -1}, "train_options.budget_minutes must be null or a number of minutes"),
        (TrainOptions, {"device": "tpu"}, "train_options.device must be one of ['auto', 'cpu', 'cuda']"),
        (TrainOptions, {"fit_epochs_to_budget": True}, "fits the epochs to the wall-clock budget: set budget_minutes"),
        (TrainOptions, {"fit_epochs_to_budget": "yes"}, "train_options.fit_epochs_to_budget must be true or false"),
    ],
)
def test_bad_options_name_the_rule_and_the_value(block, values, message):
    with pytest.raises(ParameterError) as err:
        block.from_dict(values)
    assert message in str(err.value)
    assert isinstance(err.value, ValueError)


def test_each_environment_sets_every_option():
    """conf/perov5, conf/carbon24 and conf/yield spell out every key of their blocks (no hidden code default)."""
    import dataclasses

    import yaml

    from pipelines.benchmark.options import YieldOptions
    from pipelines.generate.nodes import GenerateOptions

    blocks = {"perov5": (BenchmarkOptions, TrainOptions, GenerateOptions, EvaluateOptions),
              "carbon24": (BenchmarkOptions, TrainOptions, GenerateOptions, EvaluateOptions),
              "yield": (YieldOptions, TrainOptions, GenerateOptions)}  # fmt: skip
    for env, classes in blocks.items():
        params = yaml.safe_load((ROOT / "conf" / env / "parameters_benchmark.yml").read_text())
        for block in classes:
            names = {f.name for f in dataclasses.fields(block)}
            assert set(params[block.block]) == names, (env, block.block)


def test_the_benchmarks_sample_with_the_generate_node():
    """One sampler: bench_train's sampling node is the generate pipeline's node function, and the yield arms call
    the sampler that node calls."""
    from pipelines.generate import nodes as generate_nodes
    from pipelines.pipeline_registry import register_pipelines

    pipelines = register_pipelines()
    sampling = {n.name: n.func for n in pipelines["bench_train"].nodes}
    generate = {n.name: n.func for n in pipelines["generate"].nodes}
    assert sampling["bench_sample_node"] is generate["generate_candidates_node"] is generate_nodes.sample_candidates
    from pipelines.benchmark import yields

    assert yields.sample_crystals is generate_nodes.sample_crystals


def test_the_unconditional_benchmarks_refuse_conditioned_samples():
    from pipelines.benchmark.nodes import run_meta

    with pytest.raises(ParameterError, match="de-novo generation: set generate_options.conditioned to false"):
        run_meta({"seconds": 1.0}, {"conditioned": True, "requested_class": "z2_ti", "seconds": 2.0})
    sampling = {"conditioned": False, "seconds": 2.0, "timings_seconds": {"sample": 1.5, "predict": 0.5}}
    meta = run_meta({"seconds": 1.0, "timings_seconds": {"train": 1.0}}, sampling)
    assert meta["seconds"] == 3.0 and meta["timings_seconds"] == {"train": 1.0, "sample": 1.5, "predict": 0.5}


def test_a_plain_kedro_run_runs_no_benchmark():
    """The benchmarks' pipelines are registered by name but are not part of __default__ (make demo)."""
    from pipelines.pipeline_registry import register_pipelines

    pipelines = register_pipelines()
    stages = {"bench_prepare", "bench_train", "bench_evaluate", "yield_prepare", "yield_train", "yield_evaluate"}
    assert stages | {"benchmark", "yield_benchmark"} <= set(pipelines)
    default = {n.name for n in pipelines["__default__"].nodes}
    assert not default & {n.name for name in stages for n in pipelines[name].nodes}


@pytest.mark.slow
def test_carbon24_run(tmp_path):
    """Carbon-24 (cells of 6 to 24 carbon atoms, one element): its cutoffs, its published table."""
    _require_data("carbon24")
    params = f"output_dir={tmp_path},{TRAIN_TINY},benchmark_options.max_train=32,benchmark_options.max_test=32"
    _ok(kedro_run("carbon24", "benchmark", params))
    result = json.loads((tmp_path / "metrics.json").read_text())
    assert set(result["metrics"]) == set(METRIC_KEYS) and result["dataset"] == "carbon_24"
    assert result["cutoffs"] == [0.2, 4.0]
    published_rows = [row for row in result["table"] if row["protocol"] == "published"]
    assert [row["key"] for row in published_rows] == [key for key, _, _ in TABLE_ROWS]
    for row in published_rows:
        assert row["DiffCSP"] == PUBLISHED["carbon_24"]["DiffCSP"].get(row["key"])
    _check_protocols(result)
    _check_baselines(result, n=16, kinds=("memorise", "random_structures", "prototype"))
    assert "no single prototype" in result["baselines"]["prototype"]["null_reason"]
    assert all(row["prototype"] is None for row in result["table"])
    assert result["data"]["n_train"] == result["data"]["n_test"] == 32
    assert result["data"]["train_files"] == ["val.csv.gz"] and result["data"]["test_files"] == ["test.csv.gz"]
    assert result["training"]["n_train"] + result["training"]["n_train_too_large"] == 32
    assert (tmp_path / "carbon24.png").stat().st_size > 1000
    assert "| W-distance, # elements |" in (tmp_path / "table.md").read_text()


def test_the_budget_probe_fits_the_epochs_and_the_environment_anneals_over_them():
    """conf/perov5's training: one phase without physics, cosine from the peak to 1% of it over max_epochs, which
    a timed probe lowers to the epochs that fit in the budget (``pipelines.train.budget``)."""
    import yaml

    from pipelines.train.budget import fit_epochs_to_budget, with_epochs
    from pipelines.train.nodes import experiment_config
    from td_data.evaluation import load_split
    from td_models.batch import item_from_record

    params = yaml.safe_load((ROOT / "conf" / "base" / "parameters_train.yml").read_text())
    params.update(yaml.safe_load((ROOT / "conf" / "perov5" / "parameters_benchmark.yml").read_text()))
    config = experiment_config(params["model_config"], params["physics_config"],
                               {**params["training_config"], "batch_size": 8})  # fmt: skip
    assert params["train_options"]["fit_epochs_to_budget"] and params["train_options"]["budget_minutes"] == 30
    tc = with_epochs(config, 7).training_config
    assert tc.scheduler == "cosine" and tc.max_epochs == 7 and tc.cosine_period_epochs is None
    assert tc.learning_rate == 1e-3 and tc.min_learning_rate == pytest.approx(1e-5) and tc.warmup_epochs == 1
    assert [(ph.name, ph.physics) for ph in tc.phases] == [("budget_cosine", False)]
    assert with_epochs(config, 10**6).training_config.max_epochs == 100000  # never above the configured bound
    _require_data()
    records = load_split([SHARED / "perov_5" / "test.csv.gz"], "test", limit=16).records
    fit = fit_epochs_to_budget([item_from_record(r) for r in records], config, 0.5, "cpu", 0)
    assert fit["steps_per_epoch"] == 2 and fit["epochs"] >= 1 and fit["probe_seconds_per_step"] > 0
    assert fit["probe_seconds_per_step_by_phase"] == {"budget_cosine": fit["probe_seconds_per_step"]}
    planned = fit["budget_share"] * 60 * 0.5 / fit["probe_seconds_per_step"]
    assert fit["epochs"] == max(1, int(planned // 2))
    assert fit["planned_seconds"] == pytest.approx(fit["epochs"] * 2 * fit["probe_seconds_per_step"])


def test_the_benchmarks_train_and_score_with_the_main_nodes():
    """One trainer and one scorer: the benchmarks' train stages run the train pipeline's node function, the
    generation benchmarks' evaluate stage the evaluate pipeline's metrics node."""
    from pipelines.pipeline_registry import register_pipelines
    from pipelines.train import nodes as train_nodes

    pipelines = register_pipelines()
    train = {n.name: n.func for n in pipelines["train"].nodes}
    assert train["train_model_node"] is train_nodes.train_on_items
    for stage, name in (("bench_train", "bench_train_node"), ("yield_train", "yield_train_node")):
        assert {n.name: n.func for n in pipelines[stage].nodes}[name] is train_nodes.train_on_items
    from pipelines.evaluate import nodes as evaluate_nodes

    evaluate = {n.name: n.func for n in pipelines["evaluate"].nodes}
    scoring = {n.name: n.func for n in pipelines["bench_evaluate"].nodes}
    assert scoring["bench_generation_quality_node"] is evaluate["generation_quality_node"]
    assert evaluate["generation_quality_node"] is evaluate_nodes.generation_quality


def test_the_benchmark_refuses_another_data_sets_cutoffs_and_a_partial_scoring():
    from pipelines.benchmark.nodes import evaluate_options_for

    perov5 = BenchmarkOptions.from_dict({"dataset": "perov_5"})
    with pytest.raises(ParameterError, match="coverage_dataset is 'mp_20', but benchmark_options.dataset is"):
        evaluate_options_for(perov5, {"coverage_dataset": "mp_20", "max_metric_candidates": None})
    with pytest.raises(ParameterError, match="max_metric_candidates is 24, but the benchmark scores every generated"):
        evaluate_options_for(perov5, {"coverage_dataset": "perov_5", "max_metric_candidates": 24})


def test_a_run_with_the_retired_benchmark_training_block_is_refused(tmp_path):
    """benchmark_training (earlier releases) is refused before any node runs, with each key's new home."""
    done = kedro_run("perov5", "bench_prepare", f"output_dir={tmp_path},benchmark_training.budget_minutes=5")
    assert done.returncode != 0
    assert "the benchmark_training block is gone" in done.stderr
    assert "budget_minutes -> train_options.budget_minutes" in done.stderr
    assert not any(tmp_path.iterdir())


def test_denoising_by_noise_level_scores_an_untrained_model_at_one(tmp_path):
    """``benchmarks/denoising_by_noise_level.py``: one row per level, one column per model; a model that has learnt
    nothing (zero-initialised outputs) scores the coordinate loss at about 1, as its docstring says, and two
    copies of one model score alike (the same crystals and noise draws for every model)."""
    _require_data("perov5")
    from td_models import TopologicalDiffusionModel
    from td_models.config import ExperimentConfig

    config = ExperimentConfig.preset("cpu-demo", model_config={"max_atoms": 8, "num_steps": 100})
    paths = [str(TopologicalDiffusionModel(config).save(tmp_path / f"m{i}.pt")) for i in range(2)]
    script = ROOT / "benchmarks" / "denoising_by_noise_level.py"
    args = [sys.executable, str(script), "--dataset", "perov_5", "--n", "64", "--levels", "1,100", "--model-path"]
    done = subprocess.run(args + paths, capture_output=True, text=True, check=True, timeout=300)
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 1 |") or line.startswith("| 100 |")]
    assert len(rows) == 2, done.stdout
    for row in rows:
        cells = [float(x) for x in row.strip("| ").split(" | ")]
        coords, lattice = cells[2:4], cells[4:6]
        assert coords[0] == coords[1] and lattice[0] == lattice[1]
        assert 0.8 < coords[0] < 1.2, row
    assert "mean(1/N) = 0.200" in done.stdout  # Perov-5 cells hold 5 atoms
    bad = subprocess.run(args[:-1] + ["--levels", "0,101", "--model-path", paths[0]], capture_output=True, text=True)
    assert bad.returncode != 0
    assert "--levels must lie in 1..100 (the model's diffusion steps), got [0, 101]" in bad.stderr
    train = subprocess.run(args[:-2] + ["1", "--split", "train", "--n", "3", "--model-path", paths[0]],
                           capture_output=True, text=True, check=True, timeout=300)  # fmt: skip
    assert "perov_5, 3 train crystals, seed 0" in train.stdout and "3 train crystals of perov_5" in train.stderr


def test_batch_padding_times_random_and_bucketed_batches_on_the_same_crystals():
    """``benchmarks/batch_padding.py`` on 96 Carbon-24 training crystals: one row per kind of batch, the bucketed
    batches padding fewer pairs than the random ones (the times are printed, never asserted), and bad options
    refused by name."""
    _require_data("carbon24")
    script = [sys.executable, str(ROOT / "benchmarks" / "batch_padding.py"), "--dataset", "carbon_24"]
    args = ["--max-train", "96", "--batch-size", "16", "--bucket-batches", "3", "--epochs", "1"]
    done = _ok(subprocess.run(script + args, capture_output=True, text=True, timeout=600))
    rows = {line.split(" | ")[0].strip("| "): line for line in done.stdout.splitlines() if line.startswith("| ")}
    pads = [float(rows[k].strip("| ").split(" | ")[-1]) for k in ("random", "bucketed (bucket_batches 3)")]
    assert pads[1] < pads[0] and pads[1] >= 1.0, done.stdout
    assert "bucketed / random:" in done.stdout and "96 training crystals of carbon_24" in done.stderr
    bad = subprocess.run(script + ["--bucket-batches", "1"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--bucket-batches must be >= 2, got 1" in bad.stderr

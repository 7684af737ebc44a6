"""The active-learning pipeline: its acquisition rule (property-based), its rounds, its resume after a SIGKILL at
the worst moment, and ``kedro run --pipelines=active_learning`` in a temporary copy of the project."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.active_learning.acquisition import (
    TERMS,
    AcquisitionOptions,
    acquisition_scores,
    acquisition_terms,
    n_exploration,
    select,
)
from pipelines.active_learning.nodes import STEPS, ActiveLearningOptions, active_learning_plots, run_active_learning
from pipelines.exceptions import ParameterError
from tests._active_learning import (
    AL,
    BLOCKS,
    MODEL_CONFIG,
    PHYSICS,
    ROOT,
    TRAINING,
    project_copy,
    project_skeleton,
    tiny_inputs,
)

KEDRO = Path(sys.executable).with_name("kedro")


# ------------------------------------------------------------------------------------------------ acquisition

weights = st.floats(0, 5, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 10)), min_size=1, max_size=30),
    st.tuples(weights, weights, weights).filter(lambda w: sum(w) > 0),
    st.sampled_from(["weighted_sum", "max"]),
)
def test_scores_lie_in_the_unit_interval_and_grow_with_each_weighted_term(rows, w, rule):
    opts = AcquisitionOptions(rule=rule, **dict(zip(TERMS, w, strict=True)))
    conf, prob, spread = (np.array(c) for c in zip(*rows, strict=True))
    terms = acquisition_terms(conf, prob, spread, opts.spread_scale)
    scores = acquisition_scores(terms, opts)
    assert terms.shape == (len(rows), 3) and ((terms >= 0) & (terms <= 1)).all()
    assert scores.shape == (len(rows),) and ((scores >= -1e-12) & (scores <= 1 + 1e-12)).all()
    # a model that is surer of the label never raises the score
    surer = acquisition_scores(acquisition_terms(conf, np.minimum(prob + 0.1, 1), spread, opts.spread_scale), opts)
    assert (surer <= scores + 1e-12).all()


@settings(max_examples=80, deadline=None)
@given(
    st.integers(0, 40),
    st.integers(1, 20),
    st.floats(0, 1),
    st.integers(0, 2**31),
)
def test_exploration_share_is_honoured_exactly_and_the_picks_are_deterministic(n, n_add, share, seed):
    ids = [f"c{i:03d}" for i in range(n)]
    scores = np.random.default_rng(seed).random(n)
    by_score, at_random = select(ids, scores, n_add, share, seed)
    chosen = min(n, n_add)
    assert len(at_random) == n_exploration(chosen, share) == min(chosen, int(np.floor(share * chosen + 0.5)))
    assert len(by_score) + len(at_random) == chosen and not set(by_score) & set(at_random)
    assert all(0 <= i < n for i in by_score + at_random)
    best = sorted(range(n), key=lambda i: (-scores[i], ids[i]))[: len(by_score)]
    assert by_score == best
    assert select(ids, scores, n_add, share, seed) == (by_score, at_random)


def test_the_acquisition_block_refuses_what_it_cannot_do():
    with pytest.raises(ParameterError, match="rule must be one of"):
        AcquisitionOptions(rule="thompson")
    with pytest.raises(ParameterError, match="mc_samples must be an integer >= 2"):
        AcquisitionOptions(mc_samples=1)
    with pytest.raises(ParameterError, match="at least one of the weights"):
        AcquisitionOptions(confidence=0, disagreement=0, spread=0)
    with pytest.raises(ParameterError, match="exploration_share must be a number in"):
        AcquisitionOptions(exploration_share=1.5)
    with pytest.raises(ParameterError, match="unknown keys"):
        ActiveLearningOptions.from_dict({"acquisition": {"temperature": 1.0}})
    with pytest.raises(ParameterError, match="stop_after must be one of"):
        ActiveLearningOptions(stop_after="relabel")
    with pytest.raises(ParameterError, match="band_gap_range must be"):
        ActiveLearningOptions(band_gap_range=[0.5, 0.1])


# ------------------------------------------------------------------------------------------------ rounds


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return tiny_inputs(tmp_path_factory.mktemp("al-inputs"))


def _run(inputs, work_dir: Path, **al):
    return run_active_learning(
        inputs["model"], inputs["train"], inputs["val"], MODEL_CONFIG, PHYSICS, TRAINING,
        {"run_dir": str(work_dir / "unused")}, BLOCKS["generate_options"], BLOCKS["relax_options"],
        BLOCKS["label_options"], BLOCKS["verify_options"], {**AL, "work_dir": str(work_dir), **al},
    )  # fmt: skip


def test_two_rounds_add_traceable_crystals_and_report_each_round(inputs, tmp_path):
    model, store, additions, report = _run(inputs, tmp_path / "work")
    assert [e["round"] for e in report["rounds"]] == [1, 2] and report["target_class"] == "z2_ti"
    assert sorted(additions) == ["round_01", "round_02"]
    ids = [r.id for r in store]
    assert len(ids) == len(set(ids)) == len(inputs["train"]) + sum(len(a) for a in additions.values())
    for r, name in enumerate(sorted(additions), start=1):
        entry = report["rounds"][r - 1]
        assert entry["n_added"] == len(additions[name]) >= 1 and entry["n_generated"] <= 8
        for rec in additions[name]:
            assert rec.labels["al_round"] == r and rec.id.startswith(f"al{r:02d}-")
            assert rec.labels["al_label_source"] == "tb" and rec.labels["al_pick"] in ("score", "random")
            assert rec.labels["topo_class"] and rec.labels["label_source"].startswith("td-physics")
        y = entry["yield"]
        assert y["n"] == entry["n_labelled"] == sum(entry["class_counts"].values())
        assert y["count"] == entry["class_counts"]["z2_ti"] and (
            y["n"] == 0 or y["ci_low"] <= y["share"] <= y["ci_high"]
        )
        acq = entry["acquisition"]
        assert acq["n_at_random"] == n_exploration(acq["n_picked"], 0.34) and len(acq["scores"]) == acq["n_eligible"]
        assert entry["dft"] == {"dft": "skipped", "reason": "active_learning_options.dft is false", "n_verified": 0}
        assert entry["relax_note"] == "not relaxed: relax_options.enabled is false"
        assert entry["training"]["n_train"] == len(inputs["train"]) + sum(
            len(additions[f"round_{i:02d}"]) for i in range(1, r + 1)
        )
    assert model is not inputs["model"]
    figures = active_learning_plots(report)
    assert len(figures) == 3 and all(f.axes for f in figures)


def test_spread_without_dropout_is_refused_with_the_reason(inputs, tmp_path):
    from td_models import TopologicalDiffusionModel
    from td_models.config import ExperimentConfig

    plain = TopologicalDiffusionModel(ExperimentConfig.from_dict({"model_config": {**MODEL_CONFIG, "dropout": 0.0}}))
    plain.load_state_dict(inputs["model"].state_dict())
    with pytest.raises(ParameterError, match=r"spread > 0 needs MC dropout.*model_config.dropout > 0"):
        _run({**inputs, "model": plain}, tmp_path / "work", rounds=1)


def test_unconditioned_generation_is_refused_with_the_reason(inputs, tmp_path):
    """Active learning steers toward its target class: generate_options.conditioned false is refused, not ignored."""
    with pytest.raises(ParameterError, match=r"generate_options.conditioned: false would sample without it"):
        run_active_learning(
            inputs["model"], inputs["train"], inputs["val"], MODEL_CONFIG, PHYSICS, TRAINING,
            {"run_dir": str(tmp_path / "unused")}, {**BLOCKS["generate_options"], "conditioned": False},
            BLOCKS["relax_options"], BLOCKS["label_options"], BLOCKS["verify_options"],
            {**AL, "work_dir": str(tmp_path / "work")},
        )  # fmt: skip
    assert not (tmp_path / "work").exists()


def test_stop_after_ends_the_last_round_early_and_the_next_run_goes_on(inputs, tmp_path, caplog):
    work = tmp_path / "work"
    _, store, additions, report = _run(inputs, work, rounds=1, stop_after="label")
    assert report["rounds_completed"] == 0 and additions == {} and len(store) == len(inputs["train"])
    state = json.loads((work / "state.json").read_text())
    assert list(state["rounds"]["1"]) == ["generate", "relax", "label"]
    caplog.set_level("INFO", logger="pipelines.active_learning.state")
    _, _, additions, report = _run(inputs, work, rounds=1)
    assert report["rounds_completed"] == 1 and list(additions) == ["round_01"]
    assert "round 1, label already done; skipped" in caplog.text and "round 1, verify already done" not in caplog.text
    assert list(json.loads((work / "state.json").read_text())["rounds"]["1"]) == list(STEPS)


def test_dft_asked_for_but_not_installed_is_recorded_as_skipped_with_the_reason(inputs, tmp_path, monkeypatch):
    import td_physics.dft

    monkeypatch.setattr(td_physics.dft, "dft_available", lambda: (False, "gpaw is not importable here"))
    _, _, additions, report = _run(inputs, tmp_path / "work", rounds=1, dft=True)
    dft = report["rounds"][0]["dft"]
    assert dft["dft"] == "skipped" and dft["n_verified"] == 0
    assert "the DFT extra is not installed" in dft["reason"] and "gpaw is not importable here" in dft["reason"]
    assert {r.labels["al_label_source"] for r in additions["round_01"]} == {"tb"}


@pytest.mark.slow
def test_dft_verifies_the_top_labelled_candidate_and_its_label_says_so(inputs, tmp_path):
    from td_physics.dft import dft_available

    if not dft_available()[0]:
        pytest.skip(f"td-physics[dft] is not installed: {dft_available()[1]}")
    settings = {"kpt_spacing": 0.6, "max_kpts": 4, "confirm": False}
    verify = {"top_n": 1, "max_atoms": 4, "timeout_per_crystal": 300, "settings": settings}
    _, _, additions, report = run_active_learning(
        inputs["model"], inputs["train"], inputs["val"], MODEL_CONFIG, PHYSICS, TRAINING,
        {"run_dir": str(tmp_path / "unused")}, BLOCKS["generate_options"], BLOCKS["relax_options"],
        BLOCKS["label_options"], verify, {**AL, "rounds": 1, "dft": True, "work_dir": str(tmp_path / "work")},
    )  # fmt: skip
    dft = report["rounds"][0]["dft"]
    assert dft["dft"] == "computed" and dft["n_verified"] == 1 and len(dft["results"]) == 1, dft
    result = dft["results"][0]
    by_id = {r.id: r for r in additions["round_01"]}
    if result["converged"] and result["id"] in by_id:  # a converged DFT class is the label the record carries
        rec = by_id[result["id"]]
        assert rec.labels["al_label_source"] == "dft" and rec.labels["topo_class"] == result["topo_class"]
        assert rec.labels["tb_class"] == result["tb_class"]
    assert all(r.labels["al_label_source"] == "tb" for r in additions["round_01"] if r.id != result["id"])


def test_labels_from_a_sharded_array_equal_the_labels_made_here(inputs, tmp_path):
    """The SLURM chain's hand-off without SLURM: stop after relax, label to_label.h5 in shards as the array's tasks
    do, then finish the round; its labels and additions are those of a round that labelled in process."""
    from pipelines.config import LabelConfig
    from td_data.label_shard import label_shard

    work = tmp_path / "sharded"
    _run(inputs, work, rounds=1, stop_after="relax")
    folder = work / "round_01"
    options = {k: v for k, v in LabelConfig.from_dict(BLOCKS["label_options"]).classify_options().items()
               if k != "variants"}  # fmt: skip
    for shard in range(2):
        label_shard(folder / "to_label.h5", shard, 2, folder / "label_shards", **options)
    _, _, sharded, report = _run(inputs, work, rounds=1)
    _, _, here, _ = _run(inputs, tmp_path / "here", rounds=1)
    assert {k: _records(v) for k, v in sharded.items()} == {k: _records(v) for k, v in here.items()}
    summary = json.loads((work / "state.json").read_text())["rounds"]["1"]["label"]
    assert summary["labelled_by"] == "a SLURM array of 2 shards" and report["rounds"][0]["n_labelled"] >= 1


KILLER = """
import json, os, signal, sys
from pathlib import Path
from pipelines.active_learning import state
from pipelines.active_learning.nodes import run_active_learning
from td_data.store import CrystalStore
from td_models import TopologicalDiffusionModel

folder, work, kill_round, kill_step = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
args = json.loads((folder / "args.json").read_text())
mark = state.RoundState.mark

def mark_or_die(self, round_number, step, summary):
    if (round_number, step) == (kill_round, kill_step):  # the step's output is written, the state not yet
        os.kill(os.getpid(), signal.SIGKILL)
    mark(self, round_number, step, summary)

state.RoundState.mark = mark_or_die
with CrystalStore.open(folder / "train.h5") as s:
    train = s.read_all()
with CrystalStore.open(folder / "val.h5") as s:
    val = s.read_all()
model = TopologicalDiffusionModel.load(folder / "model.pt")
run_active_learning(model, train, val, *args[:-1], {**args[-1], "work_dir": work})
"""


def _records(records) -> list[tuple]:
    return [(r.id, json.dumps(dict(r.labels), sort_keys=True), r.atomic_numbers.tolist(),
             np.round(r.frac_coords, 10).tolist()) for r in records]  # fmt: skip


@pytest.mark.parametrize("kill_at", [(1, "add"), pytest.param((2, "train"), marks=pytest.mark.slow)])
def test_interrupted_and_resumed_equals_uninterrupted(inputs, tmp_path, kill_at):
    """SIGKILL between a step's output and the state that records it (the worst moment: the output is there,
    the state does not know it); the resumed run neither duplicates nor loses a record and ends where an
    uninterrupted run ends. The fine-tuning is deterministic on CPU, so the weights agree to float tolerance."""
    from td_models import TopologicalDiffusionModel

    args = [MODEL_CONFIG, PHYSICS, TRAINING, {"run_dir": str(tmp_path / "unused")}, *BLOCKS.values(), AL]
    (inputs["folder"] / "args.json").write_text(json.dumps(args))
    work = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = subprocess.run([sys.executable, "-c", KILLER, str(inputs["folder"]), str(work), *map(str, kill_at)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    r, step = kill_at
    folder = work / f"round_{r:02d}"
    assert (folder / {"add": "added.h5", "train": "model.pt"}[step]).is_file()
    assert step not in json.loads((work / "state.json").read_text())["rounds"][str(r)]

    resumed = _run({**inputs, "model": TopologicalDiffusionModel.load(inputs["folder"] / "model.pt")}, work)
    whole = _run({**inputs, "model": TopologicalDiffusionModel.load(inputs["folder"] / "model.pt")}, tmp_path / "whole")
    assert _records(resumed[1]) == _records(whole[1])  # the training store: nothing twice, nothing lost
    assert {k: _records(v) for k, v in resumed[2].items()} == {k: _records(v) for k, v in whole[2].items()}
    drop = ("training",)
    strip = [{k: v for k, v in e.items() if k not in drop} for e in resumed[3]["rounds"]]
    assert strip == [{k: v for k, v in e.items() if k not in drop} for e in whole[3]["rounds"]]
    for key, value in whole[0].state_dict().items():
        np.testing.assert_allclose(resumed[0].state_dict()[key].numpy(), value.numpy(), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------------ kedro


def test_kedro_run_active_learning_in_a_project_copy_then_again_resumes(inputs, tmp_path):
    project = project_copy(tmp_path, inputs["folder"])
    data = project / "data"
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    command = [str(KEDRO), "run", "--pipelines=active_learning"]
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    report = json.loads((data / "08_reporting" / "active_learning.json").read_text())
    assert [e["round"] for e in report["rounds"]] == [1, 2]
    assert all({"round", "n_generated", "n_added", "yield"} <= set(e) for e in report["rounds"])
    for name in ("active_learning_yield.png", "active_learning_scores.png", "active_learning_classes.png"):
        assert (data / "08_reporting" / name).stat().st_size > 0
    parts = sorted(p.name for p in (data / "05_model_input" / "active_learning_additions").iterdir())
    assert parts == ["round_01.h5", "round_02.h5"]
    assert (data / "06_models" / "active_learning_model.pt").is_file()
    assert (data / "05_model_input" / "active_learning_train.h5").is_file()

    again = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=600, check=False)
    out = again.stdout + again.stderr
    assert again.returncode == 0, out[-4000:]
    assert "round 2, train already done; skipped" in out and "starting afresh" not in out
    assert json.loads((data / "08_reporting" / "active_learning.json").read_text()) == report


def _kedro_config(env: str) -> tuple[dict, dict]:
    """``(parameters, catalog)`` of ``kedro run --env ENV``, loaded in a process of its own: kedro's
    bootstrap_project sets sys.path, PYTHONPATH and logging process-wide, which would leak into other tests."""
    code = (
        "import json, sys\n"
        "from pipelines.resolved_config import load_kedro_config\n"
        "print(json.dumps(load_kedro_config(sys.argv[1], sys.argv[2]), default=str))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(ROOT), env],
        cwd=ROOT,
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    params, catalog = json.loads(done.stdout.strip().splitlines()[-1])
    return params, catalog


def test_the_demo_configuration_is_valid_and_leaves_the_main_jobs_files_alone():
    """conf/active_learning_demo: every block it writes is valid; ingest..train write under data/active_learning_demo/
    (not over the main job's files), the active-learning outputs where conf/base puts them."""
    from pipelines.config import DataConfig, LabelConfig
    from pipelines.pipeline_registry import register_pipelines
    from pipelines.relax.nodes import RelaxOptions
    from pipelines.resolved_config import dataset_path
    from pipelines.train.nodes import TrainOptions, experiment_config

    params, catalog = _kedro_config("active_learning_demo")
    _, base = _kedro_config("base")
    experiment_config(params["model_config"], params["physics_config"], params["training_config"])
    blocks = {"data_config": DataConfig, "label_options": LabelConfig, "relax_options": RelaxOptions,
              "train_options": TrainOptions, "active_learning_options": ActiveLearningOptions}  # fmt: skip
    for block, cls in blocks.items():
        cls.from_dict(params[block])
    assert params["model_config"]["dropout"] > 0 and params["active_learning_options"]["acquisition"]["spread"] > 0
    pipelines = register_pipelines()
    upstream = set().union(*(pipelines[p].all_outputs() for p in ("ingest", "label", "split", "train")))
    assert upstream - set(catalog) == {"train_items", "val_items"}  # the train pipeline's in-memory hand-off
    for name in upstream & set(catalog):
        assert dataset_path(catalog[name], ROOT).startswith("data/active_learning_demo/"), name
    for name in pipelines["active_learning"].all_outputs():
        assert dataset_path(catalog[name], ROOT) == dataset_path(base[name], ROOT), name
    assert params["train_options"]["run_dir"].startswith("data/active_learning_demo/")
    assert params["active_learning_options"]["work_dir"].startswith("data/active_learning_demo/")


@pytest.mark.slow
def test_the_demo_commands_write_two_rounds(tmp_path):
    """The two commands of `make active-learning-demo`, in a copy of the project."""
    project = project_skeleton(tmp_path)
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    for pipelines in ("ingest,label,split,train", "active_learning"):
        command = [str(KEDRO), "run", "--env", "active_learning_demo", f"--pipelines={pipelines}"]
        done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=1200, check=False)
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    report = json.loads((project / "data" / "08_reporting" / "active_learning.json").read_text())
    assert [e["round"] for e in report["rounds"]] == [1, 2]
    assert all({"round", "n_generated", "n_added", "yield"} <= set(e) for e in report["rounds"])
    assert not (project / "data" / "06_models" / "model.pt").exists()  # the main job's model is not the demo's


def test_active_learning_is_registered_but_not_in_the_default_run():
    from pipelines.pipeline_registry import register_pipelines

    pipelines = register_pipelines()
    assert "run_active_learning_node" in {n.name for n in pipelines["active_learning"].nodes}
    assert not {n.name for n in pipelines["__default__"].nodes} & {n.name for n in pipelines["active_learning"].nodes}

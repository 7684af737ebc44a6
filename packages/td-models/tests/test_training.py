"""The Trainer on a tiny model and CPU: exact resume, checkpoints, the non-finite guard, precision, schedule, EMA."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import signal

import numpy as np
import pytest
import torch

from td_models.batch import crystal_item
from td_models.config import ExperimentConfig, ModelConfig, TrainingConfig
from td_models.exceptions import CheckpointError, ConfigError, TrainingDivergedError
from td_models.model import TopologicalDiffusionModel
from td_models.threads import torch_threads
from td_models.training import (
    PREEMPTED_EXIT_CODE,
    ShardedBatchSampler,
    Trainer,
    latest_checkpoint,
    learning_rate_at,
    list_checkpoints,
    load_trainer_checkpoint,
    read_metrics,
)

PHASES = [
    {"name": "structure_learning", "start_epoch": 1, "learning_rate": 1e-3, "physics": False},
    {"name": "physics_integration", "start_epoch": 2, "learning_rate": 5e-4, "physics": True},
    {"name": "fine_tuning", "start_epoch": 3, "learning_rate": 2e-4, "physics": True},
]


def crystals(n: int, seed: int) -> list[dict]:
    """``n`` small random crystals (1-4 atoms, cubic-ish cells of 3-6 Angstrom) with every label."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(1, 5))
        lattice = rng.uniform(3.0, 6.0) * np.eye(3) + rng.normal(0.0, 0.1, (3, 3))
        out.append(
            crystal_item(
                lattice,
                rng.uniform(0.0, 1.0, (k, 3)),
                rng.integers(1, 30, k),
                topo_class=int(rng.integers(0, 4)),
                band_gap=float(rng.uniform(0.0, 2.0)),
                formation_energy=float(rng.normal()),
            )
        )
    return out


TRAIN, VAL = crystals(24, 0), crystals(8, 1)


def tiny_config(**training) -> ExperimentConfig:
    values = {
        "batch_size": 4,
        "max_epochs": 3,
        "warmup_epochs": 1,
        "checkpoint_every": 1,
        "keep_checkpoints": 2,
        "ema_decay": 0.9,
        "phases": PHASES,
        **training,
    }
    return ExperimentConfig(
        model_config=ModelConfig(hidden_dim=32, num_layers=2, num_heads=4, num_steps=50, max_atoms=8),
        training_config=TrainingConfig(**values),
    )


def make_trainer(out, config=None, val=True, **options) -> Trainer:
    options = {"progress_bar": False, "tensorboard": False, **options}
    return Trainer(config or tiny_config(), TRAIN, VAL if val else None, output_dir=out, **options)


def train_losses(csv_path) -> dict[int, float]:
    return {r["step"]: r["total"] for r in read_metrics(csv_path) if r["kind"] == "train"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 3-epoch run (6 steps an epoch, checkpoints every epoch, keep 2)."""
    out = tmp_path_factory.mktemp("reference")
    torch.set_num_threads(1)
    trainer = make_trainer(out)
    result = trainer.fit()
    return trainer, result


# ---------------------------------------------------------------------------------------------- resume
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, reference):
    trainer_a, result_a = reference
    expected = train_losses(result_a.metrics_csv)
    assert len(expected) == 18 and result_a.epochs_completed == 3

    # B: a preemption signal at step 8 (mid-epoch 2), then a new process-like Trainer resumes "latest".
    first = make_trainer(tmp_path, handle_preemption=True)
    step = first.optimizer.step

    def step_and_signal(*args, **kwargs):
        step(*args, **kwargs)
        if first.global_step == 7:  # the signal arrives during the 8th step, which still completes
            os.kill(os.getpid(), signal.SIGUSR1)

    first.optimizer.step = step_and_signal
    stopped = first.fit()
    assert stopped.preempted and stopped.global_step == 8 and stopped.final_model is None
    assert stopped.last_checkpoint.name == "checkpoint_epoch_0001_batch_000002.pt"
    assert PREEMPTED_EXIT_CODE == 75
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # handlers restored

    resumed = make_trainer(tmp_path).fit(resume_from="latest")
    assert resumed.epochs_completed == 3 and resumed.global_step == 18
    got = train_losses(resumed.metrics_csv)
    assert sorted(got) == sorted(expected)  # rows after the checkpoint were dropped, none duplicated
    assert max(abs(got[s] - expected[s]) for s in expected) <= 1e-6

    # C: resume from the epoch-1 checkpoint of a third run (epoch boundary).
    third = make_trainer(tmp_path / "c", tiny_config(max_epochs=1))
    assert third.fit().last_checkpoint.name == "checkpoint_epoch_0001.pt"
    finished = make_trainer(tmp_path / "c").fit(resume_from=tmp_path / "c" / "checkpoints" / "checkpoint_epoch_0001.pt")
    got = train_losses(finished.metrics_csv)
    assert max(abs(got[s] - expected[s]) for s in expected) <= 1e-6
    # the weights end the same too
    final_a = TopologicalDiffusionModel.load(result_a.final_model)
    final_c = TopologicalDiffusionModel.load(finished.final_model)
    for (name, a), (_, c) in zip(final_a.state_dict().items(), final_c.state_dict().items()):
        torch.testing.assert_close(a, c, rtol=0, atol=1e-6, msg=name)


def test_resume_mid_epoch_with_gradient_accumulation(tmp_path):
    """Accumulation 2 (3 steps an epoch): request_stop mid-epoch 2, resume, same losses and weights."""
    config = tiny_config(max_epochs=2, gradient_accumulation_steps=2, checkpoint_every=2)
    whole = make_trainer(tmp_path / "whole", config, val=False).fit()
    assert whole.global_step == 6
    first = make_trainer(tmp_path / "cut", config, val=False)
    step = first.optimizer.step

    def step_and_stop(*args, **kwargs):
        step(*args, **kwargs)
        if first.global_step == 3:  # during the 4th step: the first of epoch 2
            first.request_stop()

    first.optimizer.step = step_and_stop
    cut = first.fit()
    assert cut.preempted and cut.last_checkpoint.name == "checkpoint_epoch_0001_batch_000002.pt"
    rest = make_trainer(tmp_path / "cut", config, val=False).fit(resume_from="latest")
    expected, got = train_losses(whole.metrics_csv), train_losses(rest.metrics_csv)
    assert sorted(got) == [1, 2, 3, 4, 5, 6]
    assert max(abs(got[s] - expected[s]) for s in expected) <= 1e-6
    epoch_rows = [r for r in read_metrics(rest.metrics_csv) if r["kind"] == "epoch"]
    whole_rows = [r for r in read_metrics(whole.metrics_csv) if r["kind"] == "epoch"]
    assert epoch_rows[-1]["total"] == pytest.approx(whole_rows[-1]["total"], abs=1e-6)  # partial sums restored


def test_resume_refuses_another_model_and_latest_starts_afresh(tmp_path, reference):
    _, result = reference
    other = dataclasses.replace(tiny_config(), model_config=ModelConfig(hidden_dim=16, num_layers=1, num_heads=4))
    trainer = make_trainer(tmp_path, other)
    with pytest.raises(CheckpointError, match="hidden_dim: checkpoint 32, now 16"):
        trainer.resume(result.last_checkpoint)
    assert trainer.resume("latest") is None and trainer.epoch == 0  # nothing in tmp_path yet
    with pytest.raises(CheckpointError, match="must exist"):
        trainer.resume(tmp_path / "nope.pt")


# ---------------------------------------------------------------------------------------------- checkpoints
def test_checkpoints_rotate_and_carry_the_resolved_configuration(reference):
    trainer, result = reference
    names = [p.name for p in list_checkpoints(result.output_dir / "checkpoints")]
    assert names == ["checkpoint_epoch_0002.pt", "checkpoint_epoch_0003.pt"]  # keep_checkpoints = 2
    payload = load_trainer_checkpoint(result.last_checkpoint)  # weights_only=True
    assert ExperimentConfig.from_dict(payload["config"]) == trainer.config
    assert payload["epoch"] == 3 and payload["global_step"] == 18 and payload["batches_done"] == 0
    assert payload["scheduler"]["last_epoch"] == 18
    assert set(payload["processes"][0]["rng"]) == {"python", "numpy", "torch", "cuda", "noise"}
    assert latest_checkpoint(result.output_dir) == result.last_checkpoint
    with pytest.raises(CheckpointError, match="not a td-models training checkpoint"):
        load_trainer_checkpoint(result.final_model)


def test_a_crash_while_saving_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    real_save = torch.save

    def crash_halfway(obj, f, *args, **kwargs):
        if "checkpoint_epoch_0002" in str(getattr(f, "name", f)):
            real_save(obj, f, *args, **kwargs)
            f.flush()
            f.truncate(os.path.getsize(f.name) // 2)  # the disk filled up halfway through
            raise OSError("No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", crash_halfway)
    trainer = make_trainer(tmp_path, tiny_config(max_epochs=2), val=False)
    with pytest.raises(OSError, match="No space left"):
        trainer.fit()
    folder = tmp_path / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint_epoch_0001.pt"]  # temporary file removed
    # a process killed mid-write leaves its temporary file behind: never taken for the latest
    (folder / ".checkpoint_epoch_0002.pt.x1y2.tmp").write_bytes(b"PK\x03\x04 half a zip")
    assert latest_checkpoint(tmp_path).name == "checkpoint_epoch_0001.pt"
    assert load_trainer_checkpoint(latest_checkpoint(tmp_path))["epoch"] == 1
    monkeypatch.setattr(torch, "save", real_save)
    result = make_trainer(tmp_path, tiny_config(max_epochs=2), val=False).fit(resume_from="latest")
    assert result.epochs_completed == 2 and result.last_checkpoint.name == "checkpoint_epoch_0002.pt"
    assert not list(folder.glob(".*.tmp"))  # the orphan was removed at resume


# ---------------------------------------------------------------------------------------------- non-finite guard
def poison(trainer: Trainer, bad_calls: set[int] | None = None, from_call: int | None = None) -> None:
    """Make ``training_losses`` return a NaN total on the given (0-based) calls."""
    real = trainer.model.training_losses
    calls = {"n": 0}

    def losses(*args, **kwargs):
        out = real(*args, **kwargs)
        n = calls["n"]
        calls["n"] += 1
        if (bad_calls and n in bad_calls) or (from_call is not None and n >= from_call):
            out["total"] = out["total"] * float("nan")
        return out

    trainer.model.training_losses = losses


def test_nonfinite_steps_are_skipped_and_counted(tmp_path, caplog):
    trainer = make_trainer(tmp_path, tiny_config(max_epochs=1, max_nonfinite_steps=2), val=False)
    poison(trainer, bad_calls={1, 3})  # steps 2 and 4 of 6, never two in a row
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with caplog.at_level(logging.WARNING, logger="td_models.training"):
        result = trainer.fit()
    assert result.nonfinite_steps == 2 and result.epochs_completed == 1
    assert "non-finite" in caplog.text
    adam_steps = {int(s["step"]) for s in trainer.optimizer.state_dict()["state"].values()}
    assert adam_steps == {4}  # 6 step slots, 2 skipped: 4 optimiser updates
    rows = [r for r in read_metrics(result.metrics_csv) if r["kind"] == "train"]
    assert [r["skipped"] for r in rows] == [0, 1, 1, 2, 2, 2]
    assert rows[1]["total"] is None and rows[1]["grad_norm"] is None
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())


def test_too_many_nonfinite_steps_in_a_row_stop_with_the_checkpoint_intact(tmp_path):
    trainer = make_trainer(tmp_path, tiny_config(max_epochs=3, max_nonfinite_steps=3), val=False)
    poison(trainer, from_call=6)  # every step of epoch 2
    with pytest.raises(TrainingDivergedError, match="max_nonfinite_steps = 3 .* epoch 2, step 8"):
        trainer.fit()
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["checkpoint_epoch_0001.pt"]
    payload = load_trainer_checkpoint(latest_checkpoint(tmp_path))
    assert payload["epoch"] == 1 and payload["nonfinite"]["consecutive"] == 0
    assert all(torch.isfinite(v).all() for v in payload["model"].values() if v.is_floating_point())


# ---------------------------------------------------------------------------------------------- precision, options
def test_bf16_mixed_precision_runs_on_cpu(tmp_path):
    trainer = make_trainer(tmp_path, tiny_config(max_epochs=1), val=False, mixed_precision="bf16")
    assert trainer.accelerator.mixed_precision == "bf16"
    assert trainer.config.training_config.mixed_precision == "bf16"  # the resolved config is what gets saved
    real, seen = trainer.model.training_losses, []

    def losses(*args, **kwargs):
        seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)
        return real(*args, **kwargs)

    trainer.model.training_losses = losses
    result = trainer.fit()
    assert seen and all(seen)
    assert result.nonfinite_steps == 0 and math.isfinite(result.last_losses["total"])
    assert load_trainer_checkpoint(result.last_checkpoint)["config"]["training_config"]["mixed_precision"] == "bf16"


def test_options_are_checked_and_single_process_compression_is_ignored(tmp_path, caplog):
    with pytest.raises(ConfigError, match="gradient_compression must be one of"):
        make_trainer(tmp_path, gradient_compression="zip")
    with pytest.raises(ConfigError, match="mixed_precision must be"):
        make_trainer(tmp_path, mixed_precision="fp8")
    with caplog.at_level(logging.INFO, logger="td_models.training"):
        trainer = make_trainer(tmp_path, gradient_compression="powersgd", gradient_checkpointing=True)
    assert "gradient_compression='powersgd' ignored" in caplog.text
    assert trainer.model.denoiser.gradient_checkpointing and trainer.config.model_config.gradient_checkpointing


def test_max_seconds_stops_after_the_step_that_crosses_it_with_a_checkpoint(tmp_path, monkeypatch):
    import time as real_time

    import td_models.training.trainer as trainer_module

    clock = {"now": 0.0}

    class FakeTime:  # time.monotonic advances one second per optimiser step; the rest is the real module
        def __getattr__(self, name):
            return getattr(real_time, name)

        @staticmethod
        def monotonic():
            return clock["now"]

    monkeypatch.setattr(trainer_module, "time", FakeTime())
    trainer = make_trainer(tmp_path, tiny_config(max_epochs=3), val=False)
    for bad in (0, -1.0, float("nan"), True, "60"):
        with pytest.raises(ConfigError, match="max_seconds must be None or a number of seconds > 0"):
            trainer.fit(max_seconds=bad)
    step = trainer.optimizer.step

    def step_and_tick(*args, **kwargs):
        step(*args, **kwargs)
        clock["now"] += 1.0

    trainer.optimizer.step = step_and_tick
    result = trainer.fit(max_seconds=3.5)  # 6 steps an epoch: the 4th step ends at 4 s, past the limit
    assert result.time_limited and not result.preempted and not result.reached_max_steps
    assert (result.global_step, result.epochs_completed) == (4, 0) and result.final_model is None
    assert result.last_checkpoint.name == "checkpoint_epoch_0000_batch_000004.pt"
    rest = make_trainer(tmp_path, tiny_config(max_epochs=3), val=False).fit(resume_from="latest")
    assert not rest.time_limited and rest.global_step == 18 and rest.final_model.is_file()


def test_max_steps_stops_without_writing_and_fit_continues(tmp_path):
    trainer = make_trainer(tmp_path, tiny_config(max_epochs=3), val=False)
    with pytest.raises(ConfigError, match="max_steps must be None or an integer >= 1"):
        trainer.fit(max_steps=0)
    result = trainer.fit(max_steps=4)  # 6 steps an epoch: stops inside epoch 1
    assert result.reached_max_steps and (result.global_step, result.epochs_completed) == (4, 0)
    assert result.final_model is None and result.last_checkpoint is None
    assert list_checkpoints(tmp_path / "checkpoints") == []
    more = trainer.fit(max_steps=4)
    assert (more.global_step, more.epochs_completed) == (8, 1)
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["checkpoint_epoch_0001.pt"]


# ---------------------------------------------------------------------------------------------- in-memory result
def same_cell(x, y) -> bool:
    return x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))


def same_rows(a, b) -> bool:
    """Metric rows equal cell by cell (NaN equal to NaN)."""
    return len(a) == len(b) and all(
        r.keys() == s.keys() and all(same_cell(r[k], s[k]) for k in r) for r, s in zip(a, b)
    )


def test_fit_returns_in_memory_what_it_wrote_to_disk(tmp_path, reference):
    _, plain = reference
    assert plain.history is None and plain.resumed_from is None  # keep_history is off by default
    assert plain.phases == ("structure_learning", "physics_integration", "fine_tuning")

    before = torch.get_num_threads()
    first = make_trainer(tmp_path, tiny_config(max_epochs=1), keep_history=True)
    with torch_threads(1):
        stopped = first.fit()
    assert torch.get_num_threads() == before
    assert stopped.phases == ("structure_learning",) and stopped.best_epoch == 1
    assert same_rows(stopped.history, read_metrics(stopped.metrics_csv))

    trainer = make_trainer(tmp_path, tiny_config(max_epochs=2), keep_history=True)
    result = trainer.fit(resume_from="latest")
    assert result.resumed_from == stopped.last_checkpoint
    assert result.phases == ("structure_learning", "physics_integration")
    rows = read_metrics(result.metrics_csv)  # the first run's rows and this one's, as in the file
    assert same_rows(result.history, rows) and {r["epoch"] for r in result.history} == {1, 2}
    assert result.best_epoch == trainer.best_epoch
    assert result.model is trainer.ema.model  # the EMA weights final_model.pt holds, without reading it back
    saved = TopologicalDiffusionModel.load(result.final_model).state_dict()
    for name, value in result.model.state_dict().items():
        torch.testing.assert_close(saved[name], value.cpu(), rtol=0, atol=0, msg=name)


def test_phases_reached_count_an_epoch_stopped_midway(tmp_path):
    trainer = make_trainer(tmp_path, tiny_config(max_epochs=3), val=False)
    assert trainer.fit(max_steps=4).phases == ("structure_learning",)  # 4 of epoch 1's 6 steps
    assert trainer.fit(max_steps=4).phases == ("structure_learning", "physics_integration")  # 2 into epoch 2


def test_a_phase_that_starts_after_max_epochs_is_named_in_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="td_models"):
        make_trainer(tmp_path / "all", tiny_config(max_epochs=3), val=False)
    assert "will not run" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="td_models"):
        make_trainer(tmp_path / "cut", tiny_config(max_epochs=2), val=False)
    assert "max_epochs = 2: the phases fine_tuning (from epoch 3) start after it and will not run" in caplog.text


# ---------------------------------------------------------------------------------------------- schedule, EMA
def test_learning_rate_follows_warmup_phases_and_cosine():
    tc = TrainingConfig(warmup_epochs=2, max_epochs=10, phases=PHASES)
    spe = 5
    assert learning_rate_at(tc, 0, spe) == pytest.approx(1e-3 / 10)  # warm-up: 1 of 10 steps
    assert learning_rate_at(tc, 4, spe) == pytest.approx(1e-3 / 2)  # phase 1 (epoch 1), half-way through warm-up
    assert learning_rate_at(tc, 9, spe) == pytest.approx(5e-4)  # end of warm-up, phase 2 (epoch 2)
    assert learning_rate_at(tc, 10, spe) == pytest.approx(2e-4)  # epoch 3: fine_tuning
    tc = TrainingConfig(warmup_epochs=0, max_epochs=10, phases=PHASES)
    assert [learning_rate_at(tc, s, spe) for s in (0, 4, 5, 9, 10, 49)] == [1e-3, 1e-3, 5e-4, 5e-4, 2e-4, 2e-4]
    cos = TrainingConfig(scheduler="cosine", learning_rate=1e-3, min_learning_rate=1e-5, warmup_epochs=0, max_epochs=10)
    assert learning_rate_at(cos, 0, spe) == pytest.approx(1e-3)
    assert learning_rate_at(cos, 25, spe) == pytest.approx((1e-3 + 1e-5) / 2)
    assert learning_rate_at(cos, 50, spe) == pytest.approx(1e-5)
    rates = [learning_rate_at(cos, s, spe) for s in range(51)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))
    with pytest.raises(ConfigError, match="steps_per_epoch must be an integer >= 1"):
        learning_rate_at(cos, 0, 0)


def test_the_run_used_the_scheduled_rates_and_phases(reference):
    trainer, result = reference
    tc = trainer.config.training_config
    rows = [r for r in read_metrics(result.metrics_csv) if r["kind"] == "train"]
    assert [r["lr"] for r in rows] == pytest.approx([learning_rate_at(tc, r["step"] - 1, 6) for r in rows])
    assert [r["phase"] for r in rows] == ["structure_learning"] * 6 + ["physics_integration"] * 6 + ["fine_tuning"] * 6
    assert rows[0]["properties"] is None and rows[6]["properties"] is not None  # physics losses from phase 2 on
    assert {r["kind"] for r in read_metrics(result.metrics_csv)} == {"train", "epoch", "val"}


def test_ema_differs_from_the_raw_weights_and_is_what_gets_saved(reference):
    trainer, result = reference
    raw, ema = trainer.model.state_dict(), trainer.ema.model.state_dict()
    assert any(not torch.allclose(raw[k], ema[k]) for k in raw if raw[k].is_floating_point())
    saved = TopologicalDiffusionModel.load(result.final_model).state_dict()
    for k, v in ema.items():
        torch.testing.assert_close(saved[k], v, rtol=0, atol=0)
    assert TopologicalDiffusionModel.load(result.best_model).config == trainer.config


def test_ema_off_saves_the_raw_weights(tmp_path):
    trainer = make_trainer(tmp_path, tiny_config(max_epochs=1, ema_decay=0.0), val=False)
    result = trainer.fit()
    assert trainer.ema is None
    saved = TopologicalDiffusionModel.load(result.final_model).state_dict()
    for k, v in trainer.model.state_dict().items():
        torch.testing.assert_close(saved[k], v, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------- data order
def test_sampler_shards_are_disjoint_and_depend_only_on_seed_and_epoch():
    shards = [ShardedBatchSampler(10, 3, num_replicas=2, rank=r, seed=7) for r in range(2)]
    for s in shards:
        s.set_epoch(4)
    seen = [sorted(i for b in s for i in b) for s in shards]
    assert set(seen[0]).isdisjoint(seen[1]) and sorted(seen[0] + seen[1]) == list(range(10))
    again = ShardedBatchSampler(10, 3, num_replicas=2, rank=0, seed=7)
    again.set_epoch(4)
    assert list(again) == list(shards[0])
    again.set_epoch(5)
    assert list(again) != list(shards[0])
    again.set_epoch(4, start_batch=1)
    assert list(again) == list(shards[0])[1:] and len(again) == 1
    odd = [ShardedBatchSampler(7, 2, num_replicas=2, rank=r, seed=0) for r in range(2)]
    assert [o.batches_per_epoch() for o in odd] == [2, 2]  # padded: the same number of batches everywhere


def test_size_buckets_keep_every_crystal_once_and_cut_the_padding():
    """bucket_batches: the same indices and batch count as random batches, a pure function of (seed, epoch),
    disjoint DDP shards, resumable mid-epoch, and far fewer padded pairs on mixed sizes."""
    sizes = np.random.default_rng(3).choice([6, 8, 10, 12, 16, 24], size=203)
    kw = {"seed": 5, "sizes": sizes, "bucket_batches": 4}
    plain, bucketed = ShardedBatchSampler(203, 8, seed=5), ShardedBatchSampler(203, 8, **kw)
    for e in (0, 1):
        plain.set_epoch(e)
        bucketed.set_epoch(e)
        batches = list(bucketed)
        assert sorted(i for b in batches for i in b) == list(range(203))
        assert len(batches) == len(list(plain)) == 26 and sorted(map(len, batches)) == [3] + [8] * 25
        pads = [sum(len(b) * int(sizes[b].max()) ** 2 for b in bs) for bs in (list(plain), batches)]
        assert pads[1] < 0.6 * pads[0], pads
    again = ShardedBatchSampler(203, 8, **kw)
    again.set_epoch(1)
    assert list(again) == batches
    again.set_epoch(0)
    assert list(again) != batches
    again.set_epoch(1, start_batch=5)
    assert list(again) == batches[5:]
    # a pool is sorted by size: within the 4-batch pools, each batch's sizes span a narrow range
    assert np.median([int(np.ptp(sizes[b])) for b in batches]) <= 4
    shards = [ShardedBatchSampler(203, 8, num_replicas=2, rank=r, **kw) for r in range(2)]
    seen = [sorted(i for b in s.batches(2) for i in b) for s in shards]
    assert len(shards[0].batches(2)) == len(shards[1].batches(2)) == 13
    assert sorted(set(seen[0]) | set(seen[1])) == list(range(203))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bucket_batches": 1, "sizes": [1, 2]}, "must be 0 (off) or >= 2: a pool of 1 batch sorts nothing, got 1"),
        ({"bucket_batches": -2}, "bucket_batches must be an integer >= 0, got -2"),
        ({"bucket_batches": True}, "bucket_batches must be an integer >= 0, got True"),
        ({"bucket_batches": 3}, "bucket_batches 3 needs the crystals' sizes, got none"),
        ({"bucket_batches": 3, "sizes": [1, 2, 3]}, "sizes must hold one atom count per crystal (2), got 3"),
    ],
)
def test_size_bucket_options_are_refused_with_the_rule(kwargs, message):
    with pytest.raises(ConfigError) as err:
        ShardedBatchSampler(2, 1, **kwargs)
    assert message in str(err.value)


@pytest.mark.parametrize("value", [1, -1, 2.5, True])
def test_training_config_refuses_a_bucket_pool_of_one_batch_or_less(value):
    with pytest.raises(ConfigError, match="training_config.bucket_batches must be 0 .off. or an integer >= 2"):
        TrainingConfig(bucket_batches=value)


def test_size_bucketed_training_resumes_mid_epoch_exactly(tmp_path):
    """The trainer's bucketed batches (2-batch pools) through a stop in the 9th step (epoch 2) and a resume: the
    same losses and weights as the uninterrupted run."""
    config = tiny_config(max_epochs=2, bucket_batches=2, checkpoint_every=2)
    whole = make_trainer(tmp_path / "whole", config, val=False).fit()
    expected = train_losses(whole.metrics_csv)
    assert len(expected) == 12
    first = make_trainer(tmp_path / "split", config, val=False)
    step = first.optimizer.step

    def step_and_stop(*args, **kwargs):
        step(*args, **kwargs)
        if first.global_step == 8:
            first.request_stop()

    first.optimizer.step = step_and_stop
    assert first.fit().preempted
    done = make_trainer(tmp_path / "split", config, val=False).fit(resume_from="latest")
    got = train_losses(done.metrics_csv)
    assert sorted(got) == sorted(expected) and max(abs(got[s] - expected[s]) for s in expected) <= 1e-6
    a, b = (TopologicalDiffusionModel.load(r.final_model) for r in (whole, done))
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-6, msg=name)


@pytest.mark.parametrize("buffer", ["species_volume", "class_element_count_weights"])
def test_a_checkpoint_from_before_a_data_buffer_resumes_with_the_runs_own(tmp_path, buffer):
    """A training checkpoint written before the model kept its element volumes (or its per-class histograms) lacks
    that buffer; resuming fills in the one this run fitted on its training data (set-up) instead of refusing the
    file, in the weights and in the EMA's."""
    from td_models.training.trainer import DATA_BUFFERS_ADDED_LATER, _with_data_buffers

    assert buffer in DATA_BUFFERS_ADDED_LATER
    trainer = make_trainer(tmp_path, tiny_config(max_epochs=1), val=False)
    model = trainer.model
    assert float(getattr(model, buffer).max()) > 0  # fitted at set-up
    old = {k: v for k, v in model.state_dict().items() if k != buffer}
    filled = _with_data_buffers(old, model)
    torch.testing.assert_close(filled[buffer], getattr(model, buffer).cpu())
    model.load_state_dict(filled)  # strict: nothing missing
    assert _with_data_buffers(model.state_dict(), model).keys() == model.state_dict().keys()
    path = trainer.fit().last_checkpoint
    payload = torch.load(path, weights_only=True)
    del payload["model"][buffer], payload["ema"]["weights"][buffer]
    torch.save(payload, path)
    resumed = make_trainer(tmp_path, tiny_config(max_epochs=2), val=False).fit(resume_from="latest")
    assert resumed.resumed_from == path and resumed.epochs_completed == 2

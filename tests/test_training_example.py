"""examples/training_example.py: every flag has an effect; a 2-process CPU run under a launcher (slow)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from td_models.config import ExperimentConfig, ModelConfig, TrainingConfig, save_config
from td_models.training import list_checkpoints, load_trainer_checkpoint, read_metrics

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "training_example.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("training_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = _load_example()


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory) -> Path:
    """A tiny model (hidden 32, 1 layer) with the cpu-demo phases squeezed into 3 epochs."""
    config = ExperimentConfig(
        model_config=ModelConfig(hidden_dim=32, num_layers=1, num_heads=4, num_steps=50),
        training_config=TrainingConfig(
            batch_size=4,
            max_epochs=2,
            warmup_epochs=0,
            checkpoint_every=1,
            keep_checkpoints=3,
            phases=[
                {"name": "structure_learning", "start_epoch": 1, "learning_rate": 1e-3},
                {"name": "physics_integration", "start_epoch": 2, "learning_rate": 5e-4, "physics": True},
            ],
        ),
    )
    return save_config(config, tmp_path_factory.mktemp("config") / "tiny.json")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A td-data store of 16 labelled crystals (CsCl-type, 2 atoms) plus one of 30 atoms (skipped)."""
    from td_data import CrystalRecord
    from td_data.store import write_store

    rng = np.random.default_rng(0)
    records = []
    for i in range(16):
        a = float(rng.uniform(3.5, 4.5))
        records.append(
            CrystalRecord(
                a * np.eye(3),
                [[0, 0, 0], [0.5, 0.5, 0.5]],
                [55, 17] if i % 2 else [29, 30],
                properties={"band_gap": float(i % 3), "formation_energy": -1.0},
                labels={"topo_class": "trivial" if i % 2 else "semimetal_or_metal"},
                id=f"c{i}",
            )
        )
    records.append(CrystalRecord(9.0 * np.eye(3), rng.uniform(0, 1, (30, 3)), [11] * 30, id="big"))
    return write_store(tmp_path_factory.mktemp("data") / "crystals.h5", records)


def common(tiny_config: Path, store: Path, out: Path) -> list[str]:
    return ["--config", str(tiny_config), "--data", str(store), "--output-dir", str(out), "--no-progress"]


# ---------------------------------------------------------------------------------------------- fast
def test_create_config_writes_the_three_blocks_of_the_preset(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert example.main(["--create-config"]) == 0
    written = json.loads((tmp_path / "training_config.json").read_text())
    assert set(written) == {"model_config", "physics_config", "training_config"}
    assert written == ExperimentConfig.preset("cpu-demo").to_dict()
    assert written["physics_config"]["stability_threshold"] is None  # written, off: the relax pipeline applies it
    assert "wrote training_config.json" in capsys.readouterr().out
    assert example.main(["--create-config", "small.yaml", "--preset", "small"]) == 0
    from td_models import load_config

    assert load_config(tmp_path / "small.yaml") == ExperimentConfig.preset("small")


def test_help_prints_the_launcher_lines():
    text = example.build_parser().format_help()
    assert "accelerate launch --num_processes N examples/training_example.py --config training_config.json" in text
    assert "accelerate launch --multi_gpu --num_processes N examples/training_example.py" in text
    assert "torchrun --nproc_per_node N examples/training_example.py --config training_config.json" in text


def test_each_override_reaches_the_trainer(tmp_path, tiny_config, store):
    args = example.parse_args(
        [
            *common(tiny_config, store, tmp_path),
            *("--batch-size", "3", "--max-epochs", "1", "--seed", "5", "--mixed-precision", "bf16"),
            *("--gradient-checkpointing", "--gradient-compression", "powersgd", "--cpu", "--no-tensorboard"),
            *("--record-data-order", "--val-fraction", "0.25", "--wandb-project", "td-test"),
        ]
    )
    trainer = example.build_trainer(args)
    tc = trainer.config.training_config
    assert (tc.batch_size, tc.max_epochs, tc.seed, tc.mixed_precision) == (3, 1, 5, "bf16")
    assert trainer.sampler.batch_size == 3 and trainer.sampler.seed == 5
    assert trainer.accelerator.mixed_precision == "bf16"
    assert trainer.model.denoiser.gradient_checkpointing and trainer.config.model_config.gradient_checkpointing
    assert trainer.gradient_compression == "powersgd"
    assert trainer.accelerator.device.type == "cpu"
    assert trainer.tensorboard is False and trainer.record_data_order and trainer.wandb_project == "td-test"
    assert trainer.handle_preemption and trainer.progress_bar is False
    assert (len(trainer.train_dataset), len(trainer.val_dataset)) == (12, 4)  # 16 usable, 25% held out


def test_bare_flags_take_the_user_guide_defaults(tiny_config):
    args = example.parse_args(["--config", str(tiny_config), "--mixed-precision", "--gradient-compression"])
    assert (args.mixed_precision, args.gradient_compression) == ("bf16", "fp16")
    args = example.parse_args(["--config", str(tiny_config)])
    assert (args.mixed_precision, args.gradient_compression, args.gradient_checkpointing) == (None, "none", False)
    assert example.resolve_config(args) == ExperimentConfig.from_dict(json.loads(tiny_config.read_text()))


def test_store_records_keep_their_labels_and_big_ones_are_skipped(tiny_config, store, caplog):
    args = example.parse_args(["--config", str(tiny_config), "--data", str(store), "--val-fraction", "0"])
    train, val = example.load_items(args, example.resolve_config(args))
    assert (len(train), len(val)) == (16, 0)  # the 30-atom crystal exceeds max_atoms = 20
    assert "1 of 17 crystals skipped" in caplog.text
    assert {item["topo_class"] for item in train} == {0, 3} and {item["band_gap"] for item in train} == {0.0, 1.0, 2.0}


def test_synthetic_data_by_default(tiny_config):
    args = example.parse_args(["--config", str(tiny_config), "--num-synthetic", "6", "--val-fraction", "0.2"])
    train, val = example.load_items(args, example.resolve_config(args))
    assert (len(train), len(val)) == (5, 1)
    assert all(1 <= len(item["atomic_numbers"]) <= 20 for item in train + val)


def test_train_then_resume_latest(tmp_path, tiny_config, store, capsys):
    argv = [*common(tiny_config, store, tmp_path), "--record-data-order", "--val-fraction", "0.25"]
    assert example.main([*argv, "--max-epochs", "1"]) == 0
    assert "finished: 1 epochs, 3 steps" in capsys.readouterr().out
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["checkpoint_epoch_0001.pt"]
    assert (tmp_path / "best_model.pt").is_file() and (tmp_path / "final_model.pt").is_file()
    assert (tmp_path / "data_order" / "rank_0.jsonl").is_file()
    assert example.main([*argv, "--resume-from", "latest"]) == 0  # max_epochs 2 in the file
    assert "finished: 2 epochs, 6 steps" in capsys.readouterr().out
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [r["step"] for r in rows if r["kind"] == "train"] == [1, 2, 3, 4, 5, 6]
    assert [r["phase"] for r in rows if r["kind"] == "epoch"] == ["structure_learning", "physics_integration"]
    assert example.main([*argv, "--resume-from", str(tmp_path / "missing.pt")]) == 2
    assert "checkpoint file must exist" in capsys.readouterr().err


def test_distributed_without_a_launcher_starts_the_processes_itself(tmp_path, tiny_config, store, monkeypatch, capsys):
    for name in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    started = []
    monkeypatch.setattr(subprocess, "call", lambda command: started.append(command) or 0)
    argv = [*common(tiny_config, store, tmp_path), "--distributed"]
    assert example.main(argv) == 0
    assert "starting 2 CPU processes over gloo with accelerate launch" in capsys.readouterr().out
    (command,) = started
    assert command[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert command[command.index("--num_processes") + 1] == "2" and "--multi_gpu" in command
    script = command.index(str(EXAMPLE))
    assert command[script + 1 :] == [*argv, "--cpu"]  # the children run the same command on CPU
    assert not (tmp_path / "checkpoints").exists()  # this process trained nothing itself
    started.clear()
    assert example.main([*argv, "--num-processes", "3"]) == 0
    assert started[0][started[0].index("--num_processes") + 1] == "3"
    assert example.main([*argv, "--num-processes", "0"]) == 2
    assert "--num-processes must be >= 1, got 0" in capsys.readouterr().err


def test_resume_latest_skips_a_truncated_newest_checkpoint_as_typed(tmp_path, tiny_config, store):
    argv = [sys.executable, str(EXAMPLE), *common(tiny_config, store, tmp_path / "out")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    first = subprocess.run([*argv, "--max-epochs", "2"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-3000:]
    newest = tmp_path / "out" / "checkpoints" / "checkpoint_epoch_0002.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # a crash or a full disk
    (tmp_path / "out" / "checkpoints" / ".checkpoint_epoch_0003.pt.abcd.tmp").write_bytes(b"PK")  # killed save
    again = subprocess.run(
        [*argv, "--max-epochs", "3", "--resume-from", "latest", "-v"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    skipped = [line for line in again.stderr.splitlines() if "skipped checkpoint" in line]
    assert len(skipped) == 1 and "checkpoint_epoch_0002.pt' is truncated or corrupt" in skipped[0]
    assert "resumed " in again.stderr and "checkpoint_epoch_0001.pt: epoch 1" in again.stderr
    assert "finished: 3 epochs" in again.stdout
    assert not list((tmp_path / "out" / "checkpoints").glob(".*.tmp"))
    assert load_trainer_checkpoint(newest)["epoch"] == 2  # rewritten whole by the resumed run
    named = subprocess.run(
        [*argv, "--resume-from", str(newest.with_name("bad.pt"))], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert named.returncode == 2 and "checkpoint file must exist" in named.stderr


# ---------------------------------------------------------------------------------------------- slow
@pytest.mark.slow
def test_two_cpu_processes_under_accelerate_launch(tmp_path, tiny_config):
    out = tmp_path / "run"
    launcher = Path(sys.executable).with_name("accelerate")
    command = [
        str(launcher),
        *("launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"),
        *("--mixed_precision", "no", "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1"),
        str(EXAMPLE),
        *("--config", str(tiny_config), "--num-synthetic", "32", "--val-fraction", "0", "--output-dir", str(out)),
        *("--distributed", "--cpu", "--no-progress", "--record-data-order", "--max-epochs", "2"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "finished: 2 epochs, 8 steps" in done.stdout  # 32 crystals / (2 processes x 4) = 4 steps an epoch
    checkpoints = list_checkpoints(out / "checkpoints")
    assert [p.name for p in checkpoints] == ["checkpoint_epoch_0001.pt", "checkpoint_epoch_0002.pt"]
    payload = load_trainer_checkpoint(checkpoints[-1])
    assert payload["data_order"]["num_processes"] == 2 and len(payload["processes"]) == 2
    noise = [p["rng"]["noise"] for p in payload["processes"]]
    assert not torch.equal(noise[0], noise[1])  # each process draws its own noise
    seen = {}
    for rank in (0, 1):
        for line in (out / "data_order" / f"rank_{rank}.jsonl").read_text().splitlines():
            row = json.loads(line)
            seen.setdefault((row["epoch"], rank), []).extend(row["indices"])
    for epoch in (1, 2):
        a, b = seen[(epoch, 0)], seen[(epoch, 1)]
        assert len(a) == len(b) == 16 and set(a).isdisjoint(b) and sorted(a + b) == list(range(32))
    assert seen[(1, 0)] != seen[(2, 0)]  # a new permutation each epoch


@pytest.mark.slow
def test_distributed_as_typed_starts_two_cpu_processes(tmp_path, tiny_config):
    """``training_example.py --config ... --distributed`` with no launcher and no GPU: 2 gloo processes, both exit 0."""
    out = tmp_path / "run"
    command = [
        sys.executable,
        str(EXAMPLE),
        *("--config", str(tiny_config), "--distributed"),
        *(
            "--num-synthetic",
            "32",
            "--val-fraction",
            "0",
            "--output-dir",
            str(out),
            "--no-progress",
            "--max-epochs",
            "1",
        ),
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update({"CUDA_VISIBLE_DEVICES": "", "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1"})
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "starting 2 CPU processes over gloo" in done.stdout
    assert (
        done.stdout.count("finished: 1 epochs, 4 steps") == 1
    )  # 32 crystals / (2 processes x 4); main process reports
    payload = load_trainer_checkpoint(out / "checkpoints" / "checkpoint_epoch_0001.pt")
    assert payload["data_order"]["num_processes"] == 2 and len(payload["processes"]) == 2

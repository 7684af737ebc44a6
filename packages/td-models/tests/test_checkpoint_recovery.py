"""Crash safety of checkpoints: a damaged newest file, orphan temporaries, fsync order, umask modes."""

from __future__ import annotations

import logging
import os
import shutil
import stat

import numpy as np
import pytest
import torch

from td_models.batch import crystal_item
from td_models.config import ExperimentConfig, ModelConfig, TrainingConfig, load_config, save_config
from td_models.exceptions import CheckpointError, CorruptCheckpointError
from td_models.model import atomic_torch_save, safe_torch_load
from td_models.training import Trainer, list_checkpoints, load_latest_checkpoint, remove_orphan_checkpoint_files


def crystals(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        crystal_item(rng.uniform(3.0, 5.0) * np.eye(3), rng.uniform(0, 1, (2, 3)), rng.integers(1, 20, 2))
        for _ in range(n)
    ]


DATA = crystals(8, 0)


def config(max_epochs: int) -> ExperimentConfig:
    return ExperimentConfig(
        model_config=ModelConfig(hidden_dim=16, num_layers=1, num_heads=2, num_steps=20, max_atoms=4),
        training_config=TrainingConfig(
            batch_size=4,
            max_epochs=max_epochs,
            warmup_epochs=0,
            checkpoint_every=1,
            keep_checkpoints=0,
            ema_decay=0.0,
            phases=[{"name": "only", "start_epoch": 1, "learning_rate": 1e-3}],
        ),
    )


def trainer(out, max_epochs: int) -> Trainer:
    return Trainer(config(max_epochs), DATA, output_dir=out, progress_bar=False, tensorboard=False)


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory):
    """An output folder with checkpoint_epoch_0001.pt and checkpoint_epoch_0002.pt."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("run")
    trainer(out, 2).fit()
    assert [p.name for p in list_checkpoints(out / "checkpoints")] == [
        "checkpoint_epoch_0001.pt",
        "checkpoint_epoch_0002.pt",
    ]
    return out


def damage(path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "zero-byte":
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(np.random.default_rng(1).bytes(len(data)))
    else:  # a flipped byte inside a stored tensor: the zip is complete, a member's checksum is not
        middle = bytearray(data)
        middle[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(middle))


@pytest.mark.parametrize("how", ["truncated", "zero-byte", "garbage"])
def test_latest_skips_a_damaged_newest_checkpoint_and_resumes_from_the_previous(tmp_path, two_epochs, how, caplog):
    out = tmp_path / "run"
    shutil.copytree(two_epochs, out)
    newest = out / "checkpoints" / "checkpoint_epoch_0002.pt"
    damage(newest, how)
    with caplog.at_level(logging.WARNING, logger="td_models.training"):
        result = trainer(out, 3).fit(resume_from="latest")
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped checkpoint")]
    assert len(skipped) == 1 and "checkpoint_epoch_0002.pt" in skipped[0]
    assert "truncated or corrupt" in skipped[0] and "trusted=True" not in skipped[0]
    assert any("checkpoint_epoch_0001.pt, the newest checkpoint that loads" in r.getMessage() for r in caplog.records)
    # resumed after epoch 1: epochs 2 and 3 were trained again, and epoch 2's file was rewritten whole
    assert result.epochs_completed == 3 and result.global_step == 6
    assert safe_torch_load(newest)["epoch"] == 2


def test_a_named_corrupt_checkpoint_says_so_without_the_trusted_hint(two_epochs, tmp_path):
    good = two_epochs / "checkpoints" / "checkpoint_epoch_0001.pt"
    for how in ("truncated", "zero-byte", "garbage", "flipped"):
        bad = tmp_path / f"{how}.pt"
        shutil.copy(good, bad)
        damage(bad, how)
        with pytest.raises(CorruptCheckpointError, match="is truncated or corrupt") as info:
            trainer(tmp_path / how, 3).resume(bad)
        assert "trusted=True" not in str(info.value) and str(bad) in str(info.value)
    # a complete file that needs pickle keeps the trusted=True hint (and is not called corrupt)
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": "td-models/trainer", "object": ModelConfig()}, pickled)
    with pytest.raises(CheckpointError, match="trusted=True") as info:
        safe_torch_load(pickled)
    assert not isinstance(info.value, CorruptCheckpointError)


def test_latest_refuses_when_no_checkpoint_loads_and_starts_afresh_when_there_is_none(two_epochs, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(two_epochs, out)
    for path in list_checkpoints(out / "checkpoints"):
        damage(path, "truncated")
    with pytest.raises(CheckpointError, match="none of the 2 checkpoints") as info:
        load_latest_checkpoint(out)
    assert "checkpoint_epoch_0001.pt" in str(info.value) and "checkpoint_epoch_0002.pt" in str(info.value)
    assert load_latest_checkpoint(tmp_path / "empty") is None


def test_orphan_temporaries_are_removed_at_the_next_save_and_only_in_the_checkpoint_folder(tmp_path, caplog):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    orphan = folder / ".checkpoint_epoch_0007.pt.k3j2.tmp"
    orphan.write_bytes(b"PK\x03\x04 half a zip")
    elsewhere = tmp_path / ".checkpoint_epoch_0007.pt.k3j2.tmp"  # not in the checkpoint folder: left alone
    elsewhere.write_bytes(b"x")
    unrelated = folder / "notes.tmp"
    unrelated.write_bytes(b"x")
    with caplog.at_level(logging.WARNING, logger="td_models"):
        trainer(tmp_path, 1).fit()
    assert not orphan.exists() and elsewhere.exists() and unrelated.exists()
    assert any(str(orphan) in r.getMessage() and "did not finish" in r.getMessage() for r in caplog.records)
    assert remove_orphan_checkpoint_files(folder) == []


def test_atomic_save_fsyncs_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        kind = "folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        events.append(f"fsync {kind}")
        return real_fsync(fd)

    def replace(src, dst):
        events.append("rename")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic_torch_save({"x": torch.ones(3)}, tmp_path / "a.pt")
    assert events == ["fsync file", "rename", "fsync folder"]
    assert safe_torch_load(tmp_path / "a.pt")["x"].tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_written_files_follow_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        atomic_torch_save({"x": torch.ones(1)}, tmp_path / "a.pt")
        save_config(config(1), tmp_path / "c.json")
    finally:
        os.umask(previous)
    expected = 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "a.pt").stat().st_mode) == expected
    assert stat.S_IMODE((tmp_path / "c.json").stat().st_mode) == expected
    assert load_config(tmp_path / "c.json") == config(1)

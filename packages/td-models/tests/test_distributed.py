"""Two CPU processes over gloo (torch multiprocessing): fit ends the process group and both ranks exit 0."""

from __future__ import annotations

import os
import socket
import sys

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world_size),
            "LOCAL_WORLD_SIZE": str(world_size),
            "ACCELERATE_USE_CPU": "true",
            "OMP_NUM_THREADS": "1",
        }
    )
    torch.set_num_threads(1)
    from td_models.batch import crystal_item
    from td_models.config import ExperimentConfig, ModelConfig, TrainingConfig
    from td_models.training import Trainer

    rng = np.random.default_rng(0)
    data = [
        crystal_item(rng.uniform(3.0, 5.0) * np.eye(3), rng.uniform(0, 1, (2, 3)), rng.integers(1, 20, 2))
        for _ in range(8)
    ]
    config = ExperimentConfig(
        model_config=ModelConfig(hidden_dim=16, num_layers=1, num_heads=2, num_steps=20, max_atoms=4),
        training_config=TrainingConfig(
            batch_size=2,
            max_epochs=2,
            warmup_epochs=0,
            checkpoint_every=1,
            ema_decay=0.0,
            phases=[{"name": "only", "start_epoch": 1, "learning_rate": 1e-3}],
        ),
    )
    trainer = Trainer(config, data, output_dir=out, cpu=True, progress_bar=False, tensorboard=False)
    if trainer.world_size != world_size:
        sys.exit(3)  # not the 2-process run this test is about
    result = trainer.fit()
    if result.epochs_completed != 2:
        sys.exit(4)
    if torch.distributed.is_initialized():
        sys.exit(5)  # fit must have destroyed the process group
    # a plain return: the interpreter exits 0 only if nothing aborts at shutdown


@pytest.mark.slow
def test_both_ranks_exit_0_after_fit_and_the_process_group_is_gone(tmp_path):
    context = mp.start_processes(
        _rank, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=False, start_method="spawn"
    )
    while not context.join(timeout=300):
        pass
    assert [p.exitcode for p in context.processes] == [0, 0]
    assert (tmp_path / "checkpoints" / "checkpoint_epoch_0002.pt").is_file()

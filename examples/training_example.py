#!/usr/bin/env python
"""Train the topological diffusion model: the commands of the user guide.

    python examples/training_example.py --create-config                  # write training_config.json (cpu-demo), exit
    python examples/training_example.py --config training_config.json    # train (one process)
    python examples/training_example.py --config training_config.json --max-epochs 3
    python examples/training_example.py --config training_config.json --resume-from latest
    python examples/training_example.py --config training_config.json --distributed   # one process per GPU
                                                                   # (2 CPU processes over gloo without GPUs)

Data: a td-data HDF5 store (``--data STORE.h5``) or, by default, a small synthetic set made on the
fly (``td_data.SyntheticDatasetGenerator``), so the command works on a fresh machine. Outputs go to
``--output-dir``: ``config.json``, ``metrics.csv``, ``tensorboard/``, ``checkpoints/``,
``best_model.pt`` and ``final_model.pt`` (load them with ``TopologicalDiffusionModel.load``).

``--resume-from latest`` takes the newest checkpoint that loads: a truncated or corrupt newer file (a
crash, a full disk) is skipped with a warning naming it, so a requeued job never fails on it.

Exit status: 0 when training finished, 75 when it was preempted (SIGUSR1/SIGTERM; a checkpoint was
written: rerun with ``--resume-from latest``), 1 when it diverged, 2 on a usage error. When
``--distributed`` started the processes itself, the status is the launcher's: 0 when every process
finished, non-zero otherwise (a preempted run resumes with ``--resume-from latest`` all the same).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from td_models import ExperimentConfig, load_config, save_config
from td_models.batch import item_from_record
from td_models.exceptions import BatchError, TDModelsError, TrainingDivergedError
from td_models.training import GRADIENT_COMPRESSION, PREEMPTED_EXIT_CODE, Trainer, TrainingResult

log = logging.getLogger("training_example")

LAUNCH_LINES = """\
--distributed without a launcher starts the processes itself with Accelerate's launcher: one per visible GPU,
or --num-processes (default 2) CPU processes over gloo on a machine without GPUs (or with --cpu).
To choose the launcher yourself, start one process per GPU (or CPU slot) and pass --distributed:
  accelerate launch --num_processes N examples/training_example.py --config training_config.json --distributed
  torchrun --nproc_per_node N examples/training_example.py --config training_config.json --distributed
on CPU (gloo), add --cpu to the script and start N processes with either of:
  accelerate launch --multi_gpu --num_processes N examples/training_example.py --config training_config.json \\
      --distributed --cpu
  torchrun --nproc_per_node N examples/training_example.py --config training_config.json --distributed --cpu
(accelerate 1.x's own `accelerate launch --cpu --num_processes N` starts one process unless an MPI hostfile
is given; the script then sees no launcher and --distributed starts the processes itself.)
Several nodes: accelerate launch --num_machines M --machine_rank R --main_process_ip HOST
--main_process_port PORT --num_processes N_TOTAL ..., or torchrun --nnodes M --node_rank R
--master_addr HOST --master_port PORT --nproc_per_node N ...
--batch-size is per process: the global batch is N x batch size x gradient_accumulation_steps.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=LAUNCH_LINES, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--create-config",
        nargs="?",
        const="training_config.json",
        metavar="PATH",
        help="write the configuration of --preset (model, physics, training blocks) to PATH "
        "(default training_config.json) and exit",
    )
    parser.add_argument(
        "--preset",
        default="cpu-demo",
        choices=ExperimentConfig.preset_names(),
        help="preset for --create-config, or to train with when no --config is given (default cpu-demo)",
    )
    parser.add_argument("--config", metavar="FILE", help="training_config.json (or .yaml) to train with")
    parser.add_argument("--output-dir", default="outputs/training", help="checkpoints, logs and models go here")
    parser.add_argument("--data", metavar="STORE.h5", help="a td-data HDF5 store (default: synthetic crystals)")
    parser.add_argument(
        "--num-synthetic", type=int, default=512, metavar="N", help="synthetic crystals without --data (512)"
    )
    parser.add_argument("--val-fraction", type=float, default=0.1, help="share of the data held out (0.1)")
    parser.add_argument("--max-epochs", type=int, help="override training_config.max_epochs (later phases may not run)")
    parser.add_argument("--batch-size", type=int, help="override training_config.batch_size (per process)")
    parser.add_argument("--seed", type=int, help="override training_config.seed (data order, noise, split)")
    parser.add_argument(
        "--mixed-precision",
        nargs="?",
        const="bf16",
        choices=("no", "bf16", "fp16"),
        help="mixed precision (bare flag: bf16; fp16 needs a GPU)",
    )
    parser.add_argument(
        "--gradient-checkpointing", action="store_true", help="recompute activations in backward (less memory)"
    )
    parser.add_argument(
        "--gradient-compression",
        nargs="?",
        const="fp16",
        choices=GRADIENT_COMPRESSION,
        default="none",
        help="DDP gradient compression (bare flag: fp16); ignored with one process",
    )
    parser.add_argument(
        "--resume-from", metavar="CHECKPOINT", help="a checkpoint file, or 'latest' in --output-dir (afresh if none)"
    )
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel training: under a launcher, join its processes; without one, start them (see below)",
    )
    parser.add_argument(
        "--num-processes",
        type=int,
        metavar="N",
        help="with --distributed and no launcher: processes to start (default: one per visible GPU, 2 on CPU)",
    )
    parser.add_argument("--cpu", action="store_true", help="train on CPU even when a GPU is visible")
    parser.add_argument(
        "--threads", type=int, metavar="N", help="torch threads per process (on a busy machine, 1 is often fastest)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-tensorboard", action="store_true", help="CSV logs only")
    parser.add_argument("--wandb-project", help="log to this Weights & Biases project (when wandb is installed)")
    parser.add_argument(
        "--record-data-order", action="store_true", help="write each process's batch indices to data_order/"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log the library's progress")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def launched_by_launcher() -> bool:
    """True when torchrun / accelerate launch started this process (they set WORLD_SIZE and RANK)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_command(args: argparse.Namespace, argv: list[str]) -> tuple[list[str], int, bool]:
    """``accelerate launch`` command that reruns this script in N processes: ``(command, N, on_cpu)``.

    N is ``--num-processes``, else one per visible CUDA device, else 2 CPU processes (gloo).
    """
    import torch

    gpus = 0 if args.cpu or not torch.cuda.is_available() else torch.cuda.device_count()
    on_cpu = gpus == 0
    n = args.num_processes if args.num_processes is not None else (2 if on_cpu else gpus)
    child = list(argv)
    if on_cpu and "--cpu" not in child:
        child.append("--cpu")
    threads = max(1, (os.cpu_count() or 1) // n) if on_cpu else 1
    command = [
        sys.executable,
        *("-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(n), "--num_machines", "1"),
        *("--main_process_port", str(_free_port()), "--dynamo_backend", "no"),
        *("--num_cpu_threads_per_process", str(threads)),
        *(("--mixed_precision", "no") if on_cpu else ()),
        str(Path(__file__).resolve()),
        *child,
    ]
    return command, n, on_cpu


def launch(args: argparse.Namespace, argv: list[str]) -> int:
    """Start the processes of ``--distributed`` with Accelerate's launcher and wait for them."""
    import subprocess

    if args.num_processes is not None and args.num_processes < 1:
        print(f"error: --num-processes must be >= 1, got {args.num_processes}", file=sys.stderr)
        return 2
    command, n, on_cpu = launch_command(args, argv)
    where = "CPU processes over gloo" if on_cpu else "GPU processes (one per device)"
    print(f"--distributed: no launcher started this script; starting {n} {where} with accelerate launch", flush=True)
    log.info("launch: %s", " ".join(command))
    return subprocess.call(command)


def resolve_config(args: argparse.Namespace) -> ExperimentConfig:
    """The configuration file (or preset) with the command-line overrides applied."""
    config = load_config(args.config) if args.config else ExperimentConfig.preset(args.preset)
    training: dict[str, Any] = {}
    if args.max_epochs is not None:
        training["max_epochs"] = args.max_epochs
    if args.batch_size is not None:
        training["batch_size"] = args.batch_size
    if args.seed is not None:
        training["seed"] = args.seed
    if args.mixed_precision is not None:
        training["mixed_precision"] = args.mixed_precision
    model = {"gradient_checkpointing": True} if args.gradient_checkpointing else {}
    return dataclasses.replace(
        config,
        model_config=config.model_config.replace(**model),
        training_config=config.training_config.replace(**training),
    )


def record_to_item(record: Any, num_species: int) -> dict[str, Any]:
    """A td-data ``CrystalRecord`` as a model item (see :func:`td_models.batch.item_from_record`)."""
    return item_from_record(record, num_species)


def load_items(args: argparse.Namespace, config: ExperimentConfig) -> tuple[list[dict], list[dict]]:
    """Training and validation crystals from ``--data`` or the synthetic generator, split by the seed."""
    mc = config.model_config
    if args.data:
        from td_data import CrystalStore

        with CrystalStore.open(args.data) as store:
            records = store.read_all()
        source = args.data
    else:
        from td_data import SyntheticDatasetGenerator

        generator = SyntheticDatasetGenerator(seed=config.training_config.seed, max_atoms=min(20, mc.max_atoms))
        records = generator.generate_dataset(args.num_synthetic)
        source = f"{args.num_synthetic} synthetic crystals"
    items, skipped = [], 0
    for record in records:
        if record.num_atoms > mc.max_atoms:
            skipped += 1
            continue
        try:
            items.append(record_to_item(record, mc.num_species))
        except BatchError:
            skipped += 1
    if skipped:
        log.warning("%d of %d crystals skipped (more than %d atoms or species beyond %d)", skipped, len(records),
                    mc.max_atoms, mc.num_species)  # fmt: skip
    if len(items) < 2:
        raise BatchError(f"training needs at least 2 usable crystals from {source}, got {len(items)}")
    order = np.random.default_rng(config.training_config.seed).permutation(len(items))
    n_val = min(len(items) - 1, int(round(args.val_fraction * len(items))))
    val = [items[i] for i in order[:n_val]]
    train = [items[i] for i in order[n_val:]]
    log.info("data: %s -> %d training, %d validation crystals", source, len(train), len(val))
    return train, val


def build_trainer(args: argparse.Namespace) -> Trainer:
    """Configuration, data and the Trainer, as ``main`` uses them (tests call this directly)."""
    config = resolve_config(args)
    train, val = load_items(args, config)
    return Trainer(
        config,
        train,
        val or None,
        output_dir=args.output_dir,
        gradient_compression=args.gradient_compression,
        cpu=args.cpu,
        handle_preemption=True,
        progress_bar=not args.no_progress,
        tensorboard=not args.no_tensorboard,
        wandb_project=args.wandb_project,
        record_data_order=args.record_data_order,
    )


def report(result: TrainingResult) -> None:
    losses = ", ".join(f"{k} {v:.4f}" for k, v in result.last_losses.items() if k in ("total", "diffusion", "val"))
    state = "preempted" if result.preempted else "finished"
    print(f"{state}: {result.epochs_completed} epochs, {result.global_step} steps; last {losses}")
    if result.nonfinite_steps:
        print(f"skipped {result.nonfinite_steps} steps with a non-finite loss")
    for label, path in (
        ("metrics", result.metrics_csv),
        ("checkpoint", result.last_checkpoint),
        ("best model", result.best_model),
        ("final model", result.final_model),
    ):
        if path is not None:
            print(f"{label:>11}: {path}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    main_process = os.environ.get("RANK", "0") == "0"  # other processes only log warnings
    logging.basicConfig(
        level=logging.INFO if args.verbose and main_process else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.create_config:
        path = save_config(ExperimentConfig.preset(args.preset), Path(args.create_config))
        print(f"wrote {path} (preset {args.preset}); train with: python {sys.argv[0]} --config {path}")
        return 0
    if args.distributed and not launched_by_launcher():
        return launch(args, argv)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    try:
        trainer = build_trainer(args)
        result = trainer.fit(resume_from=args.resume_from)
    except TrainingDivergedError as exc:
        print(f"training diverged: {exc}", file=sys.stderr)
        return 1
    except TDModelsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if trainer.is_main_process:
        report(result)
    return PREEMPTED_EXIT_CODE if result.preempted else 0


if __name__ == "__main__":
    sys.exit(main())

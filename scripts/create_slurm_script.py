#!/usr/bin/env python
"""Write the sbatch script for multi-node training (td_hpc.create_distributed_training_script).

python scripts/create_slurm_script.py --nodes 4 --gpus-per-node 4          # writes training_job.sh and, when
                                                                             # missing, training_config.json
python scripts/create_slurm_script.py --nodes 4 --gpus-per-node 4 --config training_config.json   # prints it
python scripts/create_slurm_script.py --preset production --config training_config.json --output submit.sh

Without --config and --output (the user guide's command) it writes training_job.sh in the current folder,
a training_config.json beside it when there is none (the user guide's configuration,
td_models.ExperimentConfig() written by td_models.save_config; an existing one is used as it is), and the
log folder; then `sbatch training_job.sh` submits it from this folder. With --config (and no --output) it
prints the script; with --output it writes the script there (and a default config beside it when --config
is not given).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from td_hpc import PRESETS, create_distributed_training_script, preset_resources
from td_hpc.files import write_text_atomic

DEFAULT_SCRIPT = "training_job.sh"
DEFAULT_CONFIG = "training_config.json"
GUIDE_TRAINING_SCRIPT = "examples/training_example.py"
REPO_TRAINING_SCRIPT = Path(__file__).resolve().parents[1] / GUIDE_TRAINING_SCRIPT


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[1], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--preset", choices=sorted(PRESETS), help="resources from the user guide (flags below override)")
    p.add_argument("--nodes", type=int, help="number of nodes (4)")
    p.add_argument("--gpus-per-node", type=int, help="GPUs (training processes) per node (4)")
    p.add_argument(
        "--config",
        help="training configuration passed to the training script (default: training_config.json beside the "
        "written script, created with the user guide's values when missing)",
    )
    p.add_argument(
        "--training-script",
        help=f"default: {GUIDE_TRAINING_SCRIPT} when it exists in the current folder (the clone's root), "
        "else this clone's copy by its absolute path",
    )
    p.add_argument("--job-name", default="td-train")
    p.add_argument("--partition")
    p.add_argument("--account")
    p.add_argument("--time", help="HH:MM:SS or D-HH:MM:SS (72:00:00)")
    p.add_argument("--mem", help="memory per node (256G)")
    p.add_argument("--cpus-per-task", type=int, default=32)
    p.add_argument(
        "--log-dir",
        default="slurm_logs",
        help="folder of the job's .out/.err files, relative to where sbatch runs (created when a file is written)",
    )
    p.add_argument("--checkpoint-dir", help="run folder (default: $SCRATCH/td-runs/JOBNAME-JOBID)")
    p.add_argument("--preempt-signal-seconds", type=int, default=300)
    p.add_argument("--no-requeue", action="store_true")
    p.add_argument("--gpu-type", default="h100")
    p.add_argument("--cpu-only", action="store_true", help="gloo on CPU: no --gres, --cpu to the script")
    p.add_argument(
        "--output",
        help=f"write the script here (default: print it when --config is given, else write {DEFAULT_SCRIPT})",
    )
    p.add_argument("--force", action="store_true", help=f"overwrite an existing {DEFAULT_SCRIPT} (default name only)")
    p.add_argument("extra", nargs="*", help="extra arguments for the training script (after --)")
    return p.parse_args(argv)


def default_training_script() -> str:
    """The guide's relative path when run from the clone's root, else this clone's example by absolute path."""
    if Path(GUIDE_TRAINING_SCRIPT).is_file():
        return GUIDE_TRAINING_SCRIPT
    return str(REPO_TRAINING_SCRIPT)


def write_default_config(path: Path) -> bool:
    """Write the user guide's configuration to ``path`` unless a file is there; True when written."""
    if path.exists():
        return False
    try:
        from td_models import ExperimentConfig, save_config
    except ImportError as err:
        raise SystemExit(
            f"error: td-models is not installed, so no default {path} can be written ({err}); "
            "pass --config FILE or install packages/td-models"
        ) from err
    save_config(ExperimentConfig(), path)
    return True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    res = preset_resources(args.preset or "production")
    # Where the script goes: --output, stdout (the old behaviour when only --config is given), or training_job.sh.
    if args.output:
        output: Path | None = Path(args.output)
    elif args.config:
        output = None
    else:
        output = Path(DEFAULT_SCRIPT)
        if output.exists() and not args.force:
            print(
                f"error: {output} exists in this folder; pass --force to overwrite it, or --output PATH",
                file=sys.stderr,
            )
            return 2
    config = Path(args.config) if args.config else output.parent / DEFAULT_CONFIG
    training_script = args.training_script or default_training_script()
    try:
        text = create_distributed_training_script(
            args.nodes or res.num_nodes,
            args.gpus_per_node or res.gpus_per_node,
            training_script,
            config,
            job_name=args.job_name,
            partition=args.partition,
            account=args.account,
            time=args.time or res.time,
            mem=args.mem or res.mem,
            cpus_per_task=args.cpus_per_task,
            output_dir=args.log_dir,
            checkpoint_dir=args.checkpoint_dir,
            preempt_signal_seconds=args.preempt_signal_seconds,
            requeue=not args.no_requeue,
            extra_args=args.extra,
            gpu_type=args.gpu_type,
            cpu_only=args.cpu_only,
        )
        config_written = False if args.config else write_default_config(config)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if output is None:
        sys.stdout.write(text)
        return 0
    write_text_atomic(output, text)
    Path(args.log_dir).mkdir(parents=True, exist_ok=True)
    nodes = args.nodes or res.num_nodes
    per_node = args.gpus_per_node or res.gpus_per_node
    unit = "CPU process(es)" if args.cpu_only else "GPU(s)"
    print(f"wrote {output}: {nodes} node(s) x {per_node} {unit}, running {training_script} --config {config}")
    if config_written:
        print(f"wrote {config}: the user guide's training configuration (td_models.ExperimentConfig); edit it first")
    elif not args.config:
        print(f"using the existing {config} (not changed)")
    print(f"job logs go to {args.log_dir}/ (relative to the folder sbatch runs in)")
    print(f"submit from this folder with: sbatch {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

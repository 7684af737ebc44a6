#!/usr/bin/env python
"""Write the sbatch script for multi-node training (td_hpc.create_distributed_training_script).

python scripts/create_slurm_script.py --nodes 4 --gpus-per-node 4 --config training_config.json
python scripts/create_slurm_script.py --preset production --config training_config.json --output submit.sh
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from td_hpc import PRESETS, create_distributed_training_script, preset_resources


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--preset", choices=sorted(PRESETS), help="resources from the user guide (flags below override)")
    p.add_argument("--nodes", type=int, help="number of nodes (4)")
    p.add_argument("--gpus-per-node", type=int, help="GPUs (training processes) per node (4)")
    p.add_argument("--config", required=True, help="training configuration passed to the training script")
    p.add_argument("--training-script", default="examples/training_example.py")
    p.add_argument("--job-name", default="td-train")
    p.add_argument("--partition")
    p.add_argument("--account")
    p.add_argument("--time", help="HH:MM:SS or D-HH:MM:SS (72:00:00)")
    p.add_argument("--mem", help="memory per node (256G)")
    p.add_argument("--cpus-per-task", type=int, default=32)
    p.add_argument("--log-dir", default="slurm_logs", help="folder of the job's .out/.err files (must exist)")
    p.add_argument("--checkpoint-dir", help="run folder (default: $SCRATCH/td-runs/JOBNAME-JOBID)")
    p.add_argument("--preempt-signal-seconds", type=int, default=300)
    p.add_argument("--no-requeue", action="store_true")
    p.add_argument("--gpu-type", default="h100")
    p.add_argument("--cpu-only", action="store_true", help="gloo on CPU: no --gres, --cpu to the script")
    p.add_argument("--output", help="write the script here instead of printing it")
    p.add_argument("extra", nargs="*", help="extra arguments for the training script (after --)")
    args = p.parse_args(argv)
    res = preset_resources(args.preset or "production")
    try:
        text = create_distributed_training_script(
            args.nodes or res.num_nodes,
            args.gpus_per_node or res.gpus_per_node,
            args.training_script,
            args.config,
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
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}; submit with: sbatch {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

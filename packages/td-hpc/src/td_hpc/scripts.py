"""sbatch script text for multi-node Accelerate training and for sharded labelling job arrays.

Every value is checked (:mod:`td_hpc.validation`) before it reaches the template; paths that a shell
reads are quoted with :func:`shlex.quote`. The templates ship in ``td_hpc/templates``.

>>> script = create_distributed_training_script(4, 4, "examples/training_example.py", "training_config.json")
>>> [line for line in script.splitlines() if line.startswith(("#SBATCH --nodes", "#SBATCH --gres", "#SBATCH --mem"))]
['#SBATCH --nodes=4', '#SBATCH --gres=gpu:h100:4', '#SBATCH --mem=256G']
>>> "td-launch accelerate" in script
True
>>> create_distributed_training_script.from_preset("research", "train.py", "cfg.json").count("--gres=gpu:h100:8")
1
"""

from __future__ import annotations

import json
import logging
import os
import shlex
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import jinja2

from td_hpc._version import __version__
from td_hpc.presets import preset_resources
from td_hpc.validation import (
    check_arg,
    check_memory,
    check_name,
    check_path,
    check_positive_int,
    check_sbatch_path,
    check_time,
)

__all__ = ["create_distributed_training_script", "create_labelling_array_script", "DEFAULT_CHECKPOINT_DIR"]

logger = logging.getLogger(__name__)

# Used when checkpoint_dir is None: shell text (not quoted), evaluated in the job. $SCRATCH where the
# site sets it, else ~/scratch; the job id survives a requeue, so the requeued run finds its checkpoints.
DEFAULT_CHECKPOINT_DIR = '"${SCRATCH:-$HOME/scratch}/td-runs/${SLURM_JOB_NAME}-${SLURM_JOB_ID}"'


@cache
def _environment() -> jinja2.Environment:
    # Plain-text templates: no HTML autoescape; every value is validated or shlex-quoted before rendering.
    return jinja2.Environment(
        loader=jinja2.PackageLoader("td_hpc", "templates"),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def _q(what: str, path: str | os.PathLike[str]) -> str:
    """The path shell-quoted; a relative path that begins with ``-`` gets ``./`` in front, so that no
    command (``mkdir``, ``find``, ``exec``, the training script's argument parser) reads it as an option."""
    path = check_path(what, path)
    if path.startswith("-"):
        path = "./" + path
    return shlex.quote(path)


def _common(job_name, partition, account, time, mem, cpus_per_task) -> dict:
    return {
        "version": __version__,
        "job_name": check_name("job_name", job_name),
        "partition": None if partition is None else check_name("partition", partition),
        "account": None if account is None else check_name("account", account),
        "time": check_time(time),
        "mem": check_memory(mem),
        "cpus_per_task": check_positive_int("cpus_per_task", cpus_per_task, maximum=4096),
    }


class _TrainingScriptFactory:
    """Callable object so that ``create_distributed_training_script.from_preset`` reads naturally."""

    def __call__(
        self,
        num_nodes: int,
        gpus_per_node: int,
        training_script: str | os.PathLike[str],
        config_file: str | os.PathLike[str],
        *,
        job_name: str = "td-train",
        partition: str | None = None,
        account: str | None = None,
        time: str = "72:00:00",
        mem: str = "256G",
        cpus_per_task: int = 32,
        output_dir: str | os.PathLike[str] = "slurm_logs",
        checkpoint_dir: str | os.PathLike[str] | None = None,
        preempt_signal_seconds: int = 300,
        requeue: bool = True,
        extra_args: Sequence[str] = (),
        gpu_type: str = "h100",
        cpu_only: bool = False,
        main_process_port: int | None = None,
        accelerate: str | os.PathLike[str] = "accelerate",
    ) -> str:
        """The sbatch script for ``num_nodes`` nodes with ``gpus_per_node`` training processes each.

        One SLURM task per node runs ``accelerate launch`` (rendezvous on the first node of the
        allocation, ``--machine_rank $SLURM_NODEID``), which starts one process per GPU running
        ``training_script --config config_file --output-dir RUN_DIR --resume-from latest --distributed``
        plus ``extra_args``. ``RUN_DIR`` is ``checkpoint_dir`` or, when None, a folder on ``$SCRATCH``
        named after the job (:data:`DEFAULT_CHECKPOINT_DIR`).

        Preemption: SLURM sends USR1 to the batch shell ``preempt_signal_seconds`` before the time limit
        (or ``scancel --signal=USR1 --batch JOB``); the script forwards it to the training processes,
        waits for them, and when they wrote a ``checkpoint_*_batch_*.pt`` requeues the job
        (``scontrol requeue``) when ``requeue`` is True. The requeued run resumes from the newest
        checkpoint. ``output_dir`` (logs, ``%x-%j.out``) must exist before the job starts.

        Rendezvous: ``main_process_port`` on the first node of the allocation; None (the default) takes
        ``20000 + SLURM_JOB_ID % 10000`` in the job, so that jobs sharing a node do not meet on one port.
        One node uses torchrun's static rendezvous on that port, several nodes c10d.

        ``cpu_only`` drops the ``--gres`` line and the NCCL settings and passes ``--cpu`` to the training
        script (gloo): ``gpus_per_node`` is then the number of CPU processes per node. ``accelerate`` is
        the launcher command (a path when it is not on the job's ``PATH``).
        """
        num_nodes = check_positive_int("num_nodes", num_nodes, maximum=10_000)
        procs = check_positive_int("gpus_per_node", gpus_per_node, maximum=64)
        context = _common(job_name, partition, account, time, mem, cpus_per_task)
        port = None
        if main_process_port is not None:
            port = check_positive_int("main_process_port", main_process_port, maximum=65535)
        seconds = check_positive_int("preempt_signal_seconds", preempt_signal_seconds, maximum=65535)
        if isinstance(extra_args, str):
            from td_hpc.exceptions import HpcValueError

            raise HpcValueError(f"extra_args must be a sequence of arguments, not one string, got {extra_args!r}")
        args = [shlex.quote(check_arg("extra_args item", a)) for a in extra_args]
        total = num_nodes * procs
        context.update(
            num_nodes=num_nodes,
            procs_per_node=procs,
            gpu_type=check_name("gpu_type", gpu_type),
            cpu_only=bool(cpu_only),
            output_dir=check_sbatch_path("output_dir", output_dir),
            checkpoint_dir=DEFAULT_CHECKPOINT_DIR if checkpoint_dir is None else _q("checkpoint_dir", checkpoint_dir),
            training_script=_q("training_script", training_script),
            config_file=_q("config_file", config_file),
            preempt_signal_seconds=seconds,
            requeue=bool(requeue),
            extra_args=args,
            main_process_port=port,
            accelerate=_q("accelerate", accelerate),
            launcher_flags="--multi_gpu" if total > 1 else "",
            threads_per_process=max(1, context["cpus_per_task"] // procs),
        )
        text = _environment().get_template("training.sbatch.j2").render(**context)
        if not context["launcher_flags"]:
            text = text.replace("LAUNCH_ARGS=(\n    \n", "LAUNCH_ARGS=(\n")
        logger.debug("training script for %d node(s) x %d process(es), job %s", num_nodes, procs, job_name)
        return text

    def from_preset(
        self,
        preset: str,
        training_script: str | os.PathLike[str],
        config_file: str | os.PathLike[str],
        **options,
    ) -> str:
        """The script for a named preset (``development``, ``production``, ``research``; see
        :func:`td_hpc.presets.preset_resources`); ``options`` as for the function itself."""
        res = preset_resources(preset)
        options.setdefault("mem", res.mem)
        options.setdefault("time", res.time)
        return self(res.num_nodes, res.gpus_per_node, training_script, config_file, **options)


create_distributed_training_script = _TrainingScriptFactory()


def create_labelling_array_script(
    store_path: str | os.PathLike[str],
    num_shards: int,
    output_dir: str | os.PathLike[str],
    *,
    job_name: str = "td-label",
    partition: str | None = None,
    account: str | None = None,
    time: str = "04:00:00",
    mem: str = "8G",
    cpus_per_task: int = 4,
    log_dir: str | os.PathLike[str] = "slurm_logs",
    max_concurrent: int | None = None,
    python: str | os.PathLike[str] = "python",
    label_options: Mapping[str, Any] | None = None,
) -> str:
    """A job array of ``num_shards`` tasks; task ``i`` labels records ``i, i + n, i + 2n, ...`` of the
    td-data store at ``store_path`` (``python -m td_data.label_shard``) and writes
    ``output_dir/shard_IIIII.h5``; ``label_options`` (JSON-serialisable) go to
    ``label_records``. Merge them with ``td_data.label_shard.merge_label_shards`` (or its command line).

    >>> "#SBATCH --array=0-2" in create_labelling_array_script("crystals.h5", 3, "shards")
    True
    """
    context = _common(job_name, partition, account, time, mem, cpus_per_task)
    context.update(
        num_shards=check_positive_int("num_shards", num_shards, maximum=100_000),
        max_concurrent=None
        if max_concurrent is None
        else check_positive_int("max_concurrent", max_concurrent, maximum=100_000),
        store_path=_q("store_path", store_path),
        output_dir=_q("output_dir", output_dir),
        log_dir=check_sbatch_path("log_dir", log_dir),
        python=_q("python", python),
        label_options=shlex.quote(json.dumps(dict(label_options or {}), sort_keys=True)),
    )
    return _environment().get_template("labelling.sbatch.j2").render(**context)

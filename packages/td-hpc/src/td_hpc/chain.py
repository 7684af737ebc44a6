"""One round of active learning as a chain of SLURM jobs: generate, a labelling array, train.

:func:`write_round_chain` writes three sbatch scripts into a folder: ``generate.sbatch`` (one task running the
command that samples and relaxes the round's candidates and writes the store to label), ``label_array.sbatch``
(:func:`~td_hpc.scripts.create_labelling_array_script`: task ``i`` labels shard ``i`` of that store with
``python -m td_data.label_shard``) and ``train.sbatch`` (one task running the command that takes the labelled
shards, selects, adds and fine-tunes). :func:`submit_chain` submits them in that order, each with
``--dependency=afterok:PREVIOUS`` (an array counts as ok when every task completed), so a failure anywhere stops
the jobs after it. td-hpc does not know what the commands do: the caller (the Kedro project's
``pipelines.active_learning.slurm``) passes them as argument lists, each argument quoted with ``shlex.quote``.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> chain = write_round_chain(folder, workdir=folder, generate_command=["kedro", "run", "--pipelines=al"],
...     label_store=folder / "to_label.h5", label_dir=folder / "shards", num_shards=3,
...     train_command=["kedro", "run", "--pipelines=al"])
>>> [p.name for p in chain.scripts]
['generate.sbatch', 'label_array.sbatch', 'train.sbatch']
>>> "#SBATCH --array=0-2" in chain.scripts[1].read_text(), chain.scripts[2].read_text().splitlines()[-1]
(True, 'exec kedro run --pipelines=al')
"""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from td_hpc.dft_array import _env_lines
from td_hpc.exceptions import HpcValueError
from td_hpc.files import write_text_atomic
from td_hpc.scripts import _common, _environment, _q, create_labelling_array_script
from td_hpc.slurm import submit
from td_hpc.validation import check_arg, check_path, check_positive_int, check_sbatch_path

__all__ = ["JobChain", "write_round_chain", "submit_chain", "command_script"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobChain:
    """The scripts of a chain, in submission order, and where their logs go (absolute paths)."""

    scripts: tuple[Path, ...]  # submitted in this order, each after the one before it succeeded
    log_dir: Path  # SLURM's .out/.err files


def _argv(what: str, command: Sequence[str]) -> str:
    if isinstance(command, (str, bytes)) or not isinstance(command, Sequence) or not command:
        raise HpcValueError(f"{what} must be a non-empty list of arguments, not one string, got {command!r}")
    return " ".join(shlex.quote(check_arg(f"{what} item", a)) for a in command)


def command_script(
    command: Sequence[str],
    workdir: str | os.PathLike[str],
    log_dir: str | os.PathLike[str],
    *,
    description: str = "A job",
    job_name: str = "td-job",
    partition: str | None = None,
    account: str | None = None,
    time: str = "01:00:00",
    mem: str = "4G",
    cpus_per_task: int = 2,
    extra_env: Mapping[str, str] | None = None,
) -> str:
    """sbatch text of one task that runs ``command`` (a list of arguments, each quoted) in ``workdir``, with
    ``OMP_NUM_THREADS`` set to the task's CPUs and ``extra_env`` exported after it.

    >>> text = command_script(["python", "-m", "pkg", "--out", "a b"], "/work", "/logs", job_name="td-x")
    >>> text.splitlines()[-1], "#SBATCH --output=/logs/%x-%j.out" in text
    ("exec python -m pkg --out 'a b'", True)
    """
    context = _common(job_name, partition, account, time, mem, cpus_per_task)
    context.update(
        description=check_arg("description", description),
        command=_argv("command", command),
        workdir=_q("workdir", workdir),
        log_dir=check_sbatch_path("log_dir", os.fspath(log_dir)),
        extra_env=_env_lines(extra_env),
    )
    return _environment().get_template("command.sbatch.j2").render(**context)


def write_round_chain(
    folder: str | os.PathLike[str],
    *,
    workdir: str | os.PathLike[str],
    generate_command: Sequence[str],
    label_store: str | os.PathLike[str],
    label_dir: str | os.PathLike[str],
    num_shards: int,
    train_command: Sequence[str],
    label_options: Mapping[str, Any] | None = None,
    python: str | os.PathLike[str] = "python",
    job_name: str = "td-al",
    partition: str | None = None,
    account: str | None = None,
    time: str = "01:00:00",
    label_time: str = "01:00:00",
    mem: str = "4G",
    cpus_per_task: int = 2,
    extra_env: Mapping[str, str] | None = None,
    log_dir: str | os.PathLike[str] | None = None,
) -> JobChain:
    """Write ``folder/generate.sbatch``, ``folder/label_array.sbatch`` and ``folder/train.sbatch`` (see the module
    docstring); create ``folder`` and ``log_dir`` (default ``folder/logs``). Paths are made absolute.

    ``generate_command`` must write ``label_store`` (a td-data store); the array labels it in ``num_shards`` shards
    into ``label_dir`` with ``label_options`` (JSON keys of ``td_data.labels.label_records``) in ``python``;
    ``train_command`` reads the shards. ``time`` is each command job's limit, ``label_time`` each array task's;
    ``mem`` and ``cpus_per_task`` apply to every job. Job names are ``JOB_NAME-generate``, ``-label``, ``-train``.
    """
    out = Path(check_path("folder", folder)).resolve()
    logs = out / "logs" if log_dir is None else Path(check_path("log_dir", log_dir)).resolve()
    check_sbatch_path("log_dir", str(logs))
    work = Path(check_path("workdir", workdir)).resolve()
    shards = check_positive_int("num_shards", num_shards, maximum=100_000)
    _argv("generate_command", generate_command)  # checked here, so that the error names the argument
    _argv("train_command", train_command)
    common = {"partition": partition, "account": account, "mem": mem, "cpus_per_task": cpus_per_task,
              "extra_env": extra_env}  # fmt: skip
    texts = {
        "generate.sbatch": command_script(
            generate_command,
            work,
            logs,
            description="Active learning: generate and relax one round's candidates",
            job_name=f"{job_name}-generate",
            time=time,
            **common,
        ),  # fmt: skip
        "label_array.sbatch": create_labelling_array_script(
            Path(check_path("label_store", label_store)).resolve(),
            shards,
            Path(check_path("label_dir", label_dir)).resolve(),
            job_name=f"{job_name}-label",
            partition=partition,
            account=account,
            time=label_time,
            mem=mem,
            cpus_per_task=cpus_per_task,
            log_dir=str(logs),
            python=python,
            label_options=label_options,
        ),  # fmt: skip
        "train.sbatch": command_script(
            train_command,
            work,
            logs,
            description="Active learning: select, add and fine-tune on the labelled shards",
            job_name=f"{job_name}-train",
            time=time,
            **common,
        ),  # fmt: skip
    }
    out.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    scripts = tuple(write_text_atomic(out / name, text) for name, text in texts.items())
    logger.info("active-learning round chain of %d scripts in %s (%d labelling shards)", len(scripts), out, shards)
    return JobChain(scripts, logs)


def submit_chain(
    chain: JobChain, *, sbatch_args: Sequence[str] = (), cwd: str | os.PathLike[str] | None = None
) -> list[str]:
    """Submit ``chain.scripts`` in order, each but the first with ``--dependency=afterok:PREVIOUS_JOB``;
    ``sbatch_args`` go to every one. Returns the job ids, in order."""
    if not isinstance(chain, JobChain):
        raise HpcValueError(f"chain must be the JobChain that write_round_chain returns, got {type(chain).__name__}")
    ids: list[str] = []
    for script in chain.scripts:
        after = [f"--dependency=afterok:{ids[-1]}"] if ids else []
        ids.append(submit(script, sbatch_args=[*sbatch_args, *after], cwd=cwd))
    logger.info("submitted the chain %s", " -> ".join(ids))
    return ids

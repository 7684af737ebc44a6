"""Thin wrappers over the SLURM commands: ``sbatch --parsable``, ``scontrol show job``, ``scancel``.

Arguments are passed as a list (no shell); job ids and signal names are checked first. A missing
command or a non-zero exit raises :class:`~td_hpc.exceptions.SlurmError` with the command and its stderr.

>>> parse_scontrol_line("JobId=7 JobName=td train JobState=RUNNING Reason=None ExitCode=0:0 Restarts=1")["JobName"]
'td train'
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from td_hpc.exceptions import HpcValueError, SlurmError
from td_hpc.validation import check_arg, check_job_id

__all__ = ["JobStatus", "submit", "status", "array_status", "cancel", "parse_scontrol_line", "SIGNALS"]

logger = logging.getLogger(__name__)

SIGNALS = frozenset({"USR1", "USR2", "TERM", "INT", "HUP", "KILL", "CONT", "STOP", "QUIT", "ALRM"})
_KEY = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_:/]*)=")


@dataclass(frozen=True)
class JobStatus:
    """One job (or array task) as ``scontrol show job`` reports it."""

    job_id: str  # "123", or "123_4" for an array task
    state: str  # PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, REQUEUED, ...
    reason: str  # why it is pending ("None" otherwise)
    exit_code: str  # "status:signal"
    restarts: int  # how often it was requeued
    fields: dict[str, str] = field(repr=False, default_factory=dict)  # every key of the scontrol line

    @property
    def finished(self) -> bool:
        return self.state not in {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "SUSPENDED"}


def _run(cmd: list[str], *, input_text: str | None = None, cwd: str | os.PathLike[str] | None = None) -> str:
    logger.debug("running %s", cmd)
    try:
        proc = subprocess.run(cmd, input=input_text, capture_output=True, text=True, cwd=cwd, check=False)
    except FileNotFoundError as err:
        raise SlurmError(f"{cmd[0]} not found on PATH: is SLURM installed here?", command=tuple(cmd)) from err
    if proc.returncode != 0:
        raise SlurmError(
            f"{cmd[0]} exited with status {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}",
            command=tuple(cmd),
            returncode=proc.returncode,
            stderr=proc.stderr,
        )
    return proc.stdout


def submit(
    script: str | os.PathLike[str],
    *,
    sbatch_args: tuple[str, ...] | list[str] = (),
    cwd: str | os.PathLike[str] | None = None,
) -> str:
    """Submit a job with ``sbatch --parsable``; return its job id.

    ``script`` is the script text (a string with a line break, e.g. from
    :func:`~td_hpc.scripts.create_distributed_training_script`, passed on stdin) or the path of a script
    file. ``sbatch_args`` go before it (``["--test-only"]``, ``["--dependency=afterok:12"]``).
    """
    args = [check_arg("sbatch_args item", a) for a in sbatch_args]
    if isinstance(script, str) and "\n" in script:
        if not script.startswith("#!"):
            raise HpcValueError(f"script text must start with '#!', got {script[:40]!r}")
        cmd, text = ["sbatch", "--parsable", *args], script
    else:
        path = Path(script)
        if not path.is_file():
            raise HpcValueError(f"script must be script text or an existing file, got {os.fspath(script)!r}")
        cmd, text = ["sbatch", "--parsable", *args, str(path)], None
    out = _run(cmd, input_text=text, cwd=cwd).strip()
    if "--test-only" in args:
        return out
    job_id = out.split(";", 1)[0]
    check_job_id(job_id)
    logger.info("submitted job %s", job_id)
    return job_id


def parse_scontrol_line(line: str) -> dict[str, str]:
    """``Key=Value`` pairs of one ``scontrol show -o`` line (values may contain blanks)."""
    matches = list(_KEY.finditer(line))
    out: dict[str, str] = {}
    for m, nxt in zip(matches, matches[1:] + [None]):
        end = nxt.start() if nxt is not None else len(line)
        out[m.group(1)] = line[m.end() : end].strip()
    return out


def _to_status(fields: dict[str, str]) -> JobStatus:
    job_id = fields.get("JobId", "")
    if fields.get("ArrayJobId") and fields.get("ArrayTaskId"):
        job_id = f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}"
    try:
        restarts = int(fields.get("Restarts", "0"))
    except ValueError:
        restarts = 0
    return JobStatus(
        job_id=job_id,
        state=fields.get("JobState", "UNKNOWN"),
        reason=fields.get("Reason", ""),
        exit_code=fields.get("ExitCode", ""),
        restarts=restarts,
        fields=fields,
    )


def array_status(job_id: str | int) -> list[JobStatus]:
    """Every record ``scontrol show job -o JOB`` prints (one per array task for an array job)."""
    out = _run(["scontrol", "show", "job", "-o", check_job_id(job_id)])
    return [_to_status(parse_scontrol_line(line)) for line in out.splitlines() if line.strip()]


def status(job_id: str | int) -> JobStatus:
    """The state of job ``job_id`` (``scontrol show job``; a finished job is shown for ``MinJobAge``
    seconds, 300 by default, then SLURM forgets it and this raises :class:`SlurmError`)."""
    records = array_status(job_id)
    if not records:
        raise SlurmError(f"scontrol printed nothing for job {job_id}", command=("scontrol", "show", "job"))
    return records[0]


def cancel(job_id: str | int, *, signal: str | None = None, batch: bool = False) -> None:
    """``scancel JOB``; with ``signal`` (``USR1``, ``TERM``, ...) only send it (to the batch shell
    alone when ``batch``), which is how to ask a td-hpc training job to checkpoint and requeue."""
    cmd = ["scancel"]
    if signal is not None:
        if signal not in SIGNALS:
            raise HpcValueError(f"signal must be one of {sorted(SIGNALS)}, got {signal!r}")
        cmd.append(f"--signal={signal}")
        if batch:
            cmd.append("--batch")
    elif batch:
        raise HpcValueError(f"batch=True needs a signal (scancel --batch only signals), got signal={signal!r}")
    cmd.append(check_job_id(job_id))
    _run(cmd)
    logger.info("scancel %s", " ".join(cmd[1:]))

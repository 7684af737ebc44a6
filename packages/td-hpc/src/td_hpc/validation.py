"""Checks for every value that reaches a job script or a command line.

Names (jobs, partitions, accounts), times and memory sizes must match a strict pattern; paths may hold
anything but a NUL byte or a newline and are shell-quoted with :func:`shlex.quote` where a shell reads
them. Paths that go on an ``#SBATCH`` line (log files) are read by ``sbatch``, not by a shell, so they
must also be free of blanks, quotes and shell metacharacters.

>>> check_time("72:00:00"), check_time("7-00:00:00"), check_memory("256G")
('72:00:00', '7-00:00:00', '256G')
>>> check_name("job name", "rm -rf /")
Traceback (most recent call last):
...
td_hpc.exceptions.HpcValueError: job name must match [A-Za-z0-9._-]+ (letters, digits, '.', '_', '-'), got 'rm -rf /'
"""

from __future__ import annotations

import os
import re

from td_hpc.exceptions import HpcValueError

__all__ = [
    "check_name",
    "check_time",
    "check_memory",
    "check_path",
    "check_sbatch_path",
    "check_positive_int",
    "check_job_id",
    "check_arg",
]

_NAME = re.compile(r"[A-Za-z0-9._-]+")
_TIME = re.compile(r"(?:\d+-)?\d{1,4}:[0-5]\d:[0-5]\d")
_MEMORY = re.compile(r"\d+[KMGT]?")
_SBATCH_PATH = re.compile(r"[A-Za-z0-9._/%+=,:@-]+")
_JOB_ID = re.compile(r"\d+(?:_\d+)?(?:\.\d+)?")


def check_name(what: str, value: object) -> str:
    """A job, partition or account name: ``[A-Za-z0-9._-]+``."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise HpcValueError(f"{what} must match [A-Za-z0-9._-]+ (letters, digits, '.', '_', '-'), got {value!r}")
    return value


def check_time(value: object, what: str = "time") -> str:
    """A wall-clock limit ``HH:MM:SS`` or ``D-HH:MM:SS`` (hours may exceed 23 without days)."""
    if not isinstance(value, str) or not _TIME.fullmatch(value):
        raise HpcValueError(f"{what} must be HH:MM:SS or D-HH:MM:SS, got {value!r}")
    return value


def check_memory(value: object, what: str = "mem") -> str:
    """A memory size per node: digits with an optional unit K, M, G or T (``256G``)."""
    if not isinstance(value, str) or not _MEMORY.fullmatch(value):
        raise HpcValueError(f"{what} must match \\d+[KMGT]? (e.g. 256G), got {value!r}")
    return value


def check_positive_int(what: str, value: object, *, maximum: int | None = None) -> int:
    """A whole number >= 1 (and <= ``maximum``); booleans are refused."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (maximum is not None and value > maximum):
        bound = f"between 1 and {maximum}" if maximum is not None else ">= 1"
        raise HpcValueError(f"{what} must be a whole number {bound}, got {value!r}")
    return value


def check_path(what: str, value: object) -> str:
    """A path for the shell: any text without NUL or newline (it is quoted with ``shlex.quote``)."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value or "\x00" in value or "\n" in value or "\r" in value:
        raise HpcValueError(f"{what} must be a non-empty path without NUL or line breaks, got {value!r}")
    return value


def check_sbatch_path(what: str, value: object) -> str:
    """A path written on an ``#SBATCH`` line: ``[A-Za-z0-9._/%+=,:@-]+`` (no blanks, quotes, ``~`` or ``$``)."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not _SBATCH_PATH.fullmatch(value):
        raise HpcValueError(f"{what} must match [A-Za-z0-9._/%+=,:@-]+ (it goes on an #SBATCH line), got {value!r}")
    return value


def check_arg(what: str, value: object) -> str:
    """An extra command-line argument: any text without NUL or newline (quoted with ``shlex.quote``)."""
    if not isinstance(value, str) or "\x00" in value or "\n" in value or "\r" in value:
        raise HpcValueError(f"{what} must be text without NUL or line breaks, got {value!r}")
    return value


def check_job_id(value: object) -> str:
    """A SLURM job id: ``123``, ``123_4`` (array task) or ``123.0`` (step)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _JOB_ID.fullmatch(value):
        raise HpcValueError(f"job id must match \\d+(_\\d+)?(\\.\\d+)?, got {value!r}")
    return value

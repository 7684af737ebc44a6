"""Errors of td-hpc: bad input is a ``ValueError`` subclass naming the rule and the value; a failed SLURM
command is a :class:`SlurmError` carrying the command, its exit status and its stderr."""

from __future__ import annotations

__all__ = ["HpcValueError", "SlurmError"]


class HpcValueError(ValueError):
    """A value that would reach a job script or a command line broke a rule (the message names both)."""


class SlurmError(RuntimeError):
    """A SLURM command (``sbatch``, ``scontrol``, ``scancel``) failed or is not installed."""

    def __init__(self, message: str, *, command: tuple[str, ...] = (), returncode: int | None = None, stderr: str = ""):
        super().__init__(message)
        self.command = command
        self.returncode = returncode
        self.stderr = stderr

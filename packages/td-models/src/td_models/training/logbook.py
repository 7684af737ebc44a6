"""Training metrics: ``metrics.csv`` always, TensorBoard when installed, Weights & Biases when enabled.

Rows (one per optimiser step, one per epoch, one per validation) share the columns of
:data:`COLUMNS`: ``kind`` (``train`` for a step, ``epoch`` for the mean over an epoch and all
processes, ``val`` for a validation pass with the EMA weights), ``epoch`` (1-based), ``step``
(optimiser steps so far), ``phase``, ``lr``, ``grad_norm`` (before clipping), ``samples_per_s``
(crystals per second over all processes), ``skipped`` (steps skipped for a non-finite loss so
far), then every loss part of :meth:`TopologicalDiffusionModel.training_losses` plus ``diffusion``
(the weighted lattice + coordinate + species loss, comparable across phases). Parts a phase does
not compute are left empty. Floats are written with ``repr`` (exact round trip).

Only the main process writes. On resume, rows after the checkpoint's step are dropped first, so the
file reads as if the run had never stopped.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["LOSS_PARTS", "COLUMNS", "MetricsLogger", "read_metrics"]

log = logging.getLogger(__name__)

#: Loss parts, in column order (``training_losses`` keys plus ``diffusion``).
LOSS_PARTS: tuple[str, ...] = (
    "total",
    "diffusion",
    "lattice",
    "coords",
    "species",
    "properties",
    "band_gap",
    "formation_energy",
    "topo",
    "min_distance",
    "density",
    "charge",
)

COLUMNS: tuple[str, ...] = (
    *("kind", "epoch", "step", "phase", "lr", "grad_norm", "samples_per_s", "skipped"),
    *LOSS_PARTS,
)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a ``metrics.csv`` with numbers parsed (empty cells become None)."""
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            parsed: dict[str, Any] = {}
            for key, value in row.items():
                if key in ("kind", "phase"):
                    parsed[key] = value
                elif value == "":
                    parsed[key] = None
                elif key in ("epoch", "step", "skipped"):
                    parsed[key] = int(value)
                else:
                    parsed[key] = float(value)
            rows.append(parsed)
    return rows


class MetricsLogger:
    """Writes metric rows to CSV, TensorBoard and W&B (each optional except CSV).

    Parameters
    ----------
    output_dir:
        ``metrics.csv`` and ``tensorboard/`` go here.
    enabled:
        False on every process but the main one: nothing is written.
    tensorboard:
        Write TensorBoard events when ``torch.utils.tensorboard`` can be imported (the ``tensorboard``
        package, extra ``td-models[tensorboard]``); a log line says when it cannot.
    wandb_project:
        Log to this Weights & Biases project when ``wandb`` is installed; None (default) never
        imports it.
    resume_step:
        Drop CSV rows with ``step`` above it and purge later TensorBoard events (resumed run).
    run_config:
        The resolved configuration, given to W&B.
    keep_rows:
        Also keep the rows in memory, in :attr:`rows`: those already in ``metrics.csv`` (after the
        resume truncation) and every logged one, as :func:`read_metrics` parses them. ``rows`` is None
        without it and on a disabled logger.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        enabled: bool = True,
        tensorboard: bool = True,
        wandb_project: str | None = None,
        resume_step: int | None = None,
        run_config: Mapping[str, Any] | None = None,
        keep_rows: bool = False,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.csv_path = self.output_dir / "metrics.csv"
        self.enabled = bool(enabled)
        self.rows: list[dict[str, Any]] | None = None
        self._tb = None
        self._wandb = None
        if not self.enabled:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.csv_path.is_file():
            self._truncate(resume_step)
        if not self.csv_path.is_file():
            with open(self.csv_path, "w", newline="", encoding="utf-8") as handle:
                csv.writer(handle).writerow(COLUMNS)
        if keep_rows:
            self.rows = read_metrics(self.csv_path)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.info("tensorboard is not installed (pip install 'td-models[tensorboard]'): CSV only")
            else:
                purge = None if resume_step is None else resume_step + 1
                self._tb = SummaryWriter(log_dir=str(self.output_dir / "tensorboard"), purge_step=purge)
        if wandb_project:
            try:
                import wandb
            except ImportError:
                log.warning("wandb_project=%r given but wandb is not installed: not logging to W&B", wandb_project)
            else:
                self._wandb = wandb.init(
                    project=wandb_project, dir=str(self.output_dir), config=dict(run_config or {}), resume="allow"
                )

    def _truncate(self, step: int) -> None:
        with open(self.csv_path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        if not rows:
            return
        header, body = rows[0], rows[1:]
        at = header.index("step") if "step" in header else None
        kept = [r for r in body if at is None or (r[at] != "" and int(r[at]) <= step)]
        tmp = self.csv_path.with_name(f".{self.csv_path.name}.tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows([header, *kept])
        os.replace(tmp, self.csv_path)
        if len(kept) != len(body):
            log.info("metrics.csv: dropped %d rows after step %d (resumed run)", len(body) - len(kept), step)

    def log(
        self,
        kind: str,
        *,
        epoch: int,
        step: int,
        phase: str,
        lr: float,
        losses: Mapping[str, float],
        samples_per_s: float | None = None,
        grad_norm: float | None = None,
        skipped: int = 0,
    ) -> None:
        """Append one row; ``losses`` maps part names of :data:`LOSS_PARTS` to floats."""
        if not self.enabled:
            return
        row = {
            "kind": kind,
            "epoch": epoch,
            "step": step,
            "phase": phase,
            "lr": float(lr),
            "grad_norm": None if grad_norm is None else float(grad_norm),
            "samples_per_s": None if samples_per_s is None else float(samples_per_s),
            "skipped": int(skipped),
            **{part: (float(losses[part]) if part in losses else None) for part in LOSS_PARTS},
        }
        with open(self.csv_path, "a", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerow([_cell(row[c]) for c in COLUMNS])
        if self.rows is not None:
            self.rows.append(row)
        scalars = {f"{kind}/{part}": value for part, value in losses.items() if math.isfinite(value)}
        if kind != "train":  # per-phase curves of the epoch means and validations
            scalars.update({f"{phase}/{kind}/{part}": value for part, value in losses.items() if math.isfinite(value)})
        scalars[f"{kind}/lr"] = float(lr)
        if samples_per_s is not None:
            scalars[f"{kind}/samples_per_s"] = float(samples_per_s)
        if grad_norm is not None and math.isfinite(grad_norm):
            scalars[f"{kind}/grad_norm"] = float(grad_norm)
        if self._tb is not None:
            for tag, value in scalars.items():
                self._tb.add_scalar(tag, value, global_step=step)
        if self._wandb is not None:
            self._wandb.log({**scalars, "epoch": epoch}, step=step)

    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None

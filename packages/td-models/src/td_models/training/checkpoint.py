"""Training checkpoints: names, rotation, the newest one, RNG states, loading.

A checkpoint is one file ``output_dir/checkpoints/checkpoint_epoch_EEEE.pt`` (written at the end of
epoch ``EEEE``) or ``checkpoint_epoch_EEEE_batch_BBBBBB.pt`` (written mid-epoch on preemption,
``BBBBBB`` micro-batches into epoch ``EEEE + 1``). It is written with
:func:`td_models.model.atomic_torch_save` (a hidden temporary file in the same folder, fsync, then
``os.replace`` and an fsync of the folder), so a crash during the write leaves at most a
``.checkpoint_....tmp`` file, which is never taken for a checkpoint, and the previous checkpoint
untouched. Such orphans are removed at the next save or resume (:func:`remove_orphan_checkpoint_files`).

A checkpoint can still be damaged after the fact (a full disk, a copy cut short, a file system that
lost data). :func:`load_latest_checkpoint` therefore walks back from the newest file to the newest one
that loads, logging each file it skips and why, so a requeued job resumes instead of failing again
and again on the same bad file.

The payload holds only tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)``:

``format``, ``format_version``, ``td_models_version``, ``config`` (the resolved
:meth:`ExperimentConfig.to_dict`), ``model`` (raw weights), ``ema`` (or None), ``optimizer``,
``scheduler``, ``scaler`` (or None), ``epoch`` (epochs completed), ``batches_done`` (micro-batches
into the next epoch), ``global_step`` (optimiser-step slots), ``data_order`` (seed, batch size,
processes, data set size, steps per epoch), ``processes`` (one dict per process: ``rng`` with the
python, numpy, torch, cuda and training-noise generator states, and the partial loss sums of an
epoch stopped midway), ``nonfinite`` (consecutive and total skipped steps) and
``best`` (selection metric and epoch).
"""

from __future__ import annotations

import logging
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from td_models.config import ExperimentConfig, config_from_checkpoint
from td_models.exceptions import CheckpointError
from td_models.model import safe_torch_load
from td_physics.files import remove_orphan_temporaries

__all__ = [
    "TRAINER_CHECKPOINT_FORMAT",
    "checkpoint_name",
    "list_checkpoints",
    "latest_checkpoint",
    "rotate_checkpoints",
    "load_trainer_checkpoint",
    "load_latest_checkpoint",
    "remove_orphan_checkpoint_files",
    "check_resumable",
    "capture_rng_state",
    "restore_rng_state",
]

log = logging.getLogger(__name__)

#: Tag and version written into every training checkpoint.
TRAINER_CHECKPOINT_FORMAT = ("td-models/trainer", 1)

_NAME = re.compile(r"^checkpoint_epoch_(\d+)(?:_batch_(\d+))?\.pt$")

#: Temporary files of ``atomic_torch_save`` writing a checkpoint (``.checkpoint_epoch_0003.pt.x1y2.tmp``).
ORPHAN_PATTERN = ".checkpoint_*.tmp"


def checkpoint_name(epoch: int, batches_done: int = 0) -> str:
    """File name of the checkpoint after ``epoch`` epochs and ``batches_done`` more micro-batches."""
    if batches_done:
        return f"checkpoint_epoch_{epoch:04d}_batch_{batches_done:06d}.pt"
    return f"checkpoint_epoch_{epoch:04d}.pt"


def _position(path: Path) -> tuple[int, int] | None:
    match = _NAME.match(path.name)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2) or 0)


def list_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Checkpoint files in ``directory``, oldest first (by epoch, then micro-batch); temporaries ignored."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(pos, p) for p in directory.iterdir() if p.is_file() and (pos := _position(p)) is not None]
    return [p for _, p in sorted(found)]


def _checkpoint_dir(directory: str | os.PathLike) -> Path:
    directory = Path(directory)
    if (directory / "checkpoints").is_dir():
        directory = directory / "checkpoints"
    return directory


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The newest checkpoint file in ``directory`` (a ``checkpoints/`` folder or the output folder above it).

    By name only: the file may be damaged. :func:`load_latest_checkpoint` finds the newest that loads.
    """
    found = list_checkpoints(_checkpoint_dir(directory))
    return found[-1] if found else None


def load_latest_checkpoint(
    directory: str | os.PathLike, map_location: Any = "cpu"
) -> tuple[Path, dict[str, Any]] | None:
    """``(path, payload)`` of the newest checkpoint in ``directory`` that loads, or None when there is none.

    Files that fail to load (truncated, corrupt, not a training checkpoint, another format version)
    are skipped, each with a warning naming the file and the reason. When files exist but none
    loads, :class:`~td_models.exceptions.CheckpointError` lists them all (starting afresh would
    silently throw the run away).
    """
    found = list_checkpoints(_checkpoint_dir(directory))
    skipped: list[str] = []
    for path in reversed(found):
        try:
            payload = load_trainer_checkpoint(path, map_location=map_location)
        except CheckpointError as exc:
            log.warning("skipped checkpoint %s: %s", path, exc)
            skipped.append(f"{path.name}: {exc}")
            continue
        if skipped:
            log.warning("resuming from %s, the newest checkpoint that loads (%d newer skipped)", path, len(skipped))
        return path, payload
    if skipped:
        raise CheckpointError(
            f"none of the {len(skipped)} checkpoints in {str(_checkpoint_dir(directory))!r} loads: "
            + "; ".join(skipped)
        )
    return None


def remove_orphan_checkpoint_files(directory: str | os.PathLike) -> list[Path]:
    """Delete ``.checkpoint_*.tmp`` files of ``directory`` (writes killed midway); returns them, each logged.

    Only this folder's own temporaries are touched; call it where no checkpoint is being written
    (the trainer does, on the main process, before each save and at resume).
    """
    return remove_orphan_temporaries(directory, ORPHAN_PATTERN)


def rotate_checkpoints(directory: str | os.PathLike, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints (``keep = 0`` keeps all); returns the deleted."""
    if keep <= 0:
        return []
    found = list_checkpoints(directory)
    doomed = found[:-keep]
    for path in doomed:
        path.unlink(missing_ok=True)
        log.info("removed old checkpoint %s", path)
    return doomed


def load_trainer_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a training checkpoint with ``weights_only=True`` and check its checksums and format.

    A truncated or corrupt file raises :class:`~td_models.exceptions.CorruptCheckpointError`.
    """
    payload = safe_torch_load(path, map_location=map_location, trusted=False, verify=True)
    if payload.get("format") != TRAINER_CHECKPOINT_FORMAT[0]:
        raise CheckpointError(
            f"{str(path)!r} is not a td-models training checkpoint (format {payload.get('format')!r}); "
            "model files (best_model.pt, final_model.pt) load with TopologicalDiffusionModel.load"
        )
    if payload.get("format_version") != TRAINER_CHECKPOINT_FORMAT[1]:
        raise CheckpointError(
            f"{str(path)!r} has training-checkpoint version {payload.get('format_version')!r}; "
            f"this td-models reads version {TRAINER_CHECKPOINT_FORMAT[1]}"
        )
    return payload


def check_resumable(
    payload: dict[str, Any], path: str | os.PathLike, config: ExperimentConfig, num_processes: int, num_items: int
) -> None:
    """Raise :class:`CheckpointError` unless a run with ``config`` can continue from ``payload``.

    The model block must match (``gradient_checkpointing`` and ``sampling_steps`` aside: they change no
    weight). A checkpoint
    written mid-epoch also needs the same number of processes, batch size, accumulation and data set
    size, or the rest of its epoch would be another data order. A changed training block is allowed
    (e.g. more ``max_epochs``) and logged.
    """
    saved = config_from_checkpoint(payload["config"])
    ours, theirs = config.model_config.to_dict(), saved.model_config.to_dict()
    same_weights = ("gradient_checkpointing", "sampling_steps")  # neither changes a weight
    differ = sorted(k for k in ours if k not in same_weights and ours[k] != theirs.get(k))
    if differ:
        detail = ", ".join(f"{k}: checkpoint {theirs.get(k)!r}, now {ours[k]!r}" for k in differ)
        raise CheckpointError(f"checkpoint {str(path)!r} was trained with another model_config ({detail})")
    if saved.training_config != config.training_config:
        log.warning("resuming %s with a changed training_config; the new one applies from here", path)
    order = payload["data_order"]
    tc = config.training_config
    now = (num_processes, tc.batch_size, tc.gradient_accumulation_steps, num_items)
    then = (order["num_processes"], order["batch_size"], order["gradient_accumulation_steps"], order["num_items"])
    if payload["batches_done"] and now != then:
        raise CheckpointError(
            f"checkpoint {str(path)!r} stopped mid-epoch; resuming mid-epoch needs the same (processes, batch size, "
            f"accumulation steps, crystals), got {now} against the checkpoint's {then}"
        )


def capture_rng_state(noise: torch.Generator) -> dict[str, Any]:
    """RNG states of this process as tensors and plain lists (``weights_only``-loadable).

    ``python`` (``random``), ``numpy`` (the legacy global generator), ``torch`` (CPU), ``cuda`` (every
    visible device, when CUDA is initialised) and ``noise`` (the generator of the training noise).
    """
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)  # noqa: NPY002 (the global legacy state is what we save)
    return {
        "python": [version, list(internal), gauss],
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
        "noise": noise.get_state(),
    }


def restore_rng_state(state: dict[str, Any], noise: torch.Generator) -> None:
    """Inverse of :func:`capture_rng_state`."""
    try:
        version, internal, gauss = state["python"]
        random.setstate((int(version), tuple(int(x) for x in internal), gauss))
        np_state = state["numpy"]
        np.random.set_state(  # noqa: NPY002
            {
                "bit_generator": np_state["bit_generator"],
                "state": {"key": np_state["key"].numpy().astype(np.uint32), "pos": int(np_state["pos"])},
                "has_gauss": int(np_state["has_gauss"]),
                "gauss": float(np_state["gauss"]),
            }
        )
        torch.set_rng_state(state["torch"].cpu())
        if state["cuda"] and torch.cuda.is_available():
            if len(state["cuda"]) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
            else:
                log.warning(
                    "checkpoint holds CUDA RNG states of %d devices, this process sees %d: CUDA RNG not restored",
                    len(state["cuda"]),
                    torch.cuda.device_count(),
                )
        noise.set_state(state["noise"].cpu())
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"RNG state in the checkpoint is malformed: {exc}") from exc

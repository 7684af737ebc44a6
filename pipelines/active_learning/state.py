"""The resume cache of active learning: the round state and each step's output, written atomically.

``work_dir/state.json`` holds the run's fingerprint and, per round, the steps completed with their summaries;
each step's output (an HDF5 store, a JSON file, a model file) lives in ``work_dir/round_RR/``. A step writes its
output first (temporary sibling, fsync, rename) and records itself in the state second (the same way), so a
process killed at any moment leaves either a completed step or one that reruns from the start; a rerun of the
same run (same fingerprint) skips what the state records and recomputes the rest. Outputs are whole files per
round, never appended to, so a step that runs twice overwrites its own output and cannot duplicate records.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from td_physics.files import write_text_atomic

__all__ = ["STATE_FILE", "STATE_FORMAT", "RoundState"]

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"
STATE_FORMAT = "td.active-learning-state"
T = TypeVar("T")


class RoundState:
    """The state file of one active-learning run in ``work_dir``.

    ``fingerprint``: what makes two runs the same (parameters, the starting model and data, by digest). A state
    written by another run, or any state when ``resume`` is False, is removed with the round folders, and the
    log says why.
    """

    def __init__(self, work_dir: str | Path, fingerprint: Mapping[str, Any], resume: bool = True) -> None:
        self.work_dir = Path(work_dir)
        self.fingerprint = json.loads(json.dumps(dict(fingerprint)))  # as it reads back from JSON
        self.rounds: dict[str, dict[str, Any]] = {}
        path = self.work_dir / STATE_FILE
        reason = None
        if path.is_file():
            if not resume:
                reason = "active_learning_options.resume is false"
            else:
                try:
                    old = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError) as err:
                    old, reason = None, f"{path} is unreadable ({err})"
                if old is not None and old.get("fingerprint") != self.fingerprint:
                    differ = sorted(
                        k for k in set(old.get("fingerprint", {})) | set(self.fingerprint)
                        if old.get("fingerprint", {}).get(k) != self.fingerprint.get(k)
                    )  # fmt: skip
                    reason = "the run differs from the recorded one in " + ", ".join(differ)
                elif old is not None:
                    self.rounds = {str(k): dict(v) for k, v in old.get("rounds", {}).items()}
            if reason is not None:
                logger.warning("active learning: not resuming from %s: %s; starting afresh", self.work_dir, reason)
                for folder in self.work_dir.glob("round_*"):
                    shutil.rmtree(folder)
        elif self.work_dir.is_dir():
            for folder in self.work_dir.glob("round_*"):  # outputs without a state: not ours to trust
                shutil.rmtree(folder)
        self._write()

    def round_dir(self, round_number: int) -> Path:
        """``work_dir/round_RR`` (created)."""
        folder = self.work_dir / f"round_{round_number:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def done(self, round_number: int, step: str) -> bool:
        """True when the state records ``step`` of ``round_number`` as completed."""
        return step in self.rounds.get(str(round_number), {})

    def summary(self, round_number: int, step: str) -> dict[str, Any]:
        """The summary recorded with a completed step."""
        return dict(self.rounds[str(round_number)][step])

    def summaries(self, round_number: int) -> dict[str, dict[str, Any]]:
        """Every completed step of a round with its summary, in the order they completed."""
        return {k: dict(v) for k, v in self.rounds.get(str(round_number), {}).items()}

    def mark(self, round_number: int, step: str, summary: Mapping[str, Any]) -> None:
        """Record ``step`` of ``round_number`` as completed, with its (JSON) summary; the state file is replaced
        atomically."""
        self.rounds.setdefault(str(round_number), {})[step] = json.loads(json.dumps(dict(summary)))
        self._write()

    def run_step(
        self,
        round_number: int,
        step: str,
        compute: Callable[[], tuple[T, Mapping[str, Any]]],
        save: Callable[[T, Path], None],
        load: Callable[[Path], T],
    ) -> tuple[T, dict[str, Any]]:
        """``(output, summary)`` of a step: loaded from ``round_RR/`` when the state records it, else computed,
        saved (``save`` writes atomically) and then recorded."""
        folder = self.round_dir(round_number)
        if self.done(round_number, step):
            logger.info("active learning: round %d, %s already done; skipped", round_number, step)
            return load(folder), self.summary(round_number, step)
        output, summary = compute()
        save(output, folder)
        self.mark(round_number, step, summary)
        return output, dict(summary)

    def _write(self) -> None:
        data = {"format": STATE_FORMAT, "version": 1, "fingerprint": self.fingerprint, "rounds": self.rounds}
        write_text_atomic(self.work_dir / STATE_FILE, json.dumps(data, indent=1, sort_keys=False) + "\n")

"""Preemption: SIGUSR1/SIGTERM set a flag that the training loop reads between steps.

SLURM sends SIGUSR1 (``--signal=USR1@120``) or SIGTERM before it kills a job; the loop finishes the
step in progress, writes a checkpoint and returns, and the script exits with
:data:`PREEMPTED_EXIT_CODE` so the job script can requeue (td-hpc does that; this module does not).
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

__all__ = ["PREEMPTED_EXIT_CODE", "PREEMPTION_SIGNALS", "PreemptionFlag"]

log = logging.getLogger(__name__)

#: Exit status of a run stopped by SIGUSR1/SIGTERM after writing its checkpoint (``EX_TEMPFAIL``
#: of sysexits.h: "try again later").
PREEMPTED_EXIT_CODE = 75

#: The signals that ask a run to stop.
PREEMPTION_SIGNALS = (signal.SIGUSR1, signal.SIGTERM)


class PreemptionFlag:
    """A stop request: set by :meth:`request` or, while installed, by the preemption signals."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def request(self) -> None:
        self.requested = True

    def _handler(self, signum: int, frame: Any) -> None:  # only sets the flag: logging is not signal-safe
        self.requested = True

    def install(self) -> bool:
        """Install the handlers (main thread only); False, with a log line, when that is impossible."""
        if threading.current_thread() is not threading.main_thread():
            log.warning("preemption handlers not installed: signal handlers can only be set from the main thread")
            return False
        for sig in PREEMPTION_SIGNALS:
            self._old[sig] = signal.signal(sig, self._handler)
        return True

    def restore(self) -> None:
        """Put the previous handlers back."""
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        self._old.clear()

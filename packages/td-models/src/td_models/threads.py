"""``torch_threads``: bound torch's intra-op threads for a block of work and restore them after.

``torch.set_num_threads`` is process-wide. Sampling (``sample(threads=...)``) and training
(``with torch_threads(1): trainer.fit()``) change it only for their own duration, so a caller's
setting is what it was once they return or raise.

>>> import torch
>>> before = torch.get_num_threads()
>>> with torch_threads(1):
...     torch.get_num_threads()
1
>>> torch.get_num_threads() == before
True
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from td_models.exceptions import ConfigError

__all__ = ["torch_threads", "check_threads"]


def check_threads(threads: int | None, name: str = "threads") -> int | None:
    """``threads`` if it is None or an integer >= 1; otherwise :class:`ConfigError` naming ``name``."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"{name} must be None or an integer >= 1, got {threads!r}")
    return threads


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run the block with ``threads`` torch intra-op threads (None: leave torch's setting); yields the count used.

    The previous setting is restored on exit, also when the block raises.
    """
    check_threads(threads)
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        if threads is not None:
            torch.set_num_threads(previous)

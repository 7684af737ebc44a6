"""``python -m td_physics.dft run ...`` / ``python -m td_physics.dft merge ...``: see :mod:`td_physics.dft.cli`."""

from __future__ import annotations

import sys

from td_physics.dft.cli import main

if __name__ == "__main__":  # guarded: the time-limit child processes (spawn) import this module again
    sys.exit(main())

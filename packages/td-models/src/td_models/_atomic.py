"""Crash-safe file writes shared by checkpoints, configurations and crystal files.

``atomic_write(path, write)`` calls ``write(tmp)`` on a hidden temporary sibling
``.<name>.<random>.tmp``, flushes it to disk (``fsync``), gives it the mode a plain ``open`` would
(``0o666`` minus the user's umask, not ``mkstemp``'s ``0o600``), renames it over ``path`` and
finally fsyncs the folder, so that after a crash or power loss ``path`` is either the old file or
the complete new one. A process killed mid-write leaves at most the temporary file behind; it is
never taken for the real file, and :func:`remove_orphan_temporaries` cleans such files up.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "user_file_mode", "fsync_directory", "remove_orphan_temporaries"]

log = logging.getLogger(__name__)


def user_file_mode() -> int:
    """``0o666`` with the process umask applied: the mode ``open(path, "w")`` would give a new file."""
    umask = None
    try:  # Linux >= 4.7 reports the umask without changing it (no race with other threads)
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    umask = int(line.split()[1], 8)
                    break
    except (OSError, ValueError):
        umask = None
    if umask is None:
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def fsync_directory(directory: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename inside it) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on folders
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], suffix: str = ".tmp") -> Path:
    """Write ``path`` through a temporary sibling: ``write(tmp)``, fsync, chmod to the umask, rename, fsync folder.

    ``write`` receives the temporary path (an existing empty file) and fills it. ``suffix`` ends the
    temporary name (``numpy.savez`` wants ``.npz``). On any error the temporary file is removed and
    ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, user_file_mode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    return path


def remove_orphan_temporaries(directory: str | os.PathLike, pattern: str) -> list[Path]:
    """Delete files of ``directory`` (not below it) matching ``pattern``, left by a killed write; returns them.

    Call it only where no other process is writing into ``directory`` at the time.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for candidate in sorted(directory.glob(pattern)):
        if candidate.is_file() and not candidate.is_symlink():
            try:
                candidate.unlink()
            except FileNotFoundError:
                continue
            removed.append(candidate)
            log.warning("removed %s, the temporary file of a write that did not finish", candidate)
    return removed

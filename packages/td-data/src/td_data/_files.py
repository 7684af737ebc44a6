"""Atomic file writes with the user's permissions: a temporary sibling, fsync, rename.

``tempfile.mkstemp`` creates files with mode 0600 whatever the umask, so a file renamed from it
stays private to its owner; data files written here get ``0666 & ~umask`` instead (0644 under the
usual umask 022), like a file opened with ``open(path, "w")``.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

__all__ = ["current_umask", "file_mode", "temp_sibling", "fsync_path", "replace_durably"]

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where Linux tells it (/proc/self/status)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:  # elsewhere: set and restore it at once (os.umask is the only portable reader)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """Permissions of a new data file: ``0666 & ~umask``."""
    return 0o666 & ~current_umask()


def temp_sibling(path: Path, suffix: str = ".tmp") -> Path:
    """A new empty file beside ``path`` (``.<name>.<random><suffix>``) with the user's permissions."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        os.fchmod(fd, file_mode())
    finally:
        os.close(fd)
    return Path(name)


def fsync_path(path: Path) -> None:
    """Flush a closed file's data to disk."""
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def replace_durably(tmp: Path, path: Path) -> None:
    """fsync ``tmp``, rename it onto ``path`` and fsync the folder so that the rename survives a crash."""
    fsync_path(tmp)
    os.replace(tmp, path)
    if os.name == "posix":
        try:
            fd = os.open(path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

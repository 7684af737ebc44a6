"""Crash-safe file writes for every library above this one: a temporary sibling, fsync, rename.

``atomic_write(path, write)`` calls ``write(tmp)`` on a hidden temporary sibling
``.<name>.<random><suffix>``, flushes it to disk, gives it the mode a plain ``open`` would (``0o666``
less the umask, not ``mkstemp``'s ``0o600``), renames it over ``path`` and fsyncs the folder, so that
after a crash ``path`` is either the old file or the whole new one. A process killed mid-write leaves
at most the temporary file, never taken for the real one; :func:`remove_orphan_temporaries` removes
such files. td-data, td-models and the pipelines use this module; td-hpc keeps its own small writer
because it depends on jinja2 alone.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "atomic_write",
    "write_bytes_atomic",
    "write_text_atomic",
    "temp_sibling",
    "replace_durably",
    "current_umask",
    "user_file_mode",
    "fsync_directory",
    "remove_orphan_temporaries",
]

log = logging.getLogger(__name__)

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where Linux reports it (``/proc/self/status``)."""
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


def user_file_mode() -> int:
    """``0o666`` with the umask applied: the mode ``open(path, "w")`` would give a new file."""
    return 0o666 & ~current_umask()


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


def temp_sibling(path: str | os.PathLike, suffix: str = ".tmp") -> Path:
    """A new empty file beside ``path`` (``.<name>.<random><suffix>``) with the user's permissions."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        os.fchmod(fd, user_file_mode())
    finally:
        os.close(fd)
    return Path(name)


def replace_durably(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """fsync ``tmp``, rename it onto ``path`` and fsync the folder so that the rename survives a crash."""
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_directory(Path(path).parent)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], suffix: str = ".tmp") -> Path:
    """Write ``path`` through a temporary sibling: ``write(tmp)``, fsync, rename, fsync the folder.

    ``write`` receives the temporary path (an existing empty file with the user's permissions) and
    fills it. ``suffix`` ends the temporary name (``numpy.savez`` wants ``.npz``). Missing parent
    folders are created. On any error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path, suffix=suffix)
    try:
        write(tmp)
        replace_durably(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """:func:`atomic_write` of ``data``; returns the path."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write` of ``text`` encoded as UTF-8; returns the path."""
    return write_bytes_atomic(path, text.encode("utf-8"))


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

"""Helpers for the tests that run the user's install and setup commands on a copy of this checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def checkout_files(root: Path = ROOT) -> list[str]:
    """The files a fresh clone of the working tree holds: tracked plus untracked-but-not-ignored ones."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted(name for name in listed.split("\0") if name and (root / name).is_file())


def copy_checkout(destination: Path, root: Path = ROOT) -> Path:
    """Copy the working tree's files (what a clone of it would hold, uncommitted edits included) to ``destination``."""
    for name in checkout_files(root):
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)
    return destination


def git_clone_of_working_tree(destination: Path, root: Path = ROOT) -> Path:
    """A git repository at ``destination`` whose one commit is the current working tree (as a clone would be)."""
    copy_checkout(destination, root)
    env_args = ["-c", "user.name=test", "-c", "user.email=test@example.invalid", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=destination, check=True)
    subprocess.run(["git", "add", "-A"], cwd=destination, check=True)
    subprocess.run(["git", *env_args, "commit", "-q", "-m", "working tree"], cwd=destination, check=True)
    return destination


def overlay_venv(path: Path) -> Path:
    """A new virtual environment that also sees this interpreter's installed packages, and returns its python.

    The new environment's own site-packages comes first on ``sys.path``; this interpreter's site-packages is
    added after it (its ``.pth`` files processed), so pip resolves the heavy dependencies (torch, pymatgen) as
    already installed while everything pip installs lands in the new environment. pip refuses to uninstall
    anything outside the new environment, so the environment running the tests is never modified.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    parent = sysconfig.get_paths()["purelib"]
    Path(purelib, "_test_overlay.pth").write_text(f"import site; site.addsitedir({parent!r})\n", encoding="utf-8")
    return python

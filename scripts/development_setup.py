#!/usr/bin/env python3
"""Developer setup of a checkout: environment, git pre-commit hook, system pieces, and a smoke check.

    python scripts/development_setup.py                # all four steps
    python scripts/development_setup.py --check-only   # only the smoke check: what works and what is missing

Steps:

1. **Environment**: ``make install`` (the Makefile is the one recipe) into the environment of the Python running
   this script when that is a virtual or conda environment (after ``pip install -e .`` in it, say), otherwise
   into ``.venv`` (created with that Python if it does not exist); ``--venv`` names another. It installs torch,
   ``requirements-dev.txt``, every library under ``packages/`` in editable mode with its test extras,
   ``requirements-pipelines.txt`` and the root project. Where a library is installed but not editable from this
   checkout (``pip install -e .`` installs the libraries as copies), the Makefile's stamp is removed first so that
   ``make install`` installs them editable again.
2. **Git hook**: ``.git/hooks/pre-commit`` runs the local hooks of ``.pre-commit-config.yaml`` (``ruff check`` and
   ``ruff format --check``) on the staged Python files with this environment's ruff: no network at commit time
   and no ``pre-commit`` package needed (``pre-commit run`` reads the same file where it is installed). A hook
   that this script did not write is left alone.
3. **System pieces** the tests use (chromium, slurm-wlm, munge): ``scripts/setup_test_system.sh`` as root;
   otherwise the command to run is printed.
4. **Smoke check**: the four libraries import (and whether they are editable from this checkout), a Chern number
   against its closed form, kedro finds the project, ruff runs; slurm, chromium and a GPU are reported as present
   or not. The exit status is 1 when something essential failed, else 0.

Only the standard library is used here, so any Python 3.10+ can run it before the environment exists; the
checks that need the libraries run in the environment's Python.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOOK_MARKER = "installed by scripts/development_setup.py"
PRE_COMMIT_CONFIG = ".pre-commit-config.yaml"
PYTHON_SUFFIXES = (".py", ".pyi")


class SetupError(ValueError):
    """A setup step cannot run with what it was given (a missing tool, an unsupported hook definition)."""


@dataclass(frozen=True)
class Check:
    """One line of the smoke check: ``status`` is ``ok``, ``missing`` (optional piece absent) or ``FAILED``."""

    name: str
    status: str
    detail: str
    essential: bool = True


# ----------------------------------------------------------------------------------------------------------
# step 1: the environment
# ----------------------------------------------------------------------------------------------------------


def library_folders(root: Path = ROOT) -> list[Path]:
    """The libraries under ``packages/`` (those with a ``pyproject.toml``), as the Makefile discovers them."""
    return sorted(p.parent for p in (root / "packages").glob("*/pyproject.toml"))


def _dist_info(venv: Path, folder: Path) -> Path | None:
    wanted = folder.name.replace("-", "_").lower()
    for info in venv.glob("lib/python*/site-packages/*.dist-info"):
        if info.name.lower().split("-", 1)[0] == wanted:  # <name>-<version>.dist-info, name without hyphens
            return info
    return None


def not_editable_here(venv: Path, root: Path = ROOT) -> list[str]:
    """The libraries installed in ``venv`` but not editable from this checkout's ``packages/<name>``."""
    stale = []
    for folder in library_folders(root):
        info = _dist_info(venv, folder)
        if info is None:
            continue
        direct = info / "direct_url.json"
        origin = json.loads(direct.read_text(encoding="utf-8")) if direct.is_file() else {}
        editable = origin.get("dir_info", {}).get("editable", False)
        if not (editable and origin.get("url") == folder.resolve().as_uri()):
            stale.append(folder.name)
    return stale


def default_environment() -> Path:
    """The running Python's environment when it is a virtual or conda environment, else this checkout's .venv."""
    prefix = Path(sys.prefix)
    virtual = sys.prefix != sys.base_prefix
    conda_env = (prefix / "conda-meta").is_dir() and not (prefix / "condabin").is_dir()  # not conda's own base
    if virtual or conda_env:
        return prefix
    return ROOT / ".venv"


def install_environment(venv: Path) -> None:
    """``make install`` into ``venv``, forcing it where a library is not editable from this checkout."""
    make = shutil.which("make")
    if make is None:
        raise SetupError("make is needed for the environment step and was not found on PATH (apt-get install make)")
    stale = not_editable_here(venv)
    stamp = venv / ".installed"
    if stale and stamp.exists():
        print(f"  {', '.join(stale)} not editable from this checkout: reinstalling")
        stamp.unlink()
    command = [make, "install", f"PYTHON={sys.executable}", f"VENV={venv}"]
    print(f"  {shlex.join(command)}  (pip runs quietly: minutes in a new environment, seconds after)", flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


# ----------------------------------------------------------------------------------------------------------
# step 2: the git pre-commit hook
# ----------------------------------------------------------------------------------------------------------


def hooks_folder(root: Path = ROOT) -> Path | None:
    """The repository's hooks folder (``core.hooksPath`` respected), or None outside a git work tree."""
    done = subprocess.run(
        ["git", "rev-parse", "--git-path", "hooks"], cwd=root, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return None
    path = Path(done.stdout.strip())
    return path if path.is_absolute() else root / path


def _write_executable(path: Path, text: str) -> None:
    """Write ``text`` atomically (temp file in the same folder, fsync, rename), executable under the umask."""
    umask = os.umask(0)
    os.umask(umask)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, 0o777 & ~umask)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def install_hook(venv: Path, root: Path = ROOT) -> str:
    """Install the pre-commit hook; returns what was done, in words."""
    folder = hooks_folder(root)
    if folder is None:
        return "not a git work tree: no hook installed"
    hook = folder / "pre-commit"
    if hook.exists() and HOOK_MARKER not in hook.read_text(encoding="utf-8", errors="replace"):
        return f"{hook} exists and was not written by this script: left alone"
    folder.mkdir(parents=True, exist_ok=True)
    python = venv / "bin" / "python"
    script = root / "scripts" / "development_setup.py"
    _write_executable(
        hook,
        "#!/bin/sh\n"
        f"# {HOOK_MARKER}: the local hooks of {PRE_COMMIT_CONFIG} on the staged files, with this\n"
        "# checkout's environment (rerun the script to update; delete this file to remove the hook).\n"
        f'exec {shlex.join([str(python), str(script), "--run-hooks", "--venv", str(venv)])} "$@"\n',
    )
    return f"{hook} runs {PRE_COMMIT_CONFIG} with {python}"


def _load_hooks(root: Path) -> list[dict]:
    import yaml  # from the environment (pyyaml, a td-models dependency): --run-hooks runs in its Python

    config = yaml.safe_load((root / PRE_COMMIT_CONFIG).read_text(encoding="utf-8")) or {}
    hooks = []
    for repo in config.get("repos", []):
        if repo.get("repo") != "local":
            raise SetupError(
                f"{PRE_COMMIT_CONFIG}: only 'repo: local' hooks run without network, got {repo.get('repo')!r}"
            )
        for hook in repo.get("hooks", []):
            if hook.get("language") != "system":
                raise SetupError(
                    f"{PRE_COMMIT_CONFIG}: hook {hook.get('id')!r} must use 'language: system', "
                    f"got {hook.get('language')!r}"
                )
            unknown = set(hook.get("types", [])) - {"python", "file"}
            if unknown:
                raise SetupError(
                    f"{PRE_COMMIT_CONFIG}: hook {hook.get('id')!r} types must be python or file, got {sorted(unknown)}"
                )
            hooks.append(hook)
    return hooks


def _selected(hook: dict, files: list[str]) -> list[str]:
    include = re.compile(hook.get("files", ""))
    exclude = re.compile(hook["exclude"]) if hook.get("exclude") else None
    python_only = "python" in hook.get("types", [])
    return [
        name
        for name in files
        if include.search(name)
        and not (exclude and exclude.search(name))
        and (not python_only or name.endswith(PYTHON_SUFFIXES))
    ]


def _git_lines(root: Path, command: str, *args: str) -> list[str]:
    """The NUL-separated file names that ``git <command> -z <args>`` prints."""
    out = subprocess.run(["git", command, "-z", *args], cwd=root, capture_output=True, text=True, check=True).stdout
    return [name for name in out.split("\0") if name]


def run_hooks(venv: Path, root: Path = ROOT) -> int:
    """Run the local hooks on the staged files, as staged; the exit status git sees.

    The staged files and the tool configurations (``pyproject.toml``, ``ruff.toml``) are copied out of the index
    into a temporary folder and checked there, so that what is checked is what the commit holds, whatever the
    work tree has since (as pre-commit does by stashing unstaged changes).
    """
    files = _git_lines(root, "diff", "--cached", "--name-only", "--diff-filter=ACMR")
    configs = _git_lines(root, "ls-files", "--", "pyproject.toml", "*/pyproject.toml", "ruff.toml", ".ruff.toml")
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    status = 0
    with tempfile.TemporaryDirectory(prefix="td-pre-commit-") as snapshot:
        if files or configs:
            subprocess.run(
                ["git", "checkout-index", f"--prefix={snapshot}/", "--", *sorted(set(files) | set(configs))],
                cwd=root,
                check=True,
            )
        for hook in _load_hooks(root):
            chosen = _selected(hook, files)
            if not chosen and hook.get("pass_filenames", True):
                continue
            command = [*shlex.split(hook["entry"]), *hook.get("args", [])]
            if hook.get("pass_filenames", True):
                command += chosen
            done = subprocess.run(command, cwd=snapshot, env=env, check=False)
            print(f"{hook.get('name', hook['id'])}: {'passed' if done.returncode == 0 else 'FAILED'}", file=sys.stderr)
            status = status or done.returncode
    return status


# ----------------------------------------------------------------------------------------------------------
# step 3: system pieces
# ----------------------------------------------------------------------------------------------------------


def system_pieces() -> dict[str, list[str]]:
    """The commands each optional system piece needs, with those missing (empty list: present)."""
    wanted = {
        "slurm": ["sbatch", "slurmctld", "slurmd", "munged"],
        "chromium": ["chromium"],
    }
    return {piece: [c for c in commands if shutil.which(c) is None] for piece, commands in wanted.items()}


def install_system() -> str:
    script = ROOT / "scripts" / "setup_test_system.sh"
    if not any(system_pieces().values()):
        return "chromium, slurm and munge present"
    if os.geteuid() != 0:
        return f"not root, so nothing installed: run `sudo bash {script.relative_to(ROOT)}`"
    subprocess.run(["bash", str(script)], cwd=ROOT, check=True)
    return f"ran {script.relative_to(ROOT)}"


# ----------------------------------------------------------------------------------------------------------
# step 4: the smoke check
# ----------------------------------------------------------------------------------------------------------


def probe() -> list[Check]:
    """The checks that need the libraries; runs in the environment's Python (``--probe``)."""
    import importlib
    import importlib.metadata

    checks = []
    for folder in library_folders():
        module = folder.name.replace("-", "_")
        try:
            imported = importlib.import_module(module)
            dist = importlib.metadata.distribution(folder.name)
        except Exception as error:  # any import failure is the answer, whatever its type
            checks.append(Check(folder.name, "FAILED", f"import {module}: {type(error).__name__}: {error}"))
            continue
        origin = json.loads(dist.read_text("direct_url.json") or "{}")
        if origin.get("dir_info", {}).get("editable") and origin.get("url") == folder.resolve().as_uri():
            how = f"editable from packages/{folder.name}"
        else:
            how = f"from {Path(imported.__file__).parent} (not editable from this checkout: rerun without --check-only)"
        checks.append(Check(folder.name, "ok", f"{dist.version}, {how}"))
    try:
        from topological_diffusion.physics import TopologicalInvariantCalculator

        from td_physics.models import qwz
        from td_physics.validation import qwz_closed_form

        values = {}
        for m in (-1.0, 3.0):
            values[m] = TopologicalInvariantCalculator(qwz(m)).compute_all_invariants(k_grid=12)["chern_number"].value
        expected = {m: int(qwz_closed_form(m)) for m in values}
        status = "ok" if values == expected else "FAILED"
        checks.append(Check("invariant", status, f"QWZ Chern numbers {values}, closed form {expected}"))
    except Exception as error:  # the check reports whatever broke
        checks.append(Check("invariant", "FAILED", f"{type(error).__name__}: {error}"))
    listed = subprocess.run(
        [sys.executable, "-m", "kedro", "registry", "list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"},
        check=False,
    )
    pipelines = re.findall(r"^- (\S+)$", listed.stdout, re.MULTILINE)
    if listed.returncode == 0 and "__default__" in pipelines:
        checks.append(Check("kedro project", "ok", f"pipelines: {', '.join(pipelines)}"))
    else:
        checks.append(Check("kedro project", "FAILED", (listed.stdout + listed.stderr).strip()[-600:]))
    # found as the git hook finds it: the environment's bin folder first, then PATH
    ruff = shutil.which("ruff", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if ruff:
        version = subprocess.run([ruff, "--version"], capture_output=True, text=True, check=False).stdout
        checks.append(Check("ruff", "ok", f"{version.strip()} ({ruff})"))
    else:
        checks.append(Check("ruff", "FAILED", f"ruff not found in {Path(sys.executable).parent} or on PATH"))
    try:
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        checks.append(
            Check("gpu", "ok" if gpus else "missing", f"torch {torch.__version__}, {gpus} CUDA device(s)", False)
        )
    except Exception as error:  # torch is checked through td-models above; here only the GPU is reported
        checks.append(Check("gpu", "missing", f"{type(error).__name__}: {error}", False))
    return checks


def smoke_check(venv: Path) -> list[Check]:
    python = venv / "bin" / "python"
    if not python.exists():
        return [Check("environment", "FAILED", f"{python} not found: run this script without --check-only")]
    done = subprocess.run(
        [str(python), str(Path(__file__).resolve()), "--probe"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return [Check("environment", "FAILED", f"{python} could not run the checks: {done.stderr.strip()[-800:]}")]
    checks = [Check("environment", "ok", str(python))]
    checks += [Check(**item) for item in json.loads(done.stdout.strip().splitlines()[-1])]
    folder = hooks_folder()
    hook = folder / "pre-commit" if folder else None
    if hook is not None and hook.exists() and HOOK_MARKER in hook.read_text(encoding="utf-8", errors="replace"):
        checks.append(Check("pre-commit hook", "ok", str(hook), False))
    else:
        checks.append(Check("pre-commit hook", "missing", "run this script without --skip-hooks", False))
    fix = "sudo bash scripts/setup_test_system.sh"
    for piece, missing in system_pieces().items():
        if missing:
            checks.append(
                Check(piece, "missing", f"{', '.join(missing)} not found; the tests that need it skip ({fix})", False)
            )
        else:
            checks.append(Check(piece, "ok", "present", False))
    return checks


def report(checks: list[Check]) -> int:
    width = max(len(c.name) for c in checks)
    for check in checks:
        print(f"  {check.status:8} {check.name:{width}}  {check.detail}")
    failed = [c.name for c in checks if c.essential and c.status == "FAILED"]
    if failed:
        print(f"smoke check: FAILED ({', '.join(failed)})")
        return 1
    print("smoke check: the essentials work")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--venv",
        type=Path,
        default=None,
        help="the environment (default: the running one if it is a virtual or conda environment, else .venv)",
    )
    parser.add_argument("--skip-install", action="store_true", help="use the environment as it is")
    parser.add_argument("--skip-hooks", action="store_true", help="do not install the git pre-commit hook")
    parser.add_argument("--skip-system", action="store_true", help="do not install chromium, slurm and munge")
    parser.add_argument("--check-only", action="store_true", help="change nothing: only the smoke check")
    parser.add_argument("--run-hooks", action="store_true", help="run the pre-commit checks on the staged files")
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)  # the checks in the env's Python
    args = parser.parse_args(argv)
    venv = (args.venv or default_environment()).absolute()
    if args.probe:
        print(json.dumps([vars(c) for c in probe()]))
        return 0
    if args.run_hooks:
        return run_hooks(venv)
    if not args.check_only:
        steps = [
            ("environment", None if args.skip_install else lambda: install_environment(venv)),
            ("git hook", None if args.skip_hooks else lambda: install_hook(venv)),
            ("system pieces", None if args.skip_system else install_system),
        ]
        for number, (name, step) in enumerate(steps, start=1):
            print(f"[{number}/4] {name}" + (f": {venv}" if number == 1 else ""), flush=True)
            if step is None:
                print("  skipped")
                continue
            said = step()
            if said:
                print(f"  {said}")
    print("[4/4] smoke check" if not args.check_only else "smoke check", flush=True)
    return report(smoke_check(venv))


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except (SetupError, subprocess.CalledProcessError) as error:
        print(f"development_setup: {error}", file=sys.stderr)
        raise SystemExit(1) from None

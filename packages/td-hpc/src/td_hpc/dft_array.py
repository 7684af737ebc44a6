"""DFT verification as a SLURM job array: one crystal per task, resumable, then a merge job.

:func:`write_dft_array_job` writes two sbatch scripts into the output folder: ``dft_array.sbatch``
(task ``I`` runs ``python -m td_physics.dft run --input CRYSTALS --output-dir OUTPUT_DIR --index I``,
which writes ``OUTPUT_DIR/result-IIIIII.json``) and ``dft_merge.sbatch`` (``python -m td_physics.dft
merge``, into ``OUTPUT_DIR/dft_results.json`` by default). :func:`submit_dft_verification` submits the
array and then the merge with ``--dependency=afterany:ARRAY``. The command line skips crystals that
already have a valid result, so submitting the same job again after a partial run (a node failure, a
task over its time limit) computes only what is missing; ``indices`` (for example
:func:`missing_dft_results`) makes the new array that small too.

td-hpc does not import td-physics: the scripts call its command line in the job's Python (``python``),
which needs ``td-physics[dft]`` installed. The crystals file is written by
``td_physics.dft.cli.write_crystals_file``.

>>> import json, tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "crystals.json").write_text(json.dumps({"crystals": [{"id": "a"}, {"id": "b"}, {"id": "c"}]}))
>>> job = write_dft_array_job(folder / "crystals.json", folder / "dft", time_per_task="00:30:00", array_parallelism=2)
>>> job.n_crystals, job.array_script.name, job.merge_script.name
(3, 'dft_array.sbatch', 'dft_merge.sbatch')
>>> [l for l in job.array_script.read_text().splitlines() if l.startswith(("#SBATCH --array", "#SBATCH --time"))]
['#SBATCH --array=0-2%2', '#SBATCH --time=00:30:00']
>>> "--timeout 1620" in job.array_script.read_text()  # stopped 180 s before the task's limit
True
>>> missing_dft_results(folder / "dft", 3)
[0, 1, 2]
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from td_hpc.exceptions import HpcValueError
from td_hpc.files import write_text_atomic
from td_hpc.scripts import _common, _environment, _q
from td_hpc.slurm import submit
from td_hpc.validation import check_arg, check_path, check_positive_int, check_sbatch_path, check_time

__all__ = [
    "DFTArrayJob",
    "write_dft_array_job",
    "submit_dft_verification",
    "missing_dft_results",
    "dft_result_file_name",
    "crystal_timeout_for",
]

logger = logging.getLogger(__name__)

MAX_TASKS = 100_000  # SLURM's own MaxArraySize (1001 by default) is usually the tighter limit
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class DFTArrayJob:
    """The scripts :func:`write_dft_array_job` wrote, and the paths they use (absolute)."""

    array_script: Path  # dft_array.sbatch: one crystal per task
    merge_script: Path | None  # dft_merge.sbatch, None when merge=False
    crystals_file: Path  # the command line's input
    output_dir: Path  # result-IIIIII.json files
    results_file: Path  # what the merge job writes
    log_dir: Path  # SLURM's .out/.err files
    n_crystals: int  # crystals in the input file
    indices: tuple[int, ...]  # the array's task ids


def dft_result_file_name(index: int) -> str:
    """``result-IIIIII.json``, the name ``python -m td_physics.dft run`` gives crystal ``index``'s result."""
    return f"result-{index:06d}.json"


def missing_dft_results(output_dir: str | os.PathLike[str], n_crystals: int) -> list[int]:
    """Indices in ``[0, n_crystals)`` with no result file in ``output_dir`` (a file that is there may
    still be corrupt or stale: the command line checks and redoes those)."""
    check_positive_int("n_crystals", n_crystals, maximum=MAX_TASKS)
    folder = Path(output_dir)
    return [i for i in range(n_crystals) if not (folder / dft_result_file_name(i)).is_file()]


def _seconds(time: str) -> int:
    days, _, hms = time.rpartition("-")
    h, m, s = (int(x) for x in hms.split(":"))
    return (int(days) if days else 0) * 86400 + h * 3600 + m * 60 + s


def crystal_timeout_for(time_per_task: str) -> int:
    """Seconds a crystal may run in a task of ``time_per_task``: the limit less a margin of a tenth of it
    (at least 30 s, at most 300 s), so that the command line writes the time-limit result before SLURM
    kills the task.

    >>> crystal_timeout_for("01:00:00"), crystal_timeout_for("00:05:00"), crystal_timeout_for("2-00:00:00")
    (3300, 270, 172500)
    """
    limit = _seconds(check_time(time_per_task, "time_per_task"))
    timeout = limit - min(300, max(30, limit // 10))
    if timeout < 1:
        raise HpcValueError(
            "time_per_task must leave at least 1 s after a 30 s margin for the time-limit result, "
            f"got {time_per_task!r}"
        )
    return timeout


def _count_crystals(path: Path) -> int:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise HpcValueError(f"crystals_file must be a readable JSON file, got {str(path)!r}: {err}") from err
    if not isinstance(data, dict) or not isinstance(data.get("crystals"), list):
        raise HpcValueError(f"crystals_file must hold a JSON object with a 'crystals' list, got {str(path)!r}")
    return len(data["crystals"])


def _array_spec(indices: Sequence[int], parallelism: int | None) -> str:
    """``--array`` value: runs of consecutive ids as ``a-b``, joined by commas, then ``%parallelism``."""
    ordered = sorted(set(indices))
    runs: list[list[int]] = []
    for i in ordered:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    spec = ",".join(f"{a}-{b}" if b > a else f"{a}" for a, b in runs)
    return spec + (f"%{parallelism}" if parallelism is not None else "")


def _env_lines(extra_env: Mapping[str, str] | None) -> list[tuple[str, str]]:
    if extra_env is None:
        return []
    if not isinstance(extra_env, Mapping):
        raise HpcValueError(f"extra_env must be a mapping of variable names to values, got {extra_env!r}")
    lines = []
    for name, value in extra_env.items():
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            raise HpcValueError(f"extra_env names must match [A-Za-z_][A-Za-z0-9_]*, got {name!r}")
        lines.append((name, shlex.quote(check_arg(f"extra_env[{name!r}]", value))))
    return lines


def write_dft_array_job(
    crystals_file: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    n_crystals: int | None = None,
    partition: str | None = None,
    account: str | None = None,
    job_name: str = "td-dft",
    time_per_task: str = "01:00:00",
    cpus_per_task: int = 2,
    mem: str = "4G",
    array_parallelism: int | None = None,
    python: str | os.PathLike[str] = "python",
    extra_env: Mapping[str, str] | None = None,
    settings_file: str | os.PathLike[str] | None = None,
    spin_orbit: bool = True,
    crystal_timeout: int | None = None,
    retry_failed: bool = False,
    indices: Sequence[int] | None = None,
    merge: bool = True,
    results_file: str | os.PathLike[str] | None = None,
    log_dir: str | os.PathLike[str] | None = None,
) -> DFTArrayJob:
    """Write ``output_dir/dft_array.sbatch`` (a job array, one crystal of ``crystals_file`` per task)
    and, with ``merge``, ``output_dir/dft_merge.sbatch``; create ``output_dir`` and ``log_dir``
    (default ``output_dir/logs``). Paths are made absolute, so the scripts may be submitted from
    anywhere.

    ``n_crystals``: the number of crystals; read from ``crystals_file`` when None, checked against it
    when given. ``indices``: the task ids (default all, ``0-(n-1)``). ``array_parallelism``: at most
    that many tasks at once (``--array=...%p``). ``time_per_task``, ``cpus_per_task``, ``mem``: each
    task's resources; a crystal is stopped ``crystal_timeout`` s after it starts (default
    :func:`crystal_timeout_for` ``(time_per_task)``) and gets a result saying so. ``python``: the
    job's interpreter with ``td-physics[dft]``; ``extra_env``: ``export NAME=VALUE`` lines (after the
    thread settings, so they may override them). ``settings_file``: a JSON file of ``DFTSettings``
    keys; ``spin_orbit=False`` adds ``--no-spin-orbit``; ``retry_failed`` adds ``--retry-failed`` (a
    result with converged=false, say over the time limit, is computed again instead of kept).
    ``results_file``: the merge's output (default ``output_dir/dft_results.json``).
    """
    crystals = Path(check_path("crystals_file", crystals_file)).resolve()
    if not crystals.is_file():
        raise HpcValueError(f"crystals_file must be an existing file, got {str(crystals)!r}")
    counted = _count_crystals(crystals)
    if n_crystals is None:
        n_crystals = counted
    check_positive_int("n_crystals", n_crystals, maximum=MAX_TASKS)
    if n_crystals != counted:
        raise HpcValueError(f"n_crystals must equal the {counted} crystal(s) in {str(crystals)!r}, got {n_crystals!r}")
    if indices is None:
        task_ids = list(range(n_crystals))
    else:
        if isinstance(indices, (str, bytes)) or not isinstance(indices, Sequence) or not indices:
            raise HpcValueError(f"indices must be a non-empty sequence of task ids, got {indices!r}")
        for i in indices:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n_crystals:
                raise HpcValueError(f"indices must be whole numbers in [0, n_crystals={n_crystals}), got {i!r}")
        task_ids = sorted(set(indices))
    if array_parallelism is not None:
        check_positive_int("array_parallelism", array_parallelism, maximum=MAX_TASKS)
    limit = _seconds(check_time(time_per_task, "time_per_task"))
    if crystal_timeout is None:
        timeout = crystal_timeout_for(time_per_task)
    else:
        timeout = check_positive_int("crystal_timeout", crystal_timeout, maximum=max(1, limit - 1))
    out = Path(check_path("output_dir", output_dir)).resolve()
    logs = out / "logs" if log_dir is None else Path(check_path("log_dir", log_dir)).resolve()
    check_sbatch_path("log_dir", str(logs))
    results = out / "dft_results.json" if results_file is None else Path(results_file).resolve()
    settings = None
    if settings_file is not None:
        settings = Path(check_path("settings_file", settings_file)).resolve()
        if not settings.is_file():
            raise HpcValueError(f"settings_file must be an existing file, got {str(settings)!r}")
    env = _env_lines(extra_env)

    context = _common(job_name, partition, account, time_per_task, mem, cpus_per_task)
    context.update(
        array_spec=_array_spec(task_ids, array_parallelism),
        log_dir=str(logs),
        python=_q("python", python),
        crystals_file=_q("crystals_file", crystals),
        output_dir=_q("output_dir", out),
        settings_file=None if settings is None else _q("settings_file", settings),
        spin_orbit=bool(spin_orbit),
        retry_failed=bool(retry_failed),
        crystal_timeout=timeout,
        margin=limit - timeout,
        extra_env=env,
    )
    out.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    array_script = out / "dft_array.sbatch"
    write_text_atomic(array_script, _environment().get_template("dft_verification.sbatch.j2").render(**context))
    merge_script = None
    if merge:
        merge_context = _common(f"{job_name}-merge", partition, account, "00:15:00", "2G", 1)
        merge_context.update(
            log_dir=str(logs),
            python=context["python"],
            crystals_file=context["crystals_file"],
            output_dir=context["output_dir"],
            results_file=_q("results_file", results),
            extra_env=env,
        )
        merge_script = out / "dft_merge.sbatch"
        write_text_atomic(merge_script, _environment().get_template("dft_merge.sbatch.j2").render(**merge_context))
    logger.info(
        "DFT array of %d task(s) over %d crystal(s) in %s (array %s)",
        len(task_ids),
        n_crystals,
        array_script,
        context["array_spec"],
    )
    return DFTArrayJob(array_script, merge_script, crystals, out, results, logs, n_crystals, tuple(task_ids))


def submit_dft_verification(
    job: DFTArrayJob,
    *,
    sbatch_args: Sequence[str] = (),
    cwd: str | os.PathLike[str] | None = None,
) -> tuple[str, str | None]:
    """Submit ``job.array_script`` and then ``job.merge_script`` with
    ``--dependency=afterany:ARRAY`` (it runs when every task has ended, whatever their state);
    ``sbatch_args`` go to both. Returns ``(array_job_id, merge_job_id)`` (None without a merge script).
    Submitting the same job again after a partial run recomputes only the missing results."""
    if not isinstance(job, DFTArrayJob):
        raise HpcValueError(f"job must be the DFTArrayJob that write_dft_array_job returns, got {type(job).__name__}")
    args = list(sbatch_args)
    array_id = submit(job.array_script, sbatch_args=args, cwd=cwd)
    merge_id = None
    if job.merge_script is not None:
        merge_id = submit(job.merge_script, sbatch_args=[*args, f"--dependency=afterany:{array_id}"], cwd=cwd)
    logger.info("DFT verification: array job %s, merge job %s", array_id, merge_id)
    return array_id, merge_id

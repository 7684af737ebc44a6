"""The DFT verification job array: script content, array bounds, parallelism, the merge dependency,
hostile paths run through bash, bad arguments refused (fake sbatch; the real one: test_slurm_dft.py)."""

from __future__ import annotations

import doctest
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import td_hpc.dft_array
from td_hpc import (
    DFTArrayJob,
    HpcValueError,
    missing_dft_results,
    submit_dft_verification,
    write_dft_array_job,
)
from td_hpc.dft_array import crystal_timeout_for, dft_result_file_name


def crystals_file(folder: Path, n: int, name: str = "crystals.json") -> Path:
    path = folder / name
    path.write_text(json.dumps({"crystals": [{"id": f"c{i}"} for i in range(n)]}))
    return path


def sbatch_lines(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.startswith("#SBATCH --"):
            key, _, value = line[len("#SBATCH --") :].partition("=")
            out[key] = value
    return out


def bash_parses(path: Path) -> bool:
    return subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0


def test_module_doctests():
    result = doctest.testmod(td_hpc.dft_array, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


def test_array_script_one_crystal_per_task(tmp_path):
    job = write_dft_array_job(
        crystals_file(tmp_path, 5),
        tmp_path / "dft",
        partition="cpu",
        account="matsci",
        time_per_task="02:00:00",
        cpus_per_task=4,
        mem="8G",
        array_parallelism=3,
        python="/opt/venv/bin/python",
        extra_env={"GPAW_NEW": "0"},
    )
    assert isinstance(job, DFTArrayJob)
    assert (job.n_crystals, job.indices) == (5, (0, 1, 2, 3, 4))
    assert job.array_script == (tmp_path / "dft" / "dft_array.sbatch").resolve()
    lines = sbatch_lines(job.array_script)
    assert lines["array"] == "0-4%3"
    assert (lines["cpus-per-task"], lines["mem"], lines["time"], lines["partition"], lines["account"]) == (
        "4",
        "8G",
        "02:00:00",
        "cpu",
        "matsci",
    )
    assert lines["output"] == f"{job.log_dir}/%x-%A_%a.out" and job.log_dir.is_dir()
    text = job.array_script.read_text()
    assert "exec /opt/venv/bin/python -m td_physics.dft run" in text
    assert f"--input {job.crystals_file}" in text and f"--output-dir {job.output_dir}" in text
    assert '--index "$SLURM_ARRAY_TASK_ID"' in text
    assert "--timeout 6900" in text  # 2 h less a 300 s margin
    assert "--no-spin-orbit" not in text and "--settings" not in text and "--retry-failed" not in text
    assert text.index('export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}"') < text.index("export GPAW_NEW=0")
    assert bash_parses(job.array_script)


def test_merge_script_and_defaults(tmp_path):
    job = write_dft_array_job(crystals_file(tmp_path, 2), tmp_path / "dft")
    assert sbatch_lines(job.array_script)["array"] == "0-1"  # no parallelism limit by default
    text = job.merge_script.read_text()
    assert f"-m td_physics.dft merge {job.output_dir}" in text
    assert f"--input {job.crystals_file}" in text and f"--output {job.results_file}" in text
    assert job.results_file == job.output_dir / "dft_results.json"
    lines = sbatch_lines(job.merge_script)
    assert "array" not in lines and "dependency" not in lines  # the dependency is given at submission
    assert lines["job-name"] == "td-dft-merge" and lines["cpus-per-task"] == "1"
    assert bash_parses(job.merge_script)
    no_merge = write_dft_array_job(crystals_file(tmp_path, 2), tmp_path / "dft2", merge=False)
    assert no_merge.merge_script is None and not (tmp_path / "dft2" / "dft_merge.sbatch").exists()


def test_settings_spin_orbit_timeout_and_indices(tmp_path):
    settings = tmp_path / "settings.json"
    settings.write_text('{"kpt_density": 2.0}')
    job = write_dft_array_job(
        crystals_file(tmp_path, 10),
        tmp_path / "dft",
        settings_file=settings,
        spin_orbit=False,
        retry_failed=True,
        crystal_timeout=100,
        time_per_task="00:05:00",
        indices=[7, 2, 3, 4, 9, 3],
        array_parallelism=2,
    )
    text = job.array_script.read_text()
    assert f"--settings {settings.resolve()}" in text and "--no-spin-orbit" in text and "--timeout 100" in text
    assert text.rstrip().endswith("--no-spin-orbit \\\n    --retry-failed")
    assert sbatch_lines(job.array_script)["array"] == "2-4,7,9%2" and job.indices == (2, 3, 4, 7, 9)
    assert bash_parses(job.array_script)


def test_resubmission_array_covers_only_missing_results(tmp_path):
    crystals = crystals_file(tmp_path, 6)
    out = tmp_path / "dft"
    out.mkdir()
    for i in (0, 1, 4):
        (out / dft_result_file_name(i)).write_text("{}")
    assert dft_result_file_name(4) == "result-000004.json"
    missing = missing_dft_results(out, 6)
    assert missing == [2, 3, 5]
    job = write_dft_array_job(crystals, out, indices=missing)
    assert sbatch_lines(job.array_script)["array"] == "2-3,5"


def test_crystal_timeout_leaves_a_margin():
    assert crystal_timeout_for("01:00:00") == 3300
    assert crystal_timeout_for("00:01:00") == 30
    assert crystal_timeout_for("00:10:00") == 540
    with pytest.raises(HpcValueError, match="time_per_task must leave at least 1 s"):
        crystal_timeout_for("00:00:30")


def test_hostile_paths_reach_the_command_line_unchanged(tmp_path):
    """Run the generated array script through bash with a stub python that records its arguments: paths
    with blanks, quotes and ``$(...)`` arrive as one argument each, and nothing is executed."""
    folder = tmp_path / "a dir; $(touch pwned) 'q'"
    folder.mkdir()
    stub = tmp_path / "py thon"
    stub.write_text(
        '#!/bin/bash\nprintf "%s\\n" "$@" > "$ARGS_FILE"\necho "OMP=$OMP_NUM_THREADS X=$X" >> "$ARGS_FILE"\n'
    )
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    settings = folder / "s $HOME.json"
    settings.write_text("{}")
    job = write_dft_array_job(
        crystals_file(folder, 3, name="c `id`.json"),
        folder / "out",
        log_dir=tmp_path / "logs",
        python=stub,
        settings_file=settings,
        extra_env={"X": "a b $(touch pwned2)"},
    )
    env = {**os.environ, "SLURM_ARRAY_TASK_ID": "2", "SLURM_CPUS_PER_TASK": "3", "ARGS_FILE": str(tmp_path / "a")}
    subprocess.run(["bash", str(job.array_script)], cwd=tmp_path, env=env, check=True)
    args = (tmp_path / "a").read_text().splitlines()
    assert args == [
        "-m",
        "td_physics.dft",
        "run",
        "--input",
        str(job.crystals_file),
        "--output-dir",
        str(job.output_dir),
        "--index",
        "2",
        "--timeout",
        "3300",
        "--settings",
        str(settings.resolve()),
        "OMP=3 X=a b $(touch pwned2)",
    ]
    subprocess.run(["bash", str(job.merge_script)], cwd=tmp_path, env=env, check=True)
    assert (tmp_path / "a").read_text().splitlines()[:7] == [
        "-m",
        "td_physics.dft",
        "merge",
        str(job.output_dir),
        "--input",
        str(job.crystals_file),
        "--output",
    ]
    assert not list(tmp_path.rglob("pwned*"))


def test_scripts_get_the_users_umask(tmp_path):
    old = os.umask(0o027)
    try:
        job = write_dft_array_job(crystals_file(tmp_path, 1), tmp_path / "dft")
    finally:
        os.umask(old)
    assert stat.S_IMODE(job.array_script.stat().st_mode) == 0o640
    assert stat.S_IMODE(job.merge_script.stat().st_mode) == 0o640
    assert not [p for p in job.output_dir.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    ("kwargs", "rule"),
    [
        ({"n_crystals": 4}, "n_crystals must equal the 3 crystal"),
        ({"n_crystals": 0}, "n_crystals must be a whole number"),
        ({"n_crystals": True}, "n_crystals must be a whole number"),
        ({"array_parallelism": 0}, "array_parallelism must be a whole number"),
        ({"cpus_per_task": 0}, "cpus_per_task must be a whole number"),
        ({"time_per_task": "1h"}, "time_per_task must be HH:MM:SS"),
        ({"time_per_task": "00:00:20"}, "time_per_task must leave at least 1 s"),
        ({"crystal_timeout": 3600}, "crystal_timeout must be a whole number between 1 and 3599"),
        ({"crystal_timeout": 0}, "crystal_timeout must be a whole number"),
        ({"mem": "lots"}, "mem must match"),
        ({"partition": "a b"}, "partition must match"),
        ({"job_name": "x; rm -rf /"}, "job_name must match"),
        ({"extra_env": {"1BAD": "x"}}, "extra_env names must match"),
        ({"extra_env": {"A": "x\nrm -rf /"}}, "extra_env\\['A'\\] must be text without NUL or line breaks"),
        ({"extra_env": ["A=1"]}, "extra_env must be a mapping"),
        ({"indices": [3]}, "indices must be whole numbers in \\[0, n_crystals=3\\)"),
        ({"indices": []}, "indices must be a non-empty sequence"),
        ({"indices": "012"}, "indices must be a non-empty sequence"),
        ({"settings_file": "no-such-settings.json"}, "settings_file must be an existing file"),
        ({"log_dir": "logs with blanks"}, "log_dir must match"),
        ({"python": "py\nthon"}, "python must be a non-empty path without NUL or line breaks"),
    ],
)
def test_bad_arguments_name_rule_and_value(tmp_path, kwargs, rule):
    with pytest.raises(HpcValueError, match=rule):
        write_dft_array_job(crystals_file(tmp_path, 3), tmp_path / "dft", **kwargs)
    assert not (tmp_path / "dft" / "dft_array.sbatch").exists()


def test_bad_crystals_file_refused(tmp_path):
    with pytest.raises(HpcValueError, match="crystals_file must be an existing file"):
        write_dft_array_job(tmp_path / "missing.json", tmp_path / "dft")
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(HpcValueError, match="crystals_file must hold a JSON object with a 'crystals' list"):
        write_dft_array_job(tmp_path / "bad.json", tmp_path / "dft")
    (tmp_path / "empty.json").write_text('{"crystals": []}')
    with pytest.raises(HpcValueError, match="n_crystals must be a whole number between 1 and"):
        write_dft_array_job(tmp_path / "empty.json", tmp_path / "dft")
    with pytest.raises(HpcValueError, match="n_crystals must be a whole number"):
        missing_dft_results(tmp_path, 0)


def test_submit_array_then_merge_after_it(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    counter = tmp_path / "n"
    counter.write_text("100")
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(
        f'#!/bin/bash\necho "sbatch $*" >> {log}\nn=$(( $(cat {counter}) + 1 ))\necho $n > {counter}\necho "$n;cl"\n'
    )
    sbatch.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    job = write_dft_array_job(crystals_file(tmp_path, 2), tmp_path / "dft")
    assert submit_dft_verification(job, sbatch_args=["--hold"]) == ("101", "102")
    assert log.read_text().splitlines() == [
        f"sbatch --parsable --hold {job.array_script}",
        f"sbatch --parsable --hold --dependency=afterany:101 {job.merge_script}",
    ]
    no_merge = write_dft_array_job(crystals_file(tmp_path, 2), tmp_path / "dft2", merge=False)
    assert submit_dft_verification(no_merge) == ("103", None)
    with pytest.raises(HpcValueError, match="job must be the DFTArrayJob"):
        submit_dft_verification(str(job.array_script))


def test_td_hpc_does_not_import_td_physics(tmp_path):
    """The array is written and submitted without td-physics: only the job's command line needs it."""
    code = (
        "import sys, td_hpc\n"
        f"td_hpc.write_dft_array_job({str(crystals_file(tmp_path, 2))!r}, {str(tmp_path / 'dft')!r})\n"
        "assert not [m for m in sys.modules if m.startswith(('td_physics', 'gpaw'))], sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

"""submit / status / cancel against fake sbatch, scontrol and scancel on PATH (the real ones: test_slurm_real.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from td_hpc import HpcValueError, SlurmError, cancel, status, submit
from td_hpc.slurm import array_status, parse_scontrol_line


def fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    fake(bin_dir, "sbatch", f'echo "sbatch $*" >> {log}; cat > {tmp_path}/stdin.txt; echo "4242;cluster"\n')
    fake(
        bin_dir,
        "scontrol",
        f'echo "scontrol $*" >> {log}\n'
        'if [ "$4" = "99" ]; then echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1; fi\n'
        'echo "JobId=4242 JobName=td train UserId=root(0) JobState=RUNNING Reason=None Restarts=1 ExitCode=0:0"\n'
        'echo "JobId=4243 ArrayJobId=4242 ArrayTaskId=1 JobName=x JobState=PENDING Reason=Resources Restarts=0"\n',
    )
    fake(bin_dir, "scancel", f'echo "scancel $*" >> {log}\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return tmp_path, log


def test_submit_text_and_path(fake_slurm):
    tmp, log = fake_slurm
    assert submit("#!/bin/bash\necho hi\n") == "4242"
    assert (tmp / "stdin.txt").read_text() == "#!/bin/bash\necho hi\n"
    script = tmp / "job.sh"
    script.write_text("#!/bin/bash\n")
    assert submit(script, sbatch_args=["--hold"]) == "4242"
    assert log.read_text().splitlines() == ["sbatch --parsable", f"sbatch --parsable --hold {script}"]


def test_submit_bad_input(fake_slurm):
    with pytest.raises(HpcValueError, match="must be script text or an existing file"):
        submit("missing.sh")
    with pytest.raises(HpcValueError, match="must start with '#!'"):
        submit("echo hi\n")


def test_status_and_array(fake_slurm):
    st = status(4242)
    assert (st.job_id, st.state, st.restarts, st.fields["JobName"], st.finished) == (
        "4242",
        "RUNNING",
        1,
        "td train",
        False,
    )
    tasks = array_status("4242")
    assert [t.job_id for t in tasks] == ["4242", "4242_1"] and tasks[1].reason == "Resources"
    with pytest.raises(SlurmError, match="Invalid job id") as info:
        status(99)
    assert info.value.returncode == 1 and info.value.command[:3] == ("scontrol", "show", "job")


def test_cancel(fake_slurm):
    _, log = fake_slurm
    cancel("4242")
    cancel(4242, signal="USR1", batch=True)
    assert log.read_text().splitlines() == ["scancel 4242", "scancel --signal=USR1 --batch 4242"]
    with pytest.raises(HpcValueError, match="signal must be one of"):
        cancel(1, signal="USR1; rm -rf /")
    with pytest.raises(HpcValueError, match="job id must match"):
        cancel("1; rm -rf /")
    with pytest.raises(HpcValueError, match="batch=True needs a signal"):
        cancel(1, batch=True)


def test_missing_commands(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SlurmError, match="sbatch not found on PATH"):
        submit("#!/bin/bash\n")


def test_parse_values_with_blanks():
    fields = parse_scontrol_line("JobId=1 Command=/a b/run.sh WorkDir=/x y StdOut=/o")
    assert fields == {"JobId": "1", "Command": "/a b/run.sh", "WorkDir": "/x y", "StdOut": "/o"}

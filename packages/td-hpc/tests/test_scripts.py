"""Generated sbatch scripts: resources, golden file, validation, and hostile strings (hypothesis)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from td_hpc import (
    HpcValueError,
    create_distributed_training_script,
    create_labelling_array_script,
    preset_resources,
)
from td_hpc.golden import GOLDEN

GOLDEN_DIR = Path(__file__).parent / "golden"
BASH = shutil.which("bash")


def sbatch_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("#SBATCH")]


def bash_parses(text: str) -> bool:
    return subprocess.run([BASH, "-n"], input=text, text=True, capture_output=True).returncode == 0


def test_golden_production_4x4():
    """Rewrite with `python -m td_hpc.golden` after an intended change, and review the diff."""
    for name, make in GOLDEN.items():
        assert make() == (GOLDEN_DIR / name).read_text(), f"{name} changed: run python -m td_hpc.golden"


def test_user_guide_call_resources():
    text = create_distributed_training_script(
        num_nodes=4,
        gpus_per_node=4,
        training_script="examples/training_example.py",
        config_file="training_config.json",
        partition="gpu",
        account="matsci",
        output_dir="logs",
    )
    lines = sbatch_lines(text)
    for expected in (
        "#SBATCH --nodes=4",
        "#SBATCH --gres=gpu:h100:4",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --mem=256G",
        "#SBATCH --time=72:00:00",
        "#SBATCH --partition=gpu",
        "#SBATCH --account=matsci",
        "#SBATCH --output=logs/%x-%j.out",
        "#SBATCH --error=logs/%x-%j.err",
        "#SBATCH --signal=B:USR1@300",
        "#SBATCH --requeue",
    ):
        assert expected in lines
    assert 'scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1' in text
    assert '--num_processes "$((SLURM_NNODES * 4))"' in text
    assert '--machine_rank "$SLURM_NODEID"' in text
    assert "--resume-from latest" in text
    # several nodes meet in c10d, one node statically; the port comes from the job id (jobs sharing a node)
    assert "RDZV_BACKEND=c10d\n" in text and 'if [ "$SLURM_NNODES" -eq 1 ]; then RDZV_BACKEND=static; fi' in text
    assert '--rdzv_backend "$RDZV_BACKEND"' in text and "MAIN_PORT=$((20000 + SLURM_JOB_ID % 10000))" in text
    fixed = create_distributed_training_script(4, 4, "t.py", "c.json", main_process_port=29500)
    assert "\nMAIN_PORT=29500\n" in fixed and "SLURM_JOB_ID % 10000" not in fixed
    assert "NCCL_IB_DISABLE=0" in text
    assert 'scontrol requeue "$SLURM_JOB_ID"' in text
    assert bash_parses(text)


@pytest.mark.parametrize("name", ["development", "production", "research"])
def test_presets(name):
    res = preset_resources(name)
    lines = sbatch_lines(create_distributed_training_script.from_preset(name, "train.py", "cfg.json"))
    assert f"#SBATCH --nodes={res.num_nodes}" in lines
    assert f"#SBATCH --gres=gpu:h100:{res.gpus_per_node}" in lines
    assert f"#SBATCH --mem={res.mem}" in lines and f"#SBATCH --time={res.time}" in lines


def test_cpu_only_and_no_requeue():
    text = create_distributed_training_script(1, 2, "t.py", "c.json", cpu_only=True, requeue=False, cpus_per_task=2)
    assert not any("--gres" in line for line in sbatch_lines(text))
    assert "NCCL" not in text and "    --cpu\n" in text and "--multi_gpu" in text
    assert "#SBATCH --no-requeue" in sbatch_lines(text) and "scontrol requeue" not in text
    assert "export OMP_NUM_THREADS=1" in text
    assert bash_parses(text)


def test_single_process_has_no_multi_gpu():
    text = create_distributed_training_script(1, 1, "t.py", "c.json")
    assert "--multi_gpu" not in text and bash_parses(text)


@pytest.mark.parametrize(
    "kwargs, rule",
    [
        ({"job_name": "a b"}, "job_name must match"),
        ({"partition": "gpu;ls"}, "partition must match"),
        ({"account": "$(id)"}, "account must match"),
        ({"time": "72h"}, "time must be HH:MM:SS"),
        ({"time": "1:60:00"}, "time must be HH:MM:SS"),
        ({"mem": "256 GB"}, "mem must match"),
        ({"cpus_per_task": 0}, "cpus_per_task must be a whole number"),
        ({"output_dir": "my logs"}, "output_dir must match"),
        ({"checkpoint_dir": "a\nb"}, "checkpoint_dir must be a non-empty path"),
        ({"extra_args": "--x 1"}, "extra_args must be a sequence"),
        ({"gpu_type": "h100:2"}, "gpu_type must match"),
        ({"main_process_port": 70000}, "main_process_port must be a whole number"),
    ],
)
def test_bad_values_name_rule_and_value(kwargs, rule):
    with pytest.raises(HpcValueError, match=rule) as info:
        create_distributed_training_script(2, 4, "t.py", "c.json", **kwargs)
    assert repr(next(iter(kwargs.values()))) in str(info.value)


def test_bad_counts():
    with pytest.raises(HpcValueError, match="num_nodes must be a whole number"):
        create_distributed_training_script(0, 4, "t.py", "c.json")
    with pytest.raises(HpcValueError, match="gpus_per_node must be a whole number"):
        create_distributed_training_script(1, True, "t.py", "c.json")
    with pytest.raises(HpcValueError, match="preset must be one of"):
        preset_resources("huge")


HOSTILE = ["; rm -rf /", "$(touch /tmp/pwned)", "`id`", "a\nrm -rf /", "'", '"', "x' ; echo 'y", "${HOME}", "a b"]
METACHARS = set(";$`'\"\\\n |&<>(){}*?!#~")
hostile_text = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(alphabet=st.sampled_from(list(";$`'\"\\\n |&<>(){}*?!#~ab/.")), min_size=1, max_size=20),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bad=hostile_text)
def test_hostile_names_refused(bad):
    assume(any(c in METACHARS for c in bad))
    for field in ("job_name", "partition", "account", "time", "mem", "output_dir"):
        with pytest.raises(HpcValueError):
            create_distributed_training_script(1, 2, "t.py", "c.json", **{field: bad})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bad=hostile_text)
def test_hostile_paths_quoted_or_refused(bad):
    """A path or argument is refused, or the script equals the one made with a placeholder except that
    the placeholder became ``shlex.quote(bad)``: the raw string appears nowhere unquoted; bash parses it."""
    placeholder = "PLACEHOLDER9"
    for field in ("training_script", "config_file", "checkpoint_dir", "extra_args", "accelerate"):

        def make(value, field=field):
            kwargs = {"training_script": "t.py", "config_file": "c.json"}
            kwargs[field] = [value] if field == "extra_args" else value
            return create_distributed_training_script(1, 2, **kwargs)

        try:
            text = make(bad)
        except HpcValueError:
            assert "\n" in bad or "\r" in bad
            continue
        assert text == make(placeholder).replace(placeholder, shlex.quote(bad))
        assert bash_parses(text)


@settings(max_examples=40, deadline=None)
@given(bad=hostile_text)
def test_hostile_labelling_values(bad):
    try:
        text = create_labelling_array_script(bad, 3, bad)
    except HpcValueError:
        assert "\n" in bad or "\r" in bad
    else:
        assert bash_parses(text) and shlex.quote(bad) in text
    with pytest.raises(HpcValueError):
        create_labelling_array_script("s.h5", 3, "out", job_name=bad + "$")
    with pytest.raises(HpcValueError):
        create_labelling_array_script("s.h5", 3, "out", log_dir=bad + " ")


def test_hostile_string_does_not_execute(tmp_path):
    """Run the quoted part through bash for real: the payload must not run."""
    marker = tmp_path / "pwned"
    payload = f"$(touch {marker})`touch {marker}`; touch {marker}"
    text = create_labelling_array_script(payload, 2, payload, python="echo")
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    subprocess.run([BASH, "-c", body], env={"SLURM_ARRAY_TASK_ID": "0", "PATH": "/usr/bin:/bin"}, capture_output=True)
    assert not marker.exists()


def test_labelling_script():
    text = create_labelling_array_script("data/crystals.h5", 3, "shards", max_concurrent=2, partition="cpu")
    lines = sbatch_lines(text)
    assert "#SBATCH --array=0-2%2" in lines and "#SBATCH --partition=cpu" in lines
    assert '--shard "$SLURM_ARRAY_TASK_ID"' in text and "--num-shards 3" in text
    assert bash_parses(text)
    with pytest.raises(HpcValueError, match="num_shards must be a whole number"):
        create_labelling_array_script("s.h5", 0, "out")


def test_paths_beginning_with_dash_are_not_options(tmp_path):
    """Run the training script through bash with stub srun/scontrol and a stub launcher named ``-acc``:
    a run folder ``-rf run`` is created (not read as mkdir's options), and the launcher (exec'd, not an
    option of exec) receives ``./-t.py --config ./-c.json --output-dir './-rf run'``."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    (stubs / "scontrol").write_text('#!/bin/bash\n[ "$1 $2" = "show hostnames" ] && echo node0\n')
    (stubs / "srun").write_text('#!/bin/bash\nwhile [[ "$1" == --* ]]; do shift; done\nexec "$@"\n')
    launcher = tmp_path / "-acc"
    launcher.write_text('#!/bin/bash\nprintf "%s\\n" "$@" > launched.txt\n')
    for path in (stubs / "scontrol", stubs / "srun", launcher):
        path.chmod(0o755)
    text = create_distributed_training_script(
        1, 2, "-t.py", "-c.json", checkpoint_dir="-rf run", accelerate="-acc", cpu_only=True, extra_args=["--x"]
    )
    env = {
        "PATH": f"{stubs}:/usr/bin:/bin",
        "SLURM_JOB_NODELIST": "node0",
        "SLURM_NNODES": "1",
        "SLURM_NODEID": "0",
        "SLURM_JOB_ID": "7",
        "SLURM_JOB_NAME": "td-train",
    }
    proc = subprocess.run([BASH, "-c", text], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "-rf run").is_dir()
    args = (tmp_path / "launched.txt").read_text().splitlines()
    assert args[:3] == ["launch", "--machine_rank", "0"]
    i = args.index("./-t.py")
    assert args[i + 1 : i + 5] == ["--config", "./-c.json", "--output-dir", "./-rf run"]
    assert args[-1] == "--x"

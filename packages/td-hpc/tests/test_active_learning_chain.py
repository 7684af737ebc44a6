"""One round of active learning as a chain of sbatch scripts: what they say, that bash reads them, that hostile
arguments reach the command unchanged, and that ``submit_chain`` links them with afterok (fake sbatch on PATH;
the real one-node SLURM runs a whole round in the project's tests/test_active_learning_slurm.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from td_hpc import HpcValueError, JobChain, submit_chain, write_round_chain
from td_hpc.chain import command_script

HOSTILE = ["$(touch pwned)", "a'b", 'c"d', "; rm -rf /", "`id`", "x y", "-*"]


def _chain(tmp_path: Path, **kw) -> JobChain:
    args = dict(
        workdir=tmp_path / "project dir",
        generate_command=["kedro", "run", "--pipelines=active_learning", "--params", "a.rounds=1,a.stop_after=relax"],
        label_store=tmp_path / "work" / "round_01" / "to_label.h5",
        label_dir=tmp_path / "work" / "round_01" / "label_shards",
        num_shards=3,
        train_command=["kedro", "run", "--pipelines=active_learning", "--params", "a.rounds=1"],
        label_options={"gap_mesh": 4, "metal_gap": 0.001},
        python="/opt/venv/bin/python",
        job_name="td-al",
        time="00:20:00",
        label_time="00:10:00",
        mem="2G",
        cpus_per_task=1,
    )
    return write_round_chain(tmp_path / "chain", **{**args, **kw})


def _sbatch_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.startswith("#SBATCH")]


def test_the_three_scripts_say_what_each_job_runs(tmp_path):
    chain = _chain(tmp_path)
    generate, label, train = chain.scripts
    assert [p.name for p in chain.scripts] == ["generate.sbatch", "label_array.sbatch", "train.sbatch"]
    assert chain.log_dir == (tmp_path / "chain" / "logs").resolve() and chain.log_dir.is_dir()
    logs = str(chain.log_dir)
    assert _sbatch_lines(generate) == [
        "#SBATCH --job-name=td-al-generate", "#SBATCH --ntasks=1", "#SBATCH --cpus-per-task=1", "#SBATCH --mem=2G",
        "#SBATCH --time=00:20:00", f"#SBATCH --output={logs}/%x-%j.out", f"#SBATCH --error={logs}/%x-%j.err",
    ]  # fmt: skip
    assert _sbatch_lines(train)[0] == "#SBATCH --job-name=td-al-train"
    text = generate.read_text()
    assert f"cd '{(tmp_path / 'project dir').resolve()}'\n" in text
    assert text.endswith("exec kedro run --pipelines=active_learning --params a.rounds=1,a.stop_after=relax\n")
    assert train.read_text().endswith("exec kedro run --pipelines=active_learning --params a.rounds=1\n")
    array = label.read_text()
    assert "#SBATCH --array=0-2" in array and "#SBATCH --job-name=td-al-label" in array
    assert "#SBATCH --time=00:10:00" in array and f"#SBATCH --output={logs}/%x-%A_%a.out" in array
    assert f"--store {(tmp_path / 'work' / 'round_01' / 'to_label.h5').resolve()}" in array
    assert f"--out {(tmp_path / 'work' / 'round_01' / 'label_shards').resolve()}" in array
    assert "/opt/venv/bin/python -m td_data.label_shard" in array and "--num-shards 3" in array
    assert """--options '{"gap_mesh": 4, "metal_gap": 0.001}'""" in array
    for script in chain.scripts:
        assert script.read_text().startswith("#!/bin/bash\n")
        syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
        assert syntax.returncode == 0, syntax.stderr


def test_hostile_arguments_reach_the_command_unchanged(tmp_path):
    workdir = tmp_path / "it's here"
    workdir.mkdir()
    command = [sys.executable, "-c", "import json, sys; print(json.dumps(sys.argv[1:]))", *HOSTILE]
    script = tmp_path / "job.sbatch"
    script.write_text(command_script(command, workdir, tmp_path, extra_env={"TD_NOTE": "$(touch pwned2)"}))
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == HOSTILE
    assert not list(tmp_path.rglob("pwned*"))


def test_submit_chain_links_each_job_to_the_one_before_with_afterok(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "sbatch.log"
    counter = tmp_path / "next_id"
    counter.write_text("100")
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(f'#!/bin/bash\necho "$*" >> {log}\nn=$(cat {counter}); echo $((n + 1)) > {counter}; '
                      f'echo "$n;cluster"\n')  # fmt: skip
    sbatch.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    chain = _chain(tmp_path)
    assert submit_chain(chain, sbatch_args=["--partition=debug"]) == ["100", "101", "102"]
    generate, label, train = (str(p) for p in chain.scripts)
    assert log.read_text().splitlines() == [
        f"--parsable --partition=debug {generate}",
        f"--parsable --partition=debug --dependency=afterok:100 {label}",
        f"--parsable --partition=debug --dependency=afterok:101 {train}",
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"generate_command": "kedro run"}, "generate_command must be a non-empty list of arguments"),
        ({"train_command": []}, "train_command must be a non-empty list of arguments"),
        ({"train_command": ["kedro", "run\nrm -rf /"]}, "train_command item must be text without NUL or line breaks"),
        ({"num_shards": 0}, "num_shards"),
        ({"job_name": "td al"}, "job_name"),
        ({"time": "forever"}, "time"),
    ],
)
def test_bad_input_is_refused_naming_the_rule(tmp_path, change, message):
    with pytest.raises(HpcValueError, match=message):
        _chain(tmp_path, **change)
    assert not (tmp_path / "chain").exists()


def test_submit_chain_takes_only_a_chain():
    with pytest.raises(HpcValueError, match="chain must be the JobChain"):
        submit_chain(["generate.sbatch"])

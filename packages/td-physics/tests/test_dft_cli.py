"""``python -m td_physics.dft run / merge`` as a user runs it: real GPAW on Si (2 atoms, the coarsest
settings), resume, a corrupt result redone, bad records answered with their own result, the time limit,
merge with a missing index; and the crystals file writer."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from td_physics.dft.cli import (
    main,
    merge_results,
    read_crystals_file,
    result_file_name,
    run_crystals,
    write_crystals_file,
)
from td_physics.exceptions import FileFormatError, TDPhysicsError

FCC = 5.431 / 2 * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
SI = {"id": "si", "lattice": FCC, "frac_coords": [[0, 0, 0], [0.25, 0.25, 0.25]], "atomic_numbers": [14, 14]}
# the coarsest settings the core accepts: the 2x2x2 mesh (the 8 TRIMs), no confirmation on a denser one
TINY_SETTINGS = {"min_kpts": 2, "max_kpts": 2, "confirm": False}


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "SLURM_ARRAY_TASK_ID"}  # not a task of a real array
    full_env.update({"OMP_NUM_THREADS": "1", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "td_physics.dft", *args], capture_output=True, text=True, env=full_env, cwd=cwd
    )


def write_batch(folder: Path) -> tuple[Path, Path]:
    """Si, a record with malformed arrays (3 coordinates for 2 atoms' numbers) and one without a lattice."""
    crystals = write_crystals_file(folder / "crystals.json", [SI])
    data = json.loads(crystals.read_text())
    data["crystals"].append(
        {"id": "bad-arrays", "lattice": FCC.tolist(), "frac_coords": [[0, 0]], "atomic_numbers": [14]}
    )
    data["crystals"].append({"id": "no-lattice", "frac_coords": [[0, 0, 0]], "atomic_numbers": [14]})
    crystals.write_text(json.dumps(data))
    settings = folder / "settings.json"
    settings.write_text(json.dumps(TINY_SETTINGS))
    return crystals, settings


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """One real run over the batch (GPAW once, on Si), shared by the tests that read its results."""
    pytest.importorskip("gpaw")  # a guard for stand-alone installs; this repository's CI has the extra
    folder = tmp_path_factory.mktemp("dft-batch")
    crystals, settings = write_batch(folder)
    proc = cli("run", "--input", str(crystals), "--output-dir", str(folder / "out"), "--settings", str(settings))
    return folder, crystals, settings, proc


def load(folder: Path, index: int) -> dict:
    return json.loads((folder / "out" / result_file_name(index)).read_text())


def test_batch_answers_every_crystal_and_si_is_trivial(batch):
    folder, _, _, proc = batch
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (folder / "out").glob("result-*.json")) == [result_file_name(i) for i in range(3)]
    si = load(folder, 0)
    assert (si["index"], si["id"], si["converged"]) == (0, "si", True), si["reason"]
    assert si["topo_class"] == "trivial" and list(si["z2_indices"]) == [0, 0, 0, 0]
    assert si["method"] == "parity" and si["band_gap_indirect"] > 0 and si["formula"] == "Si2"
    assert si["kpts"] == [2, 2, 2] and si["spin_orbit"] is True and si["settings"]["confirm"] is False
    bad = load(folder, 1)
    assert (bad["id"], bad["converged"]) == ("bad-arrays", False) and "frac_coords must be (N, 3)" in bad["reason"]
    no_lattice = load(folder, 2)
    assert (no_lattice["id"], no_lattice["converged"]) == ("no-lattice", False)
    assert "lacks ['lattice']" in no_lattice["reason"]


def test_second_run_does_no_work(batch):
    folder, crystals, settings, _ = batch
    before = {p.name: p.stat().st_mtime_ns for p in (folder / "out").iterdir()}
    proc = cli("run", "--input", str(crystals), "--output-dir", str(folder / "out"), "--settings", str(settings))
    assert proc.returncode == 0, proc.stderr
    assert "0 computed (0 not converged), 3 skipped" in proc.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (folder / "out").iterdir()} == before


def test_corrupt_result_is_redone_and_the_others_kept(batch, tmp_path):
    folder, crystals, settings, _ = batch
    out = tmp_path / "out"
    shutil.copytree(folder / "out", out)
    si_mtime = (out / result_file_name(0)).stat().st_mtime_ns
    (out / result_file_name(1)).write_text('{"index": 1, "id": "bad-ar')  # a write cut short
    (out / result_file_name(2)).write_text(json.dumps({"index": 2, "id": "someone-else", "converged": True}))
    proc = cli("run", "--input", str(crystals), "--output-dir", str(out), "--settings", str(settings))
    assert proc.returncode == 0, proc.stderr
    assert "redoing the corrupt" in proc.stderr and "someone-else" in proc.stderr
    assert "2 computed (2 not converged), 1 skipped" in proc.stderr
    assert json.loads((out / result_file_name(1)).read_text())["id"] == "bad-arrays"
    assert json.loads((out / result_file_name(2)).read_text())["id"] == "no-lattice"
    assert (out / result_file_name(0)).stat().st_mtime_ns == si_mtime


def test_other_settings_or_retry_failed_redo_a_result(batch, tmp_path):
    folder, crystals, settings, _ = batch
    out = tmp_path / "out"
    shutil.copytree(folder / "out", out)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**TINY_SETTINGS, "min_direct_gap": 0.02}))
    proc = cli("run", "--input", str(crystals), "--output-dir", str(out), "--settings", str(other), "--index", "1")
    assert proc.returncode == 0 and "computed with other settings" in proc.stderr, proc.stderr
    assert load(tmp_path, 1)["settings"]["min_direct_gap"] == 0.02
    proc = cli("run", "--input", str(crystals), "--output-dir", str(out), "--settings", str(other), "--index", "1")
    assert "0 computed (0 not converged), 1 skipped" in proc.stderr
    proc = cli(
        "run", "--input", str(crystals), "--output-dir", str(out), "--settings", str(other), "--index", "1",
        "--retry-failed",
    )  # fmt: skip
    assert "1 computed (1 not converged), 0 skipped" in proc.stderr, proc.stderr


def test_workers_compute_crystals_at_once_with_the_same_answers(batch, tmp_path):
    folder, crystals, settings, _ = batch
    out = tmp_path / "out"
    proc = cli(
        "run", "--input", str(crystals), "--output-dir", str(out), "--settings", str(settings), "--workers", "2"
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "3 computed (2 not converged), 0 skipped" in proc.stderr
    for i in range(3):
        alone, parallel = load(folder, i), json.loads((out / result_file_name(i)).read_text())
        for key in ("id", "converged", "reason", "topo_class", "z2_indices", "kpts"):
            assert parallel[key] == alone[key], key
    assert load(tmp_path, 0)["band_gap_direct"] == pytest.approx(load(folder, 0)["band_gap_direct"], abs=1e-6)
    proc = cli("run", "--input", str(crystals), "--output-dir", str(out), "--workers", "0")
    assert proc.returncode == 2 and "workers must be a whole number >= 1, got 0" in proc.stderr


def test_slurm_array_task_id_picks_the_crystal(batch, tmp_path):
    _, crystals, settings, _ = batch
    out = tmp_path / "out"
    proc = cli(
        "run", "--input", str(crystals), "--output-dir", str(out), "--settings", str(settings),
        env={"SLURM_ARRAY_TASK_ID": "2"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in out.iterdir()] == [result_file_name(2)]
    proc = cli("run", "--input", str(crystals), "--output-dir", str(out), env={"SLURM_ARRAY_TASK_ID": "3"})
    assert proc.returncode == 2 and "index must be a whole number in [0, 3)" in proc.stderr and "got 3" in proc.stderr


def test_time_limit_stops_the_crystal(batch, tmp_path):
    _, crystals, settings, _ = batch
    out = tmp_path / "out"
    proc = cli(
        "run", "--input", str(crystals), "--output-dir", str(out), "--settings", str(settings), "--index", "0",
        "--timeout", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / result_file_name(0)).read_text())
    assert (result["id"], result["converged"], result["reason"]) == ("si", False, "over the time limit of 1 s")
    assert 1.0 <= result["wall_time"]


def test_killed_calculation_gets_a_result_saying_so(batch, tmp_path):
    """The child process of a crystal killed from outside (as the kernel's OOM killer does): the crystal
    gets a result with the exit code, and the command still exits 0."""
    _, crystals, settings, _ = batch
    out = tmp_path / "out"
    args = ["--input", str(crystals), "--output-dir", str(out), "--settings", str(settings), "--index", "0"]
    env = {k: v for k, v in os.environ.items() if k != "SLURM_ARRAY_TASK_ID"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "td_physics.dft", "run", *args, "--timeout", "600"],
        env={**env, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    if not children.exists():
        proc.kill()
        pytest.skip("needs /proc/PID/task/PID/children (Linux) to find the child process")

    def calculation_child() -> str:  # not multiprocessing's resource tracker, the other child
        for pid in children.read_text().split():
            try:
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
            except FileNotFoundError:
                continue
        return ""

    child = ""
    for _ in range(600):
        child = calculation_child()
        if child or proc.poll() is not None:
            break
        time.sleep(0.1)
    assert child, "the crystal's child process never started"
    os.kill(int(child), signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    result = json.loads((out / result_file_name(0)).read_text())
    assert result["converged"] is False and result["reason"].startswith("the calculation process died (exit code -9)")


def test_merge_lists_missing_and_exits_1(batch, tmp_path):
    folder, crystals, _, _ = batch
    out = tmp_path / "out"
    shutil.copytree(folder / "out", out)
    merged = tmp_path / "results.json"
    proc = cli("merge", str(out), "--input", str(crystals), "--output", str(merged))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(merged.read_text())
    assert [r["id"] for r in data["results"]] == ["si", "bad-arrays", "no-lattice"]
    assert (data["missing"], data["n_crystals"], data["n_converged"]) == ([], 3, 1)
    (out / result_file_name(1)).unlink()
    proc = cli("merge", str(out), "--input", str(crystals), "--output", str(merged))
    assert proc.returncode == 1 and "missing results for indices [1]" in proc.stderr
    data = json.loads(merged.read_text())
    assert data["missing"] == [1] and data["missing_ids"] == ["bad-arrays"]
    assert [r["id"] for r in data["results"]] == ["si", "no-lattice"]
    proc = cli("merge", str(out), "--input", str(crystals), "--output", str(merged), "--allow-missing")
    assert proc.returncode == 0, proc.stderr
    assert main(["merge", str(tmp_path / "never-ran"), "--input", str(crystals), "--output", str(merged)]) == 1
    assert json.loads(merged.read_text())["missing"] == [0, 1, 2]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_merge_counts_a_result_of_another_crystal_as_missing(batch, tmp_path):
    folder, crystals, _, _ = batch
    out = tmp_path / "out"
    shutil.copytree(folder / "out", out)
    swapped = {**load(folder, 2), "id": "si"}
    (out / result_file_name(2)).write_text(json.dumps(swapped))
    merged = merge_results(read_crystals_file(crystals), out)
    assert merged["missing"] == [2] and "it is the result of crystal 'si'" in merged["problems"]["2"]


def test_unusable_input_exits_2(tmp_path, capsys):
    out = str(tmp_path / "out")
    (tmp_path / "notjson.json").write_text("{")
    (tmp_path / "nolist.json").write_text('{"structures": []}')
    (tmp_path / "dup.json").write_text('{"crystals": [{"id": "a"}, {"id": "a"}]}')
    (tmp_path / "noid.json").write_text('{"crystals": [{"lattice": []}]}')
    for name, rule in [
        ("notjson.json", "must be readable JSON"),
        ("nolist.json", "with a 'crystals' list"),
        ("dup.json", "crystal ids must be unique, got 'a'"),
        ("noid.json", "every crystal needs a non-empty text id, got None"),
        ("missing.json", "the crystals file must exist"),
    ]:
        proc = cli("run", "--input", str(tmp_path / name), "--output-dir", out)
        assert proc.returncode == 2 and rule in proc.stderr, (name, proc.stderr)
        assert main(["merge", out, "--input", str(tmp_path / name), "--output", str(tmp_path / "m.json")]) == 2
        assert rule in capsys.readouterr().err
    good = write_crystals_file(tmp_path / "good.json", [SI])
    (tmp_path / "s.json").write_text("[1]")
    proc = cli("run", "--input", str(good), "--output-dir", out, "--settings", str(tmp_path / "s.json"))
    assert proc.returncode == 2 and "the settings file must hold a JSON object" in proc.stderr
    proc = cli("run", "--input", str(good), "--output-dir", out, "--timeout", "-1", "--index", "0")
    assert proc.returncode == 2 and "timeout must be a finite number of seconds > 0, got -1.0" in proc.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_missing_dft_extra_writes_nothing_and_exits_3(tmp_path, monkeypatch, capsys):
    """Without GPAW no crystal gets a result (a later run with the extra must compute them all)."""
    import td_physics.dft.core

    monkeypatch.setattr(td_physics.dft.core, "dft_available", lambda: (False, "No module named 'gpaw'"))
    crystals = write_crystals_file(tmp_path / "c.json", [SI])
    assert main(["run", "--input", str(crystals), "--output-dir", str(tmp_path / "out")]) == 3
    err = capsys.readouterr().err
    assert "pip install 'td-physics[dft]'" in err and "No module named 'gpaw'" in err
    assert list((tmp_path / "out").iterdir()) == []


def test_crystals_file_round_trip_and_refusals(tmp_path):
    old = os.umask(0o027)
    try:
        path = write_crystals_file(
            tmp_path / "c.json", [SI, {**SI, "id": "fe", "atomic_numbers": np.array([26, 26]), "magmoms": [2.0, 2.0]}]
        )
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    crystals = read_crystals_file(path)
    assert [c["id"] for c in crystals] == ["si", "fe"] and crystals[1]["magmoms"] == [2.0, 2.0]
    assert np.allclose(crystals[0]["lattice"], FCC)
    bad = [
        ([SI, SI], "crystal ids must be unique, got 'si' twice"),
        ([{**SI, "id": ""}], "every crystal needs a non-empty text id"),
        ([{**SI, "frac_coords": [[0, 0, 0]]}], "atomic_numbers must be N = 1 whole numbers"),
        ([{**SI, "lattice": np.eye(2)}], "lattice must have shape \\(3, 3\\)"),
        ([{**SI, "magmoms": [1.0]}], "magmoms must have shape \\(N,\\) = \\(2,\\)"),
        ([{**SI, "spin": 1}], "a crystal may only have the keys"),
        ([{k: v for k, v in SI.items() if k != "lattice"}], "lacks \\['lattice'\\]"),
        ([{**SI, "lattice": [[float("nan")] * 3] * 3}], "must be finite numbers"),
    ]
    for crystals, rule in bad:
        with pytest.raises(FileFormatError, match=rule):
            write_crystals_file(tmp_path / "bad.json", crystals)
    assert not (tmp_path / "bad.json").exists()


def test_run_crystals_refuses_bad_arguments(tmp_path):
    with pytest.raises(TDPhysicsError, match="index must be a whole number in \\[0, 1\\)"):
        run_crystals([SI], tmp_path, indices=[1])
    with pytest.raises(TDPhysicsError, match="timeout must be a finite number of seconds > 0, got 0"):
        run_crystals([SI], tmp_path, timeout=0)
    assert isinstance(TDPhysicsError("x"), ValueError)


def test_module_doctests():
    import doctest

    import td_physics.dft.cli

    result = doctest.testmod(td_physics.dft.cli, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


def test_a_result_is_reused_under_another_min_margin_only_where_no_step_depends_on_it():
    from td_physics.dft import DFTSettings
    from td_physics.dft.cli import settings_change_problem

    old = {**DFTSettings(min_margin=0.05).to_dict(), **{}}
    new = DFTSettings().to_dict()  # min_margin 0.3

    def result(converged, *meshes):
        return {"settings": old, "converged": converged, "details": {"meshes": list(meshes)}}

    wilson = lambda margin: {"plane_z2": {"k1=0": 0}, "wilson_min_margin": margin}  # noqa: E731
    assert settings_change_problem(result(True), old) is None  # the same settings
    assert settings_change_problem(result(True, {"parity_deltas": [1]}), new) is None  # parities never used it
    assert settings_change_problem(result(True, wilson(0.41), wilson(0.5)), new) is None  # no step near either
    # a step with margin 0.2 was accepted under 0.05 and would be refined under 0.3: another calculation
    assert "other settings (min_margin)" in settings_change_problem(result(True, wilson(0.41), wilson(0.2)), new)
    # a result stopped before it recorded anything shows nothing either way
    assert "other settings (min_margin)" in settings_change_problem(result(False), new)
    # any other setting changes the calculation
    assert "n_pump" in settings_change_problem(result(True), {**old, "n_pump": 5})
    assert settings_change_problem(result(True), {**new, "n_pump": 5}).endswith("(min_margin, n_pump)")
    assert settings_change_problem({"converged": True}, new) == "it has no settings"

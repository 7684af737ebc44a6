"""dvc.yaml as a user meets it: in a git clone, `make repro` runs every stage, a second run does nothing, and a
change in conf/local (parameters or catalog) reruns exactly the stages it affects.

The clone is of a commit made, in a temporary repository, from the working tree as it is (tracked files and
untracked files git does not ignore), so uncommitted edits are tested too. Tiny parameters go where a user
puts theirs: the clone's conf/local. The fast tests check dvc.yaml against the code: every stage depends on
the modules and libraries its pipeline imports (the import graph), reads the parameter blocks and catalog
entries its pipeline uses, and tracks the paths the catalog gives."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DVC = BIN / "dvc"
STAGES = ("config", "ingest", "label", "split", "train", "generate", "relax", "evaluate", "report", "active_learning")
CONFIG = "data/00_config"

TINY = {
    "data_config": {"source": "synthetic", "path": None, "n_samples": 30, "seed": 0, "max_atoms": 12,
                    "elements": "labeller", "fraction_2d": 0.1, "trusted": False},
    "label_options": {"max_records": 4, "max_atoms": 4, "workers": 1, "spin_orbit": True, "gap_mesh": 4,
                      "metal_gap": 0.001},
    "model_config": {"num_species": 100, "hidden_dim": 16, "num_topo_classes": 4, "num_layers": 1, "num_heads": 2,
                     "max_atoms": 20, "num_steps": 20},
    "training_config": {"batch_size": 8, "learning_rate": 0.001, "max_epochs": 1, "warmup_epochs": 0,
                        "checkpoint_every": 1, "keep_checkpoints": 1, "seed": 0},
    "generate_options": {"n_candidates": 4, "steps": 5, "seed": 0},
    "evaluate_options": {"coverage_dataset": "mp_20", "max_metric_candidates": 3, "max_relabel": 2,
                         "max_relabel_atoms": 4},
    "relax_options": {"enabled": True, "fmax": 0.1, "max_steps": 30, "relax_cell": True, "batch_size": 8,
                      "max_atoms": 4, "max_candidates": 3},
    "verify_options": {"enabled": False, "top_n": 1, "max_atoms": 4, "spin_orbit": True,
                       "timeout_per_crystal": 60, "settings": {}},
    "active_learning_options": {"rounds": 1, "n_candidates": 4, "sampling_steps": 5, "n_add": 2,
                                "fine_tune_epochs": 1},
}  # fmt: skip


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.org",
           "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.org"}  # fmt: skip
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout


def _clone(tmp_path: Path) -> Path:
    """A git clone of a commit of the working tree as it is (in a temporary repository; ours is not touched)."""
    source = tmp_path / "source"
    files = _git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for name in filter(None, files):
        path = ROOT / name
        if path.is_file() and not path.is_symlink():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, source / name)
    _git(source, "init", "-q", "-b", "main")
    _git(source, "add", "-A")
    _git(source, "commit", "-q", "-m", "the working tree")
    _git(tmp_path, "clone", "-q", str(source), "clone")
    return tmp_path / "clone"


def _repro(clone: Path) -> subprocess.CompletedProcess:
    """`make repro` with this interpreter's environment as the clone's .venv (its install step is not remade)."""
    venv = BIN.parent
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    env.pop("KEDRO_ENV", None)
    return subprocess.run(
        ["make", "repro", f"VENV={venv}", "-o", f"{venv}/.installed"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def _ok(done: subprocess.CompletedProcess) -> str:
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    return out


def _ran(out: str) -> set[str]:
    return set(re.findall(r"Running stage '(\w+)'", out))


def _unchanged(out: str) -> set[str]:
    return set(re.findall(r"Stage '(\w+)' didn't change", out))


def _write(path: Path, data: dict) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


@pytest.mark.slow
@pytest.mark.skipif(not DVC.exists() or not shutil.which("make"), reason="needs dvc (requirements-pipelines) and make")
def test_make_repro_in_a_clone_runs_all_then_nothing_then_what_a_conf_local_change_affects(tmp_path):
    clone = _clone(tmp_path)
    ignored = subprocess.run(["git", "check-ignore", "-q", "dvc.lock"], cwd=clone, check=False)
    assert ignored.returncode == 1, "dvc.lock is git-ignored: DVC refuses to run"
    _write(clone / "conf" / "local" / "parameters_tiny.yml", TINY)

    first = _ok(_repro(clone))
    assert _ran(first) == set(STAGES), first[-3000:]
    assert (clone / "data" / "08_reporting" / "report.md").is_file()
    status = _git(clone, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert set(status) <= {" M dvc.lock", "?? dvc.lock"} and status, status  # the user commits dvc.lock next
    lock = yaml.safe_load((clone / "dvc.lock").read_text(encoding="utf-8"))
    assert set(lock["stages"]) == set(STAGES)
    assert lock["stages"]["train"]["params"][f"{CONFIG}/parameters.yml"]["training_config"]["max_epochs"] == 1

    second = _ok(_repro(clone))  # the config stage always runs (seconds): nothing else does
    assert _ran(second) == {"config"} and _unchanged(second) == set(STAGES) - {"config"}, second[-3000:]

    # conf/local: more epochs and a block no pipeline reads rerun train and what follows it
    _write(clone / "conf" / "local" / "parameters_tiny.yml",
           {**TINY, "training_config": {**TINY["training_config"], "max_epochs": 2}, "notes": {"a": 1}})  # fmt: skip
    third = _ok(_repro(clone))
    after_train = {"train", "generate", "relax", "evaluate", "report", "active_learning"}
    assert _ran(third) == {"config", *after_train}, third[-3000:]
    summary = yaml.safe_load((clone / "data" / "06_models" / "training_summary.json").read_text(encoding="utf-8"))
    assert summary["epochs_completed"] == 2 and summary["config"]["training_config"]["max_epochs"] == 2

    # conf/local/catalog.yml: a figure's options rerun the report alone
    catalog = yaml.safe_load((clone / "conf" / "base" / "catalog.yml").read_text(encoding="utf-8"))
    plot = {**catalog["training_curves_plot"], "save_args": {"dpi": 60}}
    _write(clone / "conf" / "local" / "catalog.yml", {"training_curves_plot": plot})
    fourth = _ok(_repro(clone))
    assert _ran(fourth) == {"config", "report"}, fourth[-3000:]

    # ... and a catalog that moves a tracked dataset is refused, naming it, before any pipeline runs
    _write(clone / "conf" / "local" / "catalog.yml", {"model": {**catalog["model"], "filepath": "elsewhere/model.pt"}})
    fifth = _repro(clone)
    out = fifth.stdout + fifth.stderr
    assert fifth.returncode != 0 and _ran(out) == {"config"}, out[-3000:]
    assert "CatalogPathError" in out and "writes 'model' to 'elsewhere/model.pt'" in out, out[-3000:]


# ------------------------------------------------------------------------------ dvc.yaml against the code


def _dvc_yaml() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))


def _paths(entries) -> set[str]:
    return {e if isinstance(e, str) else next(iter(e)) for e in entries or ()}


def test_dvc_lock_is_committed_not_ignored_and_analytics_are_off():
    ignored = subprocess.run(["git", "check-ignore", "-q", "dvc.lock"], cwd=ROOT, check=False)
    assert ignored.returncode == 1, "dvc.lock is git-ignored: `dvc repro` refuses to run in a clone"
    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", "dvc.lock"], cwd=ROOT, capture_output=True)
    assert tracked.returncode == 0, "dvc.lock is not committed"
    assert re.search(r"^\s*analytics\s*=\s*false\s*$", (ROOT / ".dvc" / "config").read_text(), re.M)


def test_every_stage_depends_on_the_code_data_parameters_and_catalog_entries_its_pipeline_uses():
    from tests._dvc_graph import expected_stages

    stages = _dvc_yaml()["stages"]
    expected = expected_stages()
    assert set(stages) == {"config", *expected}
    for name, want in expected.items():
        spec = stages[name]
        assert spec["cmd"] == f"kedro run --pipelines={name}"  # --pipeline is deprecated in Kedro 1.7
        assert _paths(spec["deps"]) == want["code"] | want["inputs"], name
        outs = _paths(spec.get("outs")) | _paths(spec.get("metrics")) | _paths(spec.get("plots"))
        assert outs == want["outputs"], name
        params = {file: set(keys) for entry in spec["params"] for file, keys in entry.items()}
        expected_params = {f"{CONFIG}/parameters.yml": want["parameters"], f"{CONFIG}/catalog.yml": want["datasets"]}
        if want["path_inputs"]:
            expected_params[f"{CONFIG}/inputs.yml"] = want["path_inputs"]
        assert params == expected_params, name
        assert not {"conf", "conf/base", "conf/local"} & _paths(spec["deps"]), "conf is read through the config stage"
    config = stages["config"]
    assert config["cmd"] == "python -m pipelines.resolved_config"
    assert {"conf", "pipelines"} <= _paths(config["deps"])
    assert config["always_changed"] is True  # it hashes the user's files, which no dvc.yaml can name
    assert _paths(config["outs"]) == {f"{CONFIG}/{name}.yml" for name in ("parameters", "catalog", "inputs")}
    assert all(not next(iter(o.values()))["cache"] for o in config["outs"])


def test_the_import_graph_sees_cross_pipeline_and_library_imports():
    """The graph the test above trusts finds what issue 17 found missing by hand."""
    from tests._dvc_graph import code_dependencies

    assert "packages/td-physics/src" in code_dependencies("ingest", {"CrystalStoreDataset"})
    assert "packages/td-data/src" in code_dependencies("train", {"CrystalStoreDataset", "TorchCheckpointDataset"})
    assert "packages/td-models/src" not in code_dependencies("split", {"CrystalStoreDataset"})
    assert {"pipelines/_options.py", "pipelines/exceptions.py"} <= code_dependencies("split", {"CrystalStoreDataset"})
    assert "pipelines/config.py" in code_dependencies("evaluate", {"CrystalStoreDataset"})  # imported in a function


def test_the_config_stage_refuses_a_catalog_that_moves_a_tracked_dataset():
    from kedro.pipeline import Pipeline, node

    from pipelines.exceptions import CatalogPathError
    from pipelines.pipeline_registry import register_pipelines
    from pipelines.resolved_config import check_catalog_paths

    catalog = yaml.safe_load((ROOT / "conf" / "base" / "catalog.yml").read_text(encoding="utf-8"))
    pipelines, dvc_yaml = register_pipelines(), _dvc_yaml()
    check_catalog_paths(catalog, pipelines, dvc_yaml, ROOT)  # conf/base as it is passes
    moved = {**catalog, "train_crystals": {**catalog["train_crystals"], "filepath": str(ROOT / "elsewhere/t.h5")}}
    with pytest.raises(CatalogPathError, match=r"train: reads 'train_crystals' from 'elsewhere/t.h5'") as err:
        check_catalog_paths(moved, pipelines, dvc_yaml, ROOT)
    assert "split: writes 'train_crystals' to 'elsewhere/t.h5'" in str(err.value)
    assert isinstance(err.value, ValueError)
    unknown = {"stages": {"x": {"cmd": "kedro run --pipeline=nope"}}}
    with pytest.raises(CatalogPathError, match="stage 'x' runs pipeline 'nope'"):
        check_catalog_paths(catalog, {"y": Pipeline([node(len, "a", "b")])}, unknown, ROOT)


def test_resolved_config_is_kedros_merge_of_base_and_local(tmp_path):
    """The config stage writes what Kedro merges: conf/local wins over conf/base, block by block."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "dvc.yaml"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    (project / "conf" / "local").mkdir()
    (project / "pipelines").symlink_to(ROOT / "pipelines")
    _write(project / "conf" / "local" / "parameters.yml", {"split_options": {"method": "composition"}})
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}
    env.pop("KEDRO_ENV", None)
    done = subprocess.run([sys.executable, "-m", "pipelines.resolved_config"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    params = yaml.safe_load((project / CONFIG / "parameters.yml").read_text(encoding="utf-8"))
    base = yaml.safe_load((ROOT / "conf" / "base" / "parameters_train.yml").read_text(encoding="utf-8"))
    assert params["split_options"] == {"method": "composition"}  # Kedro replaces a top-level block
    assert params["training_config"] == base["training_config"]
    catalog = yaml.safe_load((project / CONFIG / "catalog.yml").read_text(encoding="utf-8"))
    assert catalog["model"]["filepath"] == "data/06_models/model.pt"


def test_input_digests_change_with_the_users_files_not_with_their_timestamps(tmp_path):
    from pipelines.resolved_config import input_digests

    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.cif").write_text("data_a\n", encoding="utf-8")
    (folder / "sub" / "b.cif").write_text("data_b\n", encoding="utf-8")
    (folder / "sub" / "loop").symlink_to(folder, target_is_directory=True)  # walked once, not forever
    params = {"data_config": {"source": "cif_folder", "path": "mine"}, "split_options": {"seed": 0}}
    first = input_digests(params, tmp_path)
    assert set(first) == {"data_config"} and first["data_config"]["files"] == 2
    os.utime(folder / "a.cif", (1, 1))
    assert input_digests(params, tmp_path) == first
    (folder / "sub" / "b.cif").write_text("data_c\n", encoding="utf-8")
    changed = input_digests(params, tmp_path)
    assert changed["data_config"]["md5"] != first["data_config"]["md5"]
    (folder / "sub" / "b.cif").rename(folder / "b.cif")  # same bytes, another name
    assert input_digests(params, tmp_path)["data_config"]["md5"] != changed["data_config"]["md5"]
    single = input_digests({"data_config": {"path": str(folder / "a.cif")}}, tmp_path)["data_config"]
    assert single["files"] == 1 and single["md5"] == hashlib.md5(b"data_a\n").hexdigest()
    assert input_digests({"data_config": {"path": "gone"}}, tmp_path)["data_config"]["md5"] is None
    assert input_digests({"data_config": {"path": None}}, tmp_path) == {"data_config": {"path": None, "md5": None,
                                                                                     "files": 0}}  # fmt: skip

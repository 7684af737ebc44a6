"""``kedro run --pipeline=ingest`` on a user's folder, as typed, in a temporary copy of the project (issue 15):
good crystals land in ``data/01_raw/crystals.h5``; an impossible one, a broken file and a duplicate land in
``data/01_raw/quarantine.json`` with their reasons; a mistyped filter option stops the run with its name."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from td_data import CrystalRecord
from td_data.store import CrystalStore

ROOT = Path(__file__).resolve().parents[1]
KEDRO = Path(sys.executable).with_name("kedro")


def _project(tmp_path: Path, data_config: dict) -> Path:
    """The project's configuration in a temporary folder, the package linked in, ``data_config`` in conf/local."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    (project / "conf" / "local").mkdir()
    text = yaml.safe_dump({"data_config": data_config})
    (project / "conf" / "local" / "parameters_ingest.yml").write_text(text, encoding="utf-8")
    (project / "pipelines").symlink_to(ROOT / "pipelines")
    return project


def _kedro(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [str(KEDRO), *args], cwd=project, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def _base_data_config() -> dict:
    return yaml.safe_load((ROOT / "conf" / "base" / "parameters_ingest.yml").read_text(encoding="utf-8"))["data_config"]


def _write_cif(record: CrystalRecord, path: Path) -> None:
    from pymatgen.io.cif import CifWriter

    CifWriter(record.to_structure()).write_file(str(path))


def test_kedro_ingest_keeps_good_files_and_quarantines_bad_ones_with_reasons(tmp_path):
    mine = tmp_path / "my_cifs"
    mine.mkdir()
    good = {
        "CsCl": CrystalRecord(4.12 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5]], ["Cs", "Cl"]),
        "NaCl": CrystalRecord(
            [[0, 2.82, 2.82], [2.82, 0, 2.82], [2.82, 2.82, 0]], [[0, 0, 0], [0.5, 0.5, 0.5]], ["Na", "Cl"]
        ),
        "MgO": CrystalRecord(
            [[0, 2.11, 2.11], [2.11, 0, 2.11], [2.11, 2.11, 0]], [[0, 0, 0], [0.5, 0.5, 0.5]], ["Mg", "O"]
        ),
    }
    for name, rec in good.items():
        _write_cif(rec, mine / f"{name}.cif")
    crushed = CrystalRecord(4.0 * np.eye(3), [[0, 0, 0], [0.01, 0, 0]], ["Na", "Cl"])  # atoms 0.04 A apart
    _write_cif(crushed, mine / "crushed.cif")
    _write_cif(good["NaCl"].replace(lattice=1.01 * good["NaCl"].lattice), mine / "NaCl_again.cif")  # a duplicate
    config = {**_base_data_config(), "source": "cif_folder", "path": str(mine), "elements": None}
    project = _project(tmp_path, config)

    done = _kedro(project, "run", "--pipeline=ingest")
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]

    with CrystalStore.open(project / "data" / "01_raw" / "crystals.h5") as store:
        kept = {Path(r.source).stem: r for r in store.read_all()}
    assert sorted(kept) == ["CsCl", "MgO", "NaCl"]
    assert kept["CsCl"].labels["spacegroup"] == 221  # the space-group filter labels what it keeps
    quarantine = json.loads((project / "data" / "01_raw" / "quarantine.json").read_text(encoding="utf-8"))
    reasons = {Path(e["source"]).stem: e["reason"] for e in quarantine["entries"]}
    assert reasons == {
        "crushed": "atoms 0 and 1 are 0.04 A apart, below min_distance 0.5 A",
        "NaCl_again": reasons["NaCl_again"],
    }
    assert reasons["NaCl_again"].startswith("duplicate of record 'NaCl-0'")
    assert quarantine["counts"] == {"kept": 3, "quarantined": 2}


def test_kedro_ingest_refuses_an_unknown_filter_option(tmp_path):
    mine = tmp_path / "my_cifs"
    mine.mkdir()
    _write_cif(CrystalRecord(4.12 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5]], ["Cs", "Cl"]), mine / "CsCl.cif")
    config = {**_base_data_config(), "source": "cif_folder", "path": str(mine), "elements": None}
    config["quality_filters"] = {**config["quality_filters"], "min_distanse": 0.7}
    project = _project(tmp_path, config)
    done = _kedro(project, "run", "--pipeline=ingest")
    assert done.returncode != 0
    assert "data_config.quality_filters has unknown keys ['min_distanse']" in done.stdout + done.stderr
    assert not (project / "data" / "01_raw" / "crystals.h5").exists()


def test_every_quality_filter_key_is_validated():
    import pytest

    from pipelines.exceptions import ParameterError
    from pipelines.ingest.nodes import ingest_crystals

    base = {"source": "synthetic", "n_samples": 2}
    bad = {
        "min_distance": -1,
        "min_volume_per_atom": "small",
        "composition_validity": "yes",
        "max_elements": 0,
        "spacegroup": 1,
        "symprec": 0,
        "allowed_spacegroups": [0],
        "duplicates": None,
    }
    for key, value in bad.items():
        with pytest.raises(ParameterError, match=rf"data_config\.quality_filters\.{key} must be"):
            ingest_crystals({**base, "quality_filters": {key: value}})
    with pytest.raises(ParameterError, match="allowed_spacegroups needs data_config.quality_filters.spacegroup"):
        ingest_crystals({**base, "quality_filters": {"spacegroup": False, "allowed_spacegroups": [225]}})
    with pytest.raises(ParameterError, match=r"data_config.seed must be an integer, got '0'"):
        ingest_crystals({**base, "seed": "0"})

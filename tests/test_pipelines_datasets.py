"""Round trips of the project's Kedro datasets (pipelines/datasets.py), and their docstring examples."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import pipelines.datasets as datasets_module
from pipelines.datasets import CifFolderDataset, CrystalFilesDataset, CrystalStoreDataset, TorchCheckpointDataset
from td_data import CrystalRecord


def _records() -> list[CrystalRecord]:
    cubic = [[4.1, 0, 0], [0, 4.1, 0], [0, 0, 4.1]]
    return [
        CrystalRecord(
            cubic,
            [[0, 0, 0], [0.5, 0.5, 0.5]],
            ["Cs", "Cl"],
            properties={"band_gap": 5.0},
            labels={"topo_class": "trivial", "variants": {"a": "trivial"}},
            id="cscl",
        ),  # fmt: skip
        CrystalRecord([[5.64, 0, 0], [0, 5.64, 0], [0, 0, 5.64]], [[0, 0, 0], [0.5, 0.5, 0.5]], ["Na", "Cl"], id="n/a"),
    ]


@pytest.mark.parametrize(
    "name", ["CrystalFilesDataset", "CrystalStoreDataset", "CifFolderDataset", "TorchCheckpointDataset"]
)
def test_docstring_example_runs(name, tmp_path):
    finder = doctest.DocTestFinder()
    (test,) = [t for t in finder.find(datasets_module) if t.name.endswith(name)]
    test.globs["tmp_path"] = tmp_path
    result = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS).run(test)
    assert result.failed == 0 and result.attempted > 0


def test_crystal_store_round_trip(tmp_path):
    ds = CrystalStoreDataset(filepath=tmp_path / "sub" / "c.h5")
    assert not ds.exists()
    ds.save(_records())
    back = ds.load()
    assert [r.id for r in back] == ["cscl", "n/a"]
    np.testing.assert_allclose(back[0].lattice, _records()[0].lattice)
    assert back[0].labels["variants"] == {"a": "trivial"}
    ds.save(_records()[:1])  # overwrite in place
    assert len(ds.load()) == 1
    assert not [p for p in (tmp_path / "sub").iterdir() if p.name.startswith(".")]  # no temporary left


def test_cif_folder_round_trip_and_overwrite(tmp_path):
    ds = CifFolderDataset(path=tmp_path / "cifs")
    ds.save(_records())
    back = ds.load()
    assert [(r.id, r.formula) for r in back] == [("cscl", "CsCl"), ("n/a", "NaCl")]
    assert back[0].labels["topo_class"] == "trivial" and back[0].properties["band_gap"] == 5.0
    np.testing.assert_allclose(back[0].lattice, _records()[0].lattice, atol=1e-6)
    ds.save(_records()[:1])
    assert [p.name for p in sorted((tmp_path / "cifs").iterdir())] == ["cscl.cif", "index.csv", "index.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifs"]


def test_cif_folder_quarantines_broken_files_and_keeps_good_ones(tmp_path, caplog):
    folder = tmp_path / "user_cifs"
    CifFolderDataset(path=folder).save(_records())
    (folder / "broken.cif").write_text("data_x\n_cell_length_a 4\nloop_\n_atom_site_label\n", encoding="utf-8")
    (folder / "garbage.cif").write_bytes(b"\x00\x01 not a cif")
    ds = CifFolderDataset(path=folder)
    with caplog.at_level("WARNING"):
        back = ds.load()
    assert sorted(r.id for r in back) == ["cscl", "n/a"]
    assert sorted(q.source.rsplit("/", 1)[-1] for q in ds.quarantined) == ["broken.cif", "garbage.cif"]
    assert "quarantined" in caplog.text


def test_torch_checkpoint_round_trip(tmp_path):
    import torch

    from td_models import ExperimentConfig, TopologicalDiffusionModel

    config = ExperimentConfig.from_dict({"model_config": {"hidden_dim": 16, "num_layers": 1, "num_heads": 2}})
    torch.manual_seed(0)
    model = TopologicalDiffusionModel(config)
    ds = TorchCheckpointDataset(filepath=tmp_path / "m" / "model.pt")
    ds.save(model)
    back = ds.load()
    assert back.config == model.config
    for (k, a), (_, b) in zip(model.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), k
    with pytest.raises(Exception, match="TopologicalDiffusionModel"):
        ds.save({"not": "a model"})


def test_crystal_files_dataset_reads_what_data_config_names_and_never_writes(tmp_path):
    from kedro.io import DatasetError

    from pipelines.exceptions import ParameterError

    CifFolderDataset(path=tmp_path / "mine").save(_records())
    for index in ("index.json", "index.csv"):
        (tmp_path / "mine" / index).unlink()  # a user's folder has CIFs only
    config = {"source": "cif_folder", "path": str(tmp_path / "mine"), "max_atoms": 1}
    result = CrystalFilesDataset.from_data_config(config).load()
    assert result.records == [] and len(result.quarantined) == 2  # max_atoms reaches the reader
    assert all("more than max_atoms 1" in q.reason for q in result.quarantined)
    assert CrystalFilesDataset.from_data_config({**config, "source": "synthetic"}).path is None
    with pytest.raises(ParameterError, match="data_config.trusted must be true or false, got 'yes'"):
        CrystalFilesDataset.from_data_config({**config, "trusted": "yes"})
    with pytest.raises(DatasetError, match=r"load_args has unknown keys \['trust'\]"):
        CrystalFilesDataset(path=tmp_path, load_args={"trust": True})
    with pytest.raises(DatasetError, match="only reads"):
        CrystalFilesDataset(path=tmp_path / "mine").save(result)
    assert not CrystalFilesDataset(path=tmp_path / "gone").exists() and CrystalFilesDataset().exists()


def test_user_crystals_hook_takes_the_path_from_data_config_alone(tmp_path):
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.pipeline import Pipeline, node

    from pipelines.exceptions import ParameterError
    from pipelines.hooks import UserCrystalsHook

    def ingest(data_config, user_crystals):
        return len(user_crystals.records)

    pipe = Pipeline([node(ingest, ["params:data_config", "user_crystals"], "n")])
    config = MemoryDataset({"source": "cif_folder", "path": str(tmp_path), "trusted": False})
    catalog = DataCatalog({"user_crystals": CrystalFilesDataset(), "params:data_config": config})
    UserCrystalsHook().before_pipeline_run({}, pipe, catalog)
    assert catalog.get("user_crystals").path == tmp_path
    catalog = DataCatalog({"user_crystals": CrystalFilesDataset(path=tmp_path), "params:data_config": config})
    with pytest.raises(ParameterError, match="takes its path from data_config.path"):
        UserCrystalsHook().before_pipeline_run({}, pipe, catalog)

"""Kedro datasets for the project's own types: the user's crystal files, HDF5 crystal stores, CIF folders
and model checkpoints.

Each class is declared in ``conf/base/catalog.yml`` by its dotted path (``pipelines.datasets.<Class>``)
and works on local files. The user's files are only read; writes are atomic: a crash while saving leaves
the previous file (or folder) as it was. JSON metrics, tables and figures use kedro-datasets (``json.JSONDataset``,
``pandas.CSVDataset``, ``matplotlib.MatplotlibDataset``, ``text.TextDataset``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from td_data import CrystalRecord
from td_physics.files import current_umask

__all__ = ["CrystalFilesDataset", "CrystalStoreDataset", "CifFolderDataset", "TorchCheckpointDataset"]

logger = logging.getLogger(__name__)


class CrystalStoreDataset(AbstractDataset[Sequence[CrystalRecord], list[CrystalRecord]]):
    """A td-data HDF5 :class:`~td_data.store.CrystalStore` as a list of :class:`~td_data.CrystalRecord`.

    Saving writes the whole store under a temporary name and renames it over ``filepath``
    (:func:`td_data.store.write_store`), so readers never see half a file.

    Examples:
        Using the YAML API (``conf/base/catalog.yml``):

        ```yaml
        labelled_crystals:
          type: pipelines.datasets.CrystalStoreDataset
          filepath: data/02_intermediate/labelled_crystals.h5
        ```

        Using the Python API:

        >>> from td_data import CrystalRecord
        >>> from pipelines.datasets import CrystalStoreDataset
        >>> rec = CrystalRecord([[4.1, 0, 0], [0, 4.1, 0], [0, 0, 4.1]], [[0, 0, 0], [0.5, 0.5, 0.5]],
        ...                     ["Cs", "Cl"], properties={"band_gap": 5.0}, id="cscl")
        >>> dataset = CrystalStoreDataset(filepath=tmp_path / "crystals.h5")
        >>> dataset.save([rec])
        >>> [(r.id, r.formula, r.properties["band_gap"]) for r in dataset.load()]
        [('cscl', 'CsCl', 5.0)]
    """

    def __init__(self, *, filepath: str | os.PathLike, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> list[CrystalRecord]:
        from td_data.store import CrystalStore

        with CrystalStore.open(self._filepath) as store:
            return store.read_all()

    def save(self, data: Sequence[CrystalRecord]) -> None:
        from td_data.store import write_store

        self._filepath.parent.mkdir(parents=True, exist_ok=True)
        write_store(self._filepath, list(data), overwrite=True)

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


def _file_name(record_id: str, taken: set[str]) -> str:
    """A safe, unique CIF file name for a record id."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", record_id).strip("._") or "crystal"
    name, k = f"{stem}.cif", 2
    while name in taken:
        name, k = f"{stem}.{k}.cif", k + 1
    taken.add(name)
    return name


def _flat_row(entry: dict[str, Any]) -> dict[str, Any]:
    """One index.csv row: file, id, formula, num_atoms, then properties and scalar labels."""
    row = {k: entry[k] for k in ("file", "id", "formula", "num_atoms")}
    row.update({f"prop_{k}": v for k, v in entry["properties"].items()})
    row.update({f"label_{k}": v for k, v in entry["labels"].items() if isinstance(v, (str, int, float, bool))})
    return row


class CifFolderDataset(AbstractDataset[Sequence[CrystalRecord], list[CrystalRecord]]):
    """A folder of CIF files, one per crystal, with ``index.json`` and ``index.csv`` holding their labels.

    Saving writes ``<id>.cif`` for every record (pymatgen's ``CifWriter``) and an index with each
    file's id, formula, properties and labels (``index.json`` keeps everything, ``index.csv`` the
    scalar columns for a spreadsheet), into a temporary sibling folder that then replaces the old
    one. Loading reads every ``*.cif`` in the folder with :func:`td_data.load_materials_database`;
    a broken file is quarantined (logged as a warning and kept in :attr:`quarantined`), never fatal,
    and the good crystals get their ids, properties and labels back from the index when it lists them.

    Examples:
        Using the YAML API:

        ```yaml
        candidates:
          type: pipelines.datasets.CifFolderDataset
          path: data/07_model_output/candidates
        ```

        Using the Python API:

        >>> from td_data import CrystalRecord
        >>> from pipelines.datasets import CifFolderDataset
        >>> rec = CrystalRecord([[5.64, 0, 0], [0, 5.64, 0], [0, 0, 5.64]], [[0, 0, 0], [0.5, 0.5, 0.5]],
        ...                     ["Na", "Cl"], labels={"topo_class": "trivial"}, id="nacl")
        >>> dataset = CifFolderDataset(path=tmp_path / "cifs")
        >>> dataset.save([rec])
        >>> sorted(p.name for p in (tmp_path / "cifs").iterdir())
        ['index.csv', 'index.json', 'nacl.cif']
        >>> _ = (tmp_path / "cifs" / "broken.cif").write_text("data_broken\\n_cell_length_a 1\\n")
        >>> [(r.id, r.formula, r.labels["topo_class"]) for r in dataset.load()]
        [('nacl', 'NaCl', 'trivial')]
        >>> [q.source.endswith("broken.cif") for q in dataset.quarantined]
        [True]
    """

    INDEX_JSON = "index.json"
    INDEX_CSV = "index.csv"

    def __init__(self, *, path: str | os.PathLike, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata
        self.quarantined: list[Any] = []  # td_data.Quarantined entries of the last load

    def load(self) -> list[CrystalRecord]:
        from td_data import load_materials_database

        if not self._path.is_dir():
            raise DatasetError(f"CIF folder {self._path} does not exist")
        files = sorted(p for p in self._path.iterdir() if p.suffix.lower() == ".cif" and not p.name.startswith("."))
        index_path = self._path / self.INDEX_JSON
        index = {}
        if index_path.is_file():
            index = {e["file"]: e for e in json.loads(index_path.read_text(encoding="utf-8"))}
        # generated crystals are read back as they were written: the readers' plausibility limits would
        # quarantine the invalid ones, which the evaluation must see to count them
        limits_off = {"min_distance": None, "min_volume_per_atom": None, "max_atoms": None}
        result = load_materials_database(files, recursive=False, **limits_off) if files else None
        self.quarantined = list(result.quarantined) if result else []
        for q in self.quarantined:
            logger.warning("quarantined %s: %s", q.source, q.reason)
        records = []
        for rec in result.records if result else []:
            entry = index.get(Path(rec.source).name)
            if entry is not None:
                rec = rec.replace(id=entry["id"], properties=entry["properties"], labels=entry["labels"])
            records.append(rec)
        return records

    def save(self, data: Sequence[CrystalRecord]) -> None:
        from pymatgen.io.cif import CifWriter

        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self._path.name}.", suffix=".tmp", dir=self._path.parent))
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700; the folder gets the user's umask
        try:
            taken: set[str] = set()
            index = []
            for rec in data:
                name = _file_name(rec.id or rec.formula, taken)
                CifWriter(rec.to_structure()).write_file(str(tmp / name))
                index.append(
                    {
                        "file": name,
                        "id": rec.id,
                        "formula": rec.formula,
                        "num_atoms": rec.num_atoms,
                        "properties": dict(rec.properties),
                        "labels": dict(rec.labels),
                    }
                )
            (tmp / self.INDEX_JSON).write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
            import pandas as pd

            pd.DataFrame([_flat_row(e) for e in index]).to_csv(tmp / self.INDEX_CSV, index=False)
            old = None
            if self._path.exists():
                old = self._path.with_name(f".{self._path.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(self._path, old)
            os.replace(tmp, self._path)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _exists(self) -> bool:
        return self._path.is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}


class CrystalFilesDataset(AbstractDataset[None, Any]):
    """The user's crystal files, read-only: a file or folder read by :func:`td_data.load_materials_database`.

    Every format the reader knows (CIF, POSCAR/CONTCAR, JSON records or Materials Project documents,
    benchmark CSV, a td-data HDF5 store; pickles only with ``trusted``) is read into a
    :class:`td_data.readers.LoadResult`: the records, and each file, row or entry that could not be read
    in ``quarantined`` with its reason. Bad input never makes ``load`` raise. ``path: null`` is "no files"
    (an empty result), what the synthetic source reads. ``load_args`` are the reader's keyword arguments
    (``trusted``, ``recursive``, ``max_atoms``, ``min_distance``, ``min_volume_per_atom``).

    In this project the ``user_crystals`` entry is filled from ``data_config`` (its ``path`` and reading
    options, :meth:`from_data_config`) by :class:`pipelines.hooks.UserCrystalsHook`, so the user's files are
    named in one place, the parameter users already set.

    Examples:
        Using the YAML API (``conf/base/catalog.yml``; the project sets ``path`` from ``data_config.path``):

        ```yaml
        user_crystals:
          type: pipelines.datasets.CrystalFilesDataset
          path: data/01_raw/my_cifs
          load_args: {trusted: false, max_atoms: 20}
        ```

        Using the Python API:

        >>> from pymatgen.io.cif import CifWriter
        >>> from td_data import CrystalRecord
        >>> from pipelines.datasets import CrystalFilesDataset
        >>> rec = CrystalRecord([[4.1, 0, 0], [0, 4.1, 0], [0, 0, 4.1]], [[0, 0, 0], [0.5, 0.5, 0.5]], ["Cs", "Cl"])
        >>> (tmp_path / "mine").mkdir()
        >>> CifWriter(rec.to_structure()).write_file(str(tmp_path / "mine" / "CsCl.cif"))
        >>> _ = (tmp_path / "mine" / "notes.txt").write_text("not a crystal")
        >>> result = CrystalFilesDataset(path=tmp_path / "mine", load_args={"max_atoms": 20}).load()
        >>> [r.formula for r in result.records], [q.source.rsplit("/", 1)[-1] for q in result.quarantined]
        (['CsCl'], ['notes.txt'])
        >>> CrystalFilesDataset().load().records
        []
    """

    #: The keyword arguments of :func:`td_data.load_materials_database` that ``load_args`` may set.
    LOAD_ARGS = ("trusted", "recursive", "max_atoms", "min_distance", "min_volume_per_atom")

    def __init__(
        self,
        *,
        path: str | os.PathLike | None = None,
        load_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        unknown = sorted(set(load_args or {}) - set(self.LOAD_ARGS))
        if unknown:
            raise DatasetError(
                f"CrystalFilesDataset load_args has unknown keys {unknown}; known: {list(self.LOAD_ARGS)}"
            )
        self._path = None if path is None else Path(path)
        self._load_args = dict(load_args or {})
        self.metadata = metadata

    @classmethod
    def from_data_config(cls, data_config: Any) -> CrystalFilesDataset:
        """The dataset ``data_config`` describes: its ``path`` (None for ``source: synthetic``) and reading options.

        ``data_config`` is validated first (:class:`pipelines.config.DataConfig`), so ``trusted`` is a boolean
        before any file is opened.
        """
        from pipelines.config import DataConfig

        cfg = DataConfig.from_dict(data_config)
        return cls(path=cfg.input_path, load_args=cfg.reader_options())

    @property
    def path(self) -> Path | None:
        """The file or folder read (None: no files)."""
        return self._path

    def load(self) -> Any:
        from td_data.readers import LoadResult, load_materials_database

        if self._path is None:
            return LoadResult(records=[], quarantined=[])
        return load_materials_database(self._path, **self._load_args)

    def save(self, data: None) -> None:
        raise DatasetError(f"CrystalFilesDataset only reads the user's files; it never writes {self._path}")

    def _exists(self) -> bool:
        return self._path is None or self._path.exists()

    def _describe(self) -> dict[str, Any]:
        return {"path": None if self._path is None else str(self._path), "load_args": self._load_args}


class TorchCheckpointDataset(AbstractDataset[Any, Any]):
    """A td-models model file (:meth:`TopologicalDiffusionModel.save` / ``.load``).

    Loading uses ``torch.load(weights_only=True)`` (no pickled code runs) onto ``map_location``;
    saving writes to a temporary file and renames it.

    Examples:
        Using the YAML API:

        ```yaml
        model:
          type: pipelines.datasets.TorchCheckpointDataset
          filepath: data/06_models/model.pt
        ```

        Using the Python API:

        >>> from td_models import ExperimentConfig, TopologicalDiffusionModel
        >>> from pipelines.datasets import TorchCheckpointDataset
        >>> config = ExperimentConfig.from_dict({"model_config": {"hidden_dim": 16, "num_layers": 1, "num_heads": 2}})
        >>> dataset = TorchCheckpointDataset(filepath=tmp_path / "model.pt")
        >>> dataset.save(TopologicalDiffusionModel(config))
        >>> dataset.load().config.model_config.hidden_dim
        16
    """

    def __init__(
        self, *, filepath: str | os.PathLike, map_location: str = "cpu", metadata: dict[str, Any] | None = None
    ) -> None:
        self._filepath = Path(filepath)
        self._map_location = map_location
        self.metadata = metadata

    def load(self) -> Any:
        from td_models import TopologicalDiffusionModel

        return TopologicalDiffusionModel.load(self._filepath, map_location=self._map_location)

    def save(self, data: Any) -> None:
        if not hasattr(data, "save"):
            raise DatasetError(f"TorchCheckpointDataset saves a TopologicalDiffusionModel, got {type(data).__name__}")
        data.save(self._filepath)

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "map_location": self._map_location}

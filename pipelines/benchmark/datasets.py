"""Kedro datasets of the benchmarks: the published CSV splits (read-only) and the stages' crystal files.

``BenchmarkSplitDataset`` reads one split of a data set's CDVAE CSV files with td-data's benchmark protocol
(:mod:`td_data.evaluation.datasets`); ``CrystalFileDataset`` is a ``td_models.save_crystals`` file
(``.npz`` plus JSON metadata, never a pickle), the hand-off between the CPU and GPU halves of a benchmark:
it imports td-models only, so the GPU node reads and writes it without the materials stack.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

__all__ = ["BenchmarkSplitDataset", "CrystalFileDataset"]


class BenchmarkSplitDataset(AbstractDataset[None, Any]):
    """One split of a published benchmark, read-only: the CDVAE CSV files that
    :data:`td_data.evaluation.SPLIT_FILES` names for ``dataset`` and ``split``, in ``data_dir``, read in order by
    :func:`td_data.evaluation.load_split` into a ``LoadedSplit`` (records, number of quarantined rows).

    A missing folder or file is reported before the run by the missing-inputs hook (``_exists``) and, when
    loaded anyway, as td-data's ``BenchmarkDataError`` naming it.

    Examples:
        Using the YAML API (``conf/perov5/catalog.yml``):

        ```yaml
        benchmark_train_split:
          type: pipelines.benchmark.datasets.BenchmarkSplitDataset
          dataset: perov_5
          split: train
          data_dir: ../shared/data/benchmarks/perov_5
        ```
    """

    SPLITS = ("train", "test")

    def __init__(
        self, *, dataset: str, split: str, data_dir: str | os.PathLike, metadata: dict[str, Any] | None = None
    ) -> None:
        from td_data.evaluation import SPLIT_FILES, dataset_key

        if split not in self.SPLITS:
            raise DatasetError(f"BenchmarkSplitDataset split must be one of {list(self.SPLITS)}, got {split!r}")
        key = dataset_key(dataset)
        if key not in SPLIT_FILES:
            raise DatasetError(f"BenchmarkSplitDataset dataset must be one of {sorted(SPLIT_FILES)}, got {dataset!r}")
        files = SPLIT_FILES[key]
        self._dataset, self._split, self._data_dir = key, split, Path(data_dir)
        self._paths = [self._data_dir / name for name in (files.train if split == "train" else (files.test,))]
        self.metadata = metadata

    def load(self) -> Any:
        from td_data.evaluation import load_split, split_paths

        train, test = split_paths(self._dataset, self._data_dir)  # every file there, or a message naming the missing
        return load_split(train if self._split == "train" else [test], "training" if self._split == "train" else "test")

    def save(self, data: None) -> None:
        raise DatasetError(f"BenchmarkSplitDataset only reads the published files; it never writes {self._data_dir}")

    def _exists(self) -> bool:
        return all(p.is_file() for p in self._paths)

    def _describe(self) -> dict[str, Any]:
        return {"dataset": self._dataset, "split": self._split, "data_dir": str(self._data_dir)}


class CrystalFileDataset(AbstractDataset[tuple, tuple]):
    """``(crystals, metadata)`` in a ``td_models.save_crystals`` file: model items or samples, with JSON metadata.

    Examples:
        Using the YAML API:

        ```yaml
        benchmark_items:
          type: pipelines.benchmark.datasets.CrystalFileDataset
          filepath: outputs/perov5/train_items.npz
        ```
    """

    def __init__(self, *, filepath: str | os.PathLike, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        from td_models import load_crystals

        return load_crystals(self._filepath)

    def save(self, data: tuple[Sequence[Mapping[str, Any]], Mapping[str, Any]]) -> None:
        from td_models import save_crystals

        if not (isinstance(data, tuple) and len(data) == 2 and isinstance(data[1], Mapping)):
            raise DatasetError(f"CrystalFileDataset saves a (crystals, metadata) pair, got {type(data).__name__}")
        self._filepath.parent.mkdir(parents=True, exist_ok=True)
        save_crystals(self._filepath, data[0], data[1])

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}

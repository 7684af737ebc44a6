"""Kedro datasets of the benchmarks: the published CSV splits (read-only) and the stages' crystal files.

``BenchmarkSplitDataset`` reads one split (one or more CDVAE CSV files, in order) with
:func:`td_data.load_materials_database`; ``CrystalFileDataset`` is a ``td_models.save_crystals`` file
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
    """One split of a published benchmark: CDVAE CSV files read in order into a ``td_data.readers.LoadResult``.

    Unreadable rows go to ``quarantined`` with their reason; loading a missing file is a ``DatasetError`` that
    names it (the missing-inputs hook names it before the run starts).

    Examples:
        Using the YAML API (``conf/perov5/catalog.yml``):

        ```yaml
        benchmark_train_split:
          type: pipelines.benchmark.datasets.BenchmarkSplitDataset
          filepaths: [../shared/data/benchmarks/perov_5/val.csv.gz,
                      ../shared/data/benchmarks/perov_5/train_first1024.csv.gz]
        ```
    """

    def __init__(self, *, filepaths: Sequence[str | os.PathLike], metadata: dict[str, Any] | None = None) -> None:
        if isinstance(filepaths, (str, os.PathLike)) or not filepaths:
            raise DatasetError(f"BenchmarkSplitDataset needs a non-empty list of CSV files, got {filepaths!r}")
        self._paths = [Path(p) for p in filepaths]
        self.metadata = metadata

    @property
    def paths(self) -> list[Path]:
        return list(self._paths)

    def load(self) -> Any:
        from td_data import load_materials_database

        missing = [str(p) for p in self._paths if not p.is_file()]
        if missing:
            raise DatasetError(f"benchmark split files {missing} do not exist (see the benchmark's catalog.yml)")
        return load_materials_database(self._paths)

    def save(self, data: None) -> None:
        raise DatasetError(f"BenchmarkSplitDataset only reads the published files; it never writes {self._paths}")

    def _exists(self) -> bool:
        return all(p.is_file() for p in self._paths)

    def _describe(self) -> dict[str, Any]:
        return {"filepaths": [str(p) for p in self._paths]}


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

"""Benchmark data protocols: which CDVAE CSV split files a benchmark trains and tests on, read into records.

The generation benchmarks of CDVAE and DiffCSP (Perov-5, Carbon-24, MP-20) ship each split as a CSV
file (``cif`` column plus properties; td-data's readers read it, gzipped or not). A :class:`SplitFiles`
names the files of one data set in its folder; :func:`split_paths` checks they are there and
:func:`load_split` reads them into records in file order. The coverage cutoffs of each data set are
:data:`td_data.metrics.COVERAGE_CUTOFFS`; :data:`DATASET_NAMES` maps the names users type on command
lines (``perov5``) to those keys (``perov_5``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from td_data.exceptions import BenchmarkDataError
from td_data.record import CrystalRecord

__all__ = [
    "DATASET_NAMES",
    "SPLIT_FILES",
    "LoadedSplit",
    "SplitFiles",
    "dataset_key",
    "load_split",
    "split_paths",
]

logger = logging.getLogger(__name__)

#: command-line names of the benchmark data sets -> their keys (coverage cutoffs, split files)
DATASET_NAMES = {"mp20": "mp_20", "perov5": "perov_5", "carbon24": "carbon_24"}


@dataclass(frozen=True)
class SplitFiles:
    """The split files of one data set, relative to its folder: training files (read in order) and test file."""

    name: str  # the data set's key: perov_5, carbon_24, mp_20
    train: tuple[str, ...]
    test: str
    note: str = ""  # what the training files are, where they differ from the published split


#: the split files of each benchmark data set as this project's copy holds them
SPLIT_FILES = {
    "perov_5": SplitFiles(
        "perov_5",
        train=("val.csv.gz", "train_first1024.csv.gz"),
        test="test.csv.gz",
        note="val plus the first 1,024 of the 11,356 training crystals (the rest of the train split is not held)",
    ),
    "carbon_24": SplitFiles(
        "carbon_24",
        train=("val.csv.gz",),
        test="test.csv.gz",
        note="val only (the 6,091-crystal train split is not held)",
    ),
}


def dataset_key(name: str) -> str:
    """The key of a data set from its key or command-line name.

    >>> dataset_key("perov5"), dataset_key("carbon_24")
    ('perov_5', 'carbon_24')
    """
    if name in DATASET_NAMES.values():
        return name
    if name in DATASET_NAMES:
        return DATASET_NAMES[name]
    raise BenchmarkDataError(
        f"dataset must be one of {sorted(DATASET_NAMES)} or {sorted(DATASET_NAMES.values())}, got {name!r}"
    )


def split_paths(dataset: str, data_dir: str | os.PathLike) -> tuple[list[Path], Path]:
    """``(training files, test file)`` of ``dataset`` in ``data_dir``; a :class:`BenchmarkDataError` names
    what is missing."""
    key = dataset_key(dataset)
    if key not in SPLIT_FILES:
        raise BenchmarkDataError(f"dataset must have split files, one of {sorted(SPLIT_FILES)}, got {dataset!r}")
    files = SPLIT_FILES[key]
    folder = Path(data_dir)
    label = {"perov_5": "Perov-5", "carbon_24": "Carbon-24"}.get(key, key)
    if not folder.is_dir():
        raise BenchmarkDataError(
            f"{label} data folder {str(folder)!r} does not exist; pass the folder holding "
            f"{', '.join(files.train)} and {files.test} (the CDVAE {label} CSV files)"
        )
    missing = [name for name in (*files.train, files.test) if not (folder / name).is_file()]
    if missing:
        raise BenchmarkDataError(f"{label} data folder {str(folder)!r} lacks {', '.join(missing)}")
    return [folder / name for name in files.train], folder / files.test


class LoadedSplit(NamedTuple):
    """``records`` of a split (file order, the first ``limit``) and how many rows were quarantined."""

    records: list[CrystalRecord]
    n_quarantined: int


def load_split(paths: Sequence[str | os.PathLike], what: str, limit: int | None = None) -> LoadedSplit:
    """The records of CSV split files, in file order, the first ``limit`` kept (None: all).

    Unreadable rows are quarantined (the first five logged, all counted); a split with no readable crystal
    is a :class:`BenchmarkDataError` naming ``what`` (``"training"``, ``"test"``) and the files.
    """
    from td_data.readers import load_materials_database

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise BenchmarkDataError(f"limit must be an integer >= 1 or None, got {limit!r}")
    result = load_materials_database([Path(p) for p in paths])
    for q in result.quarantined[:5]:
        logger.warning("%s: skipped %s", what, q)
    if not result.records:
        raise BenchmarkDataError(f"the {what} files {[str(p) for p in paths]} hold no readable crystal")
    records = list(result.records)
    return LoadedSplit(records[:limit] if limit else records, len(result.quarantined))

"""Sharded physics labelling: each array task labels ``shard_indices(n, shard, num_shards)`` of a td-data
store into ``shard_IIIII.h5``; :func:`merge_label_shards` joins them into one store.

td-data (and through it h5py and td-physics) is imported inside the functions, so ``import td_hpc``
works without it.

>>> shard_indices(10, 1, 3)
[1, 4, 7]
>>> shard_file_name(2)
'shard_00002.h5'
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from td_hpc.exceptions import HpcValueError
from td_hpc.validation import check_positive_int

__all__ = ["shard_indices", "shard_file_name", "label_shard", "merge_label_shards"]

logger = logging.getLogger(__name__)


def shard_indices(num_records: int, shard: int, num_shards: int) -> list[int]:
    """Record indices of shard ``shard`` of ``num_shards``: ``shard, shard + num_shards, ...`` (round
    robin, so shards differ in size by at most one record)."""
    check_positive_int("num_shards", num_shards)
    if isinstance(shard, bool) or not isinstance(shard, int) or not 0 <= shard < num_shards:
        raise HpcValueError(f"shard must be a whole number in [0, num_shards={num_shards}), got {shard!r}")
    return list(range(shard, num_records, num_shards))


def shard_file_name(shard: int) -> str:
    return f"shard_{shard:05d}.h5"


def label_shard(
    store_path: str | os.PathLike[str],
    shard: int,
    num_shards: int,
    out_dir: str | os.PathLike[str],
    *,
    workers: int = 1,
    **classify_options: Any,
) -> Path:
    """Label one shard of the store with :func:`td_data.labels.label_records`; write
    ``out_dir/shard_IIIII.h5`` (labelled records) and ``shard_IIIII.json`` (counts, quarantined).
    ``classify_options`` go to ``label_records``
    (``gap_mesh``, ``spin_orbit_constants``, ...)."""
    from td_data.labels import label_records
    from td_data.store import CrystalStore

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with CrystalStore.open(store_path) as store:
        idx = shard_indices(len(store), shard, num_shards)
        records = store[idx] if idx else []
    path = out / shard_file_name(shard)
    result = label_records(records, workers=workers, store_path=path, **classify_options)
    if not result.records:  # label_records writes the store only when it has records to write
        from td_data.store import write_store

        write_store(path, [], overwrite=True)
    summary = {
        "shard": shard,
        "num_shards": num_shards,
        "records": len(records),
        "labelled": len(result.records),
        "computed": result.computed,
        "reused": result.reused,
        "quarantined": [{"record_id": q.record_id, "source": q.source, "reason": q.reason} for q in result.quarantined],
    }
    (out / f"shard_{shard:05d}.json").write_text(json.dumps(summary, indent=1))
    logger.info("shard %d/%d: %d records, %d labelled", shard, num_shards, len(records), len(result.records))
    return path


def merge_label_shards(
    shards_dir: str | os.PathLike[str],
    out_store: str | os.PathLike[str],
    *,
    num_shards: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Join ``shards_dir/shard_*.h5`` into ``out_store`` (shard order, then record order). With
    ``num_shards``, refuse to merge when a shard file is missing."""
    from td_data.store import CrystalStore, write_store

    folder = Path(shards_dir)
    files = sorted(folder.glob("shard_*.h5"))
    if num_shards is not None:
        check_positive_int("num_shards", num_shards)
        missing = [shard_file_name(i) for i in range(num_shards) if not (folder / shard_file_name(i)).exists()]
        if missing:
            raise HpcValueError(f"every shard must be present to merge, missing {missing} in {str(folder)!r}")
    if not files:
        raise HpcValueError(f"shards_dir must hold shard_*.h5 files, got none in {str(folder)!r}")

    def records():
        for f in files:
            with CrystalStore.open(f) as store:
                yield from store.read_all()

    path = write_store(out_store, records(), overwrite=overwrite)
    logger.info("merged %d shard(s) into %s", len(files), path)
    return Path(path)

"""Sharded physics labelling for job arrays: each task labels one shard of a store, a merge joins them.

Task ``i`` of ``n`` labels records ``i, i + n, i + 2n, ...`` (:func:`shard_indices`) of a td-data store
with :func:`td_data.labels.label_records` into ``OUT/shard_IIIII.h5`` plus ``shard_IIIII.json`` (counts and
the quarantined records); :func:`merge_label_shards` joins the shard stores in shard order. The same as
commands (td-hpc's labelling array script runs the first in each SLURM array task)::

    python -m td_data.label_shard --store crystals.h5 --shard $SLURM_ARRAY_TASK_ID --num-shards 3 --out shards/
    python -m td_data.label_shard --merge shards/ --out labelled.h5 --num-shards 3

>>> shard_indices(10, 1, 3)
[1, 4, 7]
>>> shard_file_name(2)
'shard_00002.h5'
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from td_data.exceptions import TDDataError

__all__ = ["label_shard", "main", "merge_label_shards", "shard_file_name", "shard_indices"]

logger = logging.getLogger(__name__)


def _whole(what: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TDDataError(f"{what} must be a whole number >= 1, got {value!r}")
    return value


def shard_indices(num_records: int, shard: int, num_shards: int) -> list[int]:
    """Record indices of shard ``shard`` of ``num_shards``: ``shard, shard + num_shards, ...`` (round
    robin, so shards differ in size by at most one record)."""
    _whole("num_shards", num_shards)
    if isinstance(shard, bool) or not isinstance(shard, int) or not 0 <= shard < num_shards:
        raise TDDataError(f"shard must be a whole number in [0, num_shards={num_shards}), got {shard!r}")
    return list(range(shard, num_records, num_shards))


def shard_file_name(shard: int) -> str:
    """The store file of one shard: ``shard_IIIII.h5``."""
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
    """Label one shard of the store; write ``out_dir/shard_IIIII.h5`` (labelled records) and
    ``shard_IIIII.json`` (counts, quarantined). ``classify_options`` go to
    :func:`td_data.labels.label_records` (``gap_mesh``, ``spin_orbit_constants``, ...)."""
    from td_data.labels import label_records
    from td_data.store import CrystalStore, write_store
    from td_physics.files import write_text_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with CrystalStore.open(store_path) as store:
        idx = shard_indices(len(store), shard, num_shards)
        records = store[idx] if idx else []
    path = out / shard_file_name(shard)
    result = label_records(records, workers=workers, store_path=path, **classify_options)
    if not result.records:  # label_records writes the store only when it has records to write
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
    write_text_atomic(out / f"shard_{shard:05d}.json", json.dumps(summary, indent=1))
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
        _whole("num_shards", num_shards)
        missing = [shard_file_name(i) for i in range(num_shards) if not (folder / shard_file_name(i)).exists()]
        if missing:
            raise TDDataError(f"every shard must be present to merge, missing {missing} in {str(folder)!r}")
    if not files:
        raise TDDataError(f"shards_dir must hold shard_*.h5 files, got none in {str(folder)!r}")

    def records():
        for f in files:
            with CrystalStore.open(f) as store:
                yield from store.read_all()

    path = write_store(out_store, records(), overwrite=overwrite)
    logger.info("merged %d shard(s) into %s", len(files), path)
    return Path(path)


def main(argv: list[str] | None = None) -> int:
    """The command line (module docstring); exit status 0, or 2 with ``error: ...`` for bad input."""
    p = argparse.ArgumentParser(prog="python -m td_data.label_shard", description=__doc__.split("\n")[0])
    p.add_argument("--store", help="td-data HDF5 store to label")
    p.add_argument("--shard", type=int, help="this task's shard (0-based; $SLURM_ARRAY_TASK_ID)")
    p.add_argument("--num-shards", type=int, help="number of shards")
    p.add_argument("--out", required=True, help="shard folder (labelling) or merged store (--merge)")
    p.add_argument("--workers", type=int, default=1, help="labelling processes (1)")
    p.add_argument("--options", default="{}", help="JSON object of label_records options ({})")
    p.add_argument("--merge", metavar="SHARDS_DIR", help="merge SHARDS_DIR/shard_*.h5 into --out instead")
    p.add_argument("--overwrite", action="store_true", help="with --merge: replace an existing --out")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.merge:
            path = merge_label_shards(args.merge, args.out, num_shards=args.num_shards, overwrite=args.overwrite)
        else:
            if args.store is None or args.shard is None or args.num_shards is None:
                p.error("--store, --shard and --num-shards are required unless --merge is given")
            options = json.loads(args.options)
            if not isinstance(options, dict):
                raise TDDataError(f"--options must be a JSON object, got {args.options!r}")
            path = label_shard(
                args.store, args.shard, args.num_shards, args.out, workers=max(1, args.workers), **options
            )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Command line for one task of a labelling job array, and for the merge after it.

python -m td_hpc.label_shard --store crystals.h5 --shard $SLURM_ARRAY_TASK_ID --num-shards 3 --out shards/
python -m td_hpc.label_shard --merge shards/ --out labelled.h5 --num-shards 3
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from td_hpc.labelling import label_shard, merge_label_shards


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m td_hpc.label_shard", description=__doc__.split("\n")[0])
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
                raise ValueError(f"--options must be a JSON object, got {args.options!r}")
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

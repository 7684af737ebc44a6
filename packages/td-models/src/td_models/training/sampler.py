"""Data order: a sharded batch sampler whose permutation depends only on (seed, epoch).

Every process draws the same permutation of the whole data set from ``numpy.random.default_rng([seed,
epoch])``, pads it (by repeating its head) to a multiple of the number of processes, and takes every
``num_replicas``-th index from ``rank`` on, so the shards are disjoint (when the data set size is a
multiple of the number of processes; otherwise at most ``num_replicas - 1`` crystals are seen twice
an epoch) and every process has the same number of batches (DDP needs that). Because the order is a
pure function of ``(seed, epoch)``, resuming mid-epoch only needs ``(epoch, batches_done)``.

Size buckets (``bucket_batches`` k >= 2, with the crystals' ``sizes``): the denoiser pads every crystal of a
batch to the batch's largest, so a batch of random sizes pays for pairs it does not have (on Carbon-24, 6-24
atoms, about 4.5 times the real pairs at 64 crystals a batch). The shard is then cut, in its random order, into pools of
k batches; each pool is sorted by size (stable) and cut into batches, and the epoch's batches are shuffled
(``default_rng([seed, epoch, 1])``). Every crystal is still seen once an epoch, the batch count is unchanged and
the order is still a pure function of ``(seed, epoch)``; the batches are of similar sizes, not of random ones.

>>> s = ShardedBatchSampler(10, batch_size=2, num_replicas=2, rank=0, seed=0)
>>> s.set_epoch(0)
>>> len(s), sum(len(b) for b in s)
(3, 5)
>>> other = ShardedBatchSampler(10, batch_size=2, num_replicas=2, rank=1, seed=0)
>>> other.set_epoch(0)
>>> set().union(*s).isdisjoint(set().union(*other))
True
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from td_models.exceptions import ConfigError

__all__ = ["ShardedBatchSampler"]


class ShardedBatchSampler:
    """Batches of indices into a data set of ``num_items`` for process ``rank`` of ``num_replicas``.

    Parameters
    ----------
    num_items:
        Size of the whole data set (all processes).
    batch_size:
        Crystals per batch on this process; the last batch of an epoch may be smaller.
    num_replicas, rank:
        Number of processes and this one's index.
    seed:
        Seed of the permutation; epoch ``e`` uses ``default_rng([seed, e])``.
    shuffle:
        False keeps the data set order (validation).
    pad:
        Pad to a multiple of ``num_replicas`` so that every process has the same number of batches
        (training, under DDP). Validation leaves it off and takes uneven shards.
    sizes, bucket_batches:
        The atom count of every crystal (``num_items`` of them) and the pool of batches sorted by size
        (module docstring); ``bucket_batches`` 0 (the default) keeps random batches and needs no sizes.
    """

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int = 0,
        shuffle: bool = True,
        pad: bool = True,
        sizes: Sequence[int] | np.ndarray | None = None,
        bucket_batches: int = 0,
    ) -> None:
        if num_items < 1:
            raise ConfigError(f"the data set must hold at least one crystal, got {num_items}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ConfigError(f"rank must be in 0..num_replicas-1, got rank {rank} of {num_replicas}")
        if isinstance(bucket_batches, bool) or not isinstance(bucket_batches, (int, np.integer)) or bucket_batches < 0:
            raise ConfigError(f"bucket_batches must be an integer >= 0, got {bucket_batches!r}")
        if bucket_batches == 1:
            raise ConfigError("bucket_batches must be 0 (off) or >= 2: a pool of 1 batch sorts nothing, got 1")
        self.sizes = None
        if bucket_batches:
            if sizes is None:
                raise ConfigError(f"bucket_batches {bucket_batches} needs the crystals' sizes, got none")
            self.sizes = np.asarray(sizes, dtype=np.int64).reshape(-1)
            if self.sizes.shape[0] != num_items:
                raise ConfigError(
                    f"sizes must hold one atom count per crystal ({num_items}), got {self.sizes.shape[0]}"
                )
        self.bucket_batches = int(bucket_batches)
        self.num_items = int(num_items)
        self.batch_size = int(batch_size)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.pad = bool(pad)
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the permutation of ``epoch`` (0-based) and skip its first ``start_batch`` batches."""
        if start_batch < 0 or start_batch > self.batches_per_epoch():
            raise ConfigError(f"start_batch must be in 0..{self.batches_per_epoch()}, got {start_batch}")
        self.epoch = int(epoch)
        self.start_batch = int(start_batch)

    def shard(self, epoch: int) -> np.ndarray:
        """This process's indices for ``epoch``, in order: (shard_size,) int64."""
        if self.shuffle:
            order = np.random.default_rng([self.seed, int(epoch)]).permutation(self.num_items)
        else:
            order = np.arange(self.num_items)
        if self.pad and self.num_items % self.num_replicas:
            extra = self.num_replicas - self.num_items % self.num_replicas
            order = np.concatenate([order, np.resize(order, extra)])
        return order[self.rank :: self.num_replicas].astype(np.int64)

    def shard_size(self) -> int:
        if self.pad:
            return -(-self.num_items // self.num_replicas)
        return len(range(self.rank, self.num_items, self.num_replicas))

    def batches_per_epoch(self) -> int:
        """Batches of a whole epoch on this process (the same on every process when padded)."""
        return -(-self.shard_size() // self.batch_size)

    def __len__(self) -> int:
        return self.batches_per_epoch() - self.start_batch

    def batches(self, epoch: int) -> list[np.ndarray]:
        """This process's batches of ``epoch``, all of them, in order."""
        indices = self.shard(epoch)
        size = self.batch_size
        if not self.bucket_batches:
            return [indices[b * size : (b + 1) * size] for b in range(self.batches_per_epoch())]
        pool = self.bucket_batches * size
        ordered = np.concatenate(
            [
                chunk[np.argsort(self.sizes[chunk], kind="stable")]
                for chunk in np.split(indices, range(pool, len(indices), pool))
            ]
        )
        batches = [ordered[b * size : (b + 1) * size] for b in range(self.batches_per_epoch())]
        order = np.random.default_rng([self.seed, int(epoch), 1]).permutation(len(batches))
        return [batches[i] for i in order]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.batches(self.epoch)
        for b in range(self.start_batch, self.batches_per_epoch()):
            yield batches[b].tolist()

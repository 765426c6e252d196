"""Batches bucketed by length and padded to a few static lengths.

Padding every review to 256 wastes most of the compute (median review: ~50 words), while padding
each batch to its own longest review gives a new tensor shape nearly every step, which costs more
than the padding saves on a GPU. A fixed set of bucket lengths (default 14, from 16 to 256; 8 multiples
of 32 for transformers) is the middle way: few shapes, little padding.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Dataset, Sampler

from medsent.neural.batching import PadCollator, bucket_of


class EncodedDataset(Dataset[tuple[Any, ...]]):
    """Token ids, the class label (-1: none) and, optionally, a row of extra target levels."""

    def __init__(
        self,
        ids: Sequence[list[int]],
        labels: Sequence[int] | None = None,
        targets: np.ndarray | None = None,
        soft: np.ndarray | None = None,
        prefix: Any = None,
    ) -> None:
        """``targets``: rows x extra target levels (-1 missing); ``soft``: rows x classes of teacher
        probabilities for distillation; ``prefix``:
        each row's cached frozen-prefix hidden states (``PrefixRows``), which the batches then carry
        in place of token ids."""
        self.ids = list(ids)
        self.labels = list(labels) if labels is not None else [-1] * len(self.ids)
        self.targets = (
            None if targets is None or targets.shape[1] == 0 else np.asarray(targets, dtype=np.int64)
        )
        self.soft = None if soft is None else np.asarray(soft, dtype=np.float32)
        self.prefix = prefix

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[Any, ...]:
        extras: dict[str, np.ndarray] = {}
        if self.targets is not None:
            extras["targets"] = self.targets[i]
        if self.soft is not None:
            extras["soft"] = self.soft[i]
        if self.prefix is not None:
            extras["prefix"] = self.prefix[i]
        if not extras:
            return self.ids[i], self.labels[i]
        return self.ids[i], self.labels[i], extras


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of same-bucket examples; order depends only on (seed, epoch), so a resumed run
    replays the same epochs; under DDP each rank takes every world_size-th batch."""

    def __init__(
        self,
        lengths: Sequence[int],
        buckets: Sequence[int],
        batch_size: int,
        shuffle: bool,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.buckets = list(buckets)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        groups: dict[int, list[int]] = {}
        for i, n in enumerate(lengths):
            groups.setdefault(bucket_of(n, self.buckets), []).append(i)
        self.groups = groups

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def sampler(self) -> BucketBatchSampler:
        # Lightning calls set_epoch on ``batch_sampler.sampler``; point it at ourselves.
        return self

    def _batches(self) -> list[list[int]]:
        rng = np.random.default_rng(self.seed + 1000 * self.epoch)
        batches: list[list[int]] = []
        for key in sorted(self.groups):
            idx = np.array(self.groups[key])
            if self.shuffle:
                idx = rng.permutation(idx)
            batches += [idx[i : i + self.batch_size].tolist() for i in range(0, len(idx), self.batch_size)]
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        if self.world_size > 1:
            # Every rank needs the same number of training steps for DDP's gradient all-reduce.
            if self.shuffle:
                total = math.ceil(len(batches) / self.world_size) * self.world_size
                batches += batches[: total - len(batches)]
            batches = batches[self.rank :: self.world_size]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())


class ReviewDataModule(L.LightningDataModule):
    """Feeds any neural model: already-encoded id lists in, bucketed padded batches out."""

    def __init__(
        self,
        train: EncodedDataset,
        val: EncodedDataset | None,
        buckets: Sequence[int],
        pad_id: int,
        batch_size: int,
        eval_batch_size: int,
        seed: int,
        static_shapes: bool = True,
        device_data: bool = False,
    ) -> None:
        """``device_data``: serve the training and validation sets from tensors kept on the
        accelerator (``DeviceBatches``) instead of a DataLoader."""
        super().__init__()
        self.train_set, self.val_set = train, val
        self.buckets = list(buckets)
        self.pad_id = pad_id
        self.collate = PadCollator(self.buckets, pad_id, static=static_shapes)
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size, seed
        self.device_data = device_data
        self._device_cache: dict[str, DeviceBatches] = {}

    def _loader(self, data: EncodedDataset, batch_size: int, shuffle: bool) -> DataLoader[Any]:
        rank, world = 0, 1
        if self.trainer is not None:
            rank, world = self.trainer.global_rank, self.trainer.world_size
        sampler = BucketBatchSampler(
            [len(x) for x in data.ids], self.buckets, batch_size, shuffle, self.seed, rank, world
        )
        return DataLoader(data, batch_sampler=sampler, collate_fn=self.collate)

    def _epoch(self) -> int:
        return int(self.trainer.current_epoch) if self.trainer is not None else 0

    def _on_device(self, name: str, data: EncodedDataset, batch_size: int, shuffle: bool) -> DeviceBatches:
        if name not in self._device_cache:
            assert self.trainer is not None  # only asked for inside a fit
            self._device_cache[name] = DeviceBatches(
                data,
                self.buckets,
                self.pad_id,
                batch_size,
                shuffle,
                self.seed,
                self.trainer.strategy.root_device,
                self.trainer.global_rank,
                self.trainer.world_size,
                self._epoch if shuffle else None,
            )
        return self._device_cache[name]

    def train_dataloader(self) -> Any:
        if self.device_data and self.trainer is not None:
            return self._on_device("train", self.train_set, self.batch_size, shuffle=True)
        loader = self._loader(self.train_set, self.batch_size, shuffle=True)
        return ResumableBatches(loader, self._epoch)

    def val_dataloader(self) -> Any:
        if self.val_set is None:
            return DataLoader(EncodedDataset([]))
        if self.device_data and self.trainer is not None:
            return self._on_device("val", self.val_set, self.eval_batch_size, shuffle=False)
        return self._loader(self.val_set, self.eval_batch_size, shuffle=False)


class _MidEpochResume:
    """An epoch's batches as a pure function of (seed, epoch), resumable in the middle of an epoch.

    Lightning saves ``state_dict()`` in every checkpoint and hands it back through ``load_state_dict``
    before the first batch of a resumed fit; a checkpoint written in the middle of epoch e after n
    batches (``mark``) makes that epoch start at batch n. The epoch is read from the trainer when an
    epoch's iteration starts, which Lightning does before its own ``set_epoch`` calls on a resume.
    Both need the data to be first iterated after the checkpoint is restored: the module is given
    its step count (``SentimentModule(total_steps=...)``), since asking Lightning for its estimate
    iterates the data earlier.
    """

    sampler: BucketBatchSampler
    epoch_of: Callable[[], int] | None  # None: the sampler's own epoch (set_epoch)
    _mark: tuple[int, int] = (-1, 0)
    _skip: tuple[int, int] = (-1, 0)

    def mark(self, epoch: int, batches_done: int) -> None:
        """Record how far training got, for the next checkpoint."""
        self._mark = (epoch, batches_done)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self._mark[0], "batches_done": self._mark[1]}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._skip = (int(state.get("epoch", -1)), int(state.get("batches_done", 0)))

    def _epoch_batches(self) -> list[list[int]]:
        if self.epoch_of is not None:
            self.sampler.set_epoch(self.epoch_of())
        epoch = self.sampler.epoch
        batches = self.sampler._batches()
        skip = self._skip[1] if self._skip[0] == epoch else 0
        self._skip = (-1, 0)  # only the resumed epoch starts late
        return batches[skip:]

    def __len__(self) -> int:
        return len(self.sampler)


class ResumableBatches(_MidEpochResume):
    """The CPU path's training batches: a DataLoader's dataset and collation, in resumable order."""

    def __init__(self, loader: DataLoader[Any], epoch_of: Callable[[], int]) -> None:
        sampler = loader.batch_sampler
        assert isinstance(sampler, BucketBatchSampler)
        self.sampler = sampler
        self.batch_sampler = sampler  # where set_epoch is looked for
        self.dataset, self.collate = loader.dataset, loader.collate_fn
        self.epoch_of = epoch_of

    def __iter__(self) -> Iterator[Any]:
        for batch in self._epoch_batches():
            yield self.collate([self.dataset[i] for i in batch])


class DeviceBatches(_MidEpochResume):
    """A whole padded training set kept on the accelerator, served as batches without host copies.

    Each bucket's reviews are padded once to the bucket's length and stored as one tensor on
    ``device``; an epoch's batches (the same order as ``BucketBatchSampler``, so seeds, resume and
    DDP sharding behave alike) are index gathers from those tensors: no collation, no pinned-memory
    copies, no host synchronisation per step. What a GPU wants; the CPU default stays the DataLoader.
    """

    def __init__(
        self,
        data: EncodedDataset,
        buckets: Sequence[int],
        pad_id: int,
        batch_size: int,
        shuffle: bool,
        seed: int,
        device: Any,
        rank: int = 0,
        world_size: int = 1,
        epoch_of: Callable[[], int] | None = None,
    ) -> None:
        import torch

        from medsent.neural.batching import PadCollator

        lengths = [len(x) for x in data.ids]
        self.sampler = BucketBatchSampler(lengths, buckets, batch_size, shuffle, seed, rank, world_size)
        self.batch_sampler = self.sampler  # Lightning and our module call set_epoch through this name
        self.epoch_of = epoch_of
        self.device = device
        # Row i of the dataset lives at (bucket tensor, row) = where[i].
        self.where: dict[int, tuple[int, int]] = {}
        self.tensors: dict[int, dict[str, torch.Tensor]] = {}
        collate = PadCollator(buckets, pad_id, static=True)
        for key, rows in self.sampler.groups.items():
            items = [data[i] for i in rows]
            batch = collate(items)
            self.tensors[key] = {k: v.to(device) for k, v in batch.items()}
            for j, i in enumerate(rows):
                self.where[i] = (key, j)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        import torch

        for batch in self._epoch_batches():
            key = self.where[batch[0]][0]  # a batch never mixes buckets
            rows = torch.as_tensor([self.where[i][1] for i in batch], device=self.device)
            yield {k: v.index_select(0, rows) for k, v in self.tensors[key].items()}

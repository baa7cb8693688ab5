"""Data loading that a run interrupted mid-epoch can resume exactly.

Lightning restores the model, optimizer, schedulers and loop counters from a checkpoint, and asks every
train DataLoader that has ``state_dict``/``load_state_dict`` for its position. :class:`ResumableDataLoader`
records how many batches of which epoch it has handed out; after a restore it skips that many batches of
the same epoch, so a resumed run sees exactly the batches the uninterrupted run would have seen, provided
the order depends only on the epoch (as with :class:`EpochSampler`, and with Lightning's distributed
sampler wrapped around it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sized
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler


class EpochSampler(Sampler[int]):
    """Indices ``0..size-1``, shuffled by a generator seeded with ``(seed, epoch)`` only.

    Lightning calls :meth:`set_epoch` before every epoch (also through its distributed wrapper), so the
    order is reproducible across runs, processes and resumes, and independent of the global RNG.
    """

    def __init__(self, size: int, shuffle: bool, seed: int = 0) -> None:
        self.size = int(size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            return iter(torch.randperm(self.size, generator=generator).tolist())
        return iter(range(self.size))

    def __len__(self) -> int:
        return self.size


def keep_batch(batch: Any) -> Any:
    """``collate_fn`` for datasets whose ``__getitems__`` already returns a collated batch."""
    return batch


class _SkipFirst(Iterable):
    """Wraps a (batch) sampler: the first pass starts after ``skip`` batches if the epoch still matches."""

    def __init__(self, loader: ResumableDataLoader, sampler: Iterable, skip: int, epoch: int | None) -> None:
        self.loader = loader
        self.sampler = sampler
        self.skip = skip
        self.epoch = epoch

    def __iter__(self) -> Iterator:
        # A generator: runs at the first batch, i.e. after Lightning has called set_epoch for this epoch.
        iterator = iter(self.sampler)
        if self.loader._pending_resume is not None:
            self.loader._pending_resume = None
            if _sampler_epoch(self.loader) == self.epoch:
                for _ in range(self.skip):
                    next(iterator, None)
        yield from iterator

    def __len__(self) -> int:
        return len(self.sampler) if isinstance(self.sampler, Sized) else 0


def _sampler_epoch(loader: DataLoader) -> int | None:
    epoch = getattr(loader.sampler, "epoch", None)
    return None if epoch is None else int(epoch)


class ResumableDataLoader(DataLoader):
    """A DataLoader whose position within an epoch is saved in checkpoints and restored on resume.

    Skipping happens at the sampler, so skipped batches are never loaded. It is a plain DataLoader in
    every other respect (Lightning may rebuild it with a distributed sampler, and the position then
    counts this process's own batches).
    """

    _pending_resume: tuple[int, int | None] | None = None
    _batches_yielded: int = 0
    _iter_epoch: int | None = None

    @property
    def _index_sampler(self):
        base = super()._index_sampler
        if self._pending_resume is None:
            return base
        skip, epoch = self._pending_resume
        return _SkipFirst(self, base, skip, epoch)

    def __iter__(self):
        self._batches_yielded = 0
        self._iter_epoch = None
        for batch in super().__iter__():
            if self._batches_yielded == 0:
                self._iter_epoch = _sampler_epoch(self)
            self._batches_yielded += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        """Where this loader stands: the epoch being iterated and the batches handed out in it."""
        return {"epoch": self._iter_epoch, "batches": self._batches_yielded}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Skip ``state["batches"]`` batches at the next pass, if that pass is still ``state["epoch"]``."""
        batches = int(state.get("batches") or 0)
        self._pending_resume = (batches, state.get("epoch")) if batches > 0 else None

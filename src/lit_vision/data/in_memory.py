"""A DataModule base for image datasets small enough to hold as one uint8 tensor.

Batches are sliced straight out of the tensor (no per-sample Python, no PIL) and turned into normalised
floats after they reach the device, so the same code runs on CPU and GPU without a worker pool.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from lit_vision.data.contract import DataInfo, classification_info
from lit_vision.data.resumable import ResumableDataLoader, keep_batch
from lit_vision.data.sampling import check_sampler_options, train_sampler
from lit_vision.data.split_loaders import SplitDataModule
from lit_vision.data.splits import check_folds, fold_indices, split_indices

STAGES = ("train", "val", "test")


class TensorBatchDataset(Dataset):
    """Indexable by a list of indices: returns the whole batch ``(images[idx], labels[idx])`` at once."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(index, dtype=torch.long)
        return self.images[index], self.labels[index]

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The DataLoader's batched fetch: one slice per batch instead of one item per index."""
        return self[indices]


class InMemoryImageDataModule(SplitDataModule):
    """Base for datasets held as ``uint8 (N, C, H, W)`` images and ``int64 (N,)`` labels.

    Subclasses implement :meth:`load_splits`. Normalisation (and, in subclasses, augmentation) happens in
    :meth:`on_after_batch_transfer`, i.e. on the training device, one batch at a time.

    ``resident``: keep the uint8 splits on the training GPU itself, so batches are sliced there and nothing
    crosses the bus per step (``auto``: when training on CUDA and a split takes under a quarter of the free
    GPU memory; ``true``: whenever the device is a GPU; on a CPU the tensors are in memory anyway).

    ``sampler``: ``shuffle`` or ``balanced`` (class-balanced draws, weighted by ``class_weights`` or by
    ``1 / class count``; see ``data/sampling.py``).
    """

    def __init__(
        self,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        num_classes: int | None = None,
        in_channels: int | None = None,
        image_size: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        class_names: Sequence[str] | None = None,
        resident: bool | str = "auto",
        num_folds: int | None = None,
        fold: int = 0,
        sampler: str = "shuffle",
        class_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.num_folds, self.fold = check_folds(num_folds, fold)
        self.sampler = sampler
        self.class_weights = check_sampler_options(sampler, class_weights)
        if resident not in (True, False, "auto"):
            raise ValueError(f"resident must be true, false or 'auto', got {resident!r}")
        self.resident = resident
        self._on_device: dict[str, TensorBatchDataset] = {}
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or 2 * batch_size)
        self.val_fraction = float(val_fraction)
        self.test_fraction = float(test_fraction)
        self.split_seed = int(split_seed)
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.image_size = image_size
        self.mean = None if mean is None else [float(m) for m in mean]
        self.std = None if std is None else [float(s) for s in std]
        self.class_names = None if class_names is None else [str(c) for c in class_names]
        self.splits: dict[str, TensorBatchDataset] = {}
        self._norm: tuple[torch.Tensor, torch.Tensor] | None = None

    # ----------------------------------------------------------------- to implement
    @abstractmethod
    def load_splits(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Return ``{"train"|"val"|"test": (uint8 images NCHW, int64 labels)}``.

        A loader with only a train part (or train + test) may call :meth:`split_train` for the rest.
        """

    # ----------------------------------------------------------------- helpers for subclasses
    def split_train(
        self, images: torch.Tensor, labels: torch.Tensor, with_test: bool = True
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Split one labelled pool into train/val(/test) with the seeded, stratified ratios."""
        test = self.test_fraction if with_test else 0.0
        fractions = [1.0 - self.val_fraction - test, self.val_fraction, test]
        parts = split_indices(len(labels), fractions, self.split_seed, labels=labels.numpy())
        out = {}
        for stage, idx in zip(STAGES, parts, strict=True):
            if with_test or stage != "test":
                index = torch.from_numpy(idx)
                out[stage] = (images[index], labels[index])
        return out

    def _folded(
        self, splits: dict[str, tuple[torch.Tensor, torch.Tensor]]
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """With ``num_folds``: train and val re-cut from their union, fold ``fold`` validating (stratified)."""
        if self.num_folds is None:
            return splits
        images = torch.cat([splits["train"][0], splits["val"][0]])
        labels = torch.cat([splits["train"][1], splits["val"][1]])
        train, val = fold_indices(
            len(labels), self.num_folds, self.fold, self.split_seed, labels=labels.numpy(), what="images"
        )
        out = dict(splits)
        for stage, idx in (("train", train), ("val", val)):
            index = torch.from_numpy(idx)
            out[stage] = (images[index], labels[index])
        return out

    # ----------------------------------------------------------------- Lightning hooks
    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        for name, (images, labels) in self._folded(self.load_splits()).items():
            if images.dtype != torch.uint8 or images.ndim != 4:
                raise TypeError(f"{name} images must be uint8 NCHW, got {images.dtype} {tuple(images.shape)}")
            self.splits[name] = TensorBatchDataset(images.contiguous(), labels.long())
        train_images = self.splits["train"].images
        self.in_channels = self.in_channels or int(train_images.shape[1])
        self.image_size = self.image_size or int(train_images.shape[-1])
        if self.num_classes is None:
            self.num_classes = int(self.splits["train"].labels.max()) + 1
        if self.mean is None or self.std is None:
            self.mean, self.std = channel_stats(train_images)
        self._norm = None

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, labels = batch
        images = self.normalize(images)
        if self.trainer is not None and self.trainer.training:
            images = self.augment(images)
        return images, labels

    # ----------------------------------------------------------------- batch transforms
    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 -> float in [0, 1] -> per-channel standardisation, on the batch's device."""
        mean, std = self._norm_tensors(images.device)
        return (images.float().div_(255.0) - mean) / std

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        """Training-time augmentation of a normalised batch on the device (identity in the base class)."""
        return images

    def data_info(self) -> DataInfo:
        """What inference needs to prepare an input like training did (stored in checkpoints)."""
        return classification_info(self)

    # ----------------------------------------------------------------- internals
    def _norm_tensors(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if self._norm is None or self._norm[0].device != device:
            mean = torch.tensor(self.mean, device=device).view(1, -1, 1, 1)
            std = torch.tensor(self.std, device=device).view(1, -1, 1, 1)
            self._norm = (mean, std)
        return self._norm

    def _resident_copy(self, stage: str, dataset: TensorBatchDataset) -> TensorBatchDataset:
        """``dataset`` moved to the trainer's GPU when ``resident`` says so (once per split), else as is."""
        trainer = self.trainer
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        if self.resident is False or device.type != "cuda":
            return dataset
        if self.resident == "auto":
            free, _ = torch.cuda.mem_get_info(device)
            if dataset.images.numel() + 8 * dataset.labels.numel() > free / 4:
                return dataset
        cached = self._on_device.get(stage)
        if cached is None or cached.images.device != device:
            cached = TensorBatchDataset(dataset.images.to(device), dataset.labels.to(device))
            self._on_device[stage] = cached
        return cached

    def _loader(self, stage: str, shuffle: bool) -> DataLoader:
        if stage not in self.splits:
            self.setup(stage)
        dataset = self._resident_copy(stage, self.splits[stage])
        batch_size = self.batch_size if stage == "train" else self.eval_batch_size
        # A plain index sampler + BatchSampler (so Lightning can shard it under DDP, swap it for
        # overfit_batches and resume mid-epoch); the dataset's __getitems__ slices once per batch.
        sampler = train_sampler(
            self.sampler,
            len(dataset),
            shuffle,
            self.split_seed,
            labels=self.splits[stage].labels,
            class_weights=self.class_weights,
        )
        return ResumableDataLoader(
            dataset, batch_size=batch_size, sampler=sampler, collate_fn=keep_batch, num_workers=0
        )


class EpochBatchSampler(Sampler[list[int]]):
    """Yields index batches; the shuffle order depends only on (seed, epoch), so a resumed run sees the
    same order as an uninterrupted one (Lightning calls :meth:`set_epoch` before every epoch).

    The DataModules now use :class:`~lit_vision.data.resumable.EpochSampler` with a BatchSampler (same
    batches), which Lightning can wrap for DDP; this class stays for code that builds loaders itself."""

    def __init__(self, size: int, batch_size: int, shuffle: bool, seed: int = 0, drop_last: bool = False):
        self.size = int(size)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.size, generator=generator)
        else:
            order = torch.arange(self.size)
        for start in range(0, self.size, self.batch_size):
            batch = order[start : start + self.batch_size]
            if self.drop_last and len(batch) < self.batch_size:
                return
            yield batch.tolist()

    def __len__(self) -> int:
        if self.drop_last:
            return self.size // self.batch_size
        return (self.size + self.batch_size - 1) // self.batch_size


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 NCHW images scaled to [0, 1] (std floored at 1e-3).

    Computed exactly from a 256-bin histogram per channel: no float copy of the dataset (CIFAR-10's
    training split takes ~0.3 s instead of ~10 s).
    """
    levels = torch.arange(256, dtype=torch.float64) / 255.0
    hist = torch.stack(
        [torch.bincount(images[:, c].reshape(-1), minlength=256) for c in range(images.shape[1])]
    ).double()
    count = hist.sum(dim=1)
    mean = (hist * levels).sum(dim=1) / count
    var = ((hist * levels.square()).sum(dim=1) / count - mean.square()).clamp_min(0.0)
    std = var.sqrt().clamp_min(1e-3)
    return mean.tolist(), std.tolist()


def as_uint8_nchw(array: np.ndarray) -> torch.Tensor:
    """Convert an (N, H, W) or (N, H, W, C) uint8 array to a contiguous NCHW tensor."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(1)
    elif tensor.ndim == 4:
        tensor = tensor.permute(0, 3, 1, 2)
    return tensor.contiguous()

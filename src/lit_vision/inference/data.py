"""The DataModule ``Trainer.predict`` reads: image files decoded in DataLoader workers, normalised per
batch on the device (as in training), in input order."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from lit_vision.data.image_files import bad_image_message
from lit_vision.data.image_io import BadImageError
from lit_vision.errors import UserError
from lit_vision.inference.inputs import InputImage
from lit_vision.inference.preprocess import ImagePreprocessor

log = logging.getLogger("lit_vision")

# Below this many files, decoding in the main process beats starting worker processes.
INLINE_DECODE_LIMIT = 512


class PredictionImages(Dataset):
    """Item ``i``: ``(uint8 image, i, tensor([height, width]) of the photo, None)``, or for a file that
    cannot be decoded ``(None, i, None, reason)`` (reported in the main process, see
    :meth:`PredictionDataModule.on_after_batch_transfer`)."""

    def __init__(self, images: Sequence[InputImage], preprocess: ImagePreprocessor) -> None:
        self.images = list(images)
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        try:
            image, size = self.preprocess.load(self.images[index].path)
        except BadImageError as err:
            return None, index, None, err.reason
        return image, index, torch.tensor(size, dtype=torch.long), None


def collate_predictions(items: list) -> tuple:
    """``(images or None, indices, sizes, [(index, reason) of unreadable files])``; images of different
    sizes give a UserError."""
    good = [item for item in items if item[3] is None]
    bad = [(item[1], item[3]) for item in items if item[3] is not None]
    if not good:
        return None, torch.zeros(0, dtype=torch.long), torch.zeros(0, 2, dtype=torch.long), bad
    shapes = {tuple(item[0].shape) for item in good}
    if len(shapes) > 1:
        raise UserError(
            f"the checkpoint's eval pipeline gives images of different sizes {sorted(shapes)} and it records no "
            "image_size to resize them to; predict with batch_size=1, or train with a fixed-size eval_transforms."
        )
    images = torch.stack([item[0] for item in good])
    indices = torch.tensor([item[1] for item in good], dtype=torch.long)
    return images, indices, torch.stack([item[2] for item in good]), bad


def default_workers(count: int) -> int:
    """Decoding workers: none for small inputs, else up to 4 (one core stays with the model)."""
    if count < INLINE_DECODE_LIMIT:
        return 0
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS / Windows
        cpus = os.cpu_count() or 1
    return max(0, min(4, cpus - 1))


class PredictionDataModule(L.LightningDataModule):
    """Feeds ``images`` to ``Trainer.predict`` as ``(normalised images, indices, original sizes)``."""

    def __init__(
        self,
        images: Sequence[InputImage],
        preprocess: ImagePreprocessor,
        data_info: Mapping[str, Any],
        batch_size: int = 64,
        num_workers: int | None = None,
        on_bad_image: str = "error",
    ) -> None:
        super().__init__()
        if int(batch_size) < 1:
            raise UserError(f"batch_size must be at least 1, got {batch_size}.")
        if on_bad_image not in ("error", "skip"):
            raise UserError(f"on_bad_image must be error or skip, got {on_bad_image!r}.")
        self.on_bad_image = on_bad_image
        self.skipped: list[tuple[str, str]] = []
        self.dataset = PredictionImages(images, preprocess)
        self.preprocess = preprocess
        self.info = dict(data_info)
        self.batch_size = int(batch_size)
        self.num_workers = default_workers(len(self.dataset)) if num_workers is None else int(num_workers)

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=collate_predictions,
            pin_memory=torch.cuda.is_available(),
        )

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, indices, sizes, bad = batch
        if bad:
            self.report_bad([(self.dataset.images[i].path, reason) for i, reason in bad])
        return (None if images is None else self.preprocess.normalize(images)), indices, sizes

    def report_bad(self, failures: list[tuple[str, str]]) -> None:
        """Unreadable files: a UserError naming them (``on_bad_image=error``), else logged and kept in
        :attr:`skipped`."""
        if self.on_bad_image == "error":
            message = bad_image_message([p for p, _ in failures], [r for _, r in failures], skip_hint=False)
            raise UserError(message[:-1] + ", or pass on_bad_image=skip to predict the others.")
        for path, reason in failures:
            log.warning("Skipping %s (%s)", path, reason)
        self.skipped.extend(failures)

    def data_info(self) -> dict[str, Any]:
        """The checkpoint's own data_info (the task's setup reads it back unchanged)."""
        return dict(self.info)


class TablePredictionDataModule(L.LightningDataModule):
    """Feeds prepared table rows ``(N, F)`` to ``Trainer.predict`` as ``(inputs, indices, None)``."""

    def __init__(self, features: torch.Tensor, data_info: Mapping[str, Any], batch_size: int = 64) -> None:
        super().__init__()
        if int(batch_size) < 1:
            raise UserError(f"batch_size must be at least 1, got {batch_size}.")
        self.features = features
        self.info = dict(data_info)
        self.batch_size = int(batch_size)
        self.skipped: list[tuple[str, str]] = []

    def predict_dataloader(self) -> DataLoader:
        rows = TensorDataset(self.features, torch.arange(len(self.features)))
        return DataLoader(rows, batch_size=self.batch_size, shuffle=False)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        inputs, indices = batch
        return inputs, indices, None

    def data_info(self) -> dict[str, Any]:
        """The checkpoint's own data_info."""
        return dict(self.info)

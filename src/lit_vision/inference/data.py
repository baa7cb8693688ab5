"""The DataModule ``Trainer.predict`` reads: image files decoded in DataLoader workers (large inputs) or
by a background thread of the main process (small ones), normalised per batch on the device (as in
training), in input order."""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from lit_vision.data.contract import DataInfo
from lit_vision.data.image_files import bad_image_message
from lit_vision.data.image_io import BadImageError
from lit_vision.errors import UserError
from lit_vision.inference.inputs import InputImage
from lit_vision.inference.preprocess import ImagePreprocessor

log = logging.getLogger("lit_vision")

# Below this many bytes of files, decoding in the main process beats starting worker processes: each
# worker costs ~50-100 ms to start, about what decoding 1-2 MB of small PNGs (or 1,000 32x32 ones) costs.
INLINE_DECODE_BYTES = 8 * 2**20


class PredictionImages(Dataset):
    """Item ``i``: ``(uint8 image, i, (height, width) of the photo, None)``, or for a file that
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
        return image, index, size, None


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
    return images, indices, torch.tensor([item[2] for item in good], dtype=torch.long), bad


def default_workers(images: Sequence[InputImage]) -> int:
    """Decoding workers: none when the files hold under :data:`INLINE_DECODE_BYTES` in all, else up to 4
    (one core stays with the model)."""
    total = 0
    for image in images:
        try:
            total += os.path.getsize(image.path)
        except OSError:  # missing or unreadable: reported when it is decoded
            continue
        if total >= INLINE_DECODE_BYTES:
            break
    if total < INLINE_DECODE_BYTES:
        return 0
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS / Windows
        cpus = os.cpu_count() or 1
    return max(0, min(4, cpus - 1))


class PrefetchingDataLoader(DataLoader):
    """A DataLoader that, without worker processes, prepares the next batches in a background thread.

    Decoding (PIL, mostly holding the GIL) then overlaps the model's forward pass (native code, GIL
    released) instead of alternating with it; with workers it is a plain DataLoader.
    """

    prefetch_batches = 2

    def __iter__(self) -> Iterator[Any]:
        batches = super().__iter__()
        if self.num_workers > 0 or len(self) < 2:
            return batches
        return prefetched(batches, self.prefetch_batches)


def prefetched(batches: Iterator[Any], depth: int) -> Iterator[Any]:
    """Yield the items of ``batches`` while a daemon thread computes up to ``depth`` ahead; an exception
    there is raised here, at the item where it happened."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def put(item: tuple[Any, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for batch in batches:
                if not put((batch, None)):
                    return
            put((end, None))
        except BaseException as exc:  # handed to the consuming thread, raised there
            put((end, exc))

    thread = threading.Thread(target=work, name="lit_vision-predict-decode", daemon=True)
    thread.start()
    try:
        while True:
            batch, error = ready.get()
            if batch is end:
                if error is not None:
                    raise error
                return
            yield batch
    finally:
        stop.set()  # the consumer stopped (end, exception or abandoned): let the thread finish


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
        self.num_workers = default_workers(self.dataset.images) if num_workers is None else int(num_workers)

    def predict_dataloader(self) -> DataLoader:
        return PrefetchingDataLoader(
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

    def data_info(self) -> DataInfo | None:
        """The checkpoint's own data_info (the task's setup reads it back unchanged)."""
        return DataInfo.from_dict(self.info)


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

    def data_info(self) -> DataInfo | None:
        """The checkpoint's own data_info."""
        return DataInfo.from_dict(self.info)

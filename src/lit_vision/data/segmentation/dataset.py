"""A map-style dataset of (image, mask) pairs with joint torchvision.transforms.v2 augmentation.

Samples come from a loader function (index -> uint8 arrays), so folder data and torchvision datasets share
the same transform path. Images leave the dataset as uint8 CHW tensors (normalised later on the device,
one batch at a time) and masks as int64 HW tensors with IGNORE_INDEX for ignored pixels.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from lit_vision.data.validation import BadFileError, SkippedFiles, check_on_bad_sample

log = logging.getLogger("lit_vision")

SampleLoader = Callable[[int], tuple[np.ndarray, np.ndarray]]


class SegmentationDataset(Dataset):
    """``indices`` select samples of ``load``; ``transform`` is applied to (Image, Mask) together.

    With ``cache`` the decoded uint8 arrays are kept after their first read, so later epochs skip decoding
    and rasterising (the transforms still run every time, so augmentation stays random).

    With ``on_bad_sample="skip"`` a sample whose file turns out unreadable (a
    :class:`~lit_vision.data.validation.BadFileError`) is left out: :meth:`fill_cache` drops it, and
    ``__getitem__`` serves the next readable sample instead (each file logged once, with the count).
    """

    def __init__(
        self,
        load: SampleLoader,
        indices: Sequence[int],
        transform: v2.Transform | None = None,
        cache: bool = False,
        names: Sequence[str] | None = None,
        on_bad_sample: str = "error",
    ) -> None:
        self.load = load
        self.indices = [int(i) for i in indices]
        self.transform = transform
        self.cache = cache
        self.names = list(names) if names is not None else [str(i) for i in self.indices]
        self._cached: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.on_bad_sample = check_on_bad_sample(on_bad_sample)
        self.skipped = SkippedFiles(log, "sample")

    def __len__(self) -> int:
        return len(self.indices)

    def raw(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The untransformed sample at ``position``: ``(uint8 (3, H, W), uint8 (H, W))``."""
        if position in self._cached:
            return self._cached[position]
        image, mask = self.load(self.indices[position])
        sample = (
            torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous(),
            torch.from_numpy(np.ascontiguousarray(mask)),
        )
        if self.cache:
            self._cached[position] = sample
        return sample

    def fill_cache(self) -> None:
        """Decode every sample now (errors in the data surface before training starts); with
        ``on_bad_sample="skip"`` unreadable samples are dropped from the dataset."""
        bad = []
        for position in range(len(self)):
            try:
                self.raw(position)
            except BadFileError as err:
                if self.on_bad_sample == "error":
                    raise
                self.skipped.add(err.path or self.names[position], err.reason or str(err))
                bad.append(position)
        if bad:
            dropped = set(bad)
            keep = [p for p in range(len(self)) if p not in dropped]
            self._cached = {new: self._cached[old] for new, old in enumerate(keep)}
            self.indices = [self.indices[p] for p in keep]
            self.names = [self.names[p] for p in keep]

    def __getitem__(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        attempts = min(len(self), 16)
        for step in range(attempts):
            try:
                image, mask = self.raw((position + step) % len(self))
                break
            except BadFileError as err:
                if self.on_bad_sample == "error":
                    raise
                where = err.path or self.names[(position + step) % len(self)]
                self.skipped.add(where, err.reason or str(err))
        else:
            raise BadFileError(
                f"{attempts} samples in a row starting at {self.names[position]} could not be read; the data "
                "looks broken. Check the files named above."
            )
        image, mask = tv_tensors.Image(image), tv_tensors.Mask(mask)
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor).long()

"""scikit-learn's handwritten digits: 1,797 real 8x8 images that ship with the package (the offline default)."""

from __future__ import annotations

import numpy as np
import torch

from lit_vision.data.augmented import AugmentedInMemoryDataModule
from lit_vision.data.in_memory import as_uint8_nchw


class DigitsDataModule(AugmentedInMemoryDataModule):
    """The UCI optical-digits set from ``sklearn.datasets.load_digits`` with a seeded stratified split.

    Pixel values (0..16) are scaled to uint8 0..255 so the pipeline is the same as for MNIST, including
    ``augment`` and ``mix`` on the device.
    """

    def __init__(self, val_fraction: float = 0.15, test_fraction: float = 0.15, **kwargs) -> None:
        kwargs.setdefault("num_classes", 10)
        kwargs.setdefault("in_channels", 1)
        kwargs.setdefault("image_size", 8)
        kwargs.setdefault("class_names", [str(i) for i in range(10)])
        super().__init__(val_fraction=val_fraction, test_fraction=test_fraction, **kwargs)

    def load_splits(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        pixels = np.clip(np.rint(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
        images = as_uint8_nchw(pixels)
        labels = torch.from_numpy(digits.target.astype(np.int64))
        return self.split_train(images, labels)

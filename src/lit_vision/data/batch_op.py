"""The base of the batch augmentations: one op over a normalised ``(N, C, H, W)`` batch on its device."""

from __future__ import annotations

from collections.abc import Sequence

import torch


class BatchOp:
    """One batched augmentation; ``set_normalization`` gives it the dataset's per-channel mean/std."""

    def set_normalization(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]

    def fill_tensor(self, fill: float, images: torch.Tensor) -> torch.Tensor:
        """A pixel value (0..1) expressed in the normalised space of ``images``: shape (1, C, 1, 1)."""
        mean = torch.tensor(getattr(self, "mean", [0.0]), device=images.device, dtype=images.dtype)
        std = torch.tensor(getattr(self, "std", [1.0]), device=images.device, dtype=images.dtype)
        value = (fill - mean) / std
        return value.view(1, -1, 1, 1).expand(1, images.shape[1], 1, 1)

    def to_unit(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised images back to pixel values in [0, 1] (what torchvision's colour ops expect)."""
        return images.mul(self._std(images)).add(self._mean(images)).clamp(0, 1)

    def from_unit(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixel values in [0, 1] normalised with the dataset's mean/std again."""
        return (pixels - self._mean(pixels)) / self._std(pixels)

    def _mean(self, images: torch.Tensor) -> torch.Tensor:
        return torch.tensor(getattr(self, "mean", [0.0]), device=images.device, dtype=images.dtype).view(
            1, -1, 1, 1
        )

    def _std(self, images: torch.Tensor) -> torch.Tensor:
        return torch.tensor(getattr(self, "std", [1.0]), device=images.device, dtype=images.dtype).view(
            1, -1, 1, 1
        )

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k not in ("mean", "std"))
        return f"{type(self).__name__}({args})"


def sample_mask(images: torch.Tensor, p: float) -> torch.Tensor:
    """A ``(N,)`` bool mask on the batch's device: True with probability ``p`` per sample."""
    return torch.rand(images.shape[0], device=images.device) < p
